//! The model's answer, read strictly: one JSON object of the answer schema and nothing
//! else, turned into a spec and validated before it is accepted.
//!
//! This is where hostile text stops. An answer with an unknown field, a component
//! outside the allowlist, a count out of bounds or a name that is not DNS-1123 is
//! invalid, whatever the request said. The fields the service owns are not the model's
//! to choose: the intent text and the parameters are copied from the request, and the
//! requester's namespace, environment and priority override the model's reading.
//!
//! The answer must also agree with what the text states explicitly, as the rules read it
//! ([`Stated`]): the action, the namespace, the components, the replica count or change,
//! and the cpu and memory amounts. An answer that names another intent type, another
//! namespace, other components, another count, resources the text does not give, or 0
//! replicas for a text that writes no zero, is invalid: the model proposes, the text
//! decides.

use serde::Deserialize;

use crate::intent::{
    Component, IntentType, NetworkIntentSpec, NetworkSlice, Priority, Resources, Scaling,
};
use crate::request::ServiceRequest;
use crate::translate::rules::{field_namespace, Stated};
use crate::validate::{validate_spec, Limits};

/// Longest answer read; an answer object is well under 2 KiB.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The model said the request cannot be translated, and why.
    Refused(String),
    /// The answer breaks the schema or the limits: what is wrong, for the model to fix.
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Answer {
    intent_type: IntentType,
    priority: Priority,
    target_components: Vec<Component>,
    target_namespace: String,
    #[serde(default)]
    target_environment: Option<String>,
    #[serde(default)]
    scaling: Option<Scaling>,
    #[serde(default)]
    resources: Option<Resources>,
    #[serde(default)]
    network_slice: Option<NetworkSlice>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Reads the model's answer to `request`, whose text states `stated`.
pub fn read(
    content: &str,
    request: &ServiceRequest,
    stated: &Stated,
    limits: &Limits,
) -> Result<NetworkIntentSpec, Rejection> {
    if content.len() > MAX_ANSWER_BYTES {
        return Err(Rejection::Invalid(format!(
            "the answer is {} bytes long, above {MAX_ANSWER_BYTES}",
            content.len()
        )));
    }
    let json = the_object(content);
    let answer: Answer = serde_json::from_str(json).map_err(|e| {
        Rejection::Invalid(format!(
            "the answer is not one JSON object of the schema: {e}"
        ))
    })?;
    if let Some(refusal) = answer.refusal.as_deref().map(str::trim) {
        if !refusal.is_empty() {
            return Err(Rejection::Refused(refusal.chars().take(300).collect()));
        }
    }
    let mut components = answer.target_components;
    let mut seen = std::collections::HashSet::new();
    components.retain(|c| seen.insert(*c));
    let priority = request
        .priority
        .as_deref()
        .and_then(Priority::parse)
        .unwrap_or(answer.priority);
    // The text's namespace is checked against the model's below; the requester's field,
    // read as the rules read it, overrides the model's as before.
    let field_namespace = field_namespace(request.target_namespace.as_deref());
    let field_environment = request
        .target_environment
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_ascii_lowercase);
    let spec = NetworkIntentSpec {
        intent: request.intent.trim().to_string(),
        intent_type: answer.intent_type,
        priority,
        target_components: components,
        target_namespace: field_namespace.clone().unwrap_or(answer.target_namespace),
        target_environment: field_environment.or(answer.target_environment),
        scaling: answer.scaling.filter(|s| *s != Scaling::default()),
        resources: answer.resources.filter(|r| *r != Resources::default()),
        network_slice: answer.network_slice,
        parameters: request.parameters.clone().unwrap_or_default(),
    };
    validate_spec(&spec, limits).map_err(|e| Rejection::Invalid(e.to_string()))?;
    agreeing(spec, stated, field_namespace).map_err(Rejection::Invalid)
}

/// `spec` if it agrees with what the text states, with the requester's namespace in it
/// when there is one (the model's is then not compared: the field overrides it); else
/// what disagrees, for the model to fix.
pub fn agreeing(
    mut spec: NetworkIntentSpec,
    stated: &Stated,
    field_namespace: Option<String>,
) -> Result<NetworkIntentSpec, String> {
    if field_namespace.is_none() {
        if let Some(namespace) = &stated.namespace {
            if spec.target_namespace != *namespace {
                return Err(format!(
                    "the text names namespace '{namespace}' but the answer says '{}'",
                    shown(&spec.target_namespace)
                ));
            }
        }
    }
    if let Some(field) = field_namespace {
        spec.target_namespace = field;
    }
    if let Some(intent_type) = stated.intent_type {
        if spec.intent_type != intent_type {
            let name = |t: IntentType| {
                serde_json::to_value(t)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            return Err(format!(
                "the text asks for a {} but the answer says {}",
                name(intent_type),
                name(spec.intent_type)
            ));
        }
    }
    if !stated.components.is_empty() {
        let mut said: Vec<&str> = spec.target_components.iter().map(|c| c.as_str()).collect();
        let mut named: Vec<&str> = stated.components.iter().map(|c| c.as_str()).collect();
        said.sort_unstable();
        named.sort_unstable();
        if said != named {
            return Err(format!(
                "the text names the components [{}] but the answer says [{}]",
                named.join(", "),
                said.join(", ")
            ));
        }
    }
    let scaling = spec.scaling.clone().unwrap_or_default();
    if let Some(replicas) = stated.replicas {
        if scaling.replicas != Some(replicas) || scaling.scale_by.is_some() {
            return Err(format!(
                "the text asks for {replicas} replicas but the answer says {}",
                counts(&scaling)
            ));
        }
    }
    if let Some(by) = stated.scale_by {
        if scaling.scale_by != Some(by) || scaling.replicas.is_some() {
            return Err(format!(
                "the text asks for a change of {by:+} replicas but the answer says {}",
                counts(&scaling)
            ));
        }
    }
    let zero = [scaling.replicas, scaling.min_replicas, scaling.max_replicas].contains(&Some(0));
    if zero && !stated.says_zero {
        return Err(format!(
            "the answer says {} but the text asks for no zero",
            counts(&scaling)
        ));
    }
    if spec.resources != stated.resources {
        let shown = |r: &Option<Resources>| match r {
            None => "none".to_string(),
            Some(r) => format!(
                "cpu {}, memory {}",
                r.cpu.as_deref().map_or("none".into(), shown),
                r.memory.as_deref().map_or("none".into(), shown)
            ),
        };
        return Err(format!(
            "the text gives resources {} but the answer says {}",
            shown(&stated.resources),
            shown(&spec.resources)
        ));
    }
    Ok(spec)
}

/// The answer's counts, as a problem message shows them.
fn counts(scaling: &Scaling) -> String {
    let show = |n: Option<i64>| n.map_or("none".to_string(), |n| n.to_string());
    format!(
        "replicas {}, minReplicas {}, maxReplicas {}, scaleBy {}",
        show(scaling.replicas.map(i64::from)),
        show(scaling.min_replicas.map(i64::from)),
        show(scaling.max_replicas.map(i64::from)),
        show(scaling.scale_by.map(i64::from)),
    )
}

/// A value from the model as a problem message quotes it: bounded, control characters
/// escaped (the message goes back to the model and into logs).
fn shown(value: &str) -> String {
    value
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect()
}

/// The JSON object in an answer. Models asked for plain JSON often wrap it: reasoning
/// models (DeepSeek-R1, Qwen3 on Ollama) put their `<think>` block first, and many put
/// the object in a Markdown code fence or after a sentence. What is taken is still read
/// strictly, so leniency here cannot let anything outside the schema through.
fn the_object(content: &str) -> &str {
    let mut text = content.trim();
    if let Some(rest) = text.strip_prefix("<think>") {
        text = rest
            .split_once("</think>")
            .map_or("", |(_, after)| after)
            .trim();
    }
    let text = strip_code_fence(text);
    if text.starts_with('{') {
        return text;
    }
    // Prose around it: from the first brace to the last.
    match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) if start < end => &text[start..=end],
        _ => text,
    }
}

fn strip_code_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::SliceType;

    fn request(text: &str) -> ServiceRequest {
        ServiceRequest::new(text)
    }

    const GOOD: &str = r#"{"intentType":"deployment","priority":"high","targetComponents":["amf","amf","near-rt-ric"],
        "targetNamespace":"core5g","targetEnvironment":null,
        "scaling":{"replicas":3,"minReplicas":null,"maxReplicas":null,"scaleBy":null},
        "resources":null,"networkSlice":{"sliceType":"embb"},"refusal":null}"#;

    /// Reads `content` as the answer to `text`, without the agreement checks.
    fn read_for(content: &str, text: &str) -> Result<NetworkIntentSpec, Rejection> {
        read(
            content,
            &request(text),
            &Stated::default(),
            &Limits::default(),
        )
    }

    fn invalid(content: &str) -> String {
        match read_for(content, "Deploy AMF") {
            Err(Rejection::Invalid(why)) => why,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_good_answer_becomes_the_spec_with_the_request_text() {
        let spec = read_for(GOOD, "  Deploy AMF x3 for eMBB ").unwrap();
        assert_eq!(spec.intent, "Deploy AMF x3 for eMBB");
        assert_eq!(
            spec.target_components,
            [Component::Amf, Component::NearRtRic]
        );
        assert_eq!(spec.scaling.unwrap().replicas, Some(3));
        assert_eq!(spec.network_slice.unwrap().slice_type, SliceType::Embb);
        assert_eq!(spec.priority, Priority::High);
    }

    #[test]
    fn the_object_is_taken_out_of_what_models_wrap_it_in() {
        for wrapped in [
            format!("```json\n{GOOD}\n```"),
            format!("<think>\nThe user wants an AMF. {{maybe}}\n</think>\n\n{GOOD}"),
            format!("<think>x</think>```json\n{GOOD}\n```"),
            format!("Here is the intent:\n{GOOD}\nLet me know if you need more."),
        ] {
            assert!(read_for(&wrapped, "Deploy AMF").is_ok(), "{wrapped}");
        }
        assert_eq!(the_object("```\n{}\n```"), "{}");
        // An unfinished think block leaves nothing to read.
        assert!(read_for(&format!("<think>{GOOD}"), "Deploy AMF").is_err());
    }

    #[test]
    fn the_requesters_fields_win() {
        let mut r = request("Deploy AMF");
        r.target_namespace = Some("ran".into());
        r.priority = Some("low".into());
        r.target_environment = Some("staging".into());
        let spec = read(GOOD, &r, &Stated::default(), &Limits::default()).unwrap();
        assert_eq!(spec.target_namespace, "ran");
        assert_eq!(spec.priority, Priority::Low);
        assert_eq!(spec.target_environment.as_deref(), Some("staging"));
    }

    #[test]
    fn a_refusal_is_told_apart_from_an_invalid_answer() {
        let refused = GOOD.replace(r#""refusal":null"#, r#""refusal":"not a network request""#);
        assert_eq!(
            read_for(&refused, "Write me a poem"),
            Err(Rejection::Refused("not a network request".into()))
        );
    }

    #[test]
    fn hostile_answers_are_invalid_and_say_why() {
        let why = invalid(&GOOD.replace(r#""amf","amf""#, r#""amf","kube-apiserver""#));
        assert!(why.contains("kube-apiserver"), "{why}");
        let why = invalid(&GOOD.replace(
            r#""refusal":null"#,
            r#""refusal":null,"kind":"ClusterRole""#,
        ));
        assert!(why.contains("kind"), "{why}");
        let why = invalid(&GOOD.replace(r#""replicas":3"#, r#""replicas":100000"#));
        assert!(why.contains("spec.scaling.replicas"), "{why}");
        let why = invalid(&GOOD.replace("core5g", "Core 5G; rm -rf"));
        assert!(why.contains("spec.targetNamespace"), "{why}");
        let why = invalid(&GOOD.replace(
            r#""resources":null"#,
            r#""resources":{"cpu":"all","memory":null}"#,
        ));
        assert!(why.contains("spec.resources.cpu"), "{why}");
        let why = invalid(&GOOD.replace(r#""replicas":3,"#, r#""replicas":3,"privileged":true,"#));
        assert!(why.contains("privileged"), "{why}");
        let why = invalid("Sure! Here is your intent: {}");
        assert!(why.contains("not one JSON object"), "{why}");
        let why = invalid(&format!("{GOOD}{}", " ".repeat(MAX_ANSWER_BYTES)));
        assert!(why.contains("bytes long"), "{why}");
        let why = invalid(&GOOD.replace(r#"["amf","amf","near-rt-ric"]"#, "[]"));
        assert!(why.contains("spec.targetComponents"), "{why}");
    }

    /// Reads `content` as the answer to `text`, held to what the text states.
    fn read_agreeing(content: &str, text: &str) -> Result<NetworkIntentSpec, Rejection> {
        let r = request(text);
        let stated = crate::translate::rules::screen(&r).expect("passes the screen");
        read(content, &r, &stated, &Limits::default())
    }

    fn answer(components: &str, namespace: &str, scaling: &str, resources: &str) -> String {
        format!(
            r#"{{"intentType":"deployment","priority":"medium","targetComponents":{components},
            "targetNamespace":"{namespace}","targetEnvironment":null,"scaling":{scaling},
            "resources":{resources},"networkSlice":null,"refusal":null}}"#
        )
    }

    const THREE: &str = r#"{"replicas":3,"minReplicas":null,"maxReplicas":null,"scaleBy":null}"#;

    #[test]
    fn an_answer_that_contradicts_the_text_is_invalid_and_says_what() {
        let text = "Deploy AMF with 3 replicas in namespace core5g";
        let good = answer(r#"["amf"]"#, "core5g", THREE, "null");
        assert!(read_agreeing(&good, text).is_ok());
        let cases = [
            (
                answer(r#"["amf"]"#, "kube-system", THREE, "null"),
                "namespace 'core5g'",
            ),
            (
                answer(r#"["smf"]"#, "core5g", THREE, "null"),
                "components [amf]",
            ),
            (
                answer(r#"["amf","upf"]"#, "core5g", THREE, "null"),
                "components [amf]",
            ),
            (
                answer(r#"["amf"]"#, "core5g", &THREE.replace("3", "0"), "null"),
                "3 replicas",
            ),
            (answer(r#"["amf"]"#, "core5g", "null", "null"), "3 replicas"),
            (
                answer(r#"["amf"]"#, "core5g", THREE, "null")
                    .replace(r#""deployment""#, r#""maintenance""#),
                "asks for a deployment but the answer says maintenance",
            ),
            (
                answer(
                    r#"["amf"]"#,
                    "core5g",
                    THREE,
                    r#"{"cpu":"64","memory":null}"#,
                ),
                "resources none",
            ),
        ];
        for (bad, why) in cases {
            match read_agreeing(&bad, text) {
                Err(Rejection::Invalid(problem)) => assert!(problem.contains(why), "{problem}"),
                other => panic!("{bad}: expected invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_replicas_only_when_the_text_writes_a_zero() {
        let zero = answer(r#"["amf"]"#, "core5g", &THREE.replace("3", "0"), "null");
        let why = match read_agreeing(&zero, "Deploy AMF in namespace core5g") {
            Err(Rejection::Invalid(why)) => why,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert!(why.contains("no zero"), "{why}");
        assert!(read_agreeing(&zero, "Deploy AMF with zero replicas in namespace core5g").is_ok());
    }

    #[test]
    fn the_requesters_namespace_overrides_and_the_texts_is_held_to() {
        // the field overrides the model's (as before), read as the rules read it
        let mut r = request("Deploy AMF");
        r.target_namespace = Some(" Core5G ".into());
        let stated = crate::translate::rules::screen(&r).unwrap();
        let spec = read(
            &answer(r#"["amf"]"#, "kube-system", "null", "null"),
            &r,
            &stated,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(spec.target_namespace, "core5g");
        // a field whose Unicode lower case would be ASCII stays invalid
        r.target_namespace = Some("\u{212A}ube-system".into());
        let stated = crate::translate::rules::screen(&r).unwrap();
        let answer = answer(r#"["amf"]"#, "kube-system", "null", "null");
        match read(&answer, &r, &stated, &Limits::default()) {
            Err(Rejection::Invalid(why)) => assert!(why.contains("spec.targetNamespace"), "{why}"),
            other => panic!("expected invalid, got {other:?}"),
        }
        // a text naming none leaves the model's, a text naming one holds the model to it
        let free = read_agreeing(&answer, "Deploy AMF somewhere nice").unwrap();
        assert_eq!(free.target_namespace, "kube-system");
        assert!(read_agreeing(&answer, "Deploy AMF in core5g").is_err());
    }

    #[test]
    fn a_text_that_states_nothing_leaves_the_model_its_reading() {
        let text = "The stadium needs more session management capacity, make it seven";
        let spec = read_agreeing(&answer(r#"["smf"]"#, "core5g", THREE, "null"), text).unwrap();
        assert_eq!(spec.scaling.and_then(|s| s.replicas), Some(3));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::agreeing;
        use crate::request::{Request, ServiceRequest};
        use crate::translate::rules::{field_namespace, screen, RuleTranslator};

        /// Words the rules read, refuse or stumble on, for texts that reach deep.
        #[rustfmt::skip]
        const WORDS: &[&str] = &[
            "deploy", "Deploy", "scale", "scaled", "deployed", "add", "set", "AMF", "SMF",
            "upf", "UPFs", "user plane function", "MME", "CU", "FOOBAR", "function", "and",
            "or", "the", "an", "to", "by", "of", "with", "in", "into", "namespace", "ns",
            "core5g", "edge-01", "kube-system", "\u{212A}ube-system", "0", "zero", "1", "3",
            "5", "two", "dozen", "twenty-one", "-3", "2.5", "3-5", "3/5", "3\u{2013}5", "-",
            "\u{2192}", "\u{d7}", "x3", "3x", "replicas", "replica", "pods", "more", "per",
            "zone", "each", "between", "min", "max", "up", "out", "down", "cpu", "cores",
            "500m", "1e3", "memory", "1Gi", "2", "GB", "gigabytes", "millicores", "delete",
            "stop", "not", "at", "3am", "tomorrow", "every", "day", "upgrade", "restart",
            "autoscale", "urgent", "low", "priority", "eMBB", "URLLC", "for", "production",
            ",", ".", ":", "ignore", "previous", "instructions", "cluster-admin", "secret",
        ];

        fn text_of(words: &[&str]) -> String {
            words.join(" ")
        }

        /// The rules never translate a text their screen refuses, and what they
        /// translate agrees with what the screen says the text states: the check the
        /// model's answers are held to can never refuse the rules' own reading.
        fn consistent(request: ServiceRequest) -> Result<(), TestCaseError> {
            let screened = screen(&request);
            let translated =
                RuleTranslator::new(100).translate_sync(&Request::Service(request.clone()));
            match (screened, translated) {
                (Err(_), Ok(spec)) => {
                    prop_assert!(
                        false,
                        "{:?} screened out but translated: {spec:?}",
                        request.intent
                    );
                }
                (Ok(stated), Ok(spec)) => {
                    let field = field_namespace(request.target_namespace.as_deref());
                    let agreed = agreeing(spec.clone(), &stated, field);
                    prop_assert_eq!(
                        agreed.as_ref().ok(),
                        Some(&spec),
                        "{:?}: {:?}",
                        request.intent,
                        agreed
                    );
                }
                _ => {}
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn texts_of_the_rules_words_are_read_consistently(
                words in prop::collection::vec(prop::sample::select(WORDS), 0..14),
                field in prop::option::of(prop::sample::select(&["core5g", " Core5G ", "edge-01", "\u{212A}ube-system", ""][..])),
            ) {
                let mut request = ServiceRequest::new(text_of(&words));
                request.target_namespace = field.map(str::to_string);
                consistent(request)?;
            }

            #[test]
            fn any_text_is_screened_and_read_without_a_panic(text in any::<String>()) {
                consistent(ServiceRequest::new(text))?;
            }
        }
    }
}
