//! The function's own settings, read from the environment at start-up.

use std::time::Duration;

use shared::config::{Config, ConfigError, Env};

/// `patient_sync`'s settings (the shared ones are in [`Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// `RATE_LIMIT_PER_MINUTE`: sync requests per practice per minute (default 60).
    pub rate_limit_per_minute: u32,
    /// `CHANGE_VISIBILITY_TIMEOUT_MS`: how long a claimed change stays
    /// invisible to other claimers before it is redelivered (default 30 s).
    pub visibility_timeout: Duration,
    /// `CHANGE_MAX_DELIVERIES`: how many times a change is handed out before
    /// a failed delivery (a nack, or a claim that expired) moves it to the
    /// dead letters (default 5, 1 to 1000).
    pub max_deliveries: u32,
    /// `PATIENT_RECORD_TTL_SECS`: stored hashes and queued changes expire this
    /// long after the practice's last write (default 7 days).
    pub record_ttl: Duration,
    /// `SYNC_LOCK_TTL_MS`: the longest a full sync holds the practice's lock
    /// if its process dies (default: 30 s, or twice `REQUEST_TIMEOUT_MS` if longer).
    pub lock_ttl: Duration,
    /// How long an in-progress idempotency marker outlives a dead request
    /// outside a request's deadline: `REQUEST_TIMEOUT_MS` plus
    /// [`PENDING_SLACK`]. In a request, the marker lives for the time the
    /// request has left plus the slack.
    pub idempotency_pending_ttl: Duration,
}

/// How long an idempotency marker outlives the deadline of the request
/// that set it (clock skew between the function and Redis, the answer's
/// last writes).
pub const PENDING_SLACK: Duration = Duration::from_secs(5);

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 60,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: shared::blocks::queue::DEFAULT_MAX_DELIVERIES,
            record_ttl: Duration::from_secs(7 * 24 * 3600),
            lock_ttl: Duration::from_secs(30),
            idempotency_pending_ttl: Duration::from_secs(15),
        }
    }
}

impl Settings {
    /// Reads the settings from `env`, checked against the shared `config`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable and what it accepts.
    pub fn from_env(env: &Env<'_>, config: &Config) -> Result<Self, ConfigError> {
        let request_timeout = config.http.request_timeout;
        let default_lock = Duration::from_secs(30).max(request_timeout * 2);
        let lock_ttl = env.millis("SYNC_LOCK_TTL_MS", millis(default_lock), 1_000, 3_600_000)?;
        if lock_ttl <= request_timeout {
            return Err(ConfigError::new(
                "SYNC_LOCK_TTL_MS",
                format!(
                    "must be longer than REQUEST_TIMEOUT_MS ({} ms) so a running full sync keeps its lock",
                    request_timeout.as_millis()
                ),
            ));
        }
        Ok(Self {
            rate_limit_per_minute: env.range("RATE_LIMIT_PER_MINUTE", 60, 1, 100_000)? as u32,
            visibility_timeout: env.millis(
                "CHANGE_VISIBILITY_TIMEOUT_MS",
                30_000,
                100,
                43_200_000,
            )?,
            max_deliveries: env.range(
                "CHANGE_MAX_DELIVERIES",
                u64::from(shared::blocks::queue::DEFAULT_MAX_DELIVERIES),
                1,
                u64::from(shared::blocks::queue::MAX_MAX_DELIVERIES),
            )? as u32,
            record_ttl: Duration::from_secs(env.range(
                "PATIENT_RECORD_TTL_SECS",
                7 * 24 * 3600,
                60,
                365 * 24 * 3600,
            )?),
            lock_ttl,
            idempotency_pending_ttl: request_timeout + PENDING_SLACK,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let config = Config::from_lookup(|_| None).unwrap();
        let env = Env::from_fn(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        Settings::from_env(&env, &config)
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = read(&[]).unwrap();
        assert_eq!(s.rate_limit_per_minute, 60);
        assert_eq!(s.visibility_timeout, Duration::from_secs(30));
        assert_eq!(s.max_deliveries, 5);
        assert_eq!(s.record_ttl, Duration::from_secs(604_800));
        assert_eq!(s.lock_ttl, Duration::from_secs(30));
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_is_allowed() {
        for (var, value, expect) in [
            ("RATE_LIMIT_PER_MINUTE", "0", "from 1 to 100000"),
            ("RATE_LIMIT_PER_MINUTE", "lots", "integer"),
            ("CHANGE_VISIBILITY_TIMEOUT_MS", "5", "from 100"),
            ("CHANGE_MAX_DELIVERIES", "0", "from 1 to 1000"),
            ("CHANGE_MAX_DELIVERIES", "1001", "from 1 to 1000"),
            ("PATIENT_RECORD_TTL_SECS", "-1", "integer"),
            ("SYNC_LOCK_TTL_MS", "5000", "longer than REQUEST_TIMEOUT_MS"),
        ] {
            let err = read(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(expect), "{var}={value}: {err}");
        }
    }
}
