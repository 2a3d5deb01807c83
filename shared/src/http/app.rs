//! What a function's `main` needs: the validated configuration and the Redis
//! client, built once per process, and the two calls that start and serve it.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;

use super::auth::Authenticator;
use super::server::serve_router_then;
use crate::config::{AuthConfig, AuthMode, Config, ConfigError, Env, RedisConfig, Runtime};
use crate::redis::{HealthCheck, RedisClient};
use crate::telemetry::{self, MetricsReporter};

/// The per-process state every function shares: configuration and the Redis
/// client. Cloning is cheap; clones share the client and its connections.
#[derive(Debug, Clone)]
pub struct AppContext {
    /// The validated settings.
    pub config: Arc<Config>,
    /// The shared Redis client (connects on first use).
    pub redis: RedisClient,
    /// The `/redis-health` probe of that client.
    pub health: HealthCheck,
    /// Writes the metrics line the alerts read (see [`telemetry`]).
    pub metrics: MetricsReporter,
    /// Establishes callers (`AUTH_MODE`); holds the JWKS cache.
    pub auth: Authenticator,
}

impl AppContext {
    /// Builds the context from validated settings. Nothing connects yet.
    ///
    /// # Errors
    /// When the Redis settings cannot make a client (an unreadable CA file),
    /// `METRICS_INTERVAL_SECS` is invalid, or the JWKS client cannot be built.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let redis = RedisClient::new(config.redis.clone())?;
        let metrics = MetricsReporter::from_env(redis.clone(), &Env::from_process())?;
        let auth = Authenticator::new(&config.auth)?;
        Ok(Self {
            config: Arc::new(config),
            health: HealthCheck::new(redis.clone()),
            redis,
            metrics,
            auth,
        })
    }

    /// A context with default settings except for Redis, and with
    /// authentication off (`AUTH_MODE=none`): for tests and tools.
    ///
    /// # Errors
    /// As [`AppContext::new`].
    pub fn with_redis(redis: RedisConfig) -> Result<Self, ConfigError> {
        let mut config = Config::from_lookup(|_| None)?;
        config.redis = redis;
        config.auth = AuthConfig::anonymous();
        Self::new(config)
    }
}

/// Reads the configuration, installs logging and builds the context. On a
/// configuration error prints one line naming the variable and returns the
/// exit code to end the process with.
///
/// # Errors
/// The exit code (2) for an invalid configuration.
pub fn start(service: &'static str) -> Result<AppContext, ExitCode> {
    let fail = |err: ConfigError| {
        // Logging is not set up yet (its settings may be what failed).
        let _ = writeln!(std::io::stderr(), "{service}: configuration error: {err}");
        ExitCode::from(2)
    };
    let config = Config::from_env().map_err(fail)?;
    telemetry::init(service, &config);
    for notice in &config.notices {
        tracing::warn!("{notice}");
    }
    let ctx = AppContext::new(config).map_err(fail)?;
    tracing::info!(
        redis = %ctx.redis.config().redacted_url(),
        pool_size = ctx.config.redis.max_connections,
        topology = ?ctx.config.redis.topology,
        credentials = ctx.redis.credential_provider(),
        auth_mode = ctx.config.auth.mode.as_str(),
        "{service} starting"
    );
    warn_about_auth(&ctx.config.auth);
    Ok(ctx)
}

/// The modes that leave tenant routes open, or shut, without it being obvious.
fn warn_about_auth(auth: &AuthConfig) {
    match (auth.mode, auth.runtime) {
        (AuthMode::None, Runtime::Other) => tracing::warn!(
            "AUTH_MODE=none: every caller is anonymous and may reach every tenant; for local runs only"
        ),
        (AuthMode::None, _) => tracing::warn!(
            "AUTH_MODE=none on a cloud (AUTH_ALLOW_ANONYMOUS=true): every caller is anonymous and may reach every tenant"
        ),
        (AuthMode::Platform, Runtime::Other) => tracing::warn!(
            "AUTH_MODE=platform (the default) outside Lambda and Cloud Run: no platform passes an identity here, \
             so every tenant route answers 401; use AUTH_MODE=jwt, or AUTH_MODE=none for a local run"
        ),
        _ => {}
    }
}

/// Serves `app` (see [`super::serve_router`]) and turns the outcome into an
/// exit code. The metrics line is written on a timer meanwhile, and once
/// more when serving stops (on Lambda: on the SIGTERM that the registered
/// extension makes Lambda send), so the last interval's counts are not
/// lost. The first line carries the cold start and the init duration.
pub async fn serve(app: Router, ctx: &AppContext) -> ExitCode {
    let timer = ctx.metrics.spawn_timer();
    let outcome = serve_router_then(app, &ctx.config.http, || ctx.metrics.mark_ready()).await;
    timer.abort();
    ctx.metrics.flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "stopped serving");
            ExitCode::FAILURE
        }
    }
}
