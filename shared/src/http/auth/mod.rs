//! Authentication and tenant binding: the one layer every function puts in
//! front of its tenant routes ([`bind_tenant`]).
//!
//! For each request the layer establishes a [`Caller`] (who, and which
//! tenants they may touch) the way `AUTH_MODE` says
//! ([`crate::config::AuthConfig`]), then compares the tenant the route names
//! (its `{practice_id}`, `{app}`) with the caller's tenants. A request that
//! fails either check is answered before the handler runs, so Redis sees
//! nothing of it:
//!
//! - no identity, or one that does not verify: `401` with
//!   `WWW-Authenticate: Bearer` (`error="invalid_token"` when a token was
//!   presented);
//! - an identity that does not grant the route's tenant: `403`;
//! - `jwt` mode while the issuer's keys cannot be fetched: `503` with
//!   `Retry-After`.
//!
//! A caller's tenants come from the claim `AUTH_TENANT_CLAIM` of its token
//! (or of the claims the platform passes); an identity without that claim
//! (an IAM role, a service account's Google ID token) gets the tenants
//! `AUTH_PRINCIPAL_TENANTS` grants its principal, or none.
//!
//! # Layout
//!
//! - this file: [`Caller`], [`Authenticator`], [`bind_tenant`].
//! - `jwt`: bearer JWTs verified against a cached JWKS.
//! - `platform`: the identity Lambda's request context or Cloud Run's
//!   headers carry.

mod jwt;
mod platform;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::app::AppContext;
use super::error::ApiError;
use crate::config::{AuthConfig, AuthMode, ConfigError, TenantGrant};

pub use jwt::JwtVerifier;

/// Who is calling: the principal the identity names and the tenants it may
/// touch. Inserted into the request by [`bind_tenant`]; handlers extract it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    principal: String,
    tenants: TenantGrant,
    mode: AuthMode,
}

impl fmt::Debug for Caller {
    // The principal may be an e-mail address: Debug shows its scope id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("scope", &self.scope_id())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// The anonymous caller of `AUTH_MODE=none`: every tenant.
    pub fn anonymous() -> Self {
        Self {
            principal: "anonymous".into(),
            tenants: TenantGrant::All,
            mode: AuthMode::None,
        }
    }

    /// The principal: a token's `sub`, an IAM ARN, `anonymous`.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The tenants it may touch.
    pub fn tenants(&self) -> &TenantGrant {
        &self.tenants
    }

    /// Whether it may touch `tenant`.
    pub fn may_access(&self, tenant: &str) -> bool {
        self.tenants.allows(tenant)
    }

    /// A stable id of this principal for key names (32 hex digits of a
    /// SHA-256 of the mode and principal): what scopes a caller's records,
    /// such as its idempotency keys, without putting the principal (an
    /// e-mail address, an ARN) in a key name.
    pub fn scope_id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.mode.as_str().as_bytes());
        hash.update([0]);
        hash.update(self.principal.as_bytes());
        let digest = hash.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("a handler asked for the caller on a route without bind_tenant");
            ApiError::internal()
        })
    }
}

/// Why a request is not authenticated. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential where one is expected.
    #[error("{0}")]
    Missing(&'static str),
    /// A credential that does not verify (the reason, for the caller).
    #[error("{0}")]
    Invalid(&'static str),
    /// The issuer's keys could not be fetched (and none are cached).
    #[error("the identity provider's signing keys cannot be fetched right now")]
    Unavailable,
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing(message) => ApiError::unauthorized_with(message, false),
            AuthError::Invalid(message) => ApiError::unauthorized_with(message, true),
            AuthError::Unavailable => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                err.to_string(),
            )
            .with_retry_after(std::time::Duration::from_secs(5)),
        }
    }
}

/// Establishes callers the way the configuration says. Built once per
/// process (it holds the JWKS cache); clones share it.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    jwt: Option<JwtVerifier>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.inner.config.mode)
            .field("runtime", &self.inner.config.runtime)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator of `config`. Fetches nothing yet: keys are fetched
    /// on the first token.
    ///
    /// # Errors
    /// When the HTTP client for the JWKS cannot be built.
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let jwt = match (&config.mode, &config.jwt) {
            (AuthMode::Jwt, Some(settings)) => Some(JwtVerifier::new(settings)?),
            (AuthMode::Jwt, None) => {
                return Err(ConfigError::new(
                    "AUTH_MODE",
                    "jwt needs AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE",
                ));
            }
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                jwt,
            }),
        })
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.inner.config.mode
    }

    /// Establishes the caller of a request.
    ///
    /// # Errors
    /// [`AuthError::Missing`] or [`AuthError::Invalid`] (answer `401`),
    /// [`AuthError::Unavailable`] (`503`).
    pub async fn authenticate(&self, parts: &Parts) -> Result<Caller, AuthError> {
        let config = &self.inner.config;
        let (principal, claims) = match config.mode {
            AuthMode::None => return Ok(Caller::anonymous()),
            AuthMode::Jwt => {
                let token = bearer(parts, axum::http::header::AUTHORIZATION.as_str())?
                    .ok_or(AuthError::Missing("a bearer token is required"))?;
                let verifier = self.inner.jwt.as_ref().ok_or(AuthError::Unavailable)?;
                let claims = verifier.verify(token).await?;
                let principal = subject(&claims)?;
                (principal, Some(claims))
            }
            AuthMode::Platform => {
                let identity =
                    platform::identity(parts, config.runtime)?.ok_or(AuthError::Missing(
                        "no verified identity from the platform (AUTH_MODE=platform): \
                         call through the platform's authentication",
                    ))?;
                (identity.principal, identity.claims)
            }
        };
        let tenants = self.grant(&principal, claims.as_ref());
        Ok(Caller {
            principal,
            tenants,
            mode: config.mode,
        })
    }

    /// The tenants of an identity: its tenant claim, else its principal's
    /// grant, else none.
    fn grant(&self, principal: &str, claims: Option<&Map<String, Value>>) -> TenantGrant {
        let config = &self.inner.config;
        if let Some(value) = claims.and_then(|c| c.get(&config.tenant_claim)) {
            return tenants_of_claim(value, config.allow_all_tenants);
        }
        config
            .principal_tenants
            .iter()
            .find(|g| g.matches(principal))
            .map_or_else(TenantGrant::none, |g| g.tenants.clone())
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
/// `Ok(None)` when the header is absent.
fn bearer<'a>(parts: &'a Parts, header: &str) -> Result<Option<&'a str>, AuthError> {
    let Some(value) = parts.headers.get(header) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not a bearer token"))?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid(
        "the Authorization header is not a bearer token",
    ))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Invalid(
            "the Authorization header is not a bearer token",
        ));
    }
    Ok(Some(token))
}

/// The `sub` claim: the principal of a token.
fn subject(claims: &Map<String, Value>) -> Result<String, AuthError> {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(AuthError::Invalid("the token has no subject (sub)"))
}

/// The tenants a claim value lists: a JSON array of ids; a string of ids
/// separated by spaces or commas; or such a string in brackets (how API
/// Gateway's JWT authorizer passes an array claim, `[clinic-1 clinic-2]`),
/// or a JSON array in a string.
fn tenants_of_claim(value: &Value, allow_all: bool) -> TenantGrant {
    match value {
        Value::Array(items) => {
            TenantGrant::from_entries(items.iter().filter_map(Value::as_str), allow_all)
        }
        Value::String(text) => {
            let text = text.trim();
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
                return tenants_of_claim(&Value::Array(items), allow_all);
            }
            let inner = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            TenantGrant::from_entries(
                inner.split(|c: char| c.is_whitespace() || c == ','),
                allow_all,
            )
        }
        _ => TenantGrant::none(),
    }
}

#[derive(Clone)]
struct Binding {
    auth: Authenticator,
    param: &'static str,
}

/// Puts every route of `routes` behind authentication and binds it to the
/// tenant its path parameter `tenant_param` names (see the module
/// documentation). Routes added to `routes` later are not covered: call it
/// once all tenant routes are there, before [`super::finish`]. A covered
/// route without the `tenant_param` parameter is a bug: it answers `500`
/// (and logs why), never serves unbound.
///
/// ```no_run
/// # use axum::{Router, routing::get};
/// # fn app(ctx: shared::AppContext) -> Router {
/// let routes = Router::new().route("/practices/{practice_id}/count", get(|| async { "0" }));
/// let routes = shared::http::auth::bind_tenant(routes, &ctx, "practice_id");
/// shared::http::finish(routes, &ctx)
/// # }
/// ```
pub fn bind_tenant<S>(routes: Router<S>, ctx: &AppContext, tenant_param: &'static str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.route_layer(middleware::from_fn_with_state(
        Binding {
            auth: ctx.auth.clone(),
            param: tenant_param,
        },
        bind,
    ))
}

async fn bind(State(binding): State<Binding>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let caller = match binding.auth.authenticate(&parts).await {
        Ok(caller) => caller,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let tenant = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .find(|(name, _)| *name == binding.param)
            .map(|(_, value)| Ok(value.to_owned())),
        // Some segment is not UTF-8: find out whether it is the tenant's.
        Err(_) => segment(&parts, binding.param).map(|raw| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|t| t.into_owned())
                .map_err(|_| ())
        }),
    };
    let tenant = match tenant {
        Some(Ok(tenant)) => tenant,
        // As the functions' own extractors answer it.
        Some(Err(())) => {
            return ApiError::bad_request(
                "invalid_id",
                format!(
                    "invalid {}: the path segment is not valid UTF-8 text",
                    binding.param
                ),
            )
            .into_response();
        }
        None => {
            tracing::error!(
                param = binding.param,
                "a tenant-bound route has no such path parameter"
            );
            return ApiError::internal().into_response();
        }
    };
    if !caller.may_access(&tenant) {
        return ApiError::forbidden().into_response();
    }
    if RawPathParams::from_request_parts(&mut parts, &())
        .await
        .is_err()
    {
        // Another segment is not UTF-8: no handler could read it.
        return ApiError::bad_request(
            "invalid_path",
            "a path segment is not valid (percent-encoded UTF-8 expected)",
        )
        .into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// The raw (still percent-encoded) path segment that the route template's
/// `{param}` matched.
fn segment<'a>(parts: &'a Parts, param: &str) -> Option<&'a str> {
    let template = parts.extensions.get::<MatchedPath>()?.as_str();
    let wanted = format!("{{{param}}}");
    let index = template.split('/').position(|s| s == wanted)?;
    parts.uri.path().split('/').nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_values_in_every_shape_the_issuers_use() {
        let grant = |v: Value| tenants_of_claim(&v, false);
        for v in [
            json!(["clinic-1", "clinic-2"]),
            json!("clinic-1 clinic-2"),
            json!("clinic-1,clinic-2"),
            json!("[clinic-1 clinic-2]"),
            json!(r#"["clinic-1","clinic-2"]"#),
        ] {
            let g = grant(v.clone());
            assert!(g.allows("clinic-1") && g.allows("clinic-2"), "{v}");
            assert!(!g.allows("clinic-3"), "{v}");
        }
        assert!(grant(json!(42)).is_empty());
        assert!(grant(json!(["*"])).is_empty());
        assert_eq!(tenants_of_claim(&json!(["*"]), true), TenantGrant::All);
    }

    #[test]
    fn scope_ids_differ_by_principal_and_mode_and_hide_the_principal() {
        let a = Caller {
            principal: "ada@example.com".into(),
            tenants: TenantGrant::All,
            mode: AuthMode::Jwt,
        };
        let b = Caller {
            principal: "bob@example.com".into(),
            ..a.clone()
        };
        let c = Caller {
            mode: AuthMode::Platform,
            ..a.clone()
        };
        assert_eq!(a.scope_id().len(), 32);
        assert_ne!(a.scope_id(), b.scope_id());
        assert_ne!(a.scope_id(), c.scope_id());
        assert!(!format!("{a:?}").contains("ada"));
    }
}
