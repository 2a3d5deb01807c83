//! `patient_sync` on AWS Lambda or as a server on `$PORT`.

use std::io::Write as _;
use std::process::ExitCode;

use shared::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    let ctx = match shared::start("patient_sync") {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let settings = match patient_sync::Settings::from_env(&Env::from_process(), &ctx.config) {
        Ok(settings) => settings,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "patient_sync: configuration error: {err}"
            );
            return ExitCode::from(2);
        }
    };
    shared::serve(patient_sync::app_with(ctx.clone(), settings), &ctx).await
}
