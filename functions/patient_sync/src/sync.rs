//! The rules of a patient sync, without HTTP: validating a batch, change
//! detection by canonical content hash, and the one atomic script that
//! stores the new hashes, queues the changes and records the idempotent
//! response together.
//!
//! # Key layout (practice `p`; all keys share the hash tag `{p}`)
//!
//! ```text
//! ws:{p}:patients                   hash    patient id -> content hash of its last record
//! ws:{p}:sync_state                 hash    last_sync_ms (server clock)
//! ws:{p}:queue:changes:*            the practice's change queue (shared::blocks::queue)
//! ws:{p}:ratelimit:sync             the sync rate limit (shared::blocks::ratelimit)
//! ws:{p}:lock:sync                  the full-sync lock (shared::blocks::lock)
//! ws:{p}:idempotency:sync:<key>     stored responses (shared::blocks::idempotency)
//! ```
//!
//! Patient ids are hash fields, never parts of a key name, so no patient id
//! can reach another key; the practice id is validated by
//! [`shared::blocks::keys::Tenant`]. Hashes, sync state and the queue expire
//! [`SyncSettings::record_ttl`] after the practice's last write.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::blocks::canonical::{canonical_json, content_hash, sha256_hex};
use shared::blocks::idempotency::{self, Pending};
use shared::blocks::keys::{MAX_ID_LEN, Tenant};
use shared::blocks::queue::{self, Queue, QueueSettings, QueueStats};
use shared::redis::Script;
use shared::{RedisClient, RedisFailure};

/// Most patients in one request.
pub const MAX_PATIENTS: usize = 1_000;

/// The name of the practice's change queue.
pub const QUEUE_NAME: &str = "changes";

/// The sync script: compare, store, enqueue and complete in one step.
///
/// KEYS: patients, sync_state, the idempotency record (or any key of the
/// practice when there is none), then the queue's keys
/// ([`queue::KEY_COUNT`], in [`Queue::script_keys`] order).
/// ARGV: record ttl (ms, 0 = none), idempotency token ('' = none),
/// idempotency ttl (ms), then (patient id, hash, change payload) per patient.
const SYNC_LUA: &str = r#"
local qk = {}
for i = 4, #KEYS do qk[#qk + 1] = KEYS[i] end
local idem_key, token = KEYS[3], ARGV[2]
if token ~= '' and not idempotency_owned(idem_key, token) then
  return {'lost', ''}
end
local changed, unchanged = 0, 0
for i = 4, #ARGV, 3 do
  local id, hash = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[1], id) == hash then
    unchanged = unchanged + 1
  else
    redis.call('HSET', KEYS[1], id, hash)
    queue_enqueue(qk, ARGV[i + 2])
    changed = changed + 1
  end
end
redis.call('HSET', KEYS[2], 'last_sync_ms', queue_now_ms())
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
queue_touch(qk, ttl)
local body = string.format('{"received":%d,"changed":%d,"unchanged":%d,"queued":%d}',
  changed + unchanged, changed, unchanged, changed)
if token ~= '' then
  idempotency_complete(idem_key, 200, body, ARGV[3])
end
return {'ok', body}
"#;

static SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}\n{}\n{SYNC_LUA}",
        queue::LUA_FUNCTIONS,
        idempotency::LUA_FUNCTIONS
    ))
});

/// A batch that cannot be accepted. Messages name positions, never values
/// (a value may be patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// More than [`MAX_PATIENTS`] patients.
    #[error("a request may carry at most {MAX_PATIENTS} patients; it had {count}")]
    TooMany {
        /// How many the request had.
        count: usize,
    },
    /// An entry of `patients` is not a JSON object.
    #[error("patients[{index}] is not an object")]
    NotAnObject {
        /// Position in `patients`.
        index: usize,
    },
    /// An entry has no `id`, or its `id` is not a string.
    #[error("patients[{index}].id is missing or is not a string")]
    MissingId {
        /// Position in `patients`.
        index: usize,
    },
    /// An `id` is empty or too long.
    #[error("patients[{index}].id must be 1 to {MAX_ID_LEN} bytes long")]
    InvalidId {
        /// Position in `patients`.
        index: usize,
    },
    /// Two entries have the same `id`.
    #[error("patients[{index}] has the same id as patients[{first}]; send each patient once")]
    DuplicateId {
        /// Position of the repeat.
        index: usize,
        /// Position of the first occurrence.
        first: usize,
    },
}

impl BatchError {
    /// Whether the batch is refused for its size (`413`) rather than its shape (`400`).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooMany { .. })
    }
}

/// How a sync treats the practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// The default: compare, store and queue the changes.
    #[default]
    Incremental,
    /// The same, while holding the practice's sync lock (one at a time).
    Full,
}

impl Mode {
    /// `incremental` or `full`, as in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::Full => "full",
        }
    }
}

/// One patient, ready for the script.
#[derive(Clone)]
struct Entry {
    id: String,
    hash: String,
    change: Vec<u8>,
}

/// What the queue carries for one changed patient.
#[derive(Debug, Serialize, Deserialize)]
pub struct Change {
    /// The patient id as sent.
    pub patient_id: String,
    /// The content hash of the record.
    pub hash: String,
    /// The record as sent.
    pub record: Value,
}

/// A validated batch with each record's content hash.
#[derive(Clone)]
pub struct Batch {
    entries: Vec<Entry>,
    fingerprint: String,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the records.
        f.debug_struct("Batch")
            .field("patients", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Validates `records` (the `patients` array) and hashes each record
    /// canonically (field order does not matter).
    ///
    /// # Errors
    /// A [`BatchError`] for the first problem found; nothing is hashed or
    /// stored for a refused batch.
    pub fn new(records: Vec<Value>, mode: Mode) -> Result<Self, BatchError> {
        if records.len() > MAX_PATIENTS {
            return Err(BatchError::TooMany {
                count: records.len(),
            });
        }
        let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let Value::Object(fields) = record else {
                return Err(BatchError::NotAnObject { index });
            };
            let Some(Value::String(id)) = fields.get("id") else {
                return Err(BatchError::MissingId { index });
            };
            if id.is_empty() || id.len() > MAX_ID_LEN {
                return Err(BatchError::InvalidId { index });
            }
            if let Some(first) = first_seen.insert(id.as_str(), index) {
                return Err(BatchError::DuplicateId { index, first });
            }
        }
        let mut request_text = format!("{}\n", mode.as_str());
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let canonical = canonical_json(&record);
            request_text.push_str(&canonical);
            request_text.push('\n');
            let hash = content_hash(&record);
            let patient_id = match record.get("id") {
                Some(Value::String(id)) => id.clone(),
                // Checked above.
                _ => {
                    return Err(BatchError::MissingId {
                        index: entries.len(),
                    });
                }
            };
            let change = serde_json::to_vec(&Change {
                patient_id: patient_id.clone(),
                hash: hash.clone(),
                record,
            })
            .unwrap_or_default();
            entries.push(Entry {
                id: patient_id,
                hash,
                change,
            });
        }
        Ok(Self {
            entries,
            fingerprint: sha256_hex(request_text.as_bytes()),
        })
    }

    /// How many patients.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Identifies the request for idempotency: the mode and the canonical
    /// records in order. The same records in another field order give the
    /// same fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The answer to a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Patients in the request.
    pub received: u64,
    /// New or changed records (their hashes were stored).
    pub changed: u64,
    /// Records whose hash was already stored.
    pub unchanged: u64,
    /// Changes put on the practice's queue.
    pub queued: u64,
}

/// Why a sync did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Redis failed; the sync is atomic, so nothing of it was stored unless
    /// only the reply was lost (then an idempotency key replays it).
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    /// The idempotency marker of this request expired and was taken by
    /// another request with the same key: nothing was stored.
    #[error("the idempotency key is being used by another request")]
    IdempotencyLost,
}

/// How long things live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncSettings {
    /// Hashes, sync state and queued changes expire this long after the
    /// practice's last write.
    pub record_ttl: Duration,
    /// How long a claimed change stays invisible to other claimers.
    pub visibility_timeout: Duration,
    /// Deliveries of a change before a failed one dead-letters it.
    pub max_deliveries: u32,
    /// How long a stored idempotent response is kept.
    pub idempotency_ttl: Duration,
}

/// Practice-level counts for the status route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PracticeState {
    /// Patients with a stored hash.
    pub patients_tracked: u64,
    /// Queue counts.
    pub changes: QueueStats,
    /// Server time of the last sync, Unix milliseconds.
    pub last_sync_ms: Option<u64>,
}

/// Patient sync over one Redis client.
#[derive(Debug, Clone)]
pub struct PatientSync {
    client: RedisClient,
    settings: SyncSettings,
}

impl PatientSync {
    /// Syncs through `client` with `settings`.
    pub fn new(client: RedisClient, settings: SyncSettings) -> Self {
        Self { client, settings }
    }

    /// The settings.
    pub fn settings(&self) -> SyncSettings {
        self.settings
    }

    /// The practice's change queue.
    pub fn queue(&self, practice: &Tenant) -> Queue {
        Queue::new(
            self.client.clone(),
            practice,
            QUEUE_NAME,
            QueueSettings::new(self.settings.visibility_timeout)
                .with_retention(self.settings.record_ttl)
                .with_max_deliveries(self.settings.max_deliveries),
        )
    }

    /// Applies `batch` to `practice` in one atomic script: unchanged records
    /// are counted; new or changed records store their hash and queue one
    /// change each. With `pending`, the response is stored under its
    /// idempotency key in the same step.
    ///
    /// # Errors
    /// [`SyncError::Redis`] when Redis fails, [`SyncError::IdempotencyLost`]
    /// when `pending` no longer owns its key. Either way nothing was stored
    /// (unless only the reply was lost).
    pub async fn apply(
        &self,
        practice: &Tenant,
        batch: &Batch,
        pending: Option<&Pending>,
    ) -> Result<SyncReport, SyncError> {
        let patients = practice.key("patients");
        let state = practice.key("sync_state");
        let queue = self.queue(practice);
        let mut invocation = SYNC.prepare_invoke();
        invocation
            .key(&patients)
            .key(&state)
            .key(pending.map_or(state.as_str(), Pending::redis_key))
            .key(&queue.script_keys()[..])
            .arg(queue.retention_ms())
            .arg(pending.map_or("", Pending::token))
            .arg(millis(self.settings.idempotency_ttl));
        for entry in &batch.entries {
            invocation
                .arg(&entry.id)
                .arg(&entry.hash)
                .arg(&entry.change[..]);
        }
        let (outcome, body): (String, String) = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if outcome == "lost" {
            return Err(SyncError::IdempotencyLost);
        }
        serde_json::from_str(&body).map_err(|_| {
            RedisFailure::unexpected("the sync script returned an unreadable report").into()
        })
    }

    /// Patients tracked, queue counts and the last sync time.
    ///
    /// # Errors
    /// When Redis fails.
    pub async fn state(&self, practice: &Tenant) -> Result<PracticeState, RedisFailure> {
        let patients = practice.key("patients");
        let state = practice.key("sync_state");
        let counts = self.client.run(|mut c| async move {
            redis::pipe()
                .cmd("HLEN")
                .arg(patients)
                .cmd("HGET")
                .arg(state)
                .arg("last_sync_ms")
                .query_async::<(u64, Option<u64>)>(&mut c)
                .await
        });
        let queue = self.queue(practice);
        let (counts, changes) = tokio::join!(counts, queue.stats());
        let (patients_tracked, last_sync_ms) = counts?;
        let changes = changes.map_err(|e| match e {
            queue::QueueError::Redis(f) => f,
            other => RedisFailure::unexpected(other.to_string()),
        })?;
        Ok(PracticeState {
            patients_tracked,
            changes,
            last_sync_ms,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
