//! Tasks and recorded values (SPEC 8), as the host imports `task-begin`,
//! `task-end`, `now`, `random` and `uuid4` see them.
//!
//! An activation executed again gets what its journal recorded: the `n`-th
//! value call the `n`-th recorded value, a task whose outcome is recorded
//! that outcome without running. New values are buffered and recorded
//! durably with the next task attempt (so whatever a recorded task saw
//! stays the same); each attempt is recorded before `task-end` returns. A
//! failed attempt is retried per its policy: inside the activation when the
//! delay fits the step timeout, otherwise by parking the run until due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmflow_core::journal::{
    Journal, JournalEntry, RecordedValue, TaskAttempt, TaskResult, idempotency_key,
};
use wasmflow_core::limits::{
    MAX_TASK_ATTEMPTS_PER_ACTIVATION, MAX_VALUES_PER_ACTIVATION, RETRY_IN_ACTIVATION_MARGIN,
};
use wasmflow_core::model::parse_json;
use wasmflow_core::{ErrorKind, RetryPolicy, WorkflowError};
use wasmtime::Result as WasmResult;

use super::bindings::types as wit;
use super::state::{ActivationState, Stop, to_wit, wit_error};
use crate::error_kind_from_wit;

/// The task state of one activation.
pub(crate) struct Tasks {
    journal: Arc<Journal>,
    /// The journal's values, replayed in call order.
    replay: Vec<RecordedValue>,
    /// Value calls so far.
    values: usize,
    /// Values asked for in this execution, not yet recorded.
    unrecorded: Vec<JournalEntry>,
    /// Calls of each task name so far.
    occurrences: HashMap<String, u32>,
    open: Option<OpenTask>,
    /// Attempts this execution recorded.
    attempts: usize,
    /// Set when the activation parks for a retry.
    pub retry_at_ms: Option<u64>,
}

/// The task whose attempt runs now.
struct OpenTask {
    name: String,
    occurrence: u32,
    attempt: u32,
    key: String,
    policy: RetryPolicy,
    started: Instant,
    started_ms: u64,
}

impl Tasks {
    pub fn new(journal: Arc<Journal>) -> Self {
        Tasks {
            replay: journal.values(),
            journal,
            values: 0,
            unrecorded: Vec::new(),
            occurrences: HashMap::new(),
            open: None,
            attempts: 0,
            retry_at_ms: None,
        }
    }
}

fn policy_from_wit(p: wit::RetryPolicy) -> RetryPolicy {
    RetryPolicy {
        max_attempts: p.max_attempts,
        initial_delay: Duration::from_millis(p.initial_delay_ms),
        backoff_multiplier: p.backoff_multiplier,
        max_delay: Duration::from_millis(p.max_delay_ms),
        jitter: p.jitter,
        non_retryable: p
            .non_retryable
            .into_iter()
            .map(error_kind_from_wit)
            .collect(),
    }
}

fn result_to_wit(result: &TaskResult) -> Result<String, wit::Error> {
    match result {
        TaskResult::Value(v) => Ok(v.to_string()),
        TaskResult::Error(e) => Err(to_wit(e.clone())),
    }
}

impl ActivationState {
    /// The next value: the recorded one on re-execution, else `make()`'s.
    fn value(
        &mut self,
        call: &'static str,
        make: impl FnOnce() -> RecordedValue,
    ) -> WasmResult<RecordedValue> {
        let index = self.tasks.values;
        if let Some(recorded) = self.tasks.replay.get(index).cloned() {
            if recorded.call() != call {
                return Err(self.stop(WorkflowError::new(
                    ErrorKind::NonDeterminism,
                    format!(
                        "call {} of the recorded values was `{}` when this activation was first \
                         executed, and is `{call}` now",
                        index + 1,
                        recorded.call()
                    ),
                )));
            }
            self.tasks.values += 1;
            return Ok(recorded);
        }
        self.within(
            "max_values_per_activation",
            index + 1,
            MAX_VALUES_PER_ACTIVATION,
        )?;
        let value = make();
        self.tasks.values += 1;
        self.tasks
            .unrecorded
            .push(JournalEntry::Value(value.clone()));
        Ok(value)
    }

    pub(super) fn now_recorded(&mut self) -> WasmResult<u64> {
        let clock_ms = self.clock_ms();
        match self.value("now", || RecordedValue::Now(clock_ms))? {
            RecordedValue::Now(ms) => Ok(ms),
            _ => Err(wasmtime::format_err!("a recorded value changed kind")),
        }
    }

    pub(super) fn random_recorded(&mut self) -> WasmResult<u64> {
        match self.value("random", || RecordedValue::Random(rand::random()))? {
            RecordedValue::Random(n) => Ok(n),
            _ => Err(wasmtime::format_err!("a recorded value changed kind")),
        }
    }

    pub(super) fn uuid4_recorded(&mut self) -> WasmResult<String> {
        let make = || RecordedValue::Uuid4(uuid::Uuid::new_v4().hyphenated().to_string());
        match self.value("uuid4", make)? {
            RecordedValue::Uuid4(u) => Ok(u),
            _ => Err(wasmtime::format_err!("a recorded value changed kind")),
        }
    }

    pub(super) async fn begin_task(
        &mut self,
        name: String,
        policy: wit::RetryPolicy,
    ) -> WasmResult<Result<wit::TaskBegun, wit::Error>> {
        self.refuse_in_query("run tasks")?;
        self.check_name(&name)?;
        if let Some(open) = &self.tasks.open {
            return Ok(Err(wit_error(
                wit::ErrorKind::NotSupported,
                format!(
                    "task `{}` cannot start while task `{}` runs: tasks do not nest",
                    name, open.name
                ),
            )));
        }
        let policy = policy_from_wit(policy);
        if let Err(message) = policy.check() {
            return Ok(Err(wit_error(
                wit::ErrorKind::InvalidPayload,
                format!("the retry policy of task `{name}`: {message}"),
            )));
        }
        if let Err(e) = self.services() {
            return Ok(Err(to_wit(e)));
        }
        let counter = self.tasks.occurrences.entry(name.clone()).or_default();
        let occurrence = *counter;
        *counter += 1;
        let last = self
            .tasks
            .journal
            .last_attempt(&name, occurrence)
            .map(|(attempt, outcome)| (attempt.clone(), outcome));
        let (attempt, key) = match &last {
            // Recorded: the task does not run again.
            Some((last, true)) => {
                return Ok(Ok(wit::TaskBegun::Recorded(result_to_wit(&last.result))));
            }
            Some((last, false)) => {
                // A retry was due when this execution began (or is due
                // soon); after `retry` of the run, at once.
                if let Some(due_ms) = last.retry_at_ms {
                    self.wait_until(due_ms).await?;
                }
                (last.attempt + 1, last.key.clone())
            }
            None => (
                1,
                idempotency_key(
                    &self.run_identity().run_id.to_string(),
                    self.sequence(),
                    &name,
                    occurrence,
                ),
            ),
        };
        let stubbed = self
            .services()
            .ok()
            .and_then(|s| s.stubbed_task(&self.run_identity().workflow_type, &name));
        if let Some(result) = stubbed {
            return self
                .record_stub(name, occurrence, attempt, key, result)
                .await;
        }
        self.outbound.open(&name);
        self.tasks.open = Some(OpenTask {
            name,
            occurrence,
            attempt,
            key: key.clone(),
            policy,
            started: Instant::now(),
            started_ms: self.clock_ms(),
        });
        Ok(Ok(wit::TaskBegun::Attempt(wit::TaskAttempt {
            idempotency_key: key,
            attempt,
        })))
    }

    pub(super) async fn end_task(
        &mut self,
        outcome: Result<String, wit::Error>,
    ) -> WasmResult<wit::TaskEnded> {
        let Some(task) = self.tasks.open.take() else {
            return Err(self.stop(WorkflowError::new(
                ErrorKind::NotSupported,
                "`task-end` without an open task (call `task-begin` first)",
            )));
        };
        let (requests, refusal) = self.outbound.close();
        let duration = task.started.elapsed();
        let mut result = match outcome {
            Ok(json) => {
                self.within("max_value_bytes", json.len(), self.limits.max_value_bytes)?;
                let what = format!("the value of task `{}`", task.name);
                match parse_json(&json, &what).and_then(|j| wasmflow_core::model::json_value(&j)) {
                    Ok(value) => TaskResult::Value(value),
                    Err(e) => TaskResult::Error(e),
                }
            }
            Err(e) => TaskResult::Error(self.guest_error(e)?),
        };
        // A refused request explains the failure better than the client's
        // own error (and a denial is never retried).
        if let (TaskResult::Error(_), Some(refusal)) = (&result, refusal) {
            result = TaskResult::Error(refusal);
        }
        let delay = match &result {
            TaskResult::Error(e) => task.policy.delay(task.attempt, e.kind, rand::random()),
            TaskResult::Value(_) => None,
        };
        let retry_at_ms = delay.map(|d| {
            self.clock_ms()
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        });
        self.tasks.attempts += 1;
        self.within(
            "max_task_attempts_per_activation",
            self.tasks.attempts,
            MAX_TASK_ATTEMPTS_PER_ACTIVATION,
        )?;
        let attempt = TaskAttempt {
            name: task.name.clone(),
            occurrence: task.occurrence,
            attempt: task.attempt,
            key: task.key.clone(),
            started_ms: task.started_ms,
            duration_us: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            result: result.clone(),
            retry_at_ms,
            requests,
        };
        // Durable before the handler goes on: the values this execution saw
        // so far, then the attempt.
        self.record_attempt(attempt).await?;
        match (result, retry_at_ms) {
            (TaskResult::Value(v), _) => Ok(wit::TaskEnded::Done(Ok(v.to_string()))),
            (TaskResult::Error(e), None) => Ok(wit::TaskEnded::Done(Err(to_wit(e)))),
            (TaskResult::Error(_), Some(due_ms)) => {
                self.wait_until(due_ms).await?;
                let next = OpenTask {
                    attempt: task.attempt + 1,
                    started: Instant::now(),
                    started_ms: self.clock_ms(),
                    ..task
                };
                self.outbound.open(&next.name);
                let answer = wit::TaskAttempt {
                    idempotency_key: next.key.clone(),
                    attempt: next.attempt,
                };
                self.tasks.open = Some(next);
                Ok(wit::TaskEnded::Retry(answer))
            }
        }
    }

    /// Wait until `due_ms` if that leaves enough of the step timeout;
    /// otherwise park the run until then (the guest is stopped).
    async fn wait_until(&mut self, due_ms: u64) -> WasmResult<()> {
        let wait = Duration::from_millis(due_ms.saturating_sub(self.clock_ms()));
        if wait.is_zero() {
            return Ok(());
        }
        let in_activation = self.services().is_ok_and(|s| s.waits_in_activation());
        if in_activation && Instant::now() + wait + RETRY_IN_ACTIVATION_MARGIN <= self.deadline {
            tokio::time::sleep(wait).await;
            return Ok(());
        }
        self.tasks.retry_at_ms = Some(due_ms);
        Err(wasmtime::Error::new(Stop::Park))
    }

    /// Record a stubbed outcome as the task's attempt (final: never
    /// retried) and answer the guest with it as a recorded outcome.
    async fn record_stub(
        &mut self,
        name: String,
        occurrence: u32,
        attempt: u32,
        key: String,
        result: TaskResult,
    ) -> WasmResult<Result<wit::TaskBegun, wit::Error>> {
        self.tasks.attempts += 1;
        self.within(
            "max_task_attempts_per_activation",
            self.tasks.attempts,
            MAX_TASK_ATTEMPTS_PER_ACTIVATION,
        )?;
        let answer = result_to_wit(&result);
        let attempt = TaskAttempt {
            name,
            occurrence,
            attempt,
            key,
            started_ms: self.clock_ms(),
            duration_us: 0,
            result,
            retry_at_ms: None,
            requests: Vec::new(),
        };
        self.record_attempt(attempt).await?;
        Ok(Ok(wit::TaskBegun::Recorded(answer)))
    }

    /// Record `attempt`, after the values this execution saw so far,
    /// durably: the handler goes on only once it is recorded.
    async fn record_attempt(&mut self, attempt: TaskAttempt) -> WasmResult<()> {
        let mut entries = std::mem::take(&mut self.tasks.unrecorded);
        entries.push(JournalEntry::Task(attempt));
        let services = match self.services() {
            Ok(s) => s.clone(),
            Err(e) => return Err(self.stop(e)),
        };
        let (run_id, sequence) = (self.run_identity().run_id, self.sequence());
        let recorded = self
            .on_host(services.record(run_id, sequence, entries))
            .await;
        if let Err(e) = self.service_result(recorded)? {
            return Err(self.stop(WorkflowError::new(error_kind_from_wit(e.kind), e.message)));
        }
        Ok(())
    }

    /// The time of runs now: the host's clock.
    fn clock_ms(&self) -> u64 {
        self.services()
            .map_or_else(|_| wasmflow_core::model::now_ms(), |s| s.now_ms())
    }

    /// A task's error as the guest reported it, within the bounds on
    /// messages and details.
    fn guest_error(&mut self, e: wit::Error) -> WasmResult<WorkflowError> {
        self.within(
            "max_message_bytes",
            e.message.len(),
            self.limits.max_message_bytes,
        )?;
        if let Some(d) = &e.details {
            self.within("max_details_bytes", d.len(), self.limits.max_details_bytes)?;
        }
        let details = e.details.map(|d| {
            match parse_json(&d, "the error details")
                .and_then(|j| wasmflow_core::model::json_value(&j))
            {
                Ok(value) => value,
                Err(_) => serde_json::Value::String(d),
            }
        });
        Ok(WorkflowError {
            kind: error_kind_from_wit(e.kind),
            message: e.message,
            details,
        })
    }
}
