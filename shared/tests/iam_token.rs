//! The ElastiCache IAM authentication token the credential provider signs
//! (with `aws-sigv4`) is byte for byte the one AWS's own Python SDK
//! (`botocore`, from PyPI, in the test virtual environment that `make test`
//! makes) signs for the same inputs: fixed credentials, regions, users
//! (characters that must be escaped included), caches and instants.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use serde_json::json;
use shared::redis::credentials::{IamTokenRequest, elasticache_iam_token};

/// The Python of the test virtual environment (`clients/python/.venv`, made
/// by `scripts/setup.sh test`), or `SESSIONS_ADK_VENV`'s.
fn python() -> PathBuf {
    let venv = std::env::var_os("SESSIONS_ADK_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/python/.venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `scripts/setup.sh test` (make test does) to make the test virtual environment with botocore",
        python.display()
    );
    python
}

fn botocore_token(request: &serde_json::Value) -> String {
    let oracle =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/botocore_iam_token.py");
    let mut child = Command::new(python())
        .arg(oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_token_is_what_botocore_signs_for_the_same_inputs() {
    let cases = [
        (
            "app-user",
            "my-replication-group",
            "eu-west-1",
            false,
            true,
            1_705_320_000,
        ),
        (
            "app-user",
            "my-replication-group",
            "eu-west-1",
            false,
            false,
            1_705_320_000,
        ),
        (
            "app user+1/é",
            "group-2",
            "us-east-1",
            false,
            true,
            1_796_000_123,
        ),
        (
            "svc",
            "my-serverless-cache",
            "ap-southeast-2",
            true,
            true,
            1_800_000_000,
        ),
    ];
    for (user, cache, region, serverless, session, epoch) in cases {
        let (access, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let token_value = "IQoJb3JpZ2luX2VjEXAMPLE/+session=token";
        let ours = elasticache_iam_token(
            &IamTokenRequest {
                user,
                cache_name: cache,
                region,
                serverless,
            },
            Credentials::new(
                access,
                secret,
                session.then(|| token_value.to_owned()),
                None,
                "test",
            ),
            UNIX_EPOCH + Duration::from_secs(epoch),
        )
        .unwrap();
        let theirs = botocore_token(&json!({
            "user": user, "cache_name": cache, "region": region, "serverless": serverless,
            "access_key": access, "secret_key": secret,
            "session_token": session.then_some(token_value), "epoch_seconds": epoch,
        }));
        assert_eq!(ours, theirs, "{user} {cache} {region}");
    }
}
