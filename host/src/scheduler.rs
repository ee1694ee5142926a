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
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{ErrorKind, WorkflowError};
use crate::host::Inner;
use crate::model::{
    Directive, HandlerKind, HistoryEvent, Pending, RunId, RunStatus, WorkflowTypeSpec, json_null,
    json_value, now_ms,
};
use crate::sandbox::{
    ActivationOutcome, ActivationRequest, ComponentVersion, LogLevel, ParentIdentity, RunIdentity,
    StoreMap, entry_bytes,
};
use crate::storage::{
    CommitOutcome, Delivery, Effects, InboxKind, NewRun, NextState, ParentLink, StateCommit, Timer,
};

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
    /// The store's size, for the `max_store_bytes` quota.
    pub store_bytes: usize,
    /// History entries so far (those this host wrote or loaded), for the
    /// `max_history_len` quota.
    pub history_len: u64,
}

/// The driver of one run in this host.
pub(crate) struct Driver {
    /// Look at the run again when the current work is done.
    poked: bool,
    /// Abandon the activation in progress: the run ended under the driver
    /// (terminated, timed out).
    abort: CancellationToken,
}

/// Make sure a driver works on `run_id`. `seed` is the run's state when the
/// caller has it; otherwise the driver loads it.
pub(crate) fn wake(inner: &Arc<Inner>, run_id: RunId, seed: Option<LiveRun>) {
    let abort = {
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        match drivers.entry(run_id) {
            // A driver is on it: have it look again when it is done.
            Entry::Occupied(mut e) => {
                e.get_mut().poked = true;
                return;
            }
            Entry::Vacant(e) => {
                let abort = inner.shutdown.child_token();
                e.insert(Driver {
                    poked: false,
                    abort: abort.clone(),
                });
                abort
            }
        }
    };
    let task_inner = inner.clone();
    inner
        .tasks
        .spawn(async move { drive(task_inner, run_id, seed, abort).await });
}

/// Abandon the activation a driver of this host runs for `run_id`, if any.
fn abort(inner: &Inner, run_id: RunId) {
    if let Ok(drivers) = inner.drivers.lock()
        && let Some(driver) = drivers.get(&run_id)
    {
        driver.abort.cancel();
    }
}

async fn drive(
    inner: Arc<Inner>,
    run_id: RunId,
    mut seed: Option<LiveRun>,
    abort: CancellationToken,
) {
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
            Some(live) => {
                // Every log line about the run carries its ids.
                let span = tracing::info_span!(
                    "run",
                    %run_id,
                    workflow_id = %live.identity.workflow_id,
                    workflow_type = %live.identity.workflow_type,
                );
                run_until_parked(&inner, live, &abort)
                    .instrument(span)
                    .await
                    == Parked::Reload
            }
            None => false,
        };
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        let poked = drivers.get(&run_id).is_some_and(|d| d.poked);
        if (poked || reload) && !abort.is_cancelled() {
            if let Some(d) = drivers.get_mut(&run_id) {
                d.poked = false;
            }
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

/// Execute activations until the run waits, ends, the host shuts down or
/// `abort` says the run ended under the driver.
async fn run_until_parked(
    inner: &Arc<Inner>,
    mut live: LiveRun,
    abort: &CancellationToken,
) -> Parked {
    loop {
        let handler = live
            .spec
            .handler(live.pending.kind, &live.pending.handler)
            .cloned();
        let outcome = match &handler {
            _ if live.history_len >= inner.max_history_len => ActivationOutcome::failed(
                WorkflowError::quota("max_history_len", live.history_len, inner.max_history_len),
            ),
            Some(h) => {
                let request = ActivationRequest {
                    run: live.identity.clone(),
                    spec: live.spec.clone(),
                    services: inner.clone(),
                    kind: live.pending.kind,
                    handler: live.pending.handler.clone(),
                    input: live.pending.input.clone(),
                    sequence: live.seq,
                    store: live.store.clone(),
                    store_bytes: live.store_bytes,
                    timeout: h.timeout.unwrap_or(inner.step_timeout),
                };
                tokio::select! {
                    _ = abort.cancelled() => return Parked::Done,
                    outcome = inner.sandbox.activate(&live.component, request) => outcome,
                }
            }
            None => ActivationOutcome::failed(missing_handler(&live.spec, &live.pending)),
        };
        emit_logs(&live, &outcome);
        inner.metrics.activation(
            &live.identity.workflow_type,
            outcome.result.is_ok(),
            outcome.duration,
        );
        if let Some(fault) = &outcome.host_fault {
            // Not the guest's doing: nothing is committed, the activation
            // runs again.
            tracing::error!(run_id = %live.run_id, %fault, "activation hit a host fault; retrying");
            if pause(inner).await.is_err() {
                return Parked::Done;
            }
            continue;
        }
        let at_ms = now_ms();
        let plan = plan(
            &live.spec,
            live.run_id,
            &live.identity,
            &live.pending,
            live.seq,
            outcome,
            at_ms,
        );
        if let NextState::Failed(error) = &plan.next {
            tracing::info!(
                run_id = %live.run_id,
                workflow_id = %live.identity.workflow_id,
                handler = %live.pending.handler,
                %error,
                "run failed"
            );
        }
        let children = plan.children;
        let commit = StateCommit {
            run_id: live.run_id,
            expected_seq: live.seq,
            next: plan.next.clone(),
            writes: plan.writes,
            history: plan.history,
            children: children.clone(),
            to_parent: plan.to_parent,
            at_ms,
        };
        let writes = commit.writes.clone();
        let history_len = commit.history.len() as u64;
        let committing = std::time::Instant::now();
        let committed = inner.storage.commit(commit).await;
        inner.metrics.commit(committing.elapsed());
        let (seq, next, effects) = match committed {
            Ok(CommitOutcome::Applied { seq, next, effects }) => (seq, next, effects),
            // The run moved on without this driver (terminated, or a host
            // that was stopping committed late): start over from storage.
            Ok(CommitOutcome::Stale) => return Parked::Reload,
            // A child's workflow id was taken meanwhile: execute the
            // activation again; this time the guest sees who holds it.
            Ok(CommitOutcome::Conflict {
                workflow_id,
                run_id: holder,
            }) => {
                tracing::debug!(
                    run_id = %live.run_id, %workflow_id, %holder,
                    "child workflow id taken; re-executing"
                );
                continue;
            }
            Err(e) => {
                // Nothing was committed: execute the activation again later.
                tracing::error!(run_id = %live.run_id, error = %e, "commit failed; retrying");
                if pause(inner).await.is_err() {
                    return Parked::Done;
                }
                continue;
            }
        };
        live.seq = seq;
        // Its own entries, and the received + dispatched pair of an event
        // handed over as it parked.
        let dispatched = matches!(plan.next, NextState::Waiting(_)) && next.is_some();
        live.history_len += history_len + if dispatched { 2 } else { 0 };
        if !writes.is_empty() {
            let store = Arc::make_mut(&mut live.store);
            for (key, value) in writes {
                if let Some(old) = store.get(&key) {
                    live.store_bytes -= entry_bytes(&key, old);
                }
                match value {
                    Some(v) => {
                        live.store_bytes += entry_bytes(&key, &v);
                        store.insert(key, v)
                    }
                    None => store.remove(&key),
                };
            }
        }
        for child in children {
            start_child(inner, &live, child);
        }
        apply_effects(inner, effects);
        match next {
            Some(pending) => live.pending = pending,
            None => {
                if let NextState::Waiting(Some(timer)) = plan.next {
                    arm_timer(inner, live.run_id, live.seq, timer);
                }
                return Parked::Done;
            }
        }
    }
}

/// Wait a second before retrying after a fault; `Err` when the host stops.
async fn pause(inner: &Arc<Inner>) -> Result<(), ()> {
    tokio::select! {
        _ = inner.shutdown.cancelled() => Err(()),
        _ = tokio::time::sleep(Duration::from_secs(1)) => Ok(()),
    }
}

/// Wake the runs a write woke and tell waiters about the runs it ended.
pub(crate) fn apply_effects(inner: &Arc<Inner>, effects: Effects) {
    for run_id in effects.woken {
        wake(inner, run_id, None);
    }
    for ended in effects.finished {
        inner.metrics.run_ended(&ended.workflow_type, ended.status);
        // A run that was ended from outside (terminated, timed out, a
        // parent's close policy) stops its activation now.
        if matches!(ended.status, RunStatus::Terminated | RunStatus::Failed) {
            abort(inner, ended.run_id);
        }
        inner.notify_terminal(ended.run_id);
    }
}

/// Drive a child created by `parent`'s commit, and arm its workflow timeout.
fn start_child(inner: &Arc<Inner>, parent: &LiveRun, child: NewRun) {
    if let Some(due_ms) = child.deadline_ms {
        arm_deadline(inner, child.run_id, due_ms);
    }
    let Some(entry) = inner.loaded_version(&child.version) else {
        wake(inner, child.run_id, None);
        return;
    };
    let Some(spec) = entry.workflow_type(&child.workflow_type).cloned() else {
        wake(inner, child.run_id, None);
        return;
    };
    let seed = LiveRun {
        run_id: child.run_id,
        identity: Arc::new(RunIdentity {
            workflow_type: child.workflow_type,
            workflow_id: child.workflow_id,
            run_id: child.run_id.to_string(),
            version: child.version,
            parent: Some(ParentIdentity {
                workflow_type: parent.identity.workflow_type.clone(),
                workflow_id: parent.identity.workflow_id.clone(),
                run_id: parent.identity.run_id.clone(),
                version: parent.identity.version.clone(),
            }),
        }),
        component: entry.clone(),
        spec,
        seq: 0,
        pending: child.pending,
        store: Arc::default(),
        store_bytes: 0,
        history_len: 1,
    };
    wake(inner, seed.run_id, Some(seed));
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
        let mut commit = StateCommit::new(
            run_id,
            seq,
            NextState::Running(Pending {
                kind: HandlerKind::Step,
                handler: timer.on_timeout.clone(),
                input: json_null(),
            }),
            now_ms(),
        );
        commit.history.push(HistoryEvent::TimerFired {
            on_timeout: Some(timer.on_timeout),
        });
        match inner.storage.commit(commit).await {
            Ok(CommitOutcome::Applied { effects, .. }) => {
                apply_effects(&inner, effects);
                wake(&inner, run_id, None);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(%run_id, error = %e, "timer could not fire"),
        }
    });
}

/// Fail the run with `WorkflowTimeout` at `due_ms` if it is still alive.
pub(crate) fn arm_deadline(inner: &Arc<Inner>, run_id: RunId, due_ms: u64) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let wait = Duration::from_millis(due_ms.saturating_sub(now_ms()));
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match inner.storage.expire(run_id, now_ms().max(due_ms)).await {
            Ok(effects) => apply_effects(&inner, effects),
            Err(e) => tracing::error!(%run_id, error = %e, "workflow timeout could not fire"),
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
    pub children: Vec<NewRun>,
    pub to_parent: Vec<Delivery>,
}

/// Decide the run's next state from an activation's outcome (SPEC 3):
///
/// - an error (trap, limit, handler `Err`) fails the run and discards the
///   activation's store writes, children and events;
/// - `step(name)` runs that step next, if the type has it (else `UnknownStep`);
/// - `wait` parks the run, with a durable timer when it has a timeout (which
///   needs an existing `on_timeout` step);
/// - `complete` and `fail` end the run; their store writes, children and
///   events are kept.
pub(crate) fn plan(
    spec: &WorkflowTypeSpec,
    run_id: RunId,
    identity: &RunIdentity,
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
    let (directive, next) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            return Plan {
                history: vec![HistoryEvent::ActivationFailed {
                    sequence: seq,
                    kind: pending.kind,
                    handler: pending.handler.clone(),
                    started_ms,
                    duration_us,
                    error: error.clone(),
                }],
                next: NextState::Failed(error),
                writes: Default::default(),
                children: Vec::new(),
                to_parent: Vec::new(),
            };
        }
    };
    let mut history = vec![HistoryEvent::ActivationCompleted {
        sequence: seq,
        kind: pending.kind,
        handler: pending.handler.clone(),
        started_ms,
        duration_us,
        directive: serde_json::to_value(&directive).unwrap_or_default(),
        keys_changed: outcome.writes.keys().cloned().collect(),
    }];
    let children: Vec<NewRun> = outcome
        .children
        .into_iter()
        .map(|child| {
            history.push(HistoryEvent::ChildStarted {
                workflow_type: child.workflow_type.clone(),
                workflow_id: child.workflow_id.clone(),
                run_id: child.run_id,
            });
            NewRun {
                run_id: child.run_id,
                workflow_id: child.workflow_id,
                workflow_type: child.workflow_type,
                version: child.version,
                parent: Some(ParentLink {
                    run_id,
                    on_completed: child.on_completed,
                    close_policy: child.close_policy,
                }),
                pending: Pending {
                    kind: HandlerKind::Start,
                    handler: child.start_handler,
                    input: child.input.clone(),
                },
                input: child.input,
                deadline_ms: child.timeout.map(|t| {
                    now_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                }),
                at_ms: now_ms,
            }
        })
        .collect();
    let parent_run_id = identity
        .parent
        .as_ref()
        .and_then(|p| p.run_id.parse::<RunId>().ok());
    let to_parent: Vec<Delivery> = match parent_run_id {
        Some(parent) => outcome
            .sent
            .into_iter()
            .map(|event| {
                history.push(HistoryEvent::EventSentToParent {
                    name: event.name.clone(),
                    payload: json_value(&event.payload),
                    parent_run_id: parent,
                });
                Delivery {
                    run_id: parent,
                    name: event.name,
                    payload: event.payload,
                    kind: InboxKind::Event,
                    source: identity.run_id.clone(),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    match &next {
        NextState::Waiting(Some(timer)) => history.push(HistoryEvent::TimerSet {
            due_ms: timer.due_ms,
            on_timeout: Some(timer.on_timeout.clone()),
        }),
        NextState::Completed(_) | NextState::Failed(_) => {
            // `run_completed`/`run_failed` are recorded by storage when the
            // run ends (a pending cancel may end it differently).
        }
        NextState::Running(_) | NextState::Waiting(None) => {}
    }
    Plan {
        next,
        writes: outcome.writes,
        history,
        children,
        to_parent,
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
    use crate::model::{ChildStart, ClosePolicy, HandlerSpec, SentEvent, parse_json};

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

    fn identity(parent: Option<RunId>) -> RunIdentity {
        RunIdentity {
            workflow_type: "Greeter".into(),
            workflow_id: "g".into(),
            run_id: RunId::new().to_string(),
            version: "v1".into(),
            parent: parent.map(|p| ParentIdentity {
                workflow_type: "Parent".into(),
                workflow_id: "p".into(),
                run_id: p.to_string(),
                version: "v0".into(),
            }),
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
        let mut outcome = ActivationOutcome::failed(WorkflowError::new(ErrorKind::Trap, "unused"));
        outcome.result = result;
        outcome
            .writes
            .insert("name".to_owned(), Some(parse_json("\"Ada\"", "v").unwrap()));
        outcome.duration = Duration::from_micros(7);
        outcome
    }

    fn run(outcome: ActivationOutcome, seq: u64, now_ms: u64) -> Plan {
        plan(
            &spec(),
            RunId::new(),
            &identity(None),
            &start(),
            seq,
            outcome,
            now_ms,
        )
    }

    fn kinds(plan: &Plan) -> Vec<&'static str> {
        plan.history.iter().map(HistoryEvent::kind).collect()
    }

    #[test]
    fn a_step_directive_schedules_the_step_and_keeps_writes() {
        let plan = run(outcome(Ok(Directive::Step("greet".into()))), 0, 0);
        assert!(matches!(&plan.next, NextState::Running(p) if p.handler == "greet"));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(kinds(&plan), ["activation_completed"]);
    }

    #[test]
    fn an_unknown_step_fails_the_run_and_discards_writes() {
        let plan = run(outcome(Ok(Directive::Step("gret".into()))), 3, 0);
        match &plan.next {
            NextState::Failed(e) => {
                assert_eq!(e.kind, ErrorKind::UnknownStep);
                assert!(e.message.contains("`gret`"), "{}", e.message);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(plan.writes.is_empty());
        assert_eq!(kinds(&plan), ["activation_failed"]);
    }

    #[test]
    fn an_error_fails_the_run_and_drops_children_and_events() {
        let error = WorkflowError::new(ErrorKind::Trap, "boom");
        let mut failed = outcome(Err(error.clone()));
        failed.children.push(child());
        failed.sent.push(sent());
        let parent = RunId::new();
        let plan = plan(
            &spec(),
            RunId::new(),
            &identity(Some(parent)),
            &start(),
            0,
            failed,
            0,
        );
        assert!(matches!(&plan.next, NextState::Failed(e) if *e == error));
        assert!(plan.writes.is_empty() && plan.children.is_empty() && plan.to_parent.is_empty());
    }

    fn child() -> ChildStart {
        ChildStart {
            run_id: RunId::new(),
            workflow_id: "payment-1".into(),
            workflow_type: "Payment".into(),
            version: "v2".into(),
            input: parse_json(r#"{"amount": 3}"#, "i").unwrap(),
            start_handler: "payment_start".into(),
            timeout: Some(Duration::from_secs(5)),
            on_completed: Some("greet".into()),
            close_policy: ClosePolicy::Cancel,
        }
    }

    fn sent() -> SentEvent {
        SentEvent {
            name: "payment_completed".into(),
            payload: parse_json(r#"{"txn_id": "t"}"#, "p").unwrap(),
        }
    }

    #[test]
    fn children_and_parent_events_go_with_the_commit() {
        let mut ok = outcome(Ok(Directive::Wait {
            timeout: None,
            on_timeout: None,
        }));
        ok.children.push(child());
        ok.sent.push(sent());
        let (me, parent) = (RunId::new(), RunId::new());
        let plan = plan(&spec(), me, &identity(Some(parent)), &start(), 4, ok, 1_000);
        assert_eq!(
            kinds(&plan),
            [
                "activation_completed",
                "child_started",
                "event_sent_to_parent"
            ]
        );
        let child = &plan.children[0];
        assert_eq!(child.workflow_id, "payment-1");
        assert_eq!(child.deadline_ms, Some(6_000));
        assert_eq!(child.pending.handler, "payment_start");
        let link = child.parent.as_ref().unwrap();
        assert_eq!(
            (link.run_id, link.on_completed.as_deref(), link.close_policy),
            (me, Some("greet"), ClosePolicy::Cancel)
        );
        assert_eq!(plan.to_parent[0].run_id, parent);
        assert_eq!(plan.to_parent[0].kind, InboxKind::Event);
        assert!(matches!(plan.next, NextState::Waiting(None)));
    }

    #[test]
    fn a_timed_wait_sets_a_timer_on_an_existing_step() {
        let wait = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: Some("greet".into()),
        };
        let plan = run(outcome(Ok(wait)), 0, 1_000);
        assert!(matches!(
            &plan.next,
            NextState::Waiting(Some(Timer { due_ms: 1_250, on_timeout })) if on_timeout == "greet"
        ));
        assert_eq!(kinds(&plan), ["activation_completed", "timer_set"]);
        let bad = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: None,
        };
        let plan = run(outcome(Ok(bad)), 0, 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if e.kind == ErrorKind::UnknownStep));
    }

    #[test]
    fn complete_and_fail_end_the_run() {
        let result = parse_json("\"Hello, Ada\"", "r").unwrap();
        let plan = run(outcome(Ok(Directive::Complete(result))), 1, 0);
        assert!(matches!(&plan.next, NextState::Completed(r) if r.get() == "\"Hello, Ada\""));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(kinds(&plan), ["activation_completed"]);
        let error = WorkflowError::new(ErrorKind::Application, "declined");
        let plan = run(outcome(Ok(Directive::Fail(error))), 1, 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if e.message == "declined"));
        assert_eq!(plan.writes.len(), 1);
    }
}
