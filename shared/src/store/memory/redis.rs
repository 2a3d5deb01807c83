//! The `redis` memory backend.
//!
//! # Key scheme
//!
//! The app is the tenant (hash tag `{<app>}`); `<user>` and `<event>` are
//! escaped ids ([`crate::blocks::keys`]); `<word hash>` is the word's
//! [`KeyedHash`] name under `MEMORY_INDEX_KEY`, so that key names hold no
//! conversation text.
//!
//! ```text
//! ws:{<app>}:memory_entries:<user>              hash   entry id -> entry JSON (with the event's content)
//! ws:{<app>}:memory_timeline:<user>             zset   entry id, score = timestamp
//! ws:{<app>}:memory_word:<user>:<word hash>     zset   entry id, score = timestamp (inverted index)
//! ws:{<app>}:memory_event:<user>:<event>        set    the entry ids of an event id (for delete)
//! ```
//!
//! An entry id is the JSON array `[session id, event id]`. An add is cut
//! into scripts of at most [`MAX_SCRIPT_WRITES`] index writes: each writes
//! its entries, their timeline, word and event members, and sets every
//! touched key's TTL to `REDIS_MEMORY_TTL_DAYS`; the first also removes at
//! most [`CLEANUP_BATCH`] expired entries (from the timeline, the entries
//! hash and the word indexes it touches, [`CLEANUP_BATCH`] members in all).
//! A search reads, for each query word, the newest `limit` ids not older
//! than the cutoff, merges them and fetches the entries: its cost depends on
//! `limit` and the number of query words, not on how much is remembered. A
//! delete reads an event's entry ids and their entries, then removes, in one
//! script, each entry that is still the one read, with its index members.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::redis::Script;
use async_trait::async_trait;
use redis::Value;

use super::{
    CLEANUP_BATCH, MAX_SCRIPT_WRITES, MAX_WORDS_PER_ENTRY, MemoryEntry, MemoryStore, StoreError,
    entries_of, matches, search_words, words,
};
use crate::blocks::keys::{KeyedHash, Tenant};
use crate::redis::RedisClient;
use crate::store::session::{Event, UserKey, now, validate_id};

/// KEYS: entries, timeline, then the word and event keys.
/// ARGV: ttl_ms, cutoff, cleanup budget, n_entries, then per entry: id,
/// timestamp, JSON, event key index, k, then k word key indexes into KEYS.
const ADD: &str = r"
local budget = tonumber(ARGV[3])
local function trim(key)
  if budget <= 0 then return {} end
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[2], 'LIMIT', 0, budget)
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
  budget = budget - #old
  return old
end
local expired = trim(KEYS[2])
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  local id, ts, json, ev, k = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 5
  redis.call('HSET', KEYS[1], id, json)
  redis.call('ZADD', KEYS[2], ts, id)
  redis.call('SADD', KEYS[ev], id)
  for _ = 1, k do
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], ts, id)
    i = i + 1
  end
end
for k = 3, #KEYS do
  if string.find(KEYS[k], ':memory_word:', 1, true) then trim(KEYS[k]) end
end
for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return n
";

/// KEYS: entries, timeline, event key, then word keys.
/// ARGV: n, then per entry: id, the entry JSON read, k, then k word key
/// indexes into KEYS. Removes each entry still equal to what was read.
/// Returns how many it removed.
const DELETE: &str = r"
local n = tonumber(ARGV[1])
local i = 2
local removed = 0
for _ = 1, n do
  local id, json, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  if redis.call('HGET', KEYS[1], id) == json then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('SREM', KEYS[3], id)
    for _ = 1, k do
      redis.call('ZREM', KEYS[tonumber(ARGV[i])], id)
      i = i + 1
    end
    removed = removed + 1
  else
    i = i + k
  end
end
return removed
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
    delete: Script,
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
            delete: Script::new(DELETE),
            search: Script::read_only(SEARCH),
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

fn event_key(tenant: &Tenant, user: &str, event: &str) -> Result<String, StoreError> {
    Ok(tenant.key_with("memory_event", "event_id", &[user, event])?)
}

/// One script's worth of an add: its keys (entries and timeline first) and
/// arguments after the four fixed ones.
#[derive(Default)]
struct AddChunk {
    keys: Vec<String>,
    index: HashMap<String, usize>,
    args: Vec<String>,
    entries: usize,
    writes: usize,
}

impl AddChunk {
    fn new(entries_key: &str, timeline_key: &str) -> Self {
        Self {
            keys: vec![entries_key.to_owned(), timeline_key.to_owned()],
            ..Self::default()
        }
    }

    /// The 1-based index of `key` in KEYS, adding it.
    fn key(&mut self, key: String) -> usize {
        let next = self.keys.len() + 1;
        *self.index.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            next
        })
    }
}

#[async_trait]
impl MemoryStore for RedisMemoryStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn add_events(
        &self,
        user: &UserKey,
        session_id: &str,
        events: &[Event],
    ) -> Result<usize, StoreError> {
        let entries = entries_of(session_id, events)?;
        let tenant = user.tenant();
        let entries_key = tenant.key_with("memory_entries", "user_id", &[user.user()])?;
        let timeline_key = tenant.key_with("memory_timeline", "user_id", &[user.user()])?;
        let cutoff = self.cutoff();
        let mut chunks = vec![AddChunk::new(&entries_key, &timeline_key)];
        let mut written = 0;
        for entry in entries.iter().filter(|e| e.timestamp >= cutoff) {
            let word_keys = words(&entry.text, MAX_WORDS_PER_ENTRY)
                .iter()
                .map(|w| word_key(&self.words, tenant, user.user(), w))
                .collect::<Result<Vec<_>, _>>()?;
            let ev_key = event_key(tenant, user.user(), &entry.event_id)?;
            // Commands the script runs for it: the entry, its timeline and
            // event members, a member per word, and for every key new to the
            // script its PEXPIRE and (first script) its trim.
            let cost = |chunk: &AddChunk| {
                let new_keys = word_keys
                    .iter()
                    .chain([&ev_key])
                    .filter(|k| !chunk.index.contains_key(*k))
                    .count();
                3 + word_keys.len() + 2 * new_keys
            };
            if chunks
                .last()
                .is_some_and(|c| c.entries > 0 && c.writes + cost(c) > MAX_SCRIPT_WRITES)
            {
                chunks.push(AddChunk::new(&entries_key, &timeline_key));
            }
            let Some(chunk) = chunks.last_mut() else {
                continue;
            };
            chunk.writes += cost(chunk);
            let id = serde_json::to_string(&(&entry.session_id, &entry.event_id))
                .map_err(|_| StoreError::invalid("event", "cannot be encoded"))?;
            let json = serde_json::to_string(entry)
                .map_err(|_| StoreError::invalid("event", "cannot be encoded"))?;
            let ev = chunk.key(ev_key);
            chunk.args.extend([
                id,
                format!("{:?}", entry.timestamp),
                json,
                ev.to_string(),
                word_keys.len().to_string(),
            ]);
            for key in word_keys {
                let index = chunk.key(key);
                chunk.args.push(index.to_string());
            }
            chunk.entries += 1;
            written += 1;
        }
        for (n, chunk) in chunks.iter().enumerate() {
            // A connection handle per script: each gets its own deadline.
            let mut conn = self.redis.conn()?;
            let mut inv = self.add.prepare_invoke();
            for k in &chunk.keys {
                inv.key(k);
            }
            // Only the first script of an add cleans up.
            let budget = if n == 0 { CLEANUP_BATCH } else { 0 };
            inv.arg(self.ttl.as_millis().max(1) as u64)
                .arg(format!("{cutoff:?}"))
                .arg(budget)
                .arg(chunk.entries)
                .arg(&chunk.args);
            let _: i64 = inv.invoke_async(&mut conn).await?;
        }
        Ok(written)
    }

    async fn delete(&self, user: &UserKey, event_id: &str) -> Result<usize, StoreError> {
        validate_id("event_id", event_id)?;
        let tenant = user.tenant();
        let entries_key = tenant.key_with("memory_entries", "user_id", &[user.user()])?;
        let timeline_key = tenant.key_with("memory_timeline", "user_id", &[user.user()])?;
        let ev_key = event_key(tenant, user.user(), event_id)?;
        let mut conn = self.redis.conn()?;
        let mut removed = 0;
        // An entry re-added between the read and the script is read again.
        for _ in 0..3 {
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&ev_key)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                break;
            }
            let jsons: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&entries_key)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            let mut keys = vec![entries_key.clone(), timeline_key.clone(), ev_key.clone()];
            let mut index: HashMap<String, usize> = HashMap::new();
            let mut args: Vec<String> = Vec::new();
            let mut n = 0;
            let mut missing = Vec::new();
            for (id, json) in ids.iter().zip(jsons) {
                let Some(json) = json else {
                    missing.push(id.clone());
                    continue;
                };
                let text = serde_json::from_str::<MemoryEntry>(&json)
                    .map(|e| e.text)
                    .unwrap_or_default();
                let entry_words = words(&text, MAX_WORDS_PER_ENTRY);
                args.extend([id.clone(), json, entry_words.len().to_string()]);
                for w in entry_words {
                    let key = word_key(&self.words, tenant, user.user(), &w)?;
                    let next = keys.len() + 1;
                    let i = *index.entry(key.clone()).or_insert_with(|| {
                        keys.push(key);
                        next
                    });
                    args.push(i.to_string());
                }
                n += 1;
            }
            if !missing.is_empty() {
                // Expired entries: only their event membership is left.
                redis::cmd("SREM")
                    .arg(&ev_key)
                    .arg(&missing)
                    .exec_async(&mut conn)
                    .await?;
            }
            if n == 0 {
                break;
            }
            let mut inv = self.delete.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(n).arg(&args);
            let done: i64 = inv.invoke_async(&mut conn).await?;
            removed += done as usize;
            if done as usize == n {
                break;
            }
        }
        Ok(removed)
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
