//! Write batching for one multiplexed connection.
//!
//! redis-rs's multiplexed connection hands each command to its driver task,
//! which writes what it finds queued and flushes. On tokio, a caller's hand-off
//! wakes the driver, which runs next on the same thread (the scheduler's
//! last-in-first-out slot) and so finds one command: measured with 64 callers,
//! 164,000 `writev` calls per second for 170,000 commands, and three quarters
//! of the client's CPU in the kernel's TCP send path (docs/performance.md).
//!
//! A [`Batcher`] gathers the single commands of concurrent callers. The first
//! caller of a batch spawns a flush task, which yields once, so that the other
//! callers ready to run add their commands, and then hands them all to the
//! connection as one pipeline: one write, one flush. Each caller still gets its
//! own reply, its own deadline and its own outcome in the metrics (the replies
//! of a non-transactional pipeline are independent, server errors included).
//!
//! What the batcher promises:
//!
//! - **Nobody's abandoned work is written.** A job whose caller has gone (its
//!   deadline passed, its request was dropped) is withdrawn when the batch is
//!   built, or as its deadline passes: it never reaches the socket. And a
//!   connection has one send at a time without its reply (a direct command
//!   or a batch): the next batch is built when that reply comes, so what
//!   queues behind a server that has stopped answering stays withdrawable
//!   until then.
//! - **Caller order per connection.** A caller goes straight to the connection
//!   only when nothing at all is waiting or in flight on it; otherwise it
//!   queues behind what is there, and batches go one after another. So a
//!   retry never overtakes the command it retries, even one abandoned
//!   mid-flight. Jobs count as in flight until their reply comes back or
//!   they are withdrawn, whoever waits for them.
//! - **Bounded.** At most `REDIS_MAX_QUEUED` commands wait or fly on one
//!   connection; past that a caller fails at once with
//!   [`ErrorKind::Overloaded`](super::ErrorKind::Overloaded) (counted in the
//!   metrics line) instead of adding to a backlog the connection cannot drain.
//! - **No caller waits past its own deadline.** The flush task answers each
//!   queued or batched caller whose deadline passes with a deadline error at
//!   that moment, whatever the others in its batch allow (one timer, set to
//!   the earliest deadline it holds, rather than one per command: per-command
//!   timers were about 8% of a profile's samples at 64 callers). It waits for a
//!   batch's replies only while one of its callers still does.
//!
//! One send at a time is also the faster choice at the concurrency where
//! batching matters: while a batch is out, the next one grows, and the
//! server reads it in one go. Letting batches follow each other without
//! waiting was measured (docs/performance.md, "Where the client's CPU
//! goes"): faster at 16 callers, where the server idles, and slower at 64,
//! where smaller batches cost the server more.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::error::deadline_error;

/// The most commands written as one pipeline; more go in the next one.
const MAX_BATCH: usize = 512;

/// The batching state of one connection (one per connection generation).
#[derive(Debug)]
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
    flush_scheduled: AtomicBool,
    /// Commands queued or sent and not yet answered (or withdrawn). A job
    /// counts until the flush task withdraws it or hands out its reply, so
    /// an abandoned command still counts until then.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// A command sent directly whose reply has not come: batches wait.
    direct_unanswered: AtomicBool,
    /// Whether the flush task waits on `direct_answered`.
    flush_waiting: AtomicBool,
    direct_answered: Notify,
    /// Wakes the flush task to set its timer earlier.
    rearm: Notify,
}

/// The jobs waiting for the next batch, and the flush task's timer.
#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The earliest deadline among `jobs` (none when empty).
    earliest: Option<Instant>,
    /// Where the waiting flush task's timer is set; `None` when it does not
    /// wait (it will look at the queue before it waits again).
    armed: Option<Instant>,
}

#[derive(Debug)]
struct Job {
    cmd: Cmd,
    deadline: Instant,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// A batched job's caller, while it waits for its reply.
struct Waiter {
    deadline: Instant,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// Why a command was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overloaded {
    /// Commands already waiting or in flight on the connection.
    pub(crate) queued: usize,
}

impl Batcher {
    /// A batcher that lets at most `max_in_flight` commands wait or fly.
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            flush_scheduled: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            direct_unanswered: AtomicBool::new(false),
            flush_waiting: AtomicBool::new(false),
            direct_answered: Notify::new(),
            rearm: Notify::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while the lock was held cannot leave the deque inconsistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commands waiting or in flight on the connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    /// Counts one more command in flight, unless the bound is reached;
    /// returns how many were in flight before it.
    fn enter(&self) -> Result<usize, Overloaded> {
        let before = self.in_flight.fetch_add(1, SeqCst);
        if before >= self.max_in_flight {
            self.leave(1);
            return Err(Overloaded { queued: before });
        }
        Ok(before)
    }

    /// Uncounts `n` commands: answered, withdrawn, or refused.
    fn leave(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_sub(n, SeqCst);
        }
    }

    /// Sends `cmd` on `conn` and waits for its reply until `deadline`:
    /// directly when nothing else is waiting or in flight on the connection,
    /// else in the next batch.
    ///
    /// # Errors
    /// [`Overloaded`] (outer) when the bound is reached; the command's own
    /// outcome (inner), a deadline error included.
    pub(crate) async fn send(
        self: &Arc<Self>,
        conn: &MultiplexedConnection,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<RedisResult<Value>, Overloaded> {
        let others = self.enter()?;
        if others == 0 {
            let direct = Direct::start(self);
            let mut conn = conn.clone();
            let reply = tokio::time::timeout_at(deadline, conn.send_packed_command(cmd)).await;
            // Also when the caller goes mid-flight: the guard uncounts it.
            drop(direct);
            return Ok(reply.unwrap_or_else(|_| Err(deadline_error())));
        }
        let (reply, answer) = oneshot::channel();
        let rearm = {
            let mut queue = self.queue();
            queue.jobs.push_back(Job {
                cmd: cmd.clone(),
                deadline,
                reply,
            });
            queue.earliest = Some(queue.earliest.map_or(deadline, |e| e.min(deadline)));
            queue.armed.is_some_and(|armed| deadline < armed)
        };
        if rearm {
            // The flush task's timer is set past this caller's deadline.
            self.rearm.notify_one();
        }
        // A load first: under load a flush is nearly always scheduled, and a
        // read of the flag costs nothing where a swap takes its cache line.
        if !self.flush_scheduled.load(SeqCst) && !self.flush_scheduled.swap(true, SeqCst) {
            tokio::spawn(self.clone().flush(conn.clone()));
        }
        // No timer of its own: the flush task answers at the deadline.
        Ok(answer.await.unwrap_or_else(|_| Err(dropped())))
    }

    /// Writes what the queue holds, as pipelines of at most [`MAX_BATCH`],
    /// and hands out the replies.
    async fn flush(self: Arc<Self>, conn: MultiplexedConnection) {
        // Let every caller that is ready to run add its command first.
        tokio::task::yield_now().await;
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut waiters: Vec<Option<Waiter>> = Vec::new();
        loop {
            if self.direct_unanswered.load(SeqCst) {
                self.flush_waiting.store(true, SeqCst);
                self.serve(self.direct_answer(), &mut [], timer.as_mut())
                    .await;
                self.flush_waiting.store(false, SeqCst);
            }
            let mut pipe = {
                let mut queue = self.queue();
                let now = Instant::now();
                let mut pipe = Pipeline::with_capacity(queue.jobs.len().min(MAX_BATCH));
                let mut withdrawn = 0;
                while waiters.len() < MAX_BATCH {
                    let Some(job) = queue.jobs.pop_front() else {
                        break;
                    };
                    // Withdrawn: its caller has gone, or its deadline has
                    // passed (then its caller hears so from here: it has no
                    // timer of its own).
                    if job.reply.is_closed() {
                        withdrawn += 1;
                        continue;
                    }
                    if job.deadline <= now {
                        let _ = job.reply.send(Err(deadline_error()));
                        withdrawn += 1;
                        continue;
                    }
                    pipe.add_command(job.cmd);
                    waiters.push(Some(Waiter {
                        deadline: job.deadline,
                        reply: job.reply,
                    }));
                }
                queue.earliest = queue.jobs.iter().map(|j| j.deadline).min();
                self.leave(withdrawn);
                if waiters.is_empty() {
                    // Under the lock: a caller that queues after this sees
                    // the flag down and schedules a new flush.
                    self.flush_scheduled.store(false, SeqCst);
                    return;
                }
                pipe
            };
            let n = waiters.len();
            let mut sender = conn.clone();
            let sent = self
                .serve(
                    sender.send_packed_commands(&pipe, 0, n),
                    &mut waiters,
                    timer.as_mut(),
                )
                .await;
            let result = match sent {
                Some(Ok(values)) if values.len() == n => Ok(values),
                Some(Ok(_)) => Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "a batch of commands got a different number of replies",
                ))),
                Some(Err(err)) => Err(err),
                None => Err(deadline_error()),
            };
            match result {
                Ok(values) => {
                    for (waiter, value) in waiters.drain(..).zip(values) {
                        if let Some(waiter) = waiter {
                            let _ = waiter.reply.send(Ok(value));
                        }
                    }
                }
                Err(err) => {
                    for waiter in waiters.drain(..).flatten() {
                        let _ = waiter.reply.send(Err(err.clone()));
                    }
                }
            }
            self.leave(n);
            pipe.clear();
        }
    }

    /// Returns once no command sent directly waits for its reply (at the
    /// latest when its caller's deadline passes and the caller drops it).
    async fn direct_answer(&self) {
        loop {
            let answered = self.direct_answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if !self.direct_unanswered.load(SeqCst) {
                return;
            }
            answered.await;
        }
    }

    /// Waits for `work` while answering, as each deadline passes, the
    /// callers in `waiters` (the batch on the wire) and in the queue with a
    /// deadline error; the queue's are withdrawn. Gives up on `work` (`None`)
    /// once every waiter has been answered so.
    async fn serve<F: Future>(
        &self,
        work: F,
        waiters: &mut [Option<Waiter>],
        mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Option<F::Output> {
        tokio::pin!(work);
        let waited_for = !waiters.is_empty();
        loop {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for slot in waiters.iter_mut() {
                match slot {
                    Some(w) if w.deadline <= now => {
                        if let Some(w) = slot.take() {
                            let _ = w.reply.send(Err(deadline_error()));
                        }
                    }
                    Some(w) => next = Some(next.map_or(w.deadline, |n| n.min(w.deadline))),
                    None => {}
                }
            }
            if waited_for && next.is_none() {
                // Nobody waits for this batch any more.
                return None;
            }
            {
                let mut queue = self.queue();
                if queue.earliest.is_some_and(|e| e <= now) {
                    let before = queue.jobs.len();
                    queue.jobs.retain_mut(|job| {
                        if job.deadline > now {
                            return true;
                        }
                        // The job's slot is taken: answer it and let it go.
                        let (closed, _) = oneshot::channel();
                        let reply = std::mem::replace(&mut job.reply, closed);
                        let _ = reply.send(Err(deadline_error()));
                        false
                    });
                    let withdrawn = before - queue.jobs.len();
                    queue.earliest = queue.jobs.iter().map(|j| j.deadline).min();
                    self.leave(withdrawn);
                }
                if let Some(e) = queue.earliest {
                    next = Some(next.map_or(e, |n| n.min(e)));
                }
                // Waiting without a deadline to watch (a direct send, an
                // empty queue): any caller that queues now wakes the task.
                queue.armed = Some(next.unwrap_or_else(|| now + Duration::from_secs(86_400)));
            }
            if let Some(next) = next {
                timer.as_mut().reset(next);
            }
            let outcome = tokio::select! {
                biased;
                done = &mut work => Some(done),
                () = &mut timer, if next.is_some() => None,
                () = self.rearm.notified() => None,
            };
            if let Some(done) = outcome {
                self.queue().armed = None;
                return Some(done);
            }
        }
    }
}

/// A command sent directly, unanswered while this lives (its caller's
/// future: dropped when the reply comes, the deadline passes or the caller
/// goes).
struct Direct<'a>(&'a Batcher);

impl<'a> Direct<'a> {
    /// The caller has been counted in flight by `enter`.
    fn start(batcher: &'a Batcher) -> Self {
        batcher.direct_unanswered.store(true, SeqCst);
        Self(batcher)
    }
}

impl Drop for Direct<'_> {
    fn drop(&mut self) {
        self.0.direct_unanswered.store(false, SeqCst);
        self.0.leave(1);
        if self.0.flush_waiting.load(SeqCst) {
            self.0.direct_answered.notify_waiters();
        }
    }
}

fn dropped() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the connection's batch was dropped",
    ))
}
