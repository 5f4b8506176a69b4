//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info,rdkafka=warn`), as JSON when
//! `LOG_FORMAT=json` (for log pipelines) and human-readable otherwise. Stdout is left to
//! the `stdout` intent sink and to the command-line tools. Colours only on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: in a log pipeline they are noise,
        // and an escape sequence in a log file should only ever be one that was quoted.
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
