//! The HTTP API (SPEC 12): versioned JSON routes over a [`Host`], errors as
//! `{"kind", "message"}` with the right status, a bearer token when one is
//! configured, Prometheus metrics and a liveness probe. `openapi.json`
//! beside this crate's manifest documents every route in [`ROUTES`] (a test
//! keeps the two equal) and is served at `GET /v1/openapi.json`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use wasmflow_host::{
    Error, ErrorKind, Host, LiveVersion, Plugins, RunId, RunRecord, RunStatus, RunTree,
    StartOptions, WorkflowError, json_value,
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
    ("POST", "/v1/workflows/{id}/cancel"),
    ("POST", "/v1/workflows/{id}/terminate"),
    ("POST", "/v1/workflows/{id}/queries/{name}"),
    ("GET", "/v1/types"),
    ("POST", "/v1/types/{type}/upgrade"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
];

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The longest a result request may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Api {
    host: Arc<Host>,
    token: Option<Arc<str>>,
    stopping: CancellationToken,
}

/// The API's router over `host`. With a `token`, every route requires
/// `Authorization: Bearer <token>`. Long polls end when `stopping` is
/// cancelled.
pub fn router(host: Arc<Host>, token: Option<String>, stopping: CancellationToken) -> Router {
    let api = Api {
        host,
        token: token.map(Arc::from),
        stopping,
    };
    Router::new()
        .route("/v1/workflows", post(start).get(list))
        .route("/v1/workflows/{id}", get(status))
        .route("/v1/workflows/{id}/result", get(result))
        .route("/v1/workflows/{id}/events", post(send))
        .route("/v1/workflows/{id}/history", get(history))
        .route("/v1/workflows/{id}/tree", get(tree))
        .route("/v1/workflows/{id}/cancel", post(cancel))
        .route("/v1/workflows/{id}/terminate", post(terminate))
        .route("/v1/workflows/{id}/queries/{name}", post(query))
        .route("/v1/types", get(types))
        .route("/v1/types/{type}/upgrade", post(upgrade))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .with_state(api)
}

/// Serve the API over `host` on `listener` until `stopping` is cancelled
/// (long polls end then too), then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    host: Arc<Host>,
    token: Option<String>,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    let app = router(host, token, stopping.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stopping.cancelled().await })
        .await
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
        let body = json!({"kind": self.kind, "message": self.message});
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
            Error::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown", message)
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal",
                    other.to_string(),
                )
            }
        }
    }
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
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_ref()) {
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

/// Parse a JSON body (empty: `{}`), naming what is wrong.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let text = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_input(format!("the request body: {e}")))
}

fn run_id(text: Option<&str>) -> ApiResult<Option<RunId>> {
    text.map(|t| {
        t.parse()
            .map_err(|e| ApiError::bad_input(format!("`run_id` `{t}` is not a run id: {e}")))
    })
    .transpose()
}

/// The JSON of a run.
pub fn run_json(run: &RunRecord) -> Value {
    json!({
        "workflow_id": run.workflow_id,
        "run_id": run.run_id.to_string(),
        "type": run.workflow_type,
        "status": run.status.as_str(),
        "version": run.version,
        "parent": run.parent_run_id.map(|p| p.to_string()),
        "result": run.result.as_ref().map(json_value),
        "error": run.error,
        "timer_due_ms": run.timer.as_ref().map(|t| t.due_ms),
        "deadline_ms": run.deadline_ms,
        "cancel_requested": run.cancel_requested,
        "created_ms": run.created_ms,
        "updated_ms": run.updated_ms,
    })
}

fn tree_json(tree: &RunTree) -> Value {
    let mut value = run_json(&tree.run);
    value["children"] = tree.children.iter().map(tree_json).collect();
    value
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(rename = "type")]
    workflow_type: String,
    id: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    timeout_ms: Option<u64>,
    /// `error` (default) or `return_existing`.
    on_conflict: Option<String>,
}

async fn start(State(api): State<Api>, bytes: Bytes) -> ApiResult {
    let req: StartBody = body(&bytes)?;
    let mut options = StartOptions::new();
    if let Some(id) = req.id {
        options = options.workflow_id(id);
    }
    if let Some(ms) = req.timeout_ms {
        options = options.timeout(Duration::from_millis(ms));
    }
    match req.on_conflict.as_deref() {
        None | Some("error") => {}
        Some("return_existing") => options = options.return_existing(),
        Some(other) => {
            return Err(ApiError::bad_input(format!(
                "`on_conflict` must be `error` or `return_existing`, not `{other}`"
            )));
        }
    }
    let input = req.input.unwrap_or_else(|| json!({})).to_string();
    let started = api.host.start(&req.workflow_type, &input, options).await?;
    let status = if started.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = json!({
        "workflow_id": started.workflow_id,
        "run_id": started.run_id.to_string(),
        "existing": started.existing,
    });
    Ok((status, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "type")]
    workflow_type: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn list(State(api): State<Api>, Query(q): Query<ListQuery>) -> ApiResult {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_input(e.to_string()))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let runs = api
        .host
        .list(q.workflow_type.as_deref(), status, limit)
        .await?;
    let runs: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(axum::Json(json!({ "runs": runs })).into_response())
}

#[derive(Deserialize)]
struct RunQuery {
    run_id: Option<String>,
    wait_ms: Option<u64>,
}

async fn status(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    Ok(axum::Json(run_json(&run)).into_response())
}

async fn result(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let run = if run.status.is_terminal() || wait.is_zero() {
        run
    } else {
        tokio::select! {
            done = api.host.wait_for(run.run_id, wait) => done?,
            _ = api.stopping.cancelled() => return Err(Error::ShuttingDown.into()),
        }
    };
    let body = json!({
        "workflow_id": run.workflow_id,
        "run_id": run.run_id.to_string(),
        "status": run.status.as_str(),
        "result": run.result.as_ref().map(json_value),
        "error": run.error,
    });
    // 200 once the run ended; 202 while it has not (yet).
    let status = if run.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    name: String,
    payload: Option<Value>,
}

async fn send(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: EventBody = body(&bytes)?;
    let payload = req.payload.map(|p| p.to_string()).unwrap_or_default();
    let run_id = api.host.send(&id, &req.name, &payload).await?;
    let body = json!({"workflow_id": id, "run_id": run_id.to_string()});
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

async fn history(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    let events = api.host.history(run.run_id).await?;
    let body = json!({
        "workflow_id": run.workflow_id,
        "run_id": run.run_id.to_string(),
        "events": events,
    });
    Ok(axum::Json(body).into_response())
}

async fn tree(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let run = api.host.latest_run(&id).await?;
    let tree = api.host.tree(run.run_id).await?;
    Ok(axum::Json(tree_json(&tree)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
}

async fn cancel(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: ReasonBody = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    let run_id = api.host.cancel(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_json(&run)).into_response())
}

async fn terminate(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: ReasonBody = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "terminated through the API".into());
    let run_id = api.host.terminate(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_json(&run)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    args: Option<Value>,
    run_id: Option<String>,
}

async fn query(
    State(api): State<Api>,
    Path((id, name)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let req: QueryBody = body(&bytes)?;
    let run = api
        .host
        .find_run(&id, run_id(req.run_id.as_deref())?)
        .await?;
    let args = req.args.map(|a| a.to_string()).unwrap_or_default();
    let value = api.host.query(run.run_id, &name, &args).await?;
    let body = json!({"workflow_id": id, "run_id": run.run_id.to_string(), "result": value});
    Ok(axum::Json(body).into_response())
}

async fn types(State(api): State<Api>) -> ApiResult {
    let plugins = api.host.plugins();
    let live = api.host.live_versions().await?;
    Ok(axum::Json(types_json(&plugins, &live)).into_response())
}

/// The JSON of `GET /v1/types` (and `wasmflow types --json`): each type with
/// its version, file, handlers and the versions live runs hold; rejected
/// files with their reasons.
pub fn types_json(plugins: &Plugins, live: &[LiveVersion]) -> Value {
    let types: Vec<Value> = plugins
        .types()
        .into_iter()
        .map(|(name, entry)| {
            let in_flight: Vec<Value> = live
                .iter()
                .filter(|l| l.workflow_type == name)
                .map(|l| json!({"version": l.version, "runs": l.runs}))
                .collect();
            json!({
                "name": name,
                "version": entry.component.hash,
                "file": entry.file.display().to_string(),
                "handlers": entry.spec.handlers,
                "in_flight": in_flight,
            })
        })
        .collect();
    let rejected: Vec<Value> = plugins
        .rejected()
        .iter()
        .map(|r| json!({"file": r.file.display().to_string(), "reason": r.reason}))
        .collect();
    json!({"types": types, "rejected": rejected})
}

async fn upgrade(State(api): State<Api>, Path(workflow_type): Path<String>) -> ApiResult {
    let report = api.host.upgrade(&workflow_type).await?;
    let pinned: Vec<Value> = report
        .pinned
        .iter()
        .map(|p| json!({"run_id": p.run_id.to_string(), "version": p.version, "reason": p.reason}))
        .collect();
    let upgraded: Vec<String> = report.upgraded.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({
        "type": report.workflow_type,
        "version": report.version,
        "upgraded": upgraded,
        "pinned": pinned,
    }))
    .into_response())
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
    axum::Json(json!({"status": "ok"})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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
