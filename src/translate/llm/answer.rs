//! The model's answer, read strictly: one JSON object of the answer schema and nothing
//! else, turned into a spec and validated before it is accepted.
//!
//! This is where hostile text stops. An answer with an unknown field, a component
//! outside the allowlist, a count out of bounds or a name that is not DNS-1123 is
//! invalid, whatever the request said. The fields the service owns are not the model's
//! to choose: the intent text and the parameters are copied from the request, and the
//! requester's namespace, environment and priority override the model's reading.

use serde::Deserialize;

use crate::intent::{
    Component, IntentType, NetworkIntentSpec, NetworkSlice, Priority, Resources, Scaling,
};
use crate::request::ServiceRequest;
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

/// Reads the model's answer to `request`.
pub fn read(
    content: &str,
    request: &ServiceRequest,
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
    let spec = NetworkIntentSpec {
        intent: request.intent.trim().to_string(),
        intent_type: answer.intent_type,
        priority,
        target_components: components,
        target_namespace: request
            .target_namespace
            .clone()
            .unwrap_or(answer.target_namespace),
        target_environment: request
            .target_environment
            .clone()
            .or(answer.target_environment),
        scaling: answer.scaling.filter(|s| *s != Scaling::default()),
        resources: answer.resources.filter(|r| *r != Resources::default()),
        network_slice: answer.network_slice,
        parameters: request.parameters.clone().unwrap_or_default(),
    };
    validate_spec(&spec, limits).map_err(|e| Rejection::Invalid(e.to_string()))?;
    Ok(spec)
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

    fn read_for(content: &str, text: &str) -> Result<NetworkIntentSpec, Rejection> {
        read(content, &request(text), &Limits::default())
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
        let spec = read(GOOD, &r, &Limits::default()).unwrap();
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
}
