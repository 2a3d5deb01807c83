//! A reliable work queue: items are claimed for a visibility timeout and
//! deleted only when acknowledged; a claim not acknowledged in time makes
//! its item claimable again.
//!
//! # Key scheme
//!
//! A queue is named by the code (`changes`) inside a tenant:
//!
//! ```text
//! ws:{<tenant>}:queue:<name>:seq          string   last item id (INCR)
//! ws:{<tenant>}:queue:<name>:items        hash     item id -> payload (until acknowledged)
//! ws:{<tenant>}:queue:<name>:ready        list     ids of items waiting to be claimed, oldest first
//! ws:{<tenant>}:queue:<name>:claims       hash     claim id -> item id
//! ws:{<tenant>}:queue:<name>:deadlines    zset     claim id, scored by its deadline (ms, server clock)
//! ws:{<tenant>}:queue:<name>:deliveries   hash     item id -> times it was handed out
//! ```
//!
//! All six keys carry the tenant's hash tag, so each operation is one Lua
//! script on one slot (Redis Cluster included). With a retention set, every
//! write renews the expiry of all six together: a queue nobody touches for
//! the retention period disappears whole (that is how data is kept no
//! longer than allowed), and never in part.
//!
//! # Guarantees
//!
//! - **No loss**: an item is deleted only by an acknowledgement of its
//!   current claim. A consumer that dies, or is too slow, loses its claim at
//!   the deadline and the item goes back to the front of the queue.
//! - **Never two claimers at once**: a claim is created by one atomic
//!   script that pops the item from `ready`; the item reaches `ready` again
//!   only after its claim expired, and that also invalidates the old claim
//!   id. An acknowledgement that arrives after the deadline but before the
//!   item was handed out again is still accepted (nobody else has it).
//! - **Acknowledgements are per id**: an unknown, expired or repeated claim
//!   id is reported as unknown and does not affect the other ids of the call.
//! - Delivery is at least once: a consumer that processed an item but whose
//!   acknowledgement did not arrive in time sees it again; the
//!   [`Claimed::delivery`] count tells it so.
//!
//! [`LUA_FUNCTIONS`] lets another script of the same tenant enqueue in its
//! own atomic step (patient_sync stores hashes and queues changes together).

use std::sync::LazyLock;
use std::time::Duration;

use crate::redis::Script;

use super::keys::Tenant;
use super::token::random_token;
use crate::redis::RedisClient;
use crate::redis::error::RedisFailure;

/// Most items one call may enqueue, claim or acknowledge.
pub const MAX_BATCH: usize = 1_000;

/// Lua functions for scripts that enqueue as part of their own atomic step.
/// Prepend this text to the script; pass the six keys of
/// [`Queue::script_keys`] (in that order) as consecutive `KEYS` and build
/// the table `qk` from them.
///
/// - `queue_enqueue(qk, payload)` adds an item and returns its id.
/// - `queue_touch(qk, retention_ms)` renews the expiry of the queue's keys
///   (call it once at the end of a writing script; `0` means no expiry).
/// - `queue_now_ms()` is the server time in milliseconds.
pub const LUA_FUNCTIONS: &str = r"
local function queue_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function queue_enqueue(qk, payload)
  local id = tostring(redis.call('INCR', qk[1]))
  redis.call('HSET', qk[2], id, payload)
  redis.call('RPUSH', qk[3], id)
  return id
end
local function queue_touch(qk, retention_ms)
  if tonumber(retention_ms) > 0 then
    for i = 1, 6 do redis.call('PEXPIRE', qk[i], retention_ms) end
  end
end
local function queue_redeliver(qk, now)
  local expired = redis.call('ZRANGEBYSCORE', qk[5], '-inf', now)
  for i = #expired, 1, -1 do
    local claim = expired[i]
    local item = redis.call('HGET', qk[4], claim)
    redis.call('HDEL', qk[4], claim)
    redis.call('ZREM', qk[5], claim)
    if item and redis.call('HEXISTS', qk[2], item) == 1 then
      redis.call('LPUSH', qk[3], item)
    end
  end
end
";

/// ARGV: retention (ms), payloads...
const ENQUEUE_LUA: &str = r"
local qk = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = queue_enqueue(qk, ARGV[i]) end
queue_touch(qk, ARGV[1])
return ids
";

/// ARGV: max, visibility (ms), retention (ms), claim-id suffix.
/// Returns {claim id, item id, payload, delivery} per claimed item.
const CLAIM_LUA: &str = r"
local qk = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local now = queue_now_ms()
queue_redeliver(qk, now)
local out = {}
local deadline = now + tonumber(ARGV[2])
for _ = 1, tonumber(ARGV[1]) do
  local item = redis.call('LPOP', qk[3])
  if not item then break end
  local payload = redis.call('HGET', qk[2], item)
  if payload then
    local n = redis.call('HINCRBY', qk[6], item, 1)
    local claim = item .. '.' .. n .. '.' .. ARGV[4]
    redis.call('HSET', qk[4], claim, item)
    redis.call('ZADD', qk[5], deadline, claim)
    out[#out + 1] = {claim, item, payload, n}
  end
end
if #out > 0 then queue_touch(qk, ARGV[3]) end
return out
";

/// ARGV: retention (ms), claim ids... Returns 1 (acknowledged) or 0 (unknown) per id.
const ACK_LUA: &str = r"
local qk = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local out = {}
local any = false
for i = 2, #ARGV do
  local claim = ARGV[i]
  local item = redis.call('HGET', qk[4], claim)
  if item then
    redis.call('HDEL', qk[4], claim)
    redis.call('ZREM', qk[5], claim)
    redis.call('HDEL', qk[2], item)
    redis.call('HDEL', qk[6], item)
    out[#out + 1] = 1
    any = true
  else
    out[#out + 1] = 0
  end
end
if any then queue_touch(qk, ARGV[1]) end
return out
";

/// Read only. Returns {ready, expired claims, live claims}.
const STATS_LUA: &str = r"
local qk = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local now = queue_now_ms()
return {
  redis.call('LLEN', qk[3]),
  redis.call('ZCOUNT', qk[5], '-inf', now),
  redis.call('ZCOUNT', qk[5], '(' .. now, '+inf'),
}
";

fn script(body: &str) -> Script {
    Script::new(&format!("{LUA_FUNCTIONS}\n{body}"))
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| script(ENQUEUE_LUA));
static CLAIM: LazyLock<Script> = LazyLock::new(|| script(CLAIM_LUA));
static ACK: LazyLock<Script> = LazyLock::new(|| script(ACK_LUA));
static STATS: LazyLock<Script> =
    LazyLock::new(|| Script::read_only(&format!("{LUA_FUNCTIONS}\n{STATS_LUA}")));

/// Why a queue operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Redis failed. The operation is atomic: it happened whole or not at all
    /// (when the reply was lost, the caller cannot tell which).
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// A batch of 0 (for a claim) or more than [`MAX_BATCH`] items or ids.
    #[error("a batch must have 1 to {MAX_BATCH} entries")]
    InvalidBatch,
}

impl QueueError {
    /// Whether Redis is unusable right now (answer `503`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(f) if f.is_unavailable())
    }
}

/// Timing of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a claim lasts before its item may be claimed again.
    pub visibility_timeout: Duration,
    /// How long the queue's data lives after its last write; `None` keeps it.
    pub retention: Option<Duration>,
}

impl QueueSettings {
    /// Claims last `visibility_timeout`; no retention limit.
    pub fn new(visibility_timeout: Duration) -> Self {
        Self {
            visibility_timeout,
            retention: None,
        }
    }

    /// The queue's keys expire `retention` after its last write.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// An item handed to a claimer.
#[derive(Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The id to acknowledge; valid until the claim's deadline.
    pub claim_id: String,
    /// The item's id (stable across deliveries, increasing with enqueue order).
    pub item_id: String,
    /// The payload as enqueued.
    pub payload: Vec<u8>,
    /// 1 on the first delivery, 2 when redelivered once, ...
    pub delivery: u32,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload may be sensitive (patient changes): never in Debug output.
        f.debug_struct("Claimed")
            .field("claim_id", &self.claim_id)
            .field("item_id", &self.item_id)
            .field("payload_bytes", &self.payload.len())
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// The outcome of an acknowledgement, id by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckReport {
    /// Claim ids whose items are now deleted.
    pub acked: Vec<String>,
    /// Claim ids that are unknown, expired and handed out again, or repeated.
    pub unknown: Vec<String>,
}

/// Counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Items waiting to be claimed (including those whose claim expired).
    pub pending: u64,
    /// Items under a live claim.
    pub claimed: u64,
}

/// One named queue of one tenant. Cheap to build per request.
#[derive(Debug, Clone)]
pub struct Queue {
    client: RedisClient,
    keys: [String; 6],
    settings: QueueSettings,
}

impl Queue {
    /// The queue `name` of `tenant`. `name` is chosen by the code (lower-case
    /// letters and `_`), never by a caller.
    pub fn new(client: RedisClient, tenant: &Tenant, name: &str, settings: QueueSettings) -> Self {
        let key = |part: &str| tenant.key(&format!("queue:{name}:{part}"));
        Self {
            client,
            keys: [
                key("seq"),
                key("items"),
                key("ready"),
                key("claims"),
                key("deadlines"),
                key("deliveries"),
            ],
            settings,
        }
    }

    /// The six keys, in the order [`LUA_FUNCTIONS`] expects.
    pub fn script_keys(&self) -> &[String; 6] {
        &self.keys
    }

    /// The settings.
    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    /// The retention in milliseconds as the scripts take it (`0`: none).
    pub fn retention_ms(&self) -> u64 {
        self.settings.retention.map_or(0, millis)
    }

    /// Adds `payloads` at the end of the queue, all or none; returns their ids.
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for more than [`MAX_BATCH`] payloads;
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn enqueue<P: AsRef<[u8]>>(&self, payloads: &[P]) -> Result<Vec<String>, QueueError> {
        if payloads.len() > MAX_BATCH {
            return Err(QueueError::InvalidBatch);
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation.key(&self.keys[..]).arg(self.retention_ms());
        for payload in payloads {
            invocation.arg(payload.as_ref());
        }
        Ok(self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?)
    }

    /// Claims up to `max` items for the visibility timeout, oldest first,
    /// after making the items of expired claims claimable again.
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] unless `1 <= max <= MAX_BATCH`;
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn claim(&self, max: usize) -> Result<Vec<Claimed>, QueueError> {
        if max == 0 || max > MAX_BATCH {
            return Err(QueueError::InvalidBatch);
        }
        let mut invocation = CLAIM.prepare_invoke();
        let mut suffix = random_token();
        suffix.truncate(16);
        invocation
            .key(&self.keys[..])
            .arg(max)
            .arg(millis(self.settings.visibility_timeout).max(1))
            .arg(self.retention_ms())
            .arg(suffix);
        let rows: Vec<(String, String, Vec<u8>, u32)> = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(claim_id, item_id, payload, delivery)| Claimed {
                claim_id,
                item_id,
                payload,
                delivery,
            })
            .collect())
    }

    /// Acknowledges claims: their items are deleted. Unknown ids are
    /// reported, never an error.
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for more than [`MAX_BATCH`] ids;
    /// [`QueueError::Redis`] when Redis fails (then nothing was acknowledged,
    /// unless only the reply was lost).
    pub async fn ack<S: AsRef<str>>(&self, claim_ids: &[S]) -> Result<AckReport, QueueError> {
        if claim_ids.len() > MAX_BATCH {
            return Err(QueueError::InvalidBatch);
        }
        if claim_ids.is_empty() {
            return Ok(AckReport::default());
        }
        let mut invocation = ACK.prepare_invoke();
        invocation.key(&self.keys[..]).arg(self.retention_ms());
        for id in claim_ids {
            invocation.arg(id.as_ref());
        }
        let flags: Vec<u8> = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let mut report = AckReport::default();
        for (id, flag) in claim_ids.iter().zip(flags) {
            let id = id.as_ref().to_owned();
            if flag == 1 {
                report.acked.push(id);
            } else {
                report.unknown.push(id);
            }
        }
        Ok(report)
    }

    /// Pending and claimed counts. Reads only.
    ///
    /// # Errors
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut invocation = STATS.prepare_invoke();
        invocation.key(&self.keys[..]);
        let (ready, expired, live): (u64, u64, u64) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(QueueStats {
            pending: ready + expired,
            claimed: live,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
