//! Admin authentication: a bearer token (`ADMIN_TOKEN`) compared in
//! constant time; without a token configured, admin routes do not exist.
//! Failed attempts are throttled per source and logged as warnings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use super::error::ApiError;
use crate::config::{Env, Runtime, Secret};

/// Wrong tokens a source may present before it is locked out.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// The window those attempts are counted in, from the first one.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a source that used them up is answered `429` (its token not
/// even compared).
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Sources tracked at once; past it the untracked share one allowance.
const MAX_SOURCES: usize = 10_000;

/// Requires `Authorization: Bearer <token>` on every route of `routes`.
/// Without a token configured the routes answer `404`, as if absent: admin
/// endpoints are never open by default. The comparison takes the same time
/// wherever the presented token first differs.
///
/// A source (client address: the peer of the plain server, the source IP of
/// a Lambda event, the address Cloud Run's front end appends to
/// `X-Forwarded-For`; an IPv6 /64 counts as one) that presents
/// [`MAX_FAILED_ATTEMPTS`] wrong tokens within [`FAILURE_WINDOW`] is
/// answered `429` with `Retry-After` for [`LOCKOUT`]. Every failure, and
/// every lockout, is a warning in the log (with the source, never the token).
pub fn admin_only<S>(routes: Router<S>, token: Option<Secret>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let runtime = Runtime::detect(&Env::from_process());
    let guard = token.map(|token| {
        Arc::new(Guard {
            token,
            throttle: Throttle::new(MAX_FAILED_ATTEMPTS, FAILURE_WINDOW, LOCKOUT),
            runtime,
        })
    });
    routes.route_layer(middleware::from_fn_with_state(guard, require_admin))
}

struct Guard {
    token: Secret,
    throttle: Throttle,
    runtime: Runtime,
}

async fn require_admin(
    State(guard): State<Option<Arc<Guard>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(guard) = guard else {
        return ApiError::not_found("no such route").into_response();
    };
    let (parts, body) = req.into_parts();
    let source = client_source(&parts, guard.runtime);
    if let Some(wait) = guard.throttle.locked_for(&source) {
        return ApiError::too_many_requests(wait).into_response();
    }
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(p) if guard.token.matches(p.as_bytes()) => {
            guard.throttle.succeeded(&source);
            next.run(Request::from_parts(parts, body)).await
        }
        _ => {
            let failures = guard.throttle.failed(&source);
            let source = source.as_deref().unwrap_or("unknown");
            if failures >= MAX_FAILED_ATTEMPTS {
                tracing::warn!(
                    source,
                    failures,
                    lockout_secs = LOCKOUT.as_secs(),
                    "admin token attempts from this source are locked out"
                );
            } else {
                tracing::warn!(source, failures, "admin token rejected");
            }
            ApiError::unauthorized().into_response()
        }
    }
}

/// The client address of a request as far as it can be trusted, or `None`.
/// On Cloud Run the last `X-Forwarded-For` entry (appended by Google's
/// front end; earlier ones are the client's own claims); on Lambda the
/// event's source IP; on the plain server the peer. An IPv6 address stands
/// for its /64.
fn client_source(parts: &Parts, runtime: Runtime) -> Option<String> {
    let ip: Option<IpAddr> = if let Some(context) = parts.extensions.get::<RequestContext>() {
        match context {
            RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
            RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
            _ => None,
        }
        .and_then(|ip| ip.parse().ok())
    } else if runtime == Runtime::CloudRun {
        parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok())
    } else {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    };
    ip.map(|ip| match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    })
}

/// Failed attempts per source, in process memory: throttling costs Redis
/// nothing, and a refused request must not reach it.
struct Throttle {
    max: u32,
    window: Duration,
    lockout: Duration,
    sources: Mutex<HashMap<Option<String>, Attempts>>,
}

#[derive(Clone, Copy)]
struct Attempts {
    first: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Throttle {
    fn new(max: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            max,
            window,
            lockout,
            sources: Mutex::default(),
        }
    }

    /// How long `source` stays locked out, if it is.
    fn locked_for(&self, source: &Option<String>) -> Option<Duration> {
        let sources = self.sources.lock().ok()?;
        let until = sources.get(&self.key(&sources, source))?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a failure; returns the failures in the current window.
    fn failed(&self, source: &Option<String>) -> u32 {
        let Ok(mut sources) = self.sources.lock() else {
            return 0;
        };
        let now = Instant::now();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(source) {
            sources.retain(|_, a| {
                now.duration_since(a.first) < self.window || a.locked_until.is_some_and(|u| u > now)
            });
        }
        let key = self.key(&sources, source);
        let entry = sources.entry(key).or_insert(Attempts {
            first: now,
            failures: 0,
            locked_until: None,
        });
        let expired = now.duration_since(entry.first) >= self.window
            && entry.locked_until.is_none_or(|u| u <= now);
        if expired {
            *entry = Attempts {
                first: now,
                failures: 0,
                locked_until: None,
            };
        }
        entry.failures += 1;
        if entry.failures >= self.max {
            entry.locked_until = Some(now + self.lockout);
        }
        entry.failures
    }

    /// A right token: the source starts afresh.
    fn succeeded(&self, source: &Option<String>) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.remove(source);
        }
    }

    /// The entry a source counts in: its own, or (the table full) the
    /// shared one of untracked sources.
    fn key(
        &self,
        sources: &HashMap<Option<String>, Attempts>,
        source: &Option<String>,
    ) -> Option<String> {
        if sources.contains_key(source) || sources.len() < MAX_SOURCES {
            source.clone()
        } else {
            Some("untracked".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_locked_out_after_its_failures_and_others_are_not() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_millis(200));
        let a = Some("203.0.113.7".to_owned());
        let b = Some("198.51.100.1".to_owned());
        assert_eq!(t.failed(&a), 1);
        assert_eq!(t.failed(&a), 2);
        assert!(t.locked_for(&a).is_none());
        assert_eq!(t.failed(&a), 3);
        assert!(t.locked_for(&a).is_some());
        assert!(t.locked_for(&b).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.locked_for(&a).is_none(), "the lockout ends");
        t.succeeded(&a);
        assert_eq!(t.failed(&a), 1, "a success starts afresh");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = Throttle::new(2, Duration::from_millis(100), Duration::from_secs(60));
        let a = Some("203.0.113.7".to_owned());
        assert_eq!(t.failed(&a), 1);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(t.failed(&a), 1);
        assert!(t.locked_for(&a).is_none());
    }
}
