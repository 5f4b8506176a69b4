//! What `deploy/` installs agrees with the code: the CRD is the one generated from the
//! NetworkIntent type (and says what users rely on: short name, status, printer columns).

use std::path::Path;
use std::process::Command;

use nephoran_kafka_consumer::crd;

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
