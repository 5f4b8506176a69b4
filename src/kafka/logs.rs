//! librdkafka's own log lines, into `tracing` with their level and facility.
//!
//! rdkafka hands them to the client context, whose default sends them to the `log` crate,
//! which nothing here reads: a consumer evicted for exceeding `max.poll.interval.ms`, a
//! broker refusing a connection or a fatal idempotence error left no trace. The consumer
//! and producer contexts send them here instead, as events of target `librdkafka` with
//! the facility (`MAXPOLL`, `FAIL`, `FATAL`, ...) as a field. The text is librdkafka's and
//! may quote what a broker sent: control characters are escaped.

use rdkafka::config::RDKafkaLogLevel;
use tracing::{debug, error, info, warn};

/// The level librdkafka is asked to log at: what an operator wants without debug
/// contexts (`debug` in the client properties still raises it).
pub const LEVEL: RDKafkaLogLevel = RDKafkaLogLevel::Info;

/// One librdkafka log line as a `tracing` event.
pub fn forward(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let message = message.escape_debug().to_string();
    let facility = facility.escape_debug().to_string();
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test subscriber writes into.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_keep_their_level_and_facility_and_lose_their_control_characters() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            forward(
                RDKafkaLogLevel::Warning,
                "MAXPOLL",
                "Application maximum poll interval (300000ms) exceeded",
            );
            forward(RDKafkaLogLevel::Critical, "FATAL", "fatal\n\u{1b}[2Jforged");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["target"], "librdkafka");
        assert_eq!(lines[0]["fields"]["facility"], "MAXPOLL");
        assert_eq!(lines[1]["level"], "ERROR");
        let message = lines[1]["fields"]["message"].as_str().unwrap();
        assert!(!message.contains(['\n', '\u{1b}']), "{message}");
        assert!(message.contains("forged"), "{message}");
    }
}
