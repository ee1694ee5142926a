//! What a host tells its operators about runs: one log line per change of a
//! run's life (started, completed, failed, cancelled, terminated; `retry`
//! and `upgrade` log theirs where they happen), and, with a [`SpanSink`],
//! OpenTelemetry spans.
//!
//! A run outlives its activations and the host that started it, so its
//! spans cannot be one open span in memory. The ids are derived instead:
//! a run's trace id is the 128 bits of its root run's id (a root run is its
//! own root; a child is in its parent's trace), and its span id is the low
//! 64 bits of its own run id. An activation's span is emitted as it ends,
//! with the run's (derived) span id as its parent, and a task attempt's
//! span as it is recorded, with the activation's as its parent. The run's
//! own span is emitted when the run ends, from its stored times (created
//! → ended), with its parent run's span as its parent. Every host computes
//! the same ids, so the tree holds across restarts and take-overs.
//!
//! Spans go to the sink as they end (an SDK span processor: the binary's
//! batches them to an OTLP exporter); the engine never waits on an export,
//! and without a sink nothing here but the log lines runs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use wasmflow_core::RunStatus;
use wasmflow_core::activation::RunIdentity;
use wasmflow_core::journal::{JournalEntry, TaskAttempt};
use wasmflow_core::model::{Pending, RunId};
use wasmflow_core::plan::NextState;
use wasmflow_storage::RunRecord;

use crate::plugins::short_version;

/// Where a host's finished spans go: an OpenTelemetry SDK span processor
/// (e.g. a `BatchSpanProcessor` over an OTLP exporter). The engine calls
/// only its `on_end`; whoever made it flushes and shuts it down.
pub type SpanSink = Arc<dyn SpanProcessor>;

/// The trace of the runs under root run `root`.
pub(crate) fn trace_id(root: RunId) -> TraceId {
    TraceId::from(uuid_bits(root))
}

/// The span of run `run` (the random low half of its UUID v7; never the
/// invalid zero).
pub(crate) fn run_span_id(run: RunId) -> SpanId {
    match uuid_bits(run) as u64 {
        0 => SpanId::from(1),
        low => SpanId::from(low),
    }
}

fn uuid_bits(run: RunId) -> u128 {
    run.as_u128()
}

fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The attribute names, one place.
mod key {
    pub const WORKFLOW_ID: &str = "wasmflow.workflow_id";
    pub const RUN_ID: &str = "wasmflow.run_id";
    pub const WORKFLOW_TYPE: &str = "wasmflow.workflow_type";
    pub const VERSION: &str = "wasmflow.version";
    pub const PARENT_RUN_ID: &str = "wasmflow.parent_run_id";
    pub const HANDLER: &str = "wasmflow.handler";
    pub const HANDLER_KIND: &str = "wasmflow.handler_kind";
    pub const SEQUENCE: &str = "wasmflow.sequence";
    pub const OUTCOME: &str = "wasmflow.outcome";
    pub const ERROR_KIND: &str = "wasmflow.error_kind";
    pub const TASK: &str = "wasmflow.task";
    pub const ATTEMPT: &str = "wasmflow.attempt";
    pub const IDEMPOTENCY_KEY: &str = "wasmflow.idempotency_key";
}

/// A host's span emitter.
#[derive(Debug)]
pub(crate) struct Spans {
    sink: SpanSink,
    ids: RandomIdGenerator,
    scope: InstrumentationScope,
    /// The span of the activation each run executes now, for its tasks.
    current: Mutex<HashMap<RunId, SpanContext>>,
}

impl Spans {
    pub(crate) fn new(sink: SpanSink) -> Arc<Spans> {
        Arc::new(Spans {
            sink,
            ids: RandomIdGenerator::default(),
            scope: InstrumentationScope::builder("wasmflow")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            current: Mutex::new(HashMap::new()),
        })
    }

    fn context(trace: TraceId, span: SpanId) -> SpanContext {
        SpanContext::new(trace, span, TraceFlags::SAMPLED, false, TraceState::NONE)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        context: SpanContext,
        parent: SpanId,
        name: String,
        start: SystemTime,
        end: SystemTime,
        attributes: Vec<KeyValue>,
        status: Status,
    ) {
        self.sink.on_end(SpanData {
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(name),
            start_time: start,
            end_time: end.max(start),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }

    /// Open the span of the activation `run` is about to execute; it is
    /// emitted when the guard drops (outcome "abandoned" unless set).
    pub(crate) fn activation(
        self: &Arc<Self>,
        run: &RunIdentity,
        root: RunId,
        pending: &Pending,
        sequence: u64,
    ) -> ActivationSpan {
        let context = Self::context(trace_id(root), self.ids.new_span_id());
        if let Ok(mut current) = self.current.lock() {
            current.insert(run.run_id, context.clone());
        }
        let mut attributes = identity(run);
        attributes.extend([
            KeyValue::new(key::HANDLER, pending.handler.clone()),
            KeyValue::new(key::HANDLER_KIND, pending.kind.as_str()),
            KeyValue::new(key::SEQUENCE, sequence as i64),
        ]);
        ActivationSpan {
            spans: self.clone(),
            run_id: run.run_id,
            context,
            parent: run_span_id(run.run_id),
            name: format!("{} {}", pending.kind, pending.handler),
            start: SystemTime::now(),
            attributes,
            outcome: "abandoned",
            error: None,
        }
    }

    /// Spans for the task attempts an activation of `run_id` recorded.
    pub(crate) fn tasks(&self, run_id: RunId, entries: &[JournalEntry]) {
        let Some(parent) = self
            .current
            .lock()
            .ok()
            .and_then(|c| c.get(&run_id).cloned())
        else {
            return;
        };
        for entry in entries {
            if let JournalEntry::Task(attempt) = entry {
                self.task(&parent, run_id, attempt);
            }
        }
    }

    fn task(&self, parent: &SpanContext, run_id: RunId, attempt: &TaskAttempt) {
        let start = time_of(attempt.started_ms);
        let end = start + Duration::from_micros(attempt.duration_us);
        let (outcome, status, error_kind) = match &attempt.result {
            wasmflow_core::journal::TaskResult::Value(_) => ("ok", Status::Ok, None),
            wasmflow_core::journal::TaskResult::Error(e) => (
                if attempt.retry_at_ms.is_some() {
                    "retrying"
                } else {
                    "failed"
                },
                Status::error(format!("{}: {}", e.kind, e.message)),
                Some(e.kind),
            ),
        };
        let mut attributes = vec![
            KeyValue::new(key::RUN_ID, run_id.to_string()),
            KeyValue::new(key::TASK, attempt.name.clone()),
            KeyValue::new(key::ATTEMPT, i64::from(attempt.attempt)),
            KeyValue::new(key::IDEMPOTENCY_KEY, attempt.key.clone()),
            KeyValue::new(key::OUTCOME, outcome),
        ];
        if let Some(kind) = error_kind {
            attributes.push(KeyValue::new(key::ERROR_KIND, kind.as_str()));
        }
        self.emit(
            Self::context(parent.trace_id(), self.ids.new_span_id()),
            parent.span_id(),
            format!("task {}", attempt.name),
            start,
            end,
            attributes,
            status,
        );
    }

    /// The span of `run`, which ended; `root` is the root of its tree.
    pub(crate) fn run(&self, run: &RunRecord, root: RunId) {
        let mut attributes = vec![
            KeyValue::new(key::WORKFLOW_ID, run.workflow_id.clone()),
            KeyValue::new(key::RUN_ID, run.run_id.to_string()),
            KeyValue::new(key::WORKFLOW_TYPE, run.workflow_type.clone()),
            KeyValue::new(key::VERSION, run.version.clone()),
            KeyValue::new(key::OUTCOME, run.status.as_str()),
        ];
        if let Some(parent) = run.parent_run_id {
            attributes.push(KeyValue::new(key::PARENT_RUN_ID, parent.to_string()));
        }
        let status = match (&run.status, &run.error) {
            (RunStatus::Completed, _) => Status::Ok,
            (RunStatus::Failed, Some(e)) => {
                attributes.push(KeyValue::new(key::ERROR_KIND, e.kind.as_str()));
                Status::error(format!("{}: {}", e.kind, e.message))
            }
            (_, Some(e)) => {
                attributes.push(KeyValue::new(key::ERROR_KIND, e.kind.as_str()));
                Status::Unset
            }
            _ => Status::Unset,
        };
        self.emit(
            Self::context(trace_id(root), run_span_id(run.run_id)),
            run.parent_run_id.map_or(SpanId::INVALID, run_span_id),
            format!("run {}", run.workflow_type),
            time_of(run.created_ms),
            time_of(run.updated_ms),
            attributes,
            status,
        );
    }
}

fn identity(run: &RunIdentity) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new(key::WORKFLOW_ID, run.workflow_id.clone()),
        KeyValue::new(key::RUN_ID, run.run_id.to_string()),
        KeyValue::new(key::WORKFLOW_TYPE, run.workflow_type.clone()),
        KeyValue::new(key::VERSION, run.version.clone()),
    ];
    if let Some(parent) = &run.parent {
        attributes.push(KeyValue::new(key::PARENT_RUN_ID, parent.run_id.to_string()));
    }
    attributes
}

/// An activation's span while it executes; emitted when dropped.
pub(crate) struct ActivationSpan {
    spans: Arc<Spans>,
    run_id: RunId,
    context: SpanContext,
    parent: SpanId,
    name: String,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    outcome: &'static str,
    error: Option<String>,
}

impl ActivationSpan {
    /// How the activation ended, as `next` says.
    pub(crate) fn planned(&mut self, next: &NextState) {
        self.outcome = outcome(next);
        if let NextState::Failed(e) = next {
            self.attributes
                .push(KeyValue::new(key::ERROR_KIND, e.kind.as_str()));
            self.error = Some(format!("{}: {}", e.kind, e.message));
        }
    }

    /// How the activation ended when no plan was committed.
    pub(crate) fn ended(&mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

/// The outcome attribute of an activation that planned `next`.
pub(crate) fn outcome(next: &NextState) -> &'static str {
    match next {
        NextState::Running(_) => "continued",
        NextState::Waiting(_) => "waiting",
        NextState::Completed(_) => "completed",
        NextState::Failed(_) => "failed",
        NextState::Retrying { .. } => "retrying",
    }
}

impl Drop for ActivationSpan {
    fn drop(&mut self) {
        if let Ok(mut current) = self.spans.current.lock() {
            current.remove(&self.run_id);
        }
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.push(KeyValue::new(key::OUTCOME, self.outcome));
        let status = match self.error.take() {
            Some(e) => Status::error(e),
            None => Status::Unset,
        };
        self.spans.emit(
            self.context.clone(),
            self.parent,
            std::mem::take(&mut self.name),
            self.start,
            SystemTime::now(),
            attributes,
            status,
        );
    }
}

/// A run was created: a root run by a client, a child by its parent's
/// commit. Each lifecycle line is a root event (`parent: None`), so it
/// names the run once, not again through the driver's span.
pub(crate) fn log_started(
    workflow_id: &str,
    run_id: RunId,
    workflow_type: &str,
    version: &str,
    parent: Option<RunId>,
) {
    let version = short_version(version);
    match parent {
        Some(parent_run_id) => tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, %run_id, %workflow_type, %version, %parent_run_id,
            "run started"
        ),
        None => tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, %run_id, %workflow_type, %version,
            "run started"
        ),
    }
}

/// A run ended: the line that says how.
pub(crate) fn log_ended(run: &RunRecord) {
    let (workflow_id, run_id, workflow_type) = (&run.workflow_id, run.run_id, &run.workflow_type);
    let duration_ms = run.updated_ms.saturating_sub(run.created_ms);
    // Messages come from guests and clients: Debug-quoted, so one line.
    let message = run.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
    match run.status {
        RunStatus::Completed => tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, %run_id, %workflow_type, duration_ms,
            "run completed"
        ),
        RunStatus::Failed => {
            let error_kind = run.error.as_ref().map_or("", |e| e.kind.as_str());
            let handler = run.pending.as_ref().map_or("", |p| p.handler.as_str());
            tracing::warn!(
                target: "wasmflow::run",
                parent: None,
                %workflow_id, %run_id, %workflow_type, %error_kind, %handler, error = ?message,
                duration_ms,
                "run failed"
            )
        }
        RunStatus::Cancelled => tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, %run_id, %workflow_type, reason = ?message, duration_ms,
            "run cancelled"
        ),
        RunStatus::Terminated => tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, %run_id, %workflow_type, reason = ?message, duration_ms,
            "run terminated"
        ),
        RunStatus::Running | RunStatus::Waiting => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_run_id() {
        let run: RunId = "0190f5c2-8d3e-7a11-9b2c-0123456789ab".parse().unwrap();
        assert_eq!(
            trace_id(run).to_string(),
            "0190f5c28d3e7a119b2c0123456789ab"
        );
        assert_eq!(run_span_id(run).to_string(), "9b2c0123456789ab");
        let zero: RunId = "0190f5c2-8d3e-7a11-0000-000000000000".parse().unwrap();
        assert_eq!(run_span_id(zero), SpanId::from(1));
    }

    #[test]
    fn outcomes_name_the_next_state() {
        assert_eq!(outcome(&NextState::Waiting(None)), "waiting");
        assert_eq!(
            outcome(&NextState::Failed(wasmflow_core::WorkflowError::new(
                wasmflow_core::ErrorKind::Application,
                "x"
            ))),
            "failed"
        );
    }
}
