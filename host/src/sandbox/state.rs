//! The data of one activation's wasmtime store, and the host functions the
//! guest imports (`wasmflow:workflow/host`).
//!
//! Everything an activation does to the outside world is buffered here
//! (store writes, log lines) and handed to the scheduler when the handler
//! returns; nothing is visible before the activation commits.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host;
use super::bindings::types::{self as wit, ErrorKind as WitKind};
use super::output::BoundedOutput;
use crate::error::{ErrorKind, WorkflowError};
use crate::model::{
    ChildStart, ClosePolicy, HandlerKind, Json, RunId, SentEvent, WorkflowTypeSpec,
};

/// A run's committed store: key → JSON value.
pub type StoreMap = HashMap<String, Json>;

/// Who is running, as the guest sees it through `current-run`.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub workflow_type: String,
    pub workflow_id: String,
    pub run_id: String,
    pub version: String,
    pub parent: Option<ParentIdentity>,
}

#[derive(Debug, Clone)]
pub struct ParentIdentity {
    pub workflow_type: String,
    pub workflow_id: String,
    pub run_id: String,
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

/// Why a [`HostServices`] call failed.
#[derive(Debug, Clone)]
pub enum ServiceError {
    /// The guest asked for something it may not have: an error it can catch.
    Guest(WorkflowError),
    /// The host could not answer (storage failed): the activation is
    /// abandoned and executed again later.
    Host(String),
}

impl From<WorkflowError> for ServiceError {
    fn from(e: WorkflowError) -> Self {
        ServiceError::Guest(e)
    }
}

/// What an activation needs from the rest of the host: lookups beyond the
/// run itself. The scheduler provides it; the sandbox does not know where
/// the answers come from.
pub trait HostServices: Send + Sync + 'static {
    /// Check a child start of run `parent_run_id`: the type exists, the input
    /// fits its start handler, and the workflow id is free (or held by this
    /// parent's own active child). Errors are for the guest to catch.
    fn resolve_child<'a>(
        &'a self,
        parent_run_id: &'a str,
        request: &'a ChildRequest,
    ) -> BoxFuture<'a, Result<ChildResolution, ServiceError>>;

    /// Check that `parent`'s pinned version handles `event` with `payload`.
    fn check_parent_event<'a>(
        &'a self,
        parent: &'a ParentIdentity,
        event: &'a str,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), ServiceError>>;
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

/// What an activation's state starts from. `spec` and `services` are absent
/// for `describe`, which may not call out.
pub struct ActivationInput {
    pub run: Arc<RunIdentity>,
    pub spec: Option<Arc<WorkflowTypeSpec>>,
    pub services: Option<Arc<dyn HostServices>>,
    pub handler: String,
    pub sequence: u64,
    pub committed: Arc<StoreMap>,
    /// The committed store's size: the sum of its keys' and values' lengths.
    pub committed_bytes: usize,
    /// A query: it may read the store but not write it, start children or
    /// send events.
    pub read_only: bool,
}

/// The size a store entry counts for in the `max_store_bytes` quota.
pub fn entry_bytes(key: &str, value: &Json) -> usize {
    key.len() + value.get().len()
}

/// Per-activation limits enforced by the host functions and the limiter.
#[derive(Debug, Clone, Copy)]
pub struct ActivationLimits {
    pub memory_bytes: usize,
    pub max_value_bytes: usize,
    pub max_store_bytes: usize,
    pub log_bytes: usize,
    pub max_children: usize,
    pub max_events_sent: usize,
}

/// Why the host stopped the guest; attached to the wasmtime error so the
/// outcome can be typed without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("the activation exceeded its deadline")]
    Deadline,
    #[error("memory limit of {cap} bytes exceeded (growing to {desired} bytes)")]
    Memory { desired: usize, cap: usize },
    #[error("{0}")]
    Violation(WorkflowError),
    #[error("host fault: {0}")]
    HostFault(String),
}

pub struct ActivationState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) stdout: BoundedOutput,
    pub(super) stderr: BoundedOutput,
    pub(super) limits: ActivationLimits,
    read_only: bool,
    pub(super) deadline: Instant,
    run: Arc<RunIdentity>,
    spec: Option<Arc<WorkflowTypeSpec>>,
    services: Option<Arc<dyn HostServices>>,
    handler: String,
    sequence: u64,
    committed: Arc<StoreMap>,
    /// The store's size with this activation's writes applied.
    store_bytes: usize,
    pub(super) writes: BTreeMap<String, Option<Json>>,
    pub(super) children: Vec<ChildStart>,
    pub(super) sent: Vec<SentEvent>,
    pub(super) logs: Vec<LogLine>,
    log_bytes: usize,
    pub(super) panic: Option<String>,
    /// Set when the guest broke a rule; the activation fails with it whatever
    /// the handler returns afterwards.
    pub(super) violation: Option<WorkflowError>,
    /// Set by the limiter when a memory grow was refused.
    pub(super) memory_exceeded: bool,
    /// Set when the host failed to answer an import; the activation is
    /// discarded and retried.
    pub(super) host_fault: Option<String>,
}

impl ActivationState {
    /// The state of one activation.
    pub fn new(limits: ActivationLimits, deadline: Instant, input: ActivationInput) -> Self {
        let ActivationInput {
            run,
            spec,
            services,
            handler,
            sequence,
            committed,
            committed_bytes,
            read_only,
        } = input;
        let stdout = BoundedOutput::new(limits.log_bytes);
        let stderr = BoundedOutput::new(limits.log_bytes);
        // Nothing is granted: no preopened directories, no environment, no
        // arguments, no network; stdout/stderr are captured, bounded.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        ActivationState {
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
            limits,
            read_only,
            deadline,
            run,
            spec,
            services,
            handler,
            sequence,
            committed,
            store_bytes: committed_bytes,
            writes: BTreeMap::new(),
            children: Vec::new(),
            sent: Vec::new(),
            logs: Vec::new(),
            log_bytes: 0,
            panic: None,
            violation: None,
            memory_exceeded: false,
            host_fault: None,
        }
    }

    /// What `key` counts for in the store now (0 when absent).
    fn current_size(&self, key: &str) -> usize {
        match self.writes.get(key) {
            Some(Some(v)) => entry_bytes(key, v),
            Some(None) => 0,
            None => self.committed.get(key).map_or(0, |v| entry_bytes(key, v)),
        }
    }

    pub(super) fn run_identity(&self) -> &RunIdentity {
        &self.run
    }

    fn push_log(&mut self, level: LogLevel, mut message: String) {
        let room = self.limits.log_bytes.saturating_sub(self.log_bytes);
        if room == 0 {
            return;
        }
        if message.len() > room {
            let mut cut = room;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [log truncated]");
        }
        self.log_bytes += message.len();
        self.logs.push(LogLine { level, message });
    }

    /// Stop a query that tried to change something.
    fn refuse_in_query(&mut self, what: &str) -> WasmResult<()> {
        if self.read_only {
            return Err(self.stop(WorkflowError::new(
                ErrorKind::NotSupported,
                format!("a query is read-only: it cannot {what}"),
            )));
        }
        Ok(())
    }

    /// Fail the activation with `error` now: the guest is stopped.
    fn stop(&mut self, error: WorkflowError) -> wasmtime::Error {
        self.violation = Some(error.clone());
        wasmtime::Error::new(Stop::Violation(error))
    }
}

impl WasiView for ActivationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for ActivationState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(Stop::Memory {
                desired,
                cap: self.limits.memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> WasmResult<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

impl ActivationState {
    /// A guest error goes back to the guest; a host fault stops the
    /// activation.
    fn service_result<T>(
        &mut self,
        result: Result<T, ServiceError>,
    ) -> WasmResult<Result<T, wit::Error>> {
        match result {
            Ok(value) => Ok(Ok(value)),
            Err(ServiceError::Guest(e)) => Ok(Err(to_wit(e))),
            Err(ServiceError::Host(fault)) => {
                self.host_fault = Some(fault.clone());
                Err(wasmtime::Error::new(Stop::HostFault(fault)))
            }
        }
    }

    fn services(&self) -> Result<&Arc<dyn HostServices>, WorkflowError> {
        self.services.as_ref().ok_or_else(|| {
            WorkflowError::new(
                ErrorKind::NotSupported,
                "`describe` cannot start children or send events",
            )
        })
    }

    async fn start_child_checked(
        &mut self,
        child: wit::ChildStart,
    ) -> Result<wit::ChildHandle, ServiceError> {
        let what = format!("the input of child `{}`", child.workflow_id);
        let input_json = crate::model::parse_json(&child.input, &what)?;
        let input: serde_json::Value = serde_json::from_str(input_json.get())
            .map_err(|e| WorkflowError::new(ErrorKind::InvalidPayload, e.to_string()))?;
        if !input.is_object() {
            return Err(ServiceError::Guest(WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!(
                    "{what} must be a JSON object, found {}",
                    wasmflow_payload::json_type(&input)
                ),
            )));
        }
        if let Some(step) = &child.on_completed {
            let known = self
                .spec
                .as_ref()
                .is_some_and(|s| s.handler(HandlerKind::Step, step).is_some());
            if !known {
                return Err(ServiceError::Guest(WorkflowError::new(
                    ErrorKind::UnknownStep,
                    format!(
                        "on_completed names step `{step}`, which workflow type `{}` does not have",
                        self.run.workflow_type
                    ),
                )));
            }
        }
        let handle = |run_id: &RunId| wit::ChildHandle {
            workflow_id: child.workflow_id.clone(),
            run_id: run_id.to_string(),
        };
        // Starting the same workflow id twice in one activation is one child.
        if let Some(existing) = self
            .children
            .iter()
            .find(|c| c.workflow_id == child.workflow_id)
        {
            return Ok(handle(&existing.run_id));
        }
        let request = ChildRequest {
            workflow_type: child.workflow_type.clone(),
            workflow_id: child.workflow_id.clone(),
            input,
        };
        let services = self.services()?.clone();
        match services.resolve_child(&self.run.run_id, &request).await? {
            ChildResolution::Existing { run_id } => Ok(handle(&run_id)),
            ChildResolution::New {
                version,
                start_handler,
            } => {
                let run_id = RunId::new();
                let handle = handle(&run_id);
                self.children.push(ChildStart {
                    run_id,
                    workflow_id: child.workflow_id,
                    workflow_type: child.workflow_type,
                    version,
                    input: input_json,
                    start_handler,
                    timeout: child.timeout_ms.map(Duration::from_millis),
                    on_completed: child.on_completed,
                    close_policy: match child.close_policy {
                        wit::ClosePolicy::Abandon => ClosePolicy::Abandon,
                        wit::ClosePolicy::Cancel => ClosePolicy::Cancel,
                        wit::ClosePolicy::Terminate => ClosePolicy::Terminate,
                    },
                });
                Ok(handle)
            }
        }
    }

    async fn send_to_parent_checked(
        &mut self,
        event: String,
        payload: String,
    ) -> Result<(), ServiceError> {
        let Some(parent) = self.run.parent.clone() else {
            return Err(ServiceError::Guest(WorkflowError::new(
                ErrorKind::NoParent,
                format!(
                    "run `{}` has no parent to send event `{event}` to",
                    self.run.run_id
                ),
            )));
        };
        let what = format!("the payload of event `{event}`");
        let payload_json = crate::model::parse_json(&payload, &what)?;
        let value: serde_json::Value = serde_json::from_str(payload_json.get())
            .map_err(|e| WorkflowError::new(ErrorKind::InvalidPayload, e.to_string()))?;
        let services = self.services()?.clone();
        services.check_parent_event(&parent, &event, &value).await?;
        self.sent.push(SentEvent {
            name: event,
            payload: payload_json,
        });
        Ok(())
    }
}

fn to_wit(e: WorkflowError) -> wit::Error {
    wit::Error {
        kind: super::wit_kind_of(e.kind),
        message: e.message,
        details: e.details.map(|d| d.to_string()),
    }
}

fn wit_error(kind: WitKind, message: String) -> wit::Error {
    wit::Error {
        kind,
        message,
        details: None,
    }
}

impl wit::Host for ActivationState {}

impl host::Host for ActivationState {
    fn store_get(&mut self, key: String) -> WasmResult<Option<String>> {
        let value = match self.writes.get(&key) {
            Some(write) => write.as_ref().map(|v| v.get().to_owned()),
            None => self.committed.get(&key).map(|v| v.get().to_owned()),
        };
        Ok(value)
    }

    fn store_put(&mut self, key: String, value: String) -> WasmResult<Result<(), wit::Error>> {
        self.refuse_in_query("write the store")?;
        let max = self.limits.max_value_bytes;
        if value.len() > max {
            return Err(self.stop(WorkflowError::quota(
                "max_value_bytes",
                value.len() as u64,
                max as u64,
            )));
        }
        let json = match crate::model::parse_json(&value, &format!("store value for `{key}`")) {
            Ok(json) => json,
            Err(e) => return Ok(Err(wit_error(WitKind::InvalidPayload, e.message))),
        };
        let size = self.store_bytes - self.current_size(&key) + entry_bytes(&key, &json);
        if size > self.limits.max_store_bytes {
            return Err(self.stop(WorkflowError::quota(
                "max_store_bytes",
                size as u64,
                self.limits.max_store_bytes as u64,
            )));
        }
        self.store_bytes = size;
        self.writes.insert(key, Some(json));
        Ok(Ok(()))
    }

    fn store_delete(&mut self, key: String) -> WasmResult<()> {
        self.refuse_in_query("write the store")?;
        self.store_bytes -= self.current_size(&key);
        self.writes.insert(key, None);
        Ok(())
    }

    async fn start_child(
        &mut self,
        child: wit::ChildStart,
    ) -> WasmResult<Result<wit::ChildHandle, wit::Error>> {
        self.refuse_in_query("start children")?;
        if self.children.len() >= self.limits.max_children {
            let max = self.limits.max_children as u64;
            return Err(self.stop(WorkflowError::quota(
                "max_children_per_activation",
                max + 1,
                max,
            )));
        }
        let result = self.start_child_checked(child).await;
        self.service_result(result)
    }

    async fn send_to_parent(
        &mut self,
        event: String,
        payload: String,
    ) -> WasmResult<Result<(), wit::Error>> {
        self.refuse_in_query("send events")?;
        if self.sent.len() >= self.limits.max_events_sent {
            let max = self.limits.max_events_sent as u64;
            return Err(self.stop(WorkflowError::quota(
                "max_events_per_activation",
                max + 1,
                max,
            )));
        }
        if payload.len() > self.limits.max_value_bytes {
            return Err(self.stop(WorkflowError::quota(
                "max_value_bytes",
                payload.len() as u64,
                self.limits.max_value_bytes as u64,
            )));
        }
        let result = self.send_to_parent_checked(event, payload).await;
        self.service_result(result)
    }

    fn now(&mut self) -> WasmResult<u64> {
        Ok(crate::model::now_ms())
    }

    fn random(&mut self) -> WasmResult<u64> {
        Ok(rand::random())
    }

    fn uuid4(&mut self) -> WasmResult<String> {
        Ok(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    fn task_lookup(
        &mut self,
        _name: String,
        _occurrence: u32,
    ) -> WasmResult<Option<wit::TaskOutcome>> {
        Ok(None)
    }

    fn task_record(
        &mut self,
        name: String,
        _occurrence: u32,
        _outcome: wit::TaskOutcome,
    ) -> WasmResult<Result<(), wit::Error>> {
        Ok(Err(wit_error(
            WitKind::NotSupported,
            format!("recording tasks is not supported yet (task `{name}`)"),
        )))
    }

    fn log(&mut self, level: wit::LogLevel, message: String) -> WasmResult<()> {
        let level = match level {
            wit::LogLevel::Trace => LogLevel::Trace,
            wit::LogLevel::Debug => LogLevel::Debug,
            wit::LogLevel::Info => LogLevel::Info,
            wit::LogLevel::Warn => LogLevel::Warn,
            wit::LogLevel::Error => LogLevel::Error,
        };
        self.push_log(level, message);
        Ok(())
    }

    fn report_panic(&mut self, message: String) -> WasmResult<()> {
        let mut message = message;
        if message.len() > 4096 {
            let mut cut = 4096;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        self.panic = Some(message);
        Ok(())
    }

    fn current_run(&mut self) -> WasmResult<wit::RunInfo> {
        let run = &self.run;
        Ok(wit::RunInfo {
            workflow_type: run.workflow_type.clone(),
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.clone(),
            version: run.version.clone(),
            parent: run.parent.as_ref().map(|p| wit::ParentInfo {
                workflow_type: p.workflow_type.clone(),
                workflow_id: p.workflow_id.clone(),
                run_id: p.run_id.clone(),
            }),
            handler: self.handler.clone(),
            sequence: self.sequence,
        })
    }
}
