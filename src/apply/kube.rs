//! The `kube` sink: server-side apply of each NetworkIntent to the Kubernetes API server,
//! as field manager [`FIELD_MANAGER`], with a client configured in-cluster (the pod's
//! service account) or from `KUBECONFIG` (kube's `Client::try_default`), built once at
//! start. The object's name is the deterministic one of [`NetworkIntent::for_key`], so
//! applying the same intent again changes nothing (the API server keeps its
//! resourceVersion).
//!
//! It keeps the guarantee of the `dir:` sink: before applying it reads the object already
//! there (only its metadata counts) and applies only if its idempotency-key annotation is
//! this intent's key and, when both record one, its payload fingerprint is this intent's
//! (`check_claim`, shared with it); anything else is an [`ApplyError::Conflict`].
//!
//! What the API server answers decides how the message ends ([`ApplyError::transience`]):
//! 429, 5xx, a timeout, a connection or credentials that fail, an answer that is not the
//! API's may heal (the pipeline waits with the partition paused); a conflict with another field manager (unless `KUBE_FORCE_APPLY`),
//! a namespace that does not exist (unless `CREATE_NAMESPACES`) and any other refusal
//! (403, 422, 400, ...) will not, and end the message as `failed`. The API server's
//! words are quoted bounded and escaped: they are not this service's to trust.
//!
//! Metrics: `kube_namespaces_created_total` (counter: namespaces this sink created, with
//! `CREATE_NAMESPACES=true`).

use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::Client;
use tracing::info;

use super::{check_claim, escaped, ApplyError};
use crate::intent::{NetworkIntent, IDEMPOTENCY_KEY_ANNOTATION, PAYLOAD_FINGERPRINT_ANNOTATION};

/// The field manager of every apply: what `managedFields` and conflicts name.
pub const FIELD_MANAGER: &str = "nephoran-kafka-consumer";
/// The most of an API server's message quoted in an error (characters, before escaping).
pub const MAX_SERVER_MESSAGE_CHARS: usize = 300;
/// Field managers named in one conflict error, at most.
const MAX_MANAGERS: usize = 8;

/// The settings of the `kube` sink (`CREATE_NAMESPACES`, `KUBE_FORCE_APPLY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeOptions {
    /// Creates an intent's namespace when it does not exist, instead of failing the
    /// message with `namespace_not_found`.
    pub create_namespaces: bool,
    /// Applies with `force`: fields another manager owns are taken over instead of
    /// failing the message.
    pub force_apply: bool,
}

/// No usable Kubernetes configuration at start.
#[derive(Debug, thiserror::Error)]
#[error(
    "INTENT_SINK=kube: no usable Kubernetes configuration (neither in-cluster nor from \
     KUBECONFIG or ~/.kube/config): {0}"
)]
pub struct KubeStartError(String);

/// Applies intents to one cluster.
pub struct KubeSink {
    client: Client,
    options: KubeOptions,
}

impl fmt::Debug for KubeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeSink")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubeSink {
    /// A client in-cluster or from `KUBECONFIG`, as kube's `Client::try_default` finds it.
    pub async fn connect(options: KubeOptions) -> Result<Self, KubeStartError> {
        let client = Client::try_default()
            .await
            .map_err(|e| KubeStartError(e.to_string()))?;
        Ok(Self::with_client(client, options))
    }

    pub fn with_client(client: Client, options: KubeOptions) -> Self {
        Self { client, options }
    }

    /// Applies one intent; applying the same intent again changes nothing.
    pub async fn apply(&self, intent: &NetworkIntent) -> Result<(), ApplyError> {
        let namespace = intent.namespace();
        let name = intent.name();
        let place = || PathBuf::from(format!("networkintent {namespace}/{name}"));
        // Read as a dynamic object: whatever the spec holds, only the annotations count.
        let resource = ApiResource::erase::<NetworkIntent>(&());
        let existing: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        match existing.get_opt(name).await {
            Ok(Some(object)) => {
                check_existing(&object.metadata, intent).map_err(|holder| ApplyError::Conflict {
                    path: place(),
                    holder,
                })?
            }
            Ok(None) => {}
            Err(e) => return Err(classify(e, "get", namespace, name)),
        }
        let api: Api<NetworkIntent> = Api::namespaced(self.client.clone(), namespace);
        match self.server_side_apply(&api, intent).await {
            Err(ApplyError::NamespaceNotFound { .. }) if self.options.create_namespaces => {
                self.create_namespace(namespace).await?;
                self.server_side_apply(&api, intent).await
            }
            applied => applied,
        }
    }

    async fn server_side_apply(
        &self,
        api: &Api<NetworkIntent>,
        intent: &NetworkIntent,
    ) -> Result<(), ApplyError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if self.options.force_apply {
            params = params.force();
        }
        api.patch(intent.name(), &params, &Patch::Apply(intent))
            .await
            .map(drop)
            .map_err(|e| classify(e, "apply", intent.namespace(), intent.name()))
    }

    /// Creates `namespace`; one that exists by now (another worker made it) is fine.
    async fn create_namespace(&self, namespace: &str) -> Result<(), ApplyError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match namespaces.create(&PostParams::default(), &object).await {
            Ok(_) => {
                crate::meters::kube_namespaces_created().increment(1);
                info!(
                    namespace,
                    "created the intent's namespace (CREATE_NAMESPACES=true)"
                );
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
            Err(e) => Err(classify(e, "create namespace", namespace, namespace)),
        }
    }
}

/// Whether the object already there is this intent's request's (`Err`: what holds it).
fn check_existing(meta: &ObjectMeta, intent: &NetworkIntent) -> Result<(), super::Holder> {
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    check_claim(
        annotation(IDEMPOTENCY_KEY_ANNOTATION).map(String::as_str),
        annotation(PAYLOAD_FINGERPRINT_ANNOTATION).map(String::as_str),
        intent,
    )
}

/// What an error of the client means for the message: see the module's documentation.
/// `what` is the request (`get`, `apply`, `create namespace`) of `namespace`/`name`.
fn classify(error: kube::Error, what: &str, namespace: &str, name: &str) -> ApplyError {
    let what = format!("{what} {namespace}/{name}");
    let status = match error {
        kube::Error::Api(status) => status,
        // The request for this intent cannot be built: the same intent meets it again.
        e @ (kube::Error::BuildRequest(_) | kube::Error::HttpError(_)) => {
            return ApplyError::Refused {
                what,
                code: 0,
                reason: "ClientError".into(),
                message: escaped(&e.to_string(), MAX_SERVER_MESSAGE_CHARS),
            }
        }
        // The sink, not the message: a connection refused, reset or timed out, TLS or
        // credentials that failed, an answer that is not the API's. Every message would
        // meet it, so the partition waits (and /readyz says why) rather than fail them all.
        e => {
            return ApplyError::Unavailable {
                what,
                message: escaped(&e.to_string(), MAX_SERVER_MESSAGE_CHARS),
            }
        }
    };
    let message = escaped(&status.message, MAX_SERVER_MESSAGE_CHARS);
    let reason = escaped(&status.reason, 64);
    match status.code {
        404 if about_a_namespace(&status, namespace) => ApplyError::NamespaceNotFound {
            namespace: namespace.to_string(),
        },
        409 if status.reason == "Conflict" && status.message.starts_with("Apply failed") => {
            ApplyError::FieldConflict {
                what,
                managers: managers(&status.message),
                message,
            }
        }
        // 409 other than a field conflict: the object changed under a request (optimistic
        // concurrency); 408 and 429: the server asks to come back; 5xx: it is failing.
        408 | 409 | 429 | 500..=599 => ApplyError::Unavailable {
            what,
            message: format!("{} {reason}: {message}", status.code),
        },
        code => ApplyError::Refused {
            what,
            code,
            reason,
            message,
        },
    }
}

/// Whether a 404 is about `namespace` rather than the object: the API server answers an
/// apply into a namespace that does not exist with a NotFound whose details name it.
fn about_a_namespace(status: &Status, namespace: &str) -> bool {
    let details = status.details.as_ref();
    let kind = details.map(|d| d.kind.as_str());
    let named = details.map(|d| d.name.as_str());
    (kind == Some("namespaces") && named == Some(namespace))
        || status.message == format!("namespaces \"{namespace}\" not found")
}

/// The field managers a conflict's message names (`conflict with "NAME"`), escaped.
fn managers(message: &str) -> Vec<String> {
    const MARK: &str = "conflict with ";
    let mut found: Vec<String> = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let name = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => rest.split([':', ' ', ',']).next().unwrap_or_default(),
        };
        let name = escaped(name, 128);
        if !name.is_empty() && !found.contains(&name) && found.len() < MAX_MANAGERS {
            found.push(name);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Transience;
    use crate::outcome::ErrorCode;
    use kube::core::response::StatusDetails;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::default()
        }))
    }

    #[test]
    fn the_api_servers_answers_are_classified() {
        let transient = [
            status(429, "TooManyRequests", "slow down"),
            status(500, "InternalError", "etcd"),
            status(503, "ServiceUnavailable", "x"),
            status(504, "Timeout", "x"),
            status(409, "Conflict", "the object has been modified"),
        ];
        for e in transient {
            let e = classify(e, "apply", "ns", "n");
            assert_eq!(e.transience(), Transience::Transient, "{e}");
            assert_eq!(e.code(), ErrorCode::ApplyFailed);
        }
        for (code, reason) in [(403, "Forbidden"), (422, "Invalid"), (400, "BadRequest")] {
            let e = classify(status(code, reason, "no <b>\u{1b}[31m"), "apply", "ns", "n");
            assert_eq!(e.transience(), Transience::Permanent, "{e}");
            assert_eq!(e.code(), ErrorCode::ApplyFailed);
            let shown = e.to_string();
            assert!(shown.contains("no <b>\\u{1b}[31m"), "{shown}");
        }
        let garbage = serde_json::from_str::<u8>("<html>").unwrap_err();
        let e = classify(kube::Error::SerdeError(garbage), "apply", "ns", "n");
        assert_eq!(e.transience(), Transience::Transient, "{e}");
        let long = "x".repeat(10_000);
        let e = classify(status(403, "Forbidden", &long), "apply", "ns", "n");
        assert!(e.to_string().len() < MAX_SERVER_MESSAGE_CHARS + 200, "{e}");
    }

    #[test]
    fn a_conflict_names_the_other_managers() {
        let e = classify(
            status(
                409,
                "Conflict",
                "Apply failed with 2 conflicts: conflict with \"kubectl-edit\": .spec.replicas\n\
                 conflict with \"hpa\" using nephoran.com/v1alpha1: .spec.x",
            ),
            "apply",
            "ns",
            "n",
        );
        let ApplyError::FieldConflict { managers, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(managers, &["kubectl-edit", "hpa"]);
        assert_eq!(e.transience(), Transience::Permanent);
        assert!(e.to_string().contains("kubectl-edit"), "{e}");
        assert!(e.to_string().contains("KUBE_FORCE_APPLY"), "{e}");
    }

    #[test]
    fn a_missing_namespace_has_its_own_code() {
        let mut missing = Status {
            code: 404,
            reason: "NotFound".into(),
            message: "namespaces \"edge\" not found".into(),
            ..Status::default()
        };
        let e = classify(
            kube::Error::Api(Box::new(missing.clone())),
            "apply",
            "edge",
            "n",
        );
        assert_eq!(e.code(), ErrorCode::NamespaceNotFound);
        assert_eq!(e.transience(), Transience::Permanent);
        assert!(e.to_string().contains("CREATE_NAMESPACES"), "{e}");
        missing.message = "gone".into();
        missing.details = Some(StatusDetails {
            name: "edge".into(),
            kind: "namespaces".into(),
            group: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        });
        let e = classify(kube::Error::Api(Box::new(missing)), "apply", "edge", "n");
        assert_eq!(e.code(), ErrorCode::NamespaceNotFound);
        // Another 404 is not about the namespace.
        let e = classify(status(404, "NotFound", "not found"), "apply", "edge", "n");
        assert_eq!(e.code(), ErrorCode::ApplyFailed);
        assert_eq!(e.transience(), Transience::Permanent);
    }
}
