//! The embedded SQLite backend of the storage interface.
//!
//! One file (WAL, `synchronous=FULL`: an acknowledged write is on disk),
//! held by one host at a time: [`SqliteStorage::open`] takes an OS lock on
//! `<file>.lock` and refuses a database another process holds, naming the
//! holder. The schema is versioned with `refinery` migrations embedded in
//! the binary and applied at open; a database with a newer schema than this
//! binary knows is refused.
//!
//! Writes go through one writer thread that groups whatever is queued into
//! one transaction, so concurrent activations share an fsync instead of
//! queueing behind each other's (group commit). Each write is a
//! [`Write`] applied by the shared rules (`wasmflow_storage::rules`) over
//! [`tx::SqliteTx`]; this crate supplies rows, not rules. Reads use a small
//! pool of separate connections and never wait for the writer.

mod lock;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;
use wasmflow_core::RunStatus;
use wasmflow_core::activation::StoreMap;
use wasmflow_core::journal::Journal;
use wasmflow_core::model::{HistoryEvent, RunId};
use wasmflow_core::plan::Timer;
use wasmflow_storage::{
    Anchors, HistoryRecord, InboxEntry, ListPosition, LiveVersion, Quotas, RunFilter, RunRecord,
    Storage, StorageError, Write, Written, rules,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A SQLite or schema error inside this crate; converted to
/// [`StorageError`] at its edge.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<SqlError> for StorageError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Sqlite(e) => StorageError::backend(e),
            SqlError::Storage(e) => e,
        }
    }
}

type Res<T> = Result<T, SqlError>;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 2048;
/// Read connections (and reads at once): readers never wait for the writer,
/// and more than a few at once only adds connection churn and threads.
const READERS: usize = 6;

/// One write: applied inside the batch's transaction, answered after it
/// commits.
trait WriteOp: Send {
    fn apply(&mut self, tx: &Transaction<'_>) -> Res<()>;
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
    F: FnMut(&Transaction<'_>) -> Res<T> + Send,
{
    fn apply(&mut self, tx: &Transaction<'_>) -> Res<()> {
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

/// Whether [`SqliteStorage::open`] takes the database for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A host that drives runs: the database is locked for this process, and
    /// a second host on the same file is refused.
    Host,
    /// Inspection and upgrades (`wasmflow types`, `wasmflow upgrade`), also
    /// while a host holds the file: no lock is taken.
    Admin,
}

/// The embedded store. Cheap to share behind an `Arc`; dropping the last
/// handle stops the writer after it has finished what was queued, then
/// releases the lock.
pub struct SqliteStorage {
    quotas: Quotas,
    ops: Mutex<Option<mpsc::Sender<Box<dyn WriteOp>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Readers>,
    /// Held for the storage's lifetime with [`Access::Host`].
    _lock: Option<lock::HostLock>,
}

impl SqliteStorage {
    /// Open (or create) the database at `path`, migrate its schema to this
    /// binary's, and start the writer. With [`Access::Host`], refuse a
    /// database another process holds.
    pub fn open(
        path: &Path,
        access: Access,
        quotas: Quotas,
    ) -> Result<SqliteStorage, StorageError> {
        let lock = match access {
            Access::Host => Some(lock::HostLock::acquire(path)?),
            Access::Admin => None,
        };
        let mut conn = open_connection(path)?;
        migrate(&mut conn, path)?;

        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("wasmflow-storage".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StorageError::Open {
                path: path.display().to_string(),
                reason: "cannot start the writer thread".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(SqliteStorage {
            quotas,
            ops: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: tokio::sync::Semaphore::new(READERS),
            }),
            _lock: lock,
        })
    }

    /// Queue a write for the writer and wait until it is committed.
    async fn transact<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Res<T> + Send + 'static,
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

    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Res<T> + Send + 'static,
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
            .map_err(StorageError::from)
    }
}

/// Apply the embedded migrations; refuse a schema newer than them.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let runner = embedded::migrations::runner();
    let supported = runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    let too_new = |found: i64| StorageError::SchemaTooNew {
        path: path.display().to_string(),
        found,
        supported,
    };
    // Databases from before versioned migrations record theirs here.
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| open_error(path, source))?;
    if user_version > supported {
        return Err(too_new(user_version));
    }
    let migration_error = |e: refinery::Error| StorageError::Migration {
        path: path.display().to_string(),
        source: Box::new(e),
    };
    let versioned: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
                            WHERE type = 'table' AND name = 'refinery_schema_history')",
            [],
            |r| r.get(0),
        )
        .map_err(|source| open_error(path, source))?;
    if versioned
        && let Some(last) = runner
            .get_last_applied_migration(conn)
            .map_err(migration_error)?
        && i64::from(last.version()) > supported
    {
        return Err(too_new(i64::from(last.version())));
    }
    runner.run(conn).map_err(migration_error)?;
    conn.pragma_update(None, "user_version", supported)
        .map_err(|source| open_error(path, source))?;
    Ok(())
}

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    async fn write(&self, write: Write) -> Result<Written, StorageError> {
        let quotas = self.quotas;
        self.transact(move |tx| Ok(rules::apply(&mut tx::SqliteTx { tx }, &write, quotas)?))
            .await
    }

    /// One host holds the file: every claim is granted.
    async fn claim(&self, _run_id: RunId, _until_ms: u64) -> Result<bool, StorageError> {
        Ok(true)
    }

    /// Keep a component version's bytes (once per version), with the name
    /// of the file it came from.
    async fn save_component(
        &self,
        version: &str,
        file: Option<String>,
        bytes: Arc<[u8]>,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        let version = version.to_owned();
        self.transact(move |tx| {
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
    async fn component(
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
    async fn prune_components(&self, keep: Vec<String>) -> Result<usize, StorageError> {
        self.transact(move |tx| {
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

    async fn delete_finished(
        &self,
        ended_before_ms: u64,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let before = i64::try_from(ended_before_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.transact(move |tx| {
            let runs: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT run_id FROM runs r
                     WHERE status IN ('completed', 'failed', 'cancelled', 'terminated')
                       AND updated_at < ?1
                       AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.parent_run_id = r.run_id
                                       AND c.status IN ('running', 'waiting'))
                       AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.run_id = r.parent_run_id
                                       AND p.status IN ('running', 'waiting'))
                     ORDER BY updated_at LIMIT ?2",
                )?;
                let rows = stmt.query_map(rusqlite::params![before, limit], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for run_id in &runs {
                for table in ["store", "inbox", "history", "journal", "runs"] {
                    tx.prepare_cached(&format!("DELETE FROM {table} WHERE run_id = ?1"))?
                        .execute([run_id])?;
                }
            }
            Ok(runs.len())
        })
        .await
    }

    /// The component versions live runs are pinned to.
    async fn live_versions(&self) -> Result<Vec<LiveVersion>, StorageError> {
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
    async fn live_runs_of_type(&self, workflow_type: &str) -> Result<Vec<RunRecord>, StorageError> {
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
    async fn anchors(&self, run_id: RunId) -> Result<Anchors, StorageError> {
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

    async fn journal(&self, run_id: RunId) -> Result<Journal, StorageError> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT entry FROM journal WHERE run_id = ?1 ORDER BY id")?;
            let rows = stmt.query_map([run_id.to_string()], |r| r.get::<_, String>(0))?;
            let mut entries = Vec::new();
            for row in rows {
                let entry = serde_json::from_str(&row?)
                    .map_err(|e| corrupt_run(&run_id, "journal entry", &e))?;
                entries.push(entry);
            }
            Ok(Journal { entries })
        })
        .await
    }

    /// How many history entries a run has.
    async fn history_len(&self, run_id: RunId) -> Result<u64, StorageError> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM history WHERE run_id = ?1")?
                .query_row([run_id.to_string()], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StorageError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
                .query_row([run_id.to_string()], row_to_run)
                .optional()?
                .transpose()
        })
        .await
    }

    /// The newest run of a workflow id.
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
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
    async fn active_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
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
    async fn live_runs(&self) -> Result<Vec<RunRecord>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('running', 'waiting')"
            ))?;
            let rows = stmt.query_map([], row_to_run)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    /// Runs, newest first, optionally of one type and status, after a
    /// position. The index `runs_by_created` serves the order and the
    /// position (a row-value comparison): a page costs its own rows, not
    /// the ones before it.
    async fn list_runs(
        &self,
        filter: RunFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let RunFilter {
                workflow_type,
                status,
                id_prefix,
            } = filter;
            let status = status.map(|s| s.as_str());
            // A prefix by bytes (no `LIKE`: its wildcards need no escaping).
            let filters = "(?1 IS NULL OR workflow_type = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR substr(CAST(workflow_id AS BLOB), 1, length(CAST(?3 AS BLOB)))
                     = CAST(?3 AS BLOB))";
            let order = "ORDER BY created_at DESC, run_id DESC";
            let rows = match after {
                None => {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE {filters} {order} LIMIT ?4"
                    ))?;
                    let rows = stmt
                        .query_map(params![workflow_type, status, id_prefix, limit], row_to_run)?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
                Some(p) => {
                    let created = i64::try_from(p.created_ms).unwrap_or(i64::MAX);
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE {filters}
                         AND (created_at, run_id) < (?4, ?5) {order} LIMIT ?6"
                    ))?;
                    let rows = stmt.query_map(
                        params![
                            workflow_type,
                            status,
                            id_prefix,
                            created,
                            p.run_id.to_string(),
                            limit
                        ],
                        row_to_run,
                    )?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
            };
            rows.into_iter().collect()
        })
        .await
    }

    /// Events waiting in all inboxes.
    async fn inbox_depth(&self) -> Result<u64, StorageError> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM inbox")?
                .query_row([], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    /// A run's children, oldest first.
    async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>, StorageError> {
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
    async fn store(&self, run_id: RunId) -> Result<StoreMap, StorageError> {
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

    async fn inbox(&self, run_id: RunId) -> Result<Vec<InboxEntry>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, payload, notice FROM inbox WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([run_id.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })?;
            let mut entries = Vec::new();
            for row in rows {
                let (id, name, payload, notice) = row?;
                entries.push(tx::inbox_entry(id, name, &payload, notice)?);
            }
            Ok(entries)
        })
        .await
    }

    /// A run's history, oldest first.
    async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>, StorageError> {
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
}

impl Drop for SqliteStorage {
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
        reason: source.to_string(),
        source: Some(Box::new(source)),
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
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Res<T>) -> Res<T> {
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
                        op.answer(result.map_err(StorageError::from));
                    }
                }
            }
            Err(error) => {
                if let Some(op) = batch.pop() {
                    op.answer(Err(error.into()));
                }
            }
        }
    }
}

fn apply_batch(conn: &mut Connection, batch: &mut [Box<dyn WriteOp>]) -> Res<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for op in batch.iter_mut() {
        op.apply(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) use wasmflow_storage::rows::{corrupt_run, parse_run_id, stored_json, to_json};

const RUN_COLUMNS: &str = "run_id, workflow_id, workflow_type, version, status, parent_run_id,
    on_completed, close_policy, input, result, error, seq, pending, timer_at, timer_step,
    deadline_at, cancel_reason, created_at, updated_at, timer_sleep, timer_retry";

/// A `runs` row; the outer error is SQLite's, the inner one bad data.
fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Res<RunRecord>> {
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
    let timer_sleep: bool = r.get(19)?;
    let timer_retry: bool = r.get(20)?;
    Ok((|| {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| corrupt_run(&run_id, what, e);
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
            // A timer without a step is a timed wait that fails the run.
            timer: timer_at.map(|due| Timer {
                due_ms: due as u64,
                on_timeout: timer_step,
                sleep: timer_sleep,
                retry: timer_retry,
            }),
            deadline_ms: deadline.map(|d| d as u64),
            cancel_requested,
            created_ms: created as u64,
            updated_ms: updated as u64,
        })
    })())
}
