//! Logging: JSON lines on Lambda (CloudWatch parses them), readable text locally.

use tracing_subscriber::EnvFilter;

/// True inside an AWS Lambda execution environment.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Installs the global subscriber once; `RUST_LOG` filters (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second call (several tests in one process) keeps the first subscriber.
    let _ = if on_lambda() {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        builder.with_target(false).with_ansi(colour).try_init()
    };
}
