//! [`AuthConfig`]: who may call a function and which tenants they may touch
//! (`AUTH_*`), read and checked at start.
//!
//! Three modes (`AUTH_MODE`):
//!
//! - `platform` (the default): the platform in front of the function
//!   authenticates (Cloud Run's IAM invoker check; a Lambda Function URL with
//!   `AWS_IAM`, or API Gateway with IAM, a JWT or a Lambda authorizer) and
//!   the function reads the identity it passes. Where the platform passes
//!   none (a local server, an unknown container platform, a public Function
//!   URL) every tenant route answers `401`: the default fails closed.
//! - `jwt`: the function verifies a bearer JWT itself against
//!   `AUTH_JWKS_URL`, `AUTH_ISSUER` and `AUTH_AUDIENCE`.
//! - `none`: every caller is anonymous and may touch every tenant; for local
//!   runs only. Refused on Lambda and Cloud Run unless
//!   `AUTH_ALLOW_ANONYMOUS=true`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::env::{ConfigError, Env};
use crate::blocks::keys::Tenant;

/// How callers are authenticated (`AUTH_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A bearer JWT verified by the function.
    Jwt,
    /// The identity the platform verified and passes along.
    Platform,
    /// Nobody is authenticated (local runs).
    None,
}

impl AuthMode {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Platform => "platform",
            Self::None => "none",
        }
    }
}

/// Where the process runs, as far as authentication cares: which identity
/// the platform passes, and whether anonymous access is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// AWS Lambda (`AWS_LAMBDA_RUNTIME_API` or `AWS_LAMBDA_FUNCTION_NAME`):
    /// the identity is in the event's request context.
    Lambda,
    /// Google Cloud Run (`K_SERVICE`): the ID token Cloud Run checked is in
    /// `X-Serverless-Authorization` or `Authorization`.
    CloudRun,
    /// Anywhere else (a laptop, a container platform): no platform identity.
    Other,
}

impl Runtime {
    /// From the variables the platforms set.
    pub fn detect(env: &Env<'_>) -> Self {
        if env.get("AWS_LAMBDA_RUNTIME_API").is_some()
            || env.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
        {
            Self::Lambda
        } else if env.get("K_SERVICE").is_some() {
            Self::CloudRun
        } else {
            Self::Other
        }
    }

    /// Lambda or Cloud Run.
    pub fn is_cloud(self) -> bool {
        self != Self::Other
    }
}

/// The JWT algorithms a token may be signed with. Asymmetric only: the
/// keys come from a public JWKS, and an HMAC "verified" with a public key
/// is the classic forgery.
pub const ACCEPTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// What `AUTH_ALGORITHMS` is when unset: what Google, Cognito, Auth0, Entra
/// ID and most OIDC issuers sign with, and the common EC choice.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256"];

/// The settings of `AUTH_MODE=jwt`.
#[derive(Debug, Clone, Serialize)]
pub struct JwtConfig {
    /// `AUTH_JWKS_URL`: where the issuer publishes its signing keys (https;
    /// http only on a loopback address).
    #[serde(serialize_with = "as_str")]
    pub jwks_url: url::Url,
    /// `AUTH_ISSUER`: the accepted `iss` values (comma-separated).
    pub issuers: Vec<String>,
    /// `AUTH_AUDIENCE`: the accepted `aud` values (comma-separated); a token
    /// must name one of them.
    pub audiences: Vec<String>,
    /// `AUTH_ALGORITHMS`: the accepted `alg` values (default `RS256,ES256`).
    pub algorithms: Vec<String>,
    /// `AUTH_LEEWAY_SECS`: clock skew allowed on `exp` and `nbf` (default 30 s).
    #[serde(serialize_with = "secs")]
    pub leeway: Duration,
    /// `AUTH_JWKS_TIMEOUT_MS`: the longest a key fetch may take (default 2 s).
    #[serde(serialize_with = "millis")]
    pub fetch_timeout: Duration,
    /// `AUTH_JWKS_CACHE_SECS`: how long fetched keys are used before they
    /// are fetched again (default 1 h). An unknown `kid` fetches sooner.
    #[serde(serialize_with = "secs")]
    pub cache_for: Duration,
}

fn as_str<S: serde::Serializer>(url: &url::Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(url.as_str())
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// The tenants a caller may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantGrant {
    /// Every tenant (`*`, honoured only with `AUTH_ALLOW_ALL_TENANTS=true`,
    /// and the anonymous caller of `AUTH_MODE=none`).
    All,
    /// These tenant ids.
    Some(BTreeSet<String>),
}

impl TenantGrant {
    /// No tenant at all.
    pub fn none() -> Self {
        Self::Some(BTreeSet::new())
    }

    /// Whether `tenant` is granted.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Some(set) => set.contains(tenant),
        }
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Some(set) if set.is_empty())
    }

    /// The grant of a list of entries (tenant ids, or `*`): entries that are
    /// not tenant ids are dropped, `*` counts only if `allow_all`.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>, allow_all: bool) -> Self {
        let mut set = BTreeSet::new();
        for entry in entries {
            let entry = entry.trim();
            if entry == "*" {
                if allow_all {
                    return Self::All;
                }
            } else if Tenant::new("tenant", entry).is_ok() {
                set.insert(entry.to_owned());
            }
        }
        Self::Some(set)
    }
}

/// Tenants granted to one principal whose identity names none
/// (`AUTH_PRINCIPAL_TENANTS`): a service account's Google ID token, an IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalGrant {
    /// The principal: a token's `sub`, an IAM ARN. A trailing `*` matches
    /// any principal that starts with what precedes it (an assumed role's
    /// sessions: `arn:aws:sts::123456789012:assumed-role/sync/*`).
    pub principal: String,
    /// What it may touch.
    pub tenants: TenantGrant,
}

impl PrincipalGrant {
    /// Whether this grant is for `principal`.
    pub fn matches(&self, principal: &str) -> bool {
        match self.principal.strip_suffix('*') {
            Some(prefix) => principal.starts_with(prefix),
            None => self.principal == principal,
        }
    }
}

/// Everything about authentication (see the module documentation).
#[derive(Debug, Clone, Serialize)]
pub struct AuthConfig {
    /// `AUTH_MODE` (default `platform`).
    pub mode: AuthMode,
    /// Where the process runs.
    pub runtime: Runtime,
    /// The verification settings of `jwt` mode.
    pub jwt: Option<JwtConfig>,
    /// `AUTH_TENANT_CLAIM`: the claim that lists a caller's tenants
    /// (default `tenants`): a JSON array, or a string of ids separated by
    /// spaces or commas.
    pub tenant_claim: String,
    /// `AUTH_ALLOW_ALL_TENANTS`: whether `*` in the tenant claim (or in
    /// `AUTH_PRINCIPAL_TENANTS`) grants every tenant (default `false`).
    pub allow_all_tenants: bool,
    /// `AUTH_PRINCIPAL_TENANTS`: `principal=tenant,tenant;principal=…`.
    pub principal_tenants: Vec<PrincipalGrant>,
    /// `AUTH_ALLOW_ANONYMOUS`: accept `AUTH_MODE=none` on Lambda or Cloud Run.
    pub allow_anonymous: bool,
}

impl AuthConfig {
    /// Reads the `AUTH_*` settings. `request_timeout` bounds the key fetch.
    ///
    /// # Errors
    /// An unknown mode, `jwt` without its settings, a plain-http JWKS URL
    /// off loopback, an HMAC or unknown algorithm, `none` on a cloud without
    /// `AUTH_ALLOW_ANONYMOUS=true`, a malformed principal grant.
    pub fn from_env(env: &Env<'_>, request_timeout: Duration) -> Result<Self, ConfigError> {
        let runtime = Runtime::detect(env);
        let mode = match env
            .get("AUTH_MODE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("platform") => AuthMode::Platform,
            Some("jwt") => AuthMode::Jwt,
            Some("none") => AuthMode::None,
            Some(_) => {
                return Err(ConfigError::new(
                    "AUTH_MODE",
                    "expected jwt, platform or none",
                ));
            }
        };
        let allow_anonymous = env.flag("AUTH_ALLOW_ANONYMOUS", false)?;
        if mode == AuthMode::None && runtime.is_cloud() && !allow_anonymous {
            return Err(ConfigError::new(
                "AUTH_MODE",
                "none is refused on Lambda and Cloud Run: every caller would reach every tenant; \
                 use platform or jwt, or set AUTH_ALLOW_ANONYMOUS=true to accept that",
            ));
        }
        let jwt = if mode == AuthMode::Jwt {
            Some(jwt_config(env, request_timeout)?)
        } else {
            for var in ["AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"] {
                if env.get(var).is_some() {
                    return Err(ConfigError::new(
                        var,
                        format!(
                            "is only read with AUTH_MODE=jwt (AUTH_MODE is {})",
                            mode.as_str()
                        ),
                    ));
                }
            }
            None
        };
        let tenant_claim = env
            .get("AUTH_TENANT_CLAIM")
            .unwrap_or_else(|| "tenants".to_owned());
        if tenant_claim.len() > 128 || tenant_claim.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "AUTH_TENANT_CLAIM",
                "must be a claim name of at most 128 printable characters",
            ));
        }
        let allow_all_tenants = env.flag("AUTH_ALLOW_ALL_TENANTS", false)?;
        let principal_tenants = match env.get("AUTH_PRINCIPAL_TENANTS") {
            None => Vec::new(),
            Some(raw) => principal_grants(&raw, allow_all_tenants)?,
        };
        Ok(Self {
            mode,
            runtime,
            jwt,
            tenant_claim,
            allow_all_tenants,
            principal_tenants,
            allow_anonymous,
        })
    }

    /// Anonymous access for tests and tools (`AUTH_MODE=none`, off any cloud).
    pub fn anonymous() -> Self {
        Self {
            mode: AuthMode::None,
            runtime: Runtime::Other,
            jwt: None,
            tenant_claim: "tenants".into(),
            allow_all_tenants: false,
            principal_tenants: Vec::new(),
            allow_anonymous: false,
        }
    }
}

fn list(env: &Env<'_>, name: &'static str) -> Option<Vec<String>> {
    env.get(name).map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn jwt_config(env: &Env<'_>, request_timeout: Duration) -> Result<JwtConfig, ConfigError> {
    let required = |name: &'static str, what: &str| {
        list(env, name).filter(|v| !v.is_empty()).ok_or_else(|| {
            ConfigError::new(name, format!("is required with AUTH_MODE=jwt: {what}"))
        })
    };
    let raw_url = env.get("AUTH_JWKS_URL").ok_or_else(|| {
        ConfigError::new(
            "AUTH_JWKS_URL",
            "is required with AUTH_MODE=jwt: the issuer's JWKS (e.g. https://www.googleapis.com/oauth2/v3/certs)",
        )
    })?;
    let jwks_url =
        url::Url::parse(&raw_url).map_err(|_| ConfigError::new("AUTH_JWKS_URL", "is not a URL"))?;
    let loopback = match jwks_url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match jwks_url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ConfigError::new(
                "AUTH_JWKS_URL",
                "must be an https URL (plain http only on a loopback address)",
            ));
        }
    }
    let issuers = required("AUTH_ISSUER", "the issuer the tokens name in `iss`")?;
    let audiences = required("AUTH_AUDIENCE", "the audience the tokens name in `aud`")?;
    let algorithms = list(env, "AUTH_ALGORITHMS")
        .unwrap_or_else(|| DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect());
    if algorithms.is_empty() {
        return Err(ConfigError::new(
            "AUTH_ALGORITHMS",
            format!(
                "must name at least one of {}",
                ACCEPTED_ALGORITHMS.join(", ")
            ),
        ));
    }
    for alg in &algorithms {
        if alg.starts_with("HS") {
            return Err(ConfigError::new(
                "AUTH_ALGORITHMS",
                "HMAC (HS256, HS384, HS512) is not accepted: the keys come from a public JWKS",
            ));
        }
        if !ACCEPTED_ALGORITHMS.contains(&alg.as_str()) {
            return Err(ConfigError::new(
                "AUTH_ALGORITHMS",
                format!("expected a list from {}", ACCEPTED_ALGORITHMS.join(", ")),
            ));
        }
    }
    let fetch_timeout = env.millis("AUTH_JWKS_TIMEOUT_MS", 2_000, 100, 30_000)?;
    if fetch_timeout >= request_timeout {
        return Err(ConfigError::new(
            "AUTH_JWKS_TIMEOUT_MS",
            format!(
                "must be shorter than REQUEST_TIMEOUT_MS ({} ms)",
                request_timeout.as_millis()
            ),
        ));
    }
    Ok(JwtConfig {
        jwks_url,
        issuers,
        audiences,
        algorithms,
        leeway: Duration::from_secs(env.range("AUTH_LEEWAY_SECS", 30, 0, 300)?),
        fetch_timeout,
        cache_for: Duration::from_secs(env.range("AUTH_JWKS_CACHE_SECS", 3_600, 60, 86_400)?),
    })
}

/// `principal=tenant,tenant;principal=*`. A principal may hold `=` (IAM
/// role names do): the tenants follow the last one.
fn principal_grants(raw: &str, allow_all: bool) -> Result<Vec<PrincipalGrant>, ConfigError> {
    let invalid = || {
        ConfigError::new(
            "AUTH_PRINCIPAL_TENANTS",
            "expected principal=tenant[,tenant…] entries separated by ';' (tenant ids, or * with AUTH_ALLOW_ALL_TENANTS=true)",
        )
    };
    let mut grants = Vec::new();
    for entry in raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (principal, tenants) = entry.rsplit_once('=').ok_or_else(invalid)?;
        let principal = principal.trim();
        let entries: Vec<&str> = tenants.split(',').map(str::trim).collect();
        if principal.is_empty()
            || principal == "*"
            || entries
                .iter()
                .any(|t| *t != "*" && Tenant::new("tenant", t).is_err())
            || (entries.contains(&"*") && !allow_all)
        {
            return Err(invalid());
        }
        grants.push(PrincipalGrant {
            principal: principal.to_owned(),
            tenants: TenantGrant::from_entries(entries, allow_all),
        });
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let env = Env::from_fn(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        AuthConfig::from_env(&env, Duration::from_secs(10))
    }

    const JWT: &[(&str, &str)] = &[
        ("AUTH_MODE", "jwt"),
        (
            "AUTH_JWKS_URL",
            "https://issuer.example/.well-known/jwks.json",
        ),
        ("AUTH_ISSUER", "https://issuer.example/"),
        ("AUTH_AUDIENCE", "patient-sync, sessions"),
    ];

    #[test]
    fn the_default_is_platform_which_fails_closed_off_the_clouds() {
        let c = read(&[]).unwrap();
        assert_eq!(c.mode, AuthMode::Platform);
        assert_eq!(c.runtime, Runtime::Other);
        assert_eq!(c.tenant_claim, "tenants");
        assert!(!c.allow_all_tenants);
        let c = read(&[("K_SERVICE", "sessions")]).unwrap();
        assert_eq!(c.runtime, Runtime::CloudRun);
    }

    #[test]
    fn none_is_refused_on_the_clouds_unless_anonymous_access_is_accepted() {
        assert_eq!(read(&[("AUTH_MODE", "none")]).unwrap().mode, AuthMode::None);
        for cloud in ["AWS_LAMBDA_RUNTIME_API", "K_SERVICE"] {
            let err = read(&[("AUTH_MODE", "none"), (cloud, "x")]).unwrap_err();
            assert_eq!(err.var, "AUTH_MODE");
            assert!(err.to_string().contains("AUTH_ALLOW_ANONYMOUS"), "{err}");
            let ok = read(&[
                ("AUTH_MODE", "none"),
                (cloud, "x"),
                ("AUTH_ALLOW_ANONYMOUS", "true"),
            ])
            .unwrap();
            assert_eq!(ok.mode, AuthMode::None);
        }
    }

    #[test]
    fn jwt_needs_its_three_settings_and_pins_asymmetric_algorithms() {
        let c = read(JWT).unwrap();
        let jwt = c.jwt.unwrap();
        assert_eq!(jwt.audiences, ["patient-sync", "sessions"]);
        assert_eq!(jwt.algorithms, ["RS256", "ES256"]);
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        for missing in ["AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"] {
            let vars: Vec<_> = JWT.iter().copied().filter(|(k, _)| *k != missing).collect();
            assert_eq!(read(&vars).unwrap_err().var, missing);
        }
        for (var, value, says) in [
            ("AUTH_ALGORITHMS", "HS256", "HMAC"),
            ("AUTH_ALGORITHMS", "none", "expected a list"),
            ("AUTH_JWKS_URL", "http://issuer.example/jwks", "https"),
            ("AUTH_JWKS_URL", "not a url", "not a URL"),
            (
                "AUTH_JWKS_TIMEOUT_MS",
                "20000",
                "shorter than REQUEST_TIMEOUT_MS",
            ),
            ("AUTH_LEEWAY_SECS", "3600", "from 0 to 300"),
        ] {
            let mut vars: Vec<_> = JWT.iter().copied().filter(|(k, _)| *k != var).collect();
            vars.push((var, value));
            let err = read(&vars).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().contains(says), "{var}={value}: {err}");
        }
        let mut local = JWT.to_vec();
        local[1] = ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks");
        assert!(read(&local).is_ok());
    }

    #[test]
    fn jwt_settings_without_jwt_mode_are_a_mistake() {
        let err = read(&[("AUTH_JWKS_URL", "https://x/jwks")]).unwrap_err();
        assert_eq!(err.var, "AUTH_JWKS_URL");
    }

    #[test]
    fn principal_grants_parse_and_star_needs_its_flag() {
        let c = read(&[(
            "AUTH_PRINCIPAL_TENANTS",
            "1234567890=clinic-1,clinic-2; arn:aws:sts::1:assumed-role/a=b/*=clinic-3",
        )])
        .unwrap();
        assert_eq!(c.principal_tenants.len(), 2);
        assert!(c.principal_tenants[0].tenants.allows("clinic-2"));
        assert!(c.principal_tenants[1].matches("arn:aws:sts::1:assumed-role/a=b/session-9"));
        assert!(!c.principal_tenants[1].matches("arn:aws:sts::1:assumed-role/other/x"));
        for bad in [
            "no-equals",
            "=clinic-1",
            "x=bad:tenant",
            "x=*",
            "*=clinic-1",
        ] {
            assert_eq!(
                read(&[("AUTH_PRINCIPAL_TENANTS", bad)]).unwrap_err().var,
                "AUTH_PRINCIPAL_TENANTS",
                "{bad}"
            );
        }
        let all = read(&[
            ("AUTH_PRINCIPAL_TENANTS", "svc=*"),
            ("AUTH_ALLOW_ALL_TENANTS", "true"),
        ])
        .unwrap();
        assert_eq!(all.principal_tenants[0].tenants, TenantGrant::All);
    }

    #[test]
    fn a_grant_drops_what_is_not_a_tenant_and_honours_star_only_when_allowed() {
        let g = TenantGrant::from_entries(["clinic-1", "a:b", "*", ""], false);
        assert!(g.allows("clinic-1"));
        assert!(!g.allows("a:b"));
        assert!(!g.allows("clinic-2"));
        assert_eq!(TenantGrant::from_entries(["*"], true), TenantGrant::All);
    }
}
