//! A Kubernetes API test server for the kube sink and the status watcher: HTTP on
//! 127.0.0.1, `networkintents.nephoran.com/v1alpha1` (namespaced, with the status
//! subresource) and core `namespaces` held in memory with resourceVersions, speaking the
//! API server's wire format so that kube's real `Client`, pointed at it by a kubeconfig
//! ([`KubeApi::write_kubeconfig`]), runs its serialisation, retries and watcher for real.
//!
//! It implements server-side apply (`fieldManager`, `force`, `managedFields`, conflicts as
//! a 409 `Status` with reason `Conflict`), merge patch and PUT, GET, LIST, WATCH with
//! bookmarks and `410 Gone` for a version older than the retained history, `generation`
//! bumped on spec changes only, and the status subresource; and for tests: helpers that
//! set the status as the Nephoran operator would, faults (429 with `Retry-After`, 500,
//! 503, 403, any Status, the server down), and a record of every request. What it does
//! not do is in docs/testing.md.

mod fields;
mod selector;
mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, watch as watch_channel};

use super::switched as listener;
use fields::{Manager, Part};
use listener::{Switch, SwitchedListener};
use selector::Selector;

pub const GROUP: &str = "nephoran.com";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "nephoran.com/v1alpha1";
pub const KIND: &str = "NetworkIntent";
pub const PLURAL: &str = "networkintents";
/// The field manager the status helpers write as.
pub const OPERATOR: &str = "nephoran-intent-operator";

/// The API server's request body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Events a watch may fall behind before it is told to start over (410).
const FEED_CAPACITY: usize = 4096;

/// How the server is set up.
#[derive(Clone)]
pub struct Options {
    /// Change events kept for WATCH from a resourceVersion; an older version is `410`.
    pub history: usize,
    /// How often watches that asked for bookmarks get one; `None`: only on
    /// [`KubeApi::bookmark_now`].
    pub bookmark_interval: Option<Duration>,
    /// Namespaces that exist from the start.
    pub namespaces: Vec<String>,
    /// The bearer token every request must carry.
    pub token: String,
    /// Requests kept by [`KubeApi::requests`]; the oldest go first.
    pub max_recorded: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            history: 32,
            bookmark_interval: Some(Duration::from_secs(5)),
            namespaces: vec!["default".into()],
            token: "kubeapi-test-token".into(),
            max_recorded: 10_000,
        }
    }
}

/// How a faulted request is answered.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 `TooManyRequests` with `Retry-After` (seconds).
    TooManyRequests { retry_after_secs: u64 },
    /// 500 `InternalError`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// 403 `Forbidden`, worded as RBAC words it.
    Forbidden,
    /// Any Status.
    Status {
        code: u16,
        reason: String,
        message: String,
    },
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (or YAML, as an apply may send it).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body)
            .ok()
            .or_else(|| serde_yaml::from_slice(&self.body).ok())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.query("watch"), Some("true" | "1"))
    }

    /// A server-side apply (PATCH with `application/apply-patch+yaml`).
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH"
            && self
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/apply-patch"))
    }
}

type Matcher = Arc<dyn Fn(&Recorded) -> bool + Send + Sync>;
type Validator = Arc<dyn Fn(&Value) -> Option<(String, String)> + Send + Sync>;

struct FaultRule {
    remaining: usize,
    fault: Fault,
    only: Option<Matcher>,
}

/// Kind of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change to a NetworkIntent, as watches replay it.
#[derive(Debug)]
struct Event {
    rv: u64,
    kind: EventKind,
    object: Value,
    previous: Option<Value>,
}

/// What open watches are sent.
#[derive(Debug, Clone)]
enum Feed {
    Event(Arc<Event>),
    Bookmark(u64),
    /// Every open watch gets an `ERROR` 410 and ends.
    Expire,
    /// Every open watch ends cleanly (as at its timeout).
    End,
}

/// A NetworkIntent as stored: the object without `managedFields`, and its managers.
#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    managers: Vec<Manager>,
}

impl Stored {
    fn render(&self) -> Value {
        let mut object = self.object.clone();
        let entries: Vec<Value> = self.managers.iter().map(Manager::render).collect();
        if !entries.is_empty() {
            object["metadata"]["managedFields"] = Value::Array(entries);
        }
        object
    }
}

struct Store {
    rv: u64,
    uid: u64,
    intents: BTreeMap<(String, String), Stored>,
    namespaces: BTreeMap<String, Value>,
    history: VecDeque<Arc<Event>>,
    /// The newest resourceVersion no longer in `history`: watching from an older one is 410.
    compacted: u64,
}

impl Store {
    fn rendered_intents(&self) -> Vec<Value> {
        self.intents.values().map(Stored::render).collect()
    }

    fn next_uid(&mut self) -> String {
        self.uid += 1;
        format!("6e657068-6f72-4e00-8000-{:012x}", self.uid)
    }
}

struct Shared {
    store: Mutex<Store>,
    feed: broadcast::Sender<Feed>,
    faults: Mutex<Vec<FaultRule>>,
    validator: Mutex<Option<Validator>>,
    requests: Mutex<VecDeque<Recorded>>,
    switch: Arc<Switch>,
    watches: watch_channel::Sender<usize>,
    options: Options,
}

/// Counts an open watch while alive.
struct OpenWatch<'a>(&'a watch_channel::Sender<usize>);

impl Drop for OpenWatch<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Shared {
    fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watch_opened(&self) -> OpenWatch<'_> {
        self.watches.send_modify(|n| *n += 1);
        OpenWatch(&self.watches)
    }

    fn record(&self, request: Recorded) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() >= self.options.max_recorded {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    fn take_fault(&self, request: &Recorded) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let index = faults
            .iter()
            .position(|r| r.remaining > 0 && r.only.as_ref().is_none_or(|m| m(request)))?;
        let rule = &mut faults[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    /// Stores a change under a new resourceVersion and tells the watches.
    fn commit(
        &self,
        store: &mut Store,
        key: (String, String),
        stored: Option<Stored>,
        kind: EventKind,
    ) -> Value {
        store.rv += 1;
        let rv = store.rv;
        let previous = store.intents.get(&key).map(Stored::render);
        let object = match stored {
            Some(mut stored) => {
                stored.object["metadata"]["resourceVersion"] = rv.to_string().into();
                let rendered = stored.render();
                store.intents.insert(key, stored);
                rendered
            }
            None => {
                let mut gone = store
                    .intents
                    .remove(&key)
                    .map(|s| s.render())
                    .unwrap_or_default();
                gone["metadata"]["resourceVersion"] = rv.to_string().into();
                gone
            }
        };
        let event = Arc::new(Event {
            rv,
            kind,
            object: object.clone(),
            previous,
        });
        store.history.push_back(event.clone());
        while store.history.len() > self.options.history.max(1) {
            if let Some(dropped) = store.history.pop_front() {
                store.compacted = dropped.rv;
            }
        }
        let _ = self.feed.send(Feed::Event(event));
        object
    }
}

/// A reply: a status code and a body (the object, a list or a `Status`).
struct Reply {
    code: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(code: u16, body: Value) -> Self {
        Self {
            code,
            body,
            headers: Vec::new(),
        }
    }

    fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Self {
        Self::ok(code, status_body(code, reason, message, details))
    }

    fn into_response(self) -> Response {
        let mut response = Response::builder()
            .status(StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", "application/json")
            .header("cache-control", "no-cache, private");
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        response
            .body(Body::from(self.body.to_string()))
            .unwrap_or_default()
    }
}

/// A `Status` object as the API server sends it.
fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

fn intent_details(name: &str) -> Value {
    json!({"name": name, "group": GROUP, "kind": PLURAL})
}

fn not_found(name: &str) -> Reply {
    Reply::status(
        404,
        "NotFound",
        &format!("{PLURAL}.{GROUP} {name:?} not found"),
        Some(intent_details(name)),
    )
}

fn namespace_not_found(namespace: &str) -> Reply {
    Reply::status(
        404,
        "NotFound",
        &format!("namespaces {namespace:?} not found"),
        Some(json!({"name": namespace, "kind": "namespaces"})),
    )
}

fn bad_request(message: &str) -> Reply {
    Reply::status(400, "BadRequest", message, None)
}

fn invalid(name: &str, field: &str, message: &str) -> Reply {
    Reply::status(
        422,
        "Invalid",
        &format!("{KIND}.{GROUP} {name:?} is invalid: {field}: {message}"),
        Some(json!({
            "name": name, "group": GROUP, "kind": KIND,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        })),
    )
}

fn modified(name: &str) -> Reply {
    Reply::status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {PLURAL}.{GROUP} {name:?}: the object has been \
             modified; please apply your changes to the latest version and try again"
        ),
        Some(intent_details(name)),
    )
}

/// RFC 3339 UTC, seconds precision, as `metav1.Time` is written.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A lowercase RFC 1123 subdomain, as object names must be.
fn valid_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// The test server, serving until the test's runtime ends.
pub struct KubeApi {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: SocketAddr,
    pub token: String,
    shared: Arc<Shared>,
}

impl KubeApi {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let listener = listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the Kubernetes API test server");
        let switch = Switch::new();
        let listener =
            SwitchedListener::new(listener, switch.clone()).expect("the test server's address");
        let addr = axum::serve::Listener::local_addr(&listener).expect("address");
        let now = now_rfc3339();
        let mut store = Store {
            rv: 0,
            uid: 0,
            intents: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
        };
        for namespace in &options.namespaces {
            store.rv += 1;
            let object = namespace_object(&mut store, namespace, &now);
            store.namespaces.insert(namespace.clone(), object);
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            feed: broadcast::channel(FEED_CAPACITY).0,
            faults: Mutex::default(),
            validator: Mutex::default(),
            requests: Mutex::default(),
            switch,
            watches: watch_channel::Sender::new(0),
            options: options.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if let Some(every) = options.bookmark_interval {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let Some(shared) = weak.upgrade() else { return };
                    send_bookmark(&shared);
                }
            });
        }
        Self {
            url: format!("http://{addr}"),
            addr,
            token: options.token,
            shared,
        }
    }

    /// A kubeconfig that points at this server with its token, for `KUBECONFIG`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kubeapi-test\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: kubeapi-test\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: kubeapi-test\n  context:\n    cluster: kubeapi-test\n    user: kubeapi-test\n    namespace: default\n\
             current-context: kubeapi-test\n",
            url = self.url,
            token = self.token
        )
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &FsPath) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    // ----- state -----

    /// The current resourceVersion (of the whole store, as etcd's revision).
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().rv
    }

    /// The NetworkIntent as a GET returns it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.lock_store();
        store
            .intents
            .get(&(namespace.to_string(), name.to_string()))
            .map(Stored::render)
    }

    /// Every NetworkIntent, by namespace and name.
    pub fn list(&self) -> Vec<Value> {
        self.shared.lock_store().rendered_intents()
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.shared.lock_store().namespaces.contains_key(namespace)
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.shared
            .lock_store()
            .namespaces
            .keys()
            .cloned()
            .collect()
    }

    /// Creates a namespace if it is not there.
    pub fn create_namespace(&self, namespace: &str) {
        let mut store = self.shared.lock_store();
        if !store.namespaces.contains_key(namespace) {
            store.rv += 1;
            let object = namespace_object(&mut store, namespace, &now_rfc3339());
            store.namespaces.insert(namespace.to_string(), object);
        }
    }

    /// Server-side apply of `object` as `manager`, as the PATCH does: `Ok` with the
    /// object, or `Err` with the Status (a conflict, for one).
    pub fn apply(&self, manager: &str, object: &Value, force: bool) -> Result<Value, Value> {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let reply = apply(
            &self.shared,
            namespace,
            name,
            Part::Main,
            object.clone(),
            manager,
            force,
            false,
        );
        reply_result(reply)
    }

    /// Deletes a NetworkIntent (watches see `DELETED`).
    pub fn delete(&self, namespace: &str, name: &str) -> Option<Value> {
        reply_result(delete(&self.shared, namespace, name)).ok()
    }

    // ----- the operator -----

    /// Replaces the status as the Nephoran operator would (an update of the status
    /// subresource by [`OPERATOR`]).
    pub fn set_status(&self, namespace: &str, name: &str, status: Value) -> Result<Value, Value> {
        let patch = json!({ "status": status });
        reply_result(update(
            &self.shared,
            namespace,
            name,
            Part::Status,
            UpdateKind::ReplaceStatus(patch),
            OPERATOR,
        ))
    }

    /// Sets `phase` and `message`, with `observedGeneration` the current generation and a
    /// `Deployed` condition: True for phase `Deployed`, False for `Failed`, Unknown
    /// otherwise.
    pub fn set_phase(
        &self,
        namespace: &str,
        name: &str,
        phase: &str,
        message: &str,
    ) -> Result<Value, Value> {
        let generation = self
            .get(namespace, name)
            .and_then(|o| o["metadata"]["generation"].as_i64())
            .ok_or_else(|| not_found(name).body)?;
        let (condition, reason) = match phase {
            "Deployed" => ("True", "DeploymentSucceeded"),
            "Failed" => ("False", "DeploymentFailed"),
            _ => ("Unknown", phase),
        };
        let status = json!({
            "phase": phase,
            "message": message,
            "observedGeneration": generation,
            "conditions": [{
                "type": "Deployed",
                "status": condition,
                "observedGeneration": generation,
                "lastTransitionTime": now_rfc3339(),
                "reason": reason,
                "message": message,
            }],
        });
        self.set_status(namespace, name, status)
    }

    /// Phase `Deployed`, condition `Deployed` True.
    pub fn deployed(&self, namespace: &str, name: &str, message: &str) -> Result<Value, Value> {
        self.set_phase(namespace, name, "Deployed", message)
    }

    /// Phase `Failed`, condition `Deployed` False, with `message`.
    pub fn failed(&self, namespace: &str, name: &str, message: &str) -> Result<Value, Value> {
        self.set_phase(namespace, name, "Failed", message)
    }

    // ----- watches -----

    /// Sends every open watch that asked for bookmarks a bookmark at the current version.
    pub fn bookmark_now(&self) {
        send_bookmark(&self.shared);
    }

    /// Forgets the change history: watching from any version before now is `410`.
    pub fn compact(&self) {
        let mut store = self.shared.lock_store();
        store.compacted = store.rv;
        store.history.clear();
    }

    /// [`Self::compact`], and every open watch gets an `ERROR` event with a 410 Status and
    /// ends, as when a watcher falls behind the API server's window.
    pub fn expire_watches(&self) {
        self.compact();
        let _ = self.shared.feed.send(Feed::Expire);
    }

    /// Ends every open watch cleanly, as at its `timeoutSeconds`.
    pub fn end_watches(&self) {
        let _ = self.shared.feed.send(Feed::End);
    }

    /// Watches open now.
    pub fn open_watches(&self) -> usize {
        *self.shared.watches.borrow()
    }

    /// Waits until at least `n` watches are open.
    pub async fn wait_for_watches(&self, n: usize) {
        let mut rx = self.shared.watches.subscribe();
        let _ = rx.wait_for(|open| *open >= n).await;
    }

    // ----- faults -----

    /// Answers the next `n` requests with `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.push_fault(n, fault, None);
    }

    /// Answers the next `n` requests for which `only` holds with `fault`.
    pub fn fail_next_where(
        &self,
        n: usize,
        fault: Fault,
        only: impl Fn(&Recorded) -> bool + Send + Sync + 'static,
    ) {
        self.push_fault(n, fault, Some(Arc::new(only)));
    }

    fn push_fault(&self, n: usize, fault: Fault, only: Option<Matcher>) {
        if n > 0 {
            let mut faults = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
            faults.push(FaultRule {
                remaining: n,
                fault,
                only,
            });
        }
    }

    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Refuses writes whose object `check` finds invalid: `Some((field, message))` is a 422
    /// `Invalid` Status naming the field.
    pub fn reject_invalid(
        &self,
        check: impl Fn(&Value) -> Option<(String, String)> + Send + Sync + 'static,
    ) {
        *self
            .shared
            .validator
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(check));
    }

    /// Closes the port (connections are refused) and cuts every open connection.
    pub fn down(&self) {
        self.shared.switch.set_down(true);
    }

    /// Listens again on the same port.
    pub fn up(&self) {
        self.shared.switch.set_down(false);
    }

    /// Down now, up again after `period`.
    pub fn down_for(&self, period: Duration) {
        self.down();
        let switch = self.shared.switch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(period).await;
            switch.set_down(false);
        });
    }

    pub fn is_down(&self) -> bool {
        self.shared.switch.is_down()
    }

    // ----- the record -----

    /// Every request received (the newest `max_recorded`), in order.
    pub fn requests(&self) -> Vec<Recorded> {
        let requests = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn reply_result(reply: Reply) -> Result<Value, Value> {
    if reply.code < 300 {
        Ok(reply.body)
    } else {
        Err(reply.body)
    }
}

fn send_bookmark(shared: &Shared) {
    // Under the store's lock, so the bookmark follows every event of a lower version.
    let store = shared.lock_store();
    let _ = shared.feed.send(Feed::Bookmark(store.rv));
}

fn namespace_object(store: &mut Store, name: &str, now: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": store.next_uid(),
            "resourceVersion": store.rv.to_string(),
            "creationTimestamp": now,
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

// ----- HTTP -----

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return Reply::status(
                413,
                "RequestEntityTooLarge",
                &format!("Request entity too large: limit is {MAX_BODY}"),
                None,
            )
            .into_response()
        }
    };
    let recorded = Recorded {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    shared.record(recorded.clone());
    if let Some(fault) = shared.take_fault(&recorded) {
        return fault_reply(&fault, &recorded).into_response();
    }
    let expected = format!("Bearer {}", shared.options.token);
    if recorded.header("authorization") != Some(expected.as_str()) {
        return Reply::status(401, "Unauthorized", "Unauthorized", None).into_response();
    }
    route(shared, &recorded, body)
}

fn fault_reply(fault: &Fault, request: &Recorded) -> Reply {
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let mut reply = Reply::status(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                Some(json!({"retryAfterSeconds": retry_after_secs})),
            );
            reply
                .headers
                .push(("retry-after", retry_after_secs.to_string()));
            reply
        }
        Fault::InternalError => Reply::status(
            500,
            "InternalError",
            "Internal error occurred: injected by the test server",
            Some(json!({"causes": [{"message": "injected by the test server"}]})),
        ),
        Fault::Unavailable => {
            let mut reply = Reply::status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
                Some(json!({"retryAfterSeconds": 1})),
            );
            reply.headers.push(("retry-after", "1".into()));
            reply
        }
        Fault::Forbidden => forbidden(request),
        Fault::Status {
            code,
            reason,
            message,
        } => Reply::status(*code, reason, message, None),
    }
}

/// A 403 worded as RBAC words it, for the request's verb, resource and namespace.
fn forbidden(request: &Recorded) -> Reply {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, namespace, resource, name, sub) = match segments.as_slice() {
        ["apis", g, _, "namespaces", ns, r, rest @ ..] => (
            *g,
            Some(*ns),
            *r,
            rest.first().copied(),
            rest.get(1).copied(),
        ),
        ["apis", g, _, r, rest @ ..] => (*g, None, *r, rest.first().copied(), None),
        ["api", _, "namespaces", ns, rest @ ..] if !rest.is_empty() => {
            ("", Some(*ns), rest[0], rest.get(1).copied(), None)
        }
        ["api", _, r, rest @ ..] => ("", None, *r, rest.first().copied(), None),
        _ => ("", None, "", None, None),
    };
    let verb = match (request.method.as_str(), name) {
        ("GET", _) if request.is_watch() => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "unknown",
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let user = "system:serviceaccount:nephoran:nephoran-kafka-consumer";
    let subject = match name {
        Some(n) if group.is_empty() => format!("{resource} {n:?}"),
        Some(n) => format!("{resource}.{group} {n:?}"),
        None if group.is_empty() => resource.clone(),
        None => format!("{resource}.{group}"),
    };
    let scope = match namespace {
        Some(ns) => format!(" in the namespace {ns:?}"),
        None => " at the cluster scope".to_string(),
    };
    Reply::status(
        403,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group {group:?}{scope}"
        ),
        Some(json!({"name": name.unwrap_or_default(), "group": group, "kind": resource})),
    )
}

fn route(shared: Arc<Shared>, request: &Recorded, body: Bytes) -> Response {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method.as_str();
    let not_allowed = || {
        Reply::status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    };
    let reply = match (segments.as_slice(), method) {
        (["version"], "GET") => Reply::ok(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kubeapi-test", "platform": "linux/amd64"}),
        ),
        (["apis", GROUP, VERSION], "GET") => Reply::ok(200, discovery()),
        (["api", "v1", "namespaces"], "GET") => {
            let store = shared.lock_store();
            Reply::ok(
                200,
                json!({
                    "apiVersion": "v1", "kind": "NamespaceList",
                    "metadata": {"resourceVersion": store.rv.to_string()},
                    "items": store.namespaces.values().cloned().collect::<Vec<_>>(),
                }),
            )
        }
        (["api", "v1", "namespaces"], "POST") => create_namespace(&shared, &body),
        (["api", "v1", "namespaces", ns], "GET") => match shared.lock_store().namespaces.get(*ns) {
            Some(object) => Reply::ok(200, object.clone()),
            None => namespace_not_found(ns),
        },
        (["apis", GROUP, VERSION, PLURAL], "GET") => return list_or_watch(shared, None, request),
        (["apis", GROUP, VERSION, "namespaces", ns, PLURAL], "GET") => {
            return list_or_watch(shared, Some(ns), request)
        }
        (["apis", GROUP, VERSION, "namespaces", ns, PLURAL], "POST") => match parse_body(&body) {
            Ok(object) => {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                update(
                    &shared,
                    ns,
                    &name,
                    Part::Main,
                    UpdateKind::Create(object),
                    &manager_of(request),
                )
            }
            Err(reply) => reply,
        },
        (["apis", GROUP, VERSION, "namespaces", ns, PLURAL, name, rest @ ..], _) => {
            let part = match rest {
                [] => Part::Main,
                ["status"] => Part::Status,
                _ => return not_found_path().into_response(),
            };
            match method {
                "GET" => get(&shared, ns, name),
                "PATCH" => patch(&shared, ns, name, part, request, &body),
                "PUT" => match parse_body(&body) {
                    Ok(object) => update(
                        &shared,
                        ns,
                        name,
                        part,
                        UpdateKind::Replace(object),
                        &manager_of(request),
                    ),
                    Err(reply) => reply,
                },
                "DELETE" if part == Part::Main => delete(&shared, ns, name),
                _ => not_allowed(),
            }
        }
        (["api", ..] | ["apis", ..] | ["version"], _) if known_path(&segments) => not_allowed(),
        _ => not_found_path(),
    };
    reply.into_response()
}

fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["version"]
            | ["apis", GROUP, VERSION]
            | ["api", "v1", "namespaces"]
            | ["api", "v1", "namespaces", _]
            | ["apis", GROUP, VERSION, PLURAL]
            | ["apis", GROUP, VERSION, "namespaces", _, PLURAL]
    )
}

fn not_found_path() -> Reply {
    Reply::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(
            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}),
        ),
    )
}

fn discovery() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {"name": PLURAL, "singularName": "networkintent", "namespaced": true, "kind": KIND,
             "verbs": ["delete", "get", "list", "patch", "create", "update", "watch"], "shortNames": ["ni"]},
            {"name": format!("{PLURAL}/status"), "singularName": "", "namespaced": true, "kind": KIND,
             "verbs": ["get", "patch", "update"]},
        ],
    })
}

/// The manager of a non-apply write: `fieldManager`, else the User-Agent's program name.
fn manager_of(request: &Recorded) -> String {
    request
        .query("fieldManager")
        .map(str::to_string)
        .or_else(|| {
            request
                .header("user-agent")
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(bad_request("the request body is not a JSON object")),
        Err(e) => Err(bad_request(&format!(
            "the body of the request was in an unknown format: {e}"
        ))),
    }
}

fn create_namespace(shared: &Shared, body: &[u8]) -> Reply {
    let object = match parse_body(body) {
        Ok(object) => object,
        Err(reply) => return reply,
    };
    let Some(name) = object["metadata"]["name"]
        .as_str()
        .filter(|n| valid_name(n))
    else {
        return Reply::status(
            422,
            "Invalid",
            "Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required",
            None,
        );
    };
    let mut store = shared.lock_store();
    if store.namespaces.contains_key(name) {
        return Reply::status(
            409,
            "AlreadyExists",
            &format!("namespaces {name:?} already exists"),
            Some(json!({"name": name, "kind": "namespaces"})),
        );
    }
    store.rv += 1;
    let mut created = namespace_object(&mut store, name, &now_rfc3339());
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            created["metadata"]["labels"][k] = v.clone();
        }
    }
    store.namespaces.insert(name.to_string(), created.clone());
    Reply::ok(201, created)
}

fn get(shared: &Shared, namespace: &str, name: &str) -> Reply {
    let store = shared.lock_store();
    match store
        .intents
        .get(&(namespace.to_string(), name.to_string()))
    {
        Some(stored) => Reply::ok(200, stored.render()),
        None => not_found(name),
    }
}

fn delete(shared: &Shared, namespace: &str, name: &str) -> Reply {
    let mut store = shared.lock_store();
    let key = (namespace.to_string(), name.to_string());
    if !store.intents.contains_key(&key) {
        return not_found(name);
    }
    let object = shared.commit(&mut store, key, None, EventKind::Deleted);
    Reply::ok(200, object)
}

fn list_or_watch(shared: Arc<Shared>, namespace: Option<&str>, request: &Recorded) -> Response {
    let selector = match Selector::parse(
        request.query("labelSelector"),
        request.query("fieldSelector"),
    ) {
        Ok(selector) => selector,
        Err(message) => return bad_request(&message).into_response(),
    };
    let rv = request.query("resourceVersion").filter(|v| !v.is_empty());
    let rv = match rv.map(str::parse::<u64>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return bad_request(&format!(
                "resourceVersion: Invalid value: {:?}: must be a non-negative integer",
                rv.unwrap_or_default()
            ))
            .into_response()
        }
    };
    let truthy = |name: &str| matches!(request.query(name), Some("true" | "1"));
    if request.is_watch() {
        let timeout = request
            .query("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        return watch::respond(
            shared,
            watch::WatchRequest {
                namespace: namespace.map(str::to_string),
                selector,
                resource_version: rv.filter(|v| *v != 0),
                bookmarks: truthy("allowWatchBookmarks"),
                initial_events: truthy("sendInitialEvents"),
                timeout,
            },
        );
    }
    list(&shared, namespace, request, &selector, rv).into_response()
}

fn list(
    shared: &Shared,
    namespace: Option<&str>,
    request: &Recorded,
    selector: &Selector,
    rv: Option<u64>,
) -> Reply {
    let store = shared.lock_store();
    if request.query("resourceVersionMatch") == Some("Exact") {
        match rv {
            Some(v) if v < store.compacted => {
                return Reply::status(
                    410,
                    "Expired",
                    "The resourceVersion for the provided list is too old.",
                    None,
                )
            }
            Some(v) if v != store.rv => {
                // Only the current state is kept, so only it can be listed exactly.
                return bad_request(&format!(
                    "the test server lists only the current resourceVersion ({}), not {v}",
                    store.rv
                ));
            }
            _ => {}
        }
    }
    // A continue token: the list's version and the last key sent.
    let (list_rv, after) = match request.query("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, ':');
            match (
                parts.next().and_then(|v| v.parse::<u64>().ok()),
                parts.next(),
                parts.next(),
            ) {
                (Some(v), Some(ns), Some(name)) => {
                    if v < store.compacted {
                        return Reply::status(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                            None,
                        );
                    }
                    (v, Some((ns.to_string(), name.to_string())))
                }
                _ => return bad_request(&format!("continue key is not valid: {token:?}")),
            }
        }
        None => (store.rv, None),
    };
    let limit = request
        .query("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let matching: Vec<(&(String, String), Value)> = store
        .intents
        .iter()
        .filter(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
        .filter(|(key, _)| after.as_ref().is_none_or(|a| *key > a))
        .map(|(key, stored)| (key, stored.render()))
        .filter(|(_, object)| selector.matches(object))
        .collect();
    let total = matching.len();
    let take = limit.unwrap_or(total).min(total);
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if take < total {
        let last = matching[take - 1].0;
        metadata["continue"] = format!("{list_rv}:{}:{}", last.0, last.1).into();
        metadata["remainingItemCount"] = (total - take).into();
    }
    let items: Vec<Value> = matching.into_iter().take(take).map(|(_, o)| o).collect();
    Reply::ok(
        200,
        json!({"apiVersion": API_VERSION, "kind": format!("{KIND}List"), "metadata": metadata, "items": items}),
    )
}

fn patch(
    shared: &Shared,
    namespace: &str,
    name: &str,
    part: Part,
    request: &Recorded,
    body: &[u8],
) -> Reply {
    let content_type = request.header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/apply-patch+yaml" => {
            let Some(manager) = request.query("fieldManager").filter(|m| !m.is_empty()) else {
                return bad_request("PATCH, fieldManager is required for apply requests");
            };
            let config = match serde_json::from_slice::<Value>(body)
                .or_else(|_| serde_yaml::from_slice::<Value>(body))
            {
                Ok(value) if value.is_object() => value,
                Ok(_) => {
                    return bad_request(
                        "error decoding YAML: the applied configuration is not an object",
                    )
                }
                Err(e) => return bad_request(&format!("error decoding YAML: {e}")),
            };
            let force = matches!(request.query("force"), Some("true" | "1"));
            let dry_run = request.query("dryRun") == Some("All");
            apply(
                shared, namespace, name, part, config, manager, force, dry_run,
            )
        }
        "application/merge-patch+json" => match serde_json::from_slice::<Value>(body) {
            Ok(patch) if patch.is_object() => update(
                shared,
                namespace,
                name,
                part,
                UpdateKind::Merge(patch),
                &manager_of(request),
            ),
            _ => bad_request("the merge patch is not a JSON object"),
        },
        _ => Reply::status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/merge-patch+json, application/apply-patch+yaml (the test server does \
                 not do {media:?})"
            ),
            None,
        ),
    }
}

/// Checks that an object sent for `namespace`/`name` is a NetworkIntent for that place.
fn check_identity(object: &Value, namespace: &str, name: &str) -> Result<(), Reply> {
    match object.get("apiVersion").and_then(Value::as_str) {
        None => return Err(bad_request("Object 'apiVersion' is missing in the request body")),
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(bad_request(&format!(
                "the API version in the data ({other}) does not match the expected API version ({API_VERSION})"
            )))
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None => return Err(bad_request("Object 'Kind' is missing in the request body")),
        Some(KIND) => {}
        Some(other) => {
            return Err(bad_request(&format!(
                "the kind in the data ({other}) does not match the expected kind ({KIND})"
            )))
        }
    }
    let metadata = &object["metadata"];
    if let Some(body_name) = metadata["name"].as_str() {
        if body_name != name {
            return Err(bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    if let Some(body_namespace) = metadata["namespace"].as_str() {
        if body_namespace != namespace {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

/// A new object's skeleton: the server-owned metadata.
fn skeleton(store: &mut Store, namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": store.next_uid(),
            "generation": 1,
            "creationTimestamp": now_rfc3339(),
        },
    })
}

/// `base` with the part `part` replaced by the owned view `view`.
fn compose(base: &Value, view: &Value, part: Part) -> Value {
    let mut object = Map::new();
    let base_map = base.as_object().cloned().unwrap_or_default();
    match part {
        Part::Main => {
            for key in ["apiVersion", "kind", "status"] {
                if let Some(v) = base_map.get(key) {
                    object.insert(key.into(), v.clone());
                }
            }
            let mut metadata: Map<String, Value> = base_map
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            matches!(
                                k.as_str(),
                                "name"
                                    | "namespace"
                                    | "uid"
                                    | "resourceVersion"
                                    | "generation"
                                    | "creationTimestamp"
                            )
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (key, value) in view.as_object().into_iter().flatten() {
                if key == "metadata" {
                    for (k, v) in value.as_object().into_iter().flatten() {
                        metadata.insert(k.clone(), v.clone());
                    }
                } else {
                    object.insert(key.clone(), value.clone());
                }
            }
            object.insert("metadata".into(), Value::Object(metadata));
        }
        Part::Status => {
            object = base_map;
            object.remove("status");
            if let Some(status) = view.get("status") {
                object.insert("status".into(), status.clone());
            }
        }
    }
    Value::Object(object)
}

/// Everything but metadata and status: what `generation` counts.
fn spec_of(object: &Value) -> Value {
    let mut spec = object.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    spec
}

/// Finishes a write: validation, `generation`, and the commit unless nothing changed
/// (then the stored object is the answer and the resourceVersion stays).
fn finish(
    shared: &Shared,
    store: &mut Store,
    key: (String, String),
    mut object: Value,
    managers: Vec<Manager>,
    dry_run: bool,
) -> Reply {
    let existing = store.intents.get(&key).cloned();
    if let Some(validator) = shared
        .validator
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        if let Some((field, message)) = validator(&object) {
            return invalid(&key.1, &field, &message);
        }
    }
    if let Some(existing) = &existing {
        let generation = existing.object["metadata"]["generation"]
            .as_i64()
            .unwrap_or(1);
        let bumped = spec_of(&existing.object) != spec_of(&object);
        object["metadata"]["generation"] = (generation + i64::from(bumped)).into();
        object["metadata"]["resourceVersion"] =
            existing.object["metadata"]["resourceVersion"].clone();
        if existing.object == object && existing.managers == managers {
            return Reply::ok(200, existing.render());
        }
    }
    let stored = Stored { object, managers };
    if dry_run {
        return Reply::ok(if existing.is_some() { 200 } else { 201 }, stored.render());
    }
    let (code, kind) = match existing {
        Some(_) => (200, EventKind::Modified),
        None => (201, EventKind::Added),
    };
    Reply::ok(code, shared.commit(store, key, Some(stored), kind))
}

#[allow(clippy::too_many_arguments)]
fn apply(
    shared: &Shared,
    namespace: &str,
    name: &str,
    part: Part,
    mut config: Value,
    manager: &str,
    force: bool,
    dry_run: bool,
) -> Reply {
    if let Err(reply) = check_identity(&config, namespace, name) {
        return reply;
    }
    if config["metadata"]
        .get("managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return bad_request("metadata.managedFields must be nil");
    }
    let mut store = shared.lock_store();
    let key = (namespace.to_string(), name.to_string());
    let existing = store.intents.get(&key).cloned();
    if let (Some(existing), Some(rv)) = (&existing, config["metadata"]["resourceVersion"].as_str())
    {
        if existing.object["metadata"]["resourceVersion"].as_str() != Some(rv) {
            return modified(name);
        }
    }
    let (base, mut managers) = match existing {
        Some(stored) => (stored.object, stored.managers),
        None if part == Part::Status => return not_found(name),
        None if !store.namespaces.contains_key(namespace) => return namespace_not_found(namespace),
        None if !valid_name(name) => {
            return invalid(
                name,
                "metadata.name",
                &format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            )
        }
        None => (skeleton(&mut store, namespace, name), Vec::new()),
    };
    fields::prune_nulls(&mut config);
    let applied = fields::apply(
        &fields::owned_view(&base, part),
        &fields::owned_view(&config, part),
        &mut managers,
        manager,
        part,
        force,
        API_VERSION,
        &now_rfc3339(),
    );
    if !applied.conflicts.is_empty() {
        let causes: Vec<Value> = applied
            .conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager),
                    "field": fields::render_path(&c.path),
                })
            })
            .collect();
        return Reply::status(
            409,
            "Conflict",
            &fields::conflict_message(&applied.conflicts),
            Some(json!({"causes": causes})),
        );
    }
    let object = compose(&base, &applied.view, part);
    finish(shared, &mut store, key, object, managers, dry_run)
}

/// The writes that are not apply.
enum UpdateKind {
    /// POST: a new object.
    Create(Value),
    /// PUT: the whole object (or, on `/status`, its status).
    Replace(Value),
    /// A JSON merge patch.
    Merge(Value),
    /// The operator helpers' status replacement, without the resourceVersion check.
    ReplaceStatus(Value),
}

fn update(
    shared: &Shared,
    namespace: &str,
    name: &str,
    part: Part,
    kind: UpdateKind,
    manager: &str,
) -> Reply {
    let mut store = shared.lock_store();
    let key = (namespace.to_string(), name.to_string());
    let existing = store.intents.get(&key).cloned();
    let (base, mut managers, desired) = match (kind, existing) {
        (UpdateKind::Create(object), None) => {
            if let Err(reply) = check_identity(&object, namespace, name) {
                return reply;
            }
            if !store.namespaces.contains_key(namespace) {
                return namespace_not_found(namespace);
            }
            if !valid_name(name) {
                return invalid(
                    name,
                    "metadata.name",
                    &format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain is required"),
                );
            }
            let mut object = object;
            fields::prune_nulls(&mut object);
            (skeleton(&mut store, namespace, name), Vec::new(), object)
        }
        (UpdateKind::Create(_), Some(_)) => {
            return Reply::status(
                409,
                "AlreadyExists",
                &format!("{PLURAL}.{GROUP} {name:?} already exists"),
                Some(intent_details(name)),
            )
        }
        (_, None) => return not_found(name),
        (UpdateKind::Replace(object), Some(stored)) => {
            if let Err(reply) = check_identity(&object, namespace, name) {
                return reply;
            }
            match object["metadata"]["resourceVersion"].as_str() {
                None => {
                    return invalid(
                        name,
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                }
                Some(rv) if stored.object["metadata"]["resourceVersion"].as_str() != Some(rv) => {
                    return modified(name)
                }
                Some(_) => {}
            }
            (stored.object, stored.managers, object)
        }
        (UpdateKind::Merge(patch), Some(stored)) => {
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
                if stored.object["metadata"]["resourceVersion"].as_str() != Some(rv) {
                    return modified(name);
                }
            }
            let mut merged = stored.object.clone();
            fields::merge_patch(&mut merged, &patch);
            (stored.object, stored.managers, merged)
        }
        (UpdateKind::ReplaceStatus(object), Some(stored)) => {
            (stored.object, stored.managers, object)
        }
    };
    let old_view = fields::owned_view(&base, part);
    let new_view = fields::owned_view(&desired, part);
    fields::update(
        &old_view,
        &new_view,
        &mut managers,
        manager,
        part,
        API_VERSION,
        &now_rfc3339(),
    );
    let object = compose(&base, &new_view, part);
    finish(shared, &mut store, key, object, managers, false)
}
