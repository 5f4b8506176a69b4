//! A service request, read as a whole: the order in which its parts are read and the
//! order in which their errors are reported.
//!
//! Readings that claim tokens run first (the namespace phrase, components, a bare "in
//! <name>" namespace, then resources; see `screen.rs`), so that the word readings after
//! them skip what was taken. Errors are then reported in the order a reader would fix
//! them: what the screen refuses for any translator, then what only the rules cannot
//! read (an action they do not implement, no action, the counts, no namespace, the
//! qualifiers, no component).

use super::action::{action, refuse_unsupported_actions, Action};
use super::counts::scaling;
use super::namespace::namespace;
use super::qualifiers::{environment, priority, slice};
use super::screen::Reading;
use crate::intent::{IntentType, NetworkIntentSpec, NetworkSlice};
use crate::request::ServiceRequest;
use crate::translate::Untranslatable;

pub(super) fn translate(request: &ServiceRequest) -> Result<NetworkIntentSpec, Untranslatable> {
    let reading = Reading::of(request)?;
    let words = reading.text.words();
    let stated = reading.screen(&words, request.target_namespace.as_deref())?;
    refuse_unsupported_actions(&words)?;
    let action = action(&words)?;
    let scaling = scaling(&reading.text, &words, action)?;
    let target_namespace = namespace(&reading.namespaces, request.target_namespace.as_deref())?;
    let priority = priority(request.priority.as_deref(), &words)?;
    let target_environment = environment(request.target_environment.as_deref(), &words)?;
    let network_slice = slice(&words)?.map(|slice_type| NetworkSlice { slice_type });
    let target_components = reading.components.into_result()?;

    Ok(NetworkIntentSpec {
        intent: reading.intent,
        intent_type: match action {
            Action::Deploy => IntentType::Deployment,
            Action::Scale => IntentType::Scaling,
        },
        priority,
        target_components,
        target_namespace,
        target_environment,
        scaling,
        resources: stated.resources,
        network_slice,
        parameters: request.parameters.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::expect::*;
    use crate::intent::Component::*;
    use crate::intent::{ParamValue, Priority, SliceType};

    #[test]
    fn deploy_amf_with_three_replicas() {
        let spec = check(
            "Deploy AMF with 3 replicas in namespace core5g",
            deploy(&[Amf], "core5g").replicas(3),
        );
        assert_eq!(
            spec.intent,
            "Deploy AMF with 3 replicas in namespace core5g"
        );
        assert_eq!(spec.target_environment, None);
        assert_eq!(spec.resources, None);
        assert!(spec.parameters.is_empty());
    }

    #[test]
    fn empty_text_is_refused() {
        assert_refused("", &["the intent text is empty"]);
        assert_refused("   \n\t ", &["the intent text is empty"]);
    }

    #[test]
    fn text_is_trimmed_and_parameters_copied() {
        let mut req = request("  Deploy AMF in namespace core5g \n");
        let parameters = BTreeMap::from([
            ("plmn".to_string(), ParamValue::String("00101".into())),
            ("tac".to_string(), ParamValue::Int(7)),
        ]);
        req.parameters = Some(parameters.clone());
        let spec = check_request(req, deploy(&[Amf], "core5g"));
        assert_eq!(spec.intent, "Deploy AMF in namespace core5g");
        assert_eq!(spec.parameters, parameters);
    }

    #[test]
    fn a_full_request() {
        check(
            "Urgent: scale the Near-RT RIC and xApp to 4 replicas for URLLC in the ric namespace",
            scale(&[NearRtRic, Xapp], "ric")
                .replicas(4)
                .priority(Priority::Critical)
                .slice(SliceType::Urllc),
        );
        assert_refused(
            "Scale the Near-RT RIC? No - scale the xApp to 4 in the ric namespace",
            &["negation", "no"],
        );
    }
}
