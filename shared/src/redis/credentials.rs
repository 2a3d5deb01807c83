//! Credential providers: where the user name and password of every new
//! connection come from. The client asks its provider again on every
//! (re)connect, so rotated credentials are picked up by the next connection
//! and a refused password is never remembered.
//!
//! - [`CredentialSource::Static`]: the password of `REDIS_URL` /
//!   `REDIS_PASSWORD`.
//! - [`CredentialSource::File`]: `REDIS_PASSWORD_FILE`, read on every
//!   connection (a secret mounted as a file and rotated in place).
//! - [`CredentialSource::ElasticacheIam`]: an ElastiCache IAM authentication
//!   token: a SigV4-presigned `GET` of `<cache>/?Action=connect&User=<user>`
//!   (service `elasticache`, valid 15 minutes), signed by `aws-sigv4` with
//!   the process's AWS credentials from the environment (on Lambda, the
//!   execution role's). Its layout is byte for byte what AWS's `botocore`
//!   generates (a test compares the two). A token is reused for at most
//!   [`IAM_TOKEN_REUSE`]; ElastiCache checks it only when a connection
//!   authenticates, and cuts IAM connections after 12 hours, so the client
//!   replaces connections older than `REDIS_MAX_CONNECTION_AGE_SECS`
//!   (11 hours by default with IAM).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{CredentialSource, RedisConfig, Secret};

/// How long one IAM token is handed to new connections (it is valid for 15
/// minutes; a connection authenticates within its connect timeout).
pub const IAM_TOKEN_REUSE: Duration = Duration::from_secs(10 * 60);

/// How long an IAM token is valid, as signed (`X-Amz-Expires`).
const IAM_TOKEN_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// What a connection authenticates with.
#[derive(Clone, Default)]
pub struct Credentials {
    /// ACL user name; `None` is the `default` user.
    pub username: Option<String>,
    /// Password or token; `None` sends no `AUTH`.
    pub password: Option<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why no credentials could be produced. The message names the setting and
/// never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no redis credentials: {0}")]
pub struct CredentialsError(String);

/// The provider a client asks on every (re)connect.
#[derive(Debug)]
pub struct CredentialProvider {
    source: CredentialSource,
    username: Option<String>,
    password: Option<Secret>,
    /// The last IAM token and when it was made.
    iam_token: Mutex<Option<(Instant, Secret)>>,
}

impl CredentialProvider {
    /// The provider `config.credentials` names.
    pub fn new(config: &RedisConfig) -> Self {
        Self {
            source: config.credentials.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            iam_token: Mutex::new(None),
        }
    }

    /// Whether the credentials never change (`static`).
    pub fn is_static(&self) -> bool {
        matches!(self.source, CredentialSource::Static)
    }

    /// `static`, `file` or `elasticache-iam`.
    pub fn kind(&self) -> &'static str {
        match self.source {
            CredentialSource::Static => "static",
            CredentialSource::File { .. } => "file",
            CredentialSource::ElasticacheIam { .. } => "elasticache-iam",
        }
    }

    /// The credentials for a connection made now.
    ///
    /// # Errors
    /// The password file cannot be read, or AWS credentials are missing from
    /// the environment, or the token cannot be signed.
    pub fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let password = match &self.source {
            CredentialSource::Static => self.password.clone(),
            CredentialSource::File { path } => Some(read_password_file(path)?),
            CredentialSource::ElasticacheIam {
                cache_name,
                region,
                serverless,
            } => Some(self.iam_token(cache_name, region, *serverless)?),
        };
        Ok(Credentials {
            username: self.username.clone(),
            password,
        })
    }

    fn iam_token(
        &self,
        cache_name: &str,
        region: &str,
        serverless: bool,
    ) -> Result<Secret, CredentialsError> {
        let mut cached = self.iam_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made, token)) = cached.as_ref()
            && made.elapsed() < IAM_TOKEN_REUSE
        {
            return Ok(token.clone());
        }
        let user = self.username.as_deref().ok_or_else(|| {
            CredentialsError("REDIS_USERNAME is required for elasticache-iam".into())
        })?;
        let aws = aws_credentials(|name| std::env::var(name).ok())?;
        let token = Secret::new(elasticache_iam_token(
            &IamTokenRequest {
                user,
                cache_name,
                region,
                serverless,
            },
            aws,
            SystemTime::now(),
        )?);
        *cached = Some((Instant::now(), token.clone()));
        Ok(token)
    }
}

/// The password in `path`: its content without the final line break.
fn read_password_file(path: &Path) -> Result<Secret, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CredentialsError(format!(
            "cannot read REDIS_PASSWORD_FILE {}: {}",
            path.display(),
            e.kind()
        ))
    })?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(Secret::new(password))
}

/// The process's AWS credentials, as Lambda (and the AWS SDKs' environment
/// provider) sets them, read through `env` (the process environment).
fn aws_credentials(
    env: impl Fn(&str) -> Option<String>,
) -> Result<AwsCredentials, CredentialsError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let (Some(access_key), Some(secret_key)) =
        (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(CredentialsError(
            "elasticache-iam needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them from the execution role)".into(),
        ));
    };
    Ok(AwsCredentials::new(
        access_key,
        secret_key,
        var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    ))
}

/// What an ElastiCache IAM token is for.
#[derive(Debug, Clone, Copy)]
pub struct IamTokenRequest<'a> {
    /// The IAM-enabled ElastiCache user id (equal to its name).
    pub user: &'a str,
    /// The replication group id, or the serverless cache name.
    pub cache_name: &'a str,
    /// The cache's AWS region.
    pub region: &'a str,
    /// ElastiCache Serverless (adds `ResourceType=ServerlessCache`).
    pub serverless: bool,
}

/// RFC 3986 unreserved characters stay; everything else is `%XX`, as SigV4
/// and botocore encode query values.
const SIGV4_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(value: &str) -> String {
    utf8_percent_encode(value, SIGV4_QUERY).to_string()
}

/// An ElastiCache IAM authentication token, signed at `now` with `aws`.
///
/// The token is the presigned URL without its scheme, with the query laid
/// out as botocore's `generate_presigned_url` lays it out (the request's own
/// parameters, then `X-Amz-Algorithm`, `-Credential`, `-Date`, `-Expires`,
/// `-SignedHeaders`, `-Security-Token`, `-Signature`); `aws-sigv4` computes
/// the signature.
///
/// # Errors
/// When the signing parameters are invalid (an empty region, say).
pub fn elasticache_iam_token(
    request: &IamTokenRequest<'_>,
    aws: AwsCredentials,
    now: SystemTime,
) -> Result<String, CredentialsError> {
    let failed = |what: &str| CredentialsError(format!("cannot sign the IAM token ({what})"));
    let mut query = format!("Action=connect&User={}", encode(request.user));
    if request.serverless {
        query.push_str("&ResourceType=ServerlessCache");
    }
    // The scheme is not signed; it is not part of the token either.
    let url = format!("https://{}/?{query}", request.cache_name);
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(IAM_TOKEN_VALIDITY);
    let identity = aws.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name("elasticache")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|_| failed("signing parameters"))?
        .into();
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|_| failed("request"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| failed("signature"))?
        .into_parts();
    let mut token = format!("{}/?{query}", request.cache_name);
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some((_, value)) = instructions.params().iter().find(|(n, _)| *n == name) {
            token.push('&');
            token.push_str(name);
            token.push('=');
            token.push_str(&encode(value));
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 2024-01-15T12:00:00Z.
    fn fixed_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_705_320_000)
    }

    fn example_credentials(session: bool) -> AwsCredentials {
        AwsCredentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.then(|| "IQoJb3JpZ2luX2VjEXAMPLE/+session=token".to_owned()),
            None,
            "test",
        )
    }

    #[test]
    fn aws_credentials_come_from_the_lambda_variables_and_empty_ones_are_missing() {
        let none = aws_credentials(|_| None).unwrap_err().to_string();
        assert!(
            none.contains("AWS_ACCESS_KEY_ID") && none.contains("AWS_SECRET_ACCESS_KEY"),
            "{none}"
        );
        // Set but empty is missing too (an unset secret in a template).
        let empty = aws_credentials(|name| {
            Some(
                if name == "AWS_ACCESS_KEY_ID" {
                    "AKID"
                } else {
                    ""
                }
                .to_owned(),
            )
        });
        assert!(empty.is_err());
        let full = aws_credentials(|name| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-key-example".into()),
            "AWS_SESSION_TOKEN" => Some("session-token-example".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(full.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(full.session_token(), Some("session-token-example"));
    }

    #[test]
    fn a_password_file_loses_only_its_final_line_break_and_a_missing_one_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        for (content, expected) in [
            ("p@ss word\n", "p@ss word"),
            ("p@ss word\r\n", "p@ss word"),
            ("p@ss word", "p@ss word"),
            ("two\nlines\n", "two\nlines"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_password_file(&path).unwrap().expose(), expected);
        }
        std::fs::write(&path, "kept-out-of-errors").unwrap();
        let missing = dir.path().join("absent");
        let err = read_password_file(&missing).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_PASSWORD_FILE") && err.contains("absent"),
            "{err}"
        );
        assert!(!err.contains("kept-out-of-errors"));
    }

    /// Tokens botocore 1.44.8 generated for the same inputs (see
    /// `shared/tests/iam_token.rs`, which runs botocore itself).
    #[test]
    fn iam_tokens_match_what_botocore_generated_for_fixed_inputs() {
        let request = IamTokenRequest {
            user: "app-user",
            cache_name: "my-replication-group",
            region: "eu-west-1",
            serverless: false,
        };
        let token =
            elasticache_iam_token(&request, example_credentials(true), fixed_now()).unwrap();
        assert_eq!(
            token,
            "my-replication-group/?Action=connect&User=app-user&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20240115%2Feu-west-1%2Felasticache%2Faws4_request\
             &X-Amz-Date=20240115T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Bsession%3Dtoken\
             &X-Amz-Signature=78be20ce32d37a9f9a25184a4b8c057fbf4eb6895bf3eb0ccd0151e42f543ebe"
        );
        let token =
            elasticache_iam_token(&request, example_credentials(false), fixed_now()).unwrap();
        assert!(token.ends_with(
            "&X-Amz-Signature=fc764d43feef83eee186fe0ef359caf7d2b32ca87c5e41782ca91210e7741d2c"
        ));
        assert!(!token.contains("Security-Token"));
    }

    #[test]
    fn password_files_are_read_on_every_call_without_the_final_newline() {
        let dir = std::env::temp_dir().join(format!("cred-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("password");
        std::fs::write(&path, "first\n").unwrap();
        let provider = CredentialProvider {
            source: CredentialSource::File { path: path.clone() },
            username: Some("app".into()),
            password: None,
            iam_token: Mutex::new(None),
        };
        let first = provider.credentials().unwrap();
        assert_eq!(first.password.as_ref().unwrap().expose(), "first");
        std::fs::write(&path, "second\r\n").unwrap();
        assert_eq!(
            provider.credentials().unwrap().password.unwrap().expose(),
            "second"
        );
        std::fs::remove_file(&path).unwrap();
        let err = provider.credentials().unwrap_err();
        assert!(err.to_string().contains("REDIS_PASSWORD_FILE"), "{err}");
        assert!(!format!("{first:?}").contains("first\""));
    }
}
