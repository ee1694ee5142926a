//! The scheduler: drives runs through their state machine (SPEC 3).
//!
//! Each run that has work gets one driver task, which executes the run's
//! pending activation in the sandbox, turns the outcome into a
//! [`StateCommit`] ([`plan`]), has storage commit it, and carries on until the
//! run parks (waits) or ends. At most one driver exists per run, so a run
//! executes one activation at a time; concurrency comes from many runs.
//! Wait timers are tasks that commit the timeout step when due; they are
//! re-armed from storage when a host starts.
//!
//! It knows neither wasmtime nor SQL: it talks to [`Sandbox`] and [`Storage`]
//! through their typed APIs.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, WorkflowError};
use crate::host::Inner;
use crate::model::{
    Directive, HandlerKind, HistoryEvent, Pending, RunId, WorkflowTypeSpec, json_null, json_value,
    now_ms,
};
use crate::sandbox::{
    ActivationOutcome, ActivationRequest, ComponentVersion, LogLevel, RunIdentity, StoreMap,
};
use crate::storage::{CommitOutcome, NextState, StateCommit, Timer};

/// A run in the hands of a driver: what it needs to execute activations
/// without reading storage each time.
pub(crate) struct LiveRun {
    pub run_id: RunId,
    pub identity: Arc<RunIdentity>,
    pub component: Arc<ComponentVersion>,
    pub spec: Arc<WorkflowTypeSpec>,
    pub seq: u64,
    pub pending: Pending,
    pub store: Arc<StoreMap>,
}

/// Make sure a driver works on `run_id`. `seed` is the run's state when the
/// caller has it; otherwise the driver loads it.
pub(crate) fn wake(inner: &Arc<Inner>, run_id: RunId, seed: Option<LiveRun>) {
    {
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        match drivers.entry(run_id) {
            // A driver is on it: have it look again when it is done.
            Entry::Occupied(mut e) => {
                e.insert(true);
                return;
            }
            Entry::Vacant(e) => {
                e.insert(false);
            }
        }
    }
    let task_inner = inner.clone();
    inner
        .tasks
        .spawn(async move { drive(task_inner, run_id, seed).await });
}

async fn drive(inner: Arc<Inner>, run_id: RunId, mut seed: Option<LiveRun>) {
    loop {
        let live = match seed.take() {
            Some(live) => Some(live),
            None => match inner.load_live(run_id).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::error!(%run_id, error = %e, "cannot load run");
                    None
                }
            },
        };
        let reload = match live {
            Some(live) => run_until_parked(&inner, live).await == Parked::Reload,
            None => false,
        };
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        let poked = drivers.get(&run_id) == Some(&true);
        if (poked || reload) && !inner.shutdown.is_cancelled() {
            drivers.insert(run_id, false);
            continue;
        }
        drivers.remove(&run_id);
        return;
    }
}

/// Why a driver stopped executing activations.
#[derive(Debug, PartialEq, Eq)]
enum Parked {
    /// The run waits, ended, or the host is shutting down.
    Done,
    /// The run changed under the driver (a commit was stale): look again.
    Reload,
}

/// Execute activations until the run waits, ends, or the host shuts down.
async fn run_until_parked(inner: &Arc<Inner>, mut live: LiveRun) -> Parked {
    loop {
        let handler = live
            .spec
            .handler(live.pending.kind, &live.pending.handler)
            .cloned();
        let outcome = match &handler {
            Some(h) => {
                let request = ActivationRequest {
                    run: live.identity.clone(),
                    kind: live.pending.kind,
                    handler: live.pending.handler.clone(),
                    input: live.pending.input.clone(),
                    sequence: live.seq,
                    store: live.store.clone(),
                    timeout: h.timeout.unwrap_or(inner.step_timeout),
                };
                tokio::select! {
                    _ = inner.shutdown.cancelled() => return Parked::Done,
                    outcome = inner.sandbox.activate(&live.component, request) => outcome,
                }
            }
            None => ActivationOutcome {
                result: Err(missing_handler(&live.spec, &live.pending)),
                writes: Default::default(),
                logs: Vec::new(),
                duration: Duration::ZERO,
            },
        };
        emit_logs(&live, &outcome);
        let at_ms = now_ms();
        let plan = plan(&live.spec, &live.pending, live.seq, outcome, at_ms);
        if let NextState::Failed(error) = &plan.next {
            tracing::info!(
                run_id = %live.run_id,
                workflow_id = %live.identity.workflow_id,
                handler = %live.pending.handler,
                %error,
                "run failed"
            );
        }
        let commit = StateCommit {
            run_id: live.run_id,
            expected_seq: live.seq,
            next: plan.next.clone(),
            writes: plan.writes,
            history: plan.history,
            at_ms,
        };
        let writes = commit.writes.clone();
        match inner.storage.commit(commit).await {
            Ok(CommitOutcome::Applied) => {}
            // The run moved on without this driver (a host that was stopping
            // committed late): start over from what is stored.
            Ok(CommitOutcome::Stale) => return Parked::Reload,
            Err(e) => {
                // Nothing was committed: execute the activation again later.
                tracing::error!(run_id = %live.run_id, error = %e, "commit failed; retrying");
                tokio::select! {
                    _ = inner.shutdown.cancelled() => return Parked::Done,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        }
        live.seq += 1;
        if !writes.is_empty() {
            let store = Arc::make_mut(&mut live.store);
            for (key, value) in writes {
                match value {
                    Some(v) => store.insert(key, v),
                    None => store.remove(&key),
                };
            }
        }
        match plan.next {
            NextState::Running(pending) => live.pending = pending,
            NextState::Waiting(timer) => {
                if let Some(timer) = timer {
                    arm_timer(inner, live.run_id, live.seq, timer);
                }
                return Parked::Done;
            }
            NextState::Completed(_) | NextState::Failed(_) => {
                inner.notify_terminal(live.run_id);
                return Parked::Done;
            }
        }
    }
}

/// Fire `timer` when due: run its step, unless the run moved on first.
pub(crate) fn arm_timer(inner: &Arc<Inner>, run_id: RunId, seq: u64, timer: Timer) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let wait = Duration::from_millis(timer.due_ms.saturating_sub(now_ms()));
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let commit = StateCommit {
            run_id,
            expected_seq: seq,
            next: NextState::Running(Pending {
                kind: HandlerKind::Step,
                handler: timer.on_timeout.clone(),
                input: json_null(),
            }),
            writes: Default::default(),
            history: vec![HistoryEvent::TimerFired {
                on_timeout: Some(timer.on_timeout),
            }],
            at_ms: now_ms(),
        };
        match inner.storage.commit(commit).await {
            Ok(CommitOutcome::Applied) => wake(&inner, run_id, None),
            Ok(CommitOutcome::Stale) => {}
            Err(e) => tracing::error!(%run_id, error = %e, "timer could not fire"),
        }
    });
}

fn missing_handler(spec: &WorkflowTypeSpec, pending: &Pending) -> WorkflowError {
    let kind = match pending.kind {
        HandlerKind::Event => ErrorKind::UnknownEvent,
        _ => ErrorKind::UnknownStep,
    };
    WorkflowError::new(
        kind,
        format!(
            "workflow type `{}` has no {} handler `{}`",
            spec.name, pending.kind, pending.handler
        ),
    )
}

fn emit_logs(live: &LiveRun, outcome: &ActivationOutcome) {
    for line in &outcome.logs {
        let (run_id, workflow_id, handler) = (
            &live.identity.run_id,
            &live.identity.workflow_id,
            &live.pending.handler,
        );
        let message = &line.message;
        match line.level {
            LogLevel::Trace => {
                tracing::trace!(target: "wasmflow::guest", %run_id, %workflow_id, %handler, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "wasmflow::guest", %run_id, %workflow_id, %handler, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "wasmflow::guest", %run_id, %workflow_id, %handler, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "wasmflow::guest", %run_id, %workflow_id, %handler, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "wasmflow::guest", %run_id, %workflow_id, %handler, "{message}")
            }
        }
    }
}

/// What an activation's outcome does to its run.
#[derive(Debug)]
pub(crate) struct Plan {
    pub next: NextState,
    pub writes: std::collections::BTreeMap<String, Option<crate::model::Json>>,
    pub history: Vec<HistoryEvent>,
}

/// Decide the run's next state from an activation's outcome (SPEC 3):
///
/// - an error (trap, limit, handler `Err`) fails the run and discards the
///   activation's store writes;
/// - `step(name)` runs that step next, if the type has it (else `UnknownStep`);
/// - `wait` parks the run, with a durable timer when it has a timeout (which
///   needs an existing `on_timeout` step);
/// - `complete` and `fail` end the run; their store writes are kept.
pub(crate) fn plan(
    spec: &WorkflowTypeSpec,
    pending: &Pending,
    seq: u64,
    outcome: ActivationOutcome,
    now_ms: u64,
) -> Plan {
    let duration_us = u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX);
    let started_ms = now_ms.saturating_sub(duration_us / 1000);
    let checked = outcome
        .result
        .and_then(|directive| next_state(spec, &directive, now_ms).map(|next| (directive, next)));
    match checked {
        Ok((directive, next)) => {
            let mut history = vec![HistoryEvent::ActivationCompleted {
                sequence: seq,
                kind: pending.kind,
                handler: pending.handler.clone(),
                started_ms,
                duration_us,
                directive: serde_json::to_value(&directive).unwrap_or_default(),
                keys_changed: outcome.writes.keys().cloned().collect(),
            }];
            match &next {
                NextState::Waiting(Some(timer)) => history.push(HistoryEvent::TimerSet {
                    due_ms: timer.due_ms,
                    on_timeout: Some(timer.on_timeout.clone()),
                }),
                NextState::Completed(result) => history.push(HistoryEvent::RunCompleted {
                    result: json_value(result),
                }),
                NextState::Failed(error) => history.push(HistoryEvent::RunFailed {
                    error: error.clone(),
                }),
                NextState::Running(_) | NextState::Waiting(None) => {}
            }
            Plan {
                next,
                writes: outcome.writes,
                history,
            }
        }
        Err(error) => Plan {
            history: vec![
                HistoryEvent::ActivationFailed {
                    sequence: seq,
                    kind: pending.kind,
                    handler: pending.handler.clone(),
                    started_ms,
                    duration_us,
                    error: error.clone(),
                },
                HistoryEvent::RunFailed {
                    error: error.clone(),
                },
            ],
            next: NextState::Failed(error),
            writes: Default::default(),
        },
    }
}

fn next_state(
    spec: &WorkflowTypeSpec,
    directive: &Directive,
    now_ms: u64,
) -> Result<NextState, WorkflowError> {
    let check_step = |name: &str, what: &str| {
        if spec.handler(HandlerKind::Step, name).is_some() {
            Ok(())
        } else {
            Err(WorkflowError::new(
                ErrorKind::UnknownStep,
                format!(
                    "{what} names step `{name}`, which workflow type `{}` does not have",
                    spec.name
                ),
            ))
        }
    };
    Ok(match directive {
        Directive::Step(name) => {
            check_step(name, "the step directive")?;
            NextState::Running(Pending {
                kind: HandlerKind::Step,
                handler: name.clone(),
                input: json_null(),
            })
        }
        Directive::Wait {
            timeout,
            on_timeout,
        } => match (timeout, on_timeout) {
            (None, None) => NextState::Waiting(None),
            (Some(timeout), Some(step)) => {
                check_step(step, "the wait's on_timeout")?;
                let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                NextState::Waiting(Some(Timer {
                    due_ms: now_ms.saturating_add(ms),
                    on_timeout: step.clone(),
                }))
            }
            (Some(_), None) => {
                return Err(WorkflowError::new(
                    ErrorKind::UnknownStep,
                    "a wait with a timeout needs an on_timeout step",
                ));
            }
            (None, Some(step)) => {
                return Err(WorkflowError::new(
                    ErrorKind::UnknownStep,
                    format!("the wait names on_timeout step `{step}` but no timeout"),
                ));
            }
        },
        Directive::Complete(result) => NextState::Completed(result.clone()),
        Directive::Fail(error) => NextState::Failed(error.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HandlerSpec, parse_json};

    fn spec() -> WorkflowTypeSpec {
        let h = |kind, name: &str| HandlerSpec {
            name: name.into(),
            kind,
            params: vec![],
            timeout: None,
        };
        WorkflowTypeSpec {
            name: "Greeter".into(),
            handlers: vec![
                h(HandlerKind::Start, "start"),
                h(HandlerKind::Step, "greet"),
            ],
        }
    }

    fn start() -> Pending {
        Pending {
            kind: HandlerKind::Start,
            handler: "start".into(),
            input: json_null(),
        }
    }

    fn outcome(result: Result<Directive, WorkflowError>) -> ActivationOutcome {
        let mut writes = std::collections::BTreeMap::new();
        writes.insert("name".to_owned(), Some(parse_json("\"Ada\"", "v").unwrap()));
        ActivationOutcome {
            result,
            writes,
            logs: vec![],
            duration: Duration::from_micros(7),
        }
    }

    fn kinds(plan: &Plan) -> Vec<&'static str> {
        plan.history.iter().map(HistoryEvent::kind).collect()
    }

    #[test]
    fn a_step_directive_schedules_the_step_and_keeps_writes() {
        let plan = plan(
            &spec(),
            &start(),
            0,
            outcome(Ok(Directive::Step("greet".into()))),
            0,
        );
        assert!(matches!(&plan.next, NextState::Running(p) if p.handler == "greet"));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(kinds(&plan), ["activation_completed"]);
    }

    #[test]
    fn an_unknown_step_fails_the_run_and_discards_writes() {
        let plan = plan(
            &spec(),
            &start(),
            3,
            outcome(Ok(Directive::Step("gret".into()))),
            0,
        );
        match &plan.next {
            NextState::Failed(e) => {
                assert_eq!(e.kind, ErrorKind::UnknownStep);
                assert!(e.message.contains("`gret`"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(plan.writes.is_empty());
        assert_eq!(kinds(&plan), ["activation_failed", "run_failed"]);
    }

    #[test]
    fn an_error_fails_the_run_with_it() {
        let error = WorkflowError::new(ErrorKind::Trap, "boom");
        let plan = plan(&spec(), &start(), 0, outcome(Err(error.clone())), 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if *e == error));
        assert!(plan.writes.is_empty());
    }

    #[test]
    fn a_timed_wait_sets_a_timer_on_an_existing_step() {
        let wait = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: Some("greet".into()),
        };
        let plan = plan(&spec(), &start(), 0, outcome(Ok(wait)), 1_000);
        assert!(matches!(
            &plan.next,
            NextState::Waiting(Some(Timer { due_ms: 1_250, on_timeout })) if on_timeout == "greet"
        ));
        assert_eq!(kinds(&plan), ["activation_completed", "timer_set"]);
        let bad = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: None,
        };
        let plan = super::plan(&spec(), &start(), 0, outcome(Ok(bad)), 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if e.kind == ErrorKind::UnknownStep));
    }

    #[test]
    fn complete_and_fail_end_the_run() {
        let result = parse_json("\"Hello, Ada\"", "r").unwrap();
        let plan = plan(
            &spec(),
            &start(),
            1,
            outcome(Ok(Directive::Complete(result))),
            0,
        );
        assert!(matches!(&plan.next, NextState::Completed(r) if r.get() == "\"Hello, Ada\""));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(kinds(&plan), ["activation_completed", "run_completed"]);
        let error = WorkflowError::new(ErrorKind::Application, "declined");
        let plan = super::plan(&spec(), &start(), 1, outcome(Ok(Directive::Fail(error))), 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if e.message == "declined"));
        assert_eq!(plan.writes.len(), 1);
    }
}
