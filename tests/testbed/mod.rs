//! Shared by the integration tests: the guest components (built once per
//! test binary, a no-op when nothing changed), plugin directories holding a
//! chosen few of them, and hosts on a fresh SQLite file in a temp dir.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use wasmflow_host::{Host, HostBuilder, RunId, RunRecord};
use xtask::Guests;

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
}

impl TestBed {
    pub fn new(components: &[&str]) -> TestBed {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
        let sandbox = TestBed { dir };
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

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("wasmflow.db")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A host builder on this sandbox's plugins and database.
    pub fn builder(&self) -> HostBuilder {
        HostBuilder::new(self.db()).plugins(self.plugins())
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
