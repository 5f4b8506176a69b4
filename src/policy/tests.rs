//! The policy's rules and defaults, one by one, its settings, and a property: whatever
//! spec the policy accepts satisfies every bound.

use std::collections::BTreeMap;

use clap::Parser;
use proptest::prelude::*;

use super::*;
use crate::intent::{Component, IntentType, Priority, Resources, Scaling};

fn spec() -> NetworkIntentSpec {
    NetworkIntentSpec {
        intent: "Deploy AMF with 3 replicas in namespace core5g".into(),
        intent_type: IntentType::Deployment,
        priority: Priority::Medium,
        target_components: vec![Component::Amf],
        target_namespace: "core5g".into(),
        target_environment: None,
        scaling: Some(Scaling {
            replicas: Some(3),
            ..Scaling::default()
        }),
        resources: None,
        network_slice: None,
        parameters: BTreeMap::new(),
    }
}

fn denial(policy: &Policy, spec: NetworkIntentSpec) -> Denial {
    policy.check(&spec).expect_err("should be denied")
}

fn with_namespace(ns: &str) -> NetworkIntentSpec {
    let mut s = spec();
    s.target_namespace = ns.into();
    s
}

fn with_scaling(scaling: Scaling) -> NetworkIntentSpec {
    let mut s = spec();
    s.scaling = Some(scaling);
    s
}

fn with_resources(cpu: Option<&str>, memory: Option<&str>) -> NetworkIntentSpec {
    let mut s = spec();
    s.resources = Some(Resources {
        cpu: cpu.map(Into::into),
        memory: memory.map(Into::into),
    });
    s
}

fn with_parameters(parameters: &[(&str, ParamValue)]) -> NetworkIntentSpec {
    let mut s = spec();
    s.parameters = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    s
}

#[test]
fn a_reasonable_intent_is_allowed() {
    Policy::default().check(&spec()).unwrap();
    let mut s = with_resources(Some("500m"), Some("1Gi"));
    s.parameters = BTreeMap::from([
        ("slice_id".into(), ParamValue::String("embb-01".into())),
        ("sst".into(), ParamValue::Int(1)),
    ]);
    Policy::default().check(&s).unwrap();
}

#[test]
fn system_namespaces_are_denied_by_default_with_the_pattern_named() {
    let policy = Policy::default();
    let d = denial(&policy, with_namespace("kube-system"));
    assert_eq!(d.rule, Rule::Namespace);
    assert_eq!(
        d.to_string(),
        r#"spec.targetNamespace: "kube-system" is denied by policy (denied namespace pattern "kube-*")"#
    );
    assert!(denial(&policy, with_namespace("default"))
        .to_string()
        .contains(r#"pattern "default""#));
    assert!(denial(&policy, with_namespace("openshift-etcd"))
        .to_string()
        .contains(r#"pattern "openshift-*""#));
    // The policy does not rely on validation to refuse a name that is not one.
    let d = denial(&policy, with_namespace("\u{212A}ube-system"));
    assert_eq!(d.rule, Rule::Namespace);
}

#[test]
fn replicas_are_bounded_and_zero_is_refused_by_default() {
    let policy = Policy::default();
    let d = denial(
        &policy,
        with_scaling(Scaling {
            replicas: Some(0),
            ..Scaling::default()
        }),
    );
    assert_eq!(
        (d.rule, d.field.as_str()),
        (Rule::Replicas, "spec.scaling.replicas")
    );
    assert!(
        d.reason.contains("deletion") && d.reason.contains("POLICY_MIN_REPLICAS=0"),
        "{d}"
    );
    for (scaling, field) in [
        (
            Scaling {
                replicas: Some(101),
                ..Scaling::default()
            },
            "spec.scaling.replicas",
        ),
        (
            Scaling {
                replicas: Some(5000),
                ..Scaling::default()
            },
            "spec.scaling.replicas",
        ),
        (
            Scaling {
                min_replicas: Some(0),
                max_replicas: Some(3),
                ..Scaling::default()
            },
            "spec.scaling.minReplicas",
        ),
        (
            Scaling {
                min_replicas: Some(2),
                max_replicas: Some(101),
                ..Scaling::default()
            },
            "spec.scaling.maxReplicas",
        ),
        (
            Scaling {
                scale_by: Some(100),
                ..Scaling::default()
            },
            "spec.scaling.scaleBy",
        ),
        (
            Scaling {
                scale_by: Some(i32::MIN),
                ..Scaling::default()
            },
            "spec.scaling.scaleBy",
        ),
    ] {
        let d = denial(&policy, with_scaling(scaling));
        assert_eq!((d.rule, d.field.as_str()), (Rule::Replicas, field), "{d}");
    }
    assert_eq!(
        denial(
            &policy,
            with_scaling(Scaling {
                replicas: Some(101),
                ..Scaling::default()
            })
        )
        .to_string(),
        "spec.scaling.replicas: 101 is denied by policy (above the maximum of 100, MAX_REPLICAS)"
    );
    for allowed in [
        Scaling {
            replicas: Some(1),
            ..Scaling::default()
        },
        Scaling {
            replicas: Some(100),
            min_replicas: Some(1),
            max_replicas: Some(100),
            scale_by: None,
        },
        Scaling {
            scale_by: Some(-99),
            ..Scaling::default()
        },
        Scaling {
            scale_by: Some(99),
            ..Scaling::default()
        },
    ] {
        policy
            .check(&with_scaling(allowed.clone()))
            .unwrap_or_else(|d| panic!("{allowed:?}: {d}"));
    }
}

#[test]
fn zero_replicas_are_allowed_only_with_a_minimum_of_zero() {
    let policy = Policy {
        replicas: ReplicaBounds { min: 0, max: 10 },
        ..Policy::default()
    };
    policy
        .check(&with_scaling(Scaling {
            replicas: Some(0),
            ..Scaling::default()
        }))
        .unwrap();
    assert_eq!(
        denial(
            &policy,
            with_scaling(Scaling {
                replicas: Some(11),
                ..Scaling::default()
            })
        )
        .rule,
        Rule::Replicas
    );
}

#[test]
fn cpu_and_memory_per_replica_are_bounded_exactly() {
    let policy = Policy::default();
    for (cpu, memory, rule, field) in [
        (Some("100000"), None, Rule::Cpu, "spec.resources.cpu"),
        (Some("16001m"), None, Rule::Cpu, "spec.resources.cpu"),
        (Some("0"), None, Rule::Cpu, "spec.resources.cpu"),
        (
            Some("99999999999999999999999999999999"),
            None,
            Rule::Cpu,
            "spec.resources.cpu",
        ),
        (
            None,
            Some("999999Ti"),
            Rule::Memory,
            "spec.resources.memory",
        ),
        (None, Some("65Gi"), Rule::Memory, "spec.resources.memory"),
        (
            None,
            Some("64.000000001Gi"),
            Rule::Memory,
            "spec.resources.memory",
        ),
        (None, Some("1000"), Rule::Memory, "spec.resources.memory"),
        (Some("1e3"), None, Rule::Cpu, "spec.resources.cpu"),
    ] {
        let d = denial(&policy, with_resources(cpu, memory));
        assert_eq!((d.rule, d.field.as_str()), (rule, field), "{d}");
    }
    assert_eq!(
        denial(&policy, with_resources(Some("100000"), None)).to_string(),
        r#"spec.resources.cpu: "100000" is denied by policy (above the maximum of "16" per replica)"#
    );
    assert_eq!(
        denial(&policy, with_resources(None, Some("999999Ti"))).to_string(),
        r#"spec.resources.memory: "999999Ti" is denied by policy (above the maximum of "64Gi" per replica)"#
    );
    for (cpu, memory) in [
        ("1m", "1Mi"),
        ("16", "64Gi"),
        ("16000m", "68719476736"),
        ("1.5", "512Mi"),
    ] {
        policy
            .check(&with_resources(Some(cpu), Some(memory)))
            .unwrap_or_else(|d| panic!("{cpu} {memory}: {d}"));
    }
}

#[test]
fn parameters_outside_the_allowlist_are_denied_by_name() {
    let policy = Policy::default();
    for (key, value) in [
        ("privileged", ParamValue::Bool(true)),
        ("hostNetwork", ParamValue::Bool(true)),
        (
            "image",
            ParamValue::String("evil.example/amf:latest".into()),
        ),
        ("replicas", ParamValue::Int(5000)),
        ("namespace", ParamValue::String("kube-system".into())),
    ] {
        let d = denial(
            &policy,
            with_parameters(&[("sst", ParamValue::Int(1)), (key, value)]),
        );
        assert_eq!(d.rule, Rule::Parameters);
        assert_eq!(d.field, format!("spec.parameters.{key}"));
        assert!(d.reason.contains("not an allowed parameter"), "{d}");
    }
    assert_eq!(
        denial(&policy, with_parameters(&[("privileged", ParamValue::Bool(true))])).to_string(),
        "spec.parameters.privileged: true is denied by policy (\"privileged\" is not an allowed \
         parameter; allowed: 5qi, latency_ms, plmn, sd, slice_id, slice_type, sst, tac, throughput_mbps)"
    );
    let d = denial(&policy, with_parameters(&[("sst", ParamValue::Int(300))]));
    assert_eq!(
        d.to_string(),
        "spec.parameters.sst: 300 is denied by policy (must be within 1..=255)"
    );
    let none = Policy {
        parameters: BTreeMap::new(),
        ..Policy::default()
    };
    assert!(
        denial(&none, with_parameters(&[("sst", ParamValue::Int(1))]))
            .reason
            .contains("allowed: none")
    );
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let p = Policy::default();
    assert_eq!(p.namespaces.allowed, None);
    assert_eq!(
        namespaces::list(&p.namespaces.denied),
        r#""kube-*", "default", "openshift-*""#
    );
    assert_eq!(p.namespaces.own, None);
    assert_eq!(p.replicas, ReplicaBounds { min: 1, max: 100 });
    assert_eq!((p.cpu.min.as_str(), p.cpu.max.as_str()), ("1m", "16"));
    assert_eq!(
        (p.memory.min.as_str(), p.memory.max.as_str()),
        ("1Mi", "64Gi")
    );
    let keys: Vec<&str> = p.parameters.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "5qi",
            "latency_ms",
            "plmn",
            "sd",
            "slice_id",
            "slice_type",
            "sst",
            "tac",
            "throughput_mbps"
        ]
    );
}

// ---- settings ----

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    policy: PolicyArgs,
}

fn args(list: &[&str]) -> PolicyArgs {
    Wrapper::try_parse_from(std::iter::once("x").chain(list.iter().copied()))
        .unwrap()
        .policy
}

fn policy_of(list: &[&str]) -> Result<Policy, crate::config::ConfigError> {
    args(list).policy(100).map(|(p, _)| p)
}

#[test]
fn no_settings_is_the_default_policy_with_max_replicas_as_the_ceiling() {
    assert_eq!(policy_of(&[]).unwrap(), Policy::default());
    let (p, source) = args(&[]).policy(20).unwrap();
    assert_eq!(p.replicas, ReplicaBounds { min: 1, max: 20 });
    assert_eq!(source, "environment");
}

#[test]
fn variables_set_every_rule() {
    let p = policy_of(&[
        "--policy-allowed-namespaces",
        "core5g,ran-*",
        "--policy-denied-namespaces",
        "ran-secret",
        "--policy-min-replicas",
        "0",
        "--policy-min-cpu",
        "100m",
        "--policy-max-cpu",
        "4",
        "--policy-min-memory",
        "64Mi",
        "--policy-max-memory",
        "8Gi",
        "--policy-parameters",
        "{tier: {type: string, values: [gold, silver]}}",
        "--pod-namespace",
        "nephoran-system",
    ])
    .unwrap();
    assert_eq!(
        namespaces::list(p.namespaces.allowed.as_deref().unwrap()),
        r#""core5g", "ran-*""#
    );
    assert_eq!(namespaces::list(&p.namespaces.denied), r#""ran-secret""#);
    assert_eq!(p.namespaces.own.as_deref(), Some("nephoran-system"));
    assert_eq!(p.replicas, ReplicaBounds { min: 0, max: 100 });
    assert_eq!(p.cpu.max.as_str(), "4");
    assert_eq!(p.memory.min.as_str(), "64Mi");
    assert_eq!(p.parameters.keys().collect::<Vec<_>>(), ["tier"]);
    // and they hold
    p.check(&with_namespace("ran-edge")).unwrap();
    assert!(p.check(&with_namespace("ran-secret")).is_err());
    assert!(p.check(&with_namespace("other")).is_err());
    assert!(p.check(&with_namespace("nephoran-system")).is_err());
    assert!(p.check(&with_resources(Some("5"), None)).is_err());
}

#[test]
fn bad_settings_are_refused_naming_them() {
    let err = |list: &[&str]| policy_of(list).unwrap_err().to_string();
    for (list, named) in [
        (
            &["--policy-denied-namespaces", "Kube-*"][..],
            "POLICY_DENIED_NAMESPACES",
        ),
        (
            &["--policy-allowed-namespaces", "a*b"],
            "POLICY_ALLOWED_NAMESPACES",
        ),
        (&["--policy-min-replicas", "101"], "POLICY_MIN_REPLICAS"),
        (&["--policy-max-cpu", "1e3"], "POLICY_MAX_CPU"),
        (
            &["--policy-max-cpu", "99999999999999999999999999999999"],
            "POLICY_MAX_CPU",
        ),
        (
            &["--policy-min-cpu", "2", "--policy-max-cpu", "1"],
            "POLICY_MIN_CPU",
        ),
        (&["--policy-max-memory", "lots"], "POLICY_MAX_MEMORY"),
        (&["--policy-parameters", "[1, 2]"], "POLICY_PARAMETERS"),
        (
            &["--policy-parameters", "{x: {type: int, min: 2, max: 1}}"],
            "POLICY_PARAMETERS",
        ),
        (
            &["--policy-parameters", "{'bad key': {type: bool}}"],
            "POLICY_PARAMETERS",
        ),
        (&["--pod-namespace", "Not_A_Namespace"], "POD_NAMESPACE"),
    ] {
        let message = err(list);
        assert!(message.contains(named), "{list:?}: {message}");
    }
    assert!(
        args(&[]).policy(0).is_err(),
        "a ceiling of 0 allows nothing"
    );
}

#[test]
fn a_policy_file_holds_the_same_settings_and_excludes_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "allowed_namespaces: [core5g]\n\
         denied_namespaces: [kube-*, default]\n\
         min_replicas: 2\n\
         max_replicas: 10\n\
         max_cpu: '8'\n\
         max_memory: 16Gi\n\
         parameters:\n  sst: {type: int, min: 1, max: 4}\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let (p, source) = args(&["--policy-file", file, "--pod-namespace", "ops"])
        .policy(100)
        .unwrap();
    assert!(source.contains("policy.yaml"), "{source}");
    assert_eq!(p.replicas, ReplicaBounds { min: 2, max: 10 });
    assert_eq!(p.cpu.max.as_str(), "8");
    assert_eq!(p.cpu.min.as_str(), "1m", "a key left out keeps its default");
    assert_eq!(p.namespaces.own.as_deref(), Some("ops"));
    assert_eq!(p.parameters.keys().collect::<Vec<_>>(), ["sst"]);

    // Both sources at once: refused at start, naming the setting beside the file.
    for variable in [
        "--policy-allowed-namespaces",
        "--policy-denied-namespaces",
        "--policy-min-replicas",
        "--policy-min-cpu",
        "--policy-max-cpu",
        "--policy-min-memory",
        "--policy-max-memory",
        "--policy-parameters",
    ] {
        let err = args(&["--policy-file", file, variable, "1"])
            .policy(100)
            .unwrap_err();
        assert_eq!(err.setting, "POLICY_FILE (--policy-file)");
        let named = variable
            .trim_start_matches("--")
            .replace('-', "_")
            .to_uppercase();
        assert!(err.problem.contains(&named), "{variable}: {}", err.problem);
    }

    // The file cannot lift the MAX_REPLICAS ceiling.
    let err = args(&["--policy-file", file])
        .policy(5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("POLICY_FILE") && err.contains("max_replicas") && err.contains("MAX_REPLICAS"),
        "{err}"
    );

    for (text, named) in [
        ("min_replica: 1\n", "unknown field"),
        ("min_replicas: -1\n", "min_replicas"),
        ("max_memory: 1e3\n", "max_memory"),
        ("denied_namespaces: [KUBE]\n", "denied_namespaces"),
        (
            "parameters: {x: {type: float, min: 1, max: .nan}}\n",
            "parameters",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = args(&["--policy-file", file])
            .policy(100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("POLICY_FILE") && err.contains(named),
            "{text}: {err}"
        );
    }
    std::fs::write(&path, "").unwrap();
    assert_eq!(
        args(&["--policy-file", file]).policy(100).unwrap().0,
        Policy::default()
    );
    std::fs::write(&path, "x".repeat(2 << 20)).unwrap();
    let err = args(&["--policy-file", file])
        .policy(100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 MiB"), "{err}");
    let err = args(&["--policy-file", "/nonexistent/policy.yaml"])
        .policy(100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/policy.yaml"), "{err}");
}

// ---- the property ----
// The strategies are weighted towards values near and inside the bounds, so that a good
// share of the specs is accepted and the property is not vacuous.

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("kube-system".to_string()),
        1 => Just("default".to_string()),
        1 => Just("openshift-x".to_string()),
        1 => Just("nephoran-system".to_string()),
        1 => Just("\u{212A}ube-system".to_string()),
        8 => Just("core5g".to_string()),
        4 => "[a-z0-9-]{0,8}",
        1 => "\\PC{0,6}",
    ]
}

fn replicas() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        4 => Just(None),
        4 => (0u32..=101).prop_map(Some),
        1 => any::<u32>().prop_map(Some),
    ]
}

fn quantity(near: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        4 => proptest::sample::select(near).prop_map(|q| Some(q.to_string())),
        4 => ("[0-9]{0,3}(\\.[0-9]{0,10})?", "(|m|k|M|G|Ki|Mi|Gi)")
            .prop_map(|(n, s)| Some(format!("{n}{s}"))),
        1 => ("[0-9]{0,6}(\\.[0-9]{0,10})?", "(|n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e3|x)")
            .prop_map(|(n, s)| Some(format!("{n}{s}"))),
        1 => "\\PC{0,8}".prop_map(Some),
    ]
}

fn parameter() -> impl Strategy<Value = (String, ParamValue)> {
    prop_oneof![
        3 => (1i64..=255).prop_map(|n| ("sst".to_string(), ParamValue::Int(n))),
        3 => "[0-9a-fA-F]{6}".prop_map(|v| ("sd".to_string(), ParamValue::String(v))),
        2 => Just(("slice_type".to_string(), ParamValue::String("urllc".into()))),
        2 => (0.0..10_000.0f64).prop_map(|x| ("latency_ms".to_string(), ParamValue::Float(x))),
        1 => (
            prop_oneof![
                Just("sst".to_string()),
                Just("sd".to_string()),
                Just("slice_type".to_string()),
                Just("latency_ms".to_string()),
                Just("privileged".to_string()),
                "[a-z_]{1,6}",
            ],
            prop_oneof![
                any::<bool>().prop_map(ParamValue::Bool),
                any::<i64>().prop_map(ParamValue::Int),
                (-300i64..300).prop_map(ParamValue::Int),
                any::<f64>().prop_map(ParamValue::Float),
                "[0-9a-fA-Z]{0,8}".prop_map(ParamValue::String),
                Just(ParamValue::String("gold".into())),
            ],
        ),
    ]
}

prop_compose! {
    fn arbitrary_spec()(
        target_namespace in namespace(),
        replicas in replicas(),
        min_replicas in replicas(),
        max_replicas in replicas(),
        scale_by in prop_oneof![4 => Just(None), 1 => any::<i32>().prop_map(Some), 2 => (-120i32..120).prop_map(Some)],
        cpu in quantity(&["1m", "500m", "1.5", "2", "16", "16000m", "16001m", "0", "17"]),
        memory in quantity(&["1Mi", "512Mi", "1Gi", "1.5Gi", "64Gi", "65Gi", "1048575", "999999Ti"]),
        parameters in proptest::collection::vec(parameter(), 0..3),
    ) -> NetworkIntentSpec {
        let mut s = spec();
        s.target_namespace = target_namespace;
        s.scaling = Some(Scaling { replicas, min_replicas, max_replicas, scale_by });
        s.resources = Some(Resources { cpu, memory });
        s.parameters = parameters.into_iter().collect();
        s
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn whatever_the_policy_accepts_satisfies_every_bound(s in arbitrary_spec()) {
        let policy = Policy {
            namespaces: Namespaces { own: Some("nephoran-system".into()), ..Namespaces::default() },
            ..Policy::default()
        };
        if policy.check(&s).is_ok() {
            let ns = s.target_namespace.as_str();
            prop_assert!(crate::validate::is_dns1123_label(ns));
            prop_assert!(!ns.starts_with("kube-") && !ns.starts_with("openshift-"));
            prop_assert!(ns != "default" && ns != "nephoran-system");
            let scaling = s.scaling.clone().unwrap_or_default();
            for n in [scaling.replicas, scaling.min_replicas, scaling.max_replicas].into_iter().flatten() {
                prop_assert!((1..=100).contains(&n), "{n}");
            }
            if let Some(step) = scaling.scale_by {
                prop_assert!(step.unsigned_abs() <= 99);
            }
            let resources = s.resources.clone().unwrap_or_default();
            let nanos = |q: &str| Quantity::parse(q).map(|q| q.nanos());
            if let Some(cpu) = &resources.cpu {
                let n = nanos(cpu);
                prop_assert!(matches!(n, Ok(n) if (1_000_000..=16_000_000_000).contains(&n)), "{cpu}");
            }
            if let Some(memory) = &resources.memory {
                let n = nanos(memory);
                let (lo, hi) = ((1u128 << 20) * 1_000_000_000, (64u128 << 30) * 1_000_000_000);
                prop_assert!(matches!(n, Ok(n) if (lo..=hi).contains(&n)), "{memory}");
            }
            for (key, value) in &s.parameters {
                let rule = policy.parameters.get(key);
                prop_assert!(rule.is_some(), "{key}");
                let ok = match (key.as_str(), value) {
                    ("sst", ParamValue::Int(n)) => (1..=255).contains(n),
                    ("sd", ParamValue::String(v)) => v.len() == 6 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                    ("slice_type", ParamValue::String(v)) => ["embb", "urllc", "mmtc", "eMBB", "URLLC", "mMTC"].contains(&v.as_str()),
                    ("latency_ms", ParamValue::Float(x)) => x.is_finite() && (0.0..=10_000.0).contains(x),
                    ("latency_ms", ParamValue::Int(n)) => (0..=10_000).contains(n),
                    (k, _) => policy.parameters.contains_key(k),
                };
                prop_assert!(ok, "{key} = {value:?}");
            }
        }
    }
}
