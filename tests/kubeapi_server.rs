//! The Kubernetes API test server (`tests/common/kubeapi.rs`) over HTTP, as kube's client
//! will talk to it: server-side apply and its conflicts, generation and the status
//! subresource, LIST and WATCH with bookmarks and 410, namespaces, faults, the server
//! down, the request record and the kubeconfig. No broker needed.

mod common;

use std::time::Duration;

use common::kubeapi::{Fault, KubeApi, Options, API_VERSION, KIND};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(30);
const BASE: &str = "/apis/nephoran.com/v1alpha1";

fn intent_path(namespace: &str, name: &str) -> String {
    format!("{BASE}/namespaces/{namespace}/networkintents/{name}")
}

fn intent(namespace: &str, name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "nephoran-kafka-consumer"},
        },
        "spec": {
            "intent": "Deploy AMF with 3 replicas",
            "intentType": "scaling",
            "priority": "medium",
            "targetComponents": ["amf"],
            "scaling": {"replicas": replicas},
        },
    })
}

struct Http<'a> {
    api: &'a KubeApi,
    client: reqwest::Client,
}

impl<'a> Http<'a> {
    fn new(api: &'a KubeApi) -> Self {
        Self {
            api,
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .client
            .request(method, format!("{}{path_and_query}", self.api.url))
            .bearer_auth(&self.api.token)
            .header("accept", "application/json");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the test server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, headers)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body, _) = self.send("GET", path, None, None).await;
        (status, body)
    }

    async fn apply(&self, manager: &str, force: bool, object: &Value) -> (u16, Value) {
        self.apply_to("", manager, force, object).await
    }

    /// Server-side apply to the object (`sub` "") or its status (`sub` "/status").
    async fn apply_to(
        &self,
        sub: &str,
        manager: &str,
        force: bool,
        object: &Value,
    ) -> (u16, Value) {
        let namespace = object["metadata"]["namespace"].as_str().expect("namespace");
        let name = object["metadata"]["name"].as_str().expect("name");
        let force = if force { "&force=true" } else { "" };
        let path = format!(
            "{}{sub}?fieldManager={manager}{force}",
            intent_path(namespace, name)
        );
        let (status, body, _) = self
            .send(
                "PATCH",
                &path,
                Some("application/apply-patch+yaml"),
                Some(object.to_string()),
            )
            .await;
        (status, body)
    }

    async fn merge(&self, path: &str, patch: &Value) -> (u16, Value) {
        let (status, body, _) = self
            .send(
                "PATCH",
                path,
                Some("application/merge-patch+json"),
                Some(patch.to_string()),
            )
            .await;
        (status, body)
    }

    async fn watch(&self, path_and_query: &str) -> Watch {
        let response = self
            .client
            .get(format!("{}{path_and_query}", self.api.url))
            .bearer_auth(&self.api.token)
            .send()
            .await
            .expect("the watch starts");
        assert_eq!(response.status().as_u16(), 200, "a watch answers 200");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "watch events are JSON lines"
        );
        Watch {
            response,
            buffer: Vec::new(),
        }
    }
}

/// A watch response read one event line at a time.
struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Watch {
    /// The next event; `Ok(None)` when the server ended the stream, `Err` when the
    /// connection broke.
    async fn next(&mut self) -> Result<Option<Value>, reqwest::Error> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let event = serde_json::from_slice(&line).expect("each line is one JSON event");
                return Ok(Some(event));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("hang guard: no watch event in time")?;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => {
                    assert!(self.buffer.is_empty(), "a watch ends on a line boundary");
                    return Ok(None);
                }
            }
        }
    }

    async fn event(&mut self) -> Value {
        self.next()
            .await
            .expect("the watch stays connected")
            .expect("the watch stays open")
    }
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a resourceVersion")
}

fn managers(object: &Value) -> Vec<(String, String, Option<String>)> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
                m["subresource"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["manager"] == manager)
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {object}"))
}

#[tokio::test]
async fn apply_creates_and_the_same_apply_again_changes_nothing() {
    let api = KubeApi::start().await;
    let http = Http::new(&api);
    let object = intent("default", "ni-a", 3);

    let (status, created) = http.apply("nephoran-kafka-consumer", false, &object).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["apiVersion"], API_VERSION);
    assert_eq!(created["kind"], KIND);
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["scaling"]["replicas"], 3);
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert!(created["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let owner = entry(&created, "nephoran-kafka-consumer");
    assert_eq!(owner["operation"], "Apply");
    assert_eq!(owner["apiVersion"], API_VERSION);
    assert_eq!(owner["fieldsType"], "FieldsV1");
    assert_eq!(
        owner["fieldsV1"]["f:spec"]["f:scaling"]["f:replicas"],
        json!({})
    );
    assert_eq!(owner["fieldsV1"]["f:spec"]["f:targetComponents"], json!({}));
    assert_eq!(
        owner["fieldsV1"]["f:metadata"]["f:labels"]["f:app.kubernetes.io/managed-by"],
        json!({})
    );
    assert!(
        owner["fieldsV1"]["f:metadata"].get("f:name").is_none(),
        "the name is the server's"
    );

    let (status, again) = http.apply("nephoran-kafka-consumer", false, &object).await;
    assert_eq!(status, 200);
    assert_eq!(rv(&again), rv(&created), "the same apply changes nothing");
    assert_eq!(again, created);

    // The same configuration as YAML, as `kubectl apply --server-side` sends it.
    let yaml = serde_yaml::to_string(&object).expect("yaml");
    let (status, from_yaml, _) = http
        .send(
            "PATCH",
            &format!(
                "{}?fieldManager=nephoran-kafka-consumer",
                intent_path("default", "ni-a")
            ),
            Some("application/apply-patch+yaml"),
            Some(yaml),
        )
        .await;
    assert_eq!(status, 200, "{from_yaml}");
    assert_eq!(rv(&from_yaml), rv(&created));

    let (status, got) = http.get(&intent_path("default", "ni-a")).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);

    // A field the manager leaves out is removed; the version moves.
    let mut fewer = object.clone();
    fewer["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("priority");
    let (status, changed) = http.apply("nephoran-kafka-consumer", false, &fewer).await;
    assert_eq!(status, 200);
    assert!(changed["spec"].get("priority").is_none(), "{changed}");
    assert!(rv(&changed) > rv(&created));
    assert_eq!(changed["metadata"]["generation"], 2);

    // Apply needs a field manager, and a name that agrees with the URL.
    let (status, refused, _) = http
        .send(
            "PATCH",
            &intent_path("default", "ni-a"),
            Some("application/apply-patch+yaml"),
            Some(object.to_string()),
        )
        .await;
    assert_eq!(
        (status, refused["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let (status, refused) = http
        .send(
            "PATCH",
            &format!("{}?fieldManager=m", intent_path("default", "other")),
            Some("application/apply-patch+yaml"),
            Some(object.to_string()),
        )
        .await
        .into_two();
    assert_eq!(status, 400, "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap_or_default()
        .contains("does not match the name"));
}

trait IntoTwo {
    fn into_two(self) -> (u16, Value);
}

impl IntoTwo for (u16, Value, reqwest::header::HeaderMap) {
    fn into_two(self) -> (u16, Value) {
        (self.0, self.1)
    }
}

#[tokio::test]
async fn a_second_manager_conflicts_unless_it_forces() {
    let api = KubeApi::start().await;
    let http = Http::new(&api);
    let (status, first) = http
        .apply(
            "nephoran-kafka-consumer",
            false,
            &intent("default", "ni-c", 3),
        )
        .await;
    assert_eq!(status, 201);

    // Another manager setting the same value shares the field: no conflict.
    let same = json!({"apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "ni-c", "namespace": "default"}, "spec": {"scaling": {"replicas": 3}}});
    let (status, shared) = http.apply("ops-team", false, &same).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["spec"]["scaling"]["replicas"], 3);

    // Another value: 409, a Status with reason Conflict naming the manager and the field.
    let mut other = same.clone();
    other["spec"]["scaling"]["replicas"] = json!(5);
    let before = api.get("default", "ni-c").expect("stored");
    let (status, conflict) = http.apply("scaler", false, &other).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["kind"], "Status");
    assert_eq!(conflict["apiVersion"], "v1");
    assert_eq!(conflict["status"], "Failure");
    assert_eq!(conflict["reason"], "Conflict");
    assert_eq!(conflict["code"], 409);
    assert_eq!(
        conflict["message"],
        "Apply failed with 2 conflicts: conflicts with \"nephoran-kafka-consumer\":\n- .spec.scaling.replicas\nconflicts with \"ops-team\":\n- .spec.scaling.replicas"
    );
    assert_eq!(
        conflict["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(
        conflict["details"]["causes"][0]["field"],
        ".spec.scaling.replicas"
    );
    assert_eq!(
        api.get("default", "ni-c").expect("stored"),
        before,
        "a conflict changes nothing"
    );

    // One owner: the message the sink will quote.
    let (status, _) = http
        .apply(
            "ops-team",
            false,
            &json!({"apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "ni-c", "namespace": "default"}, "spec": {"priority": "medium"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, conflict) = http.apply("scaler", false, &other).await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"nephoran-kafka-consumer\": .spec.scaling.replicas"
    );

    // Forced, the field changes hands.
    let (status, forced) = http.apply("scaler", true, &other).await;
    assert_eq!(status, 200, "{forced}");
    assert_eq!(forced["spec"]["scaling"]["replicas"], 5);
    assert_eq!(forced["metadata"]["generation"], 2);
    assert!(rv(&forced) > rv(&first));
    let consumer = entry(&forced, "nephoran-kafka-consumer");
    assert!(
        consumer["fieldsV1"]["f:spec"].get("f:scaling").is_none(),
        "{consumer}"
    );
    assert_eq!(
        entry(&forced, "scaler")["fieldsV1"]["f:spec"]["f:scaling"]["f:replicas"],
        json!({})
    );
    let (status, back) = http
        .apply(
            "nephoran-kafka-consumer",
            false,
            &intent("default", "ni-c", 3),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        back["message"],
        "Apply failed with 1 conflict: conflict with \"scaler\": .spec.scaling.replicas"
    );

    // A field changed by an update (kubectl edit, a merge patch) belongs to that updater.
    let (status, edited) = http
        .merge(
            &format!(
                "{}?fieldManager=kubectl-edit",
                intent_path("default", "ni-c")
            ),
            &json!({"spec": {"priority": "high"}}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert!(managers(&edited).contains(&("kubectl-edit".into(), "Update".into(), None)));
    let (status, conflict) = http
        .apply("nephoran-kafka-consumer", false, &{
            let mut o = intent("default", "ni-c", 5);
            o["spec"]["priority"] = json!("low");
            o
        })
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using nephoran.com/v1alpha1: .spec.priority"
    );
}

#[tokio::test]
async fn generation_counts_spec_changes_and_the_status_is_its_own_subresource() {
    let api = KubeApi::start().await;
    let http = Http::new(&api);
    let object = intent("default", "ni-g", 3);
    let (_, created) = http.apply("nephoran-kafka-consumer", false, &object).await;
    assert_eq!(created["metadata"]["generation"], 1);

    // A label is metadata: a new version, the same generation.
    let mut labelled = object.clone();
    labelled["metadata"]["labels"]["team"] = json!("core");
    let (_, relabelled) = http
        .apply("nephoran-kafka-consumer", false, &labelled)
        .await;
    assert!(rv(&relabelled) > rv(&created));
    assert_eq!(relabelled["metadata"]["generation"], 1);

    // A status in the main resource's apply is ignored.
    let mut with_status = labelled.clone();
    with_status["status"] = json!({"phase": "Deployed"});
    let (status, ignored) = http
        .apply("nephoran-kafka-consumer", false, &with_status)
        .await;
    assert_eq!(status, 200);
    assert!(ignored.get("status").is_none(), "{ignored}");
    assert_eq!(rv(&ignored), rv(&relabelled));

    // The operator's status: through /status, generation unchanged, its own entry.
    let status_apply = json!({"apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "ni-g", "namespace": "default"},
        "spec": {"priority": "ignored on /status"},
        "status": {"phase": "Processing", "observedGeneration": 1}});
    let (status, processing) = http
        .apply_to("/status", "nephoran-intent-operator", false, &status_apply)
        .await;
    assert_eq!(status, 200, "{processing}");
    assert_eq!(processing["status"]["phase"], "Processing");
    assert_eq!(
        processing["spec"]["priority"], "medium",
        "spec is not written through /status"
    );
    assert_eq!(processing["metadata"]["generation"], 1);
    assert!(rv(&processing) > rv(&relabelled));
    assert!(managers(&processing).contains(&(
        "nephoran-intent-operator".into(),
        "Apply".into(),
        Some("status".into())
    )));
    let (status, via_status) = http
        .get(&format!("{}/status", intent_path("default", "ni-g")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(via_status, processing);

    // The helpers set status as the operator does.
    let deployed = api
        .deployed("default", "ni-g", "AMF running")
        .expect("status set");
    assert_eq!(deployed["status"]["phase"], "Deployed");
    assert_eq!(deployed["status"]["observedGeneration"], 1);
    assert_eq!(deployed["status"]["conditions"][0]["type"], "Deployed");
    assert_eq!(deployed["status"]["conditions"][0]["status"], "True");
    assert_eq!(
        deployed["status"]["conditions"][0]["message"],
        "AMF running"
    );
    assert_eq!(deployed["metadata"]["generation"], 1);

    // A spec change moves the generation past the status's observedGeneration.
    let (_, scaled) = http
        .apply(
            "nephoran-kafka-consumer",
            false,
            &intent("default", "ni-g", 4),
        )
        .await;
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(scaled["status"]["observedGeneration"], 1);
    let failed = api
        .failed("default", "ni-g", "quota exceeded")
        .expect("status set");
    assert_eq!(failed["status"]["phase"], "Failed");
    assert_eq!(failed["status"]["observedGeneration"], 2);
    assert_eq!(failed["status"]["conditions"][0]["status"], "False");

    // PUT /status checks the resourceVersion.
    let mut stale = failed.clone();
    stale["metadata"]["resourceVersion"] = json!(rv(&scaled).to_string());
    stale["status"]["phase"] = json!("Deployed");
    let path = format!("{}/status", intent_path("default", "ni-g"));
    let (status, conflict) = http
        .send(
            "PUT",
            &path,
            Some("application/json"),
            Some(stale.to_string()),
        )
        .await
        .into_two();
    assert_eq!(status, 409);
    assert_eq!(conflict["reason"], "Conflict");
    assert!(conflict["message"]
        .as_str()
        .unwrap_or_default()
        .contains("the object has been modified"));
    let mut current = failed.clone();
    current["status"]["phase"] = json!("Deploying");
    current["spec"]["priority"] = json!("not through /status");
    let (status, put) = http
        .send(
            "PUT",
            &path,
            Some("application/json"),
            Some(current.to_string()),
        )
        .await
        .into_two();
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["status"]["phase"], "Deploying");
    assert_eq!(put["spec"]["priority"], "medium");
    assert_eq!(put["metadata"]["generation"], 2);

    // A status for an object that does not exist is 404.
    let (status, missing) = http
        .apply_to("/status", "nephoran-intent-operator", false, &{
            let mut o = status_apply.clone();
            o["metadata"]["name"] = json!("absent");
            o
        })
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["message"],
        "networkintents.nephoran.com \"absent\" not found"
    );
}

#[tokio::test]
async fn list_then_watch_from_its_version_sees_every_later_change_and_bookmarks() {
    let api = KubeApi::start_with(Options {
        bookmark_interval: None,
        ..Options::default()
    })
    .await;
    api.create_namespace("core5g");
    let http = Http::new(&api);
    http.apply("m", false, &intent("default", "ni-1", 1)).await;
    http.apply("m", false, &intent("core5g", "ni-2", 2)).await;
    let mut unmanaged = intent("core5g", "ni-3", 3);
    unmanaged["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "someone-else"});
    http.apply("m", false, &unmanaged).await;

    let selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dnephoran-kafka-consumer";
    let (status, list) = http.get(&format!("{BASE}/networkintents?{selector}")).await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "NetworkIntentList");
    assert_eq!(list["apiVersion"], API_VERSION);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["ni-2", "ni-1"], "by namespace, then name: {list}");
    let list_rv: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("number");
    assert_eq!(list_rv, api.resource_version());
    let (_, one_ns) = http
        .get(&format!("{BASE}/namespaces/core5g/networkintents"))
        .await;
    assert_eq!(one_ns["items"].as_array().map(Vec::len), Some(2));

    // Pages: limit and continue.
    let (_, page) = http.get(&format!("{BASE}/networkintents?limit=2")).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token");
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    let (_, rest) = http
        .get(&format!("{BASE}/networkintents?limit=2&continue={token}"))
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["metadata"].get("continue").is_none());

    // kube's watcher asks like this (note the leading `&`).
    let mut watch = http
        .watch(&format!(
            "{BASE}/networkintents?&watch=true&timeoutSeconds=290&{selector}&allowWatchBookmarks=true&resourceVersion={list_rv}"
        ))
        .await;
    api.wait_for_watches(1).await;
    let (_, scaled) = http.apply("m", false, &intent("default", "ni-1", 5)).await;
    http.apply("m", false, &{
        let mut o = unmanaged.clone();
        o["spec"]["priority"] = json!("high");
        o
    })
    .await;
    let deployed = api.deployed("core5g", "ni-2", "up").expect("status");
    api.bookmark_now();
    let gone = api.delete("default", "ni-1").expect("deleted");

    let event = watch.event().await;
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["spec"]["scaling"]["replicas"], 5);
    assert_eq!(rv(&event["object"]), rv(&scaled));
    let event = watch.event().await;
    assert_eq!(
        event["type"], "MODIFIED",
        "the unmanaged intent is filtered out"
    );
    assert_eq!(event["object"]["status"]["phase"], "Deployed");
    assert_eq!(rv(&event["object"]), rv(&deployed));
    let event = watch.event().await;
    assert_eq!(event["type"], "BOOKMARK");
    assert_eq!(event["object"]["kind"], KIND);
    assert_eq!(event["object"]["apiVersion"], API_VERSION);
    assert_eq!(rv(&event["object"]), rv(&deployed));
    let event = watch.event().await;
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["metadata"]["name"], "ni-1");
    assert_eq!(rv(&event["object"]), rv(&gone));

    // Relabelled out of the selector: DELETED for this watch; back in: ADDED.
    let mut relabel = intent("core5g", "ni-2", 2);
    relabel["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("someone-else");
    http.apply("m", false, &relabel).await;
    assert_eq!(watch.event().await["type"], "DELETED");
    http.apply("m", false, &intent("core5g", "ni-2", 2)).await;
    assert_eq!(watch.event().await["type"], "ADDED");

    // Without a version (or with 0) a watch starts with the current objects.
    let mut fresh = http
        .watch(&format!(
            "{BASE}/namespaces/core5g/networkintents?watch=1&resourceVersion=0"
        ))
        .await;
    let mut added = [fresh.event().await, fresh.event().await];
    added.sort_by_key(|e| e["object"]["metadata"]["name"].as_str().map(str::to_string));
    assert!(added.iter().all(|e| e["type"] == "ADDED"));
    assert_eq!(added[0]["object"]["metadata"]["name"], "ni-2");
    assert_eq!(added[1]["object"]["metadata"]["name"], "ni-3");

    // timeoutSeconds ends the stream cleanly.
    let mut short = http
        .watch(&format!(
            "{BASE}/networkintents?watch=true&timeoutSeconds=1&resourceVersion={}",
            api.resource_version()
        ))
        .await;
    assert!(short.next().await.expect("a clean end").is_none());
}

#[tokio::test]
async fn a_version_older_than_the_history_is_410_gone() {
    let api = KubeApi::start_with(Options {
        history: 3,
        bookmark_interval: None,
        ..Options::default()
    })
    .await;
    let http = Http::new(&api);
    let (_, first) = http.apply("m", false, &intent("default", "ni-h", 1)).await;
    for replicas in 2..=6 {
        http.apply("m", false, &intent("default", "ni-h", replicas))
            .await;
    }

    // The real server answers 200 and then an ERROR event carrying a 410 Status.
    let mut stale = http
        .watch(&format!(
            "{BASE}/namespaces/default/networkintents?watch=true&resourceVersion={}",
            rv(&first)
        ))
        .await;
    let event = stale.event().await;
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["kind"], "Status");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(event["object"]["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("too old resource version"));
    assert!(stale.next().await.expect("ends cleanly").is_none());

    // Within the history the changes are replayed.
    let recent = api.resource_version() - 2;
    let mut replay = http
        .watch(&format!(
            "{BASE}/namespaces/default/networkintents?watch=true&resourceVersion={recent}"
        ))
        .await;
    assert_eq!(
        replay.event().await["object"]["spec"]["scaling"]["replicas"],
        5
    );
    assert_eq!(
        replay.event().await["object"]["spec"]["scaling"]["replicas"],
        6
    );

    // A test can expire open watches: each gets the 410 and ends; resuming is 410 too.
    api.wait_for_watches(1).await;
    let resume_from = api.resource_version();
    api.expire_watches();
    let event = replay.event().await;
    assert_eq!(
        (event["type"].as_str(), event["object"]["code"].as_u64()),
        (Some("ERROR"), Some(410))
    );
    assert!(replay.next().await.expect("ends cleanly").is_none());
    http.apply("m", false, &intent("default", "ni-h", 7)).await;
    let mut resumed = http
        .watch(&format!(
            "{BASE}/namespaces/default/networkintents?watch=true&resourceVersion={}",
            resume_from - 1
        ))
        .await;
    assert_eq!(resumed.event().await["object"]["code"], 410);
    // From the current list it works again.
    let (_, list) = http
        .get(&format!("{BASE}/namespaces/default/networkintents"))
        .await;
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let mut relisted = http
        .watch(&format!(
            "{BASE}/namespaces/default/networkintents?watch=true&resourceVersion={list_rv}"
        ))
        .await;
    http.apply("m", false, &intent("default", "ni-h", 8)).await;
    assert_eq!(relisted.event().await["type"], "MODIFIED");

    // An exact list of a compacted version is 410 Expired as well.
    let (status, expired) = http
        .get(&format!(
            "{BASE}/networkintents?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&first)
        ))
        .await;
    assert_eq!((status, expired["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn namespaces_exist_only_when_created() {
    let api = KubeApi::start().await;
    let http = Http::new(&api);
    let (status, missing) = http.get("/api/v1/namespaces/ran").await;
    assert_eq!(status, 404);
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["message"], "namespaces \"ran\" not found");
    assert_eq!(missing["details"]["kind"], "namespaces");

    let (status, refused) = http.apply("m", false, &intent("ran", "ni-n", 1)).await;
    assert_eq!(status, 404, "no intent in a namespace that does not exist");
    assert_eq!(refused["message"], "namespaces \"ran\" not found");

    let body =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ran"}}).to_string();
    let (status, created) = http
        .send(
            "POST",
            "/api/v1/namespaces",
            Some("application/json"),
            Some(body.clone()),
        )
        .await
        .into_two();
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["kind"], "Namespace");
    assert_eq!(created["status"]["phase"], "Active");
    let (status, again) = http
        .send(
            "POST",
            "/api/v1/namespaces",
            Some("application/json"),
            Some(body),
        )
        .await
        .into_two();
    assert_eq!(
        (status, again["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let (status, got) = http.get("/api/v1/namespaces/ran").await;
    assert_eq!(status, 200);
    assert_eq!(got["metadata"]["name"], "ran");
    assert!(api.namespace_exists("ran"));
    assert_eq!(
        http.apply("m", false, &intent("ran", "ni-n", 1)).await.0,
        201
    );
}

#[tokio::test]
async fn faults_answer_as_the_api_server_does_and_every_request_is_recorded() {
    let api = KubeApi::start().await;
    let http = Http::new(&api);
    let object = intent("default", "ni-f", 1);

    api.fail_next(
        2,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
    );
    for _ in 0..2 {
        let (status, body, headers) = http
            .send(
                "PATCH",
                &format!("{}?fieldManager=m", intent_path("default", "ni-f")),
                Some("application/apply-patch+yaml"),
                Some(object.to_string()),
            )
            .await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(body["reason"], "TooManyRequests");
        assert_eq!(body["details"]["retryAfterSeconds"], 3);
    }
    assert_eq!(
        http.apply("m", false, &object).await.0,
        201,
        "then it succeeds"
    );

    api.fail_next(1, Fault::InternalError);
    let (status, body) = http.get(&intent_path("default", "ni-f")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (500, Some("InternalError"))
    );
    api.fail_next(1, Fault::Unavailable);
    assert_eq!(http.get(&intent_path("default", "ni-f")).await.0, 503);

    // Only the requests a test picks: here the patches, not the reads.
    api.fail_next_where(1, Fault::Forbidden, |r| r.method == "PATCH");
    assert_eq!(http.get(&intent_path("default", "ni-f")).await.0, 200);
    let (status, forbidden) = http.apply("m", false, &object).await;
    assert_eq!(status, 403);
    assert_eq!(forbidden["reason"], "Forbidden");
    assert_eq!(
        forbidden["message"],
        "networkintents.nephoran.com \"ni-f\" is forbidden: User \"system:serviceaccount:nephoran:nephoran-kafka-consumer\" cannot patch resource \"networkintents\" in API group \"nephoran.com\" in the namespace \"default\""
    );
    assert_eq!(http.apply("m", false, &object).await.0, 200);

    api.reject_invalid(|o| {
        (o["spec"]["priority"] == "urgent").then(|| {
            (
                "spec.priority".to_string(),
                "Unsupported value: \"urgent\"".to_string(),
            )
        })
    });
    let (status, invalid) = http
        .apply("m", false, &{
            let mut o = object.clone();
            o["spec"]["priority"] = json!("urgent");
            o
        })
        .await;
    assert_eq!((status, invalid["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        invalid["message"],
        "NetworkIntent.nephoran.com \"ni-f\" is invalid: spec.priority: Unsupported value: \"urgent\""
    );

    // No token, no answer.
    let anonymous = reqwest::get(format!("{}{}", api.url, intent_path("default", "ni-f")))
        .await
        .expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401);

    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.is_apply())
        .collect();
    let last = patches.last().expect("applies recorded");
    assert_eq!(last.path, intent_path("default", "ni-f"));
    assert_eq!(last.query("fieldManager"), Some("m"));
    assert_eq!(
        last.header("Content-Type"),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {}", api.token).as_str())
    );
    assert_eq!(last.json().expect("body")["spec"]["priority"], "urgent");
    assert_eq!(patches.len(), 6);
}

#[tokio::test]
async fn a_server_that_is_down_refuses_connections_and_cuts_watches() {
    let api = KubeApi::start_with(Options {
        bookmark_interval: None,
        ..Options::default()
    })
    .await;
    let http = Http::new(&api);
    http.apply("m", false, &intent("default", "ni-d", 1)).await;
    let mut watch = http
        .watch(&format!(
            "{BASE}/networkintents?watch=true&resourceVersion={}",
            api.resource_version()
        ))
        .await;
    api.wait_for_watches(1).await;

    api.down();
    assert!(watch.next().await.is_err(), "an open watch breaks");
    let refused = reqwest::Client::new()
        .get(format!("{}{}", api.url, intent_path("default", "ni-d")))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect_err("connections are refused");
    assert!(refused.is_connect(), "{refused:?}");

    api.up();
    let (status, object) = http.get(&intent_path("default", "ni-d")).await;
    assert_eq!(status, 200, "back on the same port, state intact");
    assert_eq!(object["spec"]["scaling"]["replicas"], 1);
}

#[tokio::test]
async fn the_kubeconfig_points_at_the_server_with_its_token() {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path).expect("written");
    let config: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
    let context = config["current-context"].as_str().expect("context");
    let ctx = config["contexts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == context))
        .expect("the current context");
    let cluster = config["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == ctx["context"]["cluster"]))
        .expect("its cluster");
    let user = config["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == ctx["context"]["user"]))
        .expect("its user");
    let server = cluster["cluster"]["server"].as_str().expect("server");
    let token = user["user"]["token"].as_str().expect("token");
    let response = reqwest::Client::new()
        .get(format!("{server}/version"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200);
}
