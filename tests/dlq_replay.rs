//! `dlq replay` against the real broker, as an operator uses it: a request the policy
//! refuses is dead-lettered; the operator widens the policy (the worker restarts with the
//! changed setting) and replays the dead letter; the worker processes it again and
//! applies it, once; a second run replays nothing and says so. `--dry-run` publishes
//! nothing, `--code` and `--key` choose, letters that cannot be replayed as they were are
//! listed (exit 3), and a replay rejected again leaves a dead letter that can itself be
//! replayed.

mod common;

use std::process::{Command, Output};

use common::recorder::{metric, recorder};
use common::{
    committed_and_end_on, header, produce, producer, Outcomes, TestTopics, TopicReader, Worker,
};
use rdkafka::message::Headers;
use rdkafka::Message;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `dlq replay ARGS` against the test's topics; its output once it exits.
fn replay(topics: &TestTopics, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .args(["dlq", "replay", "--brokers", &topics.brokers])
        .args([
            "--topics",
            &format!("{},{}", topics.network_events, topics.service_requests),
        ])
        .args([
            "--outcomes-topic",
            &topics.outcomes,
            "--dlq-topic",
            &topics.dlq,
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run dlq replay")
}

/// The command's stdout lines, after checking its exit code.
fn lines(output: &Output, code: i32) -> Vec<String> {
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&output.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text, "requester": "oss-bss"})
        .to_string()
        .into_bytes()
}

/// The end offset of the service-requests topic (one partition): what has been produced
/// to it (each record here is produced and acknowledged alone, so the broker's end is
/// exact).
fn requests_end(topics: &TestTopics) -> i64 {
    committed_and_end_on(&topics.brokers, &topics.group, &topics.service_requests, 1)[0].1
}

/// The headers of a forged dead letter (code `invalid_json`, key `forged`) of the record
/// at `offset` of `topic`; its event id is `offset`.
fn forged<'a>(offset: &'a str, topic: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("nephoran.error.code", "invalid_json"),
        ("nephoran.source.topic", topic),
        ("nephoran.source.partition", "0"),
        ("nephoran.source.offset", offset),
        ("nephoran.idempotency.key", "forged"),
        ("nephoran.event.id", offset),
    ]
}

/// The `nephoran.event.id` of the dead letter of `key`.
async fn dead_letter_id(topics: &TestTopics, key: &str) -> String {
    let reader = TopicReader::new_on(&topics.brokers, &topics.dlq, 1);
    loop {
        let letter = reader
            .next(common::PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no dead letter of {key}"));
        if header(&letter, "nephoran.idempotency.key").as_deref() == Some(key) {
            return header(&letter, "nephoran.event.id").expect("an event id");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_poison_message_is_replayed_once_and_applied() {
    recorder();
    let topics = TestTopics::create("dlq-replay", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let mut outcomes = Outcomes::new(&topics);

    // The policy allows only ran-edge: requests for core5g are refused.
    let mut narrow = topics.config(dir.path());
    narrow.policy.policy_allowed_namespaces = Some(vec!["ran-edge".into()]);
    let worker = Worker::start(narrow);
    let core5g = "Deploy AMF with 3 replicas in namespace core5g";
    for key in ["p-1", "p-2"] {
        let headers = [("idempotency-key", key), ("traceparent", "00-abc-01")];
        produce(
            &producer,
            &topics.service_requests,
            Some(key),
            &request(key, core5g),
            &headers,
        )
        .await;
    }
    let delete = request("u-1", "Delete the AMF in namespace core5g");
    produce(
        &producer,
        &topics.service_requests,
        Some("u-1"),
        &delete,
        &[],
    )
    .await;
    outcomes.until_terminal(["p-1", "p-2", "u-1"]).await;
    for (key, code) in [
        ("p-1", "policy_denied"),
        ("p-2", "policy_denied"),
        ("u-1", "untranslatable"),
    ] {
        let terminal = outcomes.terminal(key);
        assert_eq!(terminal.len(), 1, "{key}");
        assert_eq!(terminal[0].stage.as_str(), "rejected", "{key}");
        assert_eq!(
            terminal[0].error.as_ref().unwrap().code.as_str(),
            code,
            "{key}"
        );
    }
    worker.stop().await;

    // Two letters no replay could reproduce, as anyone who can write the dead-letter
    // topic could forge them: one whose payload was left out, one that names a topic
    // that is not an input. Listed, not replayed, exit 3.
    let mut omitted = forged("90", &topics.service_requests);
    omitted.push(("nephoran.payload.omitted", "too large; it is at its source"));
    produce(&producer, &topics.dlq, Some("forged"), b"", &omitted).await;
    let elsewhere = forged("91", "__consumer_offsets");
    produce(&producer, &topics.dlq, Some("forged"), b"x", &elsewhere).await;

    // The operator fixes the cause: the policy's default allows core5g.
    let worker = Worker::start(topics.config(dir.path()));

    // --dry-run: says what it would do, publishes (and creates) nothing.
    let before = requests_end(&topics);
    let dry = lines(&replay(&topics, &["--dry-run"]), 3);
    let would: Vec<&String> = dry
        .iter()
        .filter(|l| l.starts_with("would replay ") && l.contains("  key="))
        .collect();
    assert_eq!(would.len(), 3, "{dry:#?}");
    for key in ["p-1", "p-2", "u-1"] {
        assert!(
            would.iter().any(|l| l.contains(&format!("key={key} "))
                && l.contains(&format!("{}[0]@", topics.service_requests))),
            "{key}: {dry:#?}"
        );
    }
    let not_replayed: Vec<&String> = dry
        .iter()
        .filter(|l| l.starts_with("not replayed"))
        .collect();
    assert_eq!(not_replayed.len(), 2, "{dry:#?}");
    assert!(
        not_replayed
            .iter()
            .any(|l| l.contains("the payload left out")),
        "{dry:#?}"
    );
    assert!(
        not_replayed
            .iter()
            .any(|l| l.contains("is not one of TOPICS")),
        "{dry:#?}"
    );
    assert_eq!(
        dry.last().unwrap(),
        "would replay 3, skipped 0 already replayed, 0 copies, 2 not replayable \
         (5 dead letters read, 0 not selected)"
    );
    assert_eq!(requests_end(&topics), before, "a dry run publishes nothing");

    // --code and --key choose: only p-1.
    let first = lines(
        &replay(&topics, &["--code", "policy_denied", "--key", "p-1"]),
        0,
    );
    assert_eq!(first.len(), 2, "{first:#?}");
    assert!(
        first[0].starts_with("replayed ")
            && first[0].contains("key=p-1")
            && first[0].contains("code=policy_denied")
            && first[0].contains(&format!("-> {}[0]@{before}", topics.service_requests)),
        "{first:#?}"
    );
    assert_eq!(
        first[1],
        "replayed 1, skipped 0 already replayed, 0 copies, 0 not replayable \
         (5 dead letters read, 4 not selected)"
    );
    assert_eq!(requests_end(&topics), before + 1);

    // The replay is the original record: key, payload and headers, without the error
    // and source headers, with the dead letter's id.
    let p1_letter = dead_letter_id(&topics, "p-1").await;
    let reader = TopicReader::new_on(&topics.brokers, &topics.service_requests, 1);
    let mut replayed = None;
    while let Some(record) = reader.next(common::PATIENCE).await {
        if record.offset() == before {
            replayed = Some(record);
            break;
        }
    }
    let replayed = replayed.expect("the replayed record");
    assert_eq!(replayed.key(), Some(&b"p-1"[..]));
    assert_eq!(replayed.payload(), Some(&request("p-1", core5g)[..]));
    let names: Vec<String> = replayed
        .headers()
        .map(|h| h.iter().map(|h| h.key.to_string()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["idempotency-key", "traceparent", "nephoran.replay.of"]
    );
    assert_eq!(header(&replayed, "nephoran.replay.of"), Some(p1_letter));

    // The worker processes it again (not `duplicate`) and applies it.
    outcomes.until(|o| o.terminal("p-1").len() == 2).await;
    assert_eq!(outcomes.terminal("p-1")[1].stage.as_str(), "applied");
    assert_eq!(
        metric(
            "dedup_replays_total",
            &[("topic", &topics.service_requests)]
        ),
        1.0
    );

    // A run that stopped between remembering p-2 and publishing it left it in doubt:
    // the next run replays it again, and says so.
    let p2_letter = dead_letter_id(&topics, "p-2").await;
    let mark = serde_json::json!({
        "state": "replaying", "dead_letter": "x", "source": "y", "at": "2026-11-29T00:00:00Z"
    })
    .to_string();
    produce(
        &producer,
        &format!("{}.replayed", topics.dlq),
        Some(&p2_letter),
        mark.as_bytes(),
        &[],
    )
    .await;
    let second = lines(&replay(&topics, &["--code", "policy_denied"]), 0);
    assert!(
        second.iter().any(|l| l.starts_with("skipped ")
            && l.contains("key=p-1")
            && l.contains(&format!(
                "already replayed -> {}[0]@{before}",
                topics.service_requests
            ))),
        "{second:#?}"
    );
    assert!(
        second
            .iter()
            .any(|l| l.starts_with("replayed ") && l.contains("key=p-2") && l.contains("(again:")),
        "{second:#?}"
    );
    assert_eq!(
        second.last().unwrap(),
        "replayed 1, skipped 1 already replayed, 0 copies, 0 not replayable \
         (5 dead letters read, 3 not selected)"
    );
    outcomes.until(|o| o.terminal("p-2").len() == 2).await;
    assert_eq!(outcomes.terminal("p-2")[1].stage.as_str(), "applied");

    // Run again: nothing left to replay, and nothing produced.
    let end = requests_end(&topics);
    let third = lines(&replay(&topics, &["--code", "policy_denied"]), 0);
    assert_eq!(
        third.last().unwrap(),
        "replayed 0, skipped 2 already replayed, 0 copies, 0 not replayable \
         (5 dead letters read, 3 not selected)"
    );
    assert_eq!(requests_end(&topics), end);

    // A replay whose cause was not fixed is rejected again, with a dead letter of its
    // own that is whole and can be replayed in turn.
    let untranslatable = lines(&replay(&topics, &["--code", "untranslatable"]), 0);
    assert!(
        untranslatable[0].starts_with("replayed "),
        "{untranslatable:#?}"
    );
    outcomes.until(|o| o.terminal("u-1").len() == 2).await;
    assert!(outcomes
        .terminal("u-1")
        .iter()
        .all(|e| e.stage.as_str() == "rejected"));
    let again = lines(
        &replay(&topics, &["--code", "untranslatable", "--dry-run"]),
        0,
    );
    assert_eq!(
        again.last().unwrap(),
        "would replay 1, skipped 1 already replayed, 0 copies, 0 not replayable \
         (6 dead letters read, 4 not selected)"
    );

    worker.stop().await;
    // p-1 and p-2 applied once each: one intent file each, one `applied` each.
    for key in ["p-1", "p-2"] {
        let applied = outcomes
            .stages(key)
            .iter()
            .filter(|s| **s == "applied")
            .count();
        assert_eq!(applied, 1, "{key}: {:?}", outcomes.stages(key));
    }
    assert_eq!(common::intent_files(dir.path()), 2);
}

#[test]
fn an_unknown_code_is_refused_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .args(["dlq", "replay", "--code", "policy-denied"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("unknown error code \"policy-denied\""),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .args(["dlq", "replay", "--limit", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
