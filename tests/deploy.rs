//! What `deploy/` installs agrees with the code: the CRD is the one generated from the
//! NetworkIntent type (and says what users rely on: short name, status, printer columns),
//! and the RBAC grants exactly the verbs the service uses, rendered by `kubectl kustomize`
//! as a user would (skipped, saying so, where kubectl is not installed).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use nephoran_kafka_consumer::crd;
use serde_yaml::Value;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn crd_file() -> String {
    let path = repository().join(crd::CRD_FILE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails with the first line that differs and the command that regenerates the file.
fn assert_generated(what: &str, generated: &str) {
    let file = crd_file();
    if file == generated {
        return;
    }
    let (line, (in_file, in_generated)) = file
        .lines()
        .chain(std::iter::repeat("<end of file>"))
        .zip(generated.lines().chain(std::iter::repeat("<end>")))
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .unwrap_or((0, ("", "")));
    panic!(
        "{} is not what {what} generates from src/intent.rs (line {}: file has {in_file:?}, \
         the type gives {in_generated:?}). Regenerate it with\n\n    {}\n",
        crd::CRD_FILE,
        line + 1,
        crd::REGENERATE
    );
}

#[test]
fn the_crd_file_is_generated_from_the_type() {
    assert_generated("the type", &crd::yaml().expect("the CRD renders as YAML"));
}

#[test]
fn the_crd_subcommand_prints_the_crd_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .arg("crd")
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    assert_generated("`nephoran-kafka-consumer crd`", &printed);
}

#[test]
fn the_crd_says_what_users_rely_on() {
    let crd = crd::definition();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("networkintents.nephoran.com")
    );
    assert_eq!(crd.spec.group, "nephoran.com");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "NetworkIntent");
    assert_eq!(crd.spec.names.plural, "networkintents");
    assert_eq!(crd.spec.names.short_names, Some(vec!["ni".to_string()]));
    let [version] = crd.spec.versions.as_slice() else {
        panic!("one version: {:?}", crd.spec.versions);
    };
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let status = version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref());
    assert!(status.is_some(), "the status subresource");

    let columns: Vec<(&str, &str, &str)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    for column in [
        ("Phase", "string", ".status.phase"),
        ("Components", "string", ".spec.targetComponents"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ] {
        assert!(columns.contains(&column), "{column:?} in {columns:?}");
    }

    let schema = serde_json::to_value(&version.schema).expect("JSON");
    let status = &schema["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["properties"]["phase"]["enum"],
        serde_json::json!(["Pending", "Processing", "Deploying", "Deployed", "Failed"])
    );
    assert_eq!(status["properties"]["message"]["type"], "string");
    assert_eq!(
        status["properties"]["observedGeneration"]["type"],
        "integer"
    );
    let conditions = &status["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    assert_eq!(
        conditions["items"]["required"],
        serde_json::json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    // The spec keeps the serde shape of the files the `dir:` sink writes.
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["required"],
        serde_json::json!([
            "intent",
            "intentType",
            "priority",
            "targetComponents",
            "targetNamespace"
        ])
    );
    assert_eq!(spec["properties"]["targetComponents"]["maxItems"], 16);
    assert_eq!(spec["properties"]["parameters"]["maxProperties"], 32);
}

/// `kubectl kustomize DIR` as parsed documents; `None` (with the reason printed) when
/// kubectl is not installed.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: kubectl is not on PATH, so deploy/ cannot be rendered here");
            return None;
        }
        Err(e) => panic!("cannot run kubectl: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let documents = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML documents"))
        .collect();
    Some(documents)
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn strings(value: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = value
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Every rule of every Role and ClusterRole rendered: (kind/name, apiGroups, resources, verbs).
type Grant<'a> = (String, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);

fn grants(documents: &[Value]) -> Vec<Grant<'_>> {
    documents
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|role| {
            let who = format!(
                "{}/{}",
                role["kind"].as_str().unwrap_or("?"),
                role["metadata"]["name"].as_str().unwrap_or("?")
            );
            role["rules"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(move |rule| {
                    (
                        who.clone(),
                        strings(&rule["apiGroups"]),
                        strings(&rule["resources"]),
                        strings(&rule["verbs"]),
                    )
                })
        })
        .collect()
}

const SERVICE: &str = "nephoran-kafka-consumer";
const NAMESPACE: &str = "nephoran-system";

/// The binding `name` gives `role` to the service's ServiceAccount, in its namespace.
fn assert_bound(documents: &[Value], name: &str, role: &str) {
    let binding = find(documents, "ClusterRoleBinding", name)
        .unwrap_or_else(|| panic!("ClusterRoleBinding {name}"));
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole", "{name}");
    assert_eq!(binding["roleRef"]["name"], role, "{name}");
    let subjects = binding["subjects"].as_sequence().expect("subjects");
    assert_eq!(subjects.len(), 1, "{name}: {subjects:?}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount", "{name}");
    assert_eq!(subjects[0]["name"], SERVICE, "{name}");
    assert_eq!(subjects[0]["namespace"], NAMESPACE, "{name}");
}

#[test]
fn deploy_grants_exactly_the_verbs_the_service_uses() {
    let Some(documents) = kustomize(&repository().join("deploy")) else {
        return;
    };
    assert_eq!(
        grants(&documents),
        vec![
            (
                format!("ClusterRole/{SERVICE}"),
                vec!["nephoran.com"],
                vec!["networkintents"],
                vec!["create", "get", "list", "patch", "watch"],
            ),
            (
                format!("ClusterRole/{SERVICE}"),
                vec!["nephoran.com"],
                vec!["networkintents/status"],
                vec!["get"],
            ),
        ],
        "namespaces are granted only by the optional create-namespaces component"
    );
    assert_bound(&documents, SERVICE, SERVICE);
    let account = find(&documents, "ServiceAccount", SERVICE).expect("the ServiceAccount");
    assert_eq!(account["metadata"]["namespace"], NAMESPACE);
    let deployment = find(&documents, "Deployment", SERVICE).expect("the Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        SERVICE
    );
    // The CRD kustomize renders is the generated one, untouched (compared as objects:
    // YAML writes the schema's bounds as 100.0, kustomize as 100).
    let rendered = find(
        &documents,
        "CustomResourceDefinition",
        "networkintents.nephoran.com",
    )
    .expect("the CRD");
    let rendered: CustomResourceDefinition =
        serde_yaml::from_value(rendered.clone()).expect("a CustomResourceDefinition");
    assert!(rendered == crd::definition(), "kustomize changed the CRD");
}

#[test]
fn the_create_namespaces_component_adds_only_namespace_creation() {
    // An overlay of deploy/ with the component, as a user would write it. kustomize only
    // takes relative paths to other directories, so the overlay reaches deploy/ from /.
    let overlay = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary dir");
    let to_root: PathBuf = overlay
        .path()
        .components()
        .skip(1)
        .map(|_| std::path::Component::ParentDir)
        .collect();
    let deploy = to_root.join(
        repository()
            .join("deploy")
            .strip_prefix("/")
            .expect("absolute"),
    );
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\ncomponents:\n  - {}\n",
            deploy.display(),
            deploy.join("create-namespaces").display()
        ),
    )
    .expect("the overlay's kustomization.yaml");
    let Some(documents) = kustomize(overlay.path()) else {
        return;
    };
    let role = format!("{SERVICE}-create-namespaces");
    let added: Vec<_> = grants(&documents)
        .into_iter()
        .filter(|(who, ..)| who != &format!("ClusterRole/{SERVICE}"))
        .collect();
    assert_eq!(
        added,
        vec![(
            format!("ClusterRole/{role}"),
            vec![""],
            vec!["namespaces"],
            vec!["create"]
        )]
    );
    assert_bound(&documents, &role, &role);
    let deployment = find(&documents, "Deployment", SERVICE).expect("the Deployment");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let create = env
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "CREATE_NAMESPACES");
    assert_eq!(create.map(|e| &e["value"]), Some(&Value::from("true")));
}
