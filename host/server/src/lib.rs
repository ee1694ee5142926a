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
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use wasmflow_api as api;
use wasmflow_host::{
    Error, ErrorKind, HandlerSpec, HistoryRecord, Host, LiveVersion, Plugins, RunId, RunRecord,
    RunStatus, RunTree, StartOptions, UpgradeReport, WorkflowError, json_value,
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
            Error::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown", message)
            }
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

/// A run as the API shows it.
pub fn run_view(run: &RunRecord) -> api::RunView {
    api::RunView {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.to_string(),
        workflow_type: run.workflow_type.clone(),
        status: run.status,
        version: run.version.clone(),
        parent: run.parent_run_id.map(|p| p.to_string()),
        result: run.result.as_ref().map(json_value),
        error: run.error.as_ref().map(error_view),
        timer_due_ms: run.timer.as_ref().map(|t| t.due_ms),
        deadline_ms: run.deadline_ms,
        cancel_requested: run.cancel_requested.clone(),
        created_ms: run.created_ms,
        updated_ms: run.updated_ms,
    }
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
pub fn tree_view(tree: &RunTree) -> api::TreeView {
    api::TreeView {
        run: run_view(&tree.run),
        children: tree.children.iter().map(tree_view).collect(),
    }
}

/// The result view of a run.
pub fn result_view(run: &RunRecord) -> api::ResultView {
    api::ResultView {
        workflow_id: run.workflow_id.clone(),
        run_id: run.run_id.to_string(),
        status: run.status,
        result: run.result.as_ref().map(json_value),
        error: run.error.as_ref().map(error_view),
    }
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
        options = options.timeout(Duration::from_millis(ms));
    }
    match req.on_conflict.unwrap_or_default() {
        api::OnConflict::Error => {}
        api::OnConflict::ReturnExisting => options = options.return_existing(),
    }
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
    let body = api::Started {
        workflow_id: started.workflow_id,
        run_id: started.run_id.to_string(),
        existing: started.existing,
    };
    Ok((status, axum::Json(body)).into_response())
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
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let runs = api
        .host
        .list(q.workflow_type.as_deref(), status, limit)
        .await?;
    let runs = api::RunList {
        runs: runs.iter().map(run_view).collect(),
    };
    Ok(axum::Json(runs).into_response())
}

async fn status(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
) -> ApiResult {
    let run = api.host.find_run(&id, run_id(q.run_id.as_deref())?).await?;
    Ok(axum::Json(run_view(&run)).into_response())
}

async fn result(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<api::RunQuery>,
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
    let body = result_view(&run);
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

async fn tree(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    let run = api.host.latest_run(&id).await?;
    let tree = api.host.tree(run.run_id).await?;
    Ok(axum::Json(tree_view(&tree)).into_response())
}

async fn cancel(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::CancelRequest = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    let run_id = api.host.cancel(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_view(&run)).into_response())
}

async fn terminate(State(api): State<Api>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let req: api::TerminateRequest = body(&bytes)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "terminated through the API".into());
    let run_id = api.host.terminate(&id, &reason).await?;
    let run = api.host.run(run_id).await?;
    Ok(axum::Json(run_view(&run)).into_response())
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
                on_timeout: "late".into(),
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
            "result": run.result.as_ref().map(json_value),
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
            let view = serde_json::to_value(run_view(run)).unwrap();
            assert_eq!(view, run_json(run));
            let result = serde_json::to_value(result_view(run)).unwrap();
            assert_eq!(
                result,
                json!({
                    "workflow_id": run.workflow_id,
                    "run_id": run.run_id.to_string(),
                    "status": run.status.as_str(),
                    "result": run.result.as_ref().map(json_value),
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
        assert_eq!(serde_json::to_value(tree_view(&tree)).unwrap(), expected);
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
            }],
            timeout: Some(Duration::from_millis(1500)),
        };
        let mut untimed = handler.clone();
        untimed.timeout = None;
        for h in [&handler, &untimed] {
            assert_eq!(
                serde_json::to_value(handler_view(h)).unwrap(),
                serde_json::to_value(h).unwrap()
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
