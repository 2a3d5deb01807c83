//! A reliable work queue: items are claimed for a visibility timeout and
//! deleted only when acknowledged; a claim not acknowledged in time makes
//! its item claimable again, and an item that keeps failing is moved to a
//! dead-letter list instead of being handed out forever.
//!
//! # Key scheme
//!
//! A queue is named by the code (`changes`) inside a tenant:
//!
//! ```text
//! ws:{<tenant>}:queue:<name>:seq          string   last item id (INCR)
//! ws:{<tenant>}:queue:<name>:items        hash     item id -> payload (until acknowledged or dropped)
//! ws:{<tenant>}:queue:<name>:ready        list     ids of items waiting to be claimed, oldest first
//! ws:{<tenant>}:queue:<name>:claims       hash     claim id -> item id
//! ws:{<tenant>}:queue:<name>:deadlines    zset     claim id, scored by its deadline (ms, server clock)
//! ws:{<tenant>}:queue:<name>:deliveries   hash     item id -> times it was handed out
//! ws:{<tenant>}:queue:<name>:delayed      zset     item id, scored by when it may be claimed again (a nack's delay)
//! ws:{<tenant>}:queue:<name>:enqueued     zset     item id, scored by when it was enqueued (the oldest item's age)
//! ws:{<tenant>}:queue:<name>:errors       hash     item id -> the last error (a nack's reason, or an expired claim)
//! ws:{<tenant>}:queue:<name>:dead         zset     dead-lettered item id, scored by when it was dead-lettered
//! ```
//!
//! All ten keys carry the tenant's hash tag, so each operation is one Lua
//! script on one slot (Redis Cluster included). With a retention set, every
//! write renews the expiry of all ten together (dead letters included): a
//! queue nobody touches for the retention period disappears whole (that is
//! how data is kept no longer than allowed), and never in part.
//!
//! # Guarantees
//!
//! - **No loss**: an item is deleted only by an acknowledgement of its
//!   current claim, or by dropping it from the dead letters
//!   ([`Queue::drop_dead_letters`]). A consumer that dies, or is too slow,
//!   loses its claim at the deadline and the item goes to the **back** of
//!   the queue: an item whose consumer keeps crashing never blocks the
//!   items behind it.
//! - **Never two claimers at once**: a claim is created by one atomic
//!   script that pops the item from `ready`; the item reaches `ready` again
//!   only after its claim expired or was released ([`Queue::nack`]), and
//!   that also invalidates the old claim id. An acknowledgement that arrives
//!   after the deadline but before the expiry was processed (by the next
//!   claim) is still accepted (nobody else has it).
//! - **Acknowledgements are per id**: an unknown, expired or repeated claim
//!   id is reported as unknown and does not affect the other ids of the call.
//!   The same holds for [`Queue::nack`] and [`Queue::extend`].
//! - Delivery is at least once: a consumer that processed an item but whose
//!   acknowledgement did not arrive in time sees it again; the
//!   [`Claimed::delivery`] count tells it so. Order is oldest first, except
//!   that a redelivered item comes after the items already waiting.
//!
//! # Dead letters
//!
//! An item is handed out at most [`QueueSettings::max_deliveries`] times
//! (default [`DEFAULT_MAX_DELIVERIES`]). When its last delivery fails (the
//! consumer [nacks](Queue::nack) it, or its claim expires) it is not
//! queued again: it moves to the dead letters with its payload, its
//! delivery count, its last error (the nack's reason, or that the claim
//! expired) and the time it was dead-lettered. An expired claim is noticed
//! by the next [`Queue::claim`], which also dead-letters an item whose
//! count already reached a lowered maximum. Dead letters are never handed
//! out; [`Queue::dead_letters`] lists them, [`Queue::replay_dead_letters`]
//! puts them at the back of the queue with their delivery count reset, and
//! [`Queue::drop_dead_letters`] deletes them. They expire with the queue.
//!
//! A consumer that needs more time [extends](Queue::extend) its claims (a
//! heartbeat); one that cannot process an item [nacks](Queue::nack) it,
//! with a reason (at most [`MAX_REASON_BYTES`]) and an optional delay
//! before it may be claimed again (at most [`MAX_DELAY`]).
//!
//! # Bounded work
//!
//! Every call takes at most [`MAX_BATCH`] ids or items; a claim processes
//! at most [`MAX_BATCH`] expired claims and due delayed items before it
//! claims, and skips at most [`MAX_BATCH`] dead-lettered or deleted items;
//! a listing returns at most [`MAX_DEAD_LETTER_PAGE`] dead letters.
//!
//! # Metrics
//!
//! [`Queue::claim`] and [`Queue::stats`] report the queue's backlog, the age
//! of its oldest item and its dead-letter count to the client's metrics
//! line (the largest of each over the queues read in the interval:
//! [`crate::contract::QUEUE_BACKLOG`] and the two after it).
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
use crate::redis::metrics::QueueObservation;

/// Most items one call may enqueue, claim, acknowledge, nack, extend,
/// replay or drop.
pub const MAX_BATCH: usize = 1_000;

/// Most dead letters one listing returns (each carries its payload).
pub const MAX_DEAD_LETTER_PAGE: usize = 100;

/// Deliveries of an item before it is dead-lettered, by default.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;

/// The largest [`QueueSettings::max_deliveries`].
pub const MAX_MAX_DELIVERIES: u32 = 1_000;

/// The longest a nack may delay an item, and the longest a claim may be
/// extended by in one call (12 hours).
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// The longest nack reason, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

/// How many keys a queue has (the order of [`Queue::script_keys`]).
pub const KEY_COUNT: usize = 10;

const EXPIRED_CLAIM_ERROR: &str =
    "claim expired: neither acknowledged nor released within the visibility timeout";

/// Lua functions for scripts that enqueue as part of their own atomic step.
/// Prepend this text to the script; pass the [`KEY_COUNT`] keys of
/// [`Queue::script_keys`] (in that order) as consecutive `KEYS` and build
/// the table `qk` from them.
///
/// - `queue_enqueue(qk, payload)` adds an item and returns its id.
/// - `queue_touch(qk, retention_ms)` renews the expiry of the queue's keys
///   (call it once at the end of a writing script; `0` means no expiry).
/// - `queue_now_ms()` is the server time in milliseconds (read once per script).
pub const LUA_FUNCTIONS: &str = r"
local queue_clock
local function queue_now_ms()
  if not queue_clock then
    local t = redis.call('TIME')
    queue_clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return queue_clock
end
local function queue_enqueue(qk, payload)
  local id = tostring(redis.call('INCR', qk[1]))
  redis.call('HSET', qk[2], id, payload)
  redis.call('RPUSH', qk[3], id)
  redis.call('ZADD', qk[8], queue_now_ms(), id)
  return id
end
local function queue_touch(qk, retention_ms)
  if tonumber(retention_ms) > 0 then
    for i = 1, #qk do redis.call('PEXPIRE', qk[i], retention_ms) end
  end
end
local function queue_deliveries(qk, item)
  return tonumber(redis.call('HGET', qk[6], item) or '0')
end
local function queue_dead_letter(qk, item, now)
  redis.call('ZADD', qk[10], now, item)
  redis.call('ZREM', qk[8], item)
  redis.call('ZREM', qk[7], item)
end
local function queue_gauges(qk, now)
  local oldest = redis.call('ZRANGE', qk[8], 0, 0, 'WITHSCORES')
  local age = -1
  if oldest[2] then age = math.max(0, now - tonumber(oldest[2])) end
  return {redis.call('LLEN', qk[3]) + redis.call('ZCARD', qk[7]), age, redis.call('ZCARD', qk[10])}
end
";

/// Expired claims and due delayed items, at most `limit` of each; returns
/// how many things changed. An expired claim's item goes to the back of the
/// queue, or to the dead letters after its last delivery.
const REDELIVER_LUA: &str = r"
local function queue_redeliver(qk, now, max_deliveries, limit, expired_error)
  local changed = 0
  local expired = redis.call('ZRANGEBYSCORE', qk[5], '-inf', now, 'LIMIT', 0, limit)
  for _, claim in ipairs(expired) do
    local item = redis.call('HGET', qk[4], claim)
    redis.call('HDEL', qk[4], claim)
    redis.call('ZREM', qk[5], claim)
    changed = changed + 1
    if item and redis.call('HEXISTS', qk[2], item) == 1 then
      redis.call('HSET', qk[9], item, expired_error)
      if queue_deliveries(qk, item) >= max_deliveries then
        queue_dead_letter(qk, item, now)
      else
        redis.call('RPUSH', qk[3], item)
      end
    end
  end
  local due = redis.call('ZRANGEBYSCORE', qk[7], '-inf', now, 'LIMIT', 0, limit)
  for _, item in ipairs(due) do
    redis.call('ZREM', qk[7], item)
    changed = changed + 1
    if redis.call('HEXISTS', qk[2], item) == 1 then
      redis.call('RPUSH', qk[3], item)
    end
  end
  return changed
end
";

const QK: &str = "local qk = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]}\n";

/// ARGV: retention (ms), payloads...
const ENQUEUE_LUA: &str = r"
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = queue_enqueue(qk, ARGV[i]) end
queue_touch(qk, ARGV[1])
return ids
";

/// ARGV: max, visibility (ms), retention (ms), claim-id suffix, max
/// deliveries, batch limit, expired-claim error.
/// Returns {{claim id, item id, payload, delivery}..., gauges}.
const CLAIM_LUA: &str = r"
local now = queue_now_ms()
local max_deliveries = tonumber(ARGV[5])
local limit = tonumber(ARGV[6])
local wrote = queue_redeliver(qk, now, max_deliveries, limit, ARGV[7]) > 0
local out = {}
local deadline = now + tonumber(ARGV[2])
local want = tonumber(ARGV[1])
local skipped = 0
while #out < want and skipped < limit do
  local item = redis.call('LPOP', qk[3])
  if not item then break end
  wrote = true
  local payload = redis.call('HGET', qk[2], item)
  if not payload or redis.call('ZSCORE', qk[10], item) then
    skipped = skipped + 1
  elseif queue_deliveries(qk, item) >= max_deliveries then
    queue_dead_letter(qk, item, now)
    skipped = skipped + 1
  else
    local n = redis.call('HINCRBY', qk[6], item, 1)
    local claim = item .. '.' .. n .. '.' .. ARGV[4]
    redis.call('HSET', qk[4], claim, item)
    redis.call('ZADD', qk[5], deadline, claim)
    out[#out + 1] = {claim, item, payload, n}
  end
end
if wrote then queue_touch(qk, ARGV[3]) end
return {out, queue_gauges(qk, now)}
";

/// ARGV: retention (ms), claim ids... Returns 1 (acknowledged) or 0 (unknown) per id.
const ACK_LUA: &str = r"
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
    redis.call('HDEL', qk[9], item)
    redis.call('ZREM', qk[8], item)
    out[#out + 1] = 1
    any = true
  else
    out[#out + 1] = 0
  end
end
if any then queue_touch(qk, ARGV[1]) end
return out
";

/// ARGV: retention (ms), delay (ms), reason ('' for none), max deliveries,
/// claim ids... Returns per id 1 (queued again), 2 (dead-lettered) or 0 (unknown).
const NACK_LUA: &str = r"
local now = queue_now_ms()
local delay = tonumber(ARGV[2])
local reason = ARGV[3]
local max_deliveries = tonumber(ARGV[4])
local out = {}
local any = false
for i = 5, #ARGV do
  local claim = ARGV[i]
  local item = redis.call('HGET', qk[4], claim)
  local outcome = 0
  if item then
    redis.call('HDEL', qk[4], claim)
    redis.call('ZREM', qk[5], claim)
    any = true
    if redis.call('HEXISTS', qk[2], item) == 1 then
      if reason ~= '' then redis.call('HSET', qk[9], item, reason) end
      if queue_deliveries(qk, item) >= max_deliveries then
        queue_dead_letter(qk, item, now)
        outcome = 2
      elseif delay > 0 then
        redis.call('ZADD', qk[7], now + delay, item)
        outcome = 1
      else
        redis.call('RPUSH', qk[3], item)
        outcome = 1
      end
    end
  end
  out[#out + 1] = outcome
end
if any then queue_touch(qk, ARGV[1]) end
return out
";

/// ARGV: retention (ms), visibility (ms), claim ids...
/// Returns {1 (extended) or 0 (unknown) per id..., new deadline}.
const EXTEND_LUA: &str = r"
local deadline = queue_now_ms() + tonumber(ARGV[2])
local out = {}
local any = false
for i = 3, #ARGV do
  if redis.call('HEXISTS', qk[4], ARGV[i]) == 1 then
    redis.call('ZADD', qk[5], deadline, ARGV[i])
    out[#out + 1] = 1
    any = true
  else
    out[#out + 1] = 0
  end
end
if any then queue_touch(qk, ARGV[1]) end
return {out, deadline}
";

/// Read only. ARGV: offset, limit.
/// Returns {total, {item id, payload, deliveries, last error, dead-lettered at}...}.
const DEAD_LIST_LUA: &str = r"
local first = tonumber(ARGV[1])
local ids = redis.call('ZRANGE', qk[10], first, first + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local item = ids[i]
  out[#out + 1] = {
    item,
    redis.call('HGET', qk[2], item) or '',
    queue_deliveries(qk, item),
    redis.call('HGET', qk[9], item) or '',
    tonumber(ids[i + 1]),
  }
end
return {redis.call('ZCARD', qk[10]), out}
";

/// ARGV: retention (ms), item ids... Returns 1 (replayed) or 0 (not a dead letter) per id.
const DEAD_REPLAY_LUA: &str = r"
local now = queue_now_ms()
local out = {}
local any = false
for i = 2, #ARGV do
  local item = ARGV[i]
  if redis.call('ZREM', qk[10], item) == 1 then
    any = true
    redis.call('HDEL', qk[6], item)
    redis.call('HDEL', qk[9], item)
    if redis.call('HEXISTS', qk[2], item) == 1 then
      redis.call('ZADD', qk[8], now, item)
      redis.call('RPUSH', qk[3], item)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  else
    out[#out + 1] = 0
  end
end
if any then queue_touch(qk, ARGV[1]) end
return out
";

/// ARGV: retention (ms), item ids... Returns 1 (dropped) or 0 (not a dead letter) per id.
const DEAD_DROP_LUA: &str = r"
local out = {}
local any = false
for i = 2, #ARGV do
  local item = ARGV[i]
  if redis.call('ZREM', qk[10], item) == 1 then
    any = true
    redis.call('HDEL', qk[2], item)
    redis.call('HDEL', qk[6], item)
    redis.call('HDEL', qk[9], item)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if any then queue_touch(qk, ARGV[1]) end
return out
";

/// Read only. Returns {ready, expired claims, live claims, due delayed,
/// delayed, dead, gauges}.
const STATS_LUA: &str = r"
local now = queue_now_ms()
return {
  redis.call('LLEN', qk[3]),
  redis.call('ZCOUNT', qk[5], '-inf', now),
  redis.call('ZCOUNT', qk[5], '(' .. now, '+inf'),
  redis.call('ZCOUNT', qk[7], '-inf', now),
  redis.call('ZCARD', qk[7]),
  redis.call('ZCARD', qk[10]),
  queue_gauges(qk, now),
}
";

fn body(script: &str) -> String {
    format!("{LUA_FUNCTIONS}\n{REDELIVER_LUA}\n{QK}{script}")
}

fn script(text: &str) -> Script {
    Script::new(&body(text))
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| script(ENQUEUE_LUA));
static CLAIM: LazyLock<Script> = LazyLock::new(|| script(CLAIM_LUA));
static ACK: LazyLock<Script> = LazyLock::new(|| script(ACK_LUA));
static NACK: LazyLock<Script> = LazyLock::new(|| script(NACK_LUA));
static EXTEND: LazyLock<Script> = LazyLock::new(|| script(EXTEND_LUA));
static DEAD_REPLAY: LazyLock<Script> = LazyLock::new(|| script(DEAD_REPLAY_LUA));
static DEAD_DROP: LazyLock<Script> = LazyLock::new(|| script(DEAD_DROP_LUA));
static DEAD_LIST: LazyLock<Script> = LazyLock::new(|| Script::read_only(&body(DEAD_LIST_LUA)));
static STATS: LazyLock<Script> = LazyLock::new(|| Script::read_only(&body(STATS_LUA)));

/// Why a queue operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Redis failed. The operation is atomic: it happened whole or not at all
    /// (when the reply was lost, the caller cannot tell which).
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// A batch of 0 (for a claim or a listing) or more than [`MAX_BATCH`]
    /// items or ids (more than [`MAX_DEAD_LETTER_PAGE`] for a listing).
    #[error(
        "a batch must have 1 to {MAX_BATCH} entries (a dead-letter page 1 to {MAX_DEAD_LETTER_PAGE})"
    )]
    InvalidBatch,
    /// An argument outside its bounds: a delay or extension over
    /// [`MAX_DELAY`] (or of zero for an extension), a reason over
    /// [`MAX_REASON_BYTES`], an item id that is not a queue's (digits).
    /// The message says which; it never quotes the value.
    #[error("{0}")]
    Invalid(&'static str),
}

impl QueueError {
    /// Whether Redis is unusable right now (answer `503`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Redis(f) if f.is_unavailable())
    }
}

/// Timing and limits of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a claim lasts before its item may be claimed again.
    pub visibility_timeout: Duration,
    /// How long the queue's data lives after its last write; `None` keeps it.
    pub retention: Option<Duration>,
    /// How many times an item is handed out before a failed delivery moves
    /// it to the dead letters (1 to [`MAX_MAX_DELIVERIES`]).
    pub max_deliveries: u32,
}

impl QueueSettings {
    /// Claims last `visibility_timeout`; no retention limit;
    /// [`DEFAULT_MAX_DELIVERIES`].
    pub fn new(visibility_timeout: Duration) -> Self {
        Self {
            visibility_timeout,
            retention: None,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        }
    }

    /// The queue's keys expire `retention` after its last write.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Items are dead-lettered after `max` failed deliveries (clamped to 1
    /// to [`MAX_MAX_DELIVERIES`]).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max.clamp(1, MAX_MAX_DELIVERIES);
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

/// The outcome of a nack, id by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NackReport {
    /// Claim ids whose items are queued again (after the delay, if any).
    pub requeued: Vec<String>,
    /// Claim ids whose items had their last delivery and are now dead letters.
    pub dead_lettered: Vec<String>,
    /// Claim ids that are unknown, expired and handed out again, or repeated.
    pub unknown: Vec<String>,
}

/// The outcome of an extension, id by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendReport {
    /// Claim ids whose deadline is now [`Self::deadline_ms`].
    pub extended: Vec<String>,
    /// Claim ids that are unknown, expired and handed out again, or settled.
    pub unknown: Vec<String>,
    /// The new deadline, Unix milliseconds on the Redis server's clock.
    pub deadline_ms: u64,
}

/// The outcome of a dead-letter replay or drop, id by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterReport {
    /// Item ids replayed (back in the queue) or dropped (deleted).
    pub done: Vec<String>,
    /// Item ids that are not dead letters of this queue.
    pub unknown: Vec<String>,
}

/// An item that had its last delivery.
#[derive(Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The item's id.
    pub item_id: String,
    /// The payload as enqueued.
    pub payload: Vec<u8>,
    /// How many times it was handed out.
    pub deliveries: u32,
    /// The last error: a nack's reason, or that a claim expired.
    pub last_error: Option<String>,
    /// When it was dead-lettered, Unix milliseconds (Redis server clock).
    pub dead_lettered_at_ms: u64,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the payload nor the error (a consumer may have quoted
        // the payload in it) in Debug output.
        f.debug_struct("DeadLetter")
            .field("item_id", &self.item_id)
            .field("payload_bytes", &self.payload.len())
            .field("deliveries", &self.deliveries)
            .field("has_error", &self.last_error.is_some())
            .field("dead_lettered_at_ms", &self.dead_lettered_at_ms)
            .finish()
    }
}

/// One page of dead letters, oldest dead-lettered first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// Dead letters in the queue, all pages together.
    pub total: u64,
    /// This page.
    pub items: Vec<DeadLetter>,
}

/// Counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Items that may be claimed now (including those whose claim expired
    /// and delayed ones whose delay is over).
    pub pending: u64,
    /// Items waiting for a nack's delay to pass.
    pub delayed: u64,
    /// Items under a live claim.
    pub claimed: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Age of the oldest item neither acknowledged nor dead-lettered, in
    /// milliseconds (Redis server clock); `None` when there is none.
    pub oldest_age_ms: Option<u64>,
}

/// One named queue of one tenant. Cheap to build per request.
#[derive(Debug, Clone)]
pub struct Queue {
    client: RedisClient,
    keys: [String; KEY_COUNT],
    settings: QueueSettings,
}

/// The gauges a script reports: backlog, oldest age (ms, -1: none), dead letters.
type Gauges = (u64, i64, u64);
/// A claimed item as the claim script returns it: claim id, item id, payload, delivery.
type ClaimRow = (String, String, Vec<u8>, u32);
/// A dead letter as the listing returns it: item id, payload, deliveries,
/// last error ('' for none), dead-lettered at (ms).
type DeadRow = (String, Vec<u8>, u32, String, u64);
/// The stats script's reply: ready, expired claims, live claims, due
/// delayed, delayed, dead, gauges.
type StatsReply = (u64, u64, u64, u64, u64, u64, Gauges);

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
                key("delayed"),
                key("enqueued"),
                key("errors"),
                key("dead"),
            ],
            settings,
        }
    }

    /// The [`KEY_COUNT`] keys, in the order [`LUA_FUNCTIONS`] expects.
    pub fn script_keys(&self) -> &[String; KEY_COUNT] {
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

    fn max_deliveries(&self) -> u32 {
        self.settings.max_deliveries.clamp(1, MAX_MAX_DELIVERIES)
    }

    fn observe(&self, (backlog, age, dead): Gauges) {
        self.client.record_queue(QueueObservation {
            backlog,
            oldest_age_ms: u64::try_from(age).ok(),
            dead_letters: dead,
        });
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
    /// after processing expired claims (their items go to the back of the
    /// queue, or to the dead letters after their last delivery) and due
    /// delayed items. Reports the queue's gauges to the metrics line.
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
            .arg(suffix)
            .arg(self.max_deliveries())
            .arg(MAX_BATCH)
            .arg(EXPIRED_CLAIM_ERROR);
        let (rows, gauges): (Vec<ClaimRow>, Gauges) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        self.observe(gauges);
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
        let flags = self.per_id(&ACK, claim_ids, &[]).await?;
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

    /// Releases claims without acknowledging them: the consumer could not
    /// process their items. `reason` (at most [`MAX_REASON_BYTES`]) becomes
    /// each item's last error. An item that had its last delivery moves to
    /// the dead letters; the others go to the back of the queue, claimable
    /// again after `delay` (at most [`MAX_DELAY`]; zero: at once).
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for more than [`MAX_BATCH`] ids;
    /// [`QueueError::Invalid`] for a delay or reason over its bound;
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn nack<S: AsRef<str>>(
        &self,
        claim_ids: &[S],
        delay: Duration,
        reason: Option<&str>,
    ) -> Result<NackReport, QueueError> {
        if delay > MAX_DELAY {
            return Err(QueueError::Invalid(
                "a nack's delay must be at most 12 hours",
            ));
        }
        let reason = reason.unwrap_or("");
        if reason.len() > MAX_REASON_BYTES {
            return Err(QueueError::Invalid(
                "a nack's error reason must be at most 512 bytes",
            ));
        }
        let delay_ms = millis(delay).to_string();
        let max = self.max_deliveries().to_string();
        let flags = self
            .per_id(&NACK, claim_ids, &[&delay_ms, reason, &max])
            .await?;
        let mut report = NackReport::default();
        for (id, flag) in claim_ids.iter().zip(flags) {
            let id = id.as_ref().to_owned();
            match flag {
                1 => report.requeued.push(id),
                2 => report.dead_lettered.push(id),
                _ => report.unknown.push(id),
            }
        }
        Ok(report)
    }

    /// Extends claims (a heartbeat): each known claim's deadline becomes
    /// now plus `visibility` (more than zero, at most [`MAX_DELAY`]), so its
    /// item is not handed out again meanwhile. A claim whose deadline passed
    /// can still be extended until the next claim processes the expiry.
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for more than [`MAX_BATCH`] ids;
    /// [`QueueError::Invalid`] for a `visibility` of zero or over [`MAX_DELAY`];
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn extend<S: AsRef<str>>(
        &self,
        claim_ids: &[S],
        visibility: Duration,
    ) -> Result<ExtendReport, QueueError> {
        if visibility.is_zero() || visibility > MAX_DELAY {
            return Err(QueueError::Invalid(
                "a claim's visibility must be extended by 1 ms to 12 hours",
            ));
        }
        if claim_ids.len() > MAX_BATCH {
            return Err(QueueError::InvalidBatch);
        }
        if claim_ids.is_empty() {
            return Ok(ExtendReport::default());
        }
        let mut invocation = EXTEND.prepare_invoke();
        invocation
            .key(&self.keys[..])
            .arg(self.retention_ms())
            .arg(millis(visibility).max(1));
        for id in claim_ids {
            invocation.arg(id.as_ref());
        }
        let (flags, deadline_ms): (Vec<u8>, u64) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let mut report = ExtendReport {
            deadline_ms,
            ..ExtendReport::default()
        };
        for (id, flag) in claim_ids.iter().zip(flags) {
            let id = id.as_ref().to_owned();
            if flag == 1 {
                report.extended.push(id);
            } else {
                report.unknown.push(id);
            }
        }
        Ok(report)
    }

    /// Up to `limit` dead letters (1 to [`MAX_DEAD_LETTER_PAGE`]) from
    /// position `offset`, oldest dead-lettered first, and how many there are.
    /// Reads only.
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for a `limit` out of bounds;
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn dead_letters(
        &self,
        offset: u64,
        limit: usize,
    ) -> Result<DeadLetterPage, QueueError> {
        if limit == 0 || limit > MAX_DEAD_LETTER_PAGE {
            return Err(QueueError::InvalidBatch);
        }
        let mut invocation = DEAD_LIST.prepare_invoke();
        invocation
            .key(&self.keys[..])
            .arg(offset.min(i64::MAX as u64 / 2))
            .arg(limit);
        let (total, rows): (u64, Vec<DeadRow>) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(DeadLetterPage {
            total,
            items: rows
                .into_iter()
                .map(
                    |(item_id, payload, deliveries, error, dead_lettered_at_ms)| DeadLetter {
                        item_id,
                        payload,
                        deliveries,
                        last_error: (!error.is_empty()).then_some(error),
                        dead_lettered_at_ms,
                    },
                )
                .collect(),
        })
    }

    /// Puts dead letters back at the end of the queue, their delivery
    /// count and last error reset (and their age: they count as new).
    ///
    /// # Errors
    /// [`QueueError::InvalidBatch`] for more than [`MAX_BATCH`] ids;
    /// [`QueueError::Invalid`] for an id that is not a queue's;
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn replay_dead_letters<S: AsRef<str>>(
        &self,
        item_ids: &[S],
    ) -> Result<DeadLetterReport, QueueError> {
        self.dead_letter_op(&DEAD_REPLAY, item_ids).await
    }

    /// Deletes dead letters, payload included.
    ///
    /// # Errors
    /// As [`Self::replay_dead_letters`].
    pub async fn drop_dead_letters<S: AsRef<str>>(
        &self,
        item_ids: &[S],
    ) -> Result<DeadLetterReport, QueueError> {
        self.dead_letter_op(&DEAD_DROP, item_ids).await
    }

    /// Whether `id` can be an item id: 1 to 20 digits.
    pub fn is_item_id(id: &str) -> bool {
        (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
    }

    async fn dead_letter_op<S: AsRef<str>>(
        &self,
        script: &Script,
        item_ids: &[S],
    ) -> Result<DeadLetterReport, QueueError> {
        if item_ids.iter().any(|id| !Self::is_item_id(id.as_ref())) {
            return Err(QueueError::Invalid(
                "an item id is 1 to 20 digits, as a listing gives it",
            ));
        }
        let flags = self.per_id(script, item_ids, &[]).await?;
        let mut report = DeadLetterReport::default();
        for (id, flag) in item_ids.iter().zip(flags) {
            let id = id.as_ref().to_owned();
            if flag == 1 {
                report.done.push(id);
            } else {
                report.unknown.push(id);
            }
        }
        Ok(report)
    }

    /// Runs a script of ARGV (retention, `extra`..., ids...) answering one
    /// flag per id.
    async fn per_id<S: AsRef<str>>(
        &self,
        script: &Script,
        ids: &[S],
        extra: &[&str],
    ) -> Result<Vec<u8>, QueueError> {
        if ids.len() > MAX_BATCH {
            return Err(QueueError::InvalidBatch);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.keys[..]).arg(self.retention_ms());
        for arg in extra {
            invocation.arg(*arg);
        }
        for id in ids {
            invocation.arg(id.as_ref());
        }
        Ok(self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?)
    }

    /// Counts by state and the oldest item's age. Reads only; reports the
    /// queue's gauges to the metrics line.
    ///
    /// # Errors
    /// [`QueueError::Redis`] when Redis fails.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut invocation = STATS.prepare_invoke();
        invocation.key(&self.keys[..]);
        let (ready, expired, live, due, delayed, dead, gauges): StatsReply = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let (_, age, _) = gauges;
        self.observe((ready + expired + delayed, age, dead));
        Ok(QueueStats {
            pending: ready + expired + due,
            delayed: delayed.saturating_sub(due),
            claimed: live,
            dead_letters: dead,
            oldest_age_ms: u64::try_from(age).ok(),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
