//! Graceful shutdown of the real binary: SIGTERM mid-stream, exit 0 within the deadline,
//! and a new worker of the same group finishes the rest with nothing lost.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{committed_and_end, produce, producer, Outcomes, TestTopics, Worker};
use tokio::process::Command;

const MESSAGES: usize = 1500;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stream_exits_zero_and_a_new_worker_loses_nothing() {
    let topics = TestTopics::create("sigterm", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let keys: Vec<String> = (0..MESSAGES).map(|i| format!("term-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let payload = serde_json::json!({
            "idempotency_key": key,
            "intent": format!("Deploy UPF with {} replicas in namespace edge-{}", i % 5 + 1, i % 4),
        });
        produce(
            &producer,
            &topics.service_requests,
            Some(key),
            payload.to_string().as_bytes(),
            &[],
        )
        .await;
    }

    let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .arg("run")
        .args(topics.args(&dir.path().join("intents")))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");

    // Wait until the worker is visibly processing, then stop it mid-stream.
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal([keys[0].as_str()]).await;
    let pid = child.id().expect("worker pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(10), child.wait())
        .await
        .expect("the worker exits within its shutdown deadline")
        .unwrap();
    let log_text = std::fs::read_to_string(dir.path().join("worker.log")).unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log_text}");
    assert!(log_text.contains("SIGTERM received"), "{log_text}");
    assert!(log_text.contains("worker stopped"), "{log_text}");

    // No loss: every message below the committed offset has its terminal outcome.
    outcomes.drain(Duration::from_secs(1)).await;
    let committed = committed_and_end(&topics.group, &topics.service_requests, 3);
    let done: std::collections::HashSet<(i32, i64)> = outcomes
        .by_key
        .values()
        .flatten()
        .filter(|e| e.stage.is_terminal())
        .map(|e| (e.source.partition, e.source.offset))
        .collect();
    for (partition, (committed, _)) in committed.iter().enumerate() {
        for offset in 0..*committed {
            assert!(
                done.contains(&(partition as i32, offset)),
                "partition {partition} offset {offset} committed without an outcome"
            );
        }
    }
    let first_committed: i64 = committed.iter().map(|(c, _)| (*c).max(0)).sum();
    eprintln!("first worker committed {first_committed} of {MESSAGES} messages");
    assert!(
        (first_committed as usize) < MESSAGES,
        "the first worker finished everything before SIGTERM: nothing was handed over"
    );

    // A second worker of the same group does the rest.
    let second = Worker::start(topics.config(&dir.path().join("intents")));
    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    second.stop().await;
    for key in &keys {
        assert!(
            !outcomes.terminal(key).is_empty(),
            "{key} lost: {:?}",
            outcomes.stages(key)
        );
    }
    for (partition, (committed, end)) in
        committed_and_end(&topics.group, &topics.service_requests, 3)
            .into_iter()
            .enumerate()
    {
        assert_eq!(committed, end, "partition {partition} committed to the end");
    }
}
