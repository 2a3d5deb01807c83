//! Bearer JWTs verified by the function (`AUTH_MODE=jwt`), with the
//! issuer's keys fetched from its JWKS and cached.
//!
//! Verification (the `jsonwebtoken` crate, RustCrypto backend):
//!
//! - the header's `alg` must be one of `AUTH_ALGORITHMS` (asymmetric only:
//!   `none` does not parse, and HMAC is never accepted, so a token "signed"
//!   with a public key as an HMAC secret is refused before any key is used);
//! - the key is the JWKS entry named by `kid` (without `kid`, the only key of
//!   the algorithm's family), of the same family as `alg`, and of the same
//!   `alg` when the entry names one; symmetric (`oct`) entries are ignored;
//! - `iss` must be one of `AUTH_ISSUER`, `aud` name one of `AUTH_AUDIENCE`,
//!   `exp` and `sub` be present; `exp` and `nbf` are checked with
//!   `AUTH_LEEWAY_SECS` of leeway (30 s by default).
//!
//! Keys are fetched on the first token, used for `AUTH_JWKS_CACHE_SECS`,
//! then fetched again (if that fails the old keys stay in use and the
//! failure is logged). A token whose `kid` is not in the cached set makes
//! one fetch at once (a key rotation), at most once per
//! [`UNKNOWN_KID_REFETCH_INTERVAL`], so a flood of made-up `kid`s cannot make
//! the function hammer the issuer. Concurrent requests share one fetch.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::AuthError;
use crate::config::{ConfigError, JwtConfig};

/// The least time between two fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// After a failed fetch, how long requests use the keys they have (or are
/// answered `503` at once, with none) instead of each waiting for a fetch
/// of their own.
pub const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Verifies bearer tokens against one issuer's JWKS (see the module
/// documentation). Clones share the cache.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwtConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: concurrent requests wait for one fetch.
    fetching: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    last_unknown_kid_fetch: Option<Instant>,
    last_failure: Option<Instant>,
}

struct KeySet {
    fetched: Instant,
    keys: Vec<VerifyKey>,
}

struct VerifyKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("jwks_url", &self.inner.config.jwks_url.as_str())
            .field("algorithms", &self.inner.config.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`. Nothing is fetched yet.
    ///
    /// # Errors
    /// An algorithm name `jsonwebtoken` does not know, or an HTTP client
    /// that cannot be built.
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| ConfigError::new("AUTH_ALGORITHMS", "names an unknown algorithm"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            // A JWKS does not move; a redirect could take the fetch to plain http.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| {
                ConfigError::new("AUTH_JWKS_URL", "cannot build the HTTP client to fetch it")
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                algorithms,
                http,
                keys: RwLock::new(None),
                fetching: tokio::sync::Mutex::default(),
            }),
        })
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] naming the reason (malformed, algorithm,
    /// unknown key, signature, expired, not yet valid, issuer or audience),
    /// [`AuthError::Unavailable`] when no keys can be had.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("the bearer token is malformed"))?;
        if !self.inner.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(
                "the bearer token's algorithm is not accepted",
            ));
        }
        let kid = header.kid.as_deref();
        let keys = self.current_keys().await?;
        let keys = match find(&keys, kid, header.alg) {
            Some(_) => keys,
            None => self.refetch_for_unknown_kid(&keys).await?,
        };
        let key = find(&keys, kid, header.alg).ok_or(AuthError::Invalid(
            "the bearer token is signed with an unknown key",
        ))?;
        let config = &self.inner.config;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&config.issuers);
        validation.set_audience(&config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(reason(e.kind())))?;
        Ok(data.claims)
    }

    /// The cached keys, fetched first if there are none or they are older
    /// than `AUTH_JWKS_CACHE_SECS` (old keys are kept if that fetch fails).
    async fn current_keys(&self) -> Result<Arc<KeySet>, AuthError> {
        let cached = self.cached();
        if let Some(keys) = &cached
            && keys.fetched.elapsed() < self.inner.config.cache_for
        {
            return Ok(Arc::clone(keys));
        }
        let mut state = self.inner.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let cached = self.cached();
        if let Some(keys) = &cached
            && keys.fetched.elapsed() < self.inner.config.cache_for
        {
            return Ok(Arc::clone(keys));
        }
        if state
            .last_failure
            .is_some_and(|t| t.elapsed() < FAILED_FETCH_BACKOFF)
        {
            return cached.ok_or(AuthError::Unavailable);
        }
        match self.fetch().await {
            Ok(keys) => {
                state.last_failure = None;
                Ok(keys)
            }
            Err(()) => {
                state.last_failure = Some(Instant::now());
                cached.ok_or(AuthError::Unavailable)
            }
        }
    }

    /// One fetch for a `kid` the cached set lacks, unless one happened less
    /// than [`UNKNOWN_KID_REFETCH_INTERVAL`] ago.
    async fn refetch_for_unknown_kid(&self, seen: &Arc<KeySet>) -> Result<Arc<KeySet>, AuthError> {
        let mut state = self.inner.fetching.lock().await;
        if let Some(keys) = self.cached()
            && !Arc::ptr_eq(&keys, seen)
        {
            return Ok(keys); // fetched by another request meanwhile
        }
        if state
            .last_unknown_kid_fetch
            .is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH_INTERVAL)
        {
            return Ok(Arc::clone(seen));
        }
        state.last_unknown_kid_fetch = Some(Instant::now());
        Ok(self.fetch().await.unwrap_or_else(|()| Arc::clone(seen)))
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.inner.keys.read().ok().and_then(|k| k.clone())
    }

    /// Fetches and installs the key set. Failures are logged here (with the
    /// URL, which holds no secret) and reported as `Err(())`.
    async fn fetch(&self) -> Result<Arc<KeySet>, ()> {
        let url = &self.inner.config.jwks_url;
        let started = Instant::now();
        let outcome = self.download().await;
        let set = match outcome.and_then(|bytes| parse(&bytes)) {
            Ok(set) => set,
            Err(why) => {
                tracing::warn!(jwks_url = %url, error = why, "cannot fetch the JWKS");
                return Err(());
            }
        };
        tracing::info!(
            jwks_url = %url,
            keys = set.keys.len(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "fetched the JWKS"
        );
        let set = Arc::new(set);
        if let Ok(mut keys) = self.inner.keys.write() {
            *keys = Some(Arc::clone(&set));
        }
        Ok(set)
    }

    async fn download(&self) -> Result<Vec<u8>, &'static str> {
        let mut response = self
            .inner
            .http
            .get(self.inner.config.jwks_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out (AUTH_JWKS_TIMEOUT_MS)"
                } else {
                    "request failed"
                }
            })?;
        if !response.status().is_success() {
            return Err("the issuer answered with an error status");
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("the JWKS is larger than 256 KiB");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                "timed out (AUTH_JWKS_TIMEOUT_MS)"
            } else {
                "the body could not be read"
            }
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err("the JWKS is larger than 256 KiB");
            }
        }
        Ok(body)
    }
}

/// The usable signing keys of a JWKS document: public keys (RSA, EC, OKP)
/// meant for signatures; `oct` keys and keys for encryption are skipped.
fn parse(bytes: &[u8]) -> Result<KeySet, &'static str> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|_| "the JWKS is not valid JSON")?;
    let keys = set
        .keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature))
        .filter(|jwk| {
            matches!(
                jwk.algorithm,
                AlgorithmParameters::RSA(_)
                    | AlgorithmParameters::EllipticCurve(_)
                    | AlgorithmParameters::OctetKeyPair(_)
            )
        })
        .filter_map(|jwk| {
            Some(VerifyKey {
                kid: jwk.common.key_id.clone(),
                alg: match jwk.common.key_algorithm {
                    Some(alg) => Some(Algorithm::try_from(alg).ok()?),
                    None => None,
                },
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect::<Vec<_>>();
    if keys.is_empty() {
        return Err("the JWKS has no usable signing key");
    }
    Ok(KeySet {
        fetched: Instant::now(),
        keys,
    })
}

/// The key for a token: the entry named by `kid` (without one, the only
/// key of the family), of `alg`'s family and, if the entry says, of `alg`.
fn find<'a>(set: &'a KeySet, kid: Option<&str>, alg: Algorithm) -> Option<&'a VerifyKey> {
    let fits = |k: &&VerifyKey| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(fits)
            .find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let mut candidates = set.keys.iter().filter(fits);
            let only = candidates.next()?;
            candidates.next().is_none().then_some(only)
        }
    }
}

/// What the caller is told about a token that did not verify.
fn reason(kind: &JwtErrorKind) -> &'static str {
    match kind {
        JwtErrorKind::ExpiredSignature => "the bearer token has expired",
        JwtErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)",
        JwtErrorKind::InvalidIssuer => "the bearer token's issuer is not accepted",
        JwtErrorKind::InvalidAudience => "the bearer token's audience is not accepted",
        JwtErrorKind::MissingRequiredClaim(_) => {
            "the bearer token lacks a required claim (exp, iss, aud, sub)"
        }
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::MissingAlgorithm => {
            "the bearer token's algorithm is not accepted"
        }
        JwtErrorKind::InvalidSignature => "the bearer token's signature does not verify",
        _ => "the bearer token is not valid",
    }
}
