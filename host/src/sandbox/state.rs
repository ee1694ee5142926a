//! The data of one activation's wasmtime store, and the host functions the
//! guest imports (`wasmflow:workflow/host`).
//!
//! Everything an activation does to the outside world is buffered here
//! (store writes, log lines) and handed to the scheduler when the handler
//! returns; nothing is visible before the activation commits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host;
use super::bindings::types::{self as wit, ErrorKind as WitKind};
use crate::error::WorkflowError;
use crate::model::Json;

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

/// Per-activation limits enforced by the host functions and the limiter.
#[derive(Debug, Clone, Copy)]
pub struct ActivationLimits {
    pub memory_bytes: usize,
    pub max_value_bytes: usize,
    pub log_bytes: usize,
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
}

pub struct ActivationState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) stdout: MemoryOutputPipe,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) limits: ActivationLimits,
    pub(super) deadline: Instant,
    run: Arc<RunIdentity>,
    handler: String,
    sequence: u64,
    committed: Arc<StoreMap>,
    pub(super) writes: BTreeMap<String, Option<Json>>,
    pub(super) logs: Vec<LogLine>,
    log_bytes: usize,
    pub(super) panic: Option<String>,
    /// Set when the guest broke a rule; the activation fails with it whatever
    /// the handler returns afterwards.
    pub(super) violation: Option<WorkflowError>,
    /// Set by the limiter when a memory grow was refused.
    pub(super) memory_exceeded: bool,
}

impl ActivationState {
    pub fn new(
        limits: ActivationLimits,
        deadline: Instant,
        run: Arc<RunIdentity>,
        handler: String,
        sequence: u64,
        committed: Arc<StoreMap>,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(limits.log_bytes);
        let stderr = MemoryOutputPipe::new(limits.log_bytes);
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
            deadline,
            run,
            handler,
            sequence,
            committed,
            writes: BTreeMap::new(),
            logs: Vec::new(),
            log_bytes: 0,
            panic: None,
            violation: None,
            memory_exceeded: false,
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
        let max = self.limits.max_value_bytes;
        if value.len() > max {
            return Err(self.stop(WorkflowError::quota(
                "max_value_bytes",
                value.len() as u64,
                max as u64,
            )));
        }
        match crate::model::parse_json(&value, &format!("store value for `{key}`")) {
            Ok(json) => {
                self.writes.insert(key, Some(json));
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(wit_error(WitKind::InvalidPayload, e.message))),
        }
    }

    fn store_delete(&mut self, key: String) -> WasmResult<()> {
        self.writes.insert(key, None);
        Ok(())
    }

    fn start_child(
        &mut self,
        child: wit::ChildStart,
    ) -> WasmResult<Result<wit::ChildHandle, wit::Error>> {
        Ok(Err(wit_error(
            WitKind::NotSupported,
            format!(
                "starting child workflows is not supported yet (child `{}` of type `{}`)",
                child.workflow_id, child.workflow_type
            ),
        )))
    }

    fn send_to_parent(
        &mut self,
        event: String,
        _payload: String,
    ) -> WasmResult<Result<(), wit::Error>> {
        if self.run.parent.is_none() {
            return Ok(Err(wit_error(
                WitKind::NoParent,
                format!(
                    "run `{}` has no parent to send event `{event}` to",
                    self.run.run_id
                ),
            )));
        }
        Ok(Err(wit_error(
            WitKind::NotSupported,
            "sending events to a parent is not supported yet".to_owned(),
        )))
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
