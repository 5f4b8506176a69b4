//! The worker binary as a user runs it, for the fault suite: a child process with its
//! log in a file, its probes found from that log, and the signals an operator (or the
//! kernel) sends it: SIGTERM, `kill -9`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::PATIENCE;

/// The log line that names the probes' address (see `cli::run`).
const SERVING: &str = "serving /healthz, /readyz and /metrics";

pub struct BinaryWorker {
    child: Child,
    log: PathBuf,
    /// `http://ADDR` of its `/healthz`, `/readyz` and `/metrics`.
    pub base: String,
    http: reqwest::Client,
}

impl BinaryWorker {
    /// Starts `nephoran-kafka-consumer run ARGS` with `env`, its log (JSON lines) in
    /// `log`, and waits until it serves its probes.
    pub async fn start(args: &[String], env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("worker log file");
        let child = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker binary");
        let mut worker = Self {
            child,
            log: log.to_path_buf(),
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client"),
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        worker.base = loop {
            if let Some(addr) = worker.served_at() {
                break format!("http://{addr}");
            }
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!(
                    "the worker exited at start ({status}):\n{}",
                    worker.log_text()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not serve its probes within {PATIENCE:?}:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        worker
    }

    fn served_at(&self) -> Option<String> {
        self.log_text().lines().find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = line.get("fields")?;
            (fields.get("message")?.as_str()? == SERVING)
                .then(|| fields.get("addr")?.as_str().map(str::to_string))?
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines whose message is `message`.
    pub fn log_count(&self, message: &str) -> usize {
        self.logged(message).len()
    }

    /// The fields of each log line whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|l| l["fields"]["message"].as_str() == Some(message))
            .map(|l| l["fields"].clone())
            .collect()
    }

    /// GET `path`: the status and the body, or None when the worker does not answer.
    pub async fn probe(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// The sum of every series of metric `name` on `/metrics` (0 when it has none).
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, page) = self
            .probe("/metrics")
            .await
            .expect("the worker serves /metrics");
        assert_eq!(status, 200, "/metrics: {page}");
        page.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `/readyz` says ready with at least one partition assigned.
    pub async fn until_ready_with_partitions(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = self.probe("/readyz").await;
            if let Some((200, body)) = &answer {
                if !body.contains("ready, 0 partitions") {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker is not ready with partitions after {PATIENCE:?}: /readyz {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `/healthz` and `/readyz` both answer 200 (readiness may take a rebalance to
    /// return after a fault, so it is awaited; liveness must hold throughout).
    pub async fn assert_live_and_ready(&self) {
        let live = self.probe("/healthz").await;
        assert!(
            matches!(live, Some((200, _))),
            "/healthz answered {live:?}; log:\n{}",
            self.tail()
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let ready = self.probe("/readyz").await;
            if matches!(ready, Some((200, _))) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz answered {ready:?} for {PATIENCE:?}; log:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the log, for a failure message.
    pub fn tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `kill -9`: no shutdown, no commit, no leaving the group.
    pub async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9 the worker");
    }

    /// SIGTERM, then waits for the exit (the worker's shutdown deadline is 20 s).
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the worker runs").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the worker exits after SIGTERM within the patience")
            .expect("wait for the worker")
    }
}
