//! The plan: what an activation's outcome does to its run (SPEC 3), as a
//! pure function, and the values it produces — the run's next state, the
//! children to create and the events to deliver — which storage applies in
//! one transaction.

use std::collections::BTreeMap;

use serde::Serialize;
use wasmflow_protocol::{ClosePolicy, ErrorKind, HandlerKind};

use crate::activation::{ActivationOutcome, RunIdentity};
use crate::error::WorkflowError;
use crate::model::{
    Directive, HistoryEvent, Json, Pending, RunId, WorkflowTypeSpec, json_null, json_value,
};

/// A child's link to its parent.
#[derive(Debug, Clone)]
pub struct ParentLink {
    pub run_id: RunId,
    /// The parent step told of the child's end.
    pub on_completed: Option<String>,
    pub close_policy: ClosePolicy,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: RunId,
    pub workflow_id: String,
    pub workflow_type: String,
    pub version: String,
    pub parent: Option<ParentLink>,
    pub input: Json,
    /// The start activation.
    pub pending: Pending,
    /// When the workflow timeout fails the run.
    pub deadline_ms: Option<u64>,
    pub at_ms: u64,
}

/// A durable timer of a waiting run: when it is due, its step runs, or,
/// for a timed wait without a timeout step, the run fails with
/// `WaitTimeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timer {
    pub due_ms: u64,
    /// The step to run when due; `None`: the run fails with `WaitTimeout`.
    pub on_timeout: Option<String>,
    /// A durable sleep (`ctx.next.sleep`): events stay in the inbox until
    /// the timer fires and the run next waits. Always has a step.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sleep: bool,
    /// A task's retry delay: when due, the run's pending activation (kept
    /// while it waits) is executed again. Always a sleep, without a step.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

impl Timer {
    /// The timer of a task's retry delay, due at `due_ms`.
    pub fn retry(due_ms: u64) -> Self {
        Timer {
            due_ms,
            on_timeout: None,
            sleep: true,
            retry: true,
        }
    }

    /// The error a timed wait without a timeout step fails its run with.
    pub fn wait_timeout(run_id: RunId) -> WorkflowError {
        WorkflowError::new(
            ErrorKind::WaitTimeout,
            format!("run {run_id} waited for an event until its wait timeout"),
        )
    }
}

/// The state a commit moves a run to.
#[derive(Debug, Clone)]
pub enum NextState {
    /// Another activation follows.
    Running(Pending),
    /// Parked until an event or the timer.
    Waiting(Option<Timer>),
    Completed(Json),
    Failed(WorkflowError),
    /// Parked until a task's retry delay has passed; then `pending`, the
    /// same activation, is executed again (its journal answers the tasks it
    /// recorded). Events stay in the inbox meanwhile.
    Retrying {
        due_ms: u64,
        pending: Pending,
    },
}

impl NextState {
    /// Whether the run leaves its activation behind: its journal is dropped.
    /// A failed activation keeps its journal for `retry`, a retrying one for
    /// its next execution.
    pub fn ends_activation(&self) -> bool {
        !matches!(self, NextState::Failed(_) | NextState::Retrying { .. })
    }
}

/// What goes into an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// An event for an event handler.
    Event,
    /// A child's completion notice for a parent step.
    Notice,
}

impl InboxKind {
    /// The kind of activation it becomes when dispatched.
    pub fn handler_kind(self) -> HandlerKind {
        match self {
            InboxKind::Event => HandlerKind::Event,
            InboxKind::Notice => HandlerKind::Step,
        }
    }
}

/// An event for a run's inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub run_id: RunId,
    pub name: String,
    pub payload: Json,
    pub kind: InboxKind,
    /// `client`, or the sending child's run id.
    pub source: String,
}

/// What an activation's outcome does to its run.
#[derive(Debug)]
pub struct Plan {
    pub next: NextState,
    pub writes: BTreeMap<String, Option<Json>>,
    pub history: Vec<HistoryEvent>,
    pub children: Vec<NewRun>,
    pub to_parent: Vec<Delivery>,
}

impl Plan {
    /// A plan that keeps nothing the activation did but `history`.
    fn discarding(next: NextState, history: HistoryEvent) -> Plan {
        Plan {
            next,
            writes: BTreeMap::new(),
            history: vec![history],
            children: Vec::new(),
            to_parent: Vec::new(),
        }
    }
}

/// Decide the run's next state from an activation's outcome (SPEC 3):
///
/// - an error (trap, limit, handler `Err`) fails the run and discards the
///   activation's store writes, children and events;
/// - `step(name)` runs that step next, if the type has it (else `UnknownStep`);
/// - `wait` parks the run, with a durable timer when it has a timeout: its
///   `on_timeout` step (which must exist) runs when it fires, or without
///   one the run fails with `WaitTimeout`;
/// - `sleep` parks the run with a durable timer that runs its step (which
///   must exist); events stay in the inbox meanwhile;
/// - `complete` and `fail` end the run; their store writes, children and
///   events are kept.
pub fn plan(
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
    if let Some(due_ms) = outcome.retry_at_ms {
        // A task's retry delay did not fit the step timeout: nothing of the
        // activation is kept but its journal; it runs again when due.
        return Plan::discarding(
            NextState::Retrying {
                due_ms,
                pending: pending.clone(),
            },
            HistoryEvent::RetryScheduled {
                sequence: seq,
                kind: pending.kind,
                handler: pending.handler.clone(),
                started_ms,
                duration_us,
                due_ms,
            },
        );
    }
    let sent = &outcome.sent;
    let checked = outcome.result.and_then(|directive| {
        let next = next_state(spec, &directive, now_ms)?;
        // What history records; a value that does not read back fails the
        // activation instead of being recorded as something else.
        let recorded = serde_json::to_value(&directive).map_err(|e| {
            WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!("the directive cannot be recorded: {e}"),
            )
        })?;
        let payloads = sent
            .iter()
            .map(|event| json_value(&event.payload))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((next, recorded, payloads))
    });
    let (next, recorded, payloads) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let history = HistoryEvent::ActivationFailed {
                sequence: seq,
                kind: pending.kind,
                handler: pending.handler.clone(),
                started_ms,
                duration_us,
                error: error.clone(),
            };
            return Plan::discarding(NextState::Failed(error), history);
        }
    };
    let mut history = vec![HistoryEvent::ActivationCompleted {
        sequence: seq,
        kind: pending.kind,
        handler: pending.handler.clone(),
        started_ms,
        duration_us,
        directive: recorded,
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
    let parent_run_id = identity.parent.as_ref().map(|p| p.run_id);
    let to_parent: Vec<Delivery> = match parent_run_id {
        Some(parent) => outcome
            .sent
            .into_iter()
            .zip(payloads)
            .map(|(event, payload)| {
                history.push(HistoryEvent::EventSentToParent {
                    name: event.name.clone(),
                    payload,
                    parent_run_id: parent,
                });
                Delivery {
                    run_id: parent,
                    name: event.name,
                    payload: event.payload,
                    kind: InboxKind::Event,
                    source: identity.run_id.to_string(),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    match &next {
        NextState::Waiting(Some(timer)) => history.push(HistoryEvent::TimerSet {
            due_ms: timer.due_ms,
            on_timeout: timer.on_timeout.clone(),
        }),
        NextState::Completed(_) | NextState::Failed(_) => {
            // `run_completed`/`run_failed` are recorded by storage when the
            // run ends (a pending cancel may end it differently).
        }
        NextState::Running(_) | NextState::Waiting(None) | NextState::Retrying { .. } => {}
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
            (Some(timeout), step) => {
                if let Some(step) = step {
                    check_step(step, "the wait's on_timeout")?;
                }
                NextState::Waiting(Some(Timer {
                    due_ms: due(now_ms, *timeout),
                    on_timeout: step.clone(),
                    sleep: false,
                    retry: false,
                }))
            }
            (None, Some(step)) => {
                return Err(WorkflowError::new(
                    ErrorKind::UnknownStep,
                    format!("the wait names on_timeout step `{step}` but no timeout"),
                ));
            }
        },
        Directive::Sleep { duration, step } => {
            check_step(step, "the sleep")?;
            NextState::Waiting(Some(Timer {
                due_ms: due(now_ms, *duration),
                on_timeout: Some(step.clone()),
                sleep: true,
                retry: false,
            }))
        }
        Directive::Complete(result) => NextState::Completed(result.clone()),
        Directive::Fail(error) => NextState::Failed(error.clone()),
    })
}

fn due(now_ms: u64, after: std::time::Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::ParentIdentity;
    use crate::model::{ChildStart, HandlerSpec, SentEvent, parse_json};
    use std::time::Duration;
    use wasmflow_protocol::ClosePolicy;

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
            run_id: RunId::new(),
            version: "v1".into(),
            parent: parent.map(|p| ParentIdentity {
                workflow_type: "Parent".into(),
                workflow_id: "p".into(),
                run_id: p,
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
            NextState::Waiting(Some(Timer { due_ms: 1_250, on_timeout: Some(step), sleep: false, retry: false }))
                if step == "greet"
        ));
        assert_eq!(kinds(&plan), ["activation_completed", "timer_set"]);
        let unknown = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: Some("gret".into()),
        };
        let plan = run(outcome(Ok(unknown)), 0, 0);
        assert!(matches!(&plan.next, NextState::Failed(e) if e.kind == ErrorKind::UnknownStep));
    }

    #[test]
    fn a_timed_wait_without_a_step_sets_a_timer_that_fails_the_run() {
        let wait = Directive::Wait {
            timeout: Some(Duration::from_millis(250)),
            on_timeout: None,
        };
        let plan = run(outcome(Ok(wait)), 0, 1_000);
        assert!(
            matches!(
                &plan.next,
                NextState::Waiting(Some(Timer {
                    due_ms: 1_250,
                    on_timeout: None,
                    sleep: false,
                    retry: false
                }))
            ),
            "{:?}",
            plan.next
        );
        assert!(matches!(
            plan.history.last(),
            Some(HistoryEvent::TimerSet {
                due_ms: 1_250,
                on_timeout: None
            })
        ));
    }

    #[test]
    fn a_sleep_sets_a_sleeping_timer_on_an_existing_step() {
        let sleep = Directive::Sleep {
            duration: Duration::from_millis(500),
            step: "greet".into(),
        };
        let plan = run(outcome(Ok(sleep)), 0, 1_000);
        assert!(matches!(
            &plan.next,
            NextState::Waiting(Some(Timer { due_ms: 1_500, on_timeout: Some(step), sleep: true, retry: false }))
                if step == "greet"
        ));
        assert_eq!(kinds(&plan), ["activation_completed", "timer_set"]);
        let unknown = Directive::Sleep {
            duration: Duration::from_millis(500),
            step: "gret".into(),
        };
        let plan = run(outcome(Ok(unknown)), 0, 0);
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
