//! `tebra_debug` on AWS Lambda or as a server on `$PORT`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let ctx = match shared::start("tebra_debug") {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    match tebra_debug::Settings::from_env(&shared::config::Env::from_process(), &ctx.config) {
        Ok(settings) => shared::serve(tebra_debug::app_with(ctx.clone(), settings), &ctx).await,
        Err(err) => {
            tracing::error!(error = %err, "tebra_debug: configuration error");
            ExitCode::from(2)
        }
    }
}
