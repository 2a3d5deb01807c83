//! HTTP glue: one axum `Router` served on AWS Lambda or as a plain server.
//!
//! The top of the crate: it uses every other subsystem and nothing uses it.
//!
//! # Layout
//!
//! - [`app`]: [`AppContext`] (configuration, Redis client, health probe,
//!   metrics reporter) and the [`start`] / [`serve()`] pair a function's `main` calls.
//! - [`routes`]: [`finish`], the routes and layers every function has.
//! - [`server`]: [`serve_router`] on Lambda or `$PORT` (header-read timeout, connection cap), [`serve_on`] for tests.
//! - [`lambda`]: the Lambda handler (every event shape, stages, invalid URIs), [`for_lambda`], the shutdown extension.
//! - [`error`]: [`ApiError`], the one error shape, and the conversion of every building block's error.
//! - [`extract`]: [`Json`], [`PathParams`], [`QueryParams`]: extractors whose errors never quote the input.
//! - [`admin`]: [`admin_only`], bearer-token guard of admin routes, failed attempts throttled.
//! - [`auth`]: [`bind_tenant`], authentication (`AUTH_MODE`) and tenant binding of a function's routes; [`Caller`].

pub mod admin;
pub mod app;
pub mod auth;
pub mod error;
pub mod extract;
pub mod lambda;
pub mod routes;
pub mod server;

pub use admin::admin_only;
pub use app::{AppContext, serve, start};
pub use auth::{Authenticator, Caller, bind_tenant};
pub use error::ApiError;
pub use extract::{Json, PathParams, QueryParams};
pub use lambda::{LambdaHandler, for_lambda};
pub use routes::{REQUEST_ID_HEADER, finish};
pub use server::{
    ServeError, ServerLimits, serve_on, serve_router, serve_router_then, serve_with_limits,
};
