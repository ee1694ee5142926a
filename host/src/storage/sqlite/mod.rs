//! The SQLite backend: schema, the group-committing writer thread, and reads.
//! The write operations themselves are in `transitions.rs`.

mod transitions;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::{
    Anchors, CommitOutcome, CreateError, Delivery, Effects, HistoryRecord, LiveVersion, NewRun,
    RunGone, RunRecord, StateCommit, StorageError, Timer,
};
use crate::model::{HistoryEvent, Json, RunId, RunStatus, parse_json};
use crate::sandbox::StoreMap;

/// The schema; `PRAGMA user_version` records which one a file has.
const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    workflow_id   TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    version       TEXT NOT NULL,
    status        TEXT NOT NULL,
    parent_run_id TEXT,
    on_completed  TEXT,
    close_policy  TEXT NOT NULL,
    input         TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    seq           INTEGER NOT NULL,
    pending       TEXT,
    timer_at      INTEGER,
    timer_step    TEXT,
    deadline_at   INTEGER,
    cancel_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_active_per_workflow_id
    ON runs (workflow_id) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_by_workflow_id ON runs (workflow_id, created_at);
CREATE INDEX IF NOT EXISTS runs_live ON runs (status) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS store (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL,
    name    TEXT NOT NULL,
    payload TEXT NOT NULL,
    notice  INTEGER NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_run ON inbox (run_id, id);
CREATE TABLE IF NOT EXISTS history (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_run ON history (run_id, id);
CREATE TABLE IF NOT EXISTS components (
    version  TEXT PRIMARY KEY,
    bytes    BLOB NOT NULL,
    file     TEXT,
    added_at INTEGER NOT NULL
);
";

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 2048;
/// Read connections (and reads at once): readers never wait for the writer,
/// and more than a few at once only adds connection churn and threads.
const READERS: usize = 6;

/// One write: applied inside the batch's transaction, answered after it
/// commits.
trait WriteOp: Send {
    fn apply(&mut self, tx: &Transaction<'_>) -> Result<(), StorageError>;
    fn answer(self: Box<Self>, committed: Result<(), StorageError>);
}

/// A write computed by `f`, whose result is sent to `reply` once committed.
struct Call<T, F> {
    f: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StorageError>>,
}

impl<T, F> WriteOp for Call<T, F>
where
    T: Send,
    F: FnMut(&Transaction<'_>) -> Result<T, StorageError> + Send,
{
    fn apply(&mut self, tx: &Transaction<'_>) -> Result<(), StorageError> {
        self.result = Some((self.f)(tx)?);
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), StorageError>) {
        let Call { result, reply, .. } = *self;
        let answer = committed.and_then(|()| {
            result.ok_or_else(|| StorageError::Corrupt("a write was not applied".into()))
        });
        // A caller that stopped waiting does not need the answer.
        let _ = reply.send(answer);
    }
}

/// The embedded store. Cheap to share behind an `Arc`; dropping the last
/// handle stops the writer after it has finished what was queued.
pub struct Storage {
    /// The `max_inbox_len` quota.
    max_inbox_len: u64,
    ops: Mutex<Option<mpsc::Sender<Box<dyn WriteOp>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Readers>,
}

impl Storage {
    /// Open (or create) the database at `path`. An inbox takes at most
    /// `max_inbox_len` events.
    pub fn open(path: &Path, max_inbox_len: u64) -> Result<Storage, StorageError> {
        let conn = open_connection(path)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| open_error(path, source))?;
        if version > SCHEMA_VERSION {
            return Err(StorageError::Corrupt(format!(
                "`{}` has schema version {version}, newer than this host's {SCHEMA_VERSION}",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|source| open_error(path, source))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|source| open_error(path, source))?;

        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("wasmflow-storage".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StorageError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(Storage {
            max_inbox_len,
            ops: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: tokio::sync::Semaphore::new(READERS),
            }),
        })
    }

    /// Queue a write for the writer and wait until it is committed.
    async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T, StorageError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op = Box::new(Call {
            f,
            result: None,
            reply,
        });
        {
            let ops = self.ops.lock().map_err(|_| StorageError::Closed)?;
            ops.as_ref()
                .ok_or(StorageError::Closed)?
                .send(op)
                .map_err(|_| StorageError::Closed)?;
        }
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Create a run and record `run_started`, durably.
    pub async fn create_run(&self, run: NewRun) -> Result<(), CreateError> {
        self.write(move |tx| transitions::create(tx, &run)).await?
    }

    /// Apply a state change of a run, durably, if it is still current.
    pub async fn commit(&self, commit: StateCommit) -> Result<CommitOutcome, StorageError> {
        let max_inbox = self.max_inbox_len;
        self.write(move |tx| transitions::commit(tx, &commit, max_inbox))
            .await
    }

    /// Append an event to a live run's inbox, durably; dispatch it if the run
    /// waits.
    pub async fn deliver(&self, delivery: Delivery) -> Result<Effects, RunGone> {
        let max_inbox = self.max_inbox_len;
        self.write(move |tx| transitions::deliver_from_client(tx, &delivery, max_inbox))
            .await?
    }

    /// Cancel a run: at once if it waits, when its activation ends if it
    /// runs.
    pub async fn cancel(
        &self,
        run_id: RunId,
        reason: String,
        at_ms: u64,
    ) -> Result<Effects, RunGone> {
        let max_inbox = self.max_inbox_len;
        self.write(move |tx| transitions::cancel(tx, run_id, &reason, at_ms, max_inbox))
            .await?
    }

    /// End a live run at once.
    pub async fn terminate(
        &self,
        run_id: RunId,
        reason: String,
        at_ms: u64,
    ) -> Result<Effects, RunGone> {
        let max_inbox = self.max_inbox_len;
        self.write(move |tx| transitions::terminate(tx, run_id, &reason, at_ms, max_inbox))
            .await?
    }

    /// Fail a live run whose workflow timeout has passed (`WorkflowTimeout`).
    pub async fn expire(&self, run_id: RunId, at_ms: u64) -> Result<Effects, StorageError> {
        let max_inbox = self.max_inbox_len;
        self.write(move |tx| transitions::expire(tx, run_id, at_ms, max_inbox))
            .await
    }

    /// Keep a component version's bytes (once per version), with the name
    /// of the file it came from.
    pub async fn save_component(
        &self,
        version: &str,
        file: Option<String>,
        bytes: Arc<[u8]>,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        let version = version.to_owned();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO components (version, bytes, file, added_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (version) DO NOTHING",
            )?
            .execute(params![version, &bytes[..], file, at_ms as i64])?;
            Ok(())
        })
        .await
    }

    /// A kept component version's bytes and file name.
    pub async fn component(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StorageError> {
        let version = version.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT bytes, file FROM components WHERE version = ?1")?
                    .query_row([version], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            )
        })
        .await
    }

    /// Forget component versions no live run is pinned to, except `keep`
    /// (the versions the plugins directory provides now).
    pub async fn prune_components(&self, keep: Vec<String>) -> Result<usize, StorageError> {
        self.write(move |tx| {
            let versions: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT version FROM components WHERE version NOT IN
                     (SELECT version FROM runs WHERE status IN ('running', 'waiting'))",
                )?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut pruned = 0;
            for version in versions.iter().filter(|v| !keep.contains(v)) {
                pruned += tx
                    .prepare_cached("DELETE FROM components WHERE version = ?1")?
                    .execute([version])?;
            }
            Ok(pruned)
        })
        .await
    }

    /// The component versions live runs are pinned to.
    pub async fn live_versions(&self) -> Result<Vec<LiveVersion>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT workflow_type, version, COUNT(*) FROM runs
                 WHERE status IN ('running', 'waiting')
                 GROUP BY workflow_type, version ORDER BY workflow_type, version",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(LiveVersion {
                    workflow_type: r.get(0)?,
                    version: r.get(1)?,
                    runs: r.get::<_, i64>(2)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The live runs of a workflow type.
    pub async fn live_runs_of_type(
        &self,
        workflow_type: &str,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let workflow_type = workflow_type.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_type = ?1
                 AND status IN ('running', 'waiting') ORDER BY created_at, run_id"
            ))?;
            let rows = stmt.query_map([workflow_type], row_to_run)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// What ties a run to its code besides its handlers (see [`Anchors`]).
    pub async fn anchors(&self, run_id: RunId) -> Result<Anchors, StorageError> {
        self.read(move |c| {
            let id = run_id.to_string();
            let child_steps = {
                let mut stmt = c.prepare_cached(
                    "SELECT DISTINCT on_completed FROM runs WHERE parent_run_id = ?1
                     AND status IN ('running', 'waiting') AND on_completed IS NOT NULL",
                )?;
                let rows = stmt.query_map([&id], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let inbox = {
                let mut stmt = c.prepare_cached(
                    "SELECT name, notice FROM inbox WHERE run_id = ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            Ok(Anchors { child_steps, inbox })
        })
        .await
    }

    /// Move a waiting run from version `from` to `to`, if it is still
    /// waiting at sequence number `seq` on `from`. Returns whether it moved.
    pub async fn upgrade_run(
        &self,
        run_id: RunId,
        seq: u64,
        from: String,
        to: String,
        at_ms: u64,
    ) -> Result<bool, StorageError> {
        self.write(move |tx| transitions::upgrade(tx, run_id, seq, &from, &to, at_ms))
            .await
    }

    /// How many history entries a run has.
    pub async fn history_len(&self, run_id: RunId) -> Result<u64, StorageError> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM history WHERE run_id = ?1")?
                .query_row([run_id.to_string()], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StorageError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
                .query_row([run_id.to_string()], row_to_run)
                .optional()?
                .transpose()
        })
        .await
    }

    /// The newest run of a workflow id.
    pub async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        let workflow_id = workflow_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?1
                 ORDER BY created_at DESC, run_id DESC LIMIT 1"
            ))?
            .query_row([workflow_id], row_to_run)
            .optional()?
            .transpose()
        })
        .await
    }

    /// The active (running or waiting) run of a workflow id.
    pub async fn active_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        let workflow_id = workflow_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?1
                 AND status IN ('running', 'waiting')"
            ))?
            .query_row([workflow_id], row_to_run)
            .optional()?
            .transpose()
        })
        .await
    }

    /// Every running or waiting run: what a starting host resumes.
    pub async fn live_runs(&self) -> Result<Vec<RunRecord>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('running', 'waiting')"
            ))?;
            let rows = stmt.query_map([], row_to_run)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Runs, newest first, optionally of one type and status.
    pub async fn list_runs(
        &self,
        workflow_type: Option<String>,
        status: Option<RunStatus>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 IS NULL OR workflow_type = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY created_at DESC, run_id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![workflow_type, status.map(|s| s.as_str()), limit as i64],
                row_to_run,
            )?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Events waiting in all inboxes.
    pub async fn inbox_depth(&self) -> Result<u64, StorageError> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM inbox")?
                .query_row([], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    /// A run's children, oldest first.
    pub async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = ?1
                 ORDER BY created_at, run_id"
            ))?;
            let rows = stmt.query_map([run_id.to_string()], row_to_run)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// A run's committed store.
    pub async fn store(&self, run_id: RunId) -> Result<StoreMap, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT key, value FROM store WHERE run_id = ?1")?;
            let rows = stmt.query_map([run_id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut map = StoreMap::new();
            for row in rows {
                let (key, value) = row?;
                let value = stored_json(&value, "store value")?;
                map.insert(key, value);
            }
            Ok(map)
        })
        .await
    }

    /// A run's history, oldest first.
    pub async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>, StorageError> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT id, at, data FROM history WHERE run_id = ?1 ORDER BY id")?;
            let rows = stmt.query_map([run_id.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, at, data) = row?;
                let event: HistoryEvent = serde_json::from_str(&data).map_err(|e| {
                    StorageError::Corrupt(format!("history entry {id} of run {run_id}: {e}"))
                })?;
                out.push(HistoryRecord {
                    id,
                    at_ms: at as u64,
                    event,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let _permit = readers
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::Closed)?;
        let pool = readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|_| StorageError::Closed)?
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.take();
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(thread) = writer.take()
        {
            let _ = thread.join();
        }
    }
}

fn open_error(path: &Path, source: rusqlite::Error) -> StorageError {
    StorageError::Open {
        path: path.display().to_string(),
        source,
    }
}

fn open_connection(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| open_error(path, source))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|source| open_error(path, source))?;
    // WAL, and every commit fsynced before it is acknowledged.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|source| open_error(path, source))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Corrupt(format!(
            "`{}` cannot use WAL journaling (got `{mode}`)",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|source| open_error(path, source))?;
    // A page cache that holds the working set of many concurrent runs, reads
    // through mmap, and checkpoints that copy each hot page once per 40 MB of
    // WAL rather than once per 4 MB.
    for (pragma, value) in [
        ("cache_size", "-65536"),
        ("mmap_size", "268435456"),
        ("wal_autocheckpoint", "10000"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(|source| open_error(path, source))?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// At most [`READERS`] connections, one per read in progress.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let conn = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match conn {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result
    }
}

/// The writer: take whatever is queued (up to [`MAX_BATCH`]), apply it in one
/// transaction, commit (one fsync), then answer every sender.
fn writer_loop(mut conn: Connection, ops: mpsc::Receiver<Box<dyn WriteOp>>) {
    while let Ok(first) = ops.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match apply_batch(&mut conn, &mut batch) {
            Ok(()) => {
                for op in batch {
                    op.answer(Ok(()));
                }
            }
            Err(error) if batch.len() > 1 => {
                // One operation broke the transaction: apply each on its own
                // so only the broken one fails.
                tracing::warn!(%error, "group commit failed; applying its operations one by one");
                for op in batch {
                    let mut single = vec![op];
                    let result = apply_batch(&mut conn, &mut single);
                    if let Some(op) = single.pop() {
                        op.answer(result);
                    }
                }
            }
            Err(error) => {
                if let Some(op) = batch.pop() {
                    op.answer(Err(error));
                }
            }
        }
    }
}

fn apply_batch(conn: &mut Connection, batch: &mut [Box<dyn WriteOp>]) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for op in batch.iter_mut() {
        op.apply(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn stored_json(text: &str, what: &str) -> Result<Json, StorageError> {
    parse_json(text, what).map_err(|e| StorageError::Corrupt(e.message))
}

fn parse_run_id(text: &str) -> Result<RunId, StorageError> {
    text.parse()
        .map_err(|e| StorageError::Corrupt(format!("run id `{text}`: {e}")))
}

const RUN_COLUMNS: &str = "run_id, workflow_id, workflow_type, version, status, parent_run_id,
    on_completed, close_policy, input, result, error, seq, pending, timer_at, timer_step,
    deadline_at, cancel_reason, created_at, updated_at";

/// A `runs` row; the outer error is SQLite's, the inner one bad data.
fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RunRecord, StorageError>> {
    let run_id: String = r.get(0)?;
    let workflow_id: String = r.get(1)?;
    let workflow_type: String = r.get(2)?;
    let version: String = r.get(3)?;
    let status: String = r.get(4)?;
    let parent: Option<String> = r.get(5)?;
    let on_completed: Option<String> = r.get(6)?;
    let close_policy: String = r.get(7)?;
    let input: String = r.get(8)?;
    let result: Option<String> = r.get(9)?;
    let error: Option<String> = r.get(10)?;
    let seq: i64 = r.get(11)?;
    let pending: Option<String> = r.get(12)?;
    let timer_at: Option<i64> = r.get(13)?;
    let timer_step: Option<String> = r.get(14)?;
    let deadline: Option<i64> = r.get(15)?;
    let cancel_requested: Option<String> = r.get(16)?;
    let created: i64 = r.get(17)?;
    let updated: i64 = r.get(18)?;
    Ok((|| {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::Corrupt(format!("run `{run_id}`: {what}: {e}"))
        };
        Ok(RunRecord {
            run_id: parse_run_id(&run_id)?,
            workflow_id,
            workflow_type,
            version,
            status: status
                .parse::<RunStatus>()
                .map_err(|e| corrupt("status", &e))?,
            parent_run_id: parent.as_deref().map(parse_run_id).transpose()?,
            on_completed,
            close_policy: close_policy
                .parse()
                .map_err(|e| corrupt("close policy", &e))?,
            input: stored_json(&input, "input")?,
            result: result
                .as_deref()
                .map(|r| stored_json(r, "result"))
                .transpose()?,
            error: error
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("error", &e))?,
            seq: seq as u64,
            pending: pending
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("pending activation", &e))?,
            timer: match (timer_at, timer_step) {
                (Some(due), Some(step)) => Some(Timer {
                    due_ms: due as u64,
                    on_timeout: step,
                }),
                _ => None,
            },
            deadline_ms: deadline.map(|d| d as u64),
            cancel_requested,
            created_ms: created as u64,
            updated_ms: updated as u64,
        })
    })())
}
