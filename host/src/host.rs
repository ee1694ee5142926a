//! [`Host`]: the public face of the engine. It ties the sandbox, the
//! plugins, storage and the scheduler together, validates requests at the
//! door (before anything is stored), and resumes every unfinished run when it
//! starts on an existing database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::defaults;
use crate::error::{Error, ErrorKind, Result, WorkflowError};
use crate::metrics::Metrics;
use crate::model::{
    Directive, HandlerKind, Pending, RunId, RunStatus, WorkflowTypeSpec, json_value, now_ms,
    parse_json,
};
use crate::plugins::{PluginDir, Plugins, ScanReport};
use crate::sandbox::{
    ActivationRequest, BoxFuture, ChildRequest, ChildResolution, ComponentVersion, HostServices,
    ParentIdentity, RunIdentity, Sandbox, SandboxConfig, ServiceError, entry_bytes,
};
use crate::scheduler::{self, LiveRun};
use crate::storage::{CreateError, Delivery, HistoryRecord, InboxKind, NewRun, RunRecord, Storage};

/// Configures and starts a [`Host`]. Every setting has a default; a value
/// out of range is refused by [`HostBuilder::start`] with the setting named.
///
/// ```no_run
/// # async fn f() -> wasmflow_host::Result<()> {
/// use std::time::Duration;
/// let host = wasmflow_host::Host::builder("wasmflow.db")
///     .plugins("./plugins")
///     .step_timeout(Duration::from_secs(30))
///     .plugin_memory_limit("reports.wasm", 256 << 20)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HostBuilder {
    db: PathBuf,
    plugins: Option<PathBuf>,
    sandbox: SandboxConfig,
    step_timeout: Duration,
    plugin_memory: HashMap<String, usize>,
    max_inbox_len: u64,
    max_history_len: u64,
}

impl HostBuilder {
    /// The plugins directory (`*.wasm` components). Without one the host
    /// knows no workflow types.
    pub fn plugins(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugins = Some(dir.into());
        self
    }

    /// The activation deadline of handlers that do not set their own
    /// (default 10 s).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// Linear memory cap per instance (default 64 MiB).
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.sandbox.memory_bytes = bytes;
        self
    }

    /// A lower memory cap for the instances of one plugin file (by file
    /// name, e.g. `reports.wasm`).
    pub fn plugin_memory_limit(mut self, file: impl Into<String>, bytes: usize) -> Self {
        self.plugin_memory.insert(file.into(), bytes);
        self
    }

    /// How many instances may exist at once (default 256); activations
    /// beyond that wait for a slot.
    pub fn instance_slots(mut self, slots: u32) -> Self {
        self.sandbox.instance_slots = slots;
        self
    }

    /// The largest JSON value a guest may store, return or send (default
    /// 1 MiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.sandbox.max_value_bytes = bytes;
        self
    }

    /// The largest total size of a run's store, keys and values (default
    /// 16 MiB).
    pub fn max_store_bytes(mut self, bytes: usize) -> Self {
        self.sandbox.max_store_bytes = bytes;
        self
    }

    /// Children one activation may start (default 10,000).
    pub fn max_children_per_activation(mut self, n: usize) -> Self {
        self.sandbox.max_children_per_activation = n;
        self
    }

    /// Events one activation may send to its parent (default 10,000).
    pub fn max_events_per_activation(mut self, n: usize) -> Self {
        self.sandbox.max_events_per_activation = n;
        self
    }

    /// Events a run's inbox may hold (default 10,000).
    pub fn max_inbox_len(mut self, n: u64) -> Self {
        self.max_inbox_len = n;
        self
    }

    /// History entries a run may have (default 1,000,000).
    pub fn max_history_len(mut self, n: u64) -> Self {
        self.max_history_len = n;
        self
    }

    /// Where compiled components are cached so a restart does not compile
    /// them again (default: `<db>.cache` beside the database).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sandbox.cache_dir = Some(dir.into());
        self
    }

    /// The deadline of a component's `describe` when it is loaded (default
    /// 5 s).
    pub fn describe_timeout(mut self, timeout: Duration) -> Self {
        self.sandbox.describe_timeout = timeout;
        self
    }

    /// Run without memory caps, deadlines and time-slicing: only to measure
    /// what they cost (`cargo xtask bench`).
    #[doc(hidden)]
    pub fn without_limits_for_benchmarks(mut self) -> Self {
        self.sandbox.enforce_limits = false;
        self
    }

    fn check(&self) -> Result<()> {
        fn range<T: PartialOrd + std::fmt::Debug>(
            setting: &'static str,
            value: T,
            lo: T,
            hi: T,
            unit: &str,
        ) -> Result<()> {
            if value < lo || value > hi {
                return Err(Error::Config {
                    setting,
                    reason: format!("{value:?}{unit} is not between {lo:?} and {hi:?}{unit}"),
                });
            }
            Ok(())
        }
        let c = &self.sandbox;
        range(
            "step_timeout",
            self.step_timeout,
            Duration::from_millis(1),
            Duration::from_secs(24 * 3600),
            "",
        )?;
        range(
            "describe_timeout",
            c.describe_timeout,
            Duration::from_millis(1),
            Duration::from_secs(600),
            "",
        )?;
        range("memory_limit", c.memory_bytes, 1 << 20, 4 << 30, " bytes")?;
        for (file, &bytes) in &self.plugin_memory {
            if !(1 << 20..=c.memory_bytes).contains(&bytes) {
                return Err(Error::Config {
                    setting: "plugin_memory_limit",
                    reason: format!(
                        "{bytes} bytes for `{file}` is not between 1 MiB and the global memory_limit ({} bytes)",
                        c.memory_bytes
                    ),
                });
            }
        }
        range("instance_slots", c.instance_slots, 1, 10_000, "")?;
        range("max_value_bytes", c.max_value_bytes, 16, 64 << 20, " bytes")?;
        range("max_store_bytes", c.max_store_bytes, 16, 1 << 30, " bytes")?;
        if c.max_store_bytes < c.max_value_bytes {
            return Err(Error::Config {
                setting: "max_store_bytes",
                reason: format!(
                    "{} bytes is less than max_value_bytes ({} bytes)",
                    c.max_store_bytes, c.max_value_bytes
                ),
            });
        }
        range(
            "max_children_per_activation",
            c.max_children_per_activation,
            0,
            1_000_000,
            "",
        )?;
        range(
            "max_events_per_activation",
            c.max_events_per_activation,
            0,
            1_000_000,
            "",
        )?;
        range("max_inbox_len", self.max_inbox_len, 1, 100_000_000, "")?;
        range(
            "max_history_len",
            self.max_history_len,
            100,
            1_000_000_000,
            "",
        )?;
        Ok(())
    }

    /// Open the database, load the plugins and resume unfinished runs.
    pub async fn start(mut self) -> Result<Host> {
        self.check()?;
        if self.sandbox.cache_dir.is_none() {
            let mut dir = self.db.clone().into_os_string();
            dir.push(".cache");
            self.sandbox.cache_dir = Some(dir.into());
        }
        let sandbox = Sandbox::new(self.sandbox).map_err(Error::Engine)?;
        let storage = Storage::open(&self.db, self.max_inbox_len)?;
        let plugin_dir = self
            .plugins
            .map(|dir| PluginDir::new(dir, self.plugin_memory.clone()));
        let inner = Arc::new(Inner {
            sandbox,
            storage,
            plugin_dir,
            plugin_memory: self.plugin_memory,
            step_timeout: self.step_timeout,
            max_history_len: self.max_history_len,
            metrics: Metrics::default(),
            drivers: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        if let Some(dir) = &inner.plugin_dir {
            let report = dir.scan(&inner.sandbox, true).await?;
            inner.publish(report).await?;
            let live = inner.storage.live_versions().await?;
            let mut keep: Vec<String> = live.into_iter().map(|l| l.version).collect();
            keep.extend(dir.snapshot().files().map(|(_, c, _)| c.hash.clone()));
            inner.storage.prune_components(keep).await?;
            watch(&inner);
        }
        inner.resume().await?;
        Ok(Host { inner })
    }
}

/// Options of [`Host::start`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    workflow_id: Option<String>,
    timeout: Option<Duration>,
    return_existing: bool,
}

impl StartOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The caller-chosen workflow id (default: the run id). At most one run
    /// per workflow id is active at a time.
    pub fn workflow_id(mut self, id: impl Into<String>) -> Self {
        self.workflow_id = Some(id.into());
        self
    }

    /// The workflow timeout: the run fails with `WorkflowTimeout` if it has
    /// not ended by then.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// When the workflow id already has an active run, return that run
    /// (`Started::existing`) instead of a `WorkflowAlreadyRunning` error.
    pub fn return_existing(mut self) -> Self {
        self.return_existing = true;
        self
    }
}

/// A started run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub run_id: RunId,
    pub workflow_id: String,
    /// The workflow id already had this active run (with
    /// [`StartOptions::return_existing`]); nothing was started.
    pub existing: bool,
}

/// A run and its children, recursively.
#[derive(Debug, Clone)]
pub struct RunTree {
    pub run: RunRecord,
    pub children: Vec<RunTree>,
}

/// A running wasmflow host.
///
/// Dropping it stops its drivers: activations in progress are abandoned and
/// executed again by the next host that opens the database.
pub struct Host {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub sandbox: Sandbox,
    pub storage: Storage,
    plugin_dir: Option<PluginDir>,
    /// Memory caps of plugin files, by file name.
    plugin_memory: HashMap<String, usize>,
    pub step_timeout: Duration,
    pub max_history_len: u64,
    pub metrics: Metrics,
    /// Runs with a driver; `true` when it should look at the run again.
    pub drivers: Mutex<HashMap<RunId, scheduler::Driver>>,
    /// Callers waiting for runs to end.
    pub watchers: Mutex<HashMap<RunId, Vec<oneshot::Sender<()>>>>,
    /// Every component version this host has loaded, by hash: runs pinned
    /// to a version whose file was replaced or removed keep finding it.
    versions: Mutex<HashMap<String, Arc<ComponentVersion>>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

impl Host {
    /// Start configuring a host on the SQLite database at `db`.
    pub fn builder(db: impl Into<PathBuf>) -> HostBuilder {
        HostBuilder {
            db: db.into(),
            plugins: None,
            sandbox: SandboxConfig::default(),
            step_timeout: defaults::STEP_TIMEOUT,
            plugin_memory: HashMap::new(),
            max_inbox_len: defaults::MAX_INBOX_LEN,
            max_history_len: defaults::MAX_HISTORY_LEN,
        }
    }

    /// The workflow types the plugins provide now, and the rejected files.
    pub fn plugins(&self) -> Arc<Plugins> {
        self.inner.plugins()
    }

    /// Start a run of `workflow_type` with `input` (JSON text: an object whose
    /// keys bind to the start handler's parameters). Everything is validated
    /// before anything is stored; the run is durable when this returns.
    pub async fn start(
        &self,
        workflow_type: &str,
        input: &str,
        options: StartOptions,
    ) -> Result<Started> {
        let plugins = self.inner.plugins();
        let entry = plugins.get(workflow_type)?;
        let spec = entry.spec.clone();
        let value: serde_json::Value = serde_json::from_str(input).map_err(|e| {
            WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!("the workflow input is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!(
                    "the workflow input must be a JSON object, found {}",
                    wasmflow_payload::json_type(&value)
                ),
            )
            .into());
        }
        let start = spec.start().ok_or_else(|| {
            WorkflowError::new(
                ErrorKind::UnknownStep,
                format!("workflow type `{workflow_type}` has no start handler"),
            )
        })?;
        start.check_payload(&value)?;
        let input = parse_json(input, "the workflow input")?;

        let run_id = RunId::new();
        let workflow_id = options.workflow_id.unwrap_or_else(|| run_id.to_string());
        if workflow_id.is_empty() || workflow_id.len() > 255 {
            return Err(WorkflowError::new(
                ErrorKind::InvalidPayload,
                "a workflow id must be 1 to 255 bytes long",
            )
            .into());
        }
        let pending = Pending {
            kind: HandlerKind::Start,
            handler: start.name.clone(),
            input: input.clone(),
        };
        let at_ms = now_ms();
        let deadline_ms = options
            .timeout
            .map(|t| at_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let new = NewRun {
            run_id,
            workflow_id: workflow_id.clone(),
            workflow_type: workflow_type.to_owned(),
            version: entry.component.hash.clone(),
            parent: None,
            input,
            pending: pending.clone(),
            deadline_ms,
            at_ms,
        };
        match self.inner.storage.create_run(new).await {
            Ok(()) => {}
            Err(CreateError::AlreadyActive {
                workflow_id,
                run_id,
            }) if options.return_existing => {
                return Ok(Started {
                    run_id,
                    workflow_id,
                    existing: true,
                });
            }
            Err(CreateError::AlreadyActive {
                workflow_id,
                run_id,
            }) => {
                return Err(WorkflowError::new(
                    ErrorKind::WorkflowAlreadyRunning,
                    format!("workflow id `{workflow_id}` already has an active run `{run_id}`"),
                )
                .with_details(serde_json::json!({"run_id": run_id.to_string()}))
                .into());
            }
            Err(CreateError::Storage(e)) => return Err(e.into()),
        }
        let live = LiveRun {
            run_id,
            identity: Arc::new(RunIdentity {
                workflow_type: workflow_type.to_owned(),
                workflow_id: workflow_id.clone(),
                run_id: run_id.to_string(),
                version: entry.component.hash.clone(),
                parent: None,
            }),
            component: entry.component.clone(),
            spec,
            seq: 0,
            pending,
            store: Arc::default(),
            store_bytes: 0,
            history_len: 1,
        };
        if let Some(due_ms) = deadline_ms {
            scheduler::arm_deadline(&self.inner, run_id, due_ms);
        }
        scheduler::wake(&self.inner, run_id, Some(live));
        self.inner.metrics.run_started(workflow_type);
        Ok(Started {
            run_id,
            workflow_id,
            existing: false,
        })
    }

    /// Wait until the run reaches a terminal state and return it.
    pub async fn wait(&self, run_id: RunId) -> Result<RunRecord> {
        loop {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut watchers) = self.inner.watchers.lock() {
                watchers.entry(run_id).or_default().push(tx);
            }
            let record = self
                .inner
                .storage
                .run(run_id)
                .await?
                .ok_or_else(|| Error::RunNotFound(run_id.to_string()))?;
            if record.status.is_terminal() {
                return Ok(record);
            }
            tokio::select! {
                _ = rx => {}
                _ = self.inner.shutdown.cancelled() => return Err(Error::ShuttingDown),
            }
        }
    }

    /// The run as stored now.
    pub async fn run(&self, run_id: RunId) -> Result<RunRecord> {
        self.inner
            .storage
            .run(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_string()))
    }

    /// The newest run of a workflow id.
    pub async fn latest_run(&self, workflow_id: &str) -> Result<RunRecord> {
        self.inner
            .storage
            .latest_run(workflow_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(workflow_id.to_owned()))
    }

    /// Check, without sending it, that `event` with `payload` (JSON text;
    /// empty for none) would be accepted by a new run of `workflow_type`.
    pub fn check_event(&self, workflow_type: &str, event: &str, payload: &str) -> Result<()> {
        let plugins = self.inner.plugins();
        let entry = plugins.get(workflow_type)?;
        let payload = if payload.trim().is_empty() {
            "null"
        } else {
            payload
        };
        check_event(&entry.spec, event, payload)?;
        Ok(())
    }

    /// Send an event to the latest run of `workflow_id`. The event name must
    /// have a handler in the run's version and the payload (JSON text; empty
    /// for none) must fit it; the run must not have ended. Returns once the
    /// event is durably in the run's inbox.
    pub async fn send(&self, workflow_id: &str, event: &str, payload: &str) -> Result<RunId> {
        let run = self.latest_run(workflow_id).await?;
        self.deliver(run, event, payload).await
    }

    /// [`Host::send`] to a run by its run id.
    pub async fn send_to_run(&self, run_id: RunId, event: &str, payload: &str) -> Result<RunId> {
        let run = self.run(run_id).await?;
        self.deliver(run, event, payload).await
    }

    async fn deliver(&self, run: RunRecord, event: &str, payload: &str) -> Result<RunId> {
        if run.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id: run.run_id.to_string(),
                status: run.status,
            });
        }
        let payload = if payload.trim().is_empty() {
            "null"
        } else {
            payload
        };
        let spec = self.inner.spec(&run.version, &run.workflow_type).await?;
        let payload = check_event(&spec, event, payload)?;
        let effects = self
            .inner
            .storage
            .deliver(Delivery {
                run_id: run.run_id,
                name: event.to_owned(),
                payload,
                kind: InboxKind::Event,
                source: "client".to_owned(),
            })
            .await?;
        scheduler::apply_effects(&self.inner, effects);
        Ok(run.run_id)
    }

    /// Cancel the latest run of `workflow_id`: a waiting run at once, a run
    /// in an activation when that activation ends (its directive is
    /// discarded). Its children's close policies apply.
    pub async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<RunId> {
        let run = self.latest_run(workflow_id).await?;
        let effects = self
            .inner
            .storage
            .cancel(run.run_id, reason.to_owned(), now_ms())
            .await?;
        scheduler::apply_effects(&self.inner, effects);
        Ok(run.run_id)
    }

    /// End the latest run of `workflow_id` at once, in any live state. Its
    /// children's close policies apply.
    pub async fn terminate(&self, workflow_id: &str, reason: &str) -> Result<RunId> {
        let run = self.latest_run(workflow_id).await?;
        let effects = self
            .inner
            .storage
            .terminate(run.run_id, reason.to_owned(), now_ms())
            .await?;
        scheduler::apply_effects(&self.inner, effects);
        Ok(run.run_id)
    }

    /// Move the waiting runs of `workflow_type` to the version the plugins
    /// directory provides now, at their next activation, where every handler
    /// they can still reach exists in it; the others stay pinned and are
    /// listed with the reason (see the README's "Upgrading running
    /// workflows").
    pub async fn upgrade(&self, workflow_type: &str) -> Result<crate::upgrade::UpgradeReport> {
        let plugins = self.inner.plugins();
        crate::upgrade::upgrade(&self.inner.storage, &plugins, workflow_type, |version| {
            let inner = &self.inner;
            async move { Ok(inner.spec(&version, workflow_type).await?) }
        })
        .await
    }

    /// The runs `run_id` started, oldest first.
    pub async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>> {
        Ok(self.inner.storage.children(run_id).await?)
    }

    /// A run of `workflow_id`: `run_id` if given (it must belong to that
    /// workflow id), else the latest.
    pub async fn find_run(&self, workflow_id: &str, run_id: Option<RunId>) -> Result<RunRecord> {
        match run_id {
            None => self.latest_run(workflow_id).await,
            Some(run_id) => {
                let run = self.run(run_id).await?;
                if run.workflow_id != workflow_id {
                    return Err(Error::RunNotFound(format!("{workflow_id}/{run_id}")));
                }
                Ok(run)
            }
        }
    }

    /// Wait up to `limit` for the run to end; the run as it is then.
    pub async fn wait_for(&self, run_id: RunId, limit: Duration) -> Result<RunRecord> {
        match tokio::time::timeout(limit, self.wait(run_id)).await {
            Ok(done) => done,
            Err(_) => self.run(run_id).await,
        }
    }

    /// Runs, newest first, optionally of one type and status; at most
    /// `limit`.
    pub async fn list(
        &self,
        workflow_type: Option<&str>,
        status: Option<RunStatus>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        Ok(self
            .inner
            .storage
            .list_runs(workflow_type.map(str::to_owned), status, limit)
            .await?)
    }

    /// The run with its children and their children.
    pub async fn tree(&self, run_id: RunId) -> Result<RunTree> {
        let run = self.run(run_id).await?;
        let mut root = RunTree {
            run,
            children: Vec::new(),
        };
        // Breadth first, without recursion in async code.
        let mut queue: Vec<Vec<usize>> = vec![vec![]];
        while let Some(path) = queue.pop() {
            let mut node = &mut root;
            for &i in &path {
                node = &mut node.children[i];
            }
            let children = self.inner.storage.children(node.run.run_id).await?;
            for (i, child) in children.into_iter().enumerate() {
                node.children.push(RunTree {
                    run: child,
                    children: Vec::new(),
                });
                let mut child_path = path.clone();
                child_path.push(i);
                queue.push(child_path);
            }
        }
        Ok(root)
    }

    /// Run the query handler `name` of a run with `args` (JSON text, bound
    /// to its parameters like an event payload), in a fresh instance, on
    /// the run's committed store, read-only. Live and finished runs alike.
    pub async fn query(&self, run_id: RunId, name: &str, args: &str) -> Result<serde_json::Value> {
        let run = self.run(run_id).await?;
        let component = self.inner.component(&run.version).await?;
        let spec = component
            .workflow_type(&run.workflow_type)
            .cloned()
            .ok_or_else(|| {
                Error::Engine(format!(
                    "component version `{}` does not provide `{}`",
                    run.version, run.workflow_type
                ))
            })?;
        let handler = spec.handler(HandlerKind::Query, name).ok_or_else(|| {
            WorkflowError::new(
                ErrorKind::UnknownQuery,
                format!(
                    "workflow type `{}` has no query `{name}`",
                    run.workflow_type
                ),
            )
        })?;
        let args = if args.trim().is_empty() { "null" } else { args };
        let input = parse_json(args, &format!("the arguments of query `{name}`"))?;
        let value: serde_json::Value = serde_json::from_str(input.get())
            .map_err(|e| WorkflowError::new(ErrorKind::InvalidPayload, e.to_string()))?;
        handler.check_payload(&value)?;
        let store = self.inner.storage.store(run_id).await?;
        let store_bytes = store.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        let request = ActivationRequest {
            run: Arc::new(self.inner.identity(&run).await?),
            spec: spec.clone(),
            services: self.inner.clone(),
            kind: HandlerKind::Query,
            handler: name.to_owned(),
            input,
            sequence: run.seq,
            store: Arc::new(store),
            store_bytes,
            timeout: handler.timeout.unwrap_or(self.inner.step_timeout),
        };
        let outcome = self.inner.sandbox.activate(&component, request).await;
        if let Some(fault) = outcome.host_fault {
            return Err(Error::Engine(fault));
        }
        match outcome.result {
            Ok(Directive::Complete(value)) => Ok(json_value(&value)),
            Ok(other) => Err(Error::QueryFailed(WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!("query `{name}` returned a directive instead of a value: {other:?}"),
            ))),
            Err(e) => Err(Error::QueryFailed(e)),
        }
    }

    /// The versions live runs are pinned to, by workflow type.
    pub async fn live_versions(&self) -> Result<Vec<crate::storage::LiveVersion>> {
        Ok(self.inner.storage.live_versions().await?)
    }

    /// The host's metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let depth = self.inner.storage.inbox_depth().await?;
        Ok(self.inner.metrics.encode(depth))
    }

    /// The run's history, oldest first.
    pub async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>> {
        Ok(self.inner.storage.history(run_id).await?)
    }

    /// The run's committed store.
    pub async fn store(&self, run_id: RunId) -> Result<HashMap<String, serde_json::Value>> {
        let store = self.inner.storage.store(run_id).await?;
        Ok(store
            .into_iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(v.get()).unwrap_or(serde_json::Value::Null);
                (k, value)
            })
            .collect())
    }

    /// Stop the drivers and wait for them: activations in progress are
    /// abandoned (they run again on the next start), nothing committed is
    /// lost.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
    }
}

impl Inner {
    /// Resume every unfinished run: running ones get a driver, waiting ones
    /// their timer.
    async fn resume(self: &Arc<Self>) -> Result<()> {
        let runs = self.storage.live_runs().await?;
        if !runs.is_empty() {
            tracing::info!(runs = runs.len(), "resuming unfinished runs");
        }
        for run in runs {
            if let Some(due_ms) = run.deadline_ms {
                scheduler::arm_deadline(self, run.run_id, due_ms);
            }
            match run.status {
                RunStatus::Running => scheduler::wake(self, run.run_id, None),
                RunStatus::Waiting => {
                    if let Some(timer) = run.timer {
                        scheduler::arm_timer(self, run.run_id, run.seq, timer);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The current plugins snapshot.
    pub(crate) fn plugins(&self) -> Arc<Plugins> {
        match &self.plugin_dir {
            Some(dir) => dir.snapshot(),
            None => Arc::default(),
        }
    }

    /// A loaded version by hash, if this host has it.
    pub(crate) fn loaded_version(&self, version: &str) -> Option<Arc<ComponentVersion>> {
        self.versions.lock().ok()?.get(version).cloned()
    }

    /// Keep the versions a scan loaded, in memory and in the database, so
    /// runs pinned to them can finish even when their file is replaced or
    /// gone, after a restart too.
    async fn publish(&self, report: ScanReport) -> Result<()> {
        for _ in &report.rejected {
            self.metrics.plugin_rejected();
        }
        for (file, component, bytes) in report.loaded {
            self.metrics.plugin_loaded();
            if let Ok(mut versions) = self.versions.lock() {
                versions.insert(component.hash.clone(), component.clone());
            }
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            self.storage
                .save_component(&component.hash, name, bytes, now_ms())
                .await?;
        }
        Ok(())
    }

    /// The component a run is pinned to: one this host loaded, or the copy
    /// kept in the database.
    async fn component(&self, version: &str) -> Result<Arc<ComponentVersion>> {
        if let Some(c) = self.loaded_version(version) {
            return Ok(c);
        }
        let (bytes, file) = self.storage.component(version).await?.ok_or_else(|| {
            Error::Engine(format!(
                "component version `{version}` is not in the database"
            ))
        })?;
        let memory = file.and_then(|f| self.plugin_memory.get(&f).copied());
        let component = self
            .sandbox
            .load(bytes.into(), memory)
            .await
            .map_err(|e| Error::Engine(format!("component version `{version}`: {e}")))?;
        let component = Arc::new(component);
        if let Ok(mut versions) = self.versions.lock() {
            versions
                .entry(version.to_owned())
                .or_insert_with(|| component.clone());
        }
        Ok(component)
    }

    /// Load what a driver needs for a running run; `None` if it is not
    /// running.
    pub(crate) async fn load_live(&self, run_id: RunId) -> Result<Option<LiveRun>> {
        let Some(record) = self.storage.run(run_id).await? else {
            return Ok(None);
        };
        let (RunStatus::Running, Some(pending)) = (record.status, record.pending.clone()) else {
            return Ok(None);
        };
        let component = self.component(&record.version).await?;
        let spec = component
            .workflow_type(&record.workflow_type)
            .cloned()
            .ok_or_else(|| {
                Error::Engine(format!(
                    "component version `{}` does not provide workflow type `{}`",
                    record.version, record.workflow_type
                ))
            })?;
        let identity = self.identity(&record).await?;
        let store = self.storage.store(run_id).await?;
        let store_bytes = store.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        let history_len = self.storage.history_len(run_id).await?;
        Ok(Some(LiveRun {
            run_id,
            identity: Arc::new(identity),
            component,
            spec,
            seq: record.seq,
            pending,
            store: Arc::new(store),
            store_bytes,
            history_len,
        }))
    }

    /// Who a run is, as its guest sees it.
    async fn identity(&self, record: &RunRecord) -> Result<RunIdentity> {
        let parent = match record.parent_run_id {
            Some(parent_id) => self.storage.run(parent_id).await?.map(|p| ParentIdentity {
                workflow_type: p.workflow_type,
                workflow_id: p.workflow_id,
                run_id: p.run_id.to_string(),
                version: p.version,
            }),
            None => None,
        };
        Ok(RunIdentity {
            workflow_type: record.workflow_type.clone(),
            workflow_id: record.workflow_id.clone(),
            run_id: record.run_id.to_string(),
            version: record.version.clone(),
            parent,
        })
    }

    /// The spec of `workflow_type` in component `version`.
    async fn spec(
        &self,
        version: &str,
        workflow_type: &str,
    ) -> Result<Arc<WorkflowTypeSpec>, ServiceError> {
        let component = self
            .component(version)
            .await
            .map_err(|e| ServiceError::Host(e.to_string()))?;
        component
            .workflow_type(workflow_type)
            .cloned()
            .ok_or_else(|| {
                ServiceError::Host(format!(
                    "component version `{version}` does not provide workflow type `{workflow_type}`"
                ))
            })
    }

    /// Wake everyone waiting for `run_id` to end.
    pub(crate) fn notify_terminal(&self, run_id: RunId) {
        let waiting = self
            .watchers
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&run_id));
        for tx in waiting.into_iter().flatten() {
            let _ = tx.send(());
        }
    }
}

/// Check an event against the handlers of `spec`: the name has an event
/// handler and the payload (JSON text) fits its parameters.
fn check_event(
    spec: &WorkflowTypeSpec,
    event: &str,
    payload: &str,
) -> std::result::Result<crate::model::Json, WorkflowError> {
    let handler = spec.handler(HandlerKind::Event, event).ok_or_else(|| {
        WorkflowError::new(
            ErrorKind::UnknownEvent,
            format!(
                "workflow type `{}` has no handler for event `{event}`",
                spec.name
            ),
        )
    })?;
    let json = parse_json(payload, &format!("the payload of event `{event}`"))?;
    let value: serde_json::Value = serde_json::from_str(json.get())
        .map_err(|e| WorkflowError::new(ErrorKind::InvalidPayload, e.to_string()))?;
    handler.check_payload(&value)?;
    Ok(json)
}

impl HostServices for Inner {
    fn resolve_child<'a>(
        &'a self,
        parent_run_id: &'a str,
        request: &'a ChildRequest,
    ) -> BoxFuture<'a, std::result::Result<ChildResolution, ServiceError>> {
        Box::pin(async move {
            let plugins = self.plugins();
            let entry = plugins.get(&request.workflow_type)?;
            let start = entry.spec.start().ok_or_else(|| {
                ServiceError::Host(format!(
                    "workflow type `{}` has no start handler",
                    request.workflow_type
                ))
            })?;
            start.check_payload(&request.input).map_err(|mut e| {
                e.message = format!("child `{}`: {}", request.workflow_id, e.message);
                e
            })?;
            let active = self
                .storage
                .active_run(&request.workflow_id)
                .await
                .map_err(|e| ServiceError::Host(e.to_string()))?;
            match active {
                Some(run) if run.parent_run_id.map(|p| p.to_string()).as_deref() == Some(parent_run_id) => {
                    Ok(ChildResolution::Existing { run_id: run.run_id })
                }
                Some(run) => Err(ServiceError::Guest(
                    WorkflowError::new(
                        ErrorKind::WorkflowAlreadyRunning,
                        format!(
                            "workflow id `{}` is held by active run `{}`, which is not a child of this run",
                            request.workflow_id, run.run_id
                        ),
                    )
                    .with_details(serde_json::json!({"run_id": run.run_id.to_string()})),
                )),
                None => Ok(ChildResolution::New {
                    version: entry.component.hash.clone(),
                    start_handler: start.name.clone(),
                }),
            }
        })
    }

    fn check_parent_event<'a>(
        &'a self,
        parent: &'a ParentIdentity,
        event: &'a str,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, std::result::Result<(), ServiceError>> {
        Box::pin(async move {
            let spec = self.spec(&parent.version, &parent.workflow_type).await?;
            let handler = spec.handler(HandlerKind::Event, event).ok_or_else(|| {
                WorkflowError::new(
                    ErrorKind::UnknownEvent,
                    format!(
                        "the parent's workflow type `{}` has no handler for event `{event}`",
                        spec.name
                    ),
                )
            })?;
            handler.check_payload(payload)?;
            Ok(())
        })
    }
}

/// How often the plugins directory is looked at. A file is loaded once it
/// held still for one period, so a new plugin is startable within about two.
const WATCH_PERIOD: Duration = Duration::from_millis(200);

/// Watch the plugins directory for the host's lifetime.
fn watch(inner: &Arc<Inner>) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let Some(dir) = &inner.plugin_dir else { return };
        loop {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(WATCH_PERIOD) => {}
            }
            match dir.scan(&inner.sandbox, false).await {
                Ok(report) => {
                    if let Err(e) = inner.publish(report).await {
                        tracing::error!(error = %e, "cannot keep a plugin version");
                    }
                }
                Err(e) => tracing::warn!(dir = %dir.path().display(), error = %e, "cannot scan the plugins directory"),
            }
        }
    });
}
