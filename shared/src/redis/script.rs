//! Lua scripts run with one deadline and at most two round trips, and
//! read-only scripts declared read-only.
//!
//! `redis::Script` sends `EVALSHA`, and on `NOSCRIPT` sends `SCRIPT LOAD`
//! then `EVALSHA` again: three round trips, each of which had its own
//! deadline, and on Redis Cluster a `SCRIPT LOAD` goes to every node, so one
//! frozen node stalled every script's first run. A [`Script`] here sends
//! `EVALSHA`, and on `NOSCRIPT` sends `EVAL` with the body (which also
//! caches it), routed by key like any command; both round trips run on one
//! [`RedisConn`], so they share its deadline.
//!
//! A script made with [`Script::read_only`] goes as `EVALSHA_RO` / `EVAL_RO`
//! (Redis 7): the server then runs it during a write pause (`CLIENT PAUSE
//! WRITE`, which `FAILOVER` does) and on replicas, and refuses a write from
//! it. On a server older than 7 (`ERR unknown command`) the client falls
//! back to `EVALSHA` / `EVAL` for the rest of its life.

use std::sync::atomic::Ordering::Relaxed;

use redis::{Cmd, FromRedisValue, RedisError, RedisResult, ServerErrorKind, ToRedisArgs, Value};

use super::client::RedisConn;

/// A Lua script, hashed once. Build it once (a `static LazyLock<Script>`)
/// and call it through [`Script::prepare_invoke`].
#[derive(Debug, Clone)]
pub struct Script {
    body: String,
    sha: String,
    read_only: bool,
}

impl Script {
    /// A script that may write.
    pub fn new(body: &str) -> Self {
        Self {
            body: body.to_owned(),
            sha: redis::Script::new(body).get_hash().to_owned(),
            read_only: false,
        }
    }

    /// A script that only reads: sent as `EVALSHA_RO` / `EVAL_RO`, so it runs
    /// during a write pause and on a replica. The server refuses any write
    /// it attempts.
    pub fn read_only(body: &str) -> Self {
        Self {
            read_only: true,
            ..Self::new(body)
        }
    }

    /// The SHA-1 of the body, as `SCRIPT LOAD` would return it.
    pub fn hash(&self) -> &str {
        &self.sha
    }

    /// A call with no keys or arguments yet.
    pub fn prepare_invoke(&self) -> ScriptInvocation<'_> {
        ScriptInvocation {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a [`Script`]: its keys and arguments.
#[derive(Debug, Clone)]
pub struct ScriptInvocation<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptInvocation<'_> {
    /// Adds a key (`KEYS[n]`).
    pub fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    fn command(&self, name: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
        cmd
    }

    /// Runs the script on `conn`: by hash, then with the body if the server
    /// does not have it cached; both within `conn`'s deadline.
    ///
    /// # Errors
    /// The script's error, a failure of the connection, or the deadline.
    pub async fn invoke_async<T: FromRedisValue>(&self, conn: &mut RedisConn) -> RedisResult<T> {
        let read_only = self.script.read_only && conn.scripts_read_only_supported();
        let (by_hash, by_body) = if read_only {
            ("EVALSHA_RO", "EVAL_RO")
        } else {
            ("EVALSHA", "EVAL")
        };
        match self
            .command(by_hash, &self.script.sha)
            .query_async(conn)
            .await
        {
            Err(err) if err.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command(by_body, &self.script.body)
                    .query_async(conn)
                    .await
            }
            Err(err) if read_only && is_unknown_command(&err) => {
                // Redis before 7: no read-only scripts. Say so once, then
                // run them as ordinary scripts.
                if conn.client_flags().scripts_read_only.swap(false, Relaxed) {
                    tracing::warn!(
                        "the server has no EVALSHA_RO (Redis before 7): read-only scripts run as ordinary scripts and wait during write pauses"
                    );
                }
                Box::pin(self.invoke_async(conn)).await
            }
            other => other.and_then(|value: Value| T::from_redis_value(value).map_err(Into::into)),
        }
    }
}

/// `ERR unknown command 'EVALSHA_RO'` from a server older than Redis 7. The
/// protocol has no code of its own for it; its text has been the same since
/// Redis 2.
fn is_unknown_command(err: &RedisError) -> bool {
    err.code() == Some("ERR")
        && err
            .detail()
            .is_some_and(|d| d.starts_with("unknown command"))
}
