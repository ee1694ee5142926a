//! The write operations, each applied inside the writer's transaction: run
//! creation, activation commits, inbox delivery and dispatch, and the ways a
//! run ends (with what ending does to its parent and children).

use rusqlite::{ErrorCode, OptionalExtension, Transaction, params};
use serde_json::json;

use super::{parse_run_id, to_json};
use crate::error::{ErrorKind, WorkflowError};
use crate::model::{HistoryEvent, Json, Pending, RunId, RunStatus, json_value};
use crate::storage::{
    CommitOutcome, CreateError, Delivery, Effects, Finished, InboxKind, NewRun, NextState, RunGone,
    StateCommit, StorageError, Timer,
};

const LIVE: &str = "status IN ('running', 'waiting')";

/// How a run ends.
enum Ending<'a> {
    Completed(&'a Json),
    Failed(&'a WorkflowError),
    Cancelled(&'a str),
    Terminated(&'a str),
}

pub(super) fn create(
    tx: &Transaction<'_>,
    run: &NewRun,
) -> Result<Result<(), CreateError>, StorageError> {
    Ok(
        insert_run(tx, run)?.map_err(|(workflow_id, run_id)| CreateError::AlreadyActive {
            workflow_id,
            run_id,
        }),
    )
}

/// Insert a run and its `run_started`; `Err((workflow_id, active run))` when
/// the workflow id is taken.
fn insert_run(
    tx: &Transaction<'_>,
    run: &NewRun,
) -> Result<Result<(), (String, RunId)>, StorageError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO runs (run_id, workflow_id, workflow_type, version, status,
                               parent_run_id, on_completed, close_policy, input, seq, pending,
                               deadline_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?11)",
        )?
        .execute(params![
            run.run_id.to_string(),
            run.workflow_id,
            run.workflow_type,
            run.version,
            run.parent.as_ref().map(|p| p.run_id.to_string()),
            run.parent.as_ref().and_then(|p| p.on_completed.as_deref()),
            run.parent
                .as_ref()
                .map_or("abandon", |p| p.close_policy.as_str()),
            run.input.get(),
            to_json(&run.pending)?,
            run.deadline_ms.map(|d| d as i64),
            run.at_ms as i64,
        ]);
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            let active: Option<String> = tx
                .prepare_cached(&format!(
                    "SELECT run_id FROM runs WHERE workflow_id = ?1 AND {LIVE}"
                ))?
                .query_row([&run.workflow_id], |r| r.get(0))
                .optional()?;
            let Some(active) = active else {
                return Err(StorageError::Corrupt(format!(
                    "run `{}` could not be inserted: {e}",
                    run.run_id
                )));
            };
            return Ok(Err((run.workflow_id.clone(), parse_run_id(&active)?)));
        }
        Err(e) => return Err(e.into()),
    }
    insert_history(
        tx,
        run.run_id,
        run.at_ms,
        &HistoryEvent::RunStarted {
            workflow_type: run.workflow_type.clone(),
            workflow_id: run.workflow_id.clone(),
            version: run.version.clone(),
            input: json_value(&run.input),
            parent_run_id: run.parent.as_ref().map(|p| p.run_id),
        },
    )?;
    Ok(Ok(()))
}

pub(super) fn commit(
    tx: &Transaction<'_>,
    c: &StateCommit,
    max_inbox: u64,
) -> Result<CommitOutcome, StorageError> {
    if c.children.is_empty() {
        return commit_inner(tx, c, max_inbox);
    }
    // Children are inserted first; if one's workflow id is taken, everything
    // this commit wrote is undone.
    tx.execute_batch("SAVEPOINT commit_with_children")?;
    let outcome = commit_inner(tx, c, max_inbox)?;
    if matches!(outcome, CommitOutcome::Conflict { .. }) {
        tx.execute_batch("ROLLBACK TO commit_with_children")?;
    }
    tx.execute_batch("RELEASE commit_with_children")?;
    Ok(outcome)
}

fn commit_inner(
    tx: &Transaction<'_>,
    c: &StateCommit,
    max_inbox: u64,
) -> Result<CommitOutcome, StorageError> {
    let run = c.run_id;
    let row: Option<(i64, String, Option<String>)> = tx
        .prepare_cached("SELECT seq, status, cancel_reason FROM runs WHERE run_id = ?1")?
        .query_row([run.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((seq, status, cancel_reason)) = row else {
        return Ok(CommitOutcome::Stale);
    };
    if seq as u64 != c.expected_seq || !is_live(&status) {
        return Ok(CommitOutcome::Stale);
    }
    for child in &c.children {
        if let Err((workflow_id, run_id)) = insert_run(tx, child)? {
            return Ok(CommitOutcome::Conflict {
                workflow_id,
                run_id,
            });
        }
    }
    let run_text = run.to_string();
    for (key, value) in &c.writes {
        match value {
            Some(value) => tx
                .prepare_cached(
                    "INSERT INTO store (run_id, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![run_text, key, value.get()])?,
            None => tx
                .prepare_cached("DELETE FROM store WHERE run_id = ?1 AND key = ?2")?
                .execute(params![run_text, key])?,
        };
    }
    for event in &c.history {
        insert_history(tx, run, c.at_ms, event)?;
    }
    let mut effects = Effects::default();
    for delivery in &c.to_parent {
        if let Err(gone) = deliver(tx, delivery, c.at_ms, max_inbox, &mut effects)? {
            insert_history(
                tx,
                run,
                c.at_ms,
                &HistoryEvent::EventDropped {
                    name: delivery.name.clone(),
                    reason: gone.to_string(),
                },
            )?;
        }
    }

    let seq = c.expected_seq + 1;
    // A cancel that arrived during the activation wins over its directive.
    if let Some(reason) = cancel_reason {
        finish(
            tx,
            run,
            &Ending::Cancelled(&reason),
            c.at_ms,
            max_inbox,
            &mut effects,
        )?;
        return Ok(CommitOutcome::Applied {
            seq,
            next: None,
            effects,
        });
    }
    let next = match &c.next {
        NextState::Running(pending) => {
            set_state(tx, run, RunStatus::Running, Some(pending), None, c.at_ms)?;
            Some(pending.clone())
        }
        NextState::Waiting(timer) => {
            set_state(tx, run, RunStatus::Waiting, None, timer.as_ref(), c.at_ms)?;
            // The oldest waiting event is dispatched as the run parks.
            match dispatch_oldest(tx, run, c.at_ms)? {
                Some((pending, seq)) => {
                    return Ok(CommitOutcome::Applied {
                        seq,
                        next: Some(pending),
                        effects,
                    });
                }
                None => None,
            }
        }
        NextState::Completed(result) => {
            finish(
                tx,
                run,
                &Ending::Completed(result),
                c.at_ms,
                max_inbox,
                &mut effects,
            )?;
            None
        }
        NextState::Failed(error) => {
            finish(
                tx,
                run,
                &Ending::Failed(error),
                c.at_ms,
                max_inbox,
                &mut effects,
            )?;
            None
        }
    };
    Ok(CommitOutcome::Applied { seq, next, effects })
}

fn is_live(status: &str) -> bool {
    status == "running" || status == "waiting"
}

fn set_state(
    tx: &Transaction<'_>,
    run: RunId,
    status: RunStatus,
    pending: Option<&Pending>,
    timer: Option<&Timer>,
    at_ms: u64,
) -> Result<(), StorageError> {
    let pending = pending.map(to_json).transpose()?;
    tx.prepare_cached(
        "UPDATE runs SET seq = seq + 1, status = ?1, pending = ?2, timer_at = ?3,
             timer_step = ?4, updated_at = ?5
         WHERE run_id = ?6",
    )?
    .execute(params![
        status.as_str(),
        pending,
        timer.map(|t| t.due_ms as i64),
        timer.map(|t| &t.on_timeout),
        at_ms as i64,
        run.to_string(),
    ])?;
    Ok(())
}

/// Append `delivery` to a live run's inbox and dispatch it at once if the run
/// waits. The inner error says why the run could not take it.
fn deliver(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    at_ms: u64,
    max_inbox: u64,
    effects: &mut Effects,
) -> Result<Result<(), RunGone>, StorageError> {
    let target = delivery.run_id;
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
        .query_row([target.to_string()], |r| r.get(0))
        .optional()?;
    let status = match status {
        None => return Ok(Err(RunGone::NotFound(target))),
        Some(s) => s
            .parse::<RunStatus>()
            .map_err(|e| StorageError::Corrupt(format!("run `{target}`: {e}")))?,
    };
    if status.is_terminal() {
        return Ok(Err(RunGone::Terminal {
            run_id: target,
            status,
        }));
    }
    let len: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM inbox WHERE run_id = ?1")?
        .query_row([target.to_string()], |r| r.get(0))?;
    if len as u64 >= max_inbox {
        return Ok(Err(RunGone::InboxFull {
            run_id: target,
            len: len as u64,
        }));
    }
    tx.prepare_cached(
        "INSERT INTO inbox (run_id, name, payload, notice, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        target.to_string(),
        delivery.name,
        delivery.payload.get(),
        delivery.kind == InboxKind::Notice,
        at_ms as i64,
    ])?;
    insert_history(
        tx,
        target,
        at_ms,
        &HistoryEvent::EventReceived {
            name: delivery.name.clone(),
            payload: json_value(&delivery.payload),
            source: delivery.source.clone(),
        },
    )?;
    if status == RunStatus::Waiting && dispatch_oldest(tx, target, at_ms)?.is_some() {
        effects.woken.push(target);
    }
    Ok(Ok(()))
}

/// If `run` waits and its inbox is not empty, make the oldest entry its next
/// activation (cancelling its wait timer). Returns it and the new sequence
/// number.
fn dispatch_oldest(
    tx: &Transaction<'_>,
    run: RunId,
    at_ms: u64,
) -> Result<Option<(Pending, u64)>, StorageError> {
    let run_text = run.to_string();
    let oldest: Option<(i64, String, String, bool)> = tx
        .prepare_cached(
            "SELECT id, name, payload, notice FROM inbox WHERE run_id = ?1 ORDER BY id LIMIT 1",
        )?
        .query_row([&run_text], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, name, payload, notice)) = oldest else {
        return Ok(None);
    };
    let kind = if notice {
        InboxKind::Notice
    } else {
        InboxKind::Event
    };
    let pending = Pending {
        kind: kind.handler_kind(),
        handler: name.clone(),
        input: super::stored_json(&payload, "inbox payload")?,
    };
    let seq: Option<i64> = tx
        .prepare_cached(
            "UPDATE runs SET seq = seq + 1, status = 'running', pending = ?1, timer_at = NULL,
                 timer_step = NULL, updated_at = ?2
             WHERE run_id = ?3 AND status = 'waiting'
             RETURNING seq",
        )?
        .query_row(params![to_json(&pending)?, at_ms as i64, &run_text], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(seq) = seq else {
        return Ok(None);
    };
    tx.prepare_cached("DELETE FROM inbox WHERE id = ?1")?
        .execute([id])?;
    insert_history(
        tx,
        run,
        at_ms,
        &HistoryEvent::EventDispatched {
            name,
            kind: pending.kind,
        },
    )?;
    Ok(Some((pending, seq as u64)))
}

/// End a live run: record it, drop its inbox, tell its parent, and apply its
/// children's close policies. A run that already ended is left alone.
fn finish(
    tx: &Transaction<'_>,
    run: RunId,
    ending: &Ending<'_>,
    at_ms: u64,
    max_inbox: u64,
    effects: &mut Effects,
) -> Result<(), StorageError> {
    let (status, result, error, event) = match ending {
        Ending::Completed(result) => (
            RunStatus::Completed,
            Some(result.get().to_owned()),
            None,
            HistoryEvent::RunCompleted {
                result: json_value(result),
            },
        ),
        Ending::Failed(error) => (
            RunStatus::Failed,
            None,
            Some(to_json(error)?),
            HistoryEvent::RunFailed {
                error: (*error).clone(),
            },
        ),
        Ending::Cancelled(reason) => (
            RunStatus::Cancelled,
            None,
            Some(to_json(&WorkflowError::new(ErrorKind::Cancelled, *reason))?),
            HistoryEvent::RunCancelled {
                reason: (*reason).to_owned(),
            },
        ),
        Ending::Terminated(reason) => (
            RunStatus::Terminated,
            None,
            Some(to_json(&WorkflowError::new(
                ErrorKind::Terminated,
                *reason,
            ))?),
            HistoryEvent::RunTerminated {
                reason: (*reason).to_owned(),
            },
        ),
    };
    let run_text = run.to_string();
    type Ended = (String, String, Option<String>, Option<String>);
    let ended: Option<Ended> = tx
        .prepare_cached(&format!(
            "UPDATE runs SET seq = seq + 1, status = ?1, pending = NULL, timer_at = NULL,
                 timer_step = NULL, result = ?2, error = ?3, cancel_reason = NULL,
                 updated_at = ?4
             WHERE run_id = ?5 AND {LIVE}
             RETURNING workflow_id, workflow_type, parent_run_id, on_completed"
        ))?
        .query_row(
            params![status.as_str(), result, error, at_ms as i64, &run_text],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((workflow_id, workflow_type, parent, on_completed)) = ended else {
        return Ok(());
    };
    insert_history(tx, run, at_ms, &event)?;
    effects.finished.push(Finished {
        run_id: run,
        workflow_type,
        status,
    });

    // Events nobody will handle any more.
    let dropped: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT name FROM inbox WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([&run_text], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if !dropped.is_empty() {
        for name in dropped {
            insert_history(
                tx,
                run,
                at_ms,
                &HistoryEvent::EventDropped {
                    name,
                    reason: format!("run ended {status}"),
                },
            )?;
        }
        tx.prepare_cached("DELETE FROM inbox WHERE run_id = ?1")?
            .execute([&run_text])?;
    }

    // The completion notice.
    if let (Some(parent), Some(step)) = (parent, on_completed) {
        let parent = parse_run_id(&parent)?;
        let notice = Delivery {
            run_id: parent,
            name: step,
            payload: outcome(&workflow_id, run, ending)?,
            kind: InboxKind::Notice,
            source: run_text.clone(),
        };
        if let Err(gone) = deliver(tx, &notice, at_ms, max_inbox, effects)? {
            insert_history(
                tx,
                run,
                at_ms,
                &HistoryEvent::EventDropped {
                    name: notice.name,
                    reason: format!("completion notice not delivered: {gone}"),
                },
            )?;
        }
    }

    // Close policies of the children still alive.
    let children: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT run_id, close_policy FROM runs WHERE parent_run_id = ?1 AND {LIVE}
             AND close_policy != 'abandon'"
        ))?;
        let rows = stmt.query_map([&run_text], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let reason = format!("parent run {run} ended {status}");
    for (child, policy) in children {
        let child = parse_run_id(&child)?;
        if policy == "terminate" {
            finish(
                tx,
                child,
                &Ending::Terminated(&reason),
                at_ms,
                max_inbox,
                effects,
            )?;
        } else {
            // Selected live above, in this transaction: it cannot be gone.
            let _ = cancel_live(tx, child, &reason, at_ms, max_inbox, effects)?;
        }
    }
    Ok(())
}

/// The completion notice's payload: `{workflow_id, run_id, status, result,
/// error}`, with `timed_out` for a `WorkflowTimeout` failure.
fn outcome(workflow_id: &str, run: RunId, ending: &Ending<'_>) -> Result<Json, StorageError> {
    let (status, result, error) = match ending {
        Ending::Completed(result) => ("completed", json_value(result), serde_json::Value::Null),
        Ending::Failed(error) => {
            let status = if error.kind == ErrorKind::WorkflowTimeout {
                "timed_out"
            } else {
                "failed"
            };
            (status, serde_json::Value::Null, json!(error))
        }
        Ending::Cancelled(reason) => (
            "cancelled",
            serde_json::Value::Null,
            json!(WorkflowError::new(ErrorKind::Cancelled, *reason)),
        ),
        Ending::Terminated(reason) => (
            "terminated",
            serde_json::Value::Null,
            json!(WorkflowError::new(ErrorKind::Terminated, *reason)),
        ),
    };
    let value = json!({
        "workflow_id": workflow_id,
        "run_id": run.to_string(),
        "status": status,
        "result": result,
        "error": error,
    });
    serde_json::value::to_raw_value(&value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// A live run's status and pending cancel, or why it is not live.
fn live_status(
    tx: &Transaction<'_>,
    run: RunId,
) -> Result<Result<(RunStatus, Option<String>), RunGone>, StorageError> {
    let row: Option<(String, Option<String>)> = tx
        .prepare_cached("SELECT status, cancel_reason FROM runs WHERE run_id = ?1")?
        .query_row([run.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((status, cancel)) = row else {
        return Ok(Err(RunGone::NotFound(run)));
    };
    let status = status
        .parse::<RunStatus>()
        .map_err(|e| StorageError::Corrupt(format!("run `{run}`: {e}")))?;
    if status.is_terminal() {
        return Ok(Err(RunGone::Terminal {
            run_id: run,
            status,
        }));
    }
    Ok(Ok((status, cancel)))
}

/// Cancel a live run: a waiting run at once, a running one when its
/// activation commits.
fn cancel_live(
    tx: &Transaction<'_>,
    run: RunId,
    reason: &str,
    at_ms: u64,
    max_inbox: u64,
    effects: &mut Effects,
) -> Result<Result<(), RunGone>, StorageError> {
    let (status, pending_cancel) = match live_status(tx, run)? {
        Ok(live) => live,
        Err(gone) => return Ok(Err(gone)),
    };
    if status == RunStatus::Waiting {
        finish(
            tx,
            run,
            &Ending::Cancelled(reason),
            at_ms,
            max_inbox,
            effects,
        )?;
    } else if pending_cancel.is_none() {
        tx.prepare_cached("UPDATE runs SET cancel_reason = ?1, updated_at = ?2 WHERE run_id = ?3")?
            .execute(params![reason, at_ms as i64, run.to_string()])?;
        insert_history(
            tx,
            run,
            at_ms,
            &HistoryEvent::CancelRequested {
                reason: reason.to_owned(),
            },
        )?;
    }
    Ok(Ok(()))
}

pub(super) fn deliver_from_client(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    max_inbox: u64,
) -> Result<Result<Effects, RunGone>, StorageError> {
    let mut effects = Effects::default();
    let at_ms = crate::model::now_ms();
    Ok(deliver(tx, delivery, at_ms, max_inbox, &mut effects)?.map(|()| effects))
}

pub(super) fn cancel(
    tx: &Transaction<'_>,
    run: RunId,
    reason: &str,
    at_ms: u64,
    max_inbox: u64,
) -> Result<Result<Effects, RunGone>, StorageError> {
    let mut effects = Effects::default();
    Ok(cancel_live(tx, run, reason, at_ms, max_inbox, &mut effects)?.map(|()| effects))
}

pub(super) fn terminate(
    tx: &Transaction<'_>,
    run: RunId,
    reason: &str,
    at_ms: u64,
    max_inbox: u64,
) -> Result<Result<Effects, RunGone>, StorageError> {
    if let Err(gone) = live_status(tx, run)? {
        return Ok(Err(gone));
    }
    let mut effects = Effects::default();
    finish(
        tx,
        run,
        &Ending::Terminated(reason),
        at_ms,
        max_inbox,
        &mut effects,
    )?;
    Ok(Ok(effects))
}

pub(super) fn expire(
    tx: &Transaction<'_>,
    run: RunId,
    at_ms: u64,
    max_inbox: u64,
) -> Result<Effects, StorageError> {
    let mut effects = Effects::default();
    let deadline: Option<Option<i64>> = tx
        .prepare_cached(&format!(
            "SELECT deadline_at FROM runs WHERE run_id = ?1 AND {LIVE}"
        ))?
        .query_row([run.to_string()], |r| r.get(0))
        .optional()?;
    if let Some(Some(deadline)) = deadline
        && deadline as u64 <= at_ms
    {
        let error = WorkflowError::new(
            ErrorKind::WorkflowTimeout,
            format!("run {run} did not finish before its workflow timeout"),
        );
        finish(
            tx,
            run,
            &Ending::Failed(&error),
            at_ms,
            max_inbox,
            &mut effects,
        )?;
    }
    Ok(effects)
}

pub(super) fn upgrade(
    tx: &Transaction<'_>,
    run: RunId,
    seq: u64,
    from: &str,
    to: &str,
    at_ms: u64,
) -> Result<bool, StorageError> {
    let moved = tx
        .prepare_cached(
            // The sequence number stays: the run's timer stays valid.
            "UPDATE runs SET version = ?1, updated_at = ?2
             WHERE run_id = ?3 AND seq = ?4 AND status = 'waiting' AND version = ?5",
        )?
        .execute(params![to, at_ms as i64, run.to_string(), seq as i64, from])?;
    if moved == 0 {
        return Ok(false);
    }
    insert_history(
        tx,
        run,
        at_ms,
        &HistoryEvent::RunUpgraded {
            from_version: from.to_owned(),
            to_version: to.to_owned(),
        },
    )?;
    Ok(true)
}

fn insert_history(
    tx: &Transaction<'_>,
    run_id: RunId,
    at_ms: u64,
    event: &HistoryEvent,
) -> Result<(), StorageError> {
    tx.prepare_cached("INSERT INTO history (run_id, at, kind, data) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            run_id.to_string(),
            at_ms as i64,
            event.kind(),
            to_json(event)?
        ])?;
    Ok(())
}
