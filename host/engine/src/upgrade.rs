//! Opt-in upgrade (SPEC 11): move the waiting runs of a workflow type to the
//! newest version of its component, at their next activation.
//!
//! This is safe in wasmflow's step model where replay-based engines cannot
//! make it safe: an activation never replays history against code; it runs
//! one handler from its beginning on the run's committed store. So a waiting
//! run is tied to its code only by what it can still reach: the event
//! handlers an event could dispatch to (with their parameters), the step its
//! wait timer will run, the steps its children's completion notices will
//! run, and what is already in its inbox. [`check`] verifies each of those
//! exists in the new version; a run that passes moves, one that fails stays
//! pinned and is listed with the reason. (The shape of the data in the
//! store is the workflow author's contract between versions.)

use std::sync::Arc;

use wasmflow_core::model::{RunId, WorkflowTypeSpec, now_ms};
use wasmflow_core::{HandlerKind, RunStatus};
use wasmflow_storage::{Anchors, RunRecord, Storage};

use crate::error::Result;
use crate::plugins::Plugins;

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    pub workflow_type: String,
    /// The version runs were moved to.
    pub version: String,
    /// Runs moved to `version`.
    pub upgraded: Vec<RunId>,
    /// Runs left on their version, and why.
    pub pinned: Vec<PinnedRun>,
}

/// A run an upgrade left on its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRun {
    pub run_id: RunId,
    pub version: String,
    pub reason: String,
}

/// Whether `run` (waiting, or failed for `retry`, on `old`) can move to `new`: everything it can
/// still reach must exist there. The error names what is missing.
pub(crate) fn check(
    old: &WorkflowTypeSpec,
    new: &WorkflowTypeSpec,
    run: &RunRecord,
    anchors: &Anchors,
) -> std::result::Result<(), String> {
    if run.status == RunStatus::Running {
        return Err("an activation is in progress; upgrade it once it waits".to_owned());
    }
    // A run waiting out a task's retry delay, or a failed run to be retried,
    // executes its kept activation again: on the new code, it must exist.
    if let Some(p) = &run.pending
        && new.handler(p.kind, &p.handler).is_none()
    {
        return Err(format!(
            "{} handler `{}` (the activation it executes again) is missing",
            p.kind, p.handler
        ));
    }
    for handler in old.handlers.iter().filter(|h| h.kind == HandlerKind::Event) {
        match new.handler(HandlerKind::Event, &handler.name) {
            None => return Err(format!("event handler `{}` is missing", handler.name)),
            Some(h) if h.params != handler.params => {
                return Err(format!(
                    "event handler `{}` takes different parameters",
                    handler.name
                ));
            }
            Some(_) => {}
        }
    }
    let step = |name: &str, what: &str| {
        if new.handler(HandlerKind::Step, name).is_some() {
            Ok(())
        } else {
            Err(format!("step `{name}` ({what}) is missing"))
        }
    };
    if let Some(step_name) = run.timer.as_ref().and_then(|t| t.on_timeout.as_deref()) {
        step(step_name, "the wait's timeout step")?;
    }
    for name in &anchors.child_steps {
        step(name, "a child's completion step")?;
    }
    for (name, notice) in &anchors.inbox {
        if *notice {
            step(name, "a completion notice in the inbox")?;
        } else if new.handler(HandlerKind::Event, name).is_none() {
            return Err(format!(
                "event handler `{name}` (an event in the inbox) is missing"
            ));
        }
    }
    Ok(())
}

/// Upgrade the waiting runs of `workflow_type` to the version `plugins`
/// provides now; `spec_of` gives a version's description of the type.
pub(crate) async fn upgrade<F, Fut>(
    storage: &dyn Storage,
    plugins: &Plugins,
    workflow_type: &str,
    spec_of: F,
) -> Result<UpgradeReport>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Arc<WorkflowTypeSpec>>>,
{
    let entry = plugins.get(workflow_type)?;
    let version = entry.component.hash.clone();
    let mut report = UpgradeReport {
        workflow_type: workflow_type.to_owned(),
        version: version.clone(),
        upgraded: Vec::new(),
        pinned: Vec::new(),
    };
    for run in storage.live_runs_of_type(workflow_type).await? {
        if run.version == version {
            continue;
        }
        let old = spec_of(run.version.clone()).await?;
        let anchors = storage.anchors(run.run_id).await?;
        let verdict = match check(&old, &entry.spec, &run, &anchors) {
            Ok(()) => {
                let moved = storage
                    .upgrade_run(
                        run.run_id,
                        run.seq,
                        run.version.clone(),
                        version.clone(),
                        now_ms(),
                    )
                    .await?;
                if moved {
                    tracing::info!(
                        target: "wasmflow::run",
                        parent: None,
                        workflow_id = %run.workflow_id, run_id = %run.run_id, %workflow_type,
                        from = %crate::plugins::short_version(&run.version),
                        to = %crate::plugins::short_version(&version),
                        "run upgraded"
                    );
                    Ok(())
                } else {
                    Err("it moved on while being checked; try again".to_owned())
                }
            }
            Err(reason) => Err(reason),
        };
        match verdict {
            Ok(()) => report.upgraded.push(run.run_id),
            Err(reason) => report.pinned.push(PinnedRun {
                run_id: run.run_id,
                version: run.version,
                reason,
            }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflow_core::model::{HandlerSpec, ParamSpec, json_null};
    use wasmflow_core::plan::Timer;

    fn spec(handlers: &[(HandlerKind, &str, &[&str])]) -> WorkflowTypeSpec {
        WorkflowTypeSpec {
            name: "T".into(),
            handlers: handlers
                .iter()
                .map(|(kind, name, params)| HandlerSpec {
                    name: (*name).into(),
                    kind: *kind,
                    params: params
                        .iter()
                        .map(|p| ParamSpec {
                            name: (*p).into(),
                            optional: false,
                            schema: None,
                        })
                        .collect(),
                    timeout: None,
                })
                .collect(),
        }
    }

    fn waiting(timer: Option<&str>) -> RunRecord {
        RunRecord {
            run_id: RunId::new(),
            workflow_id: "w".into(),
            workflow_type: "T".into(),
            version: "old".into(),
            status: RunStatus::Waiting,
            parent_run_id: None,
            on_completed: None,
            close_policy: Default::default(),
            input: json_null(),
            result: None,
            error: None,
            seq: 3,
            pending: None,
            timer: timer.map(|t| Timer {
                due_ms: 0,
                on_timeout: Some(t.into()),
                sleep: false,
                retry: false,
            }),
            deadline_ms: None,
            cancel_requested: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    use HandlerKind::{Event, Start, Step};

    #[test]
    fn everything_reachable_must_exist_in_the_new_version() {
        let old = spec(&[
            (Start, "s", &[]),
            (Step, "late", &[]),
            (Event, "pay", &["amount"]),
        ]);
        let same = old.clone();
        let anchors = Anchors::default();
        assert_eq!(check(&old, &same, &waiting(Some("late")), &anchors), Ok(()));

        let no_event = spec(&[(Start, "s", &[]), (Step, "late", &[])]);
        let err = check(&old, &no_event, &waiting(None), &anchors).unwrap_err();
        assert!(err.contains("event handler `pay` is missing"), "{err}");

        let other_params = spec(&[
            (Start, "s", &[]),
            (Step, "late", &[]),
            (Event, "pay", &["sum"]),
        ]);
        let err = check(&old, &other_params, &waiting(None), &anchors).unwrap_err();
        assert!(err.contains("different parameters"), "{err}");

        let no_step = spec(&[(Start, "s", &[]), (Event, "pay", &["amount"])]);
        let err = check(&old, &no_step, &waiting(Some("late")), &anchors).unwrap_err();
        assert!(
            err.contains("step `late` (the wait's timeout step)"),
            "{err}"
        );
        // Without the timer the step is unreachable, so it may go.
        assert_eq!(check(&old, &no_step, &waiting(None), &anchors), Ok(()));
    }

    #[test]
    fn children_and_the_inbox_are_anchors_too() {
        let old = spec(&[
            (Start, "s", &[]),
            (Step, "child_done", &["o"]),
            (Event, "pay", &[]),
        ]);
        let new = spec(&[(Start, "s", &[]), (Event, "pay", &[])]);
        let anchors = Anchors {
            child_steps: vec!["child_done".into()],
            inbox: vec![],
        };
        let err = check(&old, &new, &waiting(None), &anchors).unwrap_err();
        assert!(err.contains("a child's completion step"), "{err}");
        let anchors = Anchors {
            child_steps: vec![],
            inbox: vec![("child_done".into(), true)],
        };
        let err = check(&old, &new, &waiting(None), &anchors).unwrap_err();
        assert!(err.contains("completion notice in the inbox"), "{err}");
    }

    #[test]
    fn a_running_run_is_not_moved() {
        let old = spec(&[(Start, "s", &[])]);
        let mut run = waiting(None);
        run.status = RunStatus::Running;
        let err = check(&old, &old, &run, &Anchors::default()).unwrap_err();
        assert!(err.contains("in progress"), "{err}");
    }

    #[test]
    fn a_kept_activation_must_exist_in_the_new_version() {
        let old = spec(&[(Start, "s", &[]), (Step, "charge", &[])]);
        let fixed = spec(&[(Start, "s", &[]), (Step, "charge", &[])]);
        let renamed = spec(&[(Start, "s", &[]), (Step, "charge_v2", &[])]);
        let mut run = waiting(None);
        run.status = RunStatus::Failed;
        run.pending = Some(wasmflow_core::model::Pending {
            kind: Step,
            handler: "charge".into(),
            input: json_null(),
        });
        let anchors = Anchors::default();
        assert_eq!(check(&old, &fixed, &run, &anchors), Ok(()));
        let err = check(&old, &renamed, &run, &anchors).unwrap_err();
        assert!(err.contains("step handler `charge`"), "{err}");
    }
}
