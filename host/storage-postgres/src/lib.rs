//! The PostgreSQL backend of the storage interface: several hosts on one
//! database.
//!
//! [`PostgresStorage::open`] connects a pool of sync `postgres` clients
//! (`r2d2`), applies the embedded `refinery` migrations under an advisory
//! lock (several hosts may start at once) and refuses a schema newer than
//! this binary knows. Every [`Write`] is one transaction on a pooled
//! connection, applied by the shared rules (`wasmflow_storage::rules`) over
//! [`tx::PgTx`]; the rules lock each run row they touch (`FOR UPDATE`), so
//! writes of several hosts to one run take turns, and a transaction that
//! lost a deadlock or a serialization race is made again. This crate
//! supplies rows, not rules.
//!
//! Between hosts:
//! - a run is driven by the host holding its claim ([`Storage::claim`]: the
//!   `lease_owner`/`lease_until` columns, taken only when free or expired);
//!   [`Storage::orphans`] finds the runs of hosts that died;
//! - commits that end runs and components kept in the database are
//!   announced with `NOTIFY` on the schema's channel, and a listener thread
//!   turns them into [`Notice`]s ([`Storage::notices`]); after a reconnect it
//!   says [`Notice::Resync`].
//!
//! A lost connection makes calls fail with [`StorageError::Unavailable`];
//! the pool reconnects once the server is back. A write that failed before
//! its `COMMIT` was sent is made again on a fresh connection at once.

mod conn;
mod tx;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use tokio::sync::broadcast;
use wasmflow_core::RunStatus;
use wasmflow_core::activation::StoreMap;
use wasmflow_core::journal::Journal;
use wasmflow_core::model::{HistoryEvent, RunId};
use wasmflow_core::plan::{InboxKind, Timer};
use wasmflow_storage::{
    Anchors, HistoryRecord, InboxEntry, ListPosition, LiveVersion, Notice, Quotas, RunFilter,
    RunRecord, Storage, StorageError, Write, Written, rules,
};

use crate::tx::{big, col};

mod embedded {
    refinery::embed_migrations!("migrations");
}

type Pool = r2d2::Pool<conn::Manager>;

/// How a [`PostgresStorage`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool: transactions (and reads) at once.
    pub pool_size: u32,
    /// How long connecting to the server may take before the call that
    /// needed the connection fails with [`StorageError::Unavailable`]
    /// (waiting for a busy pool's connection to be free has no limit).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A PostgreSQL database shared by several hosts. Cheap to share behind an
/// `Arc`; dropping it stops its listener.
pub struct PostgresStorage {
    /// `None` only while dropping: the pool is dropped on a thread of its
    /// own, as closing a sync client must not happen on an async thread.
    pool: Option<Pool>,
    quotas: Quotas,
    /// This process's name in `lease_owner`.
    owner: String,
    /// The `NOTIFY` channel of the schema the pool works in.
    channel: String,
    notices: broadcast::Sender<Notice>,
    stop: Arc<AtomicBool>,
    /// One permit per pooled connection: calls beyond the pool's size wait
    /// here, in order and for as long as it takes, rather than in the pool
    /// (whose wait fails after `connect_timeout`, which is for a database
    /// that does not answer, not for a busy host) and without holding a
    /// blocking thread each.
    slots: Arc<tokio::sync::Semaphore>,
}

/// Writes made again after losing a deadlock or a serialization race, or
/// after a connection that broke before `COMMIT`.
const MAX_ATTEMPTS: u32 = 20;

impl PostgresStorage {
    /// Connect to `url` (`postgres://user:password@host:port/database`,
    /// with libpq's key/value options such as `options=-csearch_path=S`),
    /// migrate the schema to this binary's, and start listening for other
    /// hosts' notices.
    pub fn open(
        url: &str,
        quotas: Quotas,
        options: PostgresOptions,
    ) -> Result<PostgresStorage, StorageError> {
        let target = redacted(url);
        let open_error =
            |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
                StorageError::Open {
                    path: target.clone(),
                    reason,
                    source,
                }
            };
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| open_error(format!("not a PostgreSQL URL: {e}"), None))?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("wasmflow");
        }
        let manager = conn::Manager {
            config: config.clone(),
        };
        let connections = options.pool_size.max(2);
        let pool = r2d2::Pool::builder()
            .max_size(connections)
            .min_idle(Some(2))
            .connection_timeout(options.connect_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(LogErrors))
            .build(manager)
            .map_err(|e| open_error(format!("cannot connect: {e}"), Some(Box::new(e))))?;
        let mut conn = pool
            .get()
            .map_err(|e| open_error(format!("cannot connect: {e}"), Some(Box::new(e))))?;
        migrate(&mut conn.client, &target)?;
        let schema: String = conn
            .query_one("SELECT current_schema()", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| {
                open_error(
                    format!("cannot read the current schema: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        drop(conn);

        let channel = format!("wasmflow_{schema}");
        let (notices, _) = broadcast::channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let (listening, started) = std::sync::mpsc::channel();
        let listener = Listener {
            config,
            channel: channel.clone(),
            notices: notices.clone(),
            stop: stop.clone(),
            listening,
        };
        std::thread::Builder::new()
            .name("wasmflow-pg-listen".into())
            .spawn(move || listener.run())
            .map_err(|e| {
                open_error("cannot start the listener thread".into(), Some(Box::new(e)))
            })?;
        // Notices are live once `open` returns (a slow server: the listener
        // keeps trying, and says `Resync` when it gets through).
        let _ = started.recv_timeout(options.connect_timeout);
        Ok(PostgresStorage {
            pool: Some(pool),
            quotas,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            channel,
            notices,
            stop,
            slots: Arc::new(tokio::sync::Semaphore::new(connections as usize)),
        })
    }

    fn pool(&self) -> Result<Pool, StorageError> {
        self.pool.clone().ok_or(StorageError::Closed)
    }

    /// This host's name in run claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Run `f` on a pooled connection, off the async threads.
    async fn with<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut conn::Conn) -> Result<T, StorageError> + Send + 'static,
    {
        let pool = self.pool()?;
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut conn = pool.get().map_err(unavailable)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StorageError::Closed)?
    }

    /// Wait for a connection of the pool to be free.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, StorageError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// Rows of `sql` as runs.
    async fn runs(
        &self,
        sql: String,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<Vec<RunRecord>, StorageError> {
        self.with(move |c| {
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = c.query(&sql, &params).map_err(classify)?;
            rows.iter().map(row_to_run).collect()
        })
        .await
    }

    async fn one_run(
        &self,
        sql: String,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<Option<RunRecord>, StorageError> {
        Ok(self.runs(sql, params).await?.into_iter().next())
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("wasmflow-pg-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// r2d2's complaints, in the host's log.
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// `url` without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}@{}:{port}/{}",
                config.get_user().unwrap_or(""),
                hosts.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "the PostgreSQL database".into(),
    }
}

/// Apply the embedded migrations, one host at a time; refuse a schema
/// newer than them.
fn migrate(client: &mut Client, target: &str) -> Result<(), StorageError> {
    // Any constant shared by every wasmflow: hosts starting together take
    // turns.
    const LOCK: i64 = 0x7761_736d_666c_6f77;
    let migration_error = |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Migration {
        path: target.to_owned(),
        source: e,
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .map_err(|e| migration_error(Box::new(e)))?;
    let result = (|| {
        let runner = embedded::migrations::runner();
        let supported = runner
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        let versioned: bool = client
            .query_one(
                "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| migration_error(Box::new(e)))?;
        if versioned
            && let Some(last) = runner
                .get_last_applied_migration(client)
                .map_err(|e| migration_error(Box::new(e)))?
            && i64::from(last.version()) > supported
        {
            return Err(StorageError::SchemaTooNew {
                path: target.to_owned(),
                found: i64::from(last.version()),
                supported,
            });
        }
        runner
            .run(client)
            .map_err(|e| migration_error(Box::new(e)))?;
        Ok(())
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]);
    result
}

/// A failure that succeeds when the transaction is made again.
pub(crate) fn is_transient(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Whether `e` says the server cannot be reached rather than refusing the
/// statement.
fn is_connection(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No answer from the server at all: an I/O error or a timeout.
        None => e.as_db_error().is_none(),
    }
}

/// A `postgres` error as the storage interface's.
pub(crate) fn classify(e: postgres::Error) -> StorageError {
    if is_connection(&e) {
        StorageError::Unavailable {
            reason: e.to_string(),
            source: Some(Box::new(e)),
        }
    } else {
        StorageError::backend(e)
    }
}

fn unavailable(e: r2d2::Error) -> StorageError {
    StorageError::Unavailable {
        reason: format!("no database connection: {e}"),
        source: Some(Box::new(e)),
    }
}

/// Apply `write` in one transaction; make it again after a lost race or a
/// connection that broke before `COMMIT`.
fn write_once(
    pool: &Pool,
    write: &Write,
    quotas: Quotas,
    channel: &str,
    owner: &str,
) -> Result<Written, StorageError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = pool.get().map_err(unavailable)?;
        let conn::Conn { client, statements } = &mut *conn;
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) if attempt < MAX_ATTEMPTS && is_connection(&e) => continue,
            Err(e) => return Err(classify(e)),
        };
        let mut pg = tx::PgTx::new(&mut tx, statements, owner);
        let applied = rules::apply(&mut pg, write, quotas).and_then(|written| {
            pg.flush()?;
            announce(&mut pg, channel, &written)?;
            Ok(written)
        });
        let retry = pg.retry;
        match applied {
            Ok(written) => {
                // Past this point the outcome may be unknown: never again.
                return match tx.commit() {
                    Ok(()) => Ok(written),
                    Err(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => continue,
                    Err(e) => Err(classify(e)),
                };
            }
            Err(e) => {
                drop(tx);
                if attempt < MAX_ATTEMPTS && (retry || e.is_unavailable()) {
                    if retry {
                        std::thread::sleep(Duration::from_millis(u64::from(attempt)));
                    }
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// `NOTIFY` the other hosts of the runs `written` ended (delivered when the
/// transaction commits).
fn announce(
    tx: &mut tx::PgTx<'_, '_>,
    channel: &str,
    written: &Written,
) -> Result<(), StorageError> {
    let effects = match written {
        Written::Committed(wasmflow_storage::CommitOutcome::Applied { effects, .. }) => effects,
        Written::Applied(Ok(effects)) | Written::Expired(effects) => effects,
        _ => return Ok(()),
    };
    for finished in &effects.finished {
        let payload = format!("f:{}", finished.run_id);
        tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])?;
    }
    Ok(())
}

/// The thread that listens for other hosts' notices, on a connection of its
/// own, reconnecting with back-off.
struct Listener {
    config: postgres::Config,
    channel: String,
    notices: broadcast::Sender<Notice>,
    stop: Arc<AtomicBool>,
    /// Told once the first `LISTEN` is in place.
    listening: std::sync::mpsc::Sender<()>,
}

impl Listener {
    fn run(self) {
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        while !self.stop.load(Ordering::Relaxed) {
            let mut client = match self.config.connect(NoTls) {
                Ok(client) => client,
                Err(error) => {
                    tracing::debug!(%error, "cannot connect to listen for notices; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if let Err(error) = client.batch_execute(&format!("LISTEN \"{}\"", self.channel)) {
                tracing::debug!(%error, "cannot listen for notices; retrying");
                std::thread::sleep(backoff);
                continue;
            }
            backoff = Duration::from_millis(100);
            let _ = self.listening.send(());
            if connected_before {
                // What was announced while the connection was down is lost.
                let _ = self.notices.send(Notice::Resync);
            }
            connected_before = true;
            if let Err(error) = self.listen(&mut client) {
                tracing::warn!(%error, "lost the notice connection; reconnecting");
            }
        }
    }

    fn listen(&self, client: &mut Client) -> Result<(), postgres::Error> {
        while !self.stop.load(Ordering::Relaxed) {
            {
                let mut notifications = client.notifications();
                let mut batch = notifications.timeout_iter(Duration::from_millis(500));
                while let Some(n) = FallibleIterator::next(&mut batch)? {
                    let notice = match n.payload().split_once(':') {
                        Some(("f", run)) => match run.parse::<RunId>() {
                            Ok(run_id) => Notice::Finished(run_id),
                            Err(_) => continue,
                        },
                        Some(("c", version)) => Notice::Component(version.to_owned()),
                        Some(("d", deployed)) => match deployed.split_once(':') {
                            Some((version, file)) => Notice::Deployed {
                                file: file.to_owned(),
                                version: version.to_owned(),
                            },
                            None => continue,
                        },
                        Some(("r", file)) => Notice::Retired {
                            file: file.to_owned(),
                        },
                        _ => continue,
                    };
                    // Nobody listening yet is fine.
                    let _ = self.notices.send(notice);
                }
            }
            // A connection that died quietly shows here.
            if client.is_closed() {
                client.simple_query("")?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Storage for PostgresStorage {
    async fn write(&self, write: Write) -> Result<Written, StorageError> {
        let pool = self.pool()?;
        let quotas = self.quotas;
        let channel = self.channel.clone();
        let owner = self.owner.clone();
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            write_once(&pool, &write, quotas, &channel, &owner)
        })
        .await
        .map_err(|_| StorageError::Closed)?
    }

    /// Take the run's claim if it is free, expired or already this host's.
    async fn claim(&self, run_id: RunId, until_ms: u64) -> Result<bool, StorageError> {
        let owner = self.owner.clone();
        let now = big(wasmflow_core::model::now_ms());
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE runs SET lease_owner = $1, lease_until = $2
                     WHERE run_id = $3
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
                    &[&owner, &big(until_ms), &run_id.to_string(), &now],
                )
                .map_err(classify)?;
            Ok(n == 1)
        })
        .await
    }

    async fn release(&self, run_id: RunId) -> Result<bool, StorageError> {
        let owner = self.owner.clone();
        self.with(move |c| {
            let row = c
                .query_opt(
                    "UPDATE runs SET lease_owner = NULL, lease_until = NULL
                     WHERE run_id = $1 AND lease_owner = $2 RETURNING status",
                    &[&run_id.to_string(), &owner],
                )
                .map_err(classify)?;
            Ok(match row {
                Some(row) => col::<String>(&row, 0)? == RunStatus::Running.as_str(),
                None => false,
            })
        })
        .await
    }

    async fn orphans(
        &self,
        now_ms: u64,
        overdue_ms: u64,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let now = big(now_ms);
        let before = big(now_ms.saturating_sub(overdue_ms));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.runs(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE status IN ('running', 'waiting')
                   AND (lease_until IS NULL OR lease_until < $1)
                   AND ((status = 'running' AND (lease_until IS NOT NULL OR updated_at < $2))
                     OR (status = 'waiting' AND (timer_at < $2 OR deadline_at < $2)))
                 ORDER BY updated_at LIMIT $3"
            ),
            vec![Box::new(now), Box::new(before), Box::new(limit)],
        )
        .await
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.notices.subscribe())
    }

    async fn save_component(
        &self,
        version: &str,
        file: Option<String>,
        bytes: Arc<[u8]>,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        let version = version.to_owned();
        let channel = self.channel.clone();
        self.with(move |c| {
            let mut tx = c.client.transaction().map_err(classify)?;
            let inserted = tx
                .execute(
                    "INSERT INTO components (version, bytes, file, added_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (version) DO NOTHING",
                    &[&version, &&bytes[..], &file, &big(at_ms)],
                )
                .map_err(classify)?;
            if inserted == 1 {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&channel, &format!("c:{version}")],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn component(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StorageError> {
        let version = version.to_owned();
        self.with(move |c| {
            let row = c
                .query_opt(
                    "SELECT bytes, file FROM components WHERE version = $1",
                    &[&version],
                )
                .map_err(classify)?;
            match row {
                Some(row) => Ok(Some((col(&row, 0)?, col(&row, 1)?))),
                None => Ok(None),
            }
        })
        .await
    }

    /// Forget component versions no live run is pinned to, except `keep`
    /// and the newest version of each file name (another host's plugins
    /// directory may provide it now).
    async fn prune_components(&self, keep: Vec<String>) -> Result<usize, StorageError> {
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM components c
                     WHERE NOT (version = ANY($1))
                       AND version NOT IN
                           (SELECT version FROM runs WHERE status IN ('running', 'waiting'))
                       AND version NOT IN (SELECT version FROM deployments)
                       AND NOT (file IS NOT NULL AND added_at =
                           (SELECT MAX(added_at) FROM components d WHERE d.file = c.file))",
                    &[&keep],
                )
                .map_err(classify)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn delete_finished(
        &self,
        ended_before_ms: u64,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let before = big(ended_before_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut tx = c.client.transaction().map_err(classify)?;
            // Locked as they are picked: a host finishing a child of one of
            // them at the same time waits, then sees it gone.
            let rows = tx
                .query(
                    "SELECT run_id FROM runs r
                     WHERE status IN ('completed', 'failed', 'cancelled', 'terminated')
                       AND updated_at < $1
                       AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.parent_run_id = r.run_id
                                       AND c.status IN ('running', 'waiting'))
                       AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.run_id = r.parent_run_id
                                       AND p.status IN ('running', 'waiting'))
                     ORDER BY updated_at LIMIT $2
                     FOR UPDATE SKIP LOCKED",
                    &[&before, &limit],
                )
                .map_err(classify)?;
            let runs: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            for table in ["store", "inbox", "history", "journal", "runs"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id = ANY($1)"),
                    &[&runs],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)?;
            Ok(runs.len())
        })
        .await
    }

    async fn deploy(&self, file: &str, version: &str, at_ms: u64) -> Result<(), StorageError> {
        let (file, version) = (file.to_owned(), version.to_owned());
        let channel = self.channel.clone();
        self.with(move |c| {
            let mut tx = c.client.transaction().map_err(classify)?;
            let changed = tx
                .execute(
                    "INSERT INTO deployments (file, version, deployed_at) VALUES ($1, $2, $3)
                     ON CONFLICT (file) DO UPDATE
                         SET version = excluded.version, deployed_at = excluded.deployed_at
                         WHERE deployments.version <> excluded.version",
                    &[&file, &version, &big(at_ms)],
                )
                .map_err(classify)?;
            if changed == 1 {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&channel, &format!("d:{version}:{file}")],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn retire(&self, file: &str) -> Result<(), StorageError> {
        let file = file.to_owned();
        let channel = self.channel.clone();
        self.with(move |c| {
            let mut tx = c.client.transaction().map_err(classify)?;
            let gone = tx
                .execute("DELETE FROM deployments WHERE file = $1", &[&file])
                .map_err(classify)?;
            if gone == 1 {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&channel, &format!("r:{file}")],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
        .await
    }

    async fn deployments(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.with(|c| {
            let rows = c
                .query("SELECT file, version FROM deployments ORDER BY file", &[])
                .map_err(classify)?;
            rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
        })
        .await
    }

    async fn live_versions(&self) -> Result<Vec<LiveVersion>, StorageError> {
        self.with(|c| {
            let rows = c
                .query(
                    "SELECT workflow_type, version, COUNT(*) FROM runs
                     WHERE status IN ('running', 'waiting')
                     GROUP BY workflow_type, version ORDER BY workflow_type, version",
                    &[],
                )
                .map_err(classify)?;
            rows.iter()
                .map(|r| {
                    let runs: i64 = col(r, 2)?;
                    Ok(LiveVersion {
                        workflow_type: col(r, 0)?,
                        version: col(r, 1)?,
                        runs: u64::try_from(runs).unwrap_or(0),
                    })
                })
                .collect()
        })
        .await
    }

    async fn live_runs_of_type(&self, workflow_type: &str) -> Result<Vec<RunRecord>, StorageError> {
        self.runs(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_type = $1
                 AND status IN ('running', 'waiting') ORDER BY created_at, run_id"
            ),
            vec![Box::new(workflow_type.to_owned())],
        )
        .await
    }

    async fn anchors(&self, run_id: RunId) -> Result<Anchors, StorageError> {
        self.with(move |c| {
            let id = run_id.to_string();
            let steps = c
                .query(
                    "SELECT DISTINCT on_completed FROM runs WHERE parent_run_id = $1
                     AND status IN ('running', 'waiting') AND on_completed IS NOT NULL",
                    &[&id],
                )
                .map_err(classify)?;
            let inbox = c
                .query(
                    "SELECT name, notice FROM inbox WHERE run_id = $1 ORDER BY id",
                    &[&id],
                )
                .map_err(classify)?;
            Ok(Anchors {
                child_steps: steps.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?,
                inbox: inbox
                    .iter()
                    .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
                    .collect::<Result<_, StorageError>>()?,
            })
        })
        .await
    }

    async fn journal(&self, run_id: RunId) -> Result<Journal, StorageError> {
        self.with(move |c| {
            let rows = c
                .query(
                    "SELECT entry FROM journal WHERE run_id = $1 ORDER BY id",
                    &[&run_id.to_string()],
                )
                .map_err(classify)?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let text: String = col(row, 0)?;
                let entry = serde_json::from_str(&text)
                    .map_err(|e| corrupt_run(&run_id, "journal entry", &e))?;
                entries.push(entry);
            }
            Ok(Journal { entries })
        })
        .await
    }

    async fn history_len(&self, run_id: RunId) -> Result<u64, StorageError> {
        self.with(move |c| {
            let row = c
                .query_one(
                    "SELECT COUNT(*) FROM history WHERE run_id = $1",
                    &[&run_id.to_string()],
                )
                .map_err(classify)?;
            let n: i64 = col(&row, 0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StorageError> {
        self.one_run(
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
            vec![Box::new(run_id.to_string())],
        )
        .await
    }

    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        self.one_run(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1
                 ORDER BY created_at DESC, run_id DESC LIMIT 1"
            ),
            vec![Box::new(workflow_id.to_owned())],
        )
        .await
    }

    async fn active_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        self.one_run(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1
                 AND status IN ('running', 'waiting')"
            ),
            vec![Box::new(workflow_id.to_owned())],
        )
        .await
    }

    async fn live_runs(&self) -> Result<Vec<RunRecord>, StorageError> {
        self.runs(
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('running', 'waiting')"),
            vec![],
        )
        .await
    }

    async fn list_runs(
        &self,
        filter: RunFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let RunFilter {
            workflow_type,
            status,
            id_prefix,
        } = filter;
        let status = status.map(|s| s.as_str().to_owned());
        let filters =
            "($1::TEXT IS NULL OR workflow_type = $1) AND ($2::TEXT IS NULL OR status = $2)
             AND ($3::TEXT IS NULL OR starts_with(workflow_id, $3))";
        let order = "ORDER BY created_at DESC, run_id DESC";
        match after {
            None => {
                self.runs(
                    format!("SELECT {RUN_COLUMNS} FROM runs WHERE {filters} {order} LIMIT $4"),
                    vec![
                        Box::new(workflow_type),
                        Box::new(status),
                        Box::new(id_prefix),
                        Box::new(limit),
                    ],
                )
                .await
            }
            Some(p) => {
                self.runs(
                    format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE {filters}
                         AND (created_at, run_id) < ($4, $5) {order} LIMIT $6"
                    ),
                    vec![
                        Box::new(workflow_type),
                        Box::new(status),
                        Box::new(id_prefix),
                        Box::new(big(p.created_ms)),
                        Box::new(p.run_id.to_string()),
                        Box::new(limit),
                    ],
                )
                .await
            }
        }
    }

    async fn inbox_depth(&self) -> Result<u64, StorageError> {
        self.with(|c| {
            let row = c
                .query_one("SELECT COUNT(*) FROM inbox", &[])
                .map_err(classify)?;
            let n: i64 = col(&row, 0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>, StorageError> {
        self.runs(
            format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id = $1
                 ORDER BY created_at, run_id"
            ),
            vec![Box::new(run_id.to_string())],
        )
        .await
    }

    async fn store(&self, run_id: RunId) -> Result<StoreMap, StorageError> {
        self.with(move |c| {
            let rows = c
                .query(
                    "SELECT key, value FROM store WHERE run_id = $1",
                    &[&run_id.to_string()],
                )
                .map_err(classify)?;
            let mut map = StoreMap::new();
            for row in &rows {
                let value: String = col(row, 1)?;
                map.insert(col(row, 0)?, stored_json(&value, "store value")?);
            }
            Ok(map)
        })
        .await
    }

    async fn inbox(&self, run_id: RunId) -> Result<Vec<InboxEntry>, StorageError> {
        self.with(move |c| {
            let rows = c
                .query(
                    "SELECT id, name, payload, notice FROM inbox WHERE run_id = $1 ORDER BY id",
                    &[&run_id.to_string()],
                )
                .map_err(classify)?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                let payload: String = col(row, 2)?;
                let notice: bool = col(row, 3)?;
                entries.push(InboxEntry {
                    id: col(row, 0)?,
                    name: col(row, 1)?,
                    payload: stored_json(&payload, "inbox payload")?,
                    kind: if notice {
                        InboxKind::Notice
                    } else {
                        InboxKind::Event
                    },
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>, StorageError> {
        self.with(move |c| {
            let rows = c
                .query(
                    "SELECT id, at, data FROM history WHERE run_id = $1 ORDER BY id",
                    &[&run_id.to_string()],
                )
                .map_err(classify)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: i64 = col(row, 0)?;
                let at: i64 = col(row, 1)?;
                let data: String = col(row, 2)?;
                let event: HistoryEvent = serde_json::from_str(&data).map_err(|e| {
                    StorageError::Corrupt(format!("history entry {id} of run {run_id}: {e}"))
                })?;
                out.push(HistoryRecord {
                    id,
                    at_ms: u64::try_from(at).unwrap_or(0),
                    event,
                });
            }
            Ok(out)
        })
        .await
    }
}

pub(crate) use wasmflow_storage::rows::{corrupt_run, parse_run_id, stored_json, to_json};

const RUN_COLUMNS: &str = "run_id, workflow_id, workflow_type, version, status, parent_run_id,
    on_completed, close_policy, input, result, error, seq, pending, timer_at, timer_step,
    deadline_at, cancel_reason, created_at, updated_at, timer_sleep, timer_retry";

fn row_to_run(r: &postgres::Row) -> Result<RunRecord, StorageError> {
    let run_id: String = col(r, 0)?;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| corrupt_run(&run_id, what, e);
    let unsigned = |what: &str, v: i64| u64::try_from(v).map_err(|e| corrupt(what, &e));
    let status: String = col(r, 4)?;
    let parent: Option<String> = col(r, 5)?;
    let close_policy: String = col(r, 7)?;
    let input: String = col(r, 8)?;
    let result: Option<String> = col(r, 9)?;
    let error: Option<String> = col(r, 10)?;
    let pending: Option<String> = col(r, 12)?;
    let timer_at: Option<i64> = col(r, 13)?;
    let deadline: Option<i64> = col(r, 15)?;
    Ok(RunRecord {
        run_id: parse_run_id(&run_id)?,
        workflow_id: col(r, 1)?,
        workflow_type: col(r, 2)?,
        version: col(r, 3)?,
        status: status
            .parse::<RunStatus>()
            .map_err(|e| corrupt("status", &e))?,
        parent_run_id: parent.as_deref().map(parse_run_id).transpose()?,
        on_completed: col(r, 6)?,
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
        seq: unsigned("sequence number", col(r, 11)?)?,
        pending: pending
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("pending activation", &e))?,
        // A timer without a step is a timed wait that fails the run.
        timer: match timer_at {
            Some(due) => Some(Timer {
                due_ms: unsigned("timer", due)?,
                on_timeout: col(r, 14)?,
                sleep: col(r, 19)?,
                retry: col(r, 20)?,
            }),
            None => None,
        },
        deadline_ms: deadline.map(|d| unsigned("deadline", d)).transpose()?,
        cancel_requested: col(r, 16)?,
        created_ms: unsigned("creation time", col(r, 17)?)?,
        updated_ms: unsigned("update time", col(r, 18)?)?,
    })
}
