//! What `deploy/` installs agrees with the code. The CRD is the one generated from the
//! NetworkIntent type (and says what users rely on: short name, status, printer columns);
//! the RBAC grants exactly the verbs the service uses. The base and each overlay, rendered
//! by `kubectl kustomize` as a user would, parse into their Kubernetes types with no field
//! the type does not know; the Deployment's variables are settings of the binary (read
//! from clap) whose values it accepts; its probes are the binary's routes on the port
//! METRICS_ADDR names; the overlays change only what each is meant to change; the
//! production autoscalers agree with the worker's settings and partitions. Without
//! kubectl the rendering tests are skipped, saying so, except in CI (`CI` set), where
//! they fail.

use std::io::Write;
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
/// kubectl is not installed, outside CI.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // CI has kubectl: there, a missing one is a broken set-up, not a reason to
            // pass without checking the manifests.
            assert!(
                std::env::var_os("CI").is_none(),
                "kubectl is not on PATH, and CI is set: the deploy/ tests need kubectl \
                 (with its built-in kustomize) to render the manifests"
            );
            // Straight to stderr, past the test harness's capture, so it shows on a pass.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: kubectl is not on PATH, so deploy/ cannot be rendered here \
                 (install kubectl to run this test; in CI it fails instead)"
            );
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
    let Some(documents) = kustomize(&repository().join("deploy/base")) else {
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
    // An overlay of deploy/base with the component, as a user would write it. kustomize only
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
    let (base, component) = (
        deploy.join("base"),
        deploy.join("components/create-namespaces"),
    );
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\ncomponents:\n  - {}\n",
            base.display(),
            component.display()
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

/// The directories a user installs from: the base and each environment.
const OVERLAYS: [&str; 3] = ["development", "staging", "production"];

fn rendered(dir: &str) -> Option<Vec<Value>> {
    kustomize(&repository().join("deploy").join(dir))
}

/// Every rendered directory: (its path under deploy/, its documents).
fn every_rendering() -> Option<Vec<(String, Vec<Value>)>> {
    let mut all = vec![("base".to_string(), rendered("base")?)];
    for overlay in OVERLAYS {
        let dir = format!("overlays/{overlay}");
        let documents = rendered(&dir)?;
        all.push((dir, documents));
    }
    Some(all)
}

/// A YAML leaf as comparable text: numbers by value (kustomize writes 100 where serde
/// writes 100.0), strings quoted, so "1" and 1 differ.
fn leaf(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        Value::String(s) => format!("{s:?}"),
        Value::Mapping(m) if m.is_empty() => "{}".into(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// `value` as (path, leaf) pairs. A list whose items all have a `name` (containers, env,
/// ports, volumes) is keyed by it, `env[RUST_LOG]`, so adding a variable changes one path
/// rather than shifting the index of every later one.
fn flatten(value: &Value, path: &str, out: &mut std::collections::BTreeMap<String, String>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, item) in map {
                let key = key.as_str().map_or_else(|| leaf(key), str::to_string);
                let path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                flatten(item, &path, out);
            }
        }
        Value::Sequence(items) if !items.is_empty() => {
            let names: Option<Vec<&str>> = items.iter().map(|i| i["name"].as_str()).collect();
            let unique = names.as_ref().is_some_and(|names| {
                names
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    == names.len()
            });
            for (index, item) in items.iter().enumerate() {
                let key = match &names {
                    Some(names) if unique => names[index].to_string(),
                    _ => index.to_string(),
                };
                flatten(item, &format!("{path}[{key}]"), out);
            }
        }
        Value::Tagged(tagged) => flatten(&tagged.value, path, out),
        other => {
            out.insert(path.to_string(), leaf(other));
        }
    }
}

fn flat(value: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    flatten(value, "", &mut out);
    out
}

/// The paths where `a` and `b` differ (present in one only, or with other values).
fn differences(a: &Value, b: &Value) -> Vec<String> {
    let (a, b) = (flat(a), flat(b));
    let mut paths: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|path| a.get(*path) != b.get(*path))
        .cloned()
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

fn identity(document: &Value) -> String {
    format!(
        "{}/{}",
        document["kind"].as_str().unwrap_or("?"),
        document["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// `document` through its k8s-openapi type and back: any path that does not survive is a
/// field the type does not have (a misspelt or misplaced key that the API server would
/// drop or refuse).
fn assert_typed<T>(dir: &str, document: &Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let who = identity(document);
    let typed: T = serde_yaml::from_value(document.clone())
        .unwrap_or_else(|e| panic!("{dir}: {who} does not parse as its type: {e}"));
    let back = serde_yaml::to_value(&typed).expect("a typed object serialises");
    let lost = differences(document, &back);
    assert!(
        lost.is_empty(),
        "{dir}: {who} has what its type does not know: {lost:?}"
    );
}

/// KEDA is not a k8s-openapi type: the fields its Kafka scaler needs, as JSON.
fn assert_scaled_object(dir: &str, document: &Value) {
    let json: serde_json::Value = serde_json::to_value(document).expect("a ScaledObject as JSON");
    assert_eq!(json["apiVersion"], "keda.sh/v1alpha1", "{dir}");
    let spec = &json["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], SERVICE, "{dir}");
    for count in ["minReplicaCount", "maxReplicaCount"] {
        assert!(spec[count].as_u64().is_some(), "{dir}: {count}: {spec}");
    }
    let triggers = spec["triggers"].as_array().expect("triggers");
    assert!(!triggers.is_empty(), "{dir}: no trigger");
    for trigger in triggers {
        assert_eq!(trigger["type"], "kafka", "{dir}: {trigger}");
        for field in ["bootstrapServers", "consumerGroup", "lagThreshold"] {
            assert!(
                trigger["metadata"][field]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "{dir}: trigger without {field}: {trigger}"
            );
        }
        // Every value of a trigger's metadata is a string (KEDA refuses numbers).
        for (key, value) in trigger["metadata"].as_object().expect("metadata").iter() {
            assert!(value.is_string(), "{dir}: {key} is not a string: {value}");
        }
    }
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

    let Some(renderings) = every_rendering() else {
        return;
    };
    for (dir, documents) in &renderings {
        let mut kinds: Vec<&str> = Vec::new();
        for document in documents {
            let kind = document["kind"].as_str().unwrap_or("<no kind>");
            kinds.push(kind);
            match kind {
                "Deployment" => assert_typed::<Deployment>(dir, document),
                "Service" => assert_typed::<Service>(dir, document),
                "ServiceAccount" => assert_typed::<ServiceAccount>(dir, document),
                "ClusterRole" => assert_typed::<ClusterRole>(dir, document),
                "ClusterRoleBinding" => assert_typed::<ClusterRoleBinding>(dir, document),
                "CustomResourceDefinition" => {
                    assert_typed::<CustomResourceDefinition>(dir, document)
                }
                "PodDisruptionBudget" => assert_typed::<PodDisruptionBudget>(dir, document),
                "NetworkPolicy" => assert_typed::<NetworkPolicy>(dir, document),
                "HorizontalPodAutoscaler" => assert_typed::<HorizontalPodAutoscaler>(dir, document),
                "ScaledObject" => assert_scaled_object(dir, document),
                other => panic!("{dir}: a {other} that this test does not check"),
            }
            // Cluster-scoped kinds aside, everything lands in the service's namespace.
            let cluster_scoped = [
                "CustomResourceDefinition",
                "ClusterRole",
                "ClusterRoleBinding",
            ];
            if !cluster_scoped.contains(&kind) {
                assert_eq!(
                    document["metadata"]["namespace"],
                    NAMESPACE,
                    "{dir}: {}",
                    identity(document)
                );
            }
        }
        kinds.sort_unstable();
        let mut expected = vec![
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ];
        if dir == "overlays/production" {
            expected.push("ScaledObject");
            expected.sort_unstable();
        }
        assert_eq!(kinds, expected, "{dir}");
    }

    // The HPA alternative is a file to swap in, not rendered by default: parse it alone.
    let path = repository().join("deploy/overlays/production/hpa.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let hpa: Value = serde_yaml::from_str(&text).expect("hpa.yaml is YAML");
    assert_typed::<HorizontalPodAutoscaler>("overlays/production/hpa.yaml", &hpa);
}

/// The container of the rendered Deployment.
fn container(documents: &[Value]) -> &Value {
    let deployment = find(documents, "Deployment", SERVICE).expect("the Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    &containers[0]
}

/// The container's variables: (name, literal value; None when from valueFrom).
fn variables(documents: &[Value]) -> Vec<(String, Option<String>)> {
    container(documents)["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("a variable's name").to_string(),
                e["value"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn variable<'a>(variables: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    variables
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// The binary's settings of `run`: environment variable name -> long flag, from clap.
fn settings() -> std::collections::BTreeMap<String, String> {
    use clap::CommandFactory;
    let command = nephoran_kafka_consumer::cli::Cli::command();
    let run = command.find_subcommand("run").expect("the run subcommand");
    run.get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_string();
            let long = arg.get_long()?.to_string();
            Some((env, long))
        })
        .collect()
}

/// Variables the binary reads outside clap: the log filter and format (src/telemetry.rs).
const LOGGING_VARIABLES: [&str; 2] = ["RUST_LOG", "LOG_FORMAT"];

#[test]
fn every_variable_of_the_deployment_is_a_setting_the_binary_accepts() {
    use clap::Parser;
    use nephoran_kafka_consumer::cli::{Cli, Command as Subcommand};
    use nephoran_kafka_consumer::config::RDKAFKA_ENV_PREFIX;

    // The logging variables are still the ones telemetry reads.
    let telemetry = include_str!("../src/telemetry.rs");
    for name in LOGGING_VARIABLES {
        assert!(
            telemetry.contains(&format!("`{name}")),
            "src/telemetry.rs no longer mentions {name}"
        );
    }
    let settings = settings();
    assert!(settings.contains_key("KAFKA_BROKERS"), "{settings:?}");
    let Some(renderings) = every_rendering() else {
        return;
    };
    for (dir, documents) in &renderings {
        let mut args = vec!["nephoran-kafka-consumer".to_string(), "run".to_string()];
        for (name, value) in variables(documents) {
            if let Some(property) = name.strip_prefix(RDKAFKA_ENV_PREFIX) {
                // A librdkafka property, passed as the worker would read it.
                let property = property.to_ascii_lowercase().replace('_', ".");
                let value = value.unwrap_or_else(|| panic!("{dir}: {name} has no value"));
                args.push(format!("--kafka-config={property}={value}"));
                continue;
            }
            if LOGGING_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let long = settings.get(&name).unwrap_or_else(|| {
                panic!(
                    "{dir}: the Deployment sets {name}, which is no setting of \
                     `nephoran-kafka-consumer run` (its variables: {:?})",
                    settings.keys()
                )
            });
            if let Some(value) = value {
                args.push(format!("--{long}={value}"));
            }
        }
        let cli = Cli::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("{dir}: the binary refuses the Deployment's settings: {e}"));
        let Some(Subcommand::Run(config)) = cli.command else {
            panic!("{dir}: not the run subcommand");
        };
        config
            .validate()
            .unwrap_or_else(|e| panic!("{dir}: the Deployment's settings do not validate: {e}"));
        config
            .policy
            .policy(config.max_replicas)
            .unwrap_or_else(|e| panic!("{dir}: the Deployment's policy settings: {e}"));
    }
}

#[tokio::test]
async fn the_probes_and_the_metrics_port_are_the_binarys() {
    use nephoran_kafka_consumer::health::{self, Health};

    // What the binary serves: its health server, as `run` starts it.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let addr = health::serve(
        "127.0.0.1:0".parse().expect("an address"),
        std::sync::Arc::new(Health::default()),
        Some(handle),
    )
    .await
    .expect("the health server starts");
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };

    let Some(renderings) = every_rendering() else {
        return;
    };
    for (dir, documents) in &renderings {
        let container = container(documents);
        let variables = variables(documents);
        // The port METRICS_ADDR listens on (the default when unset) is the container's
        // port named metrics, which the probes, the Service and the NetworkPolicy use.
        let metrics_addr = variable(&variables, "METRICS_ADDR")
            .map(str::to_string)
            .unwrap_or_else(|| "0.0.0.0:9090".to_string());
        let listens: std::net::SocketAddr = metrics_addr
            .parse()
            .unwrap_or_else(|e| panic!("{dir}: METRICS_ADDR {metrics_addr:?}: {e}"));
        assert!(
            listens.ip().is_unspecified(),
            "{dir}: METRICS_ADDR {listens} is not reachable from outside the pod"
        );
        let ports = container["ports"].as_sequence().expect("ports");
        let metrics = ports
            .iter()
            .find(|p| p["name"] == "metrics")
            .unwrap_or_else(|| panic!("{dir}: no container port named metrics: {ports:?}"));
        assert_eq!(
            metrics["containerPort"].as_u64(),
            Some(u64::from(listens.port())),
            "{dir}: the metrics port is not METRICS_ADDR's"
        );

        for (probe, answers) in [("livenessProbe", "ok"), ("readinessProbe", "not ready")] {
            let http = &container[probe]["httpGet"];
            assert_eq!(http["port"], "metrics", "{dir}: {probe}");
            let path = http["path"].as_str().expect("a probe path").to_string();
            // The binary's answer, not a 404: a fresh worker is live and not yet ready.
            let (status, body) = get(path.clone()).await;
            assert!(
                body.starts_with(answers) && (status == 200 || status == 503),
                "{dir}: {probe} {path}: the binary answers {status} {body:?}"
            );
        }

        let service = find(documents, "Service", SERVICE).expect("the Service");
        let service_ports = service["spec"]["ports"].as_sequence().expect("ports");
        assert_eq!(service_ports.len(), 1, "{dir}: {service_ports:?}");
        assert_eq!(service_ports[0]["name"], "metrics", "{dir}");
        assert_eq!(service_ports[0]["targetPort"], "metrics", "{dir}");
        assert_eq!(
            service_ports[0]["port"].as_u64(),
            Some(u64::from(listens.port())),
            "{dir}"
        );
    }
    let (status, page) = get("/metrics".to_string()).await;
    assert_eq!(status, 200, "the Service's /metrics: {page}");
}

#[test]
fn the_pod_runs_unprivileged_on_a_read_only_root() {
    let Some(renderings) = every_rendering() else {
        return;
    };
    for (dir, documents) in &renderings {
        let deployment = find(documents, "Deployment", SERVICE).expect("the Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{dir}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{dir}"
        );
        let context = &container(documents)["securityContext"];
        assert_eq!(context["runAsNonRoot"], true, "{dir}");
        assert!(
            context["runAsUser"].as_u64().is_some_and(|uid| uid > 0),
            "{dir}: {context:?}"
        );
        assert_eq!(context["readOnlyRootFilesystem"], true, "{dir}");
        assert_eq!(context["allowPrivilegeEscalation"], false, "{dir}");
        assert_eq!(strings(&context["capabilities"]["drop"]), ["ALL"], "{dir}");
        assert!(context["capabilities"]["add"].is_null(), "{dir}");
        assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault", "{dir}");
        assert!(
            pod["hostNetwork"].is_null() && pod["hostPID"].is_null(),
            "{dir}"
        );
    }
}

/// (protocol, port) of every port a NetworkPolicy rule list opens.
fn opened(rules: &Value) -> Vec<(String, String)> {
    let mut ports: Vec<(String, String)> = rules
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|rule| {
            // A rule without ports opens every port: refuse it outright.
            let ports = rule["ports"]
                .as_sequence()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| panic!("a rule that opens every port: {rule:?}"));
            ports.iter().map(|p| {
                (
                    p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    leaf(&p["port"]).trim_matches('"').to_string(),
                )
            })
        })
        .collect();
    ports.sort_unstable();
    ports
}

#[test]
fn the_network_policy_opens_only_dns_kafka_the_api_server_and_the_llm() {
    let Some(documents) = rendered("base") else {
        return;
    };
    let policy = find(&documents, "NetworkPolicy", SERVICE).expect("the NetworkPolicy");
    let deployment = find(&documents, "Deployment", SERVICE).expect("the Deployment");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "the policy selects the worker's pods"
    );
    assert_eq!(
        strings(&policy["spec"]["policyTypes"]),
        ["Egress", "Ingress"]
    );
    let tcp = |port: &str| ("TCP".to_string(), port.to_string());
    assert_eq!(
        opened(&policy["spec"]["egress"]),
        vec![
            tcp("443"),  // the API server, behind its Service
            tcp("53"),   // DNS
            tcp("6443"), // the API server's own port
            tcp("8000"), // the LLM endpoint (vLLM)
            tcp("9092"), // Kafka
            tcp("9093"), // Kafka over TLS
            ("UDP".to_string(), "53".to_string()),
        ]
    );
    // The LLM rule reaches the overlays' LLM_ENDPOINT (host vllm.llm-serving, port 8000).
    for overlay in OVERLAYS {
        let Some(documents) = rendered(&format!("overlays/{overlay}")) else {
            return;
        };
        let endpoint = variable(&variables(&documents), "LLM_ENDPOINT")
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{overlay}: no LLM_ENDPOINT"));
        assert!(
            endpoint.starts_with("http://vllm.llm-serving:8000/"),
            "{overlay}: LLM_ENDPOINT {endpoint} is not what the NetworkPolicy lets through"
        );
    }
    // Nothing reaches the pod but the metrics port.
    assert_eq!(opened(&policy["spec"]["ingress"]), vec![tcp("metrics")]);
}

/// What each overlay may change in the base: `Kind/name path` prefixes (containers and
/// env entries by name). Each must differ, and nothing else may.
fn intended(overlay: &str) -> Vec<String> {
    let deployment = format!("Deployment/{SERVICE} spec");
    let container = format!("{deployment}.template.spec.containers[kafka-consumer]");
    let env = |name: &str| format!("{container}.env[{name}]");
    let llm = ["LLM_ENDPOINT", "LLM_MODEL", "LLM_MAX_CONCURRENCY"];
    let mut paths = vec![env("RUST_LOG"), format!("{container}.resources")];
    paths.extend(llm.iter().map(|name| env(name)));
    match overlay {
        "development" => paths.extend([env("LOG_FORMAT"), env("LLM_TIMEOUT")]),
        // The base's LLM_TIMEOUT (30s) is staging's.
        "staging" => paths.push(format!("{deployment}.replicas")),
        "production" => paths.extend([
            env("LLM_TIMEOUT"),
            format!("{deployment}.replicas"),
            format!("{container}.image"),
            env("RDKAFKA_AUTO_COMMIT_INTERVAL_MS"),
            "ScaledObject/nephoran-kafka-consumer".to_string(),
        ]),
        other => panic!("no intended differences for {other}"),
    }
    paths.sort_unstable();
    paths
}

#[test]
fn the_overlays_differ_from_the_base_only_where_intended() {
    let Some(base) = rendered("base") else {
        return;
    };
    for overlay in OVERLAYS {
        let Some(documents) = rendered(&format!("overlays/{overlay}")) else {
            return;
        };
        let mut changed: Vec<String> = Vec::new();
        for document in &documents {
            let who = identity(document);
            match base.iter().find(|b| identity(b) == who) {
                Some(original) => changed.extend(
                    differences(original, document)
                        .into_iter()
                        .map(|path| format!("{who} {path}")),
                ),
                None => changed.push(who),
            }
        }
        changed.extend(
            base.iter()
                .filter(|b| !documents.iter().any(|d| identity(d) == identity(b)))
                .map(|b| format!("{} removed", identity(b))),
        );
        let intended = intended(overlay);
        let unintended: Vec<&String> = changed
            .iter()
            .filter(|path| {
                !intended
                    .iter()
                    .any(|allowed| path.starts_with(allowed.as_str()))
            })
            .collect();
        assert!(
            unintended.is_empty(),
            "{overlay} changes what it should not: {unintended:?}"
        );
        let unchanged: Vec<&String> = intended
            .iter()
            .filter(|allowed| {
                !changed
                    .iter()
                    .any(|path| path.starts_with(allowed.as_str()))
            })
            .collect();
        assert!(
            unchanged.is_empty(),
            "{overlay} leaves these as in the base, though meant to set them: {unchanged:?}"
        );
    }
}

#[test]
fn production_scales_on_lag_up_to_the_partitions_and_pins_the_release() {
    use clap::CommandFactory;

    let Some(documents) = rendered("overlays/production") else {
        return;
    };
    let variables = variables(&documents);
    let deployment = find(&documents, "Deployment", SERVICE).expect("the Deployment");
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "the autoscaler owns the replica count: an apply must not reset it"
    );
    let image = container(&documents)["image"].as_str().expect("an image");
    assert_eq!(
        image,
        format!("nephoran/kafka-consumer:{}", env!("CARGO_PKG_VERSION")),
        "production runs this release"
    );

    // The input partitions: TOPICS' topics, as `create-topics` creates them.
    let topics = variable(&variables, "TOPICS")
        .expect("TOPICS")
        .split(',')
        .count();
    let command = nephoran_kafka_consumer::cli::Cli::command();
    let partitions: u64 = command
        .find_subcommand("create-topics")
        .and_then(|c| {
            c.get_arguments()
                .find(|a| a.get_long() == Some("partitions"))
        })
        .and_then(|a| a.get_default_values().first()?.to_str()?.parse().ok())
        .expect("create-topics' default partitions");
    let ceiling = topics as u64 * partitions;

    let scaled = find(&documents, "ScaledObject", SERVICE).expect("the ScaledObject");
    let scaled: serde_json::Value = serde_json::to_value(scaled).expect("JSON");
    let spec = &scaled["spec"];
    assert_eq!(
        spec["maxReplicaCount"].as_u64(),
        Some(ceiling),
        "at most one worker per input partition ({topics} topics x {partitions})"
    );
    let min = spec["minReplicaCount"].as_u64().expect("minReplicaCount");
    assert!((1..=ceiling).contains(&min), "never to zero: {min}");
    let [trigger] = spec["triggers"].as_array().expect("triggers").as_slice() else {
        panic!("one Kafka trigger: {spec}");
    };
    let metadata = &trigger["metadata"];
    assert_eq!(
        metadata["bootstrapServers"].as_str(),
        variable(&variables, "KAFKA_BROKERS"),
        "KEDA reads the worker's cluster"
    );
    assert_eq!(
        metadata["consumerGroup"].as_str(),
        variable(&variables, "CONSUMER_GROUP"),
        "KEDA reads the worker's group"
    );
    // A partition without a committed offset is read from its start by the worker
    // (auto.offset.reset earliest), so KEDA counts its whole log as lag.
    assert_eq!(metadata["offsetResetPolicy"], "earliest");
    assert_eq!(metadata["allowIdleConsumers"], "false");
    assert!(metadata["topic"].is_null(), "every topic of the group");
    let threshold: u64 = metadata["lagThreshold"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("lagThreshold");
    // KEDA sees lag through commits: they must come well within its polling interval.
    let commit_ms: u64 = variable(&variables, "RDKAFKA_AUTO_COMMIT_INTERVAL_MS")
        .and_then(|v| v.parse().ok())
        .expect("the auto-commit interval, in ms");
    let polling_s = spec["pollingInterval"].as_u64().unwrap_or(30);
    assert!(
        commit_ms > 0 && commit_ms * 2 <= polling_s * 1000,
        "offsets committed every {commit_ms} ms, KEDA polling every {polling_s} s"
    );

    // The HPA alternative scales the same way on the worker's own lag metric.
    let path = repository().join("deploy/overlays/production/hpa.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let hpa: serde_json::Value = serde_yaml::from_str(&text).expect("hpa.yaml");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], SERVICE);
    assert_eq!(hpa["spec"]["maxReplicas"].as_u64(), Some(ceiling));
    assert_eq!(hpa["spec"]["minReplicas"].as_u64(), Some(min));
    let [metric] = hpa["spec"]["metrics"]
        .as_array()
        .expect("metrics")
        .as_slice()
    else {
        panic!("one metric: {hpa}");
    };
    assert_eq!(metric["type"], "External");
    assert_eq!(
        metric["external"]["metric"]["name"],
        "kafka_consumer_lag_messages"
    );
    assert_eq!(metric["external"]["target"]["type"], "AverageValue");
    assert_eq!(
        metric["external"]["target"]["averageValue"].as_str(),
        Some(threshold.to_string().as_str()),
        "the same lag per worker as KEDA's lagThreshold"
    );
}
