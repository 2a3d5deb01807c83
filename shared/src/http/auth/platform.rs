//! The identity the platform verified and passes to the function
//! (`AUTH_MODE=platform`).
//!
//! - **Lambda** puts it in the event's request context, which the caller
//!   cannot write (`lambda_http` hands it over as a request extension):
//!   - HTTP API or Function URL: `authorizer.jwt.claims` (a JWT
//!     authorizer: Cognito, any OIDC issuer), `authorizer.lambda` (a Lambda
//!     authorizer's context, its principal in `sub` or `principalId`),
//!     `authorizer.iam` (IAM / SigV4: the principal is `userArn`);
//!   - REST API: `authorizer.claims` (a Cognito authorizer),
//!     `authorizer.principalId` (a Lambda authorizer, its context beside
//!     it), `identity.userArn` (IAM).
//! - **Cloud Run** checks the caller's Google-signed ID token before the
//!   request reaches the container (IAM invoker check) and passes it on:
//!   `X-Serverless-Authorization` if the caller used it, else
//!   `Authorization`. Its claims are read without checking the signature
//!   again (Cloud Run may strip it); this is sound only while the service
//!   requires authentication, which the deploy path enforces
//!   (`--no-allow-unauthenticated`). For a second check in the function, use
//!   `AUTH_MODE=jwt` with Google's settings.
//!
//! Anywhere else no platform identity exists and there is none to read.

use axum::http::request::Parts;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyRequestContext, ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde_json::{Map, Value};

use super::{AuthError, bearer};
use crate::config::Runtime;

/// An identity the platform passed.
#[derive(Debug)]
pub(super) struct PlatformIdentity {
    /// Who: a token's `sub`, an authorizer's principal, an IAM ARN.
    pub(super) principal: String,
    /// The claims or authorizer context that came with it, if any.
    pub(super) claims: Option<Map<String, Value>>,
}

/// The identity of a request, `Ok(None)` when the platform passed none.
///
/// # Errors
/// On Cloud Run, a token header that cannot be read.
pub(super) fn identity(
    parts: &Parts,
    runtime: Runtime,
) -> Result<Option<PlatformIdentity>, AuthError> {
    if let Some(context) = parts.extensions.get::<RequestContext>() {
        return Ok(match context {
            RequestContext::ApiGatewayV2(ctx) => from_http_api(ctx),
            RequestContext::ApiGatewayV1(ctx) => from_rest_api(ctx),
            // An ALB passes no verified identity in the event.
            _ => None,
        });
    }
    if runtime != Runtime::CloudRun {
        return Ok(None);
    }
    let token = match bearer(parts, "x-serverless-authorization")? {
        Some(token) => Some(token),
        None => bearer(parts, axum::http::header::AUTHORIZATION.as_str())?,
    };
    let Some(token) = token else {
        return Ok(None);
    };
    let claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| AuthError::Invalid("the identity token Cloud Run passed is malformed"))?;
    let principal = super::subject(&claims)?;
    Ok(Some(PlatformIdentity {
        principal,
        claims: Some(claims),
    }))
}

/// HTTP API (payload 2.0) and Function URL events.
fn from_http_api(ctx: &ApiGatewayV2httpRequestContext) -> Option<PlatformIdentity> {
    let authorizer = ctx.authorizer.as_ref()?;
    if let Some(jwt) = &authorizer.jwt {
        let claims: Map<String, Value> = jwt
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        return with_principal(claims, &["sub"]);
    }
    if !authorizer.fields.is_empty() {
        let claims: Map<String, Value> = authorizer
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return with_principal(claims, &["sub", "principalId"]);
    }
    let iam = authorizer.iam.as_ref()?;
    let arn = iam.user_arn.as_ref().filter(|a| !a.is_empty())?;
    Some(PlatformIdentity {
        principal: arn.clone(),
        claims: None,
    })
}

/// REST API (payload 1.0) events.
fn from_rest_api(ctx: &ApiGatewayProxyRequestContext) -> Option<PlatformIdentity> {
    let authorizer: &ApiGatewayRequestAuthorizer = &ctx.authorizer;
    if let Some(Value::Object(claims)) = authorizer.fields.get("claims") {
        return with_principal(claims.clone(), &["sub"]);
    }
    if authorizer.fields.contains_key("principalId") {
        let context: Map<String, Value> = authorizer
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return with_principal(context, &["principalId"]);
    }
    let arn = ctx.identity.user_arn.as_ref().filter(|a| !a.is_empty())?;
    Some(PlatformIdentity {
        principal: arn.clone(),
        claims: None,
    })
}

/// The identity whose principal is the first non-empty string among `names`.
fn with_principal(claims: Map<String, Value>, names: &[&str]) -> Option<PlatformIdentity> {
    let principal = names
        .iter()
        .find_map(|n| {
            claims
                .get(*n)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })?
        .to_owned();
    Some(PlatformIdentity {
        principal,
        claims: Some(claims),
    })
}
