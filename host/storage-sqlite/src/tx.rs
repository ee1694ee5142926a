//! [`RunTx`] over a SQLite transaction: the row operations the shared rules
//! (`wasmflow_storage::rules`) work on. Each is one or two prepared
//! statements; none decides anything about a run's lifecycle.

use rusqlite::{ErrorCode, OptionalExtension, Transaction, params};
use wasmflow_core::journal::JournalEntry;
use wasmflow_core::model::{HistoryEvent, Json, Pending, RunId};
use wasmflow_core::plan::{InboxKind, NewRun};
use wasmflow_core::{ClosePolicy, RunStatus};
use wasmflow_storage::{InboxEntry, RunState, RunTx, RunUpdate, StorageError};

use crate::{SqlError, corrupt_run, parse_run_id, stored_json, to_json};

const LIVE: &str = "status IN ('running', 'waiting')";

/// A write transaction of the writer thread.
pub(crate) struct SqliteTx<'a, 'c> {
    pub tx: &'a Transaction<'c>,
}

/// An inbox row as an entry.
pub(crate) fn inbox_entry(
    id: i64,
    name: String,
    payload: &str,
    notice: bool,
) -> Result<InboxEntry, StorageError> {
    Ok(InboxEntry {
        id,
        name,
        payload: stored_json(payload, "inbox payload")?,
        kind: if notice {
            InboxKind::Notice
        } else {
            InboxKind::Event
        },
    })
}

fn db(e: rusqlite::Error) -> StorageError {
    SqlError::from(e).into()
}

impl SqliteTx<'_, '_> {
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StorageError> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(db)
    }
}

impl RunTx for SqliteTx<'_, '_> {
    fn run_state(&mut self, run_id: RunId) -> Result<Option<RunState>, StorageError> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
            String,
            Option<i64>,
            Option<String>,
            bool,
        );
        let row: Option<Row> = self
            .tx
            .prepare_cached(
                "SELECT workflow_id, workflow_type, version, status, seq, parent_run_id,
                        on_completed, close_policy, deadline_at, cancel_reason,
                        status = 'waiting' AND timer_sleep <> 0
                 FROM runs WHERE run_id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([run_id.to_string()], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                })
                .optional()
            })
            .map_err(db)?;
        let Some((
            workflow_id,
            workflow_type,
            version,
            status,
            seq,
            parent,
            on_completed,
            policy,
            deadline,
            cancel,
            sleeping,
        )) = row
        else {
            return Ok(None);
        };
        let corrupt = |what: &str, e: &dyn std::fmt::Display| corrupt_run(&run_id, what, e);
        Ok(Some(RunState {
            workflow_id,
            workflow_type,
            version,
            status: status
                .parse::<RunStatus>()
                .map_err(|e| corrupt("status", &e))?,
            seq: u64::try_from(seq).map_err(|e| corrupt("sequence number", &e))?,
            parent_run_id: parent.as_deref().map(parse_run_id).transpose()?,
            on_completed,
            close_policy: policy
                .parse::<ClosePolicy>()
                .map_err(|e| corrupt("close policy", &e))?,
            deadline_ms: deadline
                .map(u64::try_from)
                .transpose()
                .map_err(|e| corrupt("deadline", &e))?,
            cancel_requested: cancel,
            sleeping,
            // One host holds the file: every claim is its own.
            claimed: true,
        }))
    }

    fn insert_run(&mut self, run: &NewRun) -> Result<Result<(), RunId>, StorageError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO runs (run_id, workflow_id, workflow_type, version, status,
                                   parent_run_id, on_completed, close_policy, input, seq, pending,
                                   deadline_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?11)",
            )
            .map_err(db)?
            .execute(params![
                run.run_id.to_string(),
                run.workflow_id,
                run.workflow_type,
                run.version,
                run.parent.as_ref().map(|p| p.run_id.to_string()),
                run.parent.as_ref().and_then(|p| p.on_completed.as_deref()),
                run.parent
                    .as_ref()
                    .map_or(ClosePolicy::Abandon, |p| p.close_policy)
                    .as_str(),
                run.input.get(),
                to_json(&run.pending)?,
                run.deadline_ms.map(|d| d as i64),
                run.at_ms as i64,
            ]);
        match inserted {
            Ok(_) => Ok(Ok(())),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                let active: Option<String> = self
                    .tx
                    .prepare_cached(&format!(
                        "SELECT run_id FROM runs WHERE workflow_id = ?1 AND {LIVE}"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_row([&run.workflow_id], |r| r.get(0)).optional()
                    })
                    .map_err(db)?;
                match active {
                    Some(active) => Ok(Err(parse_run_id(&active)?)),
                    None => Err(StorageError::Corrupt(format!(
                        "run `{}` could not be inserted: {e}",
                        run.run_id
                    ))),
                }
            }
            Err(e) => Err(db(e)),
        }
    }

    fn update_run(&mut self, run_id: RunId, u: &RunUpdate) -> Result<(), StorageError> {
        let pending = u.pending.as_ref().map(to_json).transpose()?;
        let error = u.error.as_ref().map(to_json).transpose()?;
        self.execute(
            "UPDATE runs SET seq = ?1, status = ?2,
                 pending = CASE WHEN ?12 THEN pending ELSE ?3 END,
                 timer_at = ?4, timer_step = ?5,
                 result = ?6, error = ?7, cancel_reason = NULL, updated_at = ?8,
                 timer_sleep = ?10, timer_retry = ?11
             WHERE run_id = ?9",
            params![
                u.seq as i64,
                u.status.as_str(),
                pending,
                u.timer.as_ref().map(|t| t.due_ms as i64),
                u.timer.as_ref().and_then(|t| t.on_timeout.as_deref()),
                u.result.as_ref().map(|r| r.get()),
                error,
                u.at_ms as i64,
                run_id.to_string(),
                u.timer.as_ref().is_some_and(|t| t.sleep),
                u.timer.as_ref().is_some_and(|t| t.retry),
                u.keep_pending,
            ],
        )?;
        Ok(())
    }

    fn request_cancel(
        &mut self,
        run_id: RunId,
        reason: &str,
        _at_ms: u64,
    ) -> Result<(), StorageError> {
        self.execute(
            // `updated_at` stays: for a running run it says since when its
            // pending activation is current.
            "UPDATE runs SET cancel_reason = ?1 WHERE run_id = ?2",
            params![reason, run_id.to_string()],
        )?;
        Ok(())
    }

    fn set_version(
        &mut self,
        run_id: RunId,
        version: &str,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.execute(
            "UPDATE runs SET version = ?1, updated_at = ?2 WHERE run_id = ?3",
            params![version, at_ms as i64, run_id.to_string()],
        )?;
        Ok(())
    }

    fn store_write(
        &mut self,
        run_id: RunId,
        key: &str,
        value: Option<&Json>,
    ) -> Result<(), StorageError> {
        match value {
            Some(value) => self.execute(
                "INSERT INTO store (run_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                params![run_id.to_string(), key, value.get()],
            )?,
            None => self.execute(
                "DELETE FROM store WHERE run_id = ?1 AND key = ?2",
                params![run_id.to_string(), key],
            )?,
        };
        Ok(())
    }

    fn history_append(
        &mut self,
        run_id: RunId,
        at_ms: u64,
        event: &HistoryEvent,
    ) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO history (run_id, at, kind, data) VALUES (?1, ?2, ?3, ?4)",
            params![
                run_id.to_string(),
                at_ms as i64,
                event.kind(),
                to_json(event)?
            ],
        )?;
        Ok(())
    }

    fn inbox_len(&mut self, run_id: RunId) -> Result<u64, StorageError> {
        let len: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM inbox WHERE run_id = ?1")
            .and_then(|mut stmt| stmt.query_row([run_id.to_string()], |r| r.get(0)))
            .map_err(db)?;
        Ok(len as u64)
    }

    fn inbox_push(
        &mut self,
        run_id: RunId,
        name: &str,
        payload: &Json,
        kind: InboxKind,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO inbox (run_id, name, payload, notice, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                run_id.to_string(),
                name,
                payload.get(),
                kind == InboxKind::Notice,
                at_ms as i64,
            ],
        )?;
        Ok(())
    }

    fn inbox_first(&mut self, run_id: RunId) -> Result<Option<InboxEntry>, StorageError> {
        let oldest: Option<(i64, String, String, bool)> = self
            .tx
            .prepare_cached(
                "SELECT id, name, payload, notice FROM inbox WHERE run_id = ?1 ORDER BY id LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([run_id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(db)?;
        let Some((id, name, payload, notice)) = oldest else {
            return Ok(None);
        };
        inbox_entry(id, name, &payload, notice).map(Some)
    }

    fn inbox_remove(&mut self, entry_id: i64) -> Result<(), StorageError> {
        self.execute("DELETE FROM inbox WHERE id = ?1", [entry_id])?;
        Ok(())
    }

    fn inbox_clear(&mut self, run_id: RunId) -> Result<Vec<String>, StorageError> {
        let run = run_id.to_string();
        let names: Vec<String> = self
            .tx
            .prepare_cached("SELECT name FROM inbox WHERE run_id = ?1 ORDER BY id")
            .and_then(|mut stmt| {
                stmt.query_map([&run], |r| r.get(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(db)?;
        if !names.is_empty() {
            self.execute("DELETE FROM inbox WHERE run_id = ?1", [&run])?;
        }
        Ok(names)
    }

    fn pending(&mut self, run_id: RunId) -> Result<Option<Pending>, StorageError> {
        let pending: Option<Option<String>> = self
            .tx
            .prepare_cached("SELECT pending FROM runs WHERE run_id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([run_id.to_string()], |r| r.get(0))
                    .optional()
            })
            .map_err(db)?;
        pending
            .flatten()
            .map(|p| {
                serde_json::from_str(&p).map_err(|e| corrupt_run(&run_id, "pending activation", &e))
            })
            .transpose()
    }

    fn active_run_id(&mut self, workflow_id: &str) -> Result<Option<RunId>, StorageError> {
        let active: Option<String> = self
            .tx
            .prepare_cached(&format!(
                "SELECT run_id FROM runs WHERE workflow_id = ?1 AND {LIVE}"
            ))
            .and_then(|mut stmt| stmt.query_row([workflow_id], |r| r.get(0)).optional())
            .map_err(db)?;
        active.as_deref().map(parse_run_id).transpose()
    }

    fn journal_append(&mut self, run_id: RunId, entry: &JournalEntry) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO journal (run_id, entry) VALUES (?1, ?2)",
            params![run_id.to_string(), to_json(entry)?],
        )?;
        Ok(())
    }

    fn journal_clear(&mut self, run_id: RunId) -> Result<(), StorageError> {
        self.execute(
            "DELETE FROM journal WHERE run_id = ?1",
            [run_id.to_string()],
        )?;
        Ok(())
    }

    fn live_children(&mut self, run_id: RunId) -> Result<Vec<(RunId, ClosePolicy)>, StorageError> {
        let rows: Vec<(String, String)> = self
            .tx
            .prepare_cached(&format!(
                "SELECT run_id, close_policy FROM runs WHERE parent_run_id = ?1 AND {LIVE}
                 ORDER BY created_at, run_id"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([run_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .map_err(db)?;
        rows.into_iter()
            .map(|(child, policy)| {
                let policy = policy.parse::<ClosePolicy>().map_err(|e| {
                    StorageError::Corrupt(format!("run `{child}`: close policy: {e}"))
                })?;
                Ok((parse_run_id(&child)?, policy))
            })
            .collect()
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.tx.execute_batch("SAVEPOINT rules").map_err(db)
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.tx
            .execute_batch("ROLLBACK TO rules; RELEASE rules")
            .map_err(db)
    }

    fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.tx.execute_batch("RELEASE rules").map_err(db)
    }
}
