//! A test harness for wasmflow workflow authors: your real component, run by
//! the real host (engine and wasmtime sandbox) in-process, on a temporary
//! SQLite store, with a clock that moves only when the test says so.
//!
//! Add it as a dev-dependency of the workflow crate (dev-dependencies are
//! built only for host-side tests, never into the `wasm32-wasip2`
//! component), build the component ([`build_component`] does it from the
//! test, or give a built file's path), and drive it:
//!
//! ```no_run
//! # async fn f() -> wasmflow_testing::Result<()> {
//! use std::time::Duration;
//! use serde_json::json;
//! use wasmflow_testing::{Harness, RunStatus, build_component};
//!
//! let mut h = Harness::new(build_component(env!("CARGO_MANIFEST_DIR"))?).await?;
//! h.stub_task("charge_card", Ok(json!("txn-42")));
//! h.start("Order", "order-1", json!({"order_id": "1", "amount": 9.5})).await?;
//! assert_eq!(h.status("order-1").await?, RunStatus::Waiting);
//! h.send("order-1", "start_payment", json!({})).await?;
//! assert_eq!(h.result::<String>("order-1").await?, "txn-42");
//! h.advance(Duration::from_secs(3600)).await?; // fires what became due
//! # Ok(()) }
//! ```
//!
//! What it gives:
//! - **Settling**: every call that moves runs (`start`, `send`, `advance`,
//!   `restart`) returns when every run has parked (waits with nothing due)
//!   or ended, within [`HarnessBuilder::settle_limit`] of real time; then
//!   the reads (`run`, `status`, `result`, `store`, `children`, `history`,
//!   `task_attempts`, `query`) see the outcome.
//! - **A fake clock** ([`ManualClock`]): the host reads the time of runs
//!   from it (wait timeouts, durable sleeps, workflow timeouts, task retry
//!   delays, the guest's `ctx.now()`); [`Harness::advance`] moves it and
//!   fires what became due at once. Under it a task's retry delay parks the
//!   run with a retry timer (as a delay longer than the step timeout does in
//!   a real host), which `advance` fires.
//! - **Task stubs** ([`Harness::stub_task`]): a stubbed task does not run;
//!   its outcome is recorded as the task's attempt and returned to the
//!   workflow, through the journal's recorded-outcome path.
//! - **HTTP stubs** ([`Harness::stub_http`]): the task runs, and its
//!   outbound requests to a stubbed URL get the test's responses instead of
//!   going out (in order, for retries); they are recorded for the attempt
//!   as real ones are.
//! - **Crash injection** ([`Harness::crash_before_commit`],
//!   [`Harness::crash_after`]): a commit is dropped, the host is stopped and
//!   a new one opened on the same store, which executes the activation
//!   again, as after a real crash: what the activation recorded (task
//!   outcomes) is replayed, what it would have committed is applied once.
//! - The [`Host`] itself ([`Harness::host`]) for anything else.

mod build;
mod clock;
mod crash;
mod stubs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use wasmflow_host::HostBuilder;
use wasmflow_host::clock::Clock;
use wasmflow_storage::Storage;

pub use build::build_component;
pub use clock::ManualClock;
pub use stubs::{HttpResponse, StubOutcome};
pub use wasmflow_host::journal::{TaskAttempt, TaskResult};
pub use wasmflow_host::{
    ErrorKind, HistoryEvent, HistoryRecord, Host, RunId, RunRecord, RunStatus, StartOptions,
    WorkflowError,
};

use crash::{CrashPlan, Crashing};
use stubs::Stubs;

/// What can go wrong in a harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The temporary directory or the component file.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The host refused or failed a call (an unknown type, an input that
    /// does not fit, a run that does not exist, ...).
    #[error(transparent)]
    Host(#[from] wasmflow_host::Error),
    /// Runs were still busy after the settle limit.
    #[error("runs did not settle within {limit:?}: {busy}")]
    NotSettled { limit: Duration, busy: String },
    /// [`Harness::result`] of a run that did not complete.
    #[error("run `{workflow_id}` is {status}, not completed{}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotCompleted {
        workflow_id: String,
        status: RunStatus,
        error: Option<WorkflowError>,
    },
    /// A value from the run did not decode into the type asked for, or an
    /// input did not encode.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// [`build_component`] failed: cargo's message.
    #[error("cannot build the component of {}: {message}", .manifest.display())]
    Build { manifest: PathBuf, message: String },
    /// The harness's host was stopped (a restart failed).
    #[error("the harness has no running host")]
    Stopped,
}

/// A harness result.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// The time the fake clock starts at unless told otherwise:
/// 2030-01-01T00:00:00Z, in milliseconds since the Unix epoch.
pub const DEFAULT_START_MS: u64 = 1_893_456_000_000;

/// Settings of a [`Harness`].
#[derive(Debug, Clone)]
pub struct HarnessBuilder {
    components: Vec<PathBuf>,
    start_ms: u64,
    step_timeout: Option<Duration>,
    settle_limit: Duration,
    cache_dir: Option<PathBuf>,
    grants: Option<wasmflow_host::grant::GrantTable>,
}

impl HarnessBuilder {
    /// Another component to load beside the first (the plugins directory
    /// holds them all).
    pub fn component(mut self, path: impl AsRef<Path>) -> Self {
        self.components.push(path.as_ref().to_owned());
        self
    }

    /// Where the fake clock starts, in milliseconds since the Unix epoch
    /// (default [`DEFAULT_START_MS`]).
    pub fn start_at_ms(mut self, ms: u64) -> Self {
        self.start_ms = ms;
        self
    }

    /// The activation deadline of handlers without their own (the host's
    /// default: 10 s of real time).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }

    /// How long (real time) a call waits for the runs to settle before
    /// [`HarnessError::NotSettled`] (default 30 s).
    pub fn settle_limit(mut self, limit: Duration) -> Self {
        self.settle_limit = limit;
        self
    }

    /// Where compiled components are cached between harnesses (default:
    /// `wasmflow-testing-cache` in the system's temp dir), so a test suite
    /// compiles each component once.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// What the components may reach (outbound HTTP, secrets); default:
    /// nothing.
    pub fn grants(mut self, grants: wasmflow_host::grant::GrantTable) -> Self {
        self.grants = Some(grants);
        self
    }

    /// Copy the components into a fresh temporary plugins directory and
    /// start a host on a fresh database beside it.
    pub async fn start(self) -> Result<Harness> {
        let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
            what: "cannot create a temporary directory".to_owned(),
            source,
        })?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).map_err(|source| HarnessError::Io {
            what: format!("cannot create {}", plugins.display()),
            source,
        })?;
        for component in &self.components {
            let name = component
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "component.wasm".to_owned());
            let name = if name.ends_with(".wasm") {
                name
            } else {
                format!("{name}.wasm")
            };
            std::fs::copy(component, plugins.join(&name)).map_err(|source| HarnessError::Io {
                what: format!("cannot copy component {}", component.display()),
                source,
            })?;
        }
        let mut harness = Harness {
            clock: Arc::new(ManualClock::new(self.start_ms)),
            stubs: Arc::default(),
            crash: Arc::default(),
            settings: self,
            dir,
            host: None,
            restarts: 0,
        };
        harness.host = Some(harness.open().await?);
        Ok(harness)
    }
}

/// The real host on a temporary store, with a fake clock. See the crate
/// docs.
pub struct Harness {
    settings: HarnessBuilder,
    dir: TempDir,
    clock: Arc<ManualClock>,
    stubs: Arc<Stubs>,
    crash: Arc<CrashPlan>,
    host: Option<Host>,
    restarts: u32,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("dir", &self.dir.path())
            .field("now_ms", &self.clock.now_ms())
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness running `component` (a built `.wasm` file) with the
    /// default settings.
    pub async fn new(component: impl AsRef<Path>) -> Result<Harness> {
        Harness::builder(component).start().await
    }

    /// Settings for a harness running `component`.
    pub fn builder(component: impl AsRef<Path>) -> HarnessBuilder {
        HarnessBuilder {
            components: vec![component.as_ref().to_owned()],
            start_ms: DEFAULT_START_MS,
            step_timeout: None,
            settle_limit: Duration::from_secs(30),
            cache_dir: None,
            grants: None,
        }
    }

    async fn open(&self) -> Result<Host> {
        let s = &self.settings;
        let cache = s
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("wasmflow-testing-cache"));
        let plan = self.crash.clone();
        let mut builder = HostBuilder::new(self.dir.path().join("wasmflow.db"))
            .plugins(self.dir.path().join("plugins"))
            .cache_dir(cache)
            .clock(self.clock.clone())
            // Every run stays readable however far the clock moves.
            .retention(None)
            .stubs(self.stubs.clone())
            .storage_layer(move |inner| -> Arc<dyn Storage> {
                Arc::new(Crashing {
                    inner,
                    plan: plan.clone(),
                })
            });
        if let Some(timeout) = s.step_timeout {
            builder = builder.step_timeout(timeout);
        }
        if let Some(grants) = &s.grants {
            builder = builder.grants(grants.clone());
        }
        // One host opens at a time in a test binary: the first compiles
        // each component into the cache, the others (tests run in
        // parallel) read it instead of compiling it again alongside.
        static OPENING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = OPENING.lock().await;
        Ok(builder.start().await?)
    }

    /// The running host, for what the harness has no method for.
    pub fn host(&self) -> Result<&Host> {
        self.host.as_ref().ok_or(HarnessError::Stopped)
    }

    /// The fake clock.
    pub fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }

    /// The fake clock's time, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// How many times the host was stopped and opened again (crashes and
    /// [`Harness::restart`]s).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Start a run of `workflow_type` with workflow id `workflow_id` and
    /// `input` (any serializable value: an object binds the start
    /// handler's parameters by name), and wait until the runs settle.
    pub async fn start(
        &mut self,
        workflow_type: &str,
        workflow_id: &str,
        input: impl Serialize,
    ) -> Result<RunId> {
        self.start_with(
            workflow_type,
            StartOptions::new().workflow_id(workflow_id),
            input,
        )
        .await
    }

    /// [`Harness::start`] with the host's options (a workflow timeout, a
    /// pinned version, ...).
    pub async fn start_with(
        &mut self,
        workflow_type: &str,
        options: StartOptions,
        input: impl Serialize,
    ) -> Result<RunId> {
        let input = to_json(&input, "the workflow input")?;
        let started = self.host()?.start(workflow_type, &input, options).await?;
        self.settle().await?;
        Ok(started.run_id)
    }

    /// Send event `event` with `payload` to the active run of
    /// `workflow_id`, and wait until the runs settle.
    pub async fn send(
        &mut self,
        workflow_id: &str,
        event: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        let payload = to_json(&payload, "the event payload")?;
        self.host()?.send(workflow_id, event, &payload).await?;
        self.settle().await
    }

    /// Move the fake clock forward by `by`, fire every timer that became
    /// due, and wait until the runs settle.
    pub async fn advance(&mut self, by: Duration) -> Result<()> {
        self.clock.advance(by);
        self.settle().await
    }

    /// Drop the next commit (an activation's, or a timer's) as a host that
    /// crashed before it would: the host is stopped and opened again on the
    /// same store, and the activation executes again.
    pub fn crash_before_commit(&self) {
        self.crash.arm(0);
    }

    /// Let `n` commits through, then crash before the next one
    /// ([`Harness::crash_before_commit`]).
    pub fn crash_after(&self, n: u32) {
        self.crash.arm(n);
    }

    /// Stub task `task` of every workflow type: it does not run, and
    /// returns `outcome` (`Ok(value)`, or `Err((kind, message))`, an error
    /// the task's retry policy does not retry). The outcome is recorded as
    /// the task's attempt, as a real attempt's is.
    pub fn stub_task(&self, task: &str, outcome: StubOutcome) {
        self.stubs.set(None, task, outcome);
    }

    /// [`Harness::stub_task`] for the runs of one workflow type only (which
    /// wins over a stub of every type).
    pub fn stub_task_of(&self, workflow_type: &str, task: &str, outcome: StubOutcome) {
        self.stubs.set(Some(workflow_type), task, outcome);
    }

    /// Let task `task` run again.
    pub fn unstub_task(&self, task: &str) {
        self.stubs.clear(task);
    }

    /// Answer outbound requests to `url` with `response`, every time,
    /// instead of sending them: no grant is needed and nothing connects.
    /// `url` is `scheme://host[:port]/path` without the query string (the
    /// port only when not the scheme's default); a trailing `*` matches
    /// every URL it begins, a leading method (`"POST https://..."`) only
    /// requests of that method. The most specific stub answers. The
    /// request is recorded for the task attempt with the stub's status.
    pub fn stub_http(&self, url: &str, response: HttpResponse) {
        self.stubs.set_http(url, vec![response]);
    }

    /// [`Harness::stub_http`] with `responses` given in order to successive
    /// requests, the last one repeated (a failure, then a success: a retry).
    /// No responses: `url` is no longer stubbed.
    pub fn stub_http_responses(&self, url: &str, responses: Vec<HttpResponse>) {
        self.stubs.set_http(url, responses);
    }

    /// How many requests the stub of `url` (the same text as given to
    /// [`Harness::stub_http`]) answered.
    pub fn http_served(&self, url: &str) -> usize {
        self.stubs.served(url)
    }

    /// Stop the host (activations in progress are abandoned) and open a new
    /// one on the same store and clock, then wait until the runs settle.
    pub async fn restart(&mut self) -> Result<()> {
        self.reopen().await?;
        self.settle().await
    }

    async fn reopen(&mut self) -> Result<()> {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
        self.restarts += 1;
        self.host = Some(self.open().await?);
        Ok(())
    }

    /// Wait until every run has parked (waits, with no timer or workflow
    /// timeout due on the fake clock) or ended; a crash injected meanwhile
    /// restarts the host first. Bounded by the settle limit.
    pub async fn settle(&mut self) -> Result<()> {
        let began = Instant::now();
        loop {
            if self.crash.take_crashed() {
                self.reopen().await?;
                continue;
            }
            let busy = self.busy().await?;
            if busy.is_empty() && !self.crash.crashed() {
                return Ok(());
            }
            if began.elapsed() >= self.settings.settle_limit {
                let busy = busy.join(", ");
                return Err(HarnessError::NotSettled {
                    limit: self.settings.settle_limit,
                    busy,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// What still has work: runs running or waiting with something due
    /// (one snapshot of both statuses: two reads could miss a run a timer
    /// moved between them), then runs the host drives (read after the
    /// snapshot: an event a commit delivered to a waiting run has woken
    /// its driver before the committing driver let go).
    async fn busy(&self) -> Result<Vec<String>> {
        let now = self.clock.now_ms();
        let host = self.host()?;
        let mut busy: Vec<String> = host
            .live_runs()
            .await?
            .into_iter()
            .filter(|run| {
                run.status == RunStatus::Running
                    || run.timer.as_ref().is_some_and(|t| t.due_ms <= now)
                    || run.deadline_ms.is_some_and(|d| d <= now)
            })
            .map(|run| format!("`{}` ({})", run.workflow_id, run.status))
            .collect();
        let driven = host.driven_runs();
        if driven > 0 {
            busy.push(format!("{driven} run(s) with an activation under way"));
        }
        Ok(busy)
    }

    /// The newest run of `workflow_id`.
    pub async fn run(&self, workflow_id: &str) -> Result<RunRecord> {
        Ok(self.host()?.latest_run(workflow_id).await?)
    }

    /// The status of the newest run of `workflow_id`.
    pub async fn status(&self, workflow_id: &str) -> Result<RunStatus> {
        Ok(self.run(workflow_id).await?.status)
    }

    /// The result of the newest run of `workflow_id`, decoded into `T`;
    /// [`HarnessError::NotCompleted`] (with the run's error, if any) when it
    /// did not complete.
    pub async fn result<T: DeserializeOwned>(&self, workflow_id: &str) -> Result<T> {
        let run = self.run(workflow_id).await?;
        match (run.status, &run.result) {
            (RunStatus::Completed, Some(result)) => from_json(result.get(), "the run's result"),
            (status, _) => Err(HarnessError::NotCompleted {
                workflow_id: workflow_id.to_owned(),
                status,
                error: run.error,
            }),
        }
    }

    /// The error of the newest run of `workflow_id`, if it failed (or was
    /// cancelled or terminated).
    pub async fn error(&self, workflow_id: &str) -> Result<Option<WorkflowError>> {
        Ok(self.run(workflow_id).await?.error)
    }

    /// The committed store of the newest run of `workflow_id`.
    pub async fn store(&self, workflow_id: &str) -> Result<HashMap<String, serde_json::Value>> {
        let run = self.run(workflow_id).await?;
        Ok(self.host()?.store(run.run_id).await?)
    }

    /// One key of the store of the newest run of `workflow_id`, decoded;
    /// `None` when it is not set.
    pub async fn store_value<T: DeserializeOwned>(
        &self,
        workflow_id: &str,
        key: &str,
    ) -> Result<Option<T>> {
        match self.store(workflow_id).await?.remove(key) {
            None => Ok(None),
            Some(value) => {
                serde_json::from_value(value)
                    .map(Some)
                    .map_err(|source| HarnessError::Json {
                        what: format!("store key `{key}` of `{workflow_id}`"),
                        source,
                    })
            }
        }
    }

    /// The children of the newest run of `workflow_id`, oldest first.
    pub async fn children(&self, workflow_id: &str) -> Result<Vec<RunRecord>> {
        let run = self.run(workflow_id).await?;
        Ok(self.host()?.children(run.run_id).await?)
    }

    /// The history of the newest run of `workflow_id`, oldest first.
    pub async fn history(&self, workflow_id: &str) -> Result<Vec<HistoryRecord>> {
        let run = self.run(workflow_id).await?;
        Ok(self.host()?.history(run.run_id).await?)
    }

    /// The attempts of task `task` in the history of the newest run of
    /// `workflow_id` (stubbed ones too), oldest first.
    pub async fn task_attempts(&self, workflow_id: &str, task: &str) -> Result<Vec<TaskAttempt>> {
        Ok(self
            .history(workflow_id)
            .await?
            .into_iter()
            .filter_map(|r| match r.event {
                HistoryEvent::TaskAttempted(a) if a.name == task => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Ask query `name` of the newest run of `workflow_id` with `args`.
    pub async fn query(
        &self,
        workflow_id: &str,
        name: &str,
        args: impl Serialize,
    ) -> Result<serde_json::Value> {
        let run = self.run(workflow_id).await?;
        let args = to_json(&args, "the query arguments")?;
        Ok(self.host()?.query(run.run_id, name, &args).await?)
    }

    /// Stop the host and remove the temporary store.
    pub async fn shutdown(mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
    }
}

fn to_json(value: &impl Serialize, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|source| HarnessError::Json {
        what: format!("{what} does not encode"),
        source,
    })
}

fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| HarnessError::Json {
        what: format!("{what} does not decode: {text}"),
        source,
    })
}
