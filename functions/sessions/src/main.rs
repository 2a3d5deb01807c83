//! `sessions` on AWS Lambda or as a server on `$PORT`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let ctx = match shared::start("sessions") {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    match sessions::Stores::open(&ctx, &shared::config::Env::from_process()).await {
        Ok(stores) => shared::serve(sessions::app(ctx.clone(), stores), &ctx).await,
        Err(code) => code,
    }
}
