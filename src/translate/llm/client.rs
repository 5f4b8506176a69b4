//! The HTTP edge of the LLM translator: one chat completion from an OpenAI-compatible
//! API (OpenAI, vLLM, Ollama, llama.cpp server), with retries.
//!
//! Only this file knows the API's wire format. It retries what may pass (connection
//! errors, timeouts, 408, 429, 5xx) with exponential backoff and jitter, waits what a
//! `Retry-After` asks within its budget (`LLM_TIMEOUT` for the whole ask, retries
//! included), stops the moment the circuit breaker opens, and gives up at once on what will not pass
//! (401, 404, ...). It asks for structured output (`response_format` with the answer's
//! JSON schema), a temperature of 0 and a token bound. Servers differ in which of these
//! they take (OpenAI's reasoning models refuse `temperature` and `max_tokens`, some
//! servers `response_format`): a parameter a server names in a 400 or 422 is dropped, at
//! once and from then on, and the request sent again without it.
//! Every HTTP attempt is counted in `llm_api_calls_total{status,model}`, the metric the
//! integration guide's `LLMAPIFailure` alert divides.
//!
//! The server is not trusted: redirects are not followed (the prompt and the key go to
//! `LLM_ENDPOINT` and nowhere else; a 3xx is a failed call naming the redirect), the key
//! is only sent over https or to a loopback host, a `Retry-After` is read with saturating
//! arithmetic and never waited past the retry budget, and what the server says in an
//! error is quoted at most [`MAX_QUOTED_CHARS`] characters, with control and bidi
//! characters escaped and the key blanked. Query strings and passwords of the endpoint
//! are redacted wherever it is shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::meters;
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use super::breaker::Breaker;
use crate::config::Secret;

/// Largest response body read; a bigger one is an error, not an unbounded buffer.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Most tokens an answer may take: an answer object is a few hundred.
const MAX_ANSWER_TOKENS: u32 = 1024;
/// Longest server message quoted in an error (an outcome, a dead-letter header, a log
/// line): enough for what went wrong, too short to carry a payload.
pub const MAX_QUOTED_CHARS: usize = 200;
/// Longest wait a `Retry-After` is read as; a longer one is beyond any retry budget anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// One chat message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system",
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user",
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant",
            content: content.into(),
        }
    }
}

/// What the model said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The message content: the answer to read.
    Answer(String),
    /// The server's own refusal (OpenAI's `refusal` field), with its text.
    Refused(String),
}

/// Why a call gave no reply. Every variant counts as a failure of the API (for the
/// circuit breaker), unlike an answer that turns out invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {url}: {problem}")]
    Unreachable { url: String, problem: String },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} sent a response that is not a chat completion: {problem}")]
    Malformed { url: String, problem: String },
    #[error(
        "{url} answered {status}, a redirect to {location}; redirects are not followed \
         (the prompt and the API key go to LLM_ENDPOINT only): point LLM_ENDPOINT at the \
         final address"
    )]
    Redirect {
        url: String,
        status: u16,
        /// Where it pointed, without query string or password.
        location: String,
    },
}

/// A client for one endpoint and model.
pub struct ChatClient {
    http: reqwest::Client,
    url: Url,
    /// The URL as errors and logs show it: without a password.
    shown_url: String,
    model: String,
    api_key: Option<Secret>,
    timeout: Duration,
    /// The answer schema for `response_format`.
    schema: Value,
    /// Which of [`OPTIONAL`] the server still gets; one is cleared when it is refused.
    optional: [AtomicBool; 3],
}

/// Why an ask gave no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The last attempt failed and there is no other (not retryable, or no time left).
    Failed(CallError),
    /// The circuit breaker was open: no call was made.
    Open,
    /// The circuit breaker opened while this ask waited or retried: cut short.
    Opened,
}

/// How an attempt ended when it did not give a reply.
enum Failed {
    /// Worth another attempt, after the server's `Retry-After` if it sent one.
    Retry(CallError, Option<Duration>),
    GiveUp(CallError),
}

impl ChatClient {
    /// `endpoint` is the API's base URL (`.../v1`); requests go to `chat/completions`
    /// under it. The whole ask, retries included, is bounded by `timeout`. With an
    /// API key the endpoint must be https or a loopback host ([`may_carry_a_key`]).
    pub fn new(
        endpoint: &str,
        model: &str,
        api_key: Option<Secret>,
        timeout: Duration,
        schema: Value,
    ) -> Result<Self, String> {
        let base = if endpoint.ends_with('/') {
            endpoint.to_string()
        } else {
            format!("{endpoint}/")
        };
        let url = Url::parse(&base)
            .and_then(|base| base.join("chat/completions"))
            .map_err(|e| format!("{} is not a URL: {e}", shown_endpoint(endpoint)))?;
        // The endpoint as given: joining drops its query string, not what it meant.
        let in_the_url = Url::parse(endpoint).is_ok_and(|given| carries_credentials(&given));
        if (api_key.is_some() || in_the_url) && !may_carry_a_key(&url) {
            return Err(format!(
                "{} is plain http to a host that is not loopback: the credentials would \
                 cross the network readable by anyone on the path; use https:// (or a \
                 loopback address for a local server)",
                redacted(&url)
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect would post the prompt (and the key) to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            shown_url: redacted(&url),
            url,
            model: model.to_string(),
            api_key,
            timeout,
            schema,
            optional: [(); 3].map(|()| AtomicBool::new(true)),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks for one completion of `messages`, retrying until `deadline`. Every attempt
    /// takes a pass from `breaker` and gives it its verdict; once the breaker is open
    /// (before an attempt, during one or between two) the ask stops at once.
    pub async fn complete(
        &self,
        messages: &[Message],
        deadline: Instant,
        breaker: &Breaker,
    ) -> Result<Reply, Stop> {
        let mut policy = ExponentialBackoff {
            initial_interval: Duration::from_millis(200),
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_interval: Duration::from_secs(10),
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut attempts = 0u32;
        loop {
            // Subscribed before the pass: an opening between the two is not missed.
            let mut opened = breaker.opened();
            let Some(pass) = breaker.try_pass() else {
                return Err(if attempts == 0 {
                    Stop::Open
                } else {
                    Stop::Opened
                });
            };
            attempts += 1;
            let result = tokio::select! {
                result = self.attempt(messages, deadline) => result,
                // The pass goes without a verdict: the calls that opened it gave theirs.
                _ = opened.changed() => return Err(Stop::Opened),
            };
            let (e, wait) = match result {
                Ok(reply) => {
                    pass.succeeded();
                    return Ok(reply);
                }
                Err(Failed::GiveUp(e)) => {
                    pass.failed();
                    return Err(Stop::Failed(e));
                }
                Err(Failed::Retry(e, wait)) => {
                    pass.failed();
                    (e, wait)
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = match wait {
                // The server's wait, if it fits; if not, the error says so.
                Some(wait) if wait >= left && !left.is_zero() => {
                    return Err(Stop::Failed(beyond_budget(e, wait, self.timeout)));
                }
                Some(wait) => wait,
                None => policy.next_backoff().unwrap_or(Duration::from_millis(200)),
            };
            if wait >= left {
                return Err(Stop::Failed(e));
            }
            warn!(model = %self.model, error = %e, retry_in = ?wait, "LLM call failed, retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = opened.changed() => return Err(Stop::Opened),
            }
        }
    }

    /// One attempt, plus an immediate re-ask for each optional parameter the server
    /// turns down (each is dropped once, so this ends).
    async fn attempt(&self, messages: &[Message], deadline: Instant) -> Result<Reply, Failed> {
        loop {
            let sent = self.optional.each_ref().map(|o| o.load(Ordering::Relaxed));
            let result = self.post(messages, sent, deadline).await;
            let refused = match &result {
                Err(Failed::GiveUp(CallError::Status {
                    status: 400 | 422,
                    message,
                    ..
                })) => (0..OPTIONAL.len()).find(|&i| sent[i] && refuses(message, OPTIONAL[i])),
                _ => None,
            };
            let Some(i) = refused else {
                return result;
            };
            self.optional[i].store(false, Ordering::Relaxed);
            if let Err(Failed::GiveUp(e)) = result {
                warn!(
                    model = %self.model, parameter = OPTIONAL[i], server_said = %e,
                    "the LLM server refuses a request parameter; sending requests without it from now on"
                );
            }
        }
    }

    async fn post(
        &self,
        messages: &[Message],
        sent: [bool; 3],
        deadline: Instant,
    ) -> Result<Reply, Failed> {
        let started = Instant::now();
        let exchange = self.exchange(messages, sent);
        let result = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failed::Retry(self.no_answer(), None)),
        };
        let status = if result.is_ok() { "success" } else { "error" };
        meters::llm_api_calls(status, self.model.clone()).increment(1);
        meters::llm_api_call_duration(self.model.clone()).record(started.elapsed().as_secs_f64());
        result
    }

    async fn exchange(&self, messages: &[Message], sent: [bool; 3]) -> Result<Reply, Failed> {
        let mut body = serde_json::json!({ "model": self.model, "messages": messages });
        let values = [
            serde_json::json!({
                "type": "json_schema",
                "json_schema": { "name": "network_intent", "strict": true, "schema": self.schema },
            }),
            // Determinism: the same text should give the same intent.
            serde_json::json!(0),
            serde_json::json!(MAX_ANSWER_TOKENS),
        ];
        for ((name, value), sent) in OPTIONAL.iter().zip(values).zip(sent) {
            if sent {
                body[*name] = value;
            }
        }
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_redirection() {
            // Not followed (the client's policy), and not read as an answer either.
            return Err(Failed::GiveUp(CallError::Redirect {
                url: self.shown_url.clone(),
                status: status.as_u16(),
                location: self.location(response.headers()),
            }));
        }
        let retry_after = retry_after(response.headers());
        let bytes = self.read_body(response).await?;
        if status.is_success() {
            return self.reply(&bytes).map_err(Failed::GiveUp);
        }
        let error = CallError::Status {
            url: self.shown_url.clone(),
            status: status.as_u16(),
            message: self.quote(&server_message(&bytes)),
        };
        if is_retryable(status) {
            Err(Failed::Retry(error, retry_after))
        } else {
            Err(Failed::GiveUp(error))
        }
    }

    /// Reads the body up to [`MAX_RESPONSE_BYTES`].
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Failed> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failed::GiveUp(self.malformed(format!(
                    "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                ))));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn reply(&self, body: &[u8]) -> Result<Reply, CallError> {
        let completion: Completion = serde_json::from_slice(body)
            .map_err(|e| self.malformed(format!("its JSON does not parse: {e}")))?;
        if let Some(usage) = completion.usage {
            for (kind, tokens) in [
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
            ] {
                if let Some(tokens) = tokens {
                    meters::llm_tokens(kind, self.model.clone()).increment(tokens);
                }
            }
        }
        let Some(choice) = completion.choices.into_iter().next() else {
            return Err(self.malformed("it has no choices"));
        };
        match (choice.message.content, choice.message.refusal) {
            (_, Some(refusal)) if !refusal.trim().is_empty() => {
                Ok(Reply::Refused(self.quote(&refusal)))
            }
            (Some(content), _) => Ok(Reply::Answer(content)),
            (None, _) => Err(self.malformed("its first choice has no content")),
        }
    }

    /// Where a redirect pointed, as it may be shown: resolved against the endpoint,
    /// without password, query string or fragment.
    fn location(&self, headers: &HeaderMap) -> String {
        let Some(value) = headers.get(LOCATION) else {
            return "nowhere (no Location header)".into();
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        match self.url.join(&text) {
            Ok(url) => self.quote(&redacted(&url)),
            Err(_) => format!("an unreadable Location ({} bytes)", value.len()),
        }
    }

    /// The error for an attempt that outlived its time.
    fn no_answer(&self) -> CallError {
        CallError::Unreachable {
            url: self.shown_url.clone(),
            problem: format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ),
        }
    }

    fn transport(&self, e: reqwest::Error) -> Failed {
        if e.is_timeout() {
            return Failed::Retry(self.no_answer(), None);
        }
        let problem = {
            // The source chain says what failed (refused connection, DNS, TLS). Without the
            // URL: it is in the error already, redacted.
            let e = e.without_url();
            let mut problem = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                problem.push_str(": ");
                problem.push_str(&inner.to_string());
                source = inner.source();
            }
            problem
        };
        Failed::Retry(
            CallError::Unreachable {
                url: self.shown_url.clone(),
                problem: self.quote(&problem),
            },
            None,
        )
    }

    fn malformed(&self, problem: impl Into<String>) -> CallError {
        CallError::Malformed {
            url: self.shown_url.clone(),
            problem: problem.into(),
        }
    }

    /// Text from the server as an error may quote it: the API key blanked should the
    /// server echo it (before shortening, so no part of it survives a cut), control and
    /// bidi characters escaped (no forged log lines, no reordered text), at most
    /// [`MAX_QUOTED_CHARS`] characters.
    fn quote(&self, text: &str) -> String {
        let text = match &self.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
            _ => text.to_string(),
        };
        quote(&text)
    }
}

/// `text` escaped and shortened to [`MAX_QUOTED_CHARS`] characters, with `…` when cut.
fn quote(text: &str) -> String {
    let mut quoted = String::new();
    let mut chars = 0;
    for c in text.chars() {
        let escaped: String = if is_unprintable(c) {
            c.escape_unicode().to_string()
        } else {
            c.to_string()
        };
        chars += escaped.chars().count();
        if chars > MAX_QUOTED_CHARS {
            quoted.push('…');
            return quoted;
        }
        quoted.push_str(&escaped);
    }
    quoted
}

/// Control characters, and the format characters that reorder or hide text.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `url` without its password and query string (`?api-key=...` is a common way to pass
/// a key), for logs and errors.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        url.set_query(Some("***"));
    }
    url.set_fragment(None);
    url.to_string()
}

/// An endpoint as it may be shown, whether or not it parses: [`redacted`], or for a
/// text that is no URL, the text without anything after `?` or `#` and without userinfo.
pub fn shown_endpoint(endpoint: &str) -> String {
    if let Ok(url) = Url::parse(endpoint) {
        return redacted(&url);
    }
    let cut = endpoint.find(['?', '#']).unwrap_or(endpoint.len());
    let mut shown = endpoint[..cut].to_string();
    if let Some(at) = shown.rfind('@') {
        let start = shown.find("//").map_or(0, |i| i + 2);
        if start <= at {
            shown.replace_range(start..=at, "***@");
        }
    }
    if cut < endpoint.len() {
        shown.push_str("?***");
    }
    quote(&shown)
}

/// Whether a request to `url` may carry the API key: over https, or to a loopback host
/// (127.0.0.0/8, ::1, `localhost`), where plain http never leaves the machine.
pub fn may_carry_a_key(url: &Url) -> bool {
    if url.scheme() == "https" {
        return true;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host is shown in brackets; an IPv4 one is already in dotted form.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Whether `url` itself holds credentials: a user or password, or a query parameter
/// named like one (`api-key`, `token`, `secret`, `password`, `auth`, `sig`).
pub fn carries_credentials(url: &Url) -> bool {
    const CREDENTIAL_WORDS: [&str; 6] = ["key", "token", "secret", "password", "auth", "sig"];
    !url.username().is_empty()
        || url.password().is_some()
        || url.query_pairs().any(|(name, _)| {
            let name = name.to_ascii_lowercase();
            CREDENTIAL_WORDS.iter().any(|word| name.contains(word))
        })
}

/// The error for a `Retry-After` the budget cannot wait for, saying so.
fn beyond_budget(e: CallError, wait: Duration, budget: Duration) -> CallError {
    match e {
        CallError::Status {
            url,
            status,
            message,
        } => CallError::Status {
            url,
            status,
            message: format!(
                "{message} (Retry-After {}, beyond the retry budget of {} (LLM_TIMEOUT): not retried)",
                humantime::format_duration(wait),
                humantime::format_duration(budget)
            ),
        },
        other => other,
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Request parameters not every server takes, in the order of [`ChatClient::optional`].
const OPTIONAL: [&str; 3] = ["response_format", "temperature", "max_tokens"];

/// Whether a 400 or 422 `message` turns down `parameter`: it names the parameter (or,
/// for `response_format`, JSON schemas).
fn refuses(message: &str, parameter: &str) -> bool {
    let message = message.to_ascii_lowercase();
    let terms: &[&str] = match parameter {
        "response_format" => &[
            "response_format",
            "response format",
            "json_schema",
            "json schema",
        ],
        other => &[other],
    };
    terms.iter().any(|term| message.contains(term))
}

/// `Retry-After` as seconds or as an HTTP date, at most [`MAX_RETRY_AFTER`]: a number too
/// large for any integer or a date centuries away is read as that bound (beyond any
/// budget, so not waited for), a date in the past as no wait.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

/// The server's error text: OpenAI's `{"error": {"message": ...}}`, a plain
/// `{"error": "..."}`, or the body itself.
fn server_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let message = match &value["error"] {
            Value::Object(error) => error.get("message").and_then(Value::as_str),
            Value::String(error) => Some(error.as_str()),
            _ => value["message"].as_str(),
        };
        if let Some(message) = message {
            return message.to_string();
        }
    }
    String::from_utf8_lossy(body).trim().to_string()
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn server_messages_are_found_in_the_usual_shapes() {
        assert_eq!(
            server_message(br#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(server_message(br#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(server_message(b" upstream down \n"), "upstream down");
    }

    #[test]
    fn which_statuses_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                is_retryable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(
                !is_retryable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }

    #[test]
    fn refused_parameters_are_recognised() {
        let refuses_format = |m| refuses(m, "response_format");
        assert!(refuses_format(
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported"
        ));
        assert!(refuses_format("unknown field JSON_SCHEMA"));
        assert!(!refuses_format("model not found"));
        let openai = "Unsupported parameter: 'max_tokens' is not supported with this model. \
                      Use 'max_completion_tokens' instead.";
        assert!(refuses(openai, "max_tokens"));
        assert!(!refuses(openai, "temperature"));
        assert!(refuses(
            "Unsupported value: 'temperature' does not support 0",
            "temperature"
        ));
    }

    #[test]
    fn quotes_are_short_and_never_hold_the_key() {
        let client = ChatClient::new(
            "http://127.0.0.1:1/v1",
            "m",
            Some(Secret::new("sk-secret")),
            Duration::from_secs(1),
            Value::Null,
        )
        .unwrap();
        assert_eq!(
            client.url.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert_eq!(client.quote("bad key sk-secret"), "bad key ***");
        assert!(client.quote(&"x".repeat(1000)).chars().count() <= MAX_QUOTED_CHARS + 1);
        // A key straddling the cut leaves no prefix of itself behind.
        let straddling = format!("{}sk-secret", "x".repeat(MAX_QUOTED_CHARS - 4));
        assert!(!client.quote(&straddling).contains("sk-"));
    }

    #[test]
    fn quotes_escape_control_and_bidi_characters() {
        let quoted = quote("line\n2024-01-01 INFO forged\u{1b}[31m \u{202E}txt.exe");
        assert!(
            !quoted.contains('\n') && !quoted.contains('\u{1b}') && !quoted.contains('\u{202E}')
        );
        assert!(
            quoted.contains("\\u{a}") && quoted.contains("\\u{202e}"),
            "{quoted}"
        );
        // Escapes count towards the bound.
        let quoted = quote(&"\u{0}".repeat(1000));
        assert!(quoted.chars().count() <= MAX_QUOTED_CHARS + 1, "{quoted}");
    }

    #[test]
    fn a_huge_or_distant_retry_after_is_read_as_the_bound() {
        let mut headers = HeaderMap::new();
        for huge in ["18446744073709551615", "99999999999999999999999999"] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(huge));
            assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER), "{huge}");
        }
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 31 Dec 9999 23:59:59 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
        // And the budget check cannot overflow whatever the wait.
        let waited = Duration::from_secs(5).saturating_add(Duration::MAX);
        assert_eq!(waited, Duration::MAX);
        let message = beyond_budget(
            CallError::Status {
                url: "u".into(),
                status: 429,
                message: "quota".into(),
            },
            MAX_RETRY_AFTER,
            Duration::from_secs(4),
        )
        .to_string();
        assert!(
            message.contains("beyond the retry budget of 4s"),
            "{message}"
        );
    }

    #[test]
    fn passwords_and_query_strings_are_redacted() {
        let url = Url::parse("https://user:pw@llm.example/v1?api-key=sk-1&x=2#frag").unwrap();
        let shown = redacted(&url);
        assert_eq!(shown, "https://user:***@llm.example/v1?***");
        for text in [
            "https://llm.example/v1?api-key=sk-1",
            "not a url?api-key=sk-1",
            "http://u:sk-1@[bad/v1",
        ] {
            let shown = shown_endpoint(text);
            assert!(!shown.contains("sk-1"), "{text}: {shown}");
        }
    }

    #[test]
    fn a_key_goes_only_over_https_or_to_loopback() {
        let may = |u: &str| may_carry_a_key(&Url::parse(u).unwrap());
        for ok in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:8000/v1",
            "http://127.8.9.10/v1",
            "http://localhost:11434/v1",
            "http://LOCALHOST/v1",
            "http://[::1]:8000/v1",
            "http://[::ffff:127.0.0.1]/v1",
        ] {
            assert!(may(ok), "{ok}");
        }
        for refused in [
            "http://llm:8000/v1",
            "http://10.0.0.1/v1",
            "http://localhost.evil.example/v1",
            "http://128.0.0.1/v1",
            "http://[::2]/v1",
            "http://0.0.0.0/v1",
        ] {
            assert!(!may(refused), "{refused}");
        }
        let err = ChatClient::new(
            "http://llm.internal:8000/v1?api-key=sk-q",
            "m",
            Some(Secret::new("sk-secret")),
            Duration::from_secs(1),
            Value::Null,
        )
        .err()
        .unwrap();
        assert!(err.contains("https") && !err.contains("sk-q"), "{err}");
        for in_the_url in [
            "http://user:pw@llm.internal/v1",
            "http://llm.internal/v1?api-key=sk-q",
            "http://llm.internal/v1?access_token=t",
        ] {
            let url = Url::parse(in_the_url).unwrap();
            assert!(carries_credentials(&url), "{in_the_url}");
            let refused =
                ChatClient::new(in_the_url, "m", None, Duration::from_secs(1), Value::Null);
            assert!(refused.is_err(), "{in_the_url}");
        }
        let harmless = Url::parse("http://llm.internal/v1?api-version=2024-02-01").unwrap();
        assert!(!carries_credentials(&harmless));
        let without_key = ChatClient::new(
            "http://llm.internal:8000/v1",
            "m",
            None,
            Duration::from_secs(1),
            Value::Null,
        );
        assert!(without_key.is_ok());
    }
}
