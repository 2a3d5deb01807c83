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
//! ws:{<app>}:session:<user>:<id>          hash   seq, created, updated
//! ws:{<app>}:session_state:<user>:<id>    hash   session state: key -> JSON value
//! ws:{<app>}:session_events:<user>:<id>   list   event JSON, the event with seq N at index N-1
//! ws:{<app>}:session_times:<user>:<id>    list   event timestamps, parallel to the events
//! ws:{<app>}:sessions:<user>              set    the user's session ids (stale ids pruned by list)
//! ws:{<app>}:app_state                    hash   app state (`app:` keys, prefix removed)
//! ws:{<app>}:user_state:<user>            hash   user state (`user:` keys, prefix removed)
//! ```
//!
//! Every write (create, append) sets the TTL of all seven keys to
//! `REDIS_SESSION_TTL`: the session's keys expire together, and the shared
//! state lives as long as the most recently active session that uses it.
//! An append is one `EVALSHA`: `HMGET` the sequence number and the last
//! update time (absent: not found, nothing written), `RPUSH` the event and
//! its timestamp, `HSET` the deltas, `PEXPIRE`: O(1) in the history. Reading the last N events is an `LRANGE`
//! from the tail; `after_timestamp` scans the timestamps back from the
//! newest, in chunks, and stops at the first older one.

use std::time::Duration;

use crate::redis::Script;
use async_trait::async_trait;
use redis::Value;

use super::{
    Appended, Event, GetSession, Session, SessionKey, SessionStore, State, StoreError, UserKey,
    merge_state, new_session_id, now, partial_outcome, prepare_event, split_state,
};
use crate::blocks::keys::Tenant;
use crate::redis::RedisClient;

/// KEYS: meta, state, events, times, index, app_state, user_state.
/// ARGV: ttl_ms, created, id, then three (count, key, value…) groups: session, app, user.
/// Returns {0} when the id is taken, else {1, session state, app state, user state}.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'seq', 0, 'created', ARGV[2], 'updated', ARGV[2])
local i = 4
for _, target in ipairs({2, 6, 7}) do
  local n = tonumber(ARGV[i])
  if n > 0 then redis.call('HSET', KEYS[target], unpack(ARGV, i + 1, i + 2 * n)) end
  i = i + 1 + 2 * n
end
redis.call('SADD', KEYS[5], ARGV[3])
for k = 1, 7 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return {1, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[6]), redis.call('HGETALL', KEYS[7])}
";

/// KEYS: as CREATE. ARGV: ttl_ms, expected seq or '', timestamp, event JSON
/// without seq and timestamp (or '' for a partial event: check only), then
/// the three delta groups.
const APPEND: &str = r#"
local meta = redis.call('HMGET', KEYS[1], 'seq', 'updated')
if not meta[1] then return {-1} end
local seq = tonumber(meta[1])
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= seq then return {-2, seq} end
local updated = meta[2]
if ARGV[4] == '' then return {0, seq, updated} end
local ts = tonumber(ARGV[3])
if seq > 0 and tonumber(updated) > ts then ts = tonumber(updated) end
local ts_text = string.format('%.6f', ts)
seq = seq + 1
redis.call('HSET', KEYS[1], 'seq', seq, 'updated', ts_text)
redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',"timestamp":' .. ts_text .. ',' .. string.sub(ARGV[4], 2))
redis.call('RPUSH', KEYS[4], ts_text)
local i = 5
for _, target in ipairs({2, 6, 7}) do
  local n = tonumber(ARGV[i])
  if n > 0 then redis.call('HSET', KEYS[target], unpack(ARGV, i + 1, i + 2 * n)) end
  i = i + 1 + 2 * n
end
for k = 1, 7 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return {1, seq, ts_text}
"#;

/// KEYS: meta, state, events, times, app_state, user_state.
/// ARGV: num_recent_events or '', after_timestamp or ''.
const GET: &str = r"
local meta = redis.call('HMGET', KEYS[1], 'seq', 'created', 'updated')
if not meta[1] then return false end
local seq = tonumber(meta[1])
local from = 1
if ARGV[2] ~= '' then
  local after = tonumber(ARGV[2])
  local hi = seq
  local stop = 0
  while hi >= 1 do
    local lo = math.max(1, hi - 127)
    local times = redis.call('LRANGE', KEYS[4], lo - 1 - seq, hi - 1 - seq)
    for j = #times, 1, -1 do
      if tonumber(times[j]) < after then stop = lo + j - 1; break end
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
local events = {}
if from <= seq then events = redis.call('LRANGE', KEYS[3], from - 1 - seq, -1) end
return {meta[1], meta[2], meta[3], redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[6]), events}
";

/// Sessions in Redis. See the module documentation for the key scheme.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: RedisClient,
    ttl: Duration,
    create: Script,
    append: Script,
    get: Script,
}

/// The keys of one session, in the scripts' KEYS order.
struct Keys {
    meta: String,
    state: String,
    events: String,
    times: String,
    index: String,
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
            index: tenant.key_with("sessions", "user_id", &[user])?,
            app_state: tenant.key("app_state"),
            user_state: tenant.key_with("user_state", "user_id", &[user])?,
        })
    }

    fn of(key: &SessionKey) -> Result<Self, StoreError> {
        Self::new(key.tenant(), key.user(), key.id())
    }

    fn all(&self) -> [&str; 7] {
        [
            &self.meta,
            &self.state,
            &self.events,
            &self.times,
            &self.index,
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

impl RedisSessionStore {
    /// A store on `redis` whose sessions expire `ttl` after their last write.
    pub fn new(redis: RedisClient, ttl: Duration) -> Self {
        Self {
            redis,
            ttl,
            create: Script::new(CREATE),
            append: Script::new(APPEND),
            get: Script::read_only(GET),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
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
        let created = format!("{:.6}", now());
        let mut inv = self.create.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(self.ttl_ms()).arg(&created).arg(&id);
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
                last_update_time: created.parse().unwrap_or_default(),
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
        inv.arg(
            query
                .after_timestamp
                .map(|t| format!("{t:.6}"))
                .unwrap_or_default(),
        );
        let mut conn = self.redis.conn()?;
        let reply: Value = inv.invoke_async(&mut conn).await?;
        let parts = match reply {
            Value::Nil => return Ok(None),
            Value::Array(parts) if parts.len() == 7 => parts,
            _ => return Err(unexpected("the session read")),
        };
        let seq = number(&parts[0]).ok_or_else(|| unexpected("the session read"))? as u64;
        let updated = number(&parts[2]).ok_or_else(|| unexpected("the session read"))?;
        let state = merge_state(pairs(&parts[3])?, pairs(&parts[4])?, pairs(&parts[5])?)?;
        let events = match &parts[6] {
            Value::Array(items) => items.iter().map(decode_event).collect::<Result<_, _>>()?,
            _ => return Err(unexpected("the session read")),
        };
        Ok(Some(Session {
            app_name: key.app().to_owned(),
            user_id: key.user().to_owned(),
            id: key.id().to_owned(),
            state,
            events,
            last_update_time: updated,
            last_seq: seq,
        }))
    }

    async fn list(&self, user: &UserKey) -> Result<Vec<Session>, StoreError> {
        let index = user
            .tenant()
            .key_with("sessions", "user_id", &[user.user()])?;
        let mut conn = self.redis.conn()?;
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&index)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(ids.len());
        let mut pipe = redis::pipe();
        for id in &ids {
            let k = Keys::new(user.tenant(), user.user(), id)?;
            pipe.cmd("HMGET").arg(&k.meta).arg(&["seq", "updated"]);
            pipe.cmd("HGETALL").arg(&k.state);
            keys.push(k);
        }
        let app_state = user.tenant().key("app_state");
        let user_state = user
            .tenant()
            .key_with("user_state", "user_id", &[user.user()])?;
        pipe.cmd("HGETALL").arg(&app_state);
        pipe.cmd("HGETALL").arg(&user_state);
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let [.., app_reply, user_reply] = replies.as_slice() else {
            return Err(unexpected("the session listing"));
        };
        let (app_pairs, user_pairs) = (pairs(app_reply)?, pairs(user_reply)?);
        let mut sessions = Vec::new();
        let mut gone = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let (meta, state) = (&replies[2 * i], &replies[2 * i + 1]);
            let Value::Array(meta) = meta else {
                return Err(unexpected("HMGET"));
            };
            let (Some(seq), Some(updated)) =
                (meta.first().and_then(number), meta.get(1).and_then(number))
            else {
                gone.push(id);
                continue;
            };
            sessions.push(Session {
                app_name: user.app().to_owned(),
                user_id: user.user().to_owned(),
                id,
                state: merge_state(pairs(state)?, app_pairs.clone(), user_pairs.clone())?,
                events: Vec::new(),
                last_update_time: updated,
                last_seq: seq as u64,
            });
        }
        if !gone.is_empty() {
            // Expired sessions leave their id in the index: prune it.
            redis::cmd("SREM")
                .arg(&index)
                .arg(&gone)
                .exec_async(&mut conn)
                .await?;
        }
        Ok(sessions)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let keys = Keys::of(key)?;
        let mut conn = self.redis.conn()?;
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&[&keys.meta, &keys.state, &keys.events, &keys.times])
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
        let prepared = prepare_event(event)?;
        let keys = Keys::of(key)?;
        let body = if prepared.event.partial {
            String::new()
        } else {
            event_body(&prepared.event)?
        };
        let mut inv = self.append.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        inv.arg(self.ttl_ms())
            .arg(expected_seq.map(|s| s.to_string()).unwrap_or_default())
            .arg(format!("{:.6}", prepared.event.timestamp))
            .arg(&body);
        let scoped = &prepared.scoped;
        push_groups(&mut inv, [&scoped.session, &scoped.app, &scoped.user]);
        let mut conn = self.redis.conn()?;
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await?;
        let status = reply.first().and_then(number).map(|s| s as i64);
        let second = reply.get(1).and_then(number).map(|s| s as u64);
        match (status, second) {
            (Some(-1), _) => Err(StoreError::NotFound),
            (Some(-2), Some(current)) => Err(StoreError::Stale {
                expected: expected_seq.unwrap_or_default(),
                current,
            }),
            (Some(0), Some(_)) => {
                let updated = reply.get(2).and_then(number).unwrap_or_default();
                Ok(partial_outcome(prepared, updated))
            }
            (Some(1), Some(seq)) => {
                let timestamp = reply
                    .get(2)
                    .and_then(number)
                    .ok_or_else(|| unexpected("the append"))?;
                let mut event = prepared.event;
                event.seq = seq;
                event.timestamp = timestamp;
                Ok(Appended {
                    seq: Some(seq),
                    timestamp,
                    event,
                    state_delta: prepared.applied_delta,
                })
            }
            _ => Err(unexpected("the append")),
        }
    }
}

/// The event as JSON without `seq` and `timestamp`, which the script
/// prepends once it has assigned them. Always an object with `id` first.
fn event_body(event: &Event) -> Result<String, StoreError> {
    let mut value = serde_json::to_value(event)
        .map_err(|_| StoreError::invalid("event", "cannot be encoded as JSON"))?;
    if let Some(object) = value.as_object_mut() {
        object.remove("seq");
        object.remove("timestamp");
    }
    let body = serde_json::to_string(&value)
        .map_err(|_| StoreError::invalid("event", "cannot be encoded as JSON"))?;
    // The event always has an id, so the object is never empty.
    if body.len() < 3 || !body.starts_with('{') {
        return Err(StoreError::invalid("event", "cannot be encoded as JSON"));
    }
    Ok(body)
}
