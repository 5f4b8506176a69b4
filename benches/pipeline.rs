//! Micro benchmark of the Kafka-agnostic stages: decode, translate (rules), validate and
//! a discarding sink, per message, on a mix of service requests and network events.
//! Run with `cargo bench --bench pipeline`; prints messages per second per stage mix.
//! (The end-to-end throughput benchmarks against the broker come with the scheduler.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::decode::decode;
use nephoran_kafka_consumer::message::{InboundMessage, SourceRef};
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::policy::Policy;
use nephoran_kafka_consumer::translate::RuleTranslator;
use nephoran_kafka_consumer::validate::Limits;

const MESSAGES: usize = 50_000;

fn messages() -> Vec<InboundMessage> {
    let components = ["AMF", "SMF", "UPF", "NRF", "near-RT RIC", "O-DU"];
    (0..MESSAGES)
        .map(|i| {
            let payload = if i % 4 == 0 {
                serde_json::json!({
                    "event_id": format!("ev-{i}"), "event_type": "kpi_threshold_crossed",
                    "source": "amf-1", "nf_type": "amf", "namespace": "core5g", "severity": "major",
                    "metric": "cpu_utilization", "value": 91.5, "threshold": 80.0,
                    "timestamp": "2026-11-26T10:00:00Z"
                })
            } else {
                serde_json::json!({
                    "idempotency_key": format!("order-{i}"),
                    "intent": format!("Deploy {} with {} replicas for the eMBB slice in namespace core5g",
                        components[i % components.len()], i % 9 + 1),
                    "priority": "high", "requester": "oss-bss"
                })
            };
            InboundMessage {
                source: SourceRef { topic: "service-requests".into(), partition: (i % 8) as i32, offset: i as i64 },
                key: None,
                payload: Some(payload.to_string().into_bytes()),
                headers: vec![],
                timestamp_ms: None,
            }
        })
        .collect()
}

fn report(name: &str, elapsed: Duration) {
    let rate = MESSAGES as f64 / elapsed.as_secs_f64();
    let per = elapsed.as_nanos() as f64 / MESSAGES as f64 / 1000.0;
    println!("{name:<34} {rate:>12.0} msg/s  {per:>8.2} µs/msg");
}

fn main() {
    let input = messages();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pipeline = Pipeline::new(
        RuleTranslator::new(100),
        IntentSink::discard(),
        Limits::default(),
        Policy::default(),
    );

    let start = Instant::now();
    for m in &input {
        black_box(decode(m));
    }
    report("decode", start.elapsed());

    let requests: Vec<_> = input
        .iter()
        .filter_map(|m| decode(m).request.ok())
        .collect();
    let rules = RuleTranslator::new(100);
    let start = Instant::now();
    for r in &requests {
        let _ = black_box(rules.translate_sync(r));
    }
    report("translate (rules)", start.elapsed());

    let start = Instant::now();
    let mut applied = 0;
    let lease = nephoran_kafka_consumer::lease::Lease::new(1);
    runtime.block_on(async {
        for m in &input {
            let (received, event) = pipeline.receive(m);
            black_box(event);
            let completion = pipeline
                .complete(&received, &lease)
                .await
                .expect("the lease is never ended here");
            applied += completion.dead_letter.is_none() as usize;
        }
    });
    report("whole pipeline (discarding sink)", start.elapsed());
    println!("({applied} of {MESSAGES} applied)");
}
