//! The command line as an operator uses it: a bad setting stops `run` with a message that
//! names it; `create-topics`, `submit` and `outcomes` work against the real broker;
//! `submit --wait` follows a request to its outcome and says so in its exit code;
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
            &[
                "submit",
                "--file",
                "-",
                "--kafka-config",
                "ssl.key.password=hunter2",
            ],
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
            .args([
                "submit",
                "--file",
                "-",
                "--service-requests-topic",
                &requests,
            ])
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

/// `submit` with the test's topics, as a child process of the test's runtime.
fn submit(topics: &TestTopics) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(binary());
    command
        .arg("submit")
        .args(["--service-requests-topic", &topics.service_requests])
        .args(["--network-events-topic", &topics.network_events])
        .args(["--outcomes-topic", &topics.outcomes])
        .kill_on_drop(true);
    command
}

/// The key and the place `submit` printed on its first line:
/// `submitted KEY to TOPIC[PARTITION]@OFFSET[ (key generated)]`.
fn submitted(stdout: &str) -> (String, nephoran_kafka_consumer::message::SourceRef) {
    let line = stdout.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("submitted ")
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    let rest = rest.trim_end_matches(" (key generated)");
    let (key, place) = rest.rsplit_once(" to ").expect("KEY to PLACE");
    let (topic, rest) = place.rsplit_once('[').expect("TOPIC[");
    let (partition, offset) = rest.split_once("]@").expect("]@");
    let source = nephoran_kafka_consumer::message::SourceRef {
        topic: topic.to_string(),
        partition: partition.parse().expect("partition"),
        offset: offset.parse().expect("offset"),
    };
    (key.to_string(), source)
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_follows_a_request_to_its_outcome_and_exits_by_it() {
    let topics = TestTopics::create("cli-wait", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(topics.config(dir.path()));
    let request_text = "Deploy AMF with 3 replicas in namespace core5g";

    // No key given: one is generated, printed, and is the record's key and header.
    let output = submit(&topics)
        .args([request_text, "--wait", "--timeout", "90s"])
        .output()
        .await
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.lines().next().unwrap().ends_with("(key generated)"),
        "{stdout}"
    );
    let (key, source) = submitted(&stdout);
    assert_eq!(source.topic, topics.service_requests);
    for stage in ["received", "translated", "applied"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(stage) && l.contains(&key)),
            "{stage}: {stdout}"
        );
    }
    let reader = common::TopicReader::new(&topics.service_requests, 2);
    let record = reader.next(common::PATIENCE).await.expect("the request");
    use rdkafka::Message;
    assert_eq!(
        record.key(),
        Some(key.as_bytes()),
        "keyed by the idempotency key"
    );
    assert_eq!(
        common::header(&record, "idempotency-key"),
        Some(key.clone())
    );
    let request: serde_json::Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
    assert_eq!(request["intent"], request_text);

    // The same request again: a duplicate of an applied request is a success, and says so.
    let output = submit(&topics)
        .args([request_text, "--key", &key, "--wait", "--timeout", "90s"])
        .output()
        .await
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(!stdout.contains("(key generated)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("duplicate") && l.contains("of applied")),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("applied")),
        "the first request's events are not this one's: {stdout}"
    );

    // On a terminal (script(1) gives it one): one line, rewritten in place as stages arrive.
    let command = [
        env!("CARGO_BIN_EXE_nephoran-kafka-consumer"),
        "submit",
        "Deploy UPF in namespace edge",
        "--key",
        "cli-tty",
        "--service-requests-topic",
        &topics.service_requests,
        "--outcomes-topic",
        &topics.outcomes,
        "--wait",
        "--timeout",
        "90s",
    ]
    .map(|arg| format!("'{arg}'"))
    .join(" ");
    let output = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("script(1), from util-linux");
    let shown = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown:?}");
    assert!(
        shown.contains("\r\x1b[2Kcli-tty: received › translated (rules) › applied  ("),
        "{shown:?}"
    );
    assert!(
        !shown.lines().any(|l| l.starts_with("received")),
        "no plain lines on a terminal: {shown:?}"
    );

    // A request the service refuses: exit code 1, the stage, code and message on stderr.
    let output = submit(&topics)
        .args(["Delete the AMF in namespace core5g", "--key", "cli-refused"])
        .args(["--wait", "--timeout", "90s"])
        .output()
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rejected (untranslatable)") && stderr.contains("deletion"),
        "{stderr}"
    );

    // The batch form reads files (and "-" for standard input, see above).
    let file = dir.path().join("requests.jsonl");
    std::fs::write(
        &file,
        r#"{"idempotency_key": "cli-file-1", "intent": "Deploy SMF in namespace core5g"}"#,
    )
    .unwrap();
    let output = submit(&topics)
        .arg("--file")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with(&format!(
            "submitted cli-file-1 to {}[",
            topics.service_requests
        )),
        "{}",
        text(&output.stdout)
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_exits_124_at_its_timeout_when_no_worker_runs() {
    let topics = TestTopics::create("cli-wait-none", 1).await;
    let output = submit(&topics)
        .args([
            "Deploy AMF in namespace core5g",
            "--wait",
            "--timeout",
            "3s",
        ])
        .output()
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(
        stderr.contains("timed out") && stderr.contains("worker"),
        "{stderr}"
    );
    assert!(text(&output.stdout).starts_with("submitted "));

    // Interrupted while waiting: 130, and where to look for the outcome later.
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut child = submit(&topics)
        .args(["Deploy AMF in namespace core5g", "--key", "cli-interrupted"])
        .args(["--wait", "--timeout", "90s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("submitted cli-interrupted"), "{line}");
    let pid = child.id().expect("running").to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = tokio::time::timeout(common::PATIENCE, child.wait())
        .await
        .expect("the command ends once interrupted")
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("outcomes --keys cli-interrupted"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_exits_2_on_a_usage_or_settings_error() {
    for args in [
        &["submit"][..],
        &["submit", "text", "--file", "f"],
        &["submit", "text", "--timeout", "3s"],
        &["submit", "text", "--wait", "--for", "nothing"],
        &["submit", "text", "--priority", "whenever"],
        &["submit", "text", "--namespace", "Core5G"],
        &["submit", "text", "--key", "bad\u{1b}key"],
        &["submit", "text", "--kafka-config", "sasl.password=x"],
    ] {
        let output = binary().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_takes_an_outcome_published_before_it_reads_and_only_its_own() {
    use nephoran_kafka_consumer::decode::{IdempotencyKey, KeySource};
    use nephoran_kafka_consumer::outcome::{ErrorCode, Failure, IntentRef, OutcomeEvent, Stage};
    let topics = TestTopics::create("cli-wait-race", 1).await;
    let mut child = submit(&topics)
        .args(["Deploy AMF in namespace core5g", "--key", "race-1"])
        .args(["--wait", "--timeout", "90s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    stdout.read_line(&mut first).await.unwrap();
    let (key, source) = submitted(&first);
    assert_eq!(key, "race-1");

    // A worker faster than the command: everything is published while the command is
    // stopped, after its produce and before it reads anything.
    let pid = child.id().expect("running").to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success(), "kill {name}");
    };
    signal("-STOP");
    let producer = common::producer();
    let publish = |event: OutcomeEvent| {
        let producer = producer.clone();
        let outcomes = topics.outcomes.clone();
        async move {
            let payload = serde_json::to_vec(&event).unwrap();
            common::produce(
                &producer,
                &outcomes,
                Some(&event.idempotency_key),
                &payload,
                &[],
            )
            .await;
        }
    };
    let id = IdempotencyKey {
        value: key.clone(),
        source: KeySource::Header,
    };
    // Not an outcome at all: skipped with a warning.
    common::produce(
        &producer,
        &topics.outcomes,
        Some("race-1"),
        b"\x00 not json",
        &[],
    )
    .await;
    // An older submission with the same key: not this one's.
    let mut older = OutcomeEvent::new(
        &id,
        Stage::Rejected,
        &nephoran_kafka_consumer::message::SourceRef {
            offset: source.offset + 1000,
            ..source.clone()
        },
    );
    older.error = Some(Failure::new(ErrorCode::PolicyDenied, "an older submission"));
    publish(older).await;
    publish(OutcomeEvent::new(&id, Stage::Received, &source)).await;
    let mut applied = OutcomeEvent::new(&id, Stage::Applied, &source);
    applied.intent = Some(IntentRef {
        name: "race-1\u{1b}[2J\u{9b}31m".into(),
        namespace: "core5g".into(),
    });
    publish(applied).await;
    signal("-CONT");

    let status = tokio::time::timeout(common::PATIENCE, child.wait())
        .await
        .expect("the command ends within the patience")
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{rest}{stderr}");
    assert!(rest.lines().any(|l| l.starts_with("received")), "{rest}");
    assert!(rest.lines().any(|l| l.starts_with("applied")), "{rest}");
    assert!(
        !rest.contains("rejected") && !stderr.contains("older"),
        "{rest}{stderr}"
    );
    assert!(
        !rest.contains('\u{1b}') && !rest.contains('\u{9b}') && rest.contains("\\u{1b}[2J"),
        "what an event says is escaped: {rest:?}"
    );
    assert!(
        stderr.contains("warning: skipping a record that is not an outcome event"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_for_deployed_finds_the_deployment_of_the_request_it_duplicates() {
    use nephoran_kafka_consumer::decode::{IdempotencyKey, KeySource};
    use nephoran_kafka_consumer::outcome::{Original, OutcomeEvent, Stage};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let topics = TestTopics::create("cli-wait-deployed", 1).await;
    let request_text = "Deploy AMF in namespace core5g";
    let id = IdempotencyKey {
        value: "dep-1".into(),
        source: KeySource::Header,
    };
    let producer = common::producer();
    let publish = |event: OutcomeEvent| {
        let producer = producer.clone();
        let outcomes = topics.outcomes.clone();
        async move {
            let payload = serde_json::to_vec(&event).unwrap();
            common::produce(&producer, &outcomes, Some("dep-1"), &payload, &[]).await;
        }
    };
    // The first submission, applied and deployed long before the second (as a worker
    // and the operator's status watcher would report them).
    let output = submit(&topics)
        .args([request_text, "--key", "dep-1"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text_of_output(&output));
    let (_, first) = submitted(&text(&output.stdout));
    publish(OutcomeEvent::new(&id, Stage::Applied, &first)).await;
    publish(OutcomeEvent::new(&id, Stage::Deployed, &first)).await;

    // The second: the worker says it duplicates the first, which was applied.
    let mut child = submit(&topics)
        .args([
            request_text,
            "--key",
            "dep-1",
            "--wait",
            "--for",
            "deployed",
        ])
        .args(["--timeout", "90s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    let (_, second) = submitted(&line);
    let mut duplicate = OutcomeEvent::new(&id, Stage::Duplicate, &second);
    duplicate.original = Some(Original {
        stage: Stage::Applied,
        intent: None,
        source: first.clone(),
    });
    publish(duplicate).await;

    let status = tokio::time::timeout(common::PATIENCE, child.wait())
        .await
        .expect("the command ends within the patience")
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.lines().any(|l| l.starts_with("duplicate")), "{rest}");
    assert!(
        rest.lines()
            .any(|l| l.starts_with("deployed") && l.contains("dep-1")),
        "{rest}"
    );
    assert!(
        rest.contains(&format!(
            "the request it duplicates ({}[0]@{}) was deployed",
            first.topic, first.offset
        )),
        "{rest}"
    );
}

fn text_of_output(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// `outcomes` with the outcomes topic of `topics`, killed when dropped.
fn outcomes(topics: &TestTopics) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(binary());
    command
        .args(["outcomes", "--outcomes-topic", &topics.outcomes])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Publishes a bare event of `key` at `stage` to the outcomes topic of `topics`.
async fn publish_outcome(topics: &TestTopics, key: &str, stage: &str) {
    use nephoran_kafka_consumer::decode::{IdempotencyKey, KeySource};
    use nephoran_kafka_consumer::outcome::{OutcomeEvent, Stage};
    let stage = Stage::ALL
        .into_iter()
        .find(|s| s.as_str() == stage)
        .unwrap();
    let id = IdempotencyKey {
        value: key.to_string(),
        source: KeySource::Header,
    };
    let source = nephoran_kafka_consumer::message::SourceRef {
        topic: "requests".into(),
        partition: 0,
        offset: 7,
    };
    let payload = serde_json::to_vec(&OutcomeEvent::new(&id, stage, &source)).unwrap();
    common::produce(
        &common::producer(),
        &topics.outcomes,
        Some(key),
        &payload,
        &[],
    )
    .await;
}

/// Lines of `stdout` up to and including the first that holds `last`.
async fn lines_until(
    stdout: &mut tokio::io::BufReader<tokio::process::ChildStdout>,
    last: &str,
) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(common::PATIENCE, stdout.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("no line with {last:?} after {lines:?}"))
            .unwrap();
        assert!(read > 0, "the command ended before {last:?}: {lines:?}");
        let done = line.contains(last);
        lines.push(line.trim_end().to_string());
        if done {
            return lines;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outcomes_filters_by_key_and_stage_and_prints_json_lines() {
    let topics = TestTopics::create("cli-outcomes-filter", 1).await;
    // All before the command starts: only --from-beginning sees them.
    for (key, stage) in [
        ("f-1", "received"),
        ("f-2", "applied"),
        ("f-1", "translated"),
        ("f-1", "applied"),
        ("f-2", "deployed"),
        ("f-1", "deployed"),
    ] {
        publish_outcome(&topics, key, stage).await;
    }
    let mut child = outcomes(&topics)
        .args(["--from-beginning", "--key", "f-1", "--json"])
        .args(["--stage", "applied,deployed"])
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    // One partition: anything the filters let through comes before the last event.
    let lines = lines_until(&mut stdout, "deployed").await;
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["idempotency_key"].as_str().unwrap(),
                e["stage"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("f-1", "applied"), ("f-1", "deployed")]);
    assert!(
        events.iter().all(|e| e["event_id"].is_string()),
        "{lines:?}"
    );
    child.kill().await.unwrap();

    // --since, as a duration or a time, starts where those events were written.
    for since in ["10m", "2000-01-01T00:00:00Z"] {
        let mut child = outcomes(&topics)
            .args(["--since", since, "--key", "f-2"])
            .spawn()
            .unwrap();
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let lines = lines_until(&mut stdout, "deployed").await;
        assert_eq!(lines.len(), 2, "{since}: {lines:?}");
        assert!(lines[0].starts_with("applied") && lines[0].contains("f-2"));
        child.kill().await.unwrap();
    }

    // Without --from-beginning: only what is published after the command started.
    let mut child = outcomes(&topics)
        .args(["--stage", "applied"])
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut started = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stderr, &mut started)
        .await
        .unwrap();
    assert!(started.starts_with("following "), "{started:?}");
    publish_outcome(&topics, "f-3", "applied").await;
    let lines = lines_until(&mut stdout, "f-3").await;
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("applied") && last.contains("f-3"),
        "{last}"
    );
    child.kill().await.unwrap();
}

#[test]
fn outcomes_refuses_an_unknown_stage_naming_it() {
    let output = binary()
        .args(["outcomes", "--stage", "applied,shipped"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unknown stage \"shipped\""), "{stderr}");
    assert!(stderr.contains("dead_lettered"), "{stderr}");

    let output = binary()
        .args(["outcomes", "--since", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("\"yesterday\""));
}
