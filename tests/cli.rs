//! The command line as an operator uses it: a bad setting stops `run` with a message that
//! names it; `create-topics`, `submit` and `outcomes` work against the real broker;
//! `translate` prints the intent a request would become, by rules or by an LLM.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{brokers, TestTopics, Worker};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"));
    command
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "warn");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_setting_stops_the_worker_at_start_naming_it() {
    // (arguments, environment, the setting the error must name)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 6] = [
        (
            &["run", "--topics", "a,intent-outcomes"],
            &[],
            "OUTCOMES_TOPIC",
        ),
        (&["run"], &[("TOPICS", "bad topic")], "TOPICS"),
        (&["run"], &[("METRICS_ADDR", "nowhere")], "METRICS_ADDR"),
        (&["run"], &[("INTENT_SINK", "kube")], "INTENT_SINK"),
        (
            &["run"],
            &[("LLM_ENDPOINT", "http://llm:8000/v1")],
            "LLM_MODEL",
        ),
        (
            &["run"],
            &[
                ("LLM_API_KEY_FILE", "/nonexistent/api-key"),
                ("LLM_ENDPOINT", "https://llm/v1"),
                ("LLM_MODEL", "m"),
            ],
            "LLM_API_KEY_FILE",
        ),
    ];
    for (args, env, setting) in cases {
        let output = binary()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} should fail");
        assert!(stderr.contains(setting), "{args:?} {env:?}: {stderr}");
    }
}

#[test]
fn settings_that_leak_a_secret_or_break_a_guarantee_stop_the_worker_at_start() {
    // (arguments, environment, what the error must name, the secret it must not show)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
        Option<&'static str>,
    );
    let cases: [Case; 10] = [
        (
            &["run", "--llm-api-key", "sk-on-the-command-line"],
            &[],
            &["--llm-api-key", "/proc", "LLM_API_KEY", "LLM_API_KEY_FILE"],
            Some("sk-on-the-command-line"),
        ),
        (
            &["run", "--kafka-config", "sasl.password=hunter2"],
            &[],
            &[
                "--kafka-config",
                "sasl.password",
                "RDKAFKA_SASL_PASSWORD_FILE",
            ],
            Some("hunter2"),
        ),
        (
            &["submit", "--kafka-config", "ssl.key.password=hunter2"],
            &[],
            &[
                "--kafka-config",
                "ssl.key.password",
                "RDKAFKA_SSL_KEY_PASSWORD",
            ],
            Some("hunter2"),
        ),
        (
            &["run"],
            &[("RDKAFKA_REQUEST_REQUIRED_ACKS", "1")],
            &["RDKAFKA_REQUEST_REQUIRED_ACKS", "`acks`"],
            None,
        ),
        (
            &["run"],
            &[("RDKAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")],
            &["RDKAFKA_BOOTSTRAP_SERVERS", "KAFKA_BROKERS"],
            None,
        ),
        (
            &["run"],
            &[("RDKAFKA_ISOLATION_LEVEL", "read_uncommitted")],
            &["RDKAFKA_ISOLATION_LEVEL", "read_uncommitted"],
            None,
        ),
        (
            &["run"],
            &[("RDKAFKA_MESSAGE_TIMEOUT_MS", "0")],
            &["RDKAFKA_MESSAGE_TIMEOUT_MS", "never times out"],
            None,
        ),
        (
            &["run"],
            &[("RDKAFKA_GROUP_INSTANCE_ID", "pod-0")],
            &["RDKAFKA_GROUP_INSTANCE_ID", "static membership"],
            None,
        ),
        (
            &["run"],
            &[
                (
                    "LLM_ENDPOINT",
                    "http://llm.example:8000/v1?api-key=sk-in-query",
                ),
                ("LLM_MODEL", "m"),
                ("LLM_API_KEY", "sk-over-plain-http"),
            ],
            &["LLM_ENDPOINT", "https", "loopback"],
            Some("sk-"),
        ),
        (
            &["translate", "Deploy AMF in namespace core5g"],
            &[
                ("LLM_ENDPOINT", "http://10.1.2.3/v1"),
                ("LLM_MODEL", "m"),
                ("LLM_API_KEY", "sk-over-plain-http"),
            ],
            &["LLM_ENDPOINT", "https"],
            Some("sk-over-plain-http"),
        ),
    ];
    for (args, env, named, secret) in cases {
        let output = binary()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} should fail");
        for name in named {
            assert!(stderr.contains(name), "{args:?} {env:?}: {stderr}");
        }
        if let Some(secret) = secret {
            assert!(!stderr.contains(secret), "{args:?} {env:?}: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_taken_from_its_variable() {
    use common::openai::{answer, FakeLlm, Reply};
    let fake = FakeLlm::start(|_| Reply::answer(answer(&["upf"], "edge", Some(4)))).await;
    let output = tokio::process::Command::from(binary())
        .args(["translate", "The edge sites need four user plane functions"])
        .env("LLM_ENDPOINT", &fake.endpoint)
        .env("LLM_MODEL", "cli-model")
        .env("LLM_API_KEY", "sk-from-the-variable")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("translated by llm"));
    assert_eq!(
        fake.calls()[0].authorization.as_deref(),
        Some("Bearer sk-from-the-variable"),
        "plain http is fine to a loopback host"
    );
}

fn run_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_topics_submit_and_outcomes_work_end_to_end() {
    // The test's own topic names, created by the command under test.
    let topics = TestTopics::create("cli-names", 1).await;
    let (requests, events, outcomes, dlq) = (
        format!("{}-c", topics.service_requests),
        format!("{}-c", topics.network_events),
        format!("{}-c", topics.outcomes),
        format!("{}-c", topics.dlq),
    );
    let created = binary()
        .args(["create-topics", "--partitions", "2", "--topics"])
        .arg(format!("{events},{requests}"))
        .args(["--outcomes-topic", &outcomes, "--dlq-topic", &dlq])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));

    let mut cli_topics = topics.clone();
    cli_topics.service_requests = requests.clone();
    cli_topics.network_events = events.clone();
    cli_topics.outcomes = outcomes.clone();
    cli_topics.dlq = dlq.clone();
    cli_topics.partitions = 2;
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(cli_topics.config(dir.path()));

    let lines = [
        r#"{"idempotency_key": "cli-1", "intent": "Deploy AMF in namespace core5g"}"#,
        r#"{"event_id": "cli-ev-1", "event_type": "kpi_threshold_crossed", "nf_type": "upf", "namespace": "edge", "metric": "cpu_utilization", "value": 95, "threshold": 80}"#,
        "not json",
    ]
    .join("\n");
    let submitted = run_with_stdin(
        binary()
            .args(["submit", "--service-requests-topic", &requests])
            .args(["--network-events-topic", &events]),
        &lines,
    );
    let stdout = text(&submitted.stdout);
    assert!(!submitted.status.success(), "a bad line fails the command");
    assert!(text(&submitted.stderr).contains("<stdin>:3: not JSON"));
    assert!(
        stdout.contains(&format!("submitted cli-1 to {requests}[")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("submitted cli-ev-1 to {events}[")),
        "{stdout}"
    );

    let waited = binary()
        .args(["outcomes", "--outcomes-topic", &outcomes])
        .args(["--keys", "cli-1,cli-ev-1", "--timeout", "90s"])
        .output()
        .unwrap();
    let stdout = text(&waited.stdout);
    assert!(waited.status.success(), "{}", text(&waited.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("applied") && l.contains("cli-1")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("applied") && l.contains("cli-ev-1")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("translated")
            && l.contains("cli-1")
            && l.ends_with("translator=rules")),
        "{stdout}"
    );

    let missing = binary()
        .args(["outcomes", "--outcomes-topic", &outcomes])
        .args(["--keys", "never-sent", "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("never-sent"));
    worker.stop().await;
}

#[test]
fn translate_prints_the_intent_or_the_reason_with_exit_code_2() {
    let output = binary()
        .args([
            "translate",
            "Deploy AMF with 3 replicas in namespace core5g",
            "--key",
            "order-7",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let intent: nephoran_kafka_consumer::intent::NetworkIntent =
        serde_yaml::from_str(&text(&output.stdout)).expect("YAML on stdout");
    assert_eq!(
        intent.name(),
        nephoran_kafka_consumer::intent::intent_name("order-7")
    );
    assert_eq!(intent.spec.scaling.and_then(|s| s.replicas), Some(3));
    assert!(text(&output.stderr).contains("translated by rules"));

    let output = binary()
        .args(["translate", "--json", "--event"])
        .arg(r#"{"event_type":"kpi_threshold_crossed","nf_type":"smf","namespace":"core5g","metric":"cpu_utilization","value":95,"threshold":80}"#)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let intent: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(intent["spec"]["scaling"]["scaleBy"], 1);

    for (args, reason) in [
        (
            &["translate", "Delete the AMF in namespace core5g"][..],
            "deletion is never done",
        ),
        (
            &[
                "translate",
                "Deploy AMF with 500 replicas in namespace core5g",
            ][..],
            "spec.scaling.replicas",
        ),
        (
            &["translate", "--event", "{not json"][..],
            "not a network event",
        ),
    ] {
        let output = binary().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("rejected") && stderr.contains(reason),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn translate_shows_what_the_llm_answers() {
    use common::openai::{answer, FakeLlm, Reply};
    let fake = FakeLlm::start(|_| Reply::answer(answer(&["upf"], "edge", Some(4)))).await;
    let output = tokio::process::Command::from(binary())
        .args(["translate", "The edge sites need four user plane functions"])
        .env("LLM_ENDPOINT", &fake.endpoint)
        .env("LLM_MODEL", "cli-model")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let intent: nephoran_kafka_consumer::intent::NetworkIntent =
        serde_yaml::from_str(&text(&output.stdout)).expect("YAML on stdout");
    assert_eq!(intent.spec.target_namespace, "edge");
    assert_eq!(intent.spec.scaling.and_then(|s| s.replicas), Some(4));
    assert!(text(&output.stderr).contains("translated by llm"));
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_serves_its_metrics_to_prometheus() {
    use common::openai::{answer, FakeLlm, Reply};
    use common::{produce, producer, Outcomes};
    let fake = FakeLlm::start(|_| Reply::answer(answer(&["amf"], "core5g", Some(2)))).await;
    let topics = TestTopics::create("metrics", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = topics.args(dir.path());
    let at = args.iter().position(|a| a == "--metrics-addr").unwrap() + 1;
    args[at] = format!("127.0.0.1:{port}");
    let mut worker = tokio::process::Command::from(binary())
        .arg("run")
        .args(args)
        .env("LLM_ENDPOINT", &fake.endpoint)
        .env("LLM_MODEL", "metrics-model")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");
    let producer = producer();
    let payload = r#"{"idempotency_key": "m-1", "intent": "Two AMFs for core5g, please"}"#;
    produce(
        &producer,
        &topics.service_requests,
        Some("m-1"),
        payload.as_bytes(),
        &[],
    )
    .await;
    produce(
        &producer,
        &topics.service_requests,
        Some("m-2"),
        b"not json",
        &[("idempotency-key", "m-2")],
    )
    .await;
    Outcomes::new(&topics).until_terminal(["m-1", "m-2"]).await;

    let sample = |page: &str, name: &str, labels: &[&str]| {
        page.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // The guide's metrics count a message once all its sends are acknowledged, which may
    // be a moment after its outcome can be read: scrape until both are counted.
    let processed = |page: &str| sample(page, "networkintent_processed_total{", &[]);
    let page = tokio::time::timeout(common::PATIENCE, async {
        loop {
            let page = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .expect("scrape /metrics")
                .text()
                .await
                .unwrap();
            if processed(&page) >= 2.0 {
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("both messages counted within the patience");
    let sample = |name: &str, labels: &[&str]| sample(&page, name, labels);
    let status = |s: &str| format!("status=\"{s}\"");
    assert_eq!(
        sample("networkintent_processed_total{", &[&status("success")]),
        1.0,
        "{page}"
    );
    assert_eq!(
        sample("networkintent_processed_total{", &[&status("rejected")]),
        1.0,
        "{page}"
    );
    assert_eq!(
        sample("networkintent_failed_total{", &["code=\"invalid_json\""]),
        1.0,
        "{page}"
    );
    assert_eq!(
        sample("networkintent_processing_duration_seconds_count", &[]),
        2.0,
        "{page}"
    );
    let success = ["status=\"success\"", "model=\"metrics-model\""];
    assert_eq!(sample("llm_api_calls_total{", &success), 1.0, "{page}");
    assert!(
        page.contains("llm_api_call_duration_seconds_bucket{"),
        "{page}"
    );
    assert_eq!(
        sample("llm_circuit_breaker_state{", &["model=\"metrics-model\""]),
        0.0
    );
    assert!(sample("llm_cache_misses_total", &[]) >= 1.0, "{page}");
    assert!(page.contains("message_overhead_seconds_bucket{"), "{page}");
    worker.kill().await.unwrap();
}
