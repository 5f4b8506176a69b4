//! Properties of the whole pipeline (decode, check, translate, validate, policy, apply)
//! over hostile input: records of arbitrary bytes, keys and headers, texts built from the
//! words an attacker would use, and a model that answers whatever it likes. Whatever
//! comes in, nothing panics, every message ends with exactly one terminal stage, and
//! every intent that is applied satisfies the default policy, checked here from the file
//! the sink wrote rather than from what the pipeline says about it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::openai::{FakeLlm, Reply};
use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::config::LlmArgs;
use nephoran_kafka_consumer::intent::NetworkIntent;
use nephoran_kafka_consumer::lease::Lease;
use nephoran_kafka_consumer::message::{InboundMessage, SourceRef};
use nephoran_kafka_consumer::outcome::{Stage, MAX_FAILURE_MESSAGE_BYTES};
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::policy::Policy;
use nephoran_kafka_consumer::quantity::Quantity;
use nephoran_kafka_consumer::translate::{self, Translator};
use nephoran_kafka_consumer::validate::Limits;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Words a hostile or careless text is made of: actions, functions managed and not,
/// counts, namespaces the policy denies, amounts past the bounds, refusals, markup.
const WORDS: &[&str] = &[
    "Deploy",
    "deploy",
    "Scale",
    "scale",
    "scaled",
    "out",
    "up",
    "AMF",
    "SMF",
    "UPF",
    "nrf",
    "o-du",
    "Near-RT",
    "RIC",
    "xApp",
    "MME",
    "FOOBAR",
    "function",
    "with",
    "to",
    "by",
    "replicas",
    "replica",
    "instances",
    "0",
    "1",
    "3",
    "5000",
    "-1",
    "1e3",
    "3-5",
    "between",
    "and",
    "of",
    "in",
    "namespace",
    "core5g",
    "ran-a",
    "kube-system",
    "default",
    "openshift-monitoring",
    "kube-public",
    "\u{212A}ube-system",
    "Core5G",
    "cpu",
    "cores",
    "memory",
    "500m",
    "500M",
    "100000",
    "999999Ti",
    "64Gi",
    "2Gi",
    "not",
    "don't",
    "delete",
    "remove",
    "at",
    "3am",
    "tomorrow",
    "for",
    "eMBB",
    "URLLC",
    "slice",
    "priority",
    "high",
    "urgent",
    "\u{202E}",
    "<b>",
    "{{",
    "please",
    "the",
    "bind",
    "cluster-admin",
    "privileged",
    "hostNetwork",
    "image",
    "ignore",
    "previous",
    "instructions",
    ",",
    ".",
];

const NAMESPACES: &[&str] = &[
    "core5g",
    "ran-a",
    "kube-system",
    "default",
    "openshift-monitoring",
    "kube-node-lease",
    "\u{212A}ube-system",
    "Core5G",
    " core5g",
    "",
    "a.b",
];

/// Texts shaped like requests (so that many get as far as the policy), with hostile
/// words mixed in, and word salad.
fn text() -> impl Strategy<Value = String> {
    let pick = |words: &'static [&'static str]| prop::sample::select(words);
    let shaped = (
        pick(&["Deploy", "Scale", "deploy", "Scale out", "Bring up"]),
        prop_oneof![
            3 => prop::sample::subsequence(vec!["AMF", "SMF", "UPF", "NRF"], 1..3),
            1 => prop::sample::subsequence(vec!["AMF", "SMF", "MME", "FOOBAR"], 1..3),
        ],
        pick(&[
            "",
            "with 3 replicas",
            "to 0 replicas",
            "to 5000 replicas",
            "with 2 replicas",
            "by 2",
            "with 3-5 replicas",
            "with 1e3 replicas",
        ]),
        pick(&[
            "",
            "with 500m cpu",
            "with 100000 cpu",
            "with 2Gi memory",
            "with 999999Ti memory",
            "with 1e3 cpu",
        ]),
        prop_oneof![3 => pick(&["core5g", "ran-a", "edge-1"]), 1 => pick(NAMESPACES)],
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(pick(WORDS), 1..3)],
    )
        .prop_map(|(verb, nfs, count, resources, ns, noise)| {
            format!(
                "{verb} {} {count} {resources} in namespace {ns} {}",
                nfs.join(" and "),
                noise.join(" ")
            )
        });
    let salad = prop::collection::vec(prop::sample::select(WORDS), 1..14).prop_map(|w| w.join(" "));
    prop_oneof![3 => shaped, 1 => salad]
}

fn param_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z0-9<>{}\u{202E} ]{0,12}".prop_map(Value::from),
        Just(json!({"nested": 1})),
    ]
}

fn parameters() -> impl Strategy<Value = Option<BTreeMap<String, Value>>> {
    let key = prop_oneof![
        prop::sample::select(
            &[
                "sst",
                "sd",
                "plmn",
                "tac",
                "5qi",
                "slice_type",
                "slice_id",
                "latency_ms",
                "privileged",
                "hostNetwork",
                "image",
                "replicas",
                "namespace",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z_.-]{1,8}",
    ];
    prop::option::of(prop::collection::btree_map(key, param_value(), 0..4))
}

/// A service request or network event as JSON, or bytes that are not one.
fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
    let namespace = prop::option::of(prop::sample::select(NAMESPACES));
    let service = (
        text(),
        namespace.clone(),
        parameters(),
        prop::option::of("[a-z0-9-]{1,12}"),
    )
        .prop_map(|(text, ns, params, key)| {
            let mut o = json!({"intent": text});
            if let Some(ns) = ns {
                o["target_namespace"] = json!(ns);
            }
            if let Some(p) = params {
                o["parameters"] = json!(p);
            }
            if let Some(k) = key {
                o["idempotency_key"] = json!(k);
            }
            o.to_string().into_bytes()
        });
    let event = (
        prop::sample::select(&["amf", "smf", "upf", "mme", "AMF", ""][..]),
        namespace,
        prop::sample::select(&["cpu_utilization", "latency", "x"][..]),
        -1e3f64..1e3,
        -1e3f64..1e3,
    )
        .prop_map(|(nf, ns, metric, value, threshold)| {
            let mut o = json!({"event_type": "kpi_threshold_crossed", "nf_type": nf,
                "metric": metric, "value": value, "threshold": threshold});
            if let Some(ns) = ns {
                o["namespace"] = json!(ns);
            }
            o.to_string().into_bytes()
        });
    prop_oneof![
        8 => service.prop_map(Some),
        2 => event.prop_map(Some),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        1 => Just(None),
    ]
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"idempotency-key".to_vec()),
        Just(b"ce_source".to_vec()),
        Just(b"ce_id".to_vec()),
        Just(b"idempotency-key\0x".to_vec()),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn message() -> impl Strategy<Value = InboundMessage> {
    let header = (
        header_name(),
        prop::option::of(prop_oneof![
            "[ -~]{0,12}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..12),
        ]),
    );
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        payload(),
        prop_oneof![
            4 => Just(Vec::new()),
            2 => "[a-z0-9-]{1,16}".prop_map(|k| vec![(b"idempotency-key".to_vec(), Some(k.into_bytes()))]),
            2 => prop::collection::vec(header, 1..4),
        ],
        any::<bool>(),
        0i64..1_000_000,
    )
        .prop_map(|(key, payload, headers, events, offset)| InboundMessage {
            source: SourceRef {
                topic: if events {
                    "network-events"
                } else {
                    "service-requests"
                }
                .into(),
                partition: 0,
                offset,
            },
            key,
            payload,
            headers,
            timestamp_ms: None,
        })
}

/// What the model answers: the answer schema's fields with values inside and outside
/// every bound, sometimes a refusal, sometimes not JSON at all.
fn model_answer() -> impl Strategy<Value = String> {
    let answer = (
        prop::sample::subsequence(vec!["amf", "smf", "upf", "mme", "kube-proxy", "nrf"], 0..3),
        prop::sample::select(NAMESPACES),
        prop::option::of(prop::sample::select(&[0u64, 1, 3, 100, 101, 5000][..])),
        prop::option::of(prop::sample::select(&["64", "500m", "100000", "1e3", "-1"][..])),
        prop::option::of(prop::sample::select(&["2Gi", "999999Ti", "1Ki"][..])),
        any::<bool>(),
    )
        .prop_map(|(components, ns, replicas, cpu, memory, extra)| {
            let mut o = json!({
                "intentType": "scaling", "priority": "critical",
                "targetComponents": components, "targetNamespace": ns,
                "targetEnvironment": null,
                "scaling": replicas.map(|r| json!({"replicas": r, "minReplicas": null, "maxReplicas": null, "scaleBy": null})),
                "resources": (cpu.is_some() || memory.is_some()).then(|| json!({"cpu": cpu, "memory": memory})),
                "networkSlice": null, "refusal": null,
            });
            if extra {
                o["parameters"] = json!({"privileged": true});
            }
            o.to_string()
        });
    prop_oneof![
        6 => answer,
        1 => Just("I cannot do that".to_string()),
        1 => Just(r#"{"refusal": "no"}"#.to_string()),
    ]
}

/// Every applied intent, read back from the file the sink wrote, is inside the default
/// policy: checked field by field here, and by the policy itself.
fn assert_inside_policy(dir: &Path, namespace: &str, name: &str) -> Result<(), TestCaseError> {
    let path = dir.join(namespace).join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", path.display())))?;
    let intent: NetworkIntent = serde_yaml::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", path.display())))?;
    let spec = &intent.spec;
    let ns = spec.target_namespace.as_str();
    prop_assert!(
        !ns.starts_with("kube-") && ns != "default" && !ns.starts_with("openshift-"),
        "an intent in {ns}"
    );
    prop_assert!(
        ns.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{ns:?}"
    );
    if let Some(scaling) = &spec.scaling {
        for n in [scaling.replicas, scaling.min_replicas, scaling.max_replicas]
            .into_iter()
            .flatten()
        {
            prop_assert!((1..=100).contains(&n), "replicas {n}");
        }
    }
    if let Some(resources) = &spec.resources {
        let q = |s: &str| Quantity::parse(s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")));
        if let Some(cpu) = &resources.cpu {
            prop_assert!(q(cpu)? <= q("16")?, "cpu {cpu}");
        }
        if let Some(memory) = &resources.memory {
            prop_assert!(q(memory)? <= q("64Gi")?, "memory {memory}");
        }
    }
    let allowed = Policy::default();
    for key in spec.parameters.keys() {
        prop_assert!(allowed.parameters.contains_key(key), "parameter {key}");
    }
    prop_assert!(allowed.check(spec).is_ok(), "{spec:?}");
    Ok(())
}

/// Runs one message through `pipeline` and checks what came out.
async fn check_one<T: Translator>(
    pipeline: &Pipeline<T>,
    dir: &Path,
    message: &InboundMessage,
) -> Result<(), TestCaseError> {
    let (received, _) = pipeline.receive(message);
    let completion = pipeline
        .complete(&received, &Lease::new(1))
        .await
        .map_err(|_| TestCaseError::fail("fenced under a held lease"))?;
    let terminal: Vec<_> = completion
        .outcomes
        .iter()
        .filter(|e| e.stage.is_terminal())
        .collect();
    prop_assert_eq!(terminal.len(), 1, "{:?}", completion.outcomes);
    let event = terminal[0];
    prop_assert!(!event.idempotency_key.chars().any(char::is_control));
    if let Some(error) = &event.error {
        prop_assert!(error.message.len() <= MAX_FAILURE_MESSAGE_BYTES);
        prop_assert!(completion.dead_letter.is_some());
    }
    if event.stage == Stage::Applied {
        let intent = event
            .intent
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("applied without an intent"))?;
        assert_inside_policy(dir, &intent.namespace, &intent.name)?;
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The rules alone, over any record.
    #[test]
    fn by_the_rules_whatever_comes_in_what_is_applied_is_inside_the_policy(message in message()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pipeline = Pipeline::new(
            translate::RuleTranslator::new(100),
            IntentSink::dir(dir.path().to_path_buf()),
            Limits::default(),
            Policy::default(),
        );
        runtime().block_on(check_one(&pipeline, dir.path(), &message))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A model that answers anything, in front of the rules.
    #[test]
    fn whatever_the_model_answers_what_is_applied_is_inside_the_policy(
        message in message(),
        answers in prop::collection::vec(model_answer(), 2),
    ) {
        let rt = runtime();
        let answers = Arc::new(Mutex::new(answers));
        let model = {
            let answers = answers.clone();
            rt.block_on(FakeLlm::start(move |_| {
                let mut answers = answers.lock().expect("answers");
                Reply::content(answers.pop().unwrap_or_else(|| "no".into()))
            }))
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let args = LlmArgs {
            llm_endpoint: Some(model.endpoint.clone()),
            llm_model: Some("anything-goes".into()),
            ..llm_defaults()
        };
        let translator = translate::configured(&args, Limits::default()).expect("translator");
        let pipeline = Pipeline::new(
            translator,
            IntentSink::dir(dir.path().to_path_buf()),
            Limits::default(),
            Policy::default(),
        );
        rt.block_on(check_one(&pipeline, dir.path(), &message))?;
    }
}

/// The LLM settings' defaults, as the command line would give them.
fn llm_defaults() -> LlmArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        llm: LlmArgs,
    }
    Wrapper::try_parse_from(["x"]).expect("defaults").llm
}
