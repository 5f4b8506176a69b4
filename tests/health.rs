//! The probes tell the truth under faults, against real brokers: a broker paused with
//! SIGSTOP fails `/readyz` naming the brokers and it recovers after SIGCONT; a producer
//! queue that stays full fails `/readyz` naming the queue, and SIGTERM still ends the
//! process within its shutdown deadline; `/healthz` stays 200 while a revocation waits
//! for a long drain.
//!
//! The tests that pause a broker start a private one (the development broker script, on a
//! free port), so that the other tests sharing the suite's broker are not disturbed.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use common::broker::PrivateBroker;
use common::{producer, Outcomes, SlowTranslator, TestTopics, Worker, PATIENCE};
use nephoran_kafka_consumer::config::Config;

/// Test topics and group on a private broker.
async fn topics_on(broker: &PrivateBroker, name: &str, partitions: i32) -> TestTopics {
    TestTopics::create_on(&broker.address, name, partitions).await
}

/// `topics.args` pointed at a private broker, with `settings` replaced or added.
fn args_on(
    broker: &PrivateBroker,
    topics: &TestTopics,
    dir: &std::path::Path,
    settings: &[(&str, &str)],
) -> Vec<String> {
    let mut args = topics.args(dir);
    let mut set = |flag: &str, value: &str| match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    };
    set("--brokers", &broker.address);
    for (flag, value) in settings {
        set(flag, value);
    }
    args
}

/// A worker's configuration from its command-line arguments.
fn config_from(args: Vec<String>) -> Config {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }
    let args = std::iter::once("worker".to_string()).chain(args);
    Wrapper::try_parse_from(args).expect("test config").config
}

/// GETs `path`: (status, body); (0, error) when the server does not answer.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `path` until its answer satisfies `wanted`, within the patience; returns it.
async fn until(
    addr: SocketAddr,
    path: &str,
    what: &str,
    wanted: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = (0, String::new());
    while tokio::time::Instant::now() < deadline {
        last = get(addr, path).await;
        if wanted(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{path}: {what} not seen within {PATIENCE:?}; last answer {last:?}");
}

fn request(key: &str, i: usize) -> Vec<u8> {
    serde_json::json!({
        "idempotency_key": key,
        "intent": format!("Deploy UPF with {} replicas in namespace edge-{}", i % 5 + 1, i % 4),
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_broker_fails_readiness_naming_the_brokers_until_it_answers_again() {
    let broker = PrivateBroker::start();
    let topics = topics_on(&broker, "paused", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let args = args_on(&broker, &topics, dir.path(), &[("--readiness-grace", "2s")]);
    let worker = Worker::start(config_from(args));
    let addr = nephoran_kafka_consumer::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        worker.health.clone(),
        None,
    )
    .await
    .unwrap();
    until(addr, "/readyz", "ready", |status, _| status == 200).await;

    broker.pause();
    let (_, body) = until(addr, "/readyz", "503 naming the brokers", |status, body| {
        status == 503 && body.contains("no Kafka broker reachable")
    })
    .await;
    assert!(
        body.starts_with("not ready: no Kafka broker reachable for "),
        "{body}"
    );
    assert!(body.contains("(READINESS_GRACE 2s)"), "{body}");
    assert_eq!(
        get(addr, "/healthz").await,
        (200, "ok\n".to_string()),
        "the loops still turn: a broker down is not a reason to restart"
    );

    broker.resume();
    let (_, body) = until(addr, "/readyz", "ready again", |status, _| status == 200).await;
    assert!(body.starts_with("ready"), "{body}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_producer_queue_fails_readiness_and_sigterm_still_ends_the_worker_in_time() {
    const MESSAGES: usize = 3000;
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    let broker = PrivateBroker::start();
    let topics = topics_on(&broker, "queuefull", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &broker.address);
        config.create().expect("producer")
    };
    let messages = (0..MESSAGES).map(|i| (format!("full-{i}"), request(&format!("full-{i}"), i)));
    common::produce_all(&producer, &topics.service_requests, 1, messages).await;

    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let args = args_on(
        &broker,
        &topics,
        &dir.path().join("intents"),
        &[
            ("--readiness-grace", "2s"),
            ("--shutdown-timeout", "5s"),
            ("--metrics-addr", &metrics_addr.to_string()),
        ],
    );
    let log_path = dir.path().join("worker.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .arg("run")
        .args(&args)
        // A queue of one message, each held a while: the worker fills it at once.
        .args(["--kafka-config", "queue.buffering.max.messages=1"])
        .args(["--kafka-config", "linger.ms=20"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Mid-stream: messages done, more to do.
    until(metrics_addr, "/metrics", "progress", |_, page| {
        page.lines().any(|l| {
            l.starts_with("networkintent_processed_total")
                && l.split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<f64>().ok())
                    >= Some(1.0)
        })
    })
    .await;
    broker.pause();
    let (_, body) = until(
        metrics_addr,
        "/readyz",
        "503 naming the queue",
        |status, body| status == 503 && body.contains("the producer queue has been full for"),
    )
    .await;
    assert!(body.contains("(READINESS_GRACE 2s)"), "{body}");

    let pid = child.id().expect("worker pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    // The deadline, plus time to start and leave: the point is that it does not wait
    // for the broker.
    let status = tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(10), child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the worker exits within its shutdown deadline; log:\n{}",
                log()
            )
        })
        .unwrap();
    let log = log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains(r#"not ready cause="producer_queue_full""#),
        "{log}"
    );
    assert!(
        log.contains("shutdown while the producer queue was full"),
        "{log}"
    );
    assert!(log.contains("worker stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_stays_200_while_a_revocation_waits_for_a_long_drain() {
    let topics = TestTopics::create("longdrain", 2).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let producer = producer();
    // One held message in each of the four input partitions: whichever move, A is
    // draining them.
    let mut keys = Vec::new();
    for topic in topics.inputs() {
        for partition in 0..2 {
            let key = format!("drain-{partition}-{}", keys.len());
            let payload = if topic == topics.network_events {
                serde_json::json!({
                    "event_id": key, "event_type": "kpi_threshold_crossed", "source": "upf-1",
                    "nf_type": "upf", "namespace": "core5g", "severity": "major",
                    "metric": "cpu_utilization", "value": 95.0, "threshold": 80.0,
                    "timestamp": "2026-11-26T10:00:00Z"
                })
                .to_string()
                .into_bytes()
            } else {
                request(&key, 0)
            };
            let record = rdkafka::producer::FutureRecord::to(topic)
                .key(&key)
                .partition(partition)
                .payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
            keys.push(key);
        }
    }
    let held = SlowTranslator::new(Duration::ZERO, Some("drain-"));
    let mut config_a = topics.config(dir_a.path());
    // The callback waits up to 6 s (plus slack) for the drain, three liveness timeouts.
    config_a.revoke_drain_timeout = Duration::from_secs(6);
    config_a.liveness_timeout = Duration::from_secs(2);
    let a = Worker::start_with(config_a, held.clone());
    let mut outcomes = Outcomes::new(&topics);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while held.started().len() < keys.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "all four start on A"
        );
        outcomes.drain(Duration::from_millis(200)).await;
    }
    assert_eq!(a.health.not_live(), None);

    // B joins: one partition is revoked from A, whose message there is held: the drain
    // runs to its deadline, then B redoes the message. A is live all along.
    let b = Worker::start(topics.config(dir_b.path()));
    let mut checks = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while outcomes.terminal_messages().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B redoes a moved message"
        );
        assert_eq!(a.health.not_live(), None, "A is live while draining");
        checks += 1;
        outcomes.drain(Duration::from_millis(200)).await;
    }
    assert!(checks > 0);
    held.release();
    a.stop().await;
    b.stop().await;
}
