//! The monitoring of `deploy/monitoring/` proven against the real thing: `promtool` checks
//! the alert rules and runs their unit tests (`deploy/monitoring/tests/`), and a real
//! Prometheus (Debian's `prometheus` package) scrapes the worker binary while it processes
//! traffic on the real broker, then answers every expression of the dashboard and of the
//! rules. The expressions, the rule file and the dashboards are read from
//! `deploy/monitoring/kustomization.yaml` and the files it names: nothing is listed here
//! by hand, so a panel or an alert added there is checked too.
//!
//! `prometheus` or `promtool` missing fails the test with a message saying what to
//! install; it is never skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::binary::BinaryWorker;
use common::openai::{answer, Call, FakeLlm, Reply};
use common::{produce, producer_on, Outcomes, TestTopics, PATIENCE};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");
/// The name the unit tests' `rule_files` give the rules extracted from the PrometheusRule.
const RULE_FILE: &str = "nephoran-rules.yaml";
/// The `job` and `namespace` labels of the test's scrape, substituted for the dashboard's
/// `$job` and `$namespace`.
const JOB: &str = "nephoran-kafka-consumer";
const NAMESPACE: &str = "nephoran-test";
/// The metric names and labels of the integration guide's monitoring section, exactly.
const GUIDE_SERIES: &[(&str, &[&str])] = &[
    ("networkintent_processed_total", &["status"]),
    ("networkintent_failed_total", &["code"]),
    ("networkintent_processing_duration_seconds_bucket", &["le"]),
    ("llm_api_calls_total", &["status", "model"]),
];

/// What `deploy/monitoring/` holds, as its kustomization names it.
struct Monitoring {
    /// The `spec` of each PrometheusRule: its rule groups.
    rule_specs: Vec<serde_yaml::Value>,
    /// (file name, dashboard JSON) of each dashboard the ConfigMap generator provisions.
    dashboards: Vec<(String, Value)>,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

impl Monitoring {
    fn load() -> Self {
        let dir = Path::new(MONITORING);
        let kustomization: serde_yaml::Value =
            serde_yaml::from_str(&read(&dir.join("kustomization.yaml"))).expect("kustomization");
        let mut rule_specs = Vec::new();
        for resource in strings(&kustomization["resources"]) {
            let text = read(&dir.join(&resource));
            for document in serde_yaml::Deserializer::from_str(&text) {
                let document = serde_yaml::Value::deserialize(document)
                    .unwrap_or_else(|e| panic!("{resource}: {e}"));
                if document["kind"].as_str() == Some("PrometheusRule") {
                    rule_specs.push(document["spec"].clone());
                }
            }
        }
        let mut dashboards = Vec::new();
        if let Some(generators) = kustomization["configMapGenerator"].as_sequence() {
            for generator in generators {
                for file in strings(&generator["files"]) {
                    // `files` entries may be `key=path`.
                    let path = file.rsplit('=').next().unwrap_or(&file).to_string();
                    if path.ends_with(".json") {
                        let json = serde_json::from_str(&read(&dir.join(&path)))
                            .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
                        dashboards.push((path, json));
                    }
                }
            }
        }
        assert!(
            !rule_specs.is_empty(),
            "no PrometheusRule among the resources of deploy/monitoring/kustomization.yaml"
        );
        assert!(
            !dashboards.is_empty(),
            "no dashboard JSON in the configMapGenerator of deploy/monitoring/kustomization.yaml"
        );
        Monitoring {
            rule_specs,
            dashboards,
        }
    }

    /// One Prometheus rule file holding every PrometheusRule's groups.
    fn rule_file(&self) -> String {
        let groups: Vec<serde_yaml::Value> = self
            .rule_specs
            .iter()
            .flat_map(|spec| spec["groups"].as_sequence().cloned().unwrap_or_default())
            .collect();
        let mut file = serde_yaml::Mapping::new();
        file.insert("groups".into(), serde_yaml::Value::Sequence(groups));
        serde_yaml::to_string(&file).expect("rule file")
    }

    /// (where, expression) of every alert and recording rule.
    fn rule_expressions(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for spec in &self.rule_specs {
            for group in spec["groups"].as_sequence().into_iter().flatten() {
                for rule in group["rules"].as_sequence().into_iter().flatten() {
                    let name = rule["alert"]
                        .as_str()
                        .or(rule["record"].as_str())
                        .unwrap_or("(unnamed)");
                    let expr = rule["expr"].as_str().unwrap_or_default();
                    found.push((format!("rule {name}"), expr.to_string()));
                }
            }
        }
        found
    }

    fn alert_names(&self) -> Vec<String> {
        self.rule_expressions()
            .into_iter()
            .filter_map(|(name, _)| name.strip_prefix("rule ").map(str::to_string))
            .collect()
    }

    /// (where, expression) of every panel target and query variable of every dashboard,
    /// rows' nested panels included.
    fn dashboard_expressions(&self) -> Vec<(String, String)> {
        fn panels(list: &Value, dashboard: &str, found: &mut Vec<(String, String)>) {
            for panel in list.as_array().into_iter().flatten() {
                let title = panel["title"].as_str().unwrap_or("(untitled)");
                for target in panel["targets"].as_array().into_iter().flatten() {
                    if let Some(expr) = target["expr"].as_str() {
                        let at = format!(
                            "{dashboard} panel \"{title}\" target {}",
                            target["refId"].as_str().unwrap_or("?")
                        );
                        found.push((at, expr.to_string()));
                    }
                }
                panels(&panel["panels"], dashboard, found);
            }
        }
        let mut found = Vec::new();
        for (file, dashboard) in &self.dashboards {
            panels(&dashboard["panels"], file, &mut found);
            for variable in dashboard["templating"]["list"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if variable["type"].as_str() != Some("query") {
                    continue;
                }
                let query = variable["query"]["query"]
                    .as_str()
                    .or(variable["query"].as_str())
                    .unwrap_or_default();
                let at = format!(
                    "{file} variable ${}",
                    variable["name"].as_str().unwrap_or("?")
                );
                found.push((at, query.to_string()));
            }
        }
        found
    }
}

fn strings(value: &serde_yaml::Value) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The path of `tool` (from Debian's `prometheus` package), or a failure that says what
/// to install: CI installs it, so a missing tool is a broken set-up, never a skip.
fn tool(tool: &str) -> String {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match found {
        Ok(status) if status.success() => tool.to_string(),
        other => panic!(
            "`{tool}` is not installed or does not run ({other:?}): the monitoring tests need \
             Debian's prometheus package (`apt-get install prometheus`, which .ci/run does); \
             they are not skipped"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// promtool

#[test]
fn promtool_checks_the_rules_and_every_alert_fires_and_stays_silent_in_its_unit_tests() {
    let promtool = tool("promtool");
    let monitoring = Monitoring::load();
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(RULE_FILE), monitoring.rule_file()).expect("rule file");

    let checked = std::process::Command::new(&promtool)
        .args(["check", "rules", RULE_FILE])
        .current_dir(dir.path())
        .output()
        .expect("run promtool check rules");
    assert!(
        checked.status.success(),
        "promtool check rules on the PrometheusRule's groups:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The unit tests, copied beside the extracted rule file their `rule_files` names.
    let mut tests = Vec::new();
    let mut alerts_tested: Vec<(String, bool)> = Vec::new();
    let test_dir = Path::new(MONITORING).join("tests");
    for entry in std::fs::read_dir(&test_dir).expect("deploy/monitoring/tests") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = read(&path);
        let parsed: serde_yaml::Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in parsed["tests"].as_sequence().into_iter().flatten() {
            for check in case["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = check["alertname"].as_str().unwrap_or_default().to_string();
                let fires = check["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|alerts| !alerts.is_empty());
                alerts_tested.push((name, fires));
            }
        }
        let name = path.file_name().expect("file name").to_owned();
        std::fs::write(dir.path().join(&name), text).expect("copy the unit test");
        tests.push(PathBuf::from(name));
    }
    assert!(!tests.is_empty(), "no unit tests in {}", test_dir.display());
    for alert in monitoring.alert_names() {
        for fires in [true, false] {
            assert!(
                alerts_tested.contains(&(alert.clone(), fires)),
                "deploy/monitoring/tests/ has no case where {alert} {}",
                if fires { "fires" } else { "stays silent" }
            );
        }
    }

    let tested = std::process::Command::new(&promtool)
        .args(["test", "rules"])
        .args(&tests)
        .current_dir(dir.path())
        .output()
        .expect("run promtool test rules");
    assert!(
        tested.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Rendered with kustomize

/// `kubectl kustomize DIR` as parsed documents; `None` (saying so) when kubectl is not
/// installed, as in tests/deploy.rs.
fn kustomize(dir: &Path) -> Option<Vec<serde_yaml::Value>> {
    let output = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: kubectl is not on PATH, so {} cannot be rendered here",
                dir.display()
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
    Some(
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde_yaml::Value::deserialize(d).expect("YAML documents"))
            .collect(),
    )
}

/// `deploy/monitoring/` rendered: the dashboard's ConfigMap carries Grafana's sidecar
/// label and the dashboard file unchanged, and the ServiceMonitor selects the consumer's
/// Service (rendered from `deploy/base/`, or `deploy/` before the overlays) by its labels
/// and names a port the Service has.
#[test]
fn the_rendered_monitoring_provisions_the_dashboard_and_scrapes_the_consumers_service() {
    let monitoring_dir = Path::new(MONITORING);
    let Some(rendered) = kustomize(monitoring_dir) else {
        return;
    };
    let monitoring = Monitoring::load();
    let config_maps: Vec<&serde_yaml::Value> = rendered
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .collect();
    for (file, dashboard) in &monitoring.dashboards {
        let key = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("dashboard file name");
        let provisioned = config_maps
            .iter()
            .find_map(|c| c["data"][key].as_str().map(|data| (c, data)));
        let Some((config_map, data)) = provisioned else {
            panic!("no rendered ConfigMap holds {key}");
        };
        assert_eq!(
            config_map["metadata"]["labels"]["grafana_dashboard"], "1",
            "the ConfigMap holding {key} lacks Grafana's sidecar label grafana_dashboard: \"1\""
        );
        let parsed: Value = serde_json::from_str(data).expect("provisioned dashboard JSON");
        assert_eq!(
            &parsed, dashboard,
            "{key} is provisioned as it is in the file"
        );
    }

    let deploy = monitoring_dir.parent().expect("deploy/");
    let base = if deploy.join("base").is_dir() {
        deploy.join("base")
    } else {
        deploy.to_path_buf()
    };
    let Some(consumer) = kustomize(&base) else {
        return;
    };
    let services: Vec<&serde_yaml::Value> =
        consumer.iter().filter(|d| d["kind"] == "Service").collect();
    let monitors: Vec<&serde_yaml::Value> = rendered
        .iter()
        .filter(|d| d["kind"] == "ServiceMonitor")
        .collect();
    assert!(
        !monitors.is_empty(),
        "no ServiceMonitor in deploy/monitoring/"
    );
    for monitor in monitors {
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let selected: Vec<&&serde_yaml::Value> = services
            .iter()
            .filter(|s| {
                !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(k, v)| s["metadata"]["labels"].get(k) == Some(v))
            })
            .collect();
        assert!(
            !selected.is_empty(),
            "the ServiceMonitor's selector {selector:?} matches no Service of {}",
            base.display()
        );
        for endpoint in monitor["spec"]["endpoints"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let port = &endpoint["port"];
            for service in &selected {
                let ports = service["spec"]["ports"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    ports.iter().any(|p| &p["name"] == port),
                    "the ServiceMonitor scrapes port {port:?}, which Service {:?} does not name",
                    service["metadata"]["name"]
                );
            }
            assert_eq!(endpoint["path"], "/metrics", "the consumer serves /metrics");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The dashboard's shape

/// Every panel queries the data source chosen in the `datasource` variable, every
/// expression is filtered by the `job` and `namespace` variables (so the variables do
/// something), panel ids are unique, and panels do not overlap on the grid.
#[test]
fn every_dashboard_panel_uses_the_datasource_variable_and_filters_by_job_and_namespace() {
    let monitoring = Monitoring::load();
    for (file, dashboard) in &monitoring.dashboards {
        let variables: Vec<&str> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for wanted in ["datasource", "job", "namespace"] {
            assert!(variables.contains(&wanted), "{file}: no ${wanted} variable");
        }
        let mut ids = Vec::new();
        let mut cells: Vec<(String, i64, i64)> = Vec::new();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            let id = panel["id"].as_i64().expect("panel id");
            assert!(!ids.contains(&id), "{file}: panel id {id} twice");
            ids.push(id);
            let grid = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_i64().unwrap_or(-1));
            assert!(
                x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24,
                "{file}: panel \"{title}\" has gridPos {grid}"
            );
            for row in y..y + h {
                for column in x..x + w {
                    if let Some((other, _, _)) =
                        cells.iter().find(|(_, r, c)| (*r, *c) == (row, column))
                    {
                        panic!("{file}: panels \"{title}\" and \"{other}\" overlap");
                    }
                    cells.push((title.to_string(), row, column));
                }
            }
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: panel \"{title}\" does not use the datasource variable"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(
                !targets.is_empty(),
                "{file}: panel \"{title}\" has no query"
            );
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                for selector in ["job=~\"$job\"", "namespace=~\"$namespace\""] {
                    // Every metric selector of the expression carries the filter.
                    let metrics = expr.matches('{').count();
                    assert_eq!(
                        expr.matches(selector).count(),
                        metrics,
                        "{file}: panel \"{title}\": not every selector has {selector}: {expr}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// PromQL: what of an expression must return data

/// Byte offsets of `expr` that are outside any (), [], {} and string.
fn top_level(expr: &str) -> Vec<bool> {
    let bytes = expr.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut top = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if let Some(q) = quote {
            top.push(false);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' | b'`' => {
                quote = Some(b);
                top.push(false);
            }
            b'(' | b'[' | b'{' => {
                top.push(false);
                depth += 1;
            }
            b')' | b']' | b'}' => {
                depth -= 1;
                top.push(false);
            }
            _ => top.push(depth == 0),
        }
    }
    top
}

fn identifier(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// The parts of a rule's expression that must each return data once the worker is
/// scraped: split at the top-level set operators (`and`, `or`, `unless`, with their
/// `on (...)` matchers), and each comparison with a threshold made a `bool` one, so that a
/// healthy series answers 0 instead of nothing (an alert need not fire to be checked).
fn rule_parts(expr: &str) -> Vec<String> {
    let expr = expr.trim();
    // `( ... )` around the whole expression: nothing of it is outside the brackets.
    if expr.starts_with('(') && !top_level(expr).contains(&true) {
        return rule_parts(&expr[1..expr.len() - 1]);
    }
    let top = top_level(expr);
    let bytes = expr.as_bytes();
    let mut cuts = Vec::new(); // (start of operator, end of operator)
    let mut i = 0;
    while i < bytes.len() {
        if top[i] && (i == 0 || !identifier(bytes[i - 1])) {
            for op in ["and", "or", "unless"] {
                let end = i + op.len();
                if expr[i..].starts_with(op) && (end == bytes.len() || !identifier(bytes[end])) {
                    cuts.push((i, end));
                    i = end;
                    break;
                }
            }
        }
        i += 1;
    }
    if !cuts.is_empty() {
        let mut parts = Vec::new();
        let mut start = 0;
        for &(from, to) in &cuts {
            parts.push(expr[start..from].to_string());
            start = to;
        }
        parts.push(expr[start..].to_string());
        return parts
            .iter()
            .map(|p| without_matcher(p))
            .flat_map(|p| rule_parts(&p))
            .collect();
    }
    vec![with_bool(expr)]
}

/// A set operator's right-hand side without its leading `on (...)` / `ignoring (...)`.
fn without_matcher(part: &str) -> String {
    let part = part.trim();
    for matcher in ["on", "ignoring"] {
        if let Some(rest) = part.strip_prefix(matcher) {
            let rest = rest.trim_start();
            if rest.starts_with('(') {
                if let Some(close) = rest.find(')') {
                    return rest[close + 1..].trim().to_string();
                }
            }
        }
    }
    part.to_string()
}

/// `expr` with its last top-level comparison made a `bool` one.
fn with_bool(expr: &str) -> String {
    let top = top_level(expr);
    let bytes = expr.as_bytes();
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        if top[i] {
            let two = expr.get(i..i + 2);
            let len = match (two, bytes[i]) {
                (Some("==" | "!=" | ">=" | "<="), _) => 2,
                (_, b'>' | b'<') => 1,
                _ => 0,
            };
            if len > 0 {
                found = Some(i + len);
                i += len;
                continue;
            }
        }
        i += 1;
    }
    match found {
        Some(end) if !expr[end..].trim_start().starts_with("bool") => {
            format!("{} bool {}", &expr[..end], expr[end..].trim_start())
        }
        _ => expr.to_string(),
    }
}

/// A dashboard expression as Grafana sends it: template variables replaced by the test's
/// scrape's labels and a rate interval that covers a few 1 s scrapes; `label_values(X,
/// label)` (a variable's query) becomes `X`, which must have series.
fn dashboard_query(expr: &str) -> String {
    let mut query = expr
        .replace("${job}", JOB)
        .replace("$job", JOB)
        .replace("${namespace}", NAMESPACE)
        .replace("$namespace", NAMESPACE)
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "5s")
        .replace("$__range", "5m");
    if let Some(inner) = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let comma = inner.rfind(',').unwrap_or(inner.len());
        query = inner[..comma].trim().to_string();
    }
    query
}

#[test]
fn rule_parts_split_set_operators_and_make_comparisons_bool() {
    assert_eq!(
        rule_parts(r#"sum(rate(x{code!="a"}[5m])) / sum(rate(x[5m])) > 0.1"#),
        [r#"sum(rate(x{code!="a"}[5m])) / sum(rate(x[5m])) > bool 0.1"#]
    );
    assert_eq!(
        rule_parts(
            "(\n  sum by (i) (lag) > 0\n  or sum by (i) (in_flight) > 0\n)\nand on (i)\n  sum by (i) (increase(done[10m])) == 0"
        ),
        [
            "sum by (i) (lag) > bool 0",
            "sum by (i) (in_flight) > bool 0",
            "sum by (i) (increase(done[10m])) == bool 0"
        ]
    );
    assert_eq!(
        rule_parts("max by (topic) (lag_seconds) >= 1"),
        ["max by (topic) (lag_seconds) >= bool 1"]
    );
    // Brackets that do not wrap the whole expression stay; an `or` in a string is no
    // operator.
    assert_eq!(
        rule_parts(r#"(a{x="this or that"}) / (b) > 0"#),
        [r#"(a{x="this or that"}) / (b) > bool 0"#]
    );
    assert_eq!(
        dashboard_query(r#"label_values(x{job=~"$job"}, namespace)"#),
        format!(r#"x{{job=~"{JOB}"}}"#)
    );
}

// ---------------------------------------------------------------------------------------
// A real Prometheus scraping the worker

/// Prometheus as a child process on a port of its own, its storage in a temporary
/// directory; killed when dropped.
struct Prometheus {
    _child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, with `rule_file` loaded (it
    /// refuses to start on a rule it cannot parse).
    async fn start(dir: &Path, targets: &[String], rule_file: &str) -> Self {
        let binary = tool("prometheus");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::write(dir.join(RULE_FILE), rule_file).expect("rule file");
        let targets: Vec<String> = targets
            .iter()
            .map(|t| t.trim_start_matches("http://").to_string())
            .collect();
        let config = json!({
            "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
            "rule_files": [dir.join(RULE_FILE)],
            "scrape_configs": [{
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{ "targets": targets, "labels": { "namespace": NAMESPACE } }],
            }],
        });
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).expect("Prometheus config");
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("Prometheus log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        };
        prometheus
            .until("Prometheus ready", || async {
                let ready = prometheus
                    .http
                    .get(format!("{}/-/ready", prometheus.base))
                    .send()
                    .await;
                matches!(ready, Ok(r) if r.status().is_success())
            })
            .await;
        prometheus
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (within [`PATIENCE`]) until `done`; a failure names `what` and shows the log.
    async fn until<F, Fut>(&self, what: &str, done: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {PATIENCE:?}; Prometheus log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `/api/v1/query`: the result (a vector's series, or a scalar as one element), or
    /// Prometheus's error.
    async fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let text = response
            .text()
            .await
            .map_err(|e| format!("answer not read: {e}"))?;
        let body: Value =
            serde_json::from_str(&text).map_err(|e| format!("answer is not JSON: {e}: {text}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("(no message)")
            ));
        }
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().cloned().unwrap_or_default(),
            _ => vec![data["result"].clone()],
        })
    }

    /// The sum of the values of `query`'s series (0 when none).
    async fn value(&self, query: &str) -> f64 {
        self.query(query)
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// Traffic

fn request(key: &str, text: &str) -> Vec<u8> {
    json!({ "idempotency_key": key, "intent": text, "requester": "oss-bss" })
        .to_string()
        .into_bytes()
}

/// An endpoint that answers what the text asks for; texts with "flaky" get a 404 (a
/// failed call; the rules answer instead).
async fn llm() -> FakeLlm {
    FakeLlm::start(|call: &Call| {
        let text = call.text();
        if text.contains("flaky") {
            return Reply::status(404, "no such model");
        }
        let namespace = text.rsplit(' ').next().unwrap_or("edge").to_string();
        let mut upf = answer(&["upf"], &namespace, Some(2));
        upf["intentType"] = json!("deployment");
        Reply::answer(upf)
    })
    .await
}

async fn produce_to(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    value: &[u8],
) {
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .partition(partition)
                .payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Every kind of message the dashboard and the alerts show: applied (by the model, by
/// the rules after a failed call, from the cache), duplicate, conflict, invalid JSON,
/// denied by policy. Returns how many messages were produced.
async fn mixed_traffic(topics: &TestTopics, producer: &FutureProducer) -> usize {
    let service = topics.service_requests.as_str();
    let messages: Vec<(String, Vec<u8>)> = vec![
        (
            "m-1".into(),
            request("m-1", "Deploy UPF with 2 replicas in namespace edge-1"),
        ),
        (
            "m-2".into(),
            request("m-2", "Deploy UPF with 2 replicas in namespace edge-2"),
        ),
        // The same text again: the translator's cache answers.
        (
            "m-3".into(),
            request("m-3", "Deploy UPF with 2 replicas in namespace edge-1"),
        ),
        // A failed LLM call; the rules translate it.
        (
            "m-4".into(),
            request("m-4", "Deploy UPF with 2 replicas in namespace edge-flaky"),
        ),
        // A duplicate of m-2, and another payload under m-1's key (a conflict).
        (
            "m-2".into(),
            request("m-2", "Deploy UPF with 2 replicas in namespace edge-2"),
        ),
        (
            "m-1".into(),
            request("m-1", "Deploy UPF with 3 replicas in namespace edge-9"),
        ),
        // Denied by policy.
        (
            "m-5".into(),
            request("m-5", "Deploy UPF with 2 replicas in namespace kube-system"),
        ),
        ("m-6".into(), b"{not json".to_vec()),
    ];
    for (key, value) in &messages {
        produce(producer, service, Some(key), value, &[]).await;
    }
    messages.len()
}

/// Waits until `worker`'s `/metrics` shows `name` above 0.
async fn until_metric(worker: &BinaryWorker, name: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while worker.metric(name).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {name} still 0 after {PATIENCE:?}; log:\n{}",
            worker.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prometheus scrapes the worker binary while it processes every kind of message, pauses
/// partitions whose translations are held, and loses partitions (their work fenced) to a
/// second worker; then every expression of the dashboard and the rules must return data.
#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_rule_expression_returns_data_from_a_real_prometheus() {
    tool("prometheus");
    let monitoring = Monitoring::load();
    let dir = tempfile::tempdir().expect("temporary directory");
    let sink = dir.path().join("intents");
    let topics = TestTopics::create("monitoring", 2).await;
    let producer = producer_on(&topics.brokers);
    let llm = llm().await;
    let mut args = topics.args(&sink);
    // The service requests only: its two partitions are shared one each when a second
    // worker joins, so held work moves (a KPI event would not be held by the LLM).
    let at = args.iter().position(|a| a == "--topics").expect("--topics") + 1;
    args[at] = topics.service_requests.clone();
    args.extend(
        [
            "--llm-endpoint",
            &llm.endpoint,
            "--llm-model",
            "monitoring-model",
            // Longer than the test holds the translations.
            "--llm-timeout",
            "120s",
            // Small buffers, so held translations pause their partitions.
            "--partition-buffer",
            "2",
            // Held work on a revoked partition is fenced soon.
            "--revoke-drain-timeout",
            "1s",
        ]
        .map(str::to_string),
    );
    let worker = BinaryWorker::start(&args, &[], &dir.path().join("worker.log")).await;
    worker.until_ready_with_partitions().await;
    let prometheus = Prometheus::start(
        dir.path(),
        std::slice::from_ref(&worker.base),
        &monitoring.rule_file(),
    )
    .await;
    let up = format!(r#"up{{job="{JOB}"}}"#);
    prometheus
        .until("the worker scraped", || async {
            prometheus.value(&up).await == 1.0
        })
        .await;

    // Every kind of message, done.
    let mut produced = mixed_traffic(&topics, &producer).await;
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(produced).await;

    // Translations held: a partition's buffer fills and it is paused; a second worker
    // joins and the held work on the partitions it takes is fenced.
    llm.hold();
    for partition in 0..2 {
        for i in 0..4 {
            let key = format!("held-{partition}-{i}");
            let text = format!("Deploy UPF with 2 replicas in namespace held-{partition}-{i}");
            produce_to(
                &producer,
                &topics.service_requests,
                partition,
                &key,
                &request(&key, &text),
            )
            .await;
            produced += 1;
        }
    }
    // (A partition may already have paused in the mixed traffic, with a buffer of 2.)
    until_metric(&worker, "partition_pauses_total", "a partition paused").await;
    let second = BinaryWorker::start(&args, &[], &dir.path().join("second.log")).await;
    until_metric(
        &worker,
        "fenced_completions_total",
        "held work fenced at the hand-over",
    )
    .await;
    llm.release();
    outcomes.until_terminal_messages(produced).await;

    // Prometheus has scraped what the worker shows now.
    let done = worker.metric("networkintent_processed_total").await;
    let scraped = format!(r#"sum(networkintent_processed_total{{job="{JOB}"}})"#);
    prometheus
        .until("the last counts scraped", || async {
            prometheus.value(&scraped).await >= done
        })
        .await;

    let mut missing = Vec::new();
    // The guide's names and labels, exactly.
    for (name, labels) in GUIDE_SERIES {
        let series = prometheus.query(name).await.unwrap_or_default();
        let labelled = series
            .iter()
            .any(|s| labels.iter().all(|label| s["metric"].get(*label).is_some()));
        if !labelled {
            missing.push(format!(
                "the guide's {name} with labels {labels:?}: {} series, none with those labels",
                series.len()
            ));
        }
    }
    // The rules, loaded into Prometheus: each parsed and evaluated without error.
    let loaded = prometheus
        .http
        .get(format!("{}/api/v1/rules", prometheus.base))
        .send()
        .await
        .expect("GET /api/v1/rules")
        .text()
        .await
        .expect("GET /api/v1/rules");
    let loaded: Value = serde_json::from_str(&loaded).expect("rules as JSON");
    let mut loaded_names = Vec::new();
    for group in loaded["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().unwrap_or_default().to_string();
            if rule["health"] != "ok" && rule["health"] != "unknown" {
                missing.push(format!(
                    "rule {name}: Prometheus evaluates it as {}: {}",
                    rule["health"], rule["lastError"]
                ));
            }
            loaded_names.push(name);
        }
    }
    for alert in monitoring.alert_names() {
        if !loaded_names.contains(&alert) {
            missing.push(format!("rule {alert}: not loaded by Prometheus"));
        }
    }

    let mut expressions: Vec<(String, String)> = Vec::new();
    for (at, expr) in monitoring.rule_expressions() {
        for part in rule_parts(&expr) {
            expressions.push((at.clone(), part));
        }
    }
    for (at, expr) in monitoring.dashboard_expressions() {
        expressions.push((at, dashboard_query(&expr)));
    }
    for (at, query) in &expressions {
        if query.contains('$') {
            missing.push(format!("{at}: a variable the test does not know: {query}"));
            continue;
        }
        match prometheus.query(query).await {
            Ok(result) if !result.is_empty() => {}
            Ok(_) => missing.push(format!("{at}: no data: {query}")),
            Err(error) => missing.push(format!("{at}: {error}: {query}")),
        }
    }
    eprintln!(
        "{} expressions evaluated; {} problems",
        expressions.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} problems against Prometheus ({} expressions evaluated):\n  {}",
        missing.len(),
        expressions.len(),
        missing.join("\n  ")
    );
    second.terminate().await;
    worker.terminate().await;
}
