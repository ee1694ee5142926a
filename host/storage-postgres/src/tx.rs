//! [`RunTx`] over a PostgreSQL transaction: the row operations the shared
//! rules (`wasmflow_storage::rules`) work on. [`RunTx::run_state`] locks the
//! run's row (`FOR UPDATE`) for the rest of the transaction, so two hosts
//! writing to one run take turns; none of these decides anything about a
//! run's lifecycle.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::ToSql;
use wasmflow_core::journal::JournalEntry;
use wasmflow_core::model::{HistoryEvent, Json, Pending, RunId};
use wasmflow_core::plan::{InboxKind, NewRun};
use wasmflow_core::{ClosePolicy, RunStatus};
use wasmflow_storage::{InboxEntry, RunState, RunTx, RunUpdate, StorageError};

use crate::conn::Statements;
use crate::{classify, corrupt_run, parse_run_id, stored_json, to_json};

const LIVE: &str = "status IN ('running', 'waiting')";

/// A write transaction on one pooled connection.
pub(crate) struct PgTx<'a, 'c> {
    pub tx: &'a mut Transaction<'c>,
    /// The connection's prepared statements.
    pub statements: &'a mut Statements,
    /// This host's name in run claims.
    pub owner: &'a str,
    /// History entries not sent yet: all of a transaction's go in one
    /// statement ([`PgTx::flush`]), as nothing reads them back before.
    pub history: Vec<HistoryRow>,
    /// Where `history` stood at the savepoint.
    pub history_mark: usize,
    /// Whether a run has journal entries, for the runs this transaction
    /// knows it of: clearing an empty journal sends nothing.
    pub journaled: HashMap<RunId, bool>,
    /// The transaction failed in a way that succeeds when it is made again
    /// (a serialization failure, a deadlock another transaction won).
    pub retry: bool,
}

/// One history entry to insert.
pub(crate) struct HistoryRow {
    run_id: String,
    at: i64,
    kind: String,
    data: String,
}

impl<'a, 'c> PgTx<'a, 'c> {
    pub fn new(
        tx: &'a mut Transaction<'c>,
        statements: &'a mut Statements,
        owner: &'a str,
    ) -> Self {
        PgTx {
            tx,
            statements,
            owner,
            retry: false,
            history: Vec::new(),
            history_mark: 0,
            journaled: HashMap::new(),
        }
    }

    /// Send what is buffered; before `COMMIT`.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.history.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.history);
        let run_ids: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
        let at: Vec<i64> = rows.iter().map(|r| r.at).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
        // In the order appended: ids follow it.
        self.execute(
            "INSERT INTO history (run_id, at, kind, data)
             SELECT run_id, at, kind, data
             FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[])
                  WITH ORDINALITY AS h (run_id, at, kind, data, n)
             ORDER BY n",
            &[&run_ids, &at, &kinds, &data],
        )?;
        Ok(())
    }
    fn fail(&mut self, e: postgres::Error) -> StorageError {
        if crate::is_transient(&e) {
            self.retry = true;
        }
        classify(e)
    }

    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        let statement = match self.statements.get(self.tx, sql) {
            Ok(statement) => statement,
            Err(e) => return Err(self.fail(e)),
        };
        match self.tx.execute(&statement, params) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, StorageError> {
        let statement = match self.statements.get(self.tx, sql) {
            Ok(statement) => statement,
            Err(e) => return Err(self.fail(e)),
        };
        match self.tx.query_opt(&statement, params) {
            Ok(row) => Ok(row),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StorageError> {
        let statement = match self.statements.get(self.tx, sql) {
            Ok(statement) => statement,
            Err(e) => return Err(self.fail(e)),
        };
        match self.tx.query(&statement, params) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), StorageError> {
        match self.tx.batch_execute(sql) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// A column read as type `T`, or `Corrupt` naming it.
pub(crate) fn col<'r, T: postgres::types::FromSql<'r>>(
    row: &'r postgres::Row,
    index: usize,
) -> Result<T, StorageError> {
    row.try_get(index).map_err(|e| {
        StorageError::Corrupt(format!(
            "column `{}`: {e}",
            row.columns().get(index).map_or("?", |c| c.name())
        ))
    })
}

fn unsigned(run_id: RunId, what: &str, value: i64) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|e| corrupt_run(&run_id, what, &e))
}

/// Epoch milliseconds and counters as PostgreSQL's BIGINT.
pub(crate) fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl RunTx for PgTx<'_, '_> {
    fn run_state(&mut self, run_id: RunId) -> Result<Option<RunState>, StorageError> {
        let Some(row) = self.query_opt(
            "SELECT workflow_id, workflow_type, version, status, seq, parent_run_id,
                    on_completed, close_policy, deadline_at, cancel_reason,
                    status = 'waiting' AND timer_sleep,
                    EXISTS (SELECT 1 FROM journal j WHERE j.run_id = runs.run_id),
                    lease_owner IS NOT DISTINCT FROM $2
             FROM runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id.to_string(), &self.owner.to_owned()],
        )?
        else {
            return Ok(None);
        };
        let corrupt = |what: &str, e: &dyn std::fmt::Display| corrupt_run(&run_id, what, e);
        let status: String = col(&row, 3)?;
        let parent: Option<String> = col(&row, 5)?;
        let policy: String = col(&row, 7)?;
        let deadline: Option<i64> = col(&row, 8)?;
        self.journaled.insert(run_id, col(&row, 11)?);
        Ok(Some(RunState {
            workflow_id: col(&row, 0)?,
            workflow_type: col(&row, 1)?,
            version: col(&row, 2)?,
            status: status
                .parse::<RunStatus>()
                .map_err(|e| corrupt("status", &e))?,
            seq: unsigned(run_id, "sequence number", col(&row, 4)?)?,
            parent_run_id: parent.as_deref().map(parse_run_id).transpose()?,
            on_completed: col(&row, 6)?,
            close_policy: policy
                .parse::<ClosePolicy>()
                .map_err(|e| corrupt("close policy", &e))?,
            deadline_ms: deadline
                .map(|d| unsigned(run_id, "deadline", d))
                .transpose()?,
            cancel_requested: col(&row, 9)?,
            sleeping: col(&row, 10)?,
            claimed: col(&row, 12)?,
        }))
    }

    fn insert_run(&mut self, run: &NewRun) -> Result<Result<(), RunId>, StorageError> {
        let parent = run.parent.as_ref();
        let inserted = self.execute(
            "INSERT INTO runs (run_id, workflow_id, workflow_type, version, status,
                               parent_run_id, on_completed, close_policy, input, seq, pending,
                               deadline_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, 0, $9, $10, $11, $11)
             ON CONFLICT DO NOTHING",
            &[
                &run.run_id.to_string(),
                &run.workflow_id,
                &run.workflow_type,
                &run.version,
                &parent.map(|p| p.run_id.to_string()),
                &parent.and_then(|p| p.on_completed.as_deref()),
                &parent
                    .map_or(ClosePolicy::Abandon, |p| p.close_policy)
                    .as_str(),
                &run.input.get(),
                &to_json(&run.pending)?,
                &run.deadline_ms.map(big),
                &big(run.at_ms),
            ],
        )?;
        if inserted == 1 {
            return Ok(Ok(()));
        }
        match self.active_run_id(&run.workflow_id)? {
            Some(holder) => Ok(Err(holder)),
            None => Err(StorageError::Corrupt(format!(
                "run `{}` could not be inserted: its run id is taken",
                run.run_id
            ))),
        }
    }

    fn update_run(&mut self, run_id: RunId, u: &RunUpdate) -> Result<(), StorageError> {
        let pending = u.pending.as_ref().map(to_json).transpose()?;
        let error = u.error.as_ref().map(to_json).transpose()?;
        self.execute(
            "UPDATE runs SET seq = $1, status = $2,
                 pending = CASE WHEN $12 THEN pending ELSE $3 END,
                 timer_at = $4, timer_step = $5,
                 result = $6, error = $7, cancel_reason = NULL, updated_at = $8,
                 timer_sleep = $10, timer_retry = $11
             WHERE run_id = $9",
            &[
                &big(u.seq),
                &u.status.as_str(),
                &pending,
                &u.timer.as_ref().map(|t| big(t.due_ms)),
                &u.timer.as_ref().and_then(|t| t.on_timeout.as_deref()),
                &u.result.as_ref().map(|r| r.get()),
                &error,
                &big(u.at_ms),
                &run_id.to_string(),
                &u.timer.as_ref().is_some_and(|t| t.sleep),
                &u.timer.as_ref().is_some_and(|t| t.retry),
                &u.keep_pending,
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
        // `updated_at` stays: for a running run it says since when its
        // pending activation is current.
        self.execute(
            "UPDATE runs SET cancel_reason = $1 WHERE run_id = $2",
            &[&reason, &run_id.to_string()],
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
            "UPDATE runs SET version = $1, updated_at = $2 WHERE run_id = $3",
            &[&version, &big(at_ms), &run_id.to_string()],
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
                "INSERT INTO store (run_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                &[&run_id.to_string(), &key, &value.get()],
            )?,
            None => self.execute(
                "DELETE FROM store WHERE run_id = $1 AND key = $2",
                &[&run_id.to_string(), &key],
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
        self.history.push(HistoryRow {
            run_id: run_id.to_string(),
            at: big(at_ms),
            kind: event.kind().to_owned(),
            data: to_json(event)?,
        });
        Ok(())
    }

    fn inbox_len(&mut self, run_id: RunId) -> Result<u64, StorageError> {
        let row = self.query_opt(
            "SELECT COUNT(*) FROM inbox WHERE run_id = $1",
            &[&run_id.to_string()],
        )?;
        let len: i64 = match row {
            Some(row) => col(&row, 0)?,
            None => 0,
        };
        unsigned(run_id, "inbox length", len)
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
            "INSERT INTO inbox (run_id, name, payload, notice, at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &run_id.to_string(),
                &name,
                &payload.get(),
                &(kind == InboxKind::Notice),
                &big(at_ms),
            ],
        )?;
        Ok(())
    }

    fn inbox_first(&mut self, run_id: RunId) -> Result<Option<InboxEntry>, StorageError> {
        let Some(row) = self.query_opt(
            "SELECT id, name, payload, notice FROM inbox WHERE run_id = $1 ORDER BY id LIMIT 1",
            &[&run_id.to_string()],
        )?
        else {
            return Ok(None);
        };
        let payload: String = col(&row, 2)?;
        let notice: bool = col(&row, 3)?;
        Ok(Some(InboxEntry {
            id: col(&row, 0)?,
            name: col(&row, 1)?,
            payload: stored_json(&payload, "inbox payload")?,
            kind: if notice {
                InboxKind::Notice
            } else {
                InboxKind::Event
            },
        }))
    }

    fn inbox_remove(&mut self, entry_id: i64) -> Result<(), StorageError> {
        self.execute("DELETE FROM inbox WHERE id = $1", &[&entry_id])?;
        Ok(())
    }

    fn inbox_clear(&mut self, run_id: RunId) -> Result<Vec<String>, StorageError> {
        // Deleted oldest first, as `RETURNING` lists them in no set order.
        let rows = self.query(
            "WITH gone AS (DELETE FROM inbox WHERE run_id = $1 RETURNING id, name)
             SELECT name FROM gone ORDER BY id",
            &[&run_id.to_string()],
        )?;
        rows.iter().map(|row| col(row, 0)).collect()
    }

    fn pending(&mut self, run_id: RunId) -> Result<Option<Pending>, StorageError> {
        let row = self.query_opt(
            "SELECT pending FROM runs WHERE run_id = $1",
            &[&run_id.to_string()],
        )?;
        let pending: Option<String> = match row {
            Some(row) => col(&row, 0)?,
            None => None,
        };
        pending
            .map(|p| {
                serde_json::from_str(&p).map_err(|e| corrupt_run(&run_id, "pending activation", &e))
            })
            .transpose()
    }

    fn active_run_id(&mut self, workflow_id: &str) -> Result<Option<RunId>, StorageError> {
        let row = self.query_opt(
            &format!("SELECT run_id FROM runs WHERE workflow_id = $1 AND {LIVE}"),
            &[&workflow_id],
        )?;
        match row {
            Some(row) => Ok(Some(parse_run_id(&col::<String>(&row, 0)?)?)),
            None => Ok(None),
        }
    }

    fn journal_append(&mut self, run_id: RunId, entry: &JournalEntry) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO journal (run_id, entry) VALUES ($1, $2)",
            &[&run_id.to_string(), &to_json(entry)?],
        )?;
        self.journaled.insert(run_id, true);
        Ok(())
    }

    fn journal_clear(&mut self, run_id: RunId) -> Result<(), StorageError> {
        if self.journaled.insert(run_id, false) == Some(false) {
            return Ok(());
        }
        self.execute(
            "DELETE FROM journal WHERE run_id = $1",
            &[&run_id.to_string()],
        )?;
        Ok(())
    }

    fn live_children(&mut self, run_id: RunId) -> Result<Vec<(RunId, ClosePolicy)>, StorageError> {
        let rows = self.query(
            &format!(
                "SELECT run_id, close_policy FROM runs WHERE parent_run_id = $1 AND {LIVE}
                 ORDER BY created_at, run_id"
            ),
            &[&run_id.to_string()],
        )?;
        rows.iter()
            .map(|row| {
                let child: String = col(row, 0)?;
                let policy: String = col(row, 1)?;
                let policy = policy.parse::<ClosePolicy>().map_err(|e| {
                    StorageError::Corrupt(format!("run `{child}`: close policy: {e}"))
                })?;
                Ok((parse_run_id(&child)?, policy))
            })
            .collect()
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.history_mark = self.history.len();
        self.batch("SAVEPOINT rules")
    }

    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError> {
        self.history.truncate(self.history_mark);
        // What the undone part did to journals is not known here.
        self.journaled.clear();
        self.batch("ROLLBACK TO SAVEPOINT rules; RELEASE SAVEPOINT rules")
    }

    fn release_savepoint(&mut self) -> Result<(), StorageError> {
        self.batch("RELEASE SAVEPOINT rules")
    }
}
