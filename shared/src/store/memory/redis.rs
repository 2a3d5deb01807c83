//! The `redis` memory backend.
//!
//! # Key scheme
//!
//! The app is the tenant (hash tag `{<app>}`); `<user>` is an escaped id
//! ([`crate::blocks::keys`]); `<word hash>` is the word's [`KeyedHash`] name
//! under `MEMORY_INDEX_KEY`, so that key names hold no conversation text.
//!
//! ```text
//! ws:{<app>}:memory_entries:<user>              hash   entry id -> entry JSON
//! ws:{<app>}:memory_timeline:<user>             zset   entry id, score = timestamp
//! ws:{<app>}:memory_word:<user>:<word hash>     zset   entry id, score = timestamp (inverted index)
//! ```
//!
//! An entry id is the JSON array `[session id, event id]`. `add_session` is
//! one script: it removes at most [`CLEANUP_BATCH`] expired entries from the
//! timeline and the entries hash and as many from each word index it
//! touches, writes the new entries, and sets every touched key's TTL to
//! `REDIS_MEMORY_TTL_DAYS`. A search reads, for each query word, the newest
//! `limit` ids not older than the cutoff, merges them and fetches the
//! entries: its cost depends on `limit` and the number of query words, not
//! on how much is remembered.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::redis::Script;
use async_trait::async_trait;
use redis::Value;

use super::{
    CLEANUP_BATCH, MAX_WORDS_PER_ENTRY, MemoryEntry, MemoryStore, StoreError, entries_of, matches,
    search_words, words,
};
use crate::blocks::keys::{KeyedHash, Tenant};
use crate::redis::RedisClient;
use crate::store::session::{Session, UserKey, now};

/// KEYS: entries, timeline, word keys…
/// ARGV: ttl_ms, cutoff, batch, n_entries, then per entry: id, timestamp,
/// JSON, k, then k indexes into KEYS.
const ADD: &str = r"
local batch = tonumber(ARGV[3])
local function trim(key)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[2], 'LIMIT', 0, batch)
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
  return old
end
local expired = trim(KEYS[2])
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  local id, ts, json, k = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  redis.call('HSET', KEYS[1], id, json)
  redis.call('ZADD', KEYS[2], ts, id)
  for _ = 1, k do
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], ts, id)
    i = i + 1
  end
end
for k = 3, #KEYS do trim(KEYS[k]) end
for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return n
";

/// KEYS: entries, word keys… ARGV: cutoff, limit.
const SEARCH: &str = r"
local found = {}
local order = {}
for k = 2, #KEYS do
  local hits = redis.call('ZREVRANGEBYSCORE', KEYS[k], '+inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
  for j = 1, #hits, 2 do
    if not found[hits[j]] then
      found[hits[j]] = tonumber(hits[j + 1])
      order[#order + 1] = hits[j]
    end
  end
end
if #order == 0 then return {} end
table.sort(order, function(a, b)
  if found[a] ~= found[b] then return found[a] > found[b] end
  return a > b
end)
local top = {}
for j = 1, math.min(#order, 4 * tonumber(ARGV[2])) do top[j] = order[j] end
return redis.call('HMGET', KEYS[1], unpack(top))
";

/// Memory in Redis. See the module documentation for the key scheme.
#[derive(Debug, Clone)]
pub struct RedisMemoryStore {
    redis: RedisClient,
    ttl: Duration,
    add: Script,
    search: Script,
    words: KeyedHash,
}

impl RedisMemoryStore {
    /// A store on `redis` whose entries expire `ttl` after their timestamp,
    /// its index keys named by `words` (the hash under `MEMORY_INDEX_KEY`).
    pub fn new(redis: RedisClient, ttl: Duration, words: KeyedHash) -> Self {
        Self {
            redis,
            ttl,
            add: Script::new(ADD),
            search: Script::new(SEARCH),
            words,
        }
    }

    fn cutoff(&self) -> f64 {
        now() - self.ttl.as_secs_f64()
    }
}

/// The index key of `word`: its keyed hash, never the word.
fn word_key(
    words: &KeyedHash,
    tenant: &Tenant,
    user: &str,
    word: &str,
) -> Result<String, StoreError> {
    Ok(tenant.key_with("memory_word", "query", &[user, &words.name(word)])?)
}

#[async_trait]
impl MemoryStore for RedisMemoryStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn add_session(&self, session: &Session) -> Result<usize, StoreError> {
        let (user, entries) = entries_of(session)?;
        let tenant = user.tenant();
        let mut keys = vec![
            tenant.key_with("memory_entries", "user_id", &[user.user()])?,
            tenant.key_with("memory_timeline", "user_id", &[user.user()])?,
        ];
        let mut key_index: HashMap<String, usize> = HashMap::new();
        let mut args: Vec<String> = Vec::new();
        let cutoff = self.cutoff();
        let mut written = 0;
        for entry in &entries {
            if entry.timestamp < cutoff {
                continue;
            }
            let id = serde_json::to_string(&(&entry.session_id, &entry.event_id))
                .map_err(|_| StoreError::invalid("event", "cannot be encoded"))?;
            let json = serde_json::to_string(entry)
                .map_err(|_| StoreError::invalid("event", "cannot be encoded"))?;
            let entry_words = words(&entry.text, MAX_WORDS_PER_ENTRY);
            args.extend([
                id,
                format!("{:.6}", entry.timestamp),
                json,
                entry_words.len().to_string(),
            ]);
            for w in entry_words {
                let key = word_key(&self.words, tenant, user.user(), &w)?;
                let next = keys.len() + 1;
                let index = *key_index.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    next
                });
                args.push(index.to_string());
            }
            written += 1;
        }
        let mut inv = self.add.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.arg(self.ttl.as_millis().max(1) as u64)
            .arg(format!("{cutoff:.6}"))
            .arg(CLEANUP_BATCH)
            .arg(written)
            .arg(&args);
        let mut conn = self.redis.conn()?;
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(written)
    }

    async fn search(
        &self,
        user: &UserKey,
        query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryEntry>, StoreError> {
        let query_words = search_words(query, limit)?;
        if query_words.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = user.tenant();
        let mut inv = self.search.prepare_invoke();
        inv.key(tenant.key_with("memory_entries", "user_id", &[user.user()])?);
        for w in &query_words {
            inv.key(word_key(&self.words, tenant, user.user(), w)?);
        }
        inv.arg(format!("{:.6}", self.cutoff())).arg(limit);
        let mut conn = self.redis.conn()?;
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await?;
        // Newest first; an id whose entry changed text since it was indexed
        // is checked against the words again.
        let mut out: BTreeMap<usize, MemoryEntry> = BTreeMap::new();
        for (i, v) in reply.iter().enumerate() {
            if let Value::BulkString(b) = v
                && let Ok(entry) = serde_json::from_slice::<MemoryEntry>(b)
                && matches(&entry, &query_words)
            {
                out.insert(i, entry);
            }
        }
        Ok(out.into_values().take(limit).collect())
    }
}
