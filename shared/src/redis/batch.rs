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
//!   built: it never reaches the socket.
//! - **Caller order per connection.** A caller goes straight to the connection
//!   only when nothing at all is waiting or in flight on it; otherwise it
//!   queues behind what is there. So a retry never overtakes the command it
//!   retries, even one abandoned mid-flight. Jobs count as in flight until
//!   their reply comes back or they are withdrawn, whoever waits for them.
//! - **Bounded.** At most `REDIS_MAX_QUEUED` commands wait or fly on one
//!   connection; past that a caller fails at once with
//!   [`ErrorKind::Overloaded`](super::ErrorKind::Overloaded) (counted in the
//!   metrics line) instead of adding to a backlog the connection cannot drain.
//! - **No caller waits past its own deadline.** Each caller waits for its
//!   reply until its own deadline, whatever the others in its batch allow; the
//!   flush task waits for a batch's replies only while one of its callers
//!   still does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::deadline_error;

/// The most commands written as one pipeline; more go in the next one.
const MAX_BATCH: usize = 512;

/// The batching state of one connection (one per connection generation).
#[derive(Debug)]
pub(crate) struct Batcher {
    queue: Mutex<VecDeque<Job>>,
    flush_scheduled: AtomicBool,
    /// Commands queued or sent and not yet answered (or withdrawn).
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
}

#[derive(Debug)]
struct Job {
    cmd: Cmd,
    deadline: Instant,
    reply: oneshot::Sender<RedisResult<Value>>,
    _counted: InFlight,
}

/// One command counted in flight, for as long as this lives: held by the
/// job (not by its caller), so an abandoned command still counts until it
/// is withdrawn or answered.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
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
            queue: Mutex::new(VecDeque::new()),
            flush_scheduled: AtomicBool::new(false),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: max_in_flight.max(1),
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // A panic while the lock was held cannot leave the deque inconsistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commands waiting or in flight on the connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    /// Counts one more command in flight, unless the bound is reached.
    fn enter(&self) -> Result<(InFlight, usize), Overloaded> {
        let before = self.in_flight.fetch_add(1, SeqCst);
        let counted = InFlight(self.in_flight.clone());
        if before >= self.max_in_flight {
            return Err(Overloaded { queued: before });
        }
        Ok((counted, before))
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
        let (counted, others) = self.enter()?;
        if others == 0 {
            let mut conn = conn.clone();
            let reply = tokio::time::timeout_at(deadline, conn.send_packed_command(cmd)).await;
            drop(counted);
            return Ok(reply.unwrap_or_else(|_| Err(deadline_error())));
        }
        let (reply, answer) = oneshot::channel();
        self.queue().push_back(Job {
            cmd: cmd.clone(),
            deadline,
            reply,
            _counted: counted,
        });
        if !self.flush_scheduled.swap(true, SeqCst) {
            tokio::spawn(self.clone().flush(conn.clone()));
        }
        Ok(match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(dropped()),
            Err(_) => Err(deadline_error()),
        })
    }

    /// Writes what the queue holds, as pipelines of at most [`MAX_BATCH`],
    /// and hands out the replies.
    async fn flush(self: Arc<Self>, conn: MultiplexedConnection) {
        // Let every caller that is ready to run add its command first.
        tokio::task::yield_now().await;
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue();
                let now = Instant::now();
                let mut jobs = Vec::with_capacity(queue.len().min(MAX_BATCH));
                while jobs.len() < MAX_BATCH {
                    let Some(job) = queue.pop_front() else { break };
                    // Withdrawn: its caller has gone. Dropping it uncounts it.
                    if job.reply.is_closed() || job.deadline <= now {
                        continue;
                    }
                    jobs.push(job);
                }
                if jobs.is_empty() {
                    // Under the lock: a caller that queues after this sees
                    // the flag down and schedules a new flush.
                    self.flush_scheduled.store(false, SeqCst);
                    return;
                }
                jobs
            };
            send_batch(conn.clone(), jobs).await;
        }
    }
}

/// Sends one batch and hands each caller its reply. Waits only while one of
/// the batch's callers still waits.
async fn send_batch(mut conn: MultiplexedConnection, jobs: Vec<Job>) {
    let until = jobs
        .iter()
        .map(|j| j.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let n = jobs.len();
    let mut pipe = Pipeline::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    for job in jobs {
        pipe.add_command(job.cmd);
        replies.push((job.reply, job._counted));
    }
    let outcome = tokio::time::timeout_at(until, conn.send_packed_commands(&pipe, 0, n)).await;
    let result = match outcome {
        Ok(Ok(values)) if values.len() == n => Ok(values),
        Ok(Ok(_)) => Err(RedisError::from((
            redis::ErrorKind::Client,
            "a batch of commands got a different number of replies",
        ))),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(deadline_error()),
    };
    match result {
        Ok(values) => {
            for ((reply, _counted), value) in replies.into_iter().zip(values) {
                let _ = reply.send(Ok(value));
            }
        }
        Err(err) => {
            for (reply, _counted) in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

fn dropped() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the connection's batch was dropped",
    ))
}
