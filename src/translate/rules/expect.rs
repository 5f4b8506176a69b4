//! Test helpers shared by the rule files' tests: requests made from text, and what a
//! translation must say field by field.
//!
//! Every check also runs the result through [`crate::validate`], so a rule cannot pass
//! its test while producing an intent the service would refuse to apply.

use super::RuleTranslator;
use crate::intent::{Component, IntentType, NetworkIntent, NetworkIntentSpec, Priority, SliceType};
use crate::request::{Request, ServiceRequest};
use crate::translate::Untranslatable;
use crate::validate::{validate, Limits};

/// The translator's cap on event-driven scale-outs in tests.
pub(super) const MAX: u32 = 10;

pub(super) fn request(text: &str) -> ServiceRequest {
    ServiceRequest::new(text)
}

pub(super) fn translate(request: ServiceRequest) -> Result<NetworkIntentSpec, Untranslatable> {
    RuleTranslator::new(MAX).translate_sync(&Request::Service(request))
}

/// The reason a text is refused; fails the test if it translates.
pub(super) fn refused(text: &str) -> String {
    match translate(request(text)) {
        Ok(spec) => panic!("{text:?} should be refused, got {spec:?}"),
        Err(e) => e.reason,
    }
}

pub(super) fn assert_refused(text: &str, mentions: &[&str]) {
    let reason = refused(text);
    for m in mentions {
        assert!(
            reason.to_lowercase().contains(&m.to_lowercase()),
            "{text:?}: reason {reason:?} should mention {m:?}"
        );
    }
}

/// What a translated request must say, field by field.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect {
    kind: IntentType,
    components: &'static [Component],
    replicas: Option<u32>,
    scale_by: Option<i32>,
    namespace: &'static str,
    priority: Priority,
    slice: Option<SliceType>,
}

pub(super) fn deploy(components: &'static [Component], namespace: &'static str) -> Expect {
    Expect {
        kind: IntentType::Deployment,
        components,
        replicas: None,
        scale_by: None,
        namespace,
        priority: Priority::Medium,
        slice: None,
    }
}

pub(super) fn scale(components: &'static [Component], namespace: &'static str) -> Expect {
    Expect {
        kind: IntentType::Scaling,
        ..deploy(components, namespace)
    }
}

impl Expect {
    pub(super) fn replicas(self, n: u32) -> Self {
        Self {
            replicas: Some(n),
            ..self
        }
    }
    pub(super) fn by(self, d: i32) -> Self {
        Self {
            scale_by: Some(d),
            ..self
        }
    }
    pub(super) fn priority(self, priority: Priority) -> Self {
        Self { priority, ..self }
    }
    pub(super) fn slice(self, slice: SliceType) -> Self {
        Self {
            slice: Some(slice),
            ..self
        }
    }
}

pub(super) fn assert_spec(what: &str, spec: &NetworkIntentSpec, expect: Expect) {
    assert_eq!(spec.intent_type, expect.kind, "{what}: intent type");
    assert_eq!(
        spec.target_components, expect.components,
        "{what}: components"
    );
    let scaling = spec.scaling.clone().unwrap_or_default();
    assert_eq!(scaling.replicas, expect.replicas, "{what}: replicas");
    assert_eq!(scaling.scale_by, expect.scale_by, "{what}: scale_by");
    assert_eq!(spec.target_namespace, expect.namespace, "{what}: namespace");
    assert_eq!(spec.priority, expect.priority, "{what}: priority");
    assert_eq!(
        spec.network_slice.as_ref().map(|s| s.slice_type),
        expect.slice,
        "{what}: slice"
    );
    if expect.replicas.is_none() && expect.scale_by.is_none() {
        assert_eq!(spec.scaling, None, "{what}: no scaling block");
    }
}

/// Translates `req`, checks every field, and checks validation accepts the result.
pub(super) fn check_request(req: ServiceRequest, expect: Expect) -> NetworkIntentSpec {
    let what = req.intent.clone();
    let spec = translate(req).unwrap_or_else(|e| panic!("{what:?} refused: {e}"));
    assert_spec(&what, &spec, expect);
    let intent = NetworkIntent::for_key("test-key", spec.clone());
    validate(&intent, &Limits::default())
        .unwrap_or_else(|e| panic!("{what:?} produced an invalid intent: {e}"));
    spec
}

pub(super) fn check(text: &str, expect: Expect) -> NetworkIntentSpec {
    check_request(request(text), expect)
}
