//! The `redis` session backend.
//!
//! # Key scheme
//!
//! The app is the tenant, so every key below shares the hash tag `{<app>}`:
//! a session's keys and the app's and user's state are in one cluster hash
//! slot and one Lua script updates them atomically. `<user>` and `<id>` are
//! escaped ids ([`crate::blocks::keys`]), so no crafted id reaches another user's or
//! app's keys.
//!
//! ```text
//! ws:{<app>}:session:<user>:<id>            hash   seq, created, updated (last event's timestamp), index (its index time)
//! ws:{<app>}:session_state:<user>:<id>      hash   session state: key -> JSON text
//! ws:{<app>}:session_events:<user>:<id>     list   event JSON, the event with seq N at index N-1
//! ws:{<app>}:session_times:<user>:<id>      list   "<index time> <bytes of the event>", parallel to the events
//! ws:{<app>}:session_event_ids:<user>:<id>  hash   event id -> seq (a repeated id is a retry)
//! ws:{<app>}:sessions:<user>                set    the user's session ids (stale ids pruned by list)
//! ws:{<app>}:session_users                  set    the app's user ids (users without sessions pruned by list_app)
//! ws:{<app>}:app_state                      hash   app state (`app:` keys, prefix removed)
//! ws:{<app>}:user_state:<user>              hash   user state (`user:` keys, prefix removed)
//! ```
//!
//! Every write (create, append) sets the TTL of all nine keys to
//! `REDIS_SESSION_TTL`: the session's keys expire together, and the shared
//! keys live as long as the most recently active session that uses them.
//! Floats go to Lua as their shortest exact text and index times are
//! written with `%.17g`, so every comparison is on the exact binary64 value.
//!
//! An append is one `EVALSHA`: `HMGET` the sequence number and the last
//! index time (absent: not found, nothing written), `HGET` the event id (a
//! retry: the stored event is returned), `RPUSH` the event and its index
//! time, `HSET` the deltas, `PEXPIRE`: O(1) in the history, bounded by the
//! delta's size.
//!
//! A read is one read-only script (`EVALSHA_RO`): the session, its state, the
//! range of events asked for (`after_timestamp` scans the index times back
//! from the newest and stops at the first older one) and, when their bytes
//! fit in [`READ_CHUNK_BYTES`], the events themselves; a longer range is then
//! fetched by `LRANGE`s of at most that many bytes each, so no single
//! command copies more (a whole session of `SESSION_MAX_EVENTS` events is
//! at most one scan of its index times).
//!
//! Listing reads the user's index (`SMEMBERS`), then the sessions in
//! read-only scripts of at most [`LIST_CHUNK`] sessions each. Ids whose
//! session has expired are pruned by a separate script that removes an id
//! only if its session still does not exist: a session created meanwhile
//! stays listed. A failed prune fails nothing (the next listing prunes).

use std::time::Duration;

use crate::redis::Script;
use async_trait::async_trait;
use redis::Value;

use super::{
    AppKey, Appended, Event, GetSession, PreparedEvent, Session, SessionKey, SessionLimits,
    SessionStore, State, StoreError, UserKey, duplicate_outcome, exact, merge_state,
    new_session_id, now, partial_outcome, prepare_event, response_too_large, session_full,
    sort_listing, split_state,
};
use crate::blocks::keys::Tenant;
use crate::redis::RedisClient;

/// Most bytes of events one command of a read copies.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Most sessions one listing script reads.
pub const LIST_CHUNK: usize = 100;

/// KEYS: meta, state, events, times, event_ids, index, users, app_state, user_state.
/// ARGV: ttl_ms, created, id, user, then three (count, key, value…) groups: session, app, user.
/// Returns {0} when the id is taken, else {1, session state, app state, user state}.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'seq', 0, 'created', ARGV[2], 'updated', ARGV[2])
local i = 5
for _, target in ipairs({2, 8, 9}) do
  local n = tonumber(ARGV[i])
  if n > 0 then redis.call('HSET', KEYS[target], unpack(ARGV, i + 1, i + 2 * n)) end
  i = i + 1 + 2 * n
end
redis.call('SADD', KEYS[6], ARGV[3])
redis.call('SADD', KEYS[7], ARGV[4])
for k = 1, 9 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return {1, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[8]), redis.call('HGETALL', KEYS[9])}
";

/// KEYS: as CREATE. ARGV: ttl_ms, expected seq or '', timestamp (exact
/// text), event id, event JSON without seq (`{"timestamp":…}`, or '' for a
/// partial event: check only), max events, bytes, session id, user id, then
/// the three delta groups.
/// Returns {-1} absent, {-2, seq} stale, {-3, seq} full, {0, seq, updated}
/// partial, {2, seq, stored event} a repeated id, {1, seq} stored.
const APPEND: &str = r#"
local meta = redis.call('HMGET', KEYS[1], 'seq', 'updated', 'index')
if not meta[1] then return {-1} end
local seq = tonumber(meta[1])
if ARGV[5] ~= '' then
  local dup = redis.call('HGET', KEYS[5], ARGV[4])
  if dup then return {2, tonumber(dup), redis.call('LINDEX', KEYS[3], tonumber(dup) - 1)} end
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= seq then return {-2, seq} end
if ARGV[5] == '' then return {0, seq, meta[2]} end
if seq >= tonumber(ARGV[6]) then return {-3, seq} end
local ts = tonumber(ARGV[3])
local last = meta[3] or (seq > 0 and meta[2])
local index = ts
if last and tonumber(last) > ts then index = tonumber(last) end
local index_text = string.format('%.17g', index)
seq = seq + 1
redis.call('HSET', KEYS[1], 'seq', seq, 'updated', ARGV[3], 'index', index_text)
redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',' .. string.sub(ARGV[5], 2))
redis.call('RPUSH', KEYS[4], index_text .. ' ' .. ARGV[7])
redis.call('HSET', KEYS[5], ARGV[4], seq)
redis.call('SADD', KEYS[6], ARGV[8])
redis.call('SADD', KEYS[7], ARGV[9])
local i = 10
for _, target in ipairs({2, 8, 9}) do
  local n = tonumber(ARGV[i])
  if n > 0 then redis.call('HSET', KEYS[target], unpack(ARGV, i + 1, i + 2 * n)) end
  i = i + 1 + 2 * n
end
for k = 1, 9 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return {1, seq}
"#;

/// KEYS: meta, state, events, times, app_state, user_state.
/// ARGV: num_recent_events or '', after_timestamp (exact text) or '',
/// chunk bytes, max response bytes.
/// Returns false (absent), or {seq, created, updated, state, app state,
/// user state, from, total bytes, events or false (too many bytes for one
/// chunk), sizes or false}. A total over the maximum comes back without
/// events or sizes.
const GET: &str = r"
local meta = redis.call('HMGET', KEYS[1], 'seq', 'created', 'updated')
if not meta[1] then return false end
local seq = tonumber(meta[1])
local function at(entry) return tonumber(string.match(entry, '^(%S+)')) end
local from = 1
if ARGV[2] ~= '' then
  local after = tonumber(ARGV[2])
  local hi = seq
  local stop = 0
  while hi >= 1 do
    local lo = math.max(1, hi - 127)
    local times = redis.call('LRANGE', KEYS[4], lo - 1, hi - 1)
    for j = #times, 1, -1 do
      if at(times[j]) < after then stop = lo + j - 1; break end
    end
    if stop > 0 then break end
    hi = lo - 1
  end
  from = stop + 1
end
if ARGV[1] ~= '' then
  local recent = seq - tonumber(ARGV[1]) + 1
  if recent > from then from = recent end
end
local total = 0
local sizes = {}
if from <= seq then
  local times = redis.call('LRANGE', KEYS[4], from - 1, seq - 1)
  for j = 1, #times do
    local size = tonumber(string.match(times[j], ' (%d+)$')) or 0
    sizes[j] = size
    total = total + size
  end
end
local events = false
local out_sizes = false
if total <= tonumber(ARGV[4]) then
  if total <= tonumber(ARGV[3]) then
    events = {}
    if from <= seq then events = redis.call('LRANGE', KEYS[3], from - 1, seq - 1) end
  else
    out_sizes = sizes
  end
end
return {meta[1], meta[2], meta[3], redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[6]), from, total, events, out_sizes}
";

/// KEYS: meta and state of each session. Returns {seq, updated, state} per
/// session ({false, false, {}} for one that does not exist).
const LIST: &str = r"
local out = {}
for k = 1, #KEYS, 2 do
  local meta = redis.call('HMGET', KEYS[k], 'seq', 'updated')
  out[#out + 1] = {meta[1], meta[2], redis.call('HGETALL', KEYS[k + 1])}
end
return out
";

/// KEYS: index, users, then the meta key of each id. ARGV: user, then the
/// ids. Removes each id whose session does not exist (now), and the user
/// from the app's users when no id is left. Returns how many ids it removed.
const PRUNE: &str = r"
local removed = 0
for k = 3, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[k - 1])
  end
end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return removed
";

/// Sessions in Redis. See the module documentation for the key scheme.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: RedisClient,
    ttl: Duration,
    limits: SessionLimits,
    create: Script,
    append: Script,
    get: Script,
    list: Script,
    prune: Script,
}

/// The keys of one session, in the scripts' KEYS order.
struct Keys {
    meta: String,
    state: String,
    events: String,
    times: String,
    event_ids: String,
    index: String,
    users: String,
    app_state: String,
    user_state: String,
}

impl Keys {
    fn new(tenant: &Tenant, user: &str, id: &str) -> Result<Self, StoreError> {
        let ids = [user, id];
        Ok(Self {
            meta: tenant.key_with("session", "session_id", &ids)?,
            state: tenant.key_with("session_state", "session_id", &ids)?,
            events: tenant.key_with("session_events", "session_id", &ids)?,
            times: tenant.key_with("session_times", "session_id", &ids)?,
            event_ids: tenant.key_with("session_event_ids", "session_id", &ids)?,
            index: tenant.key_with("sessions", "user_id", &[user])?,
            users: tenant.key("session_users"),
            app_state: tenant.key("app_state"),
            user_state: tenant.key_with("user_state", "user_id", &[user])?,
        })
    }

    fn of(key: &SessionKey) -> Result<Self, StoreError> {
        Self::new(key.tenant(), key.user(), key.id())
    }

    fn all(&self) -> [&str; 9] {
        [
            &self.meta,
            &self.state,
            &self.events,
            &self.times,
            &self.event_ids,
            &self.index,
            &self.users,
            &self.app_state,
            &self.user_state,
        ]
    }
}

fn push_groups(
    inv: &mut crate::redis::script::ScriptInvocation<'_>,
    groups: [&[(String, String)]; 3],
) {
    for group in groups {
        inv.arg(group.len());
        for (k, v) in group {
            inv.arg(k).arg(v);
        }
    }
}

fn unexpected(what: &str) -> StoreError {
    StoreError::failed("redis", format!("unexpected reply to {what}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    text(v).and_then(|t| t.parse().ok())
}

fn integer(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

fn pairs(v: &Value) -> Result<Vec<(String, String)>, StoreError> {
    let items = match v {
        Value::Array(items) => items,
        Value::Map(map) => {
            return map
                .iter()
                .map(|(k, v)| {
                    Ok((
                        text(k).ok_or_else(|| unexpected("HGETALL"))?,
                        text(v).ok_or_else(|| unexpected("HGETALL"))?,
                    ))
                })
                .collect();
        }
        _ => return Err(unexpected("HGETALL")),
    };
    items
        .chunks(2)
        .map(|kv| match kv {
            [k, v] => Ok((
                text(k).ok_or_else(|| unexpected("HGETALL"))?,
                text(v).ok_or_else(|| unexpected("HGETALL"))?,
            )),
            _ => Err(unexpected("HGETALL")),
        })
        .collect()
}

fn decode_event(v: &Value) -> Result<Event, StoreError> {
    match v {
        Value::BulkString(b) => serde_json::from_slice(b)
            .map_err(|_| StoreError::failed("redis", "a stored event is not valid JSON")),
        _ => Err(unexpected("LRANGE")),
    }
}

fn decode_events(v: &Value) -> Result<Vec<Event>, StoreError> {
    match v {
        Value::Array(items) => items.iter().map(decode_event).collect(),
        _ => Err(unexpected("the session read")),
    }
}

/// Splits events `from..=to` (by seq) of the given byte sizes into ranges of
/// at most `budget` bytes (at least one event each).
fn chunks(from: u64, sizes: &[u64], budget: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (from, 0);
    for (i, size) in sizes.iter().enumerate() {
        let seq = from + i as u64;
        if seq > start && bytes + size > budget {
            out.push((start, seq - 1));
            start = seq;
            bytes = 0;
        }
        bytes += size;
    }
    if !sizes.is_empty() {
        out.push((start, from + sizes.len() as u64 - 1));
    }
    out
}

impl RedisSessionStore {
    /// A store on `redis` whose sessions expire `ttl` after their last write.
    pub fn new(redis: RedisClient, ttl: Duration) -> Self {
        Self {
            redis,
            ttl,
            limits: SessionLimits::default(),
            create: Script::new(CREATE),
            append: Script::new(APPEND),
            get: Script::read_only(GET),
            list: Script::read_only(LIST),
            prune: Script::new(PRUNE),
        }
    }

    /// This store with other limits.
    pub fn with_limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// One attempt of a read; `Ok(None)` inside `Some` when the session
    /// changed identity between its chunks (deleted and created again).
    async fn try_get(
        &self,
        key: &SessionKey,
        keys: &Keys,
        query: GetSession,
    ) -> Result<Option<Option<Session>>, StoreError> {
        let mut inv = self.get.prepare_invoke();
        for k in [
            &keys.meta,
            &keys.state,
            &keys.events,
            &keys.times,
            &keys.app_state,
            &keys.user_state,
        ] {
            inv.key(k);
        }
        inv.arg(
            query
                .num_recent_events
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        inv.arg(query.after_timestamp.map(exact).unwrap_or_default());
        inv.arg(READ_CHUNK_BYTES)
            .arg(self.limits.max_response_bytes);
        let mut conn = self.redis.conn()?;
        let reply: Value = inv.invoke_async(&mut conn).await?;
        let parts = match reply {
            Value::Nil => return Ok(Some(None)),
            Value::Array(parts) if parts.len() == 10 => parts,
            _ => return Err(unexpected("the session read")),
        };
        let bad = || unexpected("the session read");
        let seq = integer(&parts[0]).ok_or_else(bad)?;
        let updated = number(&parts[2]).ok_or_else(bad)?;
        let state = merge_state(pairs(&parts[3])?, pairs(&parts[4])?, pairs(&parts[5])?)?;
        let from = integer(&parts[6]).ok_or_else(bad)?;
        let total = integer(&parts[7]).ok_or_else(bad)?;
        if total > self.limits.max_response_bytes as u64 {
            return Err(response_too_large(self.limits));
        }
        let events = match (&parts[8], &parts[9]) {
            (Value::Array(_), _) => decode_events(&parts[8])?,
            (_, Value::Array(sizes)) => {
                let sizes: Vec<u64> = sizes.iter().map(|s| integer(s).unwrap_or(0)).collect();
                let mut conn = self.redis.conn()?;
                let mut pipe = redis::pipe();
                for (lo, hi) in chunks(from, &sizes, READ_CHUNK_BYTES as u64) {
                    pipe.cmd("LRANGE").arg(&keys.events).arg(lo - 1).arg(hi - 1);
                }
                let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                let mut events = Vec::with_capacity(sizes.len());
                for r in &replies {
                    events.extend(decode_events(r)?);
                }
                let expected: Vec<u64> = (from..from + sizes.len() as u64).collect();
                if events.iter().map(|e| e.seq).ne(expected) {
                    return Ok(None);
                }
                events
            }
            _ => return Err(bad()),
        };
        Ok(Some(Some(Session {
            app_name: key.app().to_owned(),
            user_id: key.user().to_owned(),
            id: key.id().to_owned(),
            state,
            events,
            last_update_time: updated,
            last_seq: seq,
        })))
    }

    /// The listed sessions of `user` among `ids`, in chunks of read-only
    /// scripts; the ids whose session is gone are pruned (see the module
    /// documentation).
    async fn read_listing(
        &self,
        tenant: &Tenant,
        user: &str,
        ids: Vec<String>,
        user_pairs: &[(String, String)],
        app_pairs: &[(String, String)],
        out: &mut Vec<Session>,
    ) -> Result<(), StoreError> {
        let mut gone = Vec::new();
        for chunk in ids.chunks(LIST_CHUNK) {
            // A connection handle per script: each gets its own deadline.
            let mut conn = self.redis.conn()?;
            let mut inv = self.list.prepare_invoke();
            for id in chunk {
                let k = Keys::new(tenant, user, id)?;
                inv.key(&k.meta).key(&k.state);
            }
            let reply: Vec<Value> = inv.invoke_async(&mut conn).await?;
            if reply.len() != chunk.len() {
                return Err(unexpected("the session listing"));
            }
            for (id, item) in chunk.iter().zip(&reply) {
                let Value::Array(item) = item else {
                    return Err(unexpected("the session listing"));
                };
                let (Some(seq), Some(updated), Some(state)) = (
                    item.first().and_then(integer),
                    item.get(1).and_then(number),
                    item.get(2),
                ) else {
                    gone.push(id.clone());
                    continue;
                };
                out.push(Session {
                    app_name: tenant.id().to_owned(),
                    user_id: user.to_owned(),
                    id: id.clone(),
                    state: merge_state(pairs(state)?, app_pairs.to_vec(), user_pairs.to_vec())?,
                    events: Vec::new(),
                    last_update_time: updated,
                    last_seq: seq,
                });
            }
        }
        if let Err(err) = self.prune(tenant, user, &gone).await {
            // The listing is right without it; the next one prunes.
            tracing::warn!(error = %err, "could not prune expired session ids");
        }
        Ok(())
    }

    /// Removes from the user's index the ids whose session does not exist,
    /// atomically, so that a session created meanwhile stays listed; and
    /// the user from the app's users once none is left.
    async fn prune(&self, tenant: &Tenant, user: &str, gone: &[String]) -> Result<(), StoreError> {
        let mut chunks: Vec<&[String]> = gone.chunks(LIST_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut conn = self.redis.conn()?;
            let mut inv = self.prune.prepare_invoke();
            inv.key(tenant.key_with("sessions", "user_id", &[user])?)
                .key(tenant.key("session_users"));
            inv.arg(user);
            for id in chunk {
                inv.key(Keys::new(tenant, user, id)?.meta).arg(id);
            }
            let _: i64 = inv.invoke_async(&mut conn).await?;
        }
        Ok(())
    }

    async fn hgetall(&self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.redis.conn()?;
        let reply: Value = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        pairs(&reply)
    }

    async fn smembers(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.redis.conn()?;
        Ok(redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await?)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn create(
        &self,
        user: &UserKey,
        state: State,
        id: Option<&str>,
    ) -> Result<Session, StoreError> {
        let id = new_session_id(id)?;
        let scoped = split_state("state", &state)?;
        let keys = Keys::new(user.tenant(), user.user(), &id)?;
        let created = now();
        let mut inv = self.create.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(self.ttl_ms())
            .arg(exact(created))
            .arg(&id)
            .arg(user.user());
        push_groups(&mut inv, [&scoped.session, &scoped.app, &scoped.user]);
        let mut conn = self.redis.conn()?;
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await?;
        match reply.as_slice() {
            [Value::Int(0)] => Err(StoreError::AlreadyExists),
            [Value::Int(1), session, app, user_state] => Ok(Session {
                app_name: user.app().to_owned(),
                user_id: user.user().to_owned(),
                state: merge_state(pairs(session)?, pairs(app)?, pairs(user_state)?)?,
                id,
                events: Vec::new(),
                last_update_time: created,
                last_seq: 0,
            }),
            _ => Err(unexpected("the create")),
        }
    }

    async fn get(
        &self,
        key: &SessionKey,
        query: GetSession,
    ) -> Result<Option<Session>, StoreError> {
        let keys = Keys::of(key)?;
        for _ in 0..3 {
            if let Some(found) = self.try_get(key, &keys, query).await? {
                return Ok(found);
            }
        }
        // Deleted and created again under our feet three times over.
        Err(StoreError::Unavailable {
            backend: "redis",
            detail: "the session kept changing while it was read".into(),
            retry_after: Duration::from_secs(1),
            kind: None,
        })
    }

    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError> {
        let tenant = user.tenant();
        let ids = self
            .smembers(&tenant.key_with("sessions", "user_id", &[user.user()])?)
            .await?;
        let mut out = Vec::new();
        if !ids.is_empty() {
            let app_pairs = self.hgetall(&tenant.key("app_state")).await?;
            let user_pairs = self
                .hgetall(&tenant.key_with("user_state", "user_id", &[user.user()])?)
                .await?;
            self.read_listing(tenant, user.user(), ids, &user_pairs, &app_pairs, &mut out)
                .await?;
        }
        sort_listing(&mut out);
        Ok(out)
    }

    async fn list_app(&self, app: &AppKey) -> Result<Vec<Session>, StoreError> {
        let tenant = app.tenant();
        let users = self.smembers(&tenant.key("session_users")).await?;
        let mut out = Vec::new();
        if !users.is_empty() {
            let app_pairs = self.hgetall(&tenant.key("app_state")).await?;
            for user in users {
                let ids = self
                    .smembers(&tenant.key_with("sessions", "user_id", &[&user])?)
                    .await?;
                let user_pairs = self
                    .hgetall(&tenant.key_with("user_state", "user_id", &[&user])?)
                    .await?;
                // An empty index: the prune removes the user from the app's users.
                self.read_listing(tenant, &user, ids, &user_pairs, &app_pairs, &mut out)
                    .await?;
            }
        }
        sort_listing(&mut out);
        Ok(out)
    }

    async fn user_state(&self, user: &UserKey) -> Result<State, StoreError> {
        let key = user
            .tenant()
            .key_with("user_state", "user_id", &[user.user()])?;
        merge_state(self.hgetall(&key).await?, [], [])
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let keys = Keys::of(key)?;
        let mut conn = self.redis.conn()?;
        // UNLINK: a long history is freed off the main thread.
        redis::pipe()
            .atomic()
            .cmd("UNLINK")
            .arg(&[
                &keys.meta,
                &keys.state,
                &keys.events,
                &keys.times,
                &keys.event_ids,
            ])
            .ignore()
            .cmd("SREM")
            .arg(&keys.index)
            .arg(key.id())
            .ignore()
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn append_event(
        &self,
        key: &SessionKey,
        event: Event,
        expected_seq: Option<u64>,
    ) -> Result<Appended, StoreError> {
        let prepared = prepare_event(event, self.limits.max_event_bytes)?;
        let keys = Keys::of(key)?;
        let body = if prepared.event.is_partial() {
            ""
        } else {
            prepared.body.as_str()
        };
        let mut inv = self.append.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(self.ttl_ms())
            .arg(expected_seq.map(|s| s.to_string()).unwrap_or_default())
            .arg(exact(prepared.timestamp()))
            .arg(&prepared.event.id)
            .arg(body)
            .arg(self.limits.max_events)
            .arg(body.len() + 16)
            .arg(key.id())
            .arg(key.user());
        let scoped = &prepared.scoped;
        push_groups(&mut inv, [&scoped.session, &scoped.app, &scoped.user]);
        let mut conn = self.redis.conn()?;
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await?;
        appended(reply, prepared, expected_seq, self.limits)
    }
}

/// What an append's reply means (see `APPEND`).
fn appended(
    reply: Vec<Value>,
    prepared: PreparedEvent,
    expected_seq: Option<u64>,
    limits: SessionLimits,
) -> Result<Appended, StoreError> {
    let status = match reply.first() {
        Some(Value::Int(i)) => *i,
        _ => return Err(unexpected("the append")),
    };
    let second = reply.get(1).and_then(integer);
    match (status, second) {
        (-1, _) => Err(StoreError::NotFound),
        (-2, Some(current)) => Err(StoreError::Stale {
            expected: expected_seq.unwrap_or_default(),
            current,
        }),
        (-3, Some(_)) => Err(session_full(limits.max_events)),
        (0, Some(_)) => {
            let updated = reply.get(2).and_then(number).unwrap_or_default();
            Ok(partial_outcome(prepared, updated))
        }
        (2, Some(_)) => {
            let stored = reply.get(2).ok_or_else(|| unexpected("the append"))?;
            Ok(duplicate_outcome(decode_event(stored)?))
        }
        (1, Some(seq)) => {
            let timestamp = prepared.timestamp();
            let mut event = prepared.event;
            event.seq = seq;
            Ok(Appended {
                seq: Some(seq),
                timestamp,
                event,
                state_delta: prepared.applied_delta,
                duplicate: false,
            })
        }
        _ => Err(unexpected("the append")),
    }
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn reads_are_cut_into_chunks_of_bounded_bytes() {
        assert_eq!(chunks(5, &[], 10), vec![]);
        assert_eq!(chunks(1, &[4, 4, 4], 10), vec![(1, 2), (3, 3)]);
        assert_eq!(chunks(3, &[20, 1, 1], 10), vec![(3, 3), (4, 5)]);
        assert_eq!(chunks(1, &[10, 10], 10), vec![(1, 1), (2, 2)]);
    }
}
