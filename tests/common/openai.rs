//! An OpenAI-compatible chat completions server for the LLM tests: each request is
//! answered by the test's own responder (an answer, an error status, a delay, or what a
//! hostile server sends: redirects, raw error bodies, odd headers), and every request is
//! recorded so a test can check what the service sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Call {
    /// 0 for the first request the server got.
    pub index: usize,
    pub body: Value,
    pub authorization: Option<String>,
    pub at: Instant,
}

impl Call {
    /// The request text, as the service marked it in its first user message.
    pub fn text(&self) -> String {
        let first_user = self.messages().into_iter().find(|(role, _)| role == "user");
        let content = first_user.map(|(_, c)| c).unwrap_or_default();
        let start = content.find("<request>\n").map(|i| i + "<request>\n".len());
        let end = content.find("\n</request>");
        match (start, end) {
            (Some(s), Some(e)) if s <= e => content[s..e].to_string(),
            _ => String::new(),
        }
    }

    /// (role, content) of every message.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["role"].as_str().unwrap_or_default().to_string(),
                    m["content"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub fn structured(&self) -> bool {
        self.body.get("response_format").is_some()
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    body: ReplyBody,
    retry_after: Option<String>,
    headers: Vec<(String, String)>,
    delay: Duration,
    /// Held until let through by a [`Gate`] (the reply's ticket and the gate), before
    /// the delay.
    gate: Option<(usize, tokio::sync::watch::Receiver<usize>)>,
}

/// Holds the replies made with [`Reply::until`], in call order, until let through:
/// translations held in flight for as long as a test needs, without guessing a delay.
#[derive(Clone)]
pub struct Gate {
    /// Replies let through so far: the held replies with a lower ticket go.
    admitted: Arc<tokio::sync::watch::Sender<usize>>,
    /// The next held reply's ticket.
    tickets: Arc<AtomicUsize>,
}

impl Gate {
    /// Holds every reply until let through.
    pub fn closed() -> Self {
        Self {
            admitted: Arc::new(tokio::sync::watch::channel(0).0),
            tickets: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Lets the next `n` held replies (in call order) through.
    pub fn admit(&self, n: usize) {
        self.admitted.send_modify(|a| *a = a.saturating_add(n));
    }

    /// Replies let through so far (all of them once open).
    pub fn admitted(&self) -> usize {
        *self.admitted.borrow()
    }

    /// Lets every reply through, held or to come.
    pub fn open(&self) {
        self.admitted.send_replace(usize::MAX);
    }
}

/// A reply's body: JSON, or bytes as they are.
#[derive(Debug, Clone)]
enum ReplyBody {
    Json(Value),
    Raw(Vec<u8>),
}

impl Reply {
    /// A completion whose message content is `content`, with token usage.
    pub fn content(content: impl Into<String>) -> Self {
        Self::ok(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content.into()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }))
    }

    /// A completion carrying an answer object.
    pub fn answer(answer: Value) -> Self {
        Self::content(answer.to_string())
    }

    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: ReplyBody::Json(body),
            retry_after: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
            gate: None,
        }
    }

    /// An error status with an OpenAI-style error body.
    pub fn status(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"message": message, "type": "test"}}),
        )
    }

    /// `status` with `body` sent byte for byte (not JSON).
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: ReplyBody::Raw(body.into()),
            ..Self::json(status, Value::Null)
        }
    }

    /// A redirect (`status` 3xx) to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::raw(status, Vec::new()).header("location", location)
    }

    /// An extra response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(value.to_string());
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sent only once `gate` lets it through.
    pub fn until(mut self, gate: &Gate) -> Self {
        let ticket = gate.tickets.fetch_add(1, Ordering::SeqCst);
        self.gate = Some((ticket, gate.admitted.subscribe()));
        self
    }
}

/// An answer object: `components` with `replicas` in `namespace`.
pub fn answer(components: &[&str], namespace: &str, replicas: Option<u32>) -> Value {
    json!({
        "intentType": if replicas.is_some() { "scaling" } else { "deployment" },
        "priority": "medium",
        "targetComponents": components,
        "targetNamespace": namespace,
        "targetEnvironment": null,
        "scaling": replicas.map(|r| json!({"replicas": r, "minReplicas": null, "maxReplicas": null, "scaleBy": null})),
        "resources": null,
        "networkSlice": null,
        "refusal": null,
    })
}

type Responder = dyn Fn(&Call) -> Reply + Send + Sync;

struct Shared {
    responder: Mutex<Arc<Responder>>,
    calls: Mutex<Vec<Call>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// While true, every request (open or new) waits before it is answered.
    held: tokio::sync::watch::Sender<bool>,
}

/// The server, serving until dropped with the test's runtime.
pub struct FakeLlm {
    /// Base URL, as `LLM_ENDPOINT` takes it.
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FakeLlm {
    pub async fn start(responder: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            responder: Mutex::new(Arc::new(responder)),
            calls: Mutex::default(),
            open: AtomicUsize::new(0),
            most_open: AtomicUsize::new(0),
            held: tokio::sync::watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LLM");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// Answers every request from now on with `responder`.
    pub fn respond(&self, responder: impl Fn(&Call) -> Reply + Send + Sync + 'static) {
        *self.shared.responder.lock().expect("responder") = Arc::new(responder);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().expect("calls").clone()
    }

    /// Holds every request, those open and those to come, unanswered until
    /// [`Self::release`]: a translator that blocks.
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Answers the held requests, and every request from now on, as the responder says.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// Requests open now (received and not yet answered).
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most requests that were open at once.
    pub fn most_open(&self) -> usize {
        self.shared.most_open.load(Ordering::SeqCst)
    }
}

async fn complete(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_open.fetch_max(open, Ordering::SeqCst);
    // Counted down however the request ends (a client that times out drops it).
    struct Closing<'a>(&'a AtomicUsize);
    impl Drop for Closing<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _closing = Closing(&shared.open);
    let call = {
        let mut calls = shared.calls.lock().expect("calls");
        let call = Call {
            index: calls.len(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            at: Instant::now(),
        };
        calls.push(call.clone());
        call
    };
    let responder = shared.responder.lock().expect("responder").clone();
    let mut reply = responder(&call);
    if let Some((ticket, admitted)) = &mut reply.gate {
        let _ = admitted.wait_for(|admitted| *admitted > *ticket).await;
    }
    let mut held = shared.held.subscribe();
    // Only fails when the server is dropped, which ends this request anyway.
    let _ = held.wait_for(|held| !*held).await;
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder()
        .status(StatusCode::from_u16(reply.status).expect("status"))
        .header("content-type", "application/json");
    if let Some(retry_after) = reply.retry_after {
        response = response.header("retry-after", retry_after);
    }
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    let body = match reply.body {
        ReplyBody::Json(value) => value.to_string().into_bytes(),
        ReplyBody::Raw(bytes) => bytes,
    };
    response.body(Body::from(body)).expect("response")
}
