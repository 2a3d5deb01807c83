//! `tebra_debug` on AWS Lambda or as a server on `$PORT`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match shared::start("tebra_debug") {
        Ok(ctx) => shared::serve(tebra_debug::app(ctx.clone()), &ctx).await,
        Err(code) => code,
    }
}
