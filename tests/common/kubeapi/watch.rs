//! WATCH for the test server: a chunked `application/json` response of one watch event
//! per line (`{"type":"ADDED","object":{...}}`), as the API server streams it. From a
//! resourceVersion the retained history is replayed first (or an `ERROR` event with a 410
//! `Expired` Status when that version is older than the history); without one, or with
//! `0`, the current objects come as `ADDED`. Bookmarks when `allowWatchBookmarks=true`,
//! the end after `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::selector::Selector;
use super::{status_body, EventKind, Feed, Shared, API_VERSION, KIND};

/// What a watch request asked for.
pub struct WatchRequest {
    pub namespace: Option<String>,
    pub selector: Selector,
    /// `None` for "from now, with the current objects first" (absent or `0`).
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    pub initial_events: bool,
    pub timeout: Option<Duration>,
}

impl WatchRequest {
    fn matches(&self, object: &Value) -> bool {
        let in_namespace = self
            .namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
        in_namespace && self.selector.matches(object)
    }
}

/// The streaming response; the stream is fed by a task that ends when the client goes.
pub fn respond(shared: Arc<Shared>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let _open = shared.watch_opened();
        run(&shared, request, &tx).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(resource_version: u64, initial_events_end: bool) -> Bytes {
    let mut metadata =
        json!({"resourceVersion": resource_version.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata}),
    )
}

fn expired(message: String) -> Bytes {
    line("ERROR", &status_body(410, "Expired", &message, None))
}

async fn run(
    shared: &Shared,
    request: WatchRequest,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    // Subscribing and reading the state under one lock: nothing falls between them.
    let (feed, opening, mut seen) = {
        let store = shared.lock_store();
        let feed = shared.feed.subscribe();
        let mut opening = Vec::new();
        let mut return_early = false;
        match request.resource_version {
            Some(from) if from < store.compacted => {
                // The real server answers 200, then this one event, then ends.
                opening.push(expired(format!(
                    "too old resource version: {from} ({})",
                    store.compacted
                )));
                return_early = true;
            }
            Some(from) => {
                for event in store.history.iter().filter(|e| e.rv > from) {
                    if let Some(item) = filtered(&request, event) {
                        opening.push(item);
                    }
                }
            }
            None => {
                for object in store.rendered_intents() {
                    if request.matches(&object) {
                        opening.push(line("ADDED", &object));
                    }
                }
                if request.initial_events && request.bookmarks {
                    opening.push(bookmark(store.rv, true));
                }
            }
        }
        ((!return_early).then_some(feed), opening, store.rv)
    };
    for item in opening {
        if tx.send(Ok(item)).await.is_err() {
            return;
        }
    }
    let Some(mut feed) = feed else { return };
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let next = tokio::select! {
            received = feed.recv() => received,
            () = sleep_until(deadline) => return,
            () = shared.switch.wait_for(true) => {
                let _ = tx.send(Err(std::io::Error::other("the test API server is down"))).await;
                return;
            }
            () = tx.closed() => return,
        };
        let item = match next {
            Ok(Feed::Event(event)) if event.rv > seen => {
                seen = event.rv;
                filtered(&request, &event)
            }
            Ok(Feed::Event(_)) => None,
            Ok(Feed::Bookmark(rv)) if request.bookmarks => {
                seen = seen.max(rv);
                Some(bookmark(seen, false))
            }
            Ok(Feed::Bookmark(_)) => None,
            Ok(Feed::Expire) => {
                let _ = tx
                    .send(Ok(expired(format!(
                        "too old resource version: {seen} ({})",
                        shared.lock_store().compacted
                    ))))
                    .await;
                return;
            }
            Ok(Feed::End) => return,
            // A watcher that fell this far behind is told to start over, as the API
            // server does with a slow watcher.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = tx
                    .send(Ok(expired(format!("too old resource version: {seen}"))))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(item) = item {
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The event as this watch sees it: an object that starts matching is `ADDED`, one that
/// stops matching `DELETED`.
fn filtered(request: &WatchRequest, event: &super::Event) -> Option<Bytes> {
    let now = request.matches(&event.object);
    let before = event.previous.as_ref().is_some_and(|p| request.matches(p));
    let kind = match event.kind {
        EventKind::Added if now => "ADDED",
        EventKind::Modified if now && before => "MODIFIED",
        EventKind::Modified if now => "ADDED",
        EventKind::Modified if before => "DELETED",
        EventKind::Deleted if now => "DELETED",
        _ => return None,
    };
    Some(line(kind, &event.object))
}
