//! [`TestIdp`]: an OIDC-style token issuer on loopback, for `AUTH_MODE=jwt`
//! tests. It generates its own keys (RSA 2048 and EC P-256), serves their
//! JWKS over HTTP, signs tokens with them, and forges the tokens an attacker
//! would try ([`TestIdp::bad_credentials`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

/// The audience of every token a [`TestIdp`] signs unless told otherwise.
pub const TEST_AUDIENCE: &str = "redis-functions-tests";

/// A signing key of a [`TestIdp`], with its public half as a JWK.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
    /// The public key as bytes an HMAC forger would use as the secret:
    /// SPKI PEM, PKCS#1 DER.
    public_forms: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A fresh RSA 2048 key for RS256.
    pub fn rsa(kid: &str) -> Self {
        let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("an RSA key");
        let der = private.to_pkcs1_der().expect("PKCS#1 DER");
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let public = private.to_public_key();
        let public_forms = vec![
            public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .expect("SPKI PEM")
                .into_bytes(),
            public
                .to_pkcs1_der()
                .expect("PKCS#1 DER")
                .as_bytes()
                .to_vec(),
        ];
        Self::with(kid, Algorithm::RS256, encoding, public_forms)
    }

    /// A fresh EC P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("an EC key");
        let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
        let public_forms = vec![
            pair.public_key_pem().into_bytes(),
            pair.public_key_raw().to_vec(),
        ];
        Self::with(kid, Algorithm::ES256, encoding, public_forms)
    }

    fn with(kid: &str, alg: Algorithm, encoding: EncodingKey, public_forms: Vec<Vec<u8>>) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
            public_forms,
        }
    }

    /// Its `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `claims` signed with this key (header `alg` and `kid` set).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("a signed token")
    }
}

/// A credential a test sends, and what it is.
#[derive(Debug, Clone)]
pub struct BadCredential {
    /// What makes it bad, for the failure message.
    pub name: &'static str,
    /// The `Authorization` header value; `None` sends none.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    published: Vec<Jwk>,
    fetches: u64,
    failing: bool,
    stall: Option<Duration>,
}

/// A token issuer on `127.0.0.1` serving `GET /jwks` (see the module
/// documentation). Its issuer is its own URL.
#[derive(Clone)]
pub struct TestIdp {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    rsa: TestKey,
    ec: TestKey,
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

impl TestIdp {
    /// Generates an RSA key (`rsa-1`) and an EC key (`ec-1`), publishes both
    /// and serves them (inside a tokio runtime).
    pub async fn start() -> Self {
        use axum::extract::State as AxState;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;

        let (rsa, ec) =
            tokio::task::spawn_blocking(|| (TestKey::rsa("rsa-1"), TestKey::ec("ec-1")))
                .await
                .expect("key generation");
        let state = Arc::new(Mutex::new(State {
            published: vec![rsa.jwk.clone(), ec.jwk.clone()],
            ..State::default()
        }));
        async fn jwks(AxState(state): AxState<Arc<Mutex<State>>>) -> axum::response::Response {
            let (stall, failing, set) = {
                let mut s = state.lock().unwrap();
                s.fetches += 1;
                (
                    s.stall,
                    s.failing,
                    JwkSet {
                        keys: s.published.clone(),
                    },
                )
            };
            if let Some(stall) = stall {
                tokio::time::sleep(stall).await;
            }
            if failing {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            axum::Json(set).into_response()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(jwks))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            state,
            rsa,
            ec,
        }
    }

    /// `http://127.0.0.1:<port>/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.address)
    }

    /// The `iss` of its tokens: `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The settings of `AUTH_MODE=jwt` against this issuer.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AUTH_MODE", "jwt".into()),
            ("AUTH_JWKS_URL", self.jwks_url()),
            ("AUTH_ISSUER", self.issuer()),
            ("AUTH_AUDIENCE", TEST_AUDIENCE.into()),
        ]
    }

    /// The published RSA key.
    pub fn rsa(&self) -> &TestKey {
        &self.rsa
    }

    /// The published EC key.
    pub fn ec(&self) -> &TestKey {
        &self.ec
    }

    /// Valid claims for `sub` and `tenants`: this issuer, [`TEST_AUDIENCE`],
    /// issued now, expiring in 5 minutes.
    pub fn claims(&self, sub: &str, tenants: &[&str]) -> Value {
        let now = now_secs();
        json!({
            "iss": self.issuer(),
            "aud": TEST_AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenants": tenants,
        })
    }

    /// A valid RS256 token of `user-1` for `tenants`.
    pub fn token(&self, tenants: &[&str]) -> String {
        self.rsa.sign(&self.claims("user-1", tenants))
    }

    /// `Bearer <token>` of [`TestIdp::token`].
    pub fn bearer(&self, tenants: &[&str]) -> String {
        format!("Bearer {}", self.token(tenants))
    }

    /// Replaces the published keys (a rotation publishes the new key and,
    /// later, drops the old one).
    pub fn publish(&self, keys: &[&TestKey]) {
        self.state.lock().unwrap().published = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.state.lock().unwrap().fetches
    }

    /// While `true`, the JWKS answers `503`.
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// Delays every JWKS answer by `stall` (`None`: answer at once).
    pub fn set_stall(&self, stall: Option<Duration>) {
        self.state.lock().unwrap().stall = stall;
    }

    /// `claims` as a token with `alg: none` and no signature.
    pub fn unsigned(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.rsa.kid});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// `claims` as HS256 tokens whose HMAC secret is `key`'s public key (in
    /// each form a forger might pick), with `key`'s `kid`: what a verifier
    /// that lets the token choose the algorithm would accept.
    pub fn hmac_with_public_key(&self, key: &TestKey, claims: &Value) -> Vec<String> {
        key.public_forms
            .iter()
            .map(|secret| {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(key.kid.clone());
                let hmac = EncodingKey::from_secret(secret).expect("an HMAC key");
                jsonwebtoken::encode(&header, claims, &hmac).expect("an HS256 token")
            })
            .collect()
    }

    /// Every credential that must be refused with `401` for a request to
    /// `tenant`: none, malformed, wrong scheme, expired (past the leeway),
    /// not yet valid, another issuer, another audience, no subject,
    /// `alg: none`, HMAC keyed with the public key, an unpublished key, a
    /// tampered payload.
    pub fn bad_credentials(&self, tenant: &str) -> Vec<BadCredential> {
        let good = self.claims("user-1", &[tenant]);
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = good.clone();
            f(&mut c);
            c
        };
        let bearer = |token: String| Some(format!("Bearer {token}"));
        let now = now_secs();
        let mut out = vec![
            BadCredential {
                name: "no Authorization header",
                authorization: None,
            },
            BadCredential {
                name: "not a JWT",
                authorization: bearer("not-a-token".into()),
            },
            BadCredential {
                name: "Basic scheme",
                authorization: Some("Basic dXNlcjpwYXNz".into()),
            },
            BadCredential {
                name: "expired beyond the leeway",
                authorization: bearer(self.rsa.sign(&with(&|c| {
                    c["exp"] = json!(now - 120);
                    c["iat"] = json!(now - 600);
                    c["nbf"] = json!(now - 600);
                }))),
            },
            BadCredential {
                name: "not valid yet",
                authorization: bearer(self.rsa.sign(&with(&|c| c["nbf"] = json!(now + 600)))),
            },
            BadCredential {
                name: "another issuer",
                authorization: bearer(
                    self.rsa
                        .sign(&with(&|c| c["iss"] = json!("https://evil.example"))),
                ),
            },
            BadCredential {
                name: "another audience",
                authorization: bearer(self.ec.sign(&with(&|c| c["aud"] = json!("another-api")))),
            },
            BadCredential {
                name: "no subject",
                authorization: bearer(self.rsa.sign(&with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }))),
            },
            BadCredential {
                name: "alg none",
                authorization: bearer(self.unsigned(&good)),
            },
            BadCredential {
                name: "a published kid, another key",
                authorization: bearer(TestKey::ec("ec-1").sign(&good)),
            },
            BadCredential {
                name: "an unpublished kid",
                authorization: bearer(TestKey::ec("ec-unknown").sign(&good)),
            },
            BadCredential {
                name: "payload changed after signing",
                authorization: bearer({
                    let token = self.rsa.sign(&good);
                    let mut parts: Vec<&str> = token.split('.').collect();
                    let forged = URL_SAFE_NO_PAD.encode(
                        with(&|c| c["tenants"] = json!([tenant, "everything"])).to_string(),
                    );
                    parts[1] = &forged;
                    parts.join(".")
                }),
            },
        ];
        for token in self.hmac_with_public_key(&self.rsa, &good) {
            out.push(BadCredential {
                name: "HS256 keyed with the RSA public key",
                authorization: bearer(token),
            });
        }
        for token in self.hmac_with_public_key(&self.ec, &good) {
            out.push(BadCredential {
                name: "HS256 keyed with the EC public key",
                authorization: bearer(token),
            });
        }
        out
    }
}
