//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as JSON when
//! `LOG_FORMAT=json` (for log pipelines) and human-readable otherwise. Stdout is left to
//! the `stdout` intent sink and to the command-line tools.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
