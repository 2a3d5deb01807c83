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
//! Batches follow each other on the wire without waiting for each other's
//! replies while the server answers, so it never idles between them; a
//! caller alone on the connection sends directly.
//!
//! What the batcher promises:
//!
//! - **Nobody's abandoned work is written.** A job whose caller has gone (its
//!   deadline passed, its request was dropped) is withdrawn when the batch is
//!   built, or as its deadline passes: it never reaches the socket. Once the
//!   connection has gone [`STALL`] (2 ms) without a reply while something
//!   sent on it waits for one, the next batch is kept back until a reply
//!   comes or nobody waits for what is out: what queues behind a server that
//!   has stopped answering stays withdrawable. (What went out in those 2 ms
//!   was written while its callers waited, as a direct command is.)
//! - **Caller order per connection.** A caller goes straight to the connection
//!   only when nothing at all is waiting or in flight on it; otherwise it
//!   queues behind what is there. Only the one scheduled flush task hands a
//!   batch to the connection, and it passes the turn on only once its batch
//!   is in the connection's channel, so batches reach the socket in queue
//!   order. A retry never overtakes the command it retries, even one
//!   abandoned mid-flight. Jobs count as in flight until their reply comes
//!   back or they are withdrawn, whoever waits for them.
//! - **Bounded.** At most `REDIS_MAX_QUEUED` commands wait or fly on one
//!   connection; past that a caller fails at once with
//!   [`ErrorKind::Overloaded`](super::ErrorKind::Overloaded) (counted in the
//!   metrics line) instead of adding to a backlog the connection cannot drain.
//! - **No caller waits past its own deadline.** Each batch's task answers
//!   each of its callers whose deadline passes with a deadline error at that
//!   moment, whatever the others in its batch allow (one timer per batch, set
//!   to the earliest deadline it holds, rather than one per command:
//!   per-command timers were about 8% of a profile's samples at 64 callers).
//!   While the queue is kept back, the task holding it does the same for the
//!   queue. A batch is waited for only while one of its callers still waits.
//!
//! Why batches overlap (docs/performance.md, "Before and after the managed-Redis client"):
//! with one batch at a time, 16 callers got 126-135k `GET`s a second where
//! the client before issue 13, whose batches overlapped, got 199-206k; the
//! server idled while replies travelled back. Overlapping, with the 2 ms
//! rule, is ahead of that client at 1, 16, 64 and 256 callers.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::error::deadline_error;

/// The most commands written as one pipeline; more go in the next one.
const MAX_BATCH: usize = 512;

/// How long a connection may go without a reply, while something sent on it
/// waits for one, before the next batch is kept back. A healthy server
/// answers a batch of [`MAX_BATCH`] commands well within it; a frozen one
/// gets at most this much more work written into its socket.
const STALL: Duration = Duration::from_millis(2);

/// The batching state of one connection (one per connection generation).
#[derive(Debug)]
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
    /// A flush task exists: it will hand the queue's jobs off, or hold them
    /// back while the connection is stalled. Only the task that set it hands
    /// a batch off, so batches reach the connection in queue order.
    flush_scheduled: AtomicBool,
    /// Commands queued or sent and not yet answered (or withdrawn). A job
    /// counts until its flush task withdraws it or hands out its reply, so
    /// an abandoned command still counts until then.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// Sends handed to the connection (direct commands and batches) whose
    /// reply has not come while one of their callers still waits.
    on_wire: AtomicUsize,
    /// When the connection last made progress: a reply came, or a send went
    /// out with nothing else on the wire. Microseconds since `epoch`.
    progress_us: AtomicU64,
    epoch: Instant,
    /// Whether a flush task holds the queue back and waits on `progressed`.
    holding: AtomicBool,
    progressed: Notify,
    /// Wakes the holding flush task to set its timer earlier.
    rearm: Notify,
}

/// The jobs waiting for the next batch, and the holding task's timer.
#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The earliest deadline among `jobs` (none when empty).
    earliest: Option<Instant>,
    /// Where the holding flush task's timer is set; `None` when no task
    /// holds the queue.
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
            on_wire: AtomicUsize::new(0),
            progress_us: AtomicU64::new(0),
            epoch: Instant::now(),
            holding: AtomicBool::new(false),
            progressed: Notify::new(),
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

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// A send (a direct command or a batch) goes out at `now`.
    fn went_out(&self, now: Instant) {
        if self.on_wire.fetch_add(1, SeqCst) == 0 {
            self.progress_us.store(self.us(now), SeqCst);
        }
    }

    /// A send is over: its reply came (`answered`), or nobody waits for it
    /// any more.
    fn came_back(&self, answered: bool) {
        let still_out = self.on_wire.fetch_sub(1, SeqCst) - 1;
        if answered && still_out > 0 {
            self.progress_us.store(self.us(Instant::now()), SeqCst);
        }
        if self.holding.load(SeqCst) {
            self.progressed.notify_waiters();
        }
    }

    /// Whether something sent waits for a reply and none has come for
    /// [`STALL`].
    fn stalled(&self, now: Instant) -> bool {
        self.on_wire.load(SeqCst) > 0
            && self.us(now).saturating_sub(self.progress_us.load(SeqCst)) > STALL.as_micros() as u64
    }

    /// Sends `cmd` on `conn` and waits for its reply until `deadline`:
    /// directly when nothing else is waiting or in flight on the connection,
    /// else in the next batch. `now` is the caller's clock reading.
    ///
    /// # Errors
    /// [`Overloaded`] (outer) when the bound is reached; the command's own
    /// outcome (inner), a deadline error included.
    pub(crate) async fn send(
        self: &Arc<Self>,
        conn: &MultiplexedConnection,
        cmd: &Cmd,
        now: Instant,
        deadline: Instant,
    ) -> Result<RedisResult<Value>, Overloaded> {
        let others = self.enter()?;
        if others == 0 {
            let mut direct = Direct::start(self, now);
            let mut conn = conn.clone();
            let reply = tokio::time::timeout_at(deadline, conn.send_packed_command(cmd)).await;
            direct.answered = reply.is_ok();
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
            // The holding task's timer is set past this caller's deadline.
            self.rearm.notify_one();
        }
        // A load first: under load a flush is nearly always scheduled, and a
        // read of the flag costs nothing where a swap takes its cache line.
        if !self.flush_scheduled.load(SeqCst) && !self.flush_scheduled.swap(true, SeqCst) {
            self.spawn_flush(conn.clone());
        }
        // No timer of its own: its flush task answers at the deadline.
        Ok(answer.await.unwrap_or_else(|_| Err(dropped())))
    }

    /// Starts a flush task (its caller has set `flush_scheduled`).
    fn spawn_flush(self: &Arc<Self>, conn: MultiplexedConnection) {
        tokio::spawn(self.clone().flush(conn));
    }

    /// Hands the queue's next batch (at most [`MAX_BATCH`] jobs) to the
    /// connection, once it is not stalled, and hands out its replies.
    async fn flush(self: Arc<Self>, conn: MultiplexedConnection) {
        // Let every caller that is ready to run add its command first.
        tokio::task::yield_now().await;
        if self.stalled(Instant::now()) {
            // The queue stays here, withdrawable, until the connection
            // answers again or nobody waits for what is on it.
            self.holding.store(true, SeqCst);
            self.hold(self.unstalled()).await;
            self.holding.store(false, SeqCst);
        }
        let now = Instant::now();
        let mut pipe;
        let mut waiters: Vec<Option<Waiter>>;
        let mut earliest = now;
        {
            let mut queue = self.queue();
            pipe = Pipeline::with_capacity(queue.jobs.len().min(MAX_BATCH));
            waiters = Vec::with_capacity(queue.jobs.len().min(MAX_BATCH));
            let mut withdrawn = 0;
            while waiters.len() < MAX_BATCH {
                let Some(job) = queue.jobs.pop_front() else {
                    break;
                };
                // Withdrawn: its caller has gone, or its deadline has passed
                // (then its caller hears so from here: it has no timer of
                // its own).
                if job.reply.is_closed() {
                    withdrawn += 1;
                    continue;
                }
                if job.deadline <= now {
                    let _ = job.reply.send(Err(deadline_error()));
                    withdrawn += 1;
                    continue;
                }
                if waiters.is_empty() || job.deadline < earliest {
                    earliest = job.deadline;
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
                // Under the lock: a caller that queues after this sees the
                // flag down and schedules a new flush.
                self.flush_scheduled.store(false, SeqCst);
                return;
            }
        }
        let n = waiters.len();
        let mut sender = conn.clone();
        // Unconstrained: tokio's cooperative budget must not make the first
        // poll return before the batch is handed off.
        let mut sent = Box::pin(tokio::task::unconstrained(async move {
            sender.send_packed_commands(&pipe, 0, n).await
        }));
        self.went_out(now);
        // The first poll hands the batch to the connection's driver (its
        // channel has room for every command this batcher lets in, see
        // `connect.rs`), before the next flush task may hand off its own.
        let first = poll_fn(|cx| Poll::Ready(sent.as_mut().poll(cx))).await;
        let next = {
            let queue = self.queue();
            let more = !queue.jobs.is_empty();
            if !more {
                self.flush_scheduled.store(false, SeqCst);
            }
            more
        };
        if next {
            // Callers queued meanwhile: the next batch is theirs, in a task
            // of its own that yields first, like this one.
            self.spawn_flush(conn);
        }
        let outcome = match first {
            Poll::Ready(done) => Some(done),
            Poll::Pending => self.replies(sent, &mut waiters, earliest).await,
        };
        self.came_back(outcome.is_some());
        let result = match outcome {
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
                for (waiter, value) in waiters.into_iter().zip(values) {
                    if let Some(waiter) = waiter {
                        let _ = waiter.reply.send(Ok(value));
                    }
                }
            }
            Err(err) => {
                for waiter in waiters.into_iter().flatten() {
                    let _ = waiter.reply.send(Err(err.clone()));
                }
            }
        }
        self.leave(n);
    }

    /// Waits for a batch's replies (`work`) while answering each caller in
    /// `waiters` whose deadline passes with a deadline error at that moment
    /// (one timer per batch, set to the earliest deadline it holds: a timer
    /// per command was about 8% of a profile's samples at 64 callers). Gives
    /// up (`None`) once every waiter has been answered so.
    async fn replies<F: Future + Unpin>(
        &self,
        mut work: F,
        waiters: &mut [Option<Waiter>],
        earliest: Instant,
    ) -> Option<F::Output> {
        let timer = tokio::time::sleep_until(earliest);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                done = &mut work => return Some(done),
                () = &mut timer => {}
            }
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
            // Nobody waits for this batch any more.
            let next = next?;
            timer.as_mut().reset(next);
        }
    }

    /// Returns once the connection is not stalled: a reply came, or nobody
    /// waits for what is on it any more (at the latest as the last of its
    /// callers' deadlines passes).
    async fn unstalled(&self) {
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if !self.stalled(Instant::now()) {
                return;
            }
            progressed.await;
        }
    }

    /// Waits for `work` while answering, as each deadline passes, the
    /// queue's callers with a deadline error and withdrawing their jobs.
    async fn hold(&self, work: impl Future<Output = ()>) {
        tokio::pin!(work);
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            let now = Instant::now();
            let next = {
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
                // With no deadline to watch, any caller that queues now
                // wakes the task.
                queue.armed = Some(
                    queue
                        .earliest
                        .unwrap_or_else(|| now + Duration::from_secs(86_400)),
                );
                queue.earliest
            };
            if let Some(next) = next {
                timer.as_mut().reset(next);
            }
            let done = tokio::select! {
                biased;
                () = &mut work => true,
                () = &mut timer, if next.is_some() => false,
                () = self.rearm.notified() => false,
            };
            if done {
                self.queue().armed = None;
                return;
            }
        }
    }
}

/// A command sent directly, on the wire while this lives (its caller's
/// future: dropped when the reply comes, the deadline passes or the caller
/// goes).
struct Direct<'a> {
    batcher: &'a Batcher,
    answered: bool,
}

impl<'a> Direct<'a> {
    /// The caller has been counted in flight by `enter`.
    fn start(batcher: &'a Batcher, now: Instant) -> Self {
        batcher.went_out(now);
        Self {
            batcher,
            answered: false,
        }
    }
}

impl Drop for Direct<'_> {
    fn drop(&mut self) {
        self.batcher.came_back(self.answered);
        self.batcher.leave(1);
    }
}

fn dropped() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the connection's batch was dropped",
    ))
}
