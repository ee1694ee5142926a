//! The interface between the engine and the sandbox.
//!
//! The engine decides *what* runs — which handler of which run, with which
//! input and committed store — and the sandbox decides *how*: a fresh,
//! limited instance of a compiled component. They meet here:
//!
//! - [`Sandbox::load`] turns a component's bytes into a [`ComponentVersion`]
//!   (compiled, linked, described);
//! - [`ComponentVersion::activate`] runs one [`ActivationRequest`] and
//!   returns an [`ActivationOutcome`]: the directive or typed error, and
//!   everything the handler buffered (store writes, children, events for the
//!   parent, log lines);
//! - [`HostServices`] is what an activation may ask of the rest of the host
//!   while it runs (is this child start allowed? does the parent handle this
//!   event?), without the sandbox knowing where the answers come from.
//!
//! Nothing here knows wasmtime: the compiled code sits behind
//! [`CompiledComponent`], which the sandbox crate implements.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmflow_protocol::HandlerKind;

use crate::error::WorkflowError;
use crate::grant::Grants;
use crate::journal::{Journal, JournalEntry};
use crate::model::{ChildStart, Directive, Json, RunId, SentEvent, WorkflowTypeSpec};

/// A run's committed store: key → JSON value.
pub type StoreMap = HashMap<String, Json>;

/// Who is running, as the guest sees it through `current-run`.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub workflow_type: String,
    pub workflow_id: String,
    pub run_id: RunId,
    pub version: String,
    pub parent: Option<ParentIdentity>,
}

#[derive(Debug, Clone)]
pub struct ParentIdentity {
    pub workflow_type: String,
    pub workflow_id: String,
    pub run_id: RunId,
    /// The component version the parent is pinned to.
    pub version: String,
}

/// A boxed future, for the object-safe [`HostServices`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A child start as the guest asked for it.
#[derive(Debug, Clone)]
pub struct ChildRequest {
    pub workflow_type: String,
    pub workflow_id: String,
    pub input: serde_json::Value,
}

/// How a child start resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildResolution {
    /// Create a new run of this version, starting with this handler.
    New {
        version: String,
        start_handler: String,
    },
    /// The parent's own child with this workflow id is still active: the same
    /// handle again.
    Existing { run_id: RunId },
}

/// The host could not serve an activation (storage failed, a pinned
/// version would not load): not the guest's doing. The activation is
/// abandoned and executed again later; the cause is kept.
pub type HostFault = Arc<dyn std::error::Error + Send + Sync>;

/// Why a [`HostServices`] call failed.
#[derive(Debug, Clone)]
pub enum ServiceError {
    /// The guest asked for something it may not have: an error it can catch.
    Guest(WorkflowError),
    /// The host could not answer.
    Host(HostFault),
}

impl ServiceError {
    /// A host fault caused by `e`.
    pub fn host(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ServiceError::Host(Arc::new(e))
    }
}

impl From<WorkflowError> for ServiceError {
    fn from(e: WorkflowError) -> Self {
        ServiceError::Guest(e)
    }
}

/// What an activation needs from the rest of the host: lookups beyond the
/// run itself. The engine provides it; the sandbox does not know where
/// the answers come from.
pub trait HostServices: Send + Sync + 'static {
    /// Check a child start of run `parent_run_id`: the type exists, the input
    /// fits its start handler, and the workflow id is free (or held by this
    /// parent's own active child). Errors are for the guest to catch.
    fn resolve_child<'a>(
        &'a self,
        parent_run_id: RunId,
        request: &'a ChildRequest,
    ) -> BoxFuture<'a, Result<ChildResolution, ServiceError>>;

    /// Check that `parent`'s pinned version handles `event` with `payload`.
    fn check_parent_event<'a>(
        &'a self,
        parent: &'a ParentIdentity,
        event: &'a str,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), ServiceError>>;

    /// Append `entries` to the journal of run `run_id`'s current activation,
    /// durably, if the run is still running at sequence number `sequence`
    /// (SPEC 8: a task's outcome is recorded before the handler goes on).
    /// A run that moved on is a host fault: the activation is abandoned.
    fn record(
        &self,
        run_id: RunId,
        sequence: u64,
        entries: Vec<JournalEntry>,
    ) -> BoxFuture<'_, Result<(), ServiceError>>;

    /// The time of runs now, in milliseconds since the Unix epoch (the
    /// guest's `now`, task attempts' times, retry due times): the host's
    /// `Clock` (module `clock`); the system clock by default.
    fn now_ms(&self) -> u64 {
        crate::model::now_ms()
    }

    /// The outcome a test stubbed for task `task` of runs of
    /// `workflow_type` ([`Stubs`]): the sandbox records it as the task's
    /// attempt without running the task, and the task returns it, as a
    /// recorded outcome is returned on re-execution. `None` (always, in a
    /// real host): the task runs.
    fn stubbed_task(&self, workflow_type: &str, task: &str) -> Option<crate::journal::TaskResult> {
        let _ = (workflow_type, task);
        None
    }

    /// The response a test stubbed for an outbound request of a run of
    /// `workflow_type` ([`Stubs`]): the sandbox answers the request with
    /// it, without a grant check or a connection, and records the request
    /// for the task attempt like a real one. `None` (always, in a real
    /// host): the request goes out under the grants.
    fn stubbed_http(&self, workflow_type: &str, request: &StubRequest) -> Option<StubResponse> {
        let _ = (workflow_type, request);
        None
    }

    /// Whether a task's retry delay may be waited for inside the
    /// activation (time passes by itself); `false`: the run parks until the
    /// retry is due.
    fn waits_in_activation(&self) -> bool {
        true
    }
}

/// What a test harness gives instead of running tasks or sending
/// outbound requests ([`HostServices::stubbed_task`],
/// [`HostServices::stubbed_http`]).
pub trait Stubs: Send + Sync + std::fmt::Debug + 'static {
    /// The outcome of task `task` of a run of `workflow_type`; `None`: run it.
    fn task(&self, workflow_type: &str, task: &str) -> Option<crate::journal::TaskResult>;

    /// The response to `request` of a run of `workflow_type`; `None`: send it.
    fn http(&self, workflow_type: &str, request: &StubRequest) -> Option<StubResponse>;
}

/// An outbound request as a stub sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `scheme://host[:port]/path`, without the query string (the port
    /// only when it is not the scheme's default).
    pub url: String,
}

/// A stubbed response to an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A line the guest logged (through `log`, or on stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The size a store entry counts for in the `max_store_bytes` quota.
pub fn entry_bytes(key: &str, value: &Json) -> usize {
    key.len() + value.get().len()
}

/// Why a component could not be loaded; the message says what is wrong
/// with it (the caller adds which file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// A compiled, linked and described component: one plugin at one version.
pub struct ComponentVersion {
    /// SHA-256 of the component's bytes, hex: the version runs are pinned to.
    pub hash: String,
    /// The workflow types it declares, validated.
    pub types: Vec<Arc<WorkflowTypeSpec>>,
    /// The memory cap of its instances.
    pub memory_bytes: usize,
    /// The compiled code, as the sandbox that loaded it keeps it.
    pub compiled: Arc<dyn CompiledComponent>,
}

impl std::fmt::Debug for ComponentVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentVersion")
            .field("hash", &self.hash)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl ComponentVersion {
    pub fn workflow_type(&self, name: &str) -> Option<&Arc<WorkflowTypeSpec>> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Run one handler in a fresh instance. Waits for a free instance slot
    /// first (back-pressure, never an error).
    pub fn activate(&self, request: ActivationRequest) -> BoxFuture<'_, ActivationOutcome> {
        self.compiled.activate(self.memory_bytes, request)
    }
}

/// A compiled and linked component, as a sandbox keeps it.
pub trait CompiledComponent: Send + Sync + 'static {
    /// Run one handler in a fresh instance with at most `memory_bytes` of
    /// memory. No guest failure escapes as anything but a typed error in
    /// the outcome.
    fn activate(
        &self,
        memory_bytes: usize,
        request: ActivationRequest,
    ) -> BoxFuture<'_, ActivationOutcome>;
}

/// Where components are compiled and activations run.
pub trait Sandbox: Send + Sync + 'static {
    /// Compile, link and describe a component whose instances get
    /// `memory_bytes` of memory at most (capped by the sandbox's own limit).
    fn load(
        &self,
        bytes: Arc<[u8]>,
        memory_bytes: Option<usize>,
    ) -> BoxFuture<'_, Result<ComponentVersion, LoadError>>;
}

/// One handler invocation to run.
pub struct ActivationRequest {
    pub run: Arc<RunIdentity>,
    /// The run's workflow type, as its component describes it.
    pub spec: Arc<WorkflowTypeSpec>,
    /// Lookups beyond the run (child starts, events to the parent).
    pub services: Arc<dyn HostServices>,
    pub kind: HandlerKind,
    pub handler: String,
    pub input: Json,
    pub sequence: u64,
    /// The run's committed store.
    pub store: Arc<StoreMap>,
    /// Its size (see [`entry_bytes`]), for the `max_store_bytes` quota.
    pub store_bytes: usize,
    pub timeout: Duration,
    /// What earlier executions of this activation recorded.
    pub journal: Arc<Journal>,
    /// What the run may reach outside itself.
    pub grants: Arc<Grants>,
}

/// What an activation did. Nothing of it is visible until the engine
/// commits it.
pub struct ActivationOutcome {
    pub result: Result<Directive, WorkflowError>,
    /// Store writes (`None`: delete), in key order.
    pub writes: BTreeMap<String, Option<Json>>,
    /// Children to create with the commit.
    pub children: Vec<ChildStart>,
    /// Events for the parent, delivered with the commit.
    pub sent: Vec<SentEvent>,
    pub logs: Vec<LogLine>,
    pub duration: Duration,
    /// The host could not serve the activation (not the guest's fault):
    /// nothing of it may be committed; it runs again.
    pub host_fault: Option<HostFault>,
    /// A task's retry delay is longer than the step timeout allows: the
    /// activation stopped, and is to be executed again at this time. Only
    /// its journal (already recorded) is kept.
    pub retry_at_ms: Option<u64>,
}

impl ActivationOutcome {
    /// An outcome that is only an error (the handler did not run).
    pub fn failed(error: WorkflowError) -> Self {
        ActivationOutcome {
            result: Err(error),
            writes: BTreeMap::new(),
            children: Vec::new(),
            sent: Vec::new(),
            logs: Vec::new(),
            duration: Duration::ZERO,
            host_fault: None,
            retry_at_ms: None,
        }
    }
}
