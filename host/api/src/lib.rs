//! The wire model of the wasmflow HTTP API (SPEC 12): one typed request or
//! response body per route, with the exact field names and value shapes
//! the server sends and the clients (the `wasmflow` CLI, the web UI) read.
//! The server maps its domain types to these structs and the clients
//! deserialize into them, so a change to the wire is a change here; this
//! crate knows nothing of the host, only serde.
//!
//! User JSON (workflow inputs, results, event payloads and query
//! arguments, history entry bodies, error details) stays
//! [`serde_json::Value`]; everything the API itself defines is typed.
//!
//! | route | request | response |
//! |---|---|---|
//! | `POST /v1/workflows` | [`StartRequest`] | [`Started`] |
//! | `GET /v1/workflows` | [`ListQuery`] | [`RunList`] |
//! | `GET /v1/workflows/{id}` | [`RunQuery`] | [`RunView`] |
//! | `GET /v1/workflows/{id}/result` | [`RunQuery`] | [`ResultView`] |
//! | `POST /v1/workflows/{id}/events` | [`SendEvent`] | [`EventAccepted`] |
//! | `GET /v1/workflows/{id}/history` | [`RunQuery`] | [`HistoryView`] |
//! | `GET /v1/workflows/{id}/tree` | [`RunQuery`] | [`TreeView`] |
//! | `GET /v1/workflows/{id}/store` | [`RunQuery`] | [`StoreView`] |
//! | `GET /v1/workflows/{id}/inbox` | [`RunQuery`] | [`InboxView`] |
//! | `POST /v1/workflows/{id}/cancel`, `.../terminate` | [`CancelRequest`] | [`RunView`] |
//! | `POST /v1/workflows/{id}/retry` | [`RetryRequest`] | [`RunView`] |
//! | `POST /v1/workflows/{id}/queries/{name}` | [`QueryRequest`] | [`QueryAnswer`] |
//! | `GET /v1/runs/{run_id}` | | [`RunView`] |
//! | `GET /v1/types` | | [`TypesView`] |
//! | `POST /v1/types/{type}/upgrade` | | [`UpgradeView`] |
//! | `POST /v1/plugins` | [`DeployQuery`], the component's bytes | [`DeployedView`] |
//! | `GET /v1/plugins` | | [`PluginsView`] |
//! | `GET /healthz` | | [`Health`] |
//! | any error | | [`ErrorBody`] |
//!
//! (`GET /v1/openapi.json` and `GET /metrics` answer documents of their
//! own: the OpenAPI description and the Prometheus text format.)

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Run statuses and handler kinds are the protocol's own names (crate
/// `wasmflow-protocol`, the vocabulary the host and the guest SDK share):
/// one name table for the wire, the database and the guest.
pub use wasmflow_protocol::{HandlerKind, RunStatus};

/// An error answer, of any route: `{"kind", "message"}` with the HTTP
/// status. `kind` is a wasmflow error kind (`RunNotFound`,
/// `InvalidPayload`, ...) or one of the API's own (`Unauthorized`,
/// `NotFound`, `Internal`, `ShuttingDown`, `DatabaseUnavailable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: String,
    pub message: String,
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Why a run failed, was cancelled or terminated: `{"kind", "message",
/// "details"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub kind: String,
    pub message: String,
    /// Structured details, user JSON; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What to do when the workflow id of a start has an active run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Refuse the start: 409 `WorkflowAlreadyRunning`.
    #[default]
    Error,
    /// Answer 200 with the active run (`existing: true`).
    ReturnExisting,
}

impl OnConflict {
    /// The name on the wire: `error` or `return_existing`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Error => "error",
            OnConflict::ReturnExisting => "return_existing",
        }
    }
}

impl Serialize for OnConflict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OnConflict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "error" => Ok(OnConflict::Error),
            "return_existing" => Ok(OnConflict::ReturnExisting),
            other => Err(serde::de::Error::custom(format!(
                "`on_conflict` must be `error` or `return_existing`, not `{other}`"
            ))),
        }
    }
}

/// `POST /v1/workflows`: start a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The workflow type.
    #[serde(rename = "type")]
    pub workflow_type: String,
    /// The workflow id (default: the run id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The input, a JSON object binding to the start handler's parameters
    /// (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The workflow timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Default: [`OnConflict::Error`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_conflict: Option<OnConflict>,
    /// Pin the run to this component version (a full hash, or a prefix of
    /// at least 4 hex digits of one the host has loaded, of a component
    /// that provides the type) instead of the one new runs get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Wait up to this many milliseconds, 1 to [`MAX_WAIT_MS`], for the run
    /// to end, and answer with its outcome ([`Started::outcome`]): one
    /// request per workflow. Absent: answer once the run is durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

impl StartRequest {
    /// A start of `workflow_type` with every option at its default.
    pub fn new(workflow_type: impl Into<String>) -> Self {
        StartRequest {
            workflow_type: workflow_type.into(),
            id: None,
            input: None,
            timeout_ms: None,
            on_conflict: None,
            version: None,
            wait_ms: None,
        }
    }
}

/// The answer to a start: 201 for a new run, 200 for the active run of the
/// id (`existing`, with [`OnConflict::ReturnExisting`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub workflow_id: String,
    pub run_id: String,
    pub existing: bool,
    /// With [`StartRequest::wait_ms`]: the run as it stood when the start
    /// answered — ended (its result or error), or still `running` or
    /// `waiting` when the wait ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ResultView>,
}

/// The query of `GET /v1/workflows`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only runs of this workflow type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub workflow_type: Option<String>,
    /// Only runs with this status (a [`RunStatus`] name; the server names
    /// an unknown one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only runs whose workflow id begins with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_prefix: Option<String>,
    /// At most this many runs, 1 to [`MAX_LIST_LIMIT`] (default
    /// [`DEFAULT_LIST_LIMIT`]); out of range is a 400 naming the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Continue a listing: the [`RunList::next`] of the previous page
    /// (absent: the first page, from the newest run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The most runs one page of `GET /v1/workflows` holds.
pub const MAX_LIST_LIMIT: usize = 1000;

/// The runs a page of `GET /v1/workflows` holds without a `limit`.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// The query of the routes that address one run of a workflow id
/// (`GET /v1/workflows/{id}`, `.../result`, `.../history`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunQuery {
    /// A run of the workflow id (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// `.../result` only: how long to wait for the run to end, in
    /// milliseconds, 1 to [`MAX_WAIT_MS`] (absent: answer at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The longest a result request may wait, in milliseconds (`wait_ms`).
pub const MAX_WAIT_MS: u64 = 60_000;

/// One run (`GET /v1/workflows/{id}`, the answer to cancel and terminate,
/// the items of [`RunList`]). Absent values are `null`, not left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub workflow_id: String,
    pub run_id: String,
    /// The workflow type.
    #[serde(rename = "type")]
    pub workflow_type: String,
    pub status: RunStatus,
    /// The component version the run is pinned to.
    pub version: String,
    /// The parent's run id, for a child run.
    pub parent: Option<String>,
    /// The result of a completed run.
    pub result: Option<Value>,
    /// Why a run failed, was cancelled or terminated.
    pub error: Option<RunError>,
    /// When the timer of a waiting run is due, in Unix milliseconds.
    pub timer_due_ms: Option<u64>,
    /// When the workflow timeout ends the run, in Unix milliseconds.
    pub deadline_ms: Option<u64>,
    /// The reason of a cancel waiting for the current activation to end.
    pub cancel_requested: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// What a running run executes now, and since when; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentActivation>,
}

/// The activation a running run executes (or is about to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentActivation {
    pub kind: HandlerKind,
    pub handler: String,
    /// Since when it is the run's current activation, in Unix milliseconds.
    pub since_ms: u64,
}

/// `GET /v1/workflows`: one page of runs, newest first (by creation
/// time, then run id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// The cursor of the next page (pass it as `cursor`), an opaque
    /// string; `null` on the last page. Paging visits every run that
    /// existed at the first page exactly once; runs started since come
    /// first on a new listing, not in this one.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /v1/workflows/{id}/result`: 200 once the run ended, 202 while it
/// has not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    pub workflow_id: String,
    pub run_id: String,
    pub status: RunStatus,
    pub result: Option<Value>,
    pub error: Option<RunError>,
}

/// `POST /v1/workflows/{id}/events`: an event for the latest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEvent {
    /// The event name.
    pub name: String,
    /// The payload, user JSON (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// The answer to an event: 202 once it is durably in the run's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAccepted {
    pub workflow_id: String,
    pub run_id: String,
}

/// `GET /v1/workflows/{id}/history`: a run's history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    pub workflow_id: String,
    pub run_id: String,
    pub events: Vec<HistoryEntry>,
}

/// One history entry: its position and time, its `type`
/// (`run_started`, `activation_completed`, ...) and the fields of that
/// type, flattened beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the database's commit order; increases along a run.
    pub id: i64,
    pub at_ms: u64,
    /// The entry type, e.g. `run_completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The other fields of the entry, e.g. `{"result": ...}`.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// `GET /v1/workflows/{id}/store`: a run's committed store, by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreView {
    pub workflow_id: String,
    pub run_id: String,
    /// Each key with its value, in key order.
    pub store: std::collections::BTreeMap<String, Value>,
}

/// `GET /v1/workflows/{id}/inbox`: what waits in a run's inbox, oldest
/// first (the next `wait` takes the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxView {
    pub workflow_id: String,
    pub run_id: String,
    pub entries: Vec<InboxEntryView>,
}

/// One inbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEntryView {
    /// Position in arrival order.
    pub id: i64,
    /// The event's name, or the `on_completed` step of a child's
    /// completion notice.
    pub name: String,
    pub payload: Value,
    pub kind: InboxEntryKind,
}

/// What an inbox entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxEntryKind {
    /// An event sent to the run (by a client, or by a child).
    Event,
    /// A child's completion notice, for its `on_completed` step.
    Notice,
}

/// `GET /v1/workflows/{id}/tree`: a run (its fields flattened) with its
/// children, recursively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeView {
    #[serde(flatten)]
    pub run: RunView,
    pub children: Vec<TreeView>,
}

/// `POST /v1/workflows/{id}/cancel` and `.../terminate`; an empty body is
/// `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Recorded as the run's error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/workflows/{id}/terminate` takes the same body as cancel.
pub type TerminateRequest = CancelRequest;

/// `POST /v1/workflows/{id}/retry`; an empty body is `{}`. Resumes the
/// latest run of the workflow id, which failed: its failed activation is
/// executed again from its last committed state. Answers the run
/// ([`RunView`]) as it is then.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Execute it on the version the plugins provide now, if the run passes
    /// the upgrade check there (default: on its pinned version).
    #[serde(default)]
    pub upgrade: bool,
}

/// `POST /v1/workflows/{id}/queries/{name}`; an empty body is `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The query's arguments, user JSON bound to its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// A run of the workflow id (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The value a query handler returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryAnswer {
    pub workflow_id: String,
    pub run_id: String,
    /// User JSON.
    pub result: Value,
}

/// `GET /v1/types` (and `wasmflow types --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypesView {
    /// The workflow types the plugins provide, by name.
    pub types: Vec<TypeView>,
    /// Plugin files that were not loaded.
    pub rejected: Vec<RejectedPlugin>,
}

/// A workflow type: its current version, the file providing it, its
/// handlers and the versions its live runs are pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeView {
    pub name: String,
    /// The component version (a hash) new runs get.
    pub version: String,
    /// The plugin file.
    pub file: String,
    pub handlers: Vec<HandlerView>,
    pub in_flight: Vec<InFlight>,
}

/// One handler of a workflow type, as the component describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerView {
    pub name: String,
    pub kind: HandlerKind,
    pub params: Vec<ParamView>,
    /// The handler's own activation deadline, in milliseconds; absent when
    /// it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// One parameter of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamView {
    pub name: String,
    pub optional: bool,
    /// What the parameter accepts, in JSON terms ("a string", "an integer
    /// ≥ 0", "any value"), from its schema; bounded in length.
    #[serde(rename = "type", default)]
    pub type_: String,
}

/// How many live runs hold a version of a workflow type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub version: String,
    pub runs: u64,
}

/// A plugin file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedPlugin {
    pub file: String,
    pub reason: String,
}

/// The query of `POST /v1/plugins`, whose body is the component's bytes
/// (`Content-Type: application/wasm`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployQuery {
    /// The plugin file's name, e.g. `order-payment.wasm`: a bare file name
    /// ending in `.wasm`. Deploying a name the host has replaces that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where a plugin file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginOrigin {
    /// Copied into the host's plugins directory.
    Directory,
    /// Deployed over the API (`POST /v1/plugins`, `wasmflow deploy`).
    Api,
    /// Deployed by another host of the shared database.
    Fleet,
}

impl PluginOrigin {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginOrigin::Directory => "directory",
            PluginOrigin::Api => "api",
            PluginOrigin::Fleet => "fleet",
        }
    }
}

/// A plugin file the host starts new runs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginView {
    /// The file name.
    pub file: String,
    /// Its component version (a hash).
    pub version: String,
    /// The workflow types it provides.
    pub types: Vec<String>,
    pub origin: PluginOrigin,
    /// When it was deployed (origin `api`) or loaded by this host, in ms
    /// since the epoch.
    pub since_ms: u64,
}

/// `GET /v1/plugins` (and `wasmflow plugins --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginsView {
    /// The loaded files, by name.
    pub plugins: Vec<PluginView>,
    /// Files of the plugins directory that were not loaded.
    pub rejected: Vec<RejectedPlugin>,
}

/// The answer to `POST /v1/plugins`: 201 with the deployed file (200 and
/// `changed: false` when it already had exactly this content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedView {
    #[serde(flatten)]
    pub plugin: PluginView,
    pub changed: bool,
    /// The version the file had before, when this replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
}

/// `POST /v1/types/{type}/upgrade`: what moved to the newest version and
/// what stayed pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeView {
    #[serde(rename = "type")]
    pub workflow_type: String,
    /// The version runs were moved to.
    pub version: String,
    /// The run ids moved.
    pub upgraded: Vec<String>,
    pub pinned: Vec<PinnedView>,
}

/// A run an upgrade left on its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedView {
    pub run_id: String,
    pub version: String,
    pub reason: String,
}

/// `GET /healthz`: `{"status": "ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

impl Health {
    /// The answer of a live host.
    pub fn ok() -> Self {
        Health {
            status: "ok".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// `value` serialises to exactly `wire`, and `wire` reads back as
    /// `value`.
    fn round_trip<T>(value: &T, wire: Value)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        assert_eq!(serde_json::to_value(value).unwrap(), wire);
        let text = serde_json::to_string(value).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value);
        assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), value);
    }

    fn run(status: RunStatus) -> RunView {
        RunView {
            workflow_id: "order-1".into(),
            run_id: "0190c6e0-0000-7000-8000-000000000001".into(),
            workflow_type: "Order".into(),
            status,
            version: "abc123".into(),
            parent: None,
            result: None,
            error: None,
            timer_due_ms: None,
            deadline_ms: None,
            cancel_requested: None,
            created_ms: 1,
            updated_ms: 2,
            current: None,
        }
    }

    #[test]
    fn a_running_run_shows_its_current_activation() {
        let mut running = run(RunStatus::Running);
        running.current = Some(CurrentActivation {
            kind: HandlerKind::Step,
            handler: "work".into(),
            since_ms: 2,
        });
        let wire = serde_json::to_value(&running).unwrap();
        assert_eq!(
            wire["current"],
            json!({"kind": "step", "handler": "work", "since_ms": 2})
        );
        // Absent for a run that does not run.
        let waiting = serde_json::to_value(run(RunStatus::Waiting)).unwrap();
        assert!(waiting.get("current").is_none(), "{waiting}");
        assert_eq!(serde_json::from_value::<RunView>(wire).unwrap(), running);
    }

    #[test]
    fn statuses_are_lowercase_strings() {
        for status in RunStatus::ALL {
            round_trip(status, json!(status.as_str()));
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
        }
        assert!("sleeping".parse::<RunStatus>().is_err());
        assert!(RunStatus::Cancelled.is_terminal());
        assert!(!RunStatus::Waiting.is_terminal());
    }

    #[test]
    fn an_error_body_is_kind_and_message() {
        let e = ErrorBody {
            kind: "RunNotFound".into(),
            message: "no run `x`".into(),
        };
        round_trip(&e, json!({"kind": "RunNotFound", "message": "no run `x`"}));
        assert_eq!(e.to_string(), "RunNotFound: no run `x`");
    }

    #[test]
    fn a_start_request_names_the_type_and_leaves_out_what_is_unset() {
        round_trip(&StartRequest::new("Order"), json!({"type": "Order"}));
        let full = StartRequest {
            workflow_type: "Order".into(),
            id: Some("abc".into()),
            input: Some(json!({"amount": 1})),
            timeout_ms: Some(5000),
            on_conflict: Some(OnConflict::ReturnExisting),
            version: Some("3f1c0b9a".into()),
            wait_ms: Some(2000),
        };
        round_trip(
            &full,
            json!({"type": "Order", "id": "abc", "input": {"amount": 1},
                   "timeout_ms": 5000, "on_conflict": "return_existing",
                   "version": "3f1c0b9a", "wait_ms": 2000}),
        );
        round_trip(&OnConflict::Error, json!("error"));
        let unknown = serde_json::from_value::<StartRequest>(json!({"tipe": "Order"}));
        assert!(unknown.is_err(), "unknown fields are refused");
        let bad = serde_json::from_value::<StartRequest>(json!({"type": "O", "on_conflict": "x"}))
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("`on_conflict` must be `error` or `return_existing`, not `x`"),
            "{bad}"
        );
    }

    #[test]
    fn a_deployed_plugin_shows_its_file_version_types_and_origin() {
        let plugin = PluginView {
            file: "order.wasm".into(),
            version: "ab".into(),
            types: vec!["Order".into()],
            origin: PluginOrigin::Api,
            since_ms: 5,
        };
        round_trip(
            &DeployedView {
                plugin: plugin.clone(),
                changed: true,
                previous_version: Some("cd".into()),
            },
            json!({"file": "order.wasm", "version": "ab", "types": ["Order"],
                   "origin": "api", "since_ms": 5, "changed": true,
                   "previous_version": "cd"}),
        );
        round_trip(&PluginOrigin::Fleet, json!("fleet"));
        round_trip(
            &PluginsView {
                plugins: vec![plugin],
                rejected: vec![],
            },
            json!({"plugins": [{"file": "order.wasm", "version": "ab", "types": ["Order"],
                                "origin": "api", "since_ms": 5}], "rejected": []}),
        );
    }

    #[test]
    fn started_has_the_ids_and_whether_it_existed() {
        round_trip(
            &Started {
                workflow_id: "abc".into(),
                run_id: "r".into(),
                existing: false,
                outcome: None,
            },
            json!({"workflow_id": "abc", "run_id": "r", "existing": false}),
        );
        round_trip(
            &Started {
                workflow_id: "abc".into(),
                run_id: "r".into(),
                existing: false,
                outcome: Some(ResultView {
                    workflow_id: "abc".into(),
                    run_id: "r".into(),
                    status: RunStatus::Completed,
                    result: Some(json!(42)),
                    error: None,
                }),
            },
            json!({"workflow_id": "abc", "run_id": "r", "existing": false,
                   "outcome": {"workflow_id": "abc", "run_id": "r", "status": "completed",
                               "result": 42, "error": null}}),
        );
    }

    #[test]
    fn a_run_has_its_type_under_type_and_nulls_for_absent_values() {
        let wire = json!({
            "workflow_id": "order-1",
            "run_id": "0190c6e0-0000-7000-8000-000000000001",
            "type": "Order",
            "status": "waiting",
            "version": "abc123",
            "parent": null,
            "result": null,
            "error": null,
            "timer_due_ms": null,
            "deadline_ms": null,
            "cancel_requested": null,
            "created_ms": 1,
            "updated_ms": 2,
        });
        round_trip(&run(RunStatus::Waiting), wire);

        let mut failed = run(RunStatus::Failed);
        failed.parent = Some("p".into());
        failed.error = Some(RunError {
            kind: "Application".into(),
            message: "boom".into(),
            details: Some(json!({"code": 7})),
        });
        failed.timer_due_ms = Some(10);
        failed.deadline_ms = Some(20);
        failed.cancel_requested = Some("stop".into());
        let wire = serde_json::to_value(&failed).unwrap();
        assert_eq!(wire["parent"], "p");
        assert_eq!(
            wire["error"],
            json!({"kind": "Application", "message": "boom", "details": {"code": 7}})
        );
        assert_eq!(wire["cancel_requested"], "stop");
        round_trip(&failed, wire);

        let mut done = run(RunStatus::Completed);
        done.result = Some(json!("txn-1"));
        let wire = serde_json::to_value(&done).unwrap();
        assert_eq!(wire["result"], "txn-1");
        assert!(wire.get("workflow_type").is_none());
        round_trip(&done, wire);
    }

    #[test]
    fn a_run_error_leaves_out_absent_details() {
        round_trip(
            &RunError {
                kind: "Cancelled".into(),
                message: "changed my mind".into(),
                details: None,
            },
            json!({"kind": "Cancelled", "message": "changed my mind"}),
        );
    }

    #[test]
    fn a_run_list_is_runs() {
        let list = RunList {
            runs: vec![run(RunStatus::Running)],
            next: Some("c".into()),
        };
        let wire = serde_json::to_value(&list).unwrap();
        assert_eq!(wire["runs"][0]["type"], "Order");
        assert_eq!(wire["next"], "c");
        round_trip(&list, wire);
        round_trip(
            &RunList {
                runs: vec![],
                next: None,
            },
            json!({"runs": [], "next": null}),
        );
        // A server from before paging sends no `next`: the last page.
        let old: RunList = serde_json::from_value(json!({"runs": []})).unwrap();
        assert_eq!(old.next, None);
    }

    #[test]
    fn list_and_run_queries_leave_out_what_is_unset() {
        round_trip(&ListQuery::default(), json!({}));
        round_trip(
            &ListQuery {
                workflow_type: Some("Order".into()),
                status: Some("completed".into()),
                id_prefix: None,
                limit: Some(5),
                cursor: Some("c".into()),
            },
            json!({"type": "Order", "status": "completed", "limit": 5, "cursor": "c"}),
        );
        round_trip(&RunQuery::default(), json!({}));
        round_trip(
            &RunQuery {
                run_id: Some("r".into()),
                wait_ms: Some(100),
            },
            json!({"run_id": "r", "wait_ms": 100}),
        );
    }

    #[test]
    fn a_result_has_status_result_and_error() {
        round_trip(
            &ResultView {
                workflow_id: "abc".into(),
                run_id: "r".into(),
                status: RunStatus::Completed,
                result: Some(json!({"n": 1})),
                error: None,
            },
            json!({"workflow_id": "abc", "run_id": "r", "status": "completed",
                   "result": {"n": 1}, "error": null}),
        );
        round_trip(
            &ResultView {
                workflow_id: "abc".into(),
                run_id: "r".into(),
                status: RunStatus::Cancelled,
                result: None,
                error: Some(RunError {
                    kind: "Cancelled".into(),
                    message: "stop".into(),
                    details: None,
                }),
            },
            json!({"workflow_id": "abc", "run_id": "r", "status": "cancelled",
                   "result": null, "error": {"kind": "Cancelled", "message": "stop"}}),
        );
    }

    #[test]
    fn events_have_a_name_and_maybe_a_payload() {
        round_trip(
            &SendEvent {
                name: "ping".into(),
                payload: None,
            },
            json!({"name": "ping"}),
        );
        round_trip(
            &SendEvent {
                name: "ping".into(),
                payload: Some(json!([1, 2])),
            },
            json!({"name": "ping", "payload": [1, 2]}),
        );
        assert!(serde_json::from_value::<SendEvent>(json!({"name": "x", "pay": 1})).is_err());
        round_trip(
            &EventAccepted {
                workflow_id: "abc".into(),
                run_id: "r".into(),
            },
            json!({"workflow_id": "abc", "run_id": "r"}),
        );
    }

    #[test]
    fn history_entries_flatten_their_fields_beside_id_time_and_type() {
        let wire = json!({
            "workflow_id": "abc",
            "run_id": "r",
            "events": [
                {"id": 1, "at_ms": 10, "type": "run_started", "workflow_type": "Order",
                 "workflow_id": "abc", "version": "v", "input": {"amount": 1}},
                {"id": 4, "at_ms": 12, "type": "run_completed", "result": "done"},
            ],
        });
        let view: HistoryView = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(view.events[0].event_type, "run_started");
        assert_eq!(view.events[0].details["input"], json!({"amount": 1}));
        assert_eq!(view.events[1].id, 4);
        assert_eq!(view.events[1].at_ms, 12);
        assert_eq!(
            Value::Object(view.events[1].details.clone()),
            json!({"result": "done"})
        );
        round_trip(&view, wire);
    }

    #[test]
    fn a_tree_is_a_run_with_children() {
        let mut child = run(RunStatus::Completed);
        child.workflow_id = "payment-1".into();
        child.parent = Some(child.run_id.clone());
        let tree = TreeView {
            run: run(RunStatus::Waiting),
            children: vec![TreeView {
                run: child,
                children: vec![],
            }],
        };
        let wire = serde_json::to_value(&tree).unwrap();
        let mut top = serde_json::to_value(run(RunStatus::Waiting)).unwrap();
        top["children"] = wire["children"].clone();
        assert_eq!(wire, top, "the run's fields sit beside `children`");
        assert_eq!(wire["children"][0]["workflow_id"], "payment-1");
        assert_eq!(wire["children"][0]["children"], json!([]));
        round_trip(&tree, wire);
    }

    #[test]
    fn cancel_and_query_requests_may_be_empty() {
        round_trip(&CancelRequest::default(), json!({}));
        round_trip(
            &CancelRequest {
                reason: Some("stop".into()),
            },
            json!({"reason": "stop"}),
        );
        assert!(serde_json::from_value::<CancelRequest>(json!({"why": "x"})).is_err());
        round_trip(&QueryRequest::default(), json!({}));
        round_trip(
            &QueryRequest {
                args: Some(json!({"last": 1})),
                run_id: Some("r".into()),
            },
            json!({"args": {"last": 1}, "run_id": "r"}),
        );
        round_trip(
            &QueryAnswer {
                workflow_id: "q".into(),
                run_id: "r".into(),
                result: json!([{"note": "two"}]),
            },
            json!({"workflow_id": "q", "run_id": "r", "result": [{"note": "two"}]}),
        );
        round_trip(
            &QueryAnswer {
                workflow_id: "q".into(),
                run_id: "r".into(),
                result: Value::Null,
            },
            json!({"workflow_id": "q", "run_id": "r", "result": null}),
        );
    }

    #[test]
    fn types_list_handlers_in_flight_versions_and_rejected_files() {
        let view = TypesView {
            types: vec![TypeView {
                name: "Greeter".into(),
                version: "abc".into(),
                file: "plugins/hello.wasm".into(),
                handlers: vec![
                    HandlerView {
                        name: "start".into(),
                        kind: HandlerKind::Start,
                        params: vec![ParamView {
                            name: "name".into(),
                            optional: false,
                            type_: "a string".into(),
                        }],
                        timeout: None,
                    },
                    HandlerView {
                        name: "greet".into(),
                        kind: HandlerKind::Step,
                        params: vec![],
                        timeout: Some(1500),
                    },
                ],
                in_flight: vec![InFlight {
                    version: "abc".into(),
                    runs: 2,
                }],
            }],
            rejected: vec![RejectedPlugin {
                file: "plugins/broken.wasm".into(),
                reason: "not a WebAssembly file".into(),
            }],
        };
        round_trip(
            &view,
            json!({
                "types": [{
                    "name": "Greeter",
                    "version": "abc",
                    "file": "plugins/hello.wasm",
                    "handlers": [
                        {"name": "start", "kind": "start",
                         "params": [{"name": "name", "optional": false, "type": "a string"}]},
                        {"name": "greet", "kind": "step", "params": [], "timeout": 1500},
                    ],
                    "in_flight": [{"version": "abc", "runs": 2}],
                }],
                "rejected": [{"file": "plugins/broken.wasm", "reason": "not a WebAssembly file"}],
            }),
        );
    }

    #[test]
    fn an_upgrade_names_its_type_under_type() {
        round_trip(
            &UpgradeView {
                workflow_type: "Versioned".into(),
                version: "v2".into(),
                upgraded: vec!["r1".into()],
                pinned: vec![PinnedView {
                    run_id: "r2".into(),
                    version: "v1".into(),
                    reason: "event handler `x` is missing".into(),
                }],
            },
            json!({"type": "Versioned", "version": "v2", "upgraded": ["r1"],
                   "pinned": [{"run_id": "r2", "version": "v1",
                               "reason": "event handler `x` is missing"}]}),
        );
    }

    #[test]
    fn health_is_ok() {
        round_trip(&Health::ok(), json!({"status": "ok"}));
    }
}
