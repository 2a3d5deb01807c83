//! [`Env`], the environment reader every setting goes through, and
//! [`ConfigError`], the one error of a setting that cannot be used.

use std::fmt;
use std::time::Duration;

/// A setting that could not be used. The message names the variable and what
/// it accepts; it never repeats the value of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`; `message` says what is wrong and what is allowed
    /// and must not repeat a secret value.
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// A source of environment variables: a name to its value.
type VarSource<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads environment variables with typed parsing and errors that name the
/// variable and what it accepts. [`Config`](super::Config) is built with it; a function
/// reads its own settings the same way, at start-up:
///
/// ```
/// use shared::config::Env;
/// let env = Env::from_fn(|name| (name == "RATE_LIMIT_PER_MINUTE").then(|| "120".to_owned()));
/// assert_eq!(env.range("RATE_LIMIT_PER_MINUTE", 60, 1, 100_000).unwrap(), 120);
/// assert!(env.range("RATE_LIMIT_PER_MINUTE", 60, 1, 100).is_err());
/// ```
pub struct Env<'a> {
    lookup: VarSource<'a>,
    overrides: Vec<(&'static str, String)>,
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    /// Variables from `lookup` (a name to its value), e.g. a test's map.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self::new(lookup)
    }

    pub(crate) fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
            overrides: Vec::new(),
        }
    }

    /// This environment with `name` set to `value`, whatever the source says.
    pub(crate) fn with_override(mut self, name: &'static str, value: String) -> Self {
        self.overrides.push((name, value));
        self
    }

    /// The value, trimmed; an empty variable counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (self.lookup)(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value parsed as `T`, or `default` when unset.
    ///
    /// # Errors
    /// When the value does not parse; the message says it is not `allowed`.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        allowed: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::new(name, format!("{raw:?} is not {allowed}"))),
        }
    }

    /// An integer from `min` to `max`, or `default` when unset.
    ///
    /// # Errors
    /// When the value is not an integer in the range.
    pub fn range(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let allowed = format!("an integer from {min} to {max}");
        let value = self.parse(name, default, &allowed)?;
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("{value} is out of range; expected {allowed}"),
            ))
        }
    }

    /// A duration in milliseconds from `min` to `max`, or `default` when unset.
    ///
    /// # Errors
    /// When the value is not an integer in the range.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.range(name, default, min, max)
            .map(Duration::from_millis)
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), or `default`.
    ///
    /// # Errors
    /// When the value is none of those.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(
                name,
                format!("{other:?} is not a boolean; expected true or false"),
            )),
        }
    }
}
