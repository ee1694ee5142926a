//! The data of one activation's wasmtime store, and the host functions the
//! guest imports (`wasmflow:workflow/host`).
//!
//! Everything an activation does to the outside world is buffered here
//! (store writes, log lines) and handed to the engine when the handler
//! returns; nothing is visible before the activation commits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host;
use super::bindings::types::{self as wit, ErrorKind as WitKind};
use super::outbound::Outbound;
use super::output::BoundedOutput;
use super::tasks::Tasks;
use wasmflow_core::activation::{
    ChildRequest, ChildResolution, HostFault, HostServices, LogLevel, LogLine, RunIdentity,
    ServiceError, StoreMap, entry_bytes,
};
use wasmflow_core::grant::{Grants, OutboundLimits};
use wasmflow_core::journal::Journal;
use wasmflow_core::model::{ChildStart, Json, RunId, SentEvent, WorkflowTypeSpec, shorten};
use wasmflow_core::{ErrorKind, HandlerKind, WorkflowError};

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
    /// What earlier executions of the activation recorded.
    pub journal: Arc<Journal>,
    /// What the run may reach.
    pub grants: Arc<Grants>,
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
    pub max_key_bytes: usize,
    pub max_keys_changed: usize,
    pub max_name_bytes: usize,
    pub max_message_bytes: usize,
    pub max_log_lines: usize,
    pub max_log_line_bytes: usize,
    pub max_details_bytes: usize,
    pub outbound: OutboundLimits,
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
    HostFault(HostFault),
    /// A task's retry delay does not fit the step timeout: the activation
    /// is executed again when it is due.
    #[error("parked until a task's retry is due")]
    Park,
}

pub struct ActivationState {
    wasi: WasiCtx,
    http: wasmtime_wasi_http::WasiHttpCtx,
    pub(super) outbound: Outbound,
    table: ResourceTable,
    /// Tasks and recorded values (`tasks.rs`).
    pub(super) tasks: Tasks,
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
    /// Log lines and bytes over the bounds: counted, not kept.
    dropped_lines: usize,
    dropped_bytes: usize,
    pub(super) panic: Option<String>,
    /// Set when the guest broke a rule; the activation fails with it whatever
    /// the handler returns afterwards.
    pub(super) violation: Option<WorkflowError>,
    /// Set by the limiter when a memory grow was refused.
    pub(super) memory_exceeded: bool,
    /// Set when the host failed to answer an import; the activation is
    /// discarded and retried.
    pub(super) host_fault: Option<HostFault>,
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
            journal,
            grants,
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
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            outbound: Outbound::new(
                grants,
                limits.outbound,
                services.clone().map(|services| (services, run.clone())),
            ),
            table: ResourceTable::new(),
            tasks: Tasks::new(journal),
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
            dropped_lines: 0,
            dropped_bytes: 0,
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

    pub(super) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Keep a log line within the bounds: at most `max_log_lines` lines of
    /// at most `max_log_line_bytes` each and `log_bytes` in all per
    /// activation; the rest is counted (see [`Self::finish_logs`]). A line
    /// kept goes to the host's log at once (target `wasmflow::guest`), so
    /// that a long step's lines show while it runs.
    pub(super) fn push_log(&mut self, level: LogLevel, message: &str) {
        let room = self
            .limits
            .log_bytes
            .saturating_sub(self.log_bytes)
            .min(self.limits.max_log_line_bytes);
        if self.logs.len() >= self.limits.max_log_lines || room == 0 {
            self.dropped_lines += 1;
            self.dropped_bytes += message.len();
            return;
        }
        let kept = cut_at(message, room);
        let mut line = kept.to_owned();
        if kept.len() < message.len() {
            self.dropped_bytes += message.len() - kept.len();
            line.push_str(" [line truncated]");
        }
        self.log_bytes += kept.len();
        self.emit_log(level, &line);
        self.logs.push(LogLine {
            level,
            message: line,
        });
    }

    /// Write a guest log line to the host's log, tagged with the run: one
    /// line (control characters escaped, a newline as `\n`), a root event
    /// (`parent: None`) so that it names the run once.
    fn emit_log(&self, level: LogLevel, message: &str) {
        let (run_id, workflow_id, workflow_type, handler) = (
            &self.run.run_id,
            &self.run.workflow_id,
            &self.run.workflow_type,
            &self.handler,
        );
        let message = one_line(message);
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "wasmflow::guest", parent: None, %workflow_id, %run_id, %workflow_type, %handler, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "wasmflow::guest", parent: None, %workflow_id, %run_id, %workflow_type, %handler, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "wasmflow::guest", parent: None, %workflow_id, %run_id, %workflow_type, %handler, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "wasmflow::guest", parent: None, %workflow_id, %run_id, %workflow_type, %handler, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "wasmflow::guest", parent: None, %workflow_id, %run_id, %workflow_type, %handler, "{message}")
            }
        }
    }

    /// The log lines kept, with one line summarising what was dropped.
    pub(super) fn finish_logs(&mut self) -> Vec<LogLine> {
        let mut logs = std::mem::take(&mut self.logs);
        if self.dropped_lines > 0 || self.dropped_bytes > 0 {
            let message = format!(
                "[{} more log lines and {} more bytes dropped: at most {} lines and {} bytes \
                 per activation (max_log_lines, log_bytes)]",
                self.dropped_lines,
                self.dropped_bytes,
                self.limits.max_log_lines,
                self.limits.log_bytes
            );
            self.emit_log(LogLevel::Warn, &message);
            logs.push(LogLine {
                level: LogLevel::Warn,
                message,
            });
        }
        logs
    }

    /// Fail the activation if `name` is longer than `max_name_bytes`.
    pub(super) fn check_name(&mut self, name: &str) -> WasmResult<()> {
        self.within("max_name_bytes", name.len(), self.limits.max_name_bytes)
    }

    /// Fail the activation with `QuotaExceeded` naming `limit` if `value`
    /// is over `max`.
    pub(super) fn within(&mut self, limit: &str, value: usize, max: usize) -> WasmResult<()> {
        if value > max {
            return Err(self.stop(WorkflowError::quota(limit, value as u64, max as u64)));
        }
        Ok(())
    }

    /// Fail the activation if `key` is too long, or if writing it would
    /// change more keys than one activation may.
    fn check_key(&mut self, key: &str) -> WasmResult<()> {
        self.within("max_key_bytes", key.len(), self.limits.max_key_bytes)?;
        if self.writes.contains_key(key) {
            return Ok(());
        }
        let max = self.limits.max_keys_changed;
        self.within(
            "max_keys_changed_per_activation",
            self.writes.len() + 1,
            max,
        )
    }

    /// Stop a query that tried to change something.
    pub(super) fn refuse_in_query(&mut self, what: &str) -> WasmResult<()> {
        if self.read_only {
            return Err(self.stop(WorkflowError::new(
                ErrorKind::NotSupported,
                format!("a query is read-only: it cannot {what}"),
            )));
        }
        Ok(())
    }

    /// Fail the activation with `error` now: the guest is stopped.
    pub(super) fn stop(&mut self, error: WorkflowError) -> wasmtime::Error {
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

impl wasmtime_wasi_http::WasiHttpView for ActivationState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
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
    pub(super) fn service_result<T>(
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

    pub(super) fn services(&self) -> Result<&Arc<dyn HostServices>, WorkflowError> {
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
        // The same charset rule as the door's (a catchable error here).
        let (timeout, input_json, input) = crate::decode::child_start(&child)?;
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
        let resolved = self
            .on_host(services.resolve_child(self.run.run_id, &request))
            .await?;
        match resolved {
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
                    timeout,
                    on_completed: child.on_completed,
                    close_policy: crate::close_policy_from_wit(child.close_policy),
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
        let (payload_json, value) = crate::decode::event_payload(&event, &payload)?;
        let services = self.services()?.clone();
        self.on_host(services.check_parent_event(&parent, &event, &value))
            .await?;
        self.sent.push(SentEvent {
            name: event,
            payload: payload_json,
        });
        Ok(())
    }
}

impl ActivationState {
    /// Await a call into the host's services (a database read or a durable
    /// record): the time it takes, long on a busy database, is the host's,
    /// not the handler's, so the step deadline moves by it.
    pub(super) async fn on_host<T>(&mut self, call: impl std::future::Future<Output = T>) -> T {
        let began = Instant::now();
        let out = call.await;
        self.deadline += began.elapsed();
        out
    }
}

/// The longest prefix of `text` of at most `max` bytes.
pub(super) fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

pub(super) fn to_wit(e: WorkflowError) -> wit::Error {
    wit::Error {
        kind: crate::error_kind_to_wit(e.kind),
        message: e.message,
        details: e.details.map(|d| d.to_string()),
    }
}

pub(super) fn wit_error(kind: WitKind, message: String) -> wit::Error {
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
        self.check_key(&key)?;
        self.within("max_value_bytes", value.len(), self.limits.max_value_bytes)?;
        let what = format!("store value for `{}`", shorten(&key));
        let json = match wasmflow_core::model::parse_json(&value, &what) {
            Ok(json) => json,
            Err(e) => return Ok(Err(wit_error(WitKind::InvalidPayload, e.message))),
        };
        let size = self.store_bytes - self.current_size(&key) + entry_bytes(&key, &json);
        self.within("max_store_bytes", size, self.limits.max_store_bytes)?;
        self.store_bytes = size;
        self.writes.insert(key, Some(json));
        Ok(Ok(()))
    }

    fn store_delete(&mut self, key: String) -> WasmResult<()> {
        self.refuse_in_query("write the store")?;
        self.check_key(&key)?;
        self.store_bytes -= self.current_size(&key);
        self.writes.insert(key, None);
        Ok(())
    }

    async fn start_child(
        &mut self,
        child: wit::ChildStart,
    ) -> WasmResult<Result<wit::ChildHandle, wit::Error>> {
        self.refuse_in_query("start children")?;
        let max = self.limits.max_children;
        self.within("max_children_per_activation", self.children.len() + 1, max)?;
        self.check_name(&child.workflow_id)?;
        self.check_name(&child.workflow_type)?;
        if let Some(step) = &child.on_completed {
            self.check_name(step)?;
        }
        self.within(
            "max_value_bytes",
            child.input.len(),
            self.limits.max_value_bytes,
        )?;
        let result = self.start_child_checked(child).await;
        self.service_result(result)
    }

    async fn send_to_parent(
        &mut self,
        event: String,
        payload: String,
    ) -> WasmResult<Result<(), wit::Error>> {
        self.refuse_in_query("send events")?;
        let max = self.limits.max_events_sent;
        self.within("max_events_per_activation", self.sent.len() + 1, max)?;
        self.check_name(&event)?;
        self.within(
            "max_value_bytes",
            payload.len(),
            self.limits.max_value_bytes,
        )?;
        let result = self.send_to_parent_checked(event, payload).await;
        self.service_result(result)
    }

    fn now(&mut self) -> WasmResult<u64> {
        self.now_recorded()
    }

    fn random(&mut self) -> WasmResult<u64> {
        self.random_recorded()
    }

    fn uuid4(&mut self) -> WasmResult<String> {
        self.uuid4_recorded()
    }

    async fn task_begin(
        &mut self,
        name: String,
        policy: wit::RetryPolicy,
    ) -> WasmResult<Result<wit::TaskBegun, wit::Error>> {
        self.begin_task(name, policy).await
    }

    async fn task_end(
        &mut self,
        outcome: Result<String, wit::Error>,
    ) -> WasmResult<wit::TaskEnded> {
        self.end_task(outcome).await
    }

    fn log(&mut self, level: wit::LogLevel, message: String) -> WasmResult<()> {
        let level = match level {
            wit::LogLevel::Trace => LogLevel::Trace,
            wit::LogLevel::Debug => LogLevel::Debug,
            wit::LogLevel::Info => LogLevel::Info,
            wit::LogLevel::Warn => LogLevel::Warn,
            wit::LogLevel::Error => LogLevel::Error,
        };
        self.push_log(level, &message);
        Ok(())
    }

    fn report_panic(&mut self, message: String) -> WasmResult<()> {
        self.panic = Some(cut_at(&message, self.limits.max_message_bytes).to_owned());
        Ok(())
    }

    fn current_run(&mut self) -> WasmResult<wit::RunInfo> {
        let run = &self.run;
        Ok(wit::RunInfo {
            workflow_type: run.workflow_type.clone(),
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.to_string(),
            version: run.version.clone(),
            parent: run.parent.as_ref().map(|p| wit::ParentInfo {
                workflow_type: p.workflow_type.clone(),
                workflow_id: p.workflow_id.clone(),
                run_id: p.run_id.to_string(),
            }),
            handler: self.handler.clone(),
            sequence: self.sequence,
        })
    }
}

/// `message` on one line: newline, carriage return and tab as `\n`, `\r`
/// and `\t`, any other control character (an ANSI escape's ESC among them)
/// as `\u{..}`; borrowed when there is none.
pub(crate) fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut line = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => line.extend(c.escape_unicode()),
            c => line.push(c),
        }
    }
    std::borrow::Cow::Owned(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_stays_one_line() {
        assert_eq!(one_line("plain"), "plain");
        assert!(matches!(one_line("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(one_line("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(one_line("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(one_line("é ✓"), "é ✓");
    }

    fn state(max_log_lines: usize, log_bytes: usize) -> ActivationState {
        let limits = ActivationLimits {
            memory_bytes: 1 << 20,
            max_value_bytes: 1 << 10,
            max_store_bytes: 1 << 10,
            log_bytes,
            max_children: 1,
            max_events_sent: 1,
            max_key_bytes: 8,
            max_keys_changed: 2,
            max_name_bytes: 8,
            max_message_bytes: 8,
            max_log_lines,
            max_log_line_bytes: 10,
            max_details_bytes: 64,
            outbound: OutboundLimits::default(),
        };
        let input = ActivationInput {
            run: Arc::new(RunIdentity {
                workflow_type: "T".into(),
                workflow_id: "t".into(),
                run_id: RunId::new(),
                version: "v".into(),
                parent: None,
            }),
            spec: None,
            services: None,
            handler: "start".into(),
            sequence: 0,
            committed: Arc::default(),
            committed_bytes: 0,
            read_only: false,
            journal: Arc::default(),
            grants: Arc::default(),
        };
        ActivationState::new(limits, Instant::now(), input)
    }

    #[test]
    fn log_lines_are_bounded_by_count_and_bytes_and_the_rest_summarised() {
        let mut s = state(3, 1 << 10);
        for _ in 0..1_000_000 {
            s.push_log(LogLevel::Info, "");
        }
        let logs = s.finish_logs();
        assert_eq!(logs.len(), 4);
        assert!(
            logs[3].message.contains("999997 more log lines"),
            "{}",
            logs[3].message
        );

        let mut s = state(100, 15);
        s.push_log(LogLevel::Info, "0123456789abcdef");
        s.push_log(LogLevel::Info, "0123456789");
        s.push_log(LogLevel::Info, "x");
        let logs = s.finish_logs();
        assert_eq!(logs[0].message, "0123456789 [line truncated]");
        assert_eq!(logs[1].message, "01234 [line truncated]");
        assert!(
            logs[2]
                .message
                .contains("1 more log lines and 12 more bytes"),
            "{}",
            logs[2].message
        );
        assert_eq!(logs.len(), 3);
    }

    #[test]
    fn nothing_is_summarised_when_nothing_was_dropped() {
        let mut s = state(3, 1 << 10);
        s.push_log(LogLevel::Warn, "fine");
        assert_eq!(s.finish_logs().len(), 1);
    }

    #[test]
    fn long_keys_and_too_many_changed_keys_stop_the_guest() {
        let mut s = state(3, 1 << 10);
        assert!(s.check_key("123456789").is_err());
        assert!(
            s.violation
                .as_ref()
                .unwrap()
                .message
                .contains("max_key_bytes")
        );
        let mut s = state(3, 1 << 10);
        for key in ["a", "b"] {
            s.check_key(key).unwrap();
            s.writes.insert(key.into(), None);
        }
        s.check_key("a").unwrap();
        assert!(s.check_key("c").is_err());
        let v = s.violation.unwrap();
        assert!(v.message.contains("max_keys_changed_per_activation"), "{v}");
    }
}
