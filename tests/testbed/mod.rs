//! Shared by the integration tests: the guest components (built once per
//! test binary, a no-op when nothing changed), plugin directories holding a
//! chosen few of them, and hosts on a fresh database.
//!
//! The database is the backend [`BACKEND_ENV`] names: a SQLite file in the
//! test's temp dir (the default), or with `postgres` a fresh schema in the
//! PostgreSQL server of `WASMFLOW_TEST_POSTGRES`. `cargo xtask test` runs
//! the whole binary once per backend. A test about the SQLite file itself
//! has `sqlite_` in its name and the PostgreSQL pass skips it; the tests of
//! several hosts on one database (`hosts::`) take their PostgreSQL schema
//! directly and run in the SQLite pass only.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod fleet;

use tempfile::TempDir;
use wasmflow_host::{Database, Host, HostBuilder, RunId, RunRecord};
use xtask::Guests;

/// Which backend the tests' hosts use: `sqlite` (the default) or
/// `postgres`.
pub const BACKEND_ENV: &str = "WASMFLOW_TEST_BACKEND";

/// The storage backend of this test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend [`BACKEND_ENV`] selects.
pub fn backend() -> Backend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected `sqlite` or `postgres`"),
    }
}

/// A fresh schema in the test PostgreSQL server, as a database URL. On a
/// thread of its own: the synchronous client must not run on the tests'
/// async runtime.
pub fn fresh_postgres_schema() -> String {
    std::thread::spawn(xtask::postgres::fresh_schema)
        .join()
        .expect("fresh_schema does not panic")
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// How long a claim lasts on PostgreSQL in the tests: short, so that a run
/// a killed host held is taken over quickly.
pub const TEST_LEASE: Duration = Duration::from_secs(2);

/// The database options of a `wasmflow serve` or `run` on the PostgreSQL
/// database `url`: `--db`, and the tests' short `--lease-timeout`.
pub fn postgres_serve_args(url: &str) -> Vec<OsString> {
    vec![
        "--db".into(),
        url.into(),
        "--lease-timeout".into(),
        format!("{}ms", TEST_LEASE.as_millis()).into(),
    ]
}

/// The built example and test guest components.
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| xtask::build_guests().expect("the guest components build"))
}

/// A component by name: an example (`hello`, `counter`, `failing`) or a test
/// guest (`probe`, `raw`, `otherworld`).
pub fn component(name: &str) -> PathBuf {
    let example = guests().example(name);
    if example.exists() {
        example
    } else {
        guests().test_guest(name)
    }
}

/// A temp dir with `plugins/` holding the named components, and room for a
/// database.
pub struct TestBed {
    pub dir: TempDir,
    schema: OnceLock<String>,
}

impl TestBed {
    pub fn new(components: &[&str]) -> TestBed {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
        let sandbox = TestBed {
            dir,
            schema: OnceLock::new(),
        };
        for name in components {
            sandbox.add(name);
        }
        sandbox
    }

    pub fn add(&self, name: &str) {
        std::fs::copy(component(name), self.plugins().join(format!("{name}.wasm")))
            .expect("copy a component");
    }

    pub fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// The SQLite file in the temp dir (used by the SQLite backend, and by
    /// the `sqlite_` tests whatever the backend).
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("wasmflow.db")
    }

    /// This test bed's database on the selected backend; on PostgreSQL a
    /// schema of its own, created on first use.
    pub fn database(&self) -> Database {
        match backend() {
            Backend::Sqlite => Database::Sqlite(self.db()),
            Backend::Postgres => {
                Database::Postgres(self.schema.get_or_init(fresh_postgres_schema).clone())
            }
        }
    }

    /// The value of `--db` for this test bed's database: the SQLite file's
    /// path or the PostgreSQL URL.
    pub fn db_arg(&self) -> OsString {
        match self.database() {
            Database::Sqlite(path) => path.into(),
            Database::Postgres(url) => url.into(),
        }
    }

    /// The database options of a `wasmflow serve` or `run` on this test
    /// bed: `--db`, and on PostgreSQL the tests' short `--lease-timeout`.
    pub fn host_db_args(&self) -> Vec<OsString> {
        match self.database() {
            Database::Sqlite(path) => vec!["--db".into(), path.into()],
            Database::Postgres(url) => postgres_serve_args(&url),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A host builder on this sandbox's plugins and database.
    pub fn builder(&self) -> HostBuilder {
        HostBuilder::new(self.database())
            .plugins(self.plugins())
            .lease_timeout(TEST_LEASE)
    }

    pub async fn host(&self) -> Host {
        self.builder().start().await.expect("the host starts")
    }
}

/// Wait for a run to end, failing the test after `limit`.
pub async fn finish(host: &Host, run_id: RunId, limit: Duration) -> RunRecord {
    tokio::time::timeout(limit, host.wait(run_id))
        .await
        .unwrap_or_else(|_| panic!("run {run_id} did not finish within {limit:?}"))
        .expect("wait for the run")
}

/// The run's result as a JSON value.
pub fn result(record: &RunRecord) -> serde_json::Value {
    let json = record
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("run has no result: {:?} {:?}", record.status, record.error));
    serde_json::from_str(json.get()).expect("a JSON result")
}

/// Poll the run until `ready` holds, failing the test after `limit`.
pub async fn until(
    host: &Host,
    run_id: RunId,
    limit: Duration,
    ready: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let record = host.run(run_id).await.expect("read the run");
        if ready(&record) {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} not ready within {limit:?}: {:?} {:?}",
            record.status,
            record.error
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `type` of every history entry of the run, in order.
pub async fn history_kinds(host: &Host, run_id: RunId) -> Vec<&'static str> {
    host.history(run_id)
        .await
        .expect("read the history")
        .iter()
        .map(|h| h.event.kind())
        .collect()
}

/// Spawn `serve` (a `wasmflow serve` command with `--listen 127.0.0.1:0`)
/// with its stderr piped, and wait until it logs the address it serves on;
/// the child and `http://ADDR`. Its log keeps being drained afterwards.
pub fn spawn_serve(mut serve: Command) -> (Child, String) {
    let mut child = serve
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wasmflow serve");
    let stderr = child.stderr.take().expect("serve's stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("serve logs its address; it logged {seen:#?}"));
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split(';').next().unwrap_or(rest).trim().to_owned();
        }
        seen.push(line);
    };
    (child, addr)
}
