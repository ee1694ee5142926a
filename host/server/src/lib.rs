//! The HTTP API (SPEC 12): versioned JSON routes over a [`Host`], errors as
//! `{"kind", "message"}` with the right status, a bearer token when one is
//! configured, Prometheus metrics and a liveness probe. `openapi.json`
//! beside this crate's manifest documents every route in [`ROUTES`] (a test
//! keeps the two equal) and is served at `GET /v1/openapi.json`.
//!
//! Every body is a type of `wasmflow-api`, the API's wire model: requests
//! parse into its request types, answers are built from its views by the
//! mappings from the host's domain types below ([`run_view`],
//! [`types_view`], ...).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use wasmflow_api as api;
use wasmflow_host::{
    Deployed, Error, ErrorKind, HandlerSpec, HistoryRecord, Host, InboxEntry, InboxKind,
    LiveVersion, Origin, PluginFile, Plugins, RunFilter, RunId, RunRecord, RunStatus, RunTree,
    StartOptions, StorageError, UpgradeReport, WorkflowError, json_value,
};

/// Every route, as `(method, path)`; `openapi.json` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/workflows"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/{id}"),
    ("GET", "/v1/workflows/{id}/result"),
    ("POST", "/v1/workflows/{id}/events"),
    ("GET", "/v1/workflows/{id}/history"),
    ("GET", "/v1/workflows/{id}/tree"),
    ("GET", "/v1/workflows/{id}/store"),
    ("GET", "/v1/workflows/{id}/inbox"),
    ("POST", "/v1/workflows/{id}/cancel"),
    ("POST", "/v1/workflows/{id}/terminate"),
    ("POST", "/v1/workflows/{id}/retry"),
    ("POST", "/v1/workflows/{id}/queries/{name}"),
    ("GET", "/v1/runs/{run_id}"),
    ("GET", "/v1/types"),
    ("POST", "/v1/types/{type}/upgrade"),
    ("POST", "/v1/plugins"),
    ("GET", "/v1/plugins"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
];

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The longest a result request may wait (`wait_ms`).
const MAX_WAIT: Duration = Duration::from_millis(api::MAX_WAIT_MS);

/// The longest workflow timeout a start may ask for (`timeout_ms`): ten
/// years, the host's own bound.
pub const MAX_TIMEOUT_MS: u64 = wasmflow_host::defaults::MAX_WORKFLOW_TIMEOUT.as_millis() as u64;

/// The longest request target (path and query) the API reads, in bytes;
/// longer is a 414.
pub const MAX_URI_BYTES: usize = 8 << 10;

/// The settings of the HTTP server (`wasmflow serve`'s flags), with their
/// defaults. [`ServerConfig::check`] refuses a value out of range, naming
/// the setting; [`serve_with`] checks before it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The bearer token every route requires (none: no token).
    pub token: Option<String>,
    /// How long a client has to send a request's head (the request line
    /// and headers), counted from when the server starts reading it, on a
    /// new or a kept-alive connection; then the connection is closed.
    pub header_timeout: Duration,
    /// How long a client has to send a request's whole body, counted once
    /// its head is read; then it gets a 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Connections served at once; more wait to be accepted until one
    /// closes.
    pub max_connections: usize,
    /// The largest request body, in bytes; larger is a 413.
    pub max_request_bytes: usize,
    /// The largest body of `POST /v1/plugins` (a component), in bytes;
    /// larger is a 413.
    pub max_plugin_bytes: usize,
}

impl ServerConfig {
    /// Default of [`ServerConfig::header_timeout`].
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ServerConfig::body_timeout`].
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default of [`ServerConfig::max_connections`].
    pub const MAX_CONNECTIONS: usize = 256;
    /// Default of [`ServerConfig::max_request_bytes`].
    pub const MAX_REQUEST_BYTES: usize = 2 << 20;
    /// Default of [`ServerConfig::max_plugin_bytes`]: 64 MiB.
    pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

    /// Every setting at its default, no token.
    pub fn new() -> Self {
        ServerConfig {
            token: None,
            header_timeout: Self::HEADER_TIMEOUT,
            body_timeout: Self::BODY_TIMEOUT,
            max_connections: Self::MAX_CONNECTIONS,
            max_request_bytes: Self::MAX_REQUEST_BYTES,
            max_plugin_bytes: Self::MAX_PLUGIN_BYTES,
        }
    }

    /// Refuse a setting out of range: an empty token (or one with
    /// whitespace or control characters, which no header can carry), a
    /// timeout of zero or over an hour, no connections or more than a
    /// million, a request body (or plugin) limit under 1 KiB or over 1 GiB.
    pub fn check(&self) -> Result<(), ServeError> {
        let invalid = |setting: &'static str, reason: String| {
            Err(ServeError::InvalidSetting { setting, reason })
        };
        if let Some(token) = &self.token {
            if token.is_empty() {
                return invalid(
                    "token",
                    "it is empty; set a secret, or no token at all to serve on loopback without one"
                        .into(),
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid(
                    "token",
                    "it contains whitespace or a control character".into(),
                );
            }
        }
        let hour = Duration::from_secs(3600);
        for (setting, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if value < Duration::from_millis(1) || value > hour {
                return invalid(setting, format!("{value:?} is not between 1 ms and 1 hour"));
            }
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return invalid(
                "max_connections",
                format!("{} is not between 1 and 1000000", self.max_connections),
            );
        }
        for (setting, value) in [
            ("max_request_bytes", self.max_request_bytes),
            ("max_plugin_bytes", self.max_plugin_bytes),
        ] {
            if !(1 << 10..=1 << 30).contains(&value) {
                return invalid(
                    setting,
                    format!("{value} is not between 1024 (1 KiB) and 1073741824 (1 GiB)"),
                );
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A setting is out of range; nothing was served.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidSetting {
        setting: &'static str,
        reason: String,
    },
}

#[derive(Clone)]
struct Api {
    host: Arc<Host>,
    token: Option<Arc<str>>,
    stopping: CancellationToken,
}

/// The limits the middleware applies to every request.
#[derive(Clone, Copy)]
struct Limits {
    body_timeout: Duration,
    max_request_bytes: usize,
    max_plugin_bytes: usize,
}

/// The API's router over `host`, with `config`'s token and request limits
/// (not checked: see [`ServerConfig::check`]). With a token, every route
/// requires `Authorization: Bearer <token>`. Long polls end when
/// `stopping` is cancelled. Every error answer, the router's own (unknown
/// route, wrong method, malformed query string, ...) included, is
/// `{"kind", "message"}`.
pub fn router(host: Arc<Host>, config: &ServerConfig, stopping: CancellationToken) -> Router {
    let api = Api {
        host,
        token: config.token.as_deref().map(Arc::from),
        stopping,
    };
    let limits = Limits {
        body_timeout: config.body_timeout,
        max_request_bytes: config.max_request_bytes,
        max_plugin_bytes: config.max_plugin_bytes,
    };
    Router::new()
        .route("/v1/workflows", post(start).get(list))
        .route("/v1/workflows/{id}", get(status))
        .route("/v1/workflows/{id}/result", get(result))
        .route("/v1/workflows/{id}/events", post(send))
        .route("/v1/workflows/{id}/history", get(history))
        .route("/v1/workflows/{id}/tree", get(tree))
        .route("/v1/workflows/{id}/store", get(store))
        .route("/v1/workflows/{id}/inbox", get(inbox))
        .route("/v1/workflows/{id}/cancel", post(cancel))
        .route("/v1/workflows/{id}/retry", post(retry))
        .route("/v1/workflows/{id}/terminate", post(terminate))
        .route("/v1/workflows/{id}/queries/{name}", post(query))
        .route("/v1/runs/{run_id}", get(run_by_id))
        .route("/v1/types", get(types))
        .route("/v1/types/{type}/upgrade", post(upgrade))
        .route("/v1/plugins", post(deploy).get(plugins))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        // The body is read (bounded in size and time) by `read_body`.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(limits, read_body))
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .layer(middleware::from_fn(edge))
        .with_state(api)
}

/// The API's routes ([`router`]) and the web UI's at `/ui`
/// (`wasmflow-ui`), which calls them in-process with the same token.
pub fn app(host: Arc<Host>, config: &ServerConfig, stopping: CancellationToken) -> Router {
    let api = router(host, config, stopping.clone());
    let ui = wasmflow_ui::router(
        api.clone(),
        wasmflow_ui::UiConfig {
            token: config.token.clone(),
            stopping,
        },
    );
    ui.merge(api)
}

/// Serve the API over `host` on `listener` with the default settings and
/// `token`, until `stopping` is cancelled; see [`serve_with`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    host: Arc<Host>,
    token: Option<String>,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    let config = ServerConfig {
        token,
        ..ServerConfig::new()
    };
    serve_with(listener, host, config, stopping)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Serve the API over `host` on `listener` with `config` (checked first)
/// until `stopping` is cancelled (long polls end then too), then finish
/// the requests in flight.
///
/// HTTP/1.1 with hyper: a connection must send each request head within
/// `header_timeout` (an idle kept-alive connection is closed after it too);
/// at most `max_connections` are served at once, the others wait in the
/// listen backlog until one closes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    host: Arc<Host>,
    config: ServerConfig,
    stopping: CancellationToken,
) -> Result<(), ServeError> {
    config.check()?;
    let app = app(host, &config, stopping.clone());
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    loop {
        // A slot first: beyond the limit, connections are not accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopping.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = stopping.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection reset before it was accepted is the client's business;
/// anything else (out of file descriptors, say) is logged, and accepting
/// pauses for a second so the host does not spin on it.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// An error response: `{"kind", "message"}` and its status.
struct ApiError {
    status: StatusCode,
    kind: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }

    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidPayload", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api::ErrorBody {
            kind: self.kind,
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Rejected(w) => {
                let status = match w.kind {
                    ErrorKind::UnknownWorkflowType | ErrorKind::UnknownQuery => {
                        StatusCode::NOT_FOUND
                    }
                    ErrorKind::WorkflowAlreadyRunning => StatusCode::CONFLICT,
                    ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, w.kind.as_str(), w.message)
            }
            Error::RunNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "RunNotFound", message),
            Error::RunTerminal { .. } => {
                ApiError::new(StatusCode::CONFLICT, "RunTerminal", message)
            }
            Error::QueryFailed(w) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w.kind.as_str(), w.message)
            }
            Error::NotRetryable(reason) => {
                let status = match reason {
                    wasmflow_host::NotRetryable::NotFound(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(status, "NotRetryable", message)
            }
            Error::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown", message)
            }
            Error::PluginRejected { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "PluginRejected", message)
            }
            Error::NoPluginsDir => {
                ApiError::new(StatusCode::CONFLICT, "NoPluginsDirectory", message)
            }
            Error::UnknownVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "UnknownVersion", message)
            }
            Error::AmbiguousVersion { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "AmbiguousVersion", message)
            }
            Error::VersionWithoutType { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "VersionWithoutType", message)
            }
            // Nothing of the request was applied (or, for a commit whose
            // answer was lost, the run's sequence guard settles it): the
            // client tries again once the database is back.
            Error::Storage(e) if e.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DatabaseUnavailable",
                with_causes(&e),
            ),
            other => {
                let message = with_causes(&other);
                tracing::error!(error = %message, "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message)
            }
        }
    }
}

/// `error: cause: cause ...`, the whole chain on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        Error::Rejected(e).into()
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        // Constant time: how much of a guess matches does not show.
        let valid = presented.is_some_and(|p| bool::from(p.ct_eq(token.as_bytes())));
        if !valid {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this host requires `Authorization: Bearer <token>`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route")
}

/// The edge of every request: a request target over [`MAX_URI_BYTES`] is
/// a 414; an error answer that is not the API's JSON yet (the router's
/// own: wrong method, malformed query string or path, ...) becomes
/// `{"kind", "message"}` with its status.
async fn edge(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "UriTooLong",
            format!("the request target is {target} bytes long; at most {MAX_URI_BYTES} are read"),
        )
        .into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status().is_success() || response.status().is_informational() {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || response.status().is_redirection() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 << 10).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let status = parts.status;
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        // (The router adds its `Allow` header after this layer.)
        let allowed: Vec<&str> = ROUTES
            .iter()
            .filter(|(_, route)| route_matches(route, &path))
            .map(|(m, _)| *m)
            .collect();
        format!(
            "{method} is not allowed on {path}; allowed: {}",
            allowed.join(", ")
        )
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let error = ApiError::new(status, kind_of(status), message).into_response();
    let (error_parts, error_body) = error.into_parts();
    // Keep the router's headers (`Allow`, say), with the JSON's type and
    // length.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(error_parts.headers);
    Response::from_parts(parts, error_body)
}

/// Whether `path` is an instance of the route pattern `route` (`{id}`
/// matches one segment).
fn route_matches(route: &str, path: &str) -> bool {
    let (mut r, mut p) = (route.split('/'), path.split('/'));
    loop {
        match (r.next(), p.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if r == p || (r.starts_with('{') && !p.is_empty()) => {}
            _ => return false,
        }
    }
}

/// The error kind of a status the router answers by itself.
fn kind_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "InvalidPayload",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::URI_TOO_LONG => "UriTooLong",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::SERVICE_UNAVAILABLE => "ShuttingDown",
        _ => "Internal",
    }
}

/// Read the whole request body before the handler runs: at most
/// `max_request_bytes` (413; a declared `Content-Length` over it is refused
/// before reading) within `body_timeout` of the head (408). Both close the
/// connection: what is left of the body is not read.
async fn read_body(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // A component is larger than any JSON request: its own limit.
    let (limit, setting) =
        if parts.method == axum::http::Method::POST && parts.uri.path() == "/v1/plugins" {
            (limits.max_plugin_bytes, "max_plugin_bytes")
        } else {
            (limits.max_request_bytes, "max_request_bytes")
        };
    let too_large = || {
        closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than {limit} bytes (`{setting}`)"),
        ))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let reading = Limited::new(body, limit).collect();
    let bytes = match tokio::time::timeout(limits.body_timeout, reading).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            return closing(ApiError::bad_input(format!(
                "the request body could not be read: {e}"
            )));
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                format!(
                    "the request body did not arrive within {} ms (`body_timeout`)",
                    limits.body_timeout.as_millis()
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An error answer after which the connection closes.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A JSON request body (empty: `{}`); an error names the field that is
/// wrong, when it is a field.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let text = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let e = e.into_inner();
        match path.as_str() {
            "" | "." => ApiError::bad_input(format!("the request body: {e}")),
            _ => ApiError::bad_input(format!("the request body: `{path}`: {e}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_input(format!("the request body: {e}")))?;
    Ok(value)
}

fn run_id(text: Option<&str>) -> ApiResult<Option<RunId>> {
    text.map(|t| {
        t.parse()
            .map_err(|e| ApiError::bad_input(format!("`run_id` `{t}` is not a run id: {e}")))
    })
    .transpose()
}

/// A run as the API shows it.
pub fn run_view(run: &RunRecord) -> Result<api::RunView, Error> {
    Ok(api::RunView {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.to_string(),
        workflow_type: run.workflow_type.clone(),
        status: run.status,
        version: run.version.clone(),
        parent: run.parent_run_id.map(|p| p.to_string()),
        result: result_value(run)?,
        error: run.error.as_ref().map(error_view),
        timer_due_ms: run.timer.as_ref().map(|t| t.due_ms),
        deadline_ms: run.deadline_ms,
        cancel_requested: run.cancel_requested.clone(),
        created_ms: run.created_ms,
        updated_ms: run.updated_ms,
        current: match (run.status, &run.pending) {
            (RunStatus::Running, Some(pending)) => Some(api::CurrentActivation {
                kind: pending.kind,
                handler: pending.handler.clone(),
                since_ms: run.updated_ms,
            }),
            _ => None,
        },
    })
}

/// A run's result as a value; a stored result that does not read back is
/// corrupt data, reported as such.
fn result_value(run: &RunRecord) -> Result<Option<serde_json::Value>, Error> {
    run.result
        .as_ref()
        .map(json_value)
        .transpose()
        .map_err(|e| {
            Error::Storage(StorageError::Corrupt(format!(
                "the result of run `{}`: {}",
                run.run_id, e.message
            )))
        })
}

/// Why a run ended without a result.
pub fn error_view(error: &WorkflowError) -> api::RunError {
    api::RunError {
        kind: error.kind.as_str().to_owned(),
        message: error.message.clone(),
        details: error.details.clone(),
    }
}

/// A run and its children, recursively.
pub fn tree_view(tree: &RunTree) -> Result<api::TreeView, Error> {
    Ok(api::TreeView {
        run: run_view(&tree.run)?,
        children: tree
            .children
            .iter()
            .map(tree_view)
            .collect::<Result<_, _>>()?,
    })
}

/// The result view of a run.
pub fn result_view(run: &RunRecord) -> Result<api::ResultView, Error> {
    Ok(api::ResultView {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.to_string(),
        status: run.status,
        result: result_value(run)?,
        error: run.error.as_ref().map(error_view),
    })
}

/// One history entry: the event's `type` tag and fields as the host
/// serialises them, beside the entry's id and time.
pub fn history_entry(record: &HistoryRecord) -> api::HistoryEntry {
    let mut details = match serde_json::to_value(&record.event) {
        Ok(serde_json::Value::Object(map)) => map,
        // An event always serialises to an object with its `type` tag.
        _ => serde_json::Map::new(),
    };
    let event_type = match details.remove("type") {
        Some(serde_json::Value::String(t)) => t,
        _ => record.event.kind().to_owned(),
    };
    api::HistoryEntry {
        id: record.id,
        at_ms: record.at_ms,
        event_type,
        details,
    }
}

async fn start(State(api): State<Api>, bytes: Bytes) -> ApiResult {
    let req: api::StartRequest = body(&bytes)?;
    let mut options = StartOptions::new();
    if let Some(id) = req.id {
        options = options.workflow_id(id);
    }
    if let Some(ms) = req.timeout_ms {
        if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
            return Err(ApiError::bad_input(format!(
                "`timeout_ms` must be 1 to {MAX_TIMEOUT_MS} (ten years), not {ms}"
            )));
        }
        options = options.timeout(Duration::from_millis(ms));
    }
    match req.on_conflict.unwrap_or_default() {
        api::OnConflict::Error => {}
        api::OnConflict::ReturnExisting => options = options.return_existing(),
    }
    if let Some(version) = req.version {
        options = options.version(version);
    }
    // Checked before the start: a bad wait stores no run.
    let wait = req.wait_ms.map(wait_ms).transpose()?;
    let input = match req.input {
        Some(input) => input.to_string(),
        None => "{}".to_owned(),
    };
    let started = api.host.start(&req.workflow_type, &input, options).await?;
    let status = if started.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let outcome = match wait {
        None => None,
        Some(wait) => {
            // The run is durable already: a stop answers with it as it is.
            let run = tokio::select! {
                done = api.host.wait_for(started.run_id, wait) => done?,
                _ = api.stopping.cancelled() => api.host.run(started.run_id).await?,
            };
            Some(result_view(&run)?)
        }
    };
    let body = api::Started {
        workflow_id: started.workflow_id,
        run_id: started.run_id.to_string(),
        existing: started.existing,
        outcome,
    };
    Ok((status, axum::Json(body)).into_response())
}

/// A `wait_ms` of a request: 1 to [`api::MAX_WAIT_MS`].
fn wait_ms(ms: u64) -> ApiResult<Duration> {
    if (1..=api::MAX_WAIT_MS).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(ApiError::bad_input(format!(
            "`wait_ms` must be 1 to {} (leave it out to answer at once), not {ms}",
            MAX_WAIT.as_millis()
        )))
    }
}

async fn list(State(api): State<Api>, Query(q): Query<api::ListQuery>) -> ApiResult {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_input(e.to_string()))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(api::DEFAULT_LIST_LIMIT);
    if !(1..=api::MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_input(format!(
            "`limit` must be 1 to {}, not {limit}",
            api::MAX_LIST_LIMIT
        )));
    }
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let filter = RunFilter {
        workflow_type: q.workflow_type,
        status,
        id_prefix: q.id_prefix.filter(|p| !p.is_empty()),
    };
    // One more than asked: whether there is a next page.
    let mut runs = api.host.list(filter, after, limit + 1).await?;
    let next = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(cursor)
    } else {
        None
    };
    let runs = api::RunList {
        runs: runs.iter().map(run_view).collect::<Result<_, _>>()?,
        next,
    };
    Ok(axum::Json(runs).into_response())
}

/// The cursor of the page after `run`: its creation time and run id.
fn cursor(run: &RunRecord) -> String {
    format!("{}.{}", run.created_ms, run.run_id)
}

fn parse_cursor(text: &str) -> ApiResult<(u64, RunId)> {
    let parsed = text
        .split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.parse().ok()?)));
    parsed.ok_or_else(|| {
        let shown: String = text.chars().take(80).collect();
        ApiError::bad_input(format!(
            "`cursor` {shown:?} is not a cursor this API gave (the `next` of a listing)"
        ))
    })
}

async fn status(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    Ok(axum::Json(run_view(&run)?).into_response())
}

async fn result(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let wait = q
        .wait_ms
        .map(wait_ms)
        .transpose()?
        .unwrap_or(Duration::ZERO);
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let run = if run.status.is_terminal() || wait.is_zero() {
        run
    } else {
        tokio::select! {
            done = api.host.wait_for(run.run_id, wait) => done?,
            _ = api.stopping.cancelled() => return Err(Error::ShuttingDown.into()),
        }
    };
    let body = result_view(&run)?;
    // 200 once the run ended; 202 while it has not (yet).
    let status = if run.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(body)).into_response())
}

async fn send(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::SendEvent = body(&bytes)?;
    let payload = req.payload.map(|p| p.to_string()).unwrap_or_default();
    let run_id = api.host.send(&id, &req.name, &payload).await?;
    let body = api::EventAccepted {
        workflow_id: id,
        run_id: run_id.to_string(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

async fn history(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let events = api.host.history(run.run_id).await?;
    let body = api::HistoryView {
        workflow_id: run.workflow_id,
        run_id: run.run_id.to_string(),
        events: events.iter().map(history_entry).collect(),
    };
    Ok(axum::Json(body).into_response())
}

async fn store(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let store = api.host.store(run.run_id).await?;
    let body = api::StoreView {
        workflow_id: run.workflow_id,
        run_id: run.run_id.to_string(),
        store: store.into_iter().collect(),
    };
    Ok(axum::Json(body).into_response())
}

async fn inbox(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let entries = api.host.inbox(run.run_id).await?;
    let body = api::InboxView {
        workflow_id: run.workflow_id,
        run_id: run.run_id.to_string(),
        entries: entries.iter().map(inbox_entry).collect::<Result<_, _>>()?,
    };
    Ok(axum::Json(body).into_response())
}

/// An inbox entry as the API shows it.
pub fn inbox_entry(entry: &InboxEntry) -> Result<api::InboxEntryView, Error> {
    Ok(api::InboxEntryView {
        id: entry.id,
        name: entry.name.clone(),
        payload: json_value(&entry.payload).map_err(|e| StorageError::Corrupt(e.message))?,
        kind: match entry.kind {
            InboxKind::Event => api::InboxEntryKind::Event,
            InboxKind::Notice => api::InboxEntryKind::Notice,
        },
    })
}

async fn run_by_id(State(api): State<Api>, Path(text): Path<String>) -> ApiResult {
    let Some(id) = run_id(Some(&text))? else {
        return Err(ApiError::bad_input("a run id is required"));
    };
    let run = api.host.run(id).await?;
    Ok(axum::Json(run_view(&run)?).into_response())
}

async fn tree(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let tree = api.host.tree(run.run_id).await?;
    Ok(axum::Json(tree_view(&tree)?).into_response())
}

async fn cancel(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::CancelRequest = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    let run_id = api.host.cancel(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_view(&run)?).into_response())
}

async fn terminate(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::TerminateRequest = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "terminated through the API".into());
    let run_id = api.host.terminate(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_view(&run)?).into_response())
}

async fn retry(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::RetryRequest = body(&bytes)?;
    let (run_id, _) = api.host.retry(&id, req.upgrade).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_view(&run)?).into_response())
}

async fn query(
    State(api): State<Api>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let req: api::QueryRequest = body(&bytes)?;
    let run = api
        .host
        .find_run(&id, run_id(req.run_id.as_deref())?)
        .await?;
    let args = req.args.map(|a| a.to_string()).unwrap_or_default();
    let value = api.host.query(run.run_id, &name, &args).await?;
    let body = api::QueryAnswer {
        workflow_id: id,
        run_id: run.run_id.to_string(),
        result: value,
    };
    Ok(axum::Json(body).into_response())
}

async fn types(State(api): State<Api>) -> ApiResult {
    let plugins = api.host.plugins();
    let live = api.host.live_versions().await?;
    Ok(axum::Json(types_view(&plugins, &live)).into_response())
}

/// `GET /v1/types` (and `wasmflow types --json`): each type with its
/// version, file, handlers and the versions live runs hold; rejected files
/// with their reasons.
pub fn types_view(plugins: &Plugins, live: &[LiveVersion]) -> api::TypesView {
    let types = plugins
        .types()
        .into_iter()
        .map(|(name, entry)| api::TypeView {
            name: name.to_owned(),
            version: entry.component.hash.clone(),
            file: entry.file.display().to_string(),
            handlers: entry.spec.handlers.iter().map(handler_view).collect(),
            in_flight: live
                .iter()
                .filter(|l| l.workflow_type == name)
                .map(|l| api::InFlight {
                    version: l.version.clone(),
                    runs: l.runs,
                })
                .collect(),
        })
        .collect();
    let rejected = plugins
        .rejected()
        .iter()
        .map(|r| api::RejectedPlugin {
            file: r.file.display().to_string(),
            reason: r.reason.clone(),
        })
        .collect();
    api::TypesView { types, rejected }
}

/// A handler as `describe` reported it.
pub fn handler_view(handler: &HandlerSpec) -> api::HandlerView {
    api::HandlerView {
        name: handler.name.clone(),
        kind: handler.kind,
        params: handler
            .params
            .iter()
            .map(|p| api::ParamView {
                name: p.name.clone(),
                optional: p.optional,
                type_: p.type_summary().to_owned(),
            })
            .collect(),
        timeout: handler
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// What an upgrade moved and what it left pinned.
pub fn upgrade_view(report: &UpgradeReport) -> api::UpgradeView {
    api::UpgradeView {
        workflow_type: report.workflow_type.clone(),
        version: report.version.clone(),
        upgraded: report.upgraded.iter().map(ToString::to_string).collect(),
        pinned: report
            .pinned
            .iter()
            .map(|p| api::PinnedView {
                run_id: p.run_id.to_string(),
                version: p.version.clone(),
                reason: p.reason.clone(),
            })
            .collect(),
    }
}

async fn upgrade(State(api): State<Api>, Path(workflow_type): Path<String>) -> ApiResult {
    let report = api.host.upgrade(&workflow_type).await?;
    Ok(axum::Json(upgrade_view(&report)).into_response())
}

/// `POST /v1/plugins?name=FILE.wasm`, the body a component.
async fn deploy(
    State(api): State<Api>,
    Query(q): Query<api::DeployQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("a plugin is sent as `Content-Type: application/wasm`, not `{content_type}`"),
        ));
    }
    let name = q.name.ok_or_else(|| {
        ApiError::bad_input(
            "`name` is missing: the plugin file's name, e.g. `?name=order-payment.wasm`",
        )
    })?;
    let deployed = api.host.deploy(&name, bytes.to_vec()).await?;
    let status = if deployed.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(deployed_view(&deployed))).into_response())
}

/// `GET /v1/plugins`.
async fn plugins(State(api): State<Api>) -> ApiResult {
    Ok(axum::Json(plugins_view(&api.host.plugins())).into_response())
}

fn origin_view(origin: Origin) -> api::PluginOrigin {
    match origin {
        Origin::Directory => api::PluginOrigin::Directory,
        Origin::Api => api::PluginOrigin::Api,
        Origin::Fleet => api::PluginOrigin::Fleet,
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A plugin file as the API shows it.
pub fn plugin_view(file: &PluginFile) -> api::PluginView {
    api::PluginView {
        file: file_name(&file.file),
        version: file.component.hash.clone(),
        types: file
            .component
            .types
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        origin: origin_view(file.origin),
        since_ms: file.since_ms,
    }
}

/// `GET /v1/plugins` (and `wasmflow plugins --json`).
pub fn plugins_view(plugins: &Plugins) -> api::PluginsView {
    api::PluginsView {
        plugins: plugins.plugin_files().iter().map(plugin_view).collect(),
        rejected: plugins
            .rejected()
            .iter()
            .map(|r| api::RejectedPlugin {
                file: r.file.display().to_string(),
                reason: r.reason.clone(),
            })
            .collect(),
    }
}

/// What a deployment did.
pub fn deployed_view(deployed: &Deployed) -> api::DeployedView {
    api::DeployedView {
        plugin: api::PluginView {
            file: file_name(&deployed.file),
            version: deployed.component.hash.clone(),
            types: deployed
                .component
                .types
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            origin: origin_view(deployed.origin),
            since_ms: deployed.since_ms,
        },
        changed: deployed.changed,
        previous_version: deployed.previous.clone(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(api): State<Api>) -> ApiResult {
    let text = api.host.metrics().await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok((headers, text).into_response())
}

async fn healthz() -> Response {
    axum::Json(api::Health::ok()).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use wasmflow_host::{ClosePolicy, HandlerKind, HistoryEvent, ParamSpec, Timer};

    use super::*;

    fn raw(text: &str) -> wasmflow_host::Json {
        serde_json::value::RawValue::from_string(text.to_owned()).unwrap()
    }

    fn record() -> RunRecord {
        RunRecord {
            run_id: RunId::new(),
            workflow_id: "order-1".into(),
            workflow_type: "Order".into(),
            version: "abc123".into(),
            status: RunStatus::Failed,
            parent_run_id: Some(RunId::new()),
            on_completed: None,
            close_policy: ClosePolicy::default(),
            input: raw(r#"{"amount":1}"#),
            result: Some(raw(r#"{"txn":"t-1"}"#)),
            error: Some(
                WorkflowError::new(ErrorKind::Application, "boom").with_details(json!({"code": 7})),
            ),
            seq: 3,
            pending: None,
            timer: Some(Timer {
                due_ms: 50,
                on_timeout: Some("late".into()),
                sleep: false,
                retry: false,
            }),
            deadline_ms: Some(60),
            cancel_requested: Some("stop".into()),
            created_ms: 10,
            updated_ms: 20,
        }
    }

    /// The JSON a run had before the API had types; the views keep it.
    fn run_json(run: &RunRecord) -> Value {
        json!({
            "workflow_id": run.workflow_id,
            "run_id": run.run_id.to_string(),
            "type": run.workflow_type,
            "status": run.status.as_str(),
            "version": run.version,
            "parent": run.parent_run_id.map(|p| p.to_string()),
            "result": run.result.as_ref().map(|r| json_value(r).unwrap()),
            "error": run.error,
            "timer_due_ms": run.timer.as_ref().map(|t| t.due_ms),
            "deadline_ms": run.deadline_ms,
            "cancel_requested": run.cancel_requested,
            "created_ms": run.created_ms,
            "updated_ms": run.updated_ms,
        })
    }

    #[test]
    fn views_of_runs_keep_the_wire_format() {
        let full = record();
        let mut bare = record();
        bare.status = RunStatus::Waiting;
        bare.parent_run_id = None;
        bare.result = None;
        bare.error = Some(WorkflowError::new(ErrorKind::Cancelled, "no details"));
        bare.timer = None;
        bare.deadline_ms = None;
        bare.cancel_requested = None;
        for run in [&full, &bare] {
            let view = serde_json::to_value(run_view(run).unwrap()).unwrap();
            assert_eq!(view, run_json(run));
            let result = serde_json::to_value(result_view(run).unwrap()).unwrap();
            assert_eq!(
                result,
                json!({
                    "workflow_id": run.workflow_id,
                    "run_id": run.run_id.to_string(),
                    "status": run.status.as_str(),
                    "result": run.result.as_ref().map(|r| json_value(r).unwrap()),
                    "error": run.error,
                })
            );
        }
        let tree = RunTree {
            run: full.clone(),
            children: vec![RunTree {
                run: bare.clone(),
                children: vec![],
            }],
        };
        let mut expected = run_json(&full);
        let mut child = run_json(&bare);
        child["children"] = json!([]);
        expected["children"] = json!([child]);
        assert_eq!(
            serde_json::to_value(tree_view(&tree).unwrap()).unwrap(),
            expected
        );
    }

    #[test]
    fn history_entries_are_the_stored_records() {
        let records = [
            HistoryRecord {
                id: 7,
                at_ms: 100,
                event: HistoryEvent::RunCompleted {
                    result: json!({"ok": true}),
                },
            },
            HistoryRecord {
                id: 8,
                at_ms: 101,
                event: HistoryEvent::TimerSet {
                    due_ms: 5,
                    on_timeout: None,
                },
            },
            HistoryRecord {
                id: 9,
                at_ms: 102,
                event: HistoryEvent::ActivationFailed {
                    sequence: 1,
                    kind: HandlerKind::Step,
                    handler: "greet".into(),
                    started_ms: 3,
                    duration_us: 4,
                    error: WorkflowError::new(ErrorKind::Trap, "boom"),
                },
            },
        ];
        for record in &records {
            let entry = history_entry(record);
            assert_eq!(entry.event_type, record.event.kind());
            assert_eq!(
                serde_json::to_value(&entry).unwrap(),
                serde_json::to_value(record).unwrap()
            );
        }
    }

    #[test]
    fn upgrades_show_the_runs_moved_and_pinned() {
        let (moved, kept) = (RunId::new(), RunId::new());
        let report = UpgradeReport {
            workflow_type: "Versioned".into(),
            version: "v2".into(),
            upgraded: vec![moved],
            pinned: vec![wasmflow_host::PinnedRun {
                run_id: kept,
                version: "v1".into(),
                reason: "busy".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(upgrade_view(&report)).unwrap(),
            json!({
                "type": "Versioned",
                "version": "v2",
                "upgraded": [moved.to_string()],
                "pinned": [{"run_id": kept.to_string(), "version": "v1", "reason": "busy"}],
            })
        );
    }

    #[test]
    fn handlers_show_as_described() {
        let handler = HandlerSpec {
            name: "greet".into(),
            kind: HandlerKind::Step,
            params: vec![ParamSpec {
                name: "who".into(),
                optional: true,
                schema: None,
            }],
            timeout: Some(Duration::from_millis(1500)),
        };
        let mut untimed = handler.clone();
        untimed.timeout = None;
        for h in [&handler, &untimed] {
            let mut expected = serde_json::to_value(h).unwrap();
            expected["params"][0]["type"] = "any value".into();
            assert_eq!(serde_json::to_value(handler_view(h)).unwrap(), expected);
        }
        // A parameter with a schema shows its type in JSON terms.
        let mut typed = handler.clone();
        typed.params[0] = serde_json::from_value(serde_json::json!({
            "name": "who", "optional": true, "schema": {"type": "integer", "minimum": 0}
        }))
        .unwrap();
        assert_eq!(handler_view(&typed).params[0].type_, "an integer ≥ 0");
    }

    #[test]
    fn routes_match_their_instances_only() {
        assert!(route_matches(
            "/v1/workflows/{id}/events",
            "/v1/workflows/a b/events"
        ));
        assert!(route_matches("/v1/workflows", "/v1/workflows"));
        assert!(!route_matches("/v1/workflows/{id}", "/v1/workflows//"));
        assert!(!route_matches("/v1/workflows/{id}", "/v1/workflows/x/tree"));
        assert!(!route_matches("/v1/workflows/{id}", "/v1/workflows/"));
        assert!(!route_matches("/healthz", "/metrics"));
    }

    #[test]
    fn a_cursor_is_the_position_of_a_run() {
        let run = record();
        let text = cursor(&run);
        let (created_ms, run_id) = parse_cursor(&text).ok().unwrap();
        assert_eq!((created_ms, run_id), (run.created_ms, run.run_id));
        for bad in [
            "",
            "10",
            "x.y",
            "10.nope",
            ".",
            "-1.0190c3a4-5b6c-7d8e-9f00-112233445566",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_settings_out_of_range_are_named() {
        assert!(ServerConfig::new().check().is_ok());
        let cases: [(ServerConfig, &str); 8] = [
            (
                ServerConfig {
                    max_plugin_bytes: 100,
                    ..ServerConfig::new()
                },
                "max_plugin_bytes",
            ),
            (
                ServerConfig {
                    token: Some(String::new()),
                    ..ServerConfig::new()
                },
                "token",
            ),
            (
                ServerConfig {
                    token: Some("a b".into()),
                    ..ServerConfig::new()
                },
                "token",
            ),
            (
                ServerConfig {
                    header_timeout: Duration::ZERO,
                    ..ServerConfig::new()
                },
                "header_timeout",
            ),
            (
                ServerConfig {
                    body_timeout: Duration::from_secs(7200),
                    ..ServerConfig::new()
                },
                "body_timeout",
            ),
            (
                ServerConfig {
                    max_connections: 0,
                    ..ServerConfig::new()
                },
                "max_connections",
            ),
            (
                ServerConfig {
                    max_request_bytes: 10,
                    ..ServerConfig::new()
                },
                "max_request_bytes",
            ),
            (
                ServerConfig {
                    max_request_bytes: usize::MAX,
                    ..ServerConfig::new()
                },
                "max_request_bytes",
            ),
        ];
        for (config, setting) in cases {
            let err = config.check().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid setting `{setting}`")),
                "{err}"
            );
        }
    }

    /// `openapi.json` documents exactly the routes the router serves.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }
}
