//! The cross-run rules (SPEC 6 and 7), written once over [`RunTx`].
//!
//! Every [`Write`] is applied here, inside the backend's transaction: run
//! creation, activation commits (guarded by the sequence number; children
//! first, under a savepoint, so a taken workflow id undoes the whole commit),
//! inbox delivery with dispatch of the oldest event when the run waits, and
//! `finish`, the one way a run ends, which drops its inbox, sends the
//! completion notice to its parent and applies its children's close
//! policies. These rules must be atomic with the writes that trigger them,
//! which is why they run inside the transaction and not in the engine.

use wasmflow_core::model::{HistoryEvent, Json, Pending, RunId};
use wasmflow_core::plan::{Delivery, InboxKind, NewRun, NextState, Timer};
use wasmflow_core::{ChildOutcome, ChildStatus, ClosePolicy, ErrorKind, RunStatus, WorkflowError};

use wasmflow_core::journal::JournalEntry;

use crate::{
    AlreadyActive, CommitOutcome, Effects, Finished, NotRetryable, Quotas, Resume, RunGone,
    RunState, RunTx, RunUpdate, StateCommit, StorageError, Write, Written,
};

/// Apply one write to `tx`. The backend commits the transaction when this
/// returns `Ok`, and rolls it back on `Err`.
pub fn apply(tx: &mut dyn RunTx, write: &Write, quotas: Quotas) -> Result<Written, StorageError> {
    let mut rules = Rules { tx, quotas };
    Ok(match write {
        Write::CreateRun(run) => Written::Created(rules.create(run)?),
        Write::Commit(commit) => Written::Committed(rules.commit(commit)?),
        Write::Deliver(delivery) => Written::Applied(rules.deliver_one(delivery)?),
        Write::Cancel {
            run_id,
            reason,
            at_ms,
        } => Written::Applied(rules.cancel(*run_id, reason, *at_ms)?),
        Write::Terminate {
            run_id,
            reason,
            at_ms,
        } => Written::Applied(rules.terminate(*run_id, reason, *at_ms)?),
        Write::Expire { run_id, at_ms } => Written::Expired(rules.expire(*run_id, *at_ms)?),
        Write::Record {
            run_id,
            sequence,
            entries,
            at_ms,
        } => Written::Recorded(rules.record(*run_id, *sequence, entries, *at_ms)?),
        Write::Reexecute {
            run_id,
            resume,
            at_ms,
        } => Written::Reexecuted(rules.reexecute(*run_id, resume, *at_ms)?),
        Write::Upgrade {
            run_id,
            seq,
            from,
            to,
            at_ms,
        } => Written::Upgraded(rules.upgrade(*run_id, *seq, from, to, *at_ms)?),
    })
}

/// How a run ends.
enum Ending<'a> {
    Completed(&'a Json),
    Failed(&'a WorkflowError),
    Cancelled(&'a str),
    Terminated(&'a str),
}

impl Ending<'_> {
    fn status(&self) -> RunStatus {
        match self {
            Ending::Completed(_) => RunStatus::Completed,
            Ending::Failed(_) => RunStatus::Failed,
            Ending::Cancelled(_) => RunStatus::Cancelled,
            Ending::Terminated(_) => RunStatus::Terminated,
        }
    }

    /// The error the run ends with (none when it completed).
    fn error(&self) -> Option<WorkflowError> {
        match self {
            Ending::Completed(_) => None,
            Ending::Failed(error) => Some((*error).clone()),
            Ending::Cancelled(reason) => Some(WorkflowError::new(ErrorKind::Cancelled, *reason)),
            Ending::Terminated(reason) => Some(WorkflowError::new(ErrorKind::Terminated, *reason)),
        }
    }

    fn history(&self) -> Result<HistoryEvent, StorageError> {
        Ok(match self {
            Ending::Completed(result) => HistoryEvent::RunCompleted {
                result: json_value(result)?,
            },
            Ending::Failed(error) => HistoryEvent::RunFailed {
                error: (*error).clone(),
            },
            Ending::Cancelled(reason) => HistoryEvent::RunCancelled {
                reason: (*reason).to_owned(),
            },
            Ending::Terminated(reason) => HistoryEvent::RunTerminated {
                reason: (*reason).to_owned(),
            },
        })
    }

    /// The completion notice's status: `timed_out` for a `WorkflowTimeout`
    /// failure.
    fn child_status(&self) -> ChildStatus {
        match self {
            Ending::Completed(_) => ChildStatus::Completed,
            Ending::Failed(e) if e.kind == ErrorKind::WorkflowTimeout => ChildStatus::TimedOut,
            Ending::Failed(_) => ChildStatus::Failed,
            Ending::Cancelled(_) => ChildStatus::Cancelled,
            Ending::Terminated(_) => ChildStatus::Terminated,
        }
    }
}

struct Rules<'t> {
    tx: &'t mut dyn RunTx,
    quotas: Quotas,
}

impl Rules<'_> {
    fn create(&mut self, run: &NewRun) -> Result<Result<(), AlreadyActive>, StorageError> {
        Ok(self.insert_run(run)?.map_err(|holder| AlreadyActive {
            workflow_id: run.workflow_id.clone(),
            run_id: holder,
        }))
    }

    /// Insert a run and its `run_started`; `Err(holder)` when the workflow id
    /// is taken.
    fn insert_run(&mut self, run: &NewRun) -> Result<Result<(), RunId>, StorageError> {
        if let Err(holder) = self.tx.insert_run(run)? {
            return Ok(Err(holder));
        }
        self.tx.history_append(
            run.run_id,
            run.at_ms,
            &HistoryEvent::RunStarted {
                workflow_type: run.workflow_type.clone(),
                workflow_id: run.workflow_id.clone(),
                version: run.version.clone(),
                input: json_value(&run.input)?,
                parent_run_id: run.parent.as_ref().map(|p| p.run_id),
            },
        )?;
        Ok(Ok(()))
    }

    fn commit(&mut self, c: &StateCommit) -> Result<CommitOutcome, StorageError> {
        let Some(state) = self.tx.run_state(c.run_id)? else {
            return Ok(CommitOutcome::Stale);
        };
        if state.seq != c.expected_seq || state.status.is_terminal() {
            return Ok(CommitOutcome::Stale);
        }
        if !c.children.is_empty() {
            // Children are inserted first; if one's workflow id is taken,
            // nothing of this commit is kept.
            self.tx.savepoint()?;
            for child in &c.children {
                if let Err(holder) = self.insert_run(child)? {
                    self.tx.rollback_to_savepoint()?;
                    return Ok(CommitOutcome::Conflict {
                        workflow_id: child.workflow_id.clone(),
                        run_id: holder,
                    });
                }
            }
            self.tx.release_savepoint()?;
        }
        self.commit_checked(c, state)
    }

    fn commit_checked(
        &mut self,
        c: &StateCommit,
        state: RunState,
    ) -> Result<CommitOutcome, StorageError> {
        let run = c.run_id;
        for (key, value) in &c.writes {
            self.tx.store_write(run, key, value.as_ref())?;
        }
        for event in &c.history {
            self.tx.history_append(run, c.at_ms, event)?;
        }
        let mut effects = Effects::default();
        for delivery in &c.to_parent {
            if let Err(gone) = self.deliver(delivery, c.at_ms, &mut effects)? {
                self.tx.history_append(
                    run,
                    c.at_ms,
                    &HistoryEvent::EventDropped {
                        name: delivery.name.clone(),
                        reason: gone.to_string(),
                    },
                )?;
            }
        }

        let seq = state.seq + 1;
        // A cancel that arrived during the activation wins over its directive,
        // unless the activation failed: a failure is kept (the request stays
        // in the history).
        if let Some(reason) = &state.cancel_requested {
            let ending = match &c.next {
                NextState::Failed(error) => Ending::Failed(error),
                _ => Ending::Cancelled(reason),
            };
            self.finish(run, &ending, c.at_ms, &mut effects)?;
            return Ok(CommitOutcome::Applied {
                seq,
                next: None,
                effects,
            });
        }
        if matches!(c.next, NextState::Running(_) | NextState::Waiting(_)) {
            // The activation is behind the run: so is its journal.
            self.tx.journal_clear(run)?;
        }
        let next = match &c.next {
            NextState::Running(pending) => {
                self.set_state(run, seq, RunStatus::Running, Some(pending), None, c.at_ms)?;
                Some(pending.clone())
            }
            NextState::Retrying { due_ms, pending } => {
                // The activation stays pending, with its journal, and the
                // run sleeps until the retry is due.
                let timer = Timer::retry(*due_ms);
                self.set_state(
                    run,
                    seq,
                    RunStatus::Waiting,
                    Some(pending),
                    Some(&timer),
                    c.at_ms,
                )?;
                None
            }
            NextState::Waiting(timer) => {
                self.set_state(run, seq, RunStatus::Waiting, None, timer.as_ref(), c.at_ms)?;
                // The oldest waiting event is dispatched as the run parks,
                // unless it sleeps.
                let sleeping = timer.as_ref().is_some_and(|t| t.sleep);
                if !sleeping
                    && let Some((pending, seq)) = self.dispatch_oldest(run, seq, c.at_ms)?
                {
                    return Ok(CommitOutcome::Applied {
                        seq,
                        next: Some(pending),
                        effects,
                    });
                }
                None
            }
            NextState::Completed(result) => {
                self.finish(run, &Ending::Completed(result), c.at_ms, &mut effects)?;
                None
            }
            NextState::Failed(error) => {
                self.finish(run, &Ending::Failed(error), c.at_ms, &mut effects)?;
                None
            }
        };
        Ok(CommitOutcome::Applied { seq, next, effects })
    }

    fn set_state(
        &mut self,
        run: RunId,
        seq: u64,
        status: RunStatus,
        pending: Option<&Pending>,
        timer: Option<&Timer>,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.tx.update_run(
            run,
            &RunUpdate {
                seq,
                status,
                pending: pending.cloned(),
                timer: timer.cloned(),
                result: None,
                error: None,
                at_ms,
                keep_pending: false,
            },
        )
    }

    /// A live run's state, or why it is not live.
    fn live(&mut self, run: RunId) -> Result<Result<RunState, RunGone>, StorageError> {
        Ok(match self.tx.run_state(run)? {
            None => Err(RunGone::NotFound(run)),
            Some(state) if state.status.is_terminal() => Err(RunGone::Terminal {
                run_id: run,
                status: state.status,
            }),
            Some(state) => Ok(state),
        })
    }

    fn deliver_one(
        &mut self,
        delivery: &Delivery,
    ) -> Result<Result<Effects, RunGone>, StorageError> {
        let mut effects = Effects::default();
        let at_ms = wasmflow_core::model::now_ms();
        Ok(self
            .deliver(delivery, at_ms, &mut effects)?
            .map(|()| effects))
    }

    /// Append `delivery` to a live run's inbox and dispatch it at once if the
    /// run waits. The inner error says why the run could not take it.
    fn deliver(
        &mut self,
        delivery: &Delivery,
        at_ms: u64,
        effects: &mut Effects,
    ) -> Result<Result<(), RunGone>, StorageError> {
        let target = delivery.run_id;
        let state = match self.live(target)? {
            Ok(state) => state,
            Err(gone) => return Ok(Err(gone)),
        };
        let len = self.tx.inbox_len(target)?;
        if len >= self.quotas.max_inbox_len {
            return Ok(Err(RunGone::InboxFull {
                run_id: target,
                len,
            }));
        }
        self.tx.inbox_push(
            target,
            &delivery.name,
            &delivery.payload,
            delivery.kind,
            at_ms,
        )?;
        self.tx.history_append(
            target,
            at_ms,
            &HistoryEvent::EventReceived {
                name: delivery.name.clone(),
                payload: json_value(&delivery.payload)?,
                source: delivery.source.clone(),
            },
        )?;
        if state.status == RunStatus::Waiting
            && !state.sleeping
            && self.dispatch_oldest(target, state.seq, at_ms)?.is_some()
        {
            effects.woken.push(target);
        }
        Ok(Ok(()))
    }

    /// `run` waits at sequence number `seq`: if its inbox is not empty, make
    /// the oldest entry its next activation (cancelling its wait timer).
    /// Returns it and the new sequence number.
    fn dispatch_oldest(
        &mut self,
        run: RunId,
        seq: u64,
        at_ms: u64,
    ) -> Result<Option<(Pending, u64)>, StorageError> {
        let Some(entry) = self.tx.inbox_first(run)? else {
            return Ok(None);
        };
        let pending = Pending {
            kind: entry.kind.handler_kind(),
            handler: entry.name,
            input: entry.payload,
        };
        let seq = seq + 1;
        self.set_state(run, seq, RunStatus::Running, Some(&pending), None, at_ms)?;
        self.tx.inbox_remove(entry.id)?;
        self.tx.history_append(
            run,
            at_ms,
            &HistoryEvent::EventDispatched {
                name: pending.handler.clone(),
                kind: pending.kind,
            },
        )?;
        Ok(Some((pending, seq)))
    }

    /// End a live run: record it, drop its inbox, tell its parent, and apply
    /// its children's close policies. A run that already ended is left alone.
    fn finish(
        &mut self,
        run: RunId,
        ending: &Ending<'_>,
        at_ms: u64,
        effects: &mut Effects,
    ) -> Result<(), StorageError> {
        let Ok(state) = self.live(run)? else {
            return Ok(());
        };
        let status = ending.status();
        let error = ending.error();
        self.tx.update_run(
            run,
            &RunUpdate {
                seq: state.seq + 1,
                status,
                pending: None,
                timer: None,
                result: match ending {
                    Ending::Completed(result) => Some((*result).clone()),
                    _ => None,
                },
                error: error.clone(),
                at_ms,
                // A failed run keeps the activation it failed in (and its
                // journal), so that `retry` can execute it again.
                keep_pending: status == RunStatus::Failed,
            },
        )?;
        if status != RunStatus::Failed {
            self.tx.journal_clear(run)?;
        }
        self.tx.history_append(run, at_ms, &ending.history()?)?;
        effects.finished.push(Finished {
            run_id: run,
            workflow_type: state.workflow_type.clone(),
            status,
        });

        // Events nobody will handle any more.
        for name in self.tx.inbox_clear(run)? {
            self.tx.history_append(
                run,
                at_ms,
                &HistoryEvent::EventDropped {
                    name,
                    reason: format!("run ended {status}"),
                },
            )?;
        }

        // The completion notice.
        if let (Some(parent), Some(step)) = (state.parent_run_id, &state.on_completed) {
            let notice = Delivery {
                run_id: parent,
                name: step.clone(),
                payload: completion_notice(&state.workflow_id, run, ending, error)?,
                kind: InboxKind::Notice,
                source: run.to_string(),
            };
            if let Err(gone) = self.deliver(&notice, at_ms, effects)? {
                self.tx.history_append(
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
        let reason = format!("parent run {run} ended {status}");
        for (child, policy) in self.tx.live_children(run)? {
            match policy {
                ClosePolicy::Abandon => {}
                ClosePolicy::Terminate => {
                    self.finish(child, &Ending::Terminated(&reason), at_ms, effects)?;
                }
                ClosePolicy::Cancel => {
                    // Listed live above, in this transaction: it cannot be
                    // gone.
                    let _ = self.cancel_live(child, &reason, at_ms, effects)?;
                }
            }
        }
        Ok(())
    }

    /// Cancel a live run: a waiting run at once, a running one when its
    /// activation commits.
    fn cancel_live(
        &mut self,
        run: RunId,
        reason: &str,
        at_ms: u64,
        effects: &mut Effects,
    ) -> Result<Result<(), RunGone>, StorageError> {
        let state = match self.live(run)? {
            Ok(state) => state,
            Err(gone) => return Ok(Err(gone)),
        };
        if state.status == RunStatus::Waiting {
            self.finish(run, &Ending::Cancelled(reason), at_ms, effects)?;
        } else if state.cancel_requested.is_none() {
            self.tx.request_cancel(run, reason, at_ms)?;
            self.tx.history_append(
                run,
                at_ms,
                &HistoryEvent::CancelRequested {
                    reason: reason.to_owned(),
                },
            )?;
        }
        Ok(Ok(()))
    }

    fn cancel(
        &mut self,
        run: RunId,
        reason: &str,
        at_ms: u64,
    ) -> Result<Result<Effects, RunGone>, StorageError> {
        let mut effects = Effects::default();
        Ok(self
            .cancel_live(run, reason, at_ms, &mut effects)?
            .map(|()| effects))
    }

    fn terminate(
        &mut self,
        run: RunId,
        reason: &str,
        at_ms: u64,
    ) -> Result<Result<Effects, RunGone>, StorageError> {
        if let Err(gone) = self.live(run)? {
            return Ok(Err(gone));
        }
        let mut effects = Effects::default();
        self.finish(run, &Ending::Terminated(reason), at_ms, &mut effects)?;
        Ok(Ok(effects))
    }

    fn expire(&mut self, run: RunId, at_ms: u64) -> Result<Effects, StorageError> {
        let mut effects = Effects::default();
        if let Ok(state) = self.live(run)?
            && let Some(deadline) = state.deadline_ms
            && deadline <= at_ms
        {
            let error = WorkflowError::new(
                ErrorKind::WorkflowTimeout,
                format!("run {run} did not finish before its workflow timeout"),
            );
            self.finish(run, &Ending::Failed(&error), at_ms, &mut effects)?;
        }
        Ok(effects)
    }

    fn record(
        &mut self,
        run: RunId,
        sequence: u64,
        entries: &[JournalEntry],
        at_ms: u64,
    ) -> Result<bool, StorageError> {
        // Only the host driving the run records: one whose claim another
        // host took over (its lease ran out) must not record a task the
        // other host may be running too.
        match self.tx.run_state(run)? {
            Some(state)
                if state.seq == sequence && state.status == RunStatus::Running && state.claimed => {
            }
            _ => return Ok(false),
        }
        for entry in entries {
            self.tx.journal_append(run, entry)?;
            if let JournalEntry::Task(attempt) = entry {
                self.tx.history_append(
                    run,
                    at_ms,
                    &HistoryEvent::TaskAttempted(attempt.clone()),
                )?;
            }
        }
        Ok(true)
    }

    /// Make a run's kept activation current again (SPEC 8): after a retry
    /// delay, or `retry` of a failed run (which may move it to a newer
    /// version first).
    fn reexecute(
        &mut self,
        run: RunId,
        resume: &Resume,
        at_ms: u64,
    ) -> Result<Result<(Pending, u64), NotRetryable>, StorageError> {
        let Some(state) = self.tx.run_state(run)? else {
            return Ok(Err(NotRetryable::NotFound(run)));
        };
        match resume {
            Resume::RetryDue { seq } => {
                if state.seq != *seq || state.status != RunStatus::Waiting {
                    return Ok(Err(NotRetryable::Stale(run)));
                }
            }
            Resume::Failed { .. } => {
                if state.status != RunStatus::Failed {
                    return Ok(Err(NotRetryable::NotFailed {
                        run_id: run,
                        status: state.status,
                    }));
                }
            }
        }
        let Some(pending) = self.tx.pending(run)? else {
            return Ok(Err(match resume {
                Resume::RetryDue { .. } => NotRetryable::Stale(run),
                Resume::Failed { .. } => NotRetryable::NoActivation(run),
            }));
        };
        let mut to = None;
        if let Resume::Failed { to_version } = resume {
            if let Some(holder) = self.tx.active_run_id(&state.workflow_id)? {
                return Ok(Err(NotRetryable::WorkflowIdTaken {
                    workflow_id: state.workflow_id,
                    holder,
                }));
            }
            if let Some(version) = to_version
                && *version != state.version
            {
                self.tx.set_version(run, version, at_ms)?;
                to = Some(version.clone());
            }
            // Tasks that failed for good get new attempts; completed ones
            // keep their outcomes.
            self.tx.journal_append(run, &JournalEntry::Retried)?;
        }
        let seq = state.seq + 1;
        self.set_state(run, seq, RunStatus::Running, Some(&pending), None, at_ms)?;
        let handler = pending.handler.clone();
        let event = match resume {
            Resume::RetryDue { .. } => HistoryEvent::RetryTimerFired { handler },
            Resume::Failed { .. } => HistoryEvent::RunRetried {
                handler,
                to_version: to,
            },
        };
        self.tx.history_append(run, at_ms, &event)?;
        Ok(Ok((pending, seq)))
    }

    fn upgrade(
        &mut self,
        run: RunId,
        seq: u64,
        from: &str,
        to: &str,
        at_ms: u64,
    ) -> Result<bool, StorageError> {
        let Some(state) = self.tx.run_state(run)? else {
            return Ok(false);
        };
        if state.seq != seq || state.status != RunStatus::Waiting || state.version != from {
            return Ok(false);
        }
        // The sequence number stays: the run's timer stays valid.
        self.tx.set_version(run, to, at_ms)?;
        self.tx.history_append(
            run,
            at_ms,
            &HistoryEvent::RunUpgraded {
                from_version: from.to_owned(),
                to_version: to.to_owned(),
            },
        )?;
        Ok(true)
    }
}

/// A stored JSON document as a value for history; unreadable is corrupt.
fn json_value(json: &Json) -> Result<serde_json::Value, StorageError> {
    wasmflow_core::model::json_value(json).map_err(|e| StorageError::Corrupt(e.message))
}

/// The completion notice's payload: a [`ChildOutcome`].
fn completion_notice(
    workflow_id: &str,
    run: RunId,
    ending: &Ending<'_>,
    error: Option<WorkflowError>,
) -> Result<Json, StorageError> {
    let outcome = ChildOutcome {
        workflow_id: workflow_id.to_owned(),
        run_id: run.to_string(),
        status: ending.child_status(),
        result: match ending {
            Ending::Completed(result) => Some(json_value(result)?),
            _ => None,
        },
        error: error
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("completion notice: {e}")))?,
    };
    serde_json::value::to_raw_value(&outcome).map_err(|e| StorageError::Corrupt(e.to_string()))
}
