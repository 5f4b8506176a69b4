//! The NetworkIntent CustomResourceDefinition, generated from the Rust type.
//!
//! `deploy/base/crd-networkintent.yaml` is this module's output (`nephoran-kafka-consumer crd`),
//! never edited by hand: the schema the API server enforces is the one the service
//! serialises, and a test (tests/deploy.rs) fails when the file and the type differ.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::intent::NetworkIntent;

/// Where the generated CRD lives in the repository, and how to regenerate it.
pub const CRD_FILE: &str = "deploy/base/crd-networkintent.yaml";
pub const REGENERATE: &str = "cargo run --quiet -- crd > deploy/base/crd-networkintent.yaml";

const HEADER: &str = "\
# NetworkIntent (nephoran.com/v1alpha1), generated from src/intent.rs: do not edit, run
#
#   cargo run --quiet -- crd > deploy/base/crd-networkintent.yaml
#
# (or `nephoran-kafka-consumer crd`). The Nephoran Intent Operator owns this CRD in
# production: install the operator's CRD there and drop this file from
# deploy/base/kustomization.yaml. This copy is for local clusters (kind, k3d, minikube)
# without the operator, and for validating the files the `dir:` sink writes, e.g.
#
#   kubectl apply -f deploy/base/crd-networkintent.yaml
#   kubectl apply --dry-run=server -R -f ./intents
#
# The schema carries the cheap limits of src/validate.rs (replicas 0..100, the default
# MAX_REPLICAS; intent text at most 1024 characters; at most 16 components and 32
# parameters; DNS-1123 namespace and environment; Kubernetes quantities). The service
# validates everything again before it writes an intent (including what a schema cannot
# say: markup in the text, the parameter keys and value kinds), so the schema is a safety
# net, not the only check.
";

/// The CRD as a Kubernetes object.
pub fn definition() -> CustomResourceDefinition {
    let mut crd = NetworkIntent::crd();
    crd.metadata
        .labels
        .get_or_insert_default()
        .insert("app.kubernetes.io/part-of".into(), "nephoran".into());
    crd
}

/// The CRD as the YAML file under `deploy/`: a comment header, then the object.
pub fn yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!("{HEADER}{}", serde_yaml::to_string(&definition())?))
}
