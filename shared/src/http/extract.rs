//! Extractors whose rejections are [`ApiError`]s in the one error shape and
//! never quote the caller's input: [`Json`] (the body),
//! [`PathParams`] and [`QueryParams`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body. Like `axum::Json`, but rejections are [`ApiError`]s
/// (`415` without a JSON content type, `413` over the body limit, `400`
/// otherwise) whose messages give the position of the problem, never a key
/// or a value of the body: a key can be patient data too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is larger than the limit (MAX_BODY_BYTES)")
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document into `T` with the [`Json`] extractor's error messages.
///
/// # Errors
/// `400` naming the line and column of the problem, and its kind (syntax,
/// or a field missing, unknown or of the wrong type). Neither the field
/// path nor serde's message is used: both can quote the caller's keys.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let syntax = |inner: &serde_json::Error| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).map_err(|inner| {
        if inner.classify() != serde_json::error::Category::Data {
            return syntax(&inner);
        }
        ApiError::bad_request(
            "invalid_body",
            format!(
                "the body does not have the expected shape near line {}, column {}: \
                 a field is missing, not accepted here, or of the wrong type (see the route's documentation)",
                inner.line(),
                inner.column()
            ),
        )
    })?;
    de.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

/// Path parameters whose rejection is an [`ApiError`] (`400`, JSON).
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_path",
                    "a path segment is not valid (percent-encoded UTF-8 expected)",
                )
            })
    }
}

/// Query parameters whose rejection is an [`ApiError`] (`400`, JSON).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "a query parameter is missing or has the wrong type",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_position_not_the_path_or_the_value() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            patients: Vec<Patient>,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Patient {
            #[allow(dead_code)]
            id: String,
        }
        let err = parse_json::<Body>(br#"{"patients":[{"id":"a"},{"id":12345678}]}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let message = format!("{err:?}");
        assert!(message.contains("line 1, column"), "{message}");
        assert!(!message.contains("12345678"));
        let err = parse_json::<Body>(br#"{"patients": [ "#).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let err = parse_json::<Body>(br#"{"patients": []} trailing"#).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
    }
}
