//! `patient_sync` on AWS Lambda or as a server on `$PORT`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match shared::start("patient_sync") {
        Ok(ctx) => shared::serve(patient_sync::app(ctx.clone()), &ctx).await,
        Err(code) => code,
    }
}
