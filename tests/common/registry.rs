//! A schema registry test server: the subset of the Confluent REST API that the service
//! and confluent-kafka's Python client use, held in memory, on 127.0.0.1.
//!
//! - `GET /schemas/ids/{id}`: `{"schema": ...}`, or 404 with `error_code` 40403;
//! - `POST /subjects/{subject}/versions` `{"schema": ..., "schemaType"?}`: `{"id": N}`;
//!   an identical schema keeps its id; one the subject's latest version cannot be read by
//!   (BACKWARD compatibility, the registry's default) is a 409, `error_code` 409;
//! - `GET /subjects/{subject}/versions/latest`: `{"subject", "version", "id", "schema"}`,
//!   or 404 with `error_code` 40401;
//! - `POST /compatibility/subjects/{subject}/versions/latest`: `{"is_compatible": bool}`.
//!
//! For tests: [`Registry::register`] without HTTP, [`Registry::down`]/[`Registry::up`]
//! (the port closed and every open connection cut, as with a registry that is not
//! running), a count of the requests for schemas by id, and HTTP basic authentication
//! ([`Registry::start_with_basic_auth`]: any request without the credentials is a 401).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::switched::{self, Switch, SwitchedListener};

#[derive(Default)]
struct Store {
    /// Schema text by id (ids from 1).
    schemas: Vec<String>,
    /// The ids registered under each subject, oldest first.
    subjects: HashMap<String, Vec<u32>>,
}

struct Shared {
    store: Mutex<Store>,
    by_id_requests: AtomicUsize,
    /// The `Authorization` header every request must carry, if any.
    authorization: Option<String>,
}

pub struct Registry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    switch: Arc<Switch>,
}

impl Registry {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A registry that answers only requests authenticated as `user` with `password`.
    pub async fn start_with_basic_auth(user: &str, password: &str) -> Self {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::start_with(Some(format!("Basic {token}"))).await
    }

    async fn start_with(authorization: Option<String>) -> Self {
        let listener = switched::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the schema registry test server");
        let switch = Switch::new();
        let listener =
            SwitchedListener::new(listener, switch.clone()).expect("the test server's address");
        let addr = axum::serve::Listener::local_addr(&listener).expect("address");
        let shared = Arc::new(Shared {
            store: Mutex::default(),
            by_id_requests: AtomicUsize::new(0),
            authorization,
        });
        let app = Router::new()
            .route("/schemas/ids/{id}", get(schema_by_id))
            .route("/subjects/{subject}/versions", post(register))
            .route("/subjects/{subject}/versions/latest", get(latest))
            .route(
                "/compatibility/subjects/{subject}/versions/latest",
                post(compatibility),
            )
            .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            switch,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers `schema` under `subject` as a POST would, and returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> u32 {
        match register_schema(&self.shared, subject, schema) {
            Ok(id) => id,
            Err((status, body)) => panic!("registering under {subject}: {status} {body}"),
        }
    }

    /// The schema text registered with this id.
    pub fn schema(&self, id: u32) -> Option<String> {
        let store = self.shared.store.lock().expect("registry store");
        store.schemas.get((id as usize).checked_sub(1)?).cloned()
    }

    /// The ids registered under `subject`, oldest first.
    pub fn versions(&self, subject: &str) -> Vec<u32> {
        let store = self.shared.store.lock().expect("registry store");
        store.subjects.get(subject).cloned().unwrap_or_default()
    }

    /// How many `GET /schemas/ids/{id}` requests were answered.
    pub fn by_id_requests(&self) -> usize {
        self.shared.by_id_requests.load(Ordering::SeqCst)
    }

    /// Closes the port and cuts every open connection.
    pub fn down(&self) {
        self.switch.set_down(true);
    }

    /// Listens on the same port again.
    pub fn up(&self) {
        self.switch.set_down(false);
    }
}

async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(expected) = &shared.authorization {
        let given = request.headers().get("authorization").map(|v| v.as_bytes());
        if given != Some(expected.as_bytes()) {
            return reply(error(StatusCode::UNAUTHORIZED, 401, "Unauthorized"));
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, code: u32, message: impl Into<String>) -> (StatusCode, Value) {
    (
        status,
        json!({"error_code": code, "message": message.into()}),
    )
}

fn reply((status, body): (StatusCode, Value)) -> Response {
    (
        status,
        [("content-type", "application/vnd.schemaregistry.v1+json")],
        body.to_string(),
    )
        .into_response()
}

async fn schema_by_id(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared.by_id_requests.fetch_add(1, Ordering::SeqCst);
    let store = shared.store.lock().expect("registry store");
    let found = id
        .parse::<usize>()
        .ok()
        .and_then(|id| store.schemas.get(id.checked_sub(1)?));
    reply(match found {
        Some(schema) => (StatusCode::OK, json!({"schema": schema})),
        None => error(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {id} not found"),
        ),
    })
}

async fn register(
    State(shared): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let schema = match schema_of(&body) {
        Ok(schema) => schema,
        Err(e) => return reply(e),
    };
    reply(match register_schema(&shared, &subject, &schema) {
        Ok(id) => (StatusCode::OK, json!({"id": id})),
        Err(e) => e,
    })
}

async fn latest(State(shared): State<Arc<Shared>>, Path(subject): Path<String>) -> Response {
    let store = shared.store.lock().expect("registry store");
    let Some(ids) = store.subjects.get(&subject).filter(|ids| !ids.is_empty()) else {
        return reply(error(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        ));
    };
    let id = ids[ids.len() - 1];
    reply((
        StatusCode::OK,
        json!({
            "subject": subject,
            "version": ids.len(),
            "id": id,
            "schema": store.schemas[id as usize - 1],
        }),
    ))
}

async fn compatibility(
    State(shared): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let schema = match schema_of(&body) {
        Ok(schema) => schema,
        Err(e) => return reply(e),
    };
    let store = shared.store.lock().expect("registry store");
    reply(match compatible_with_latest(&store, &subject, &schema) {
        Ok(is_compatible) => (StatusCode::OK, json!({"is_compatible": is_compatible})),
        Err(e) => e,
    })
}

/// The `schema` of a request body; only Avro is spoken here.
fn schema_of(body: &[u8]) -> Result<String, (StatusCode, Value)> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("bad JSON: {e}"),
        )
    })?;
    if let Some(kind) = request.get("schemaType").and_then(Value::as_str) {
        if kind != "AVRO" {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                42201,
                format!("this test registry speaks Avro only, not {kind}"),
            ));
        }
    }
    request
        .get("schema")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "no schema"))
}

fn parse(schema: &str) -> Result<Schema, (StatusCode, Value)> {
    Schema::parse_str(schema).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {e}"),
        )
    })
}

/// BACKWARD: a reader with the new schema reads what the latest version wrote.
fn compatible_with_latest(
    store: &Store,
    subject: &str,
    schema: &str,
) -> Result<bool, (StatusCode, Value)> {
    let new = parse(schema)?;
    let Some(&latest) = store.subjects.get(subject).and_then(|ids| ids.last()) else {
        return Ok(true);
    };
    let old = parse(&store.schemas[latest as usize - 1])?;
    Ok(SchemaCompatibility::can_read(&old, &new).is_ok())
}

fn register_schema(
    shared: &Shared,
    subject: &str,
    schema: &str,
) -> Result<u32, (StatusCode, Value)> {
    let canonical = parse(schema)?.canonical_form();
    let mut store = shared.store.lock().expect("registry store");
    let existing = store.schemas.iter().position(|known| {
        Schema::parse_str(known).is_ok_and(|known| known.canonical_form() == canonical)
    });
    if let Some(index) = existing {
        let id = index as u32 + 1;
        if store
            .subjects
            .get(subject)
            .is_some_and(|ids| ids.contains(&id))
        {
            return Ok(id);
        }
    }
    if !compatible_with_latest(&store, subject, schema)? {
        return Err(error(
            StatusCode::CONFLICT,
            409,
            "Schema being registered is incompatible with an earlier schema",
        ));
    }
    let id = match existing {
        Some(index) => index as u32 + 1,
        None => {
            store.schemas.push(schema.to_owned());
            store.schemas.len() as u32
        }
    };
    store
        .subjects
        .entry(subject.to_owned())
        .or_default()
        .push(id);
    Ok(id)
}
