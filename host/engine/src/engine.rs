//! The engine: the one owner of scheduling (SPEC 3).
//!
//! [`Engine`] owns everything that moves runs: one driver task per run with
//! work, which executes the run's pending activation in a fresh sandbox
//! instance, turns the outcome into a [`StateCommit`] ([`plan`]), has
//! storage commit it, and carries on until the run parks (waits) or ends; the
//! durable wait timers and workflow timeouts; the callers waiting for runs to
//! end; the component versions runs are pinned to; and the plugins directory
//! watcher. At most one driver exists per run in a host, so a run executes
//! one activation at a time; concurrency comes from many runs. Timers are
//! re-armed from storage when a host starts.
//!
//! Its fields are private to this module: [`crate::Host`] and the rest of
//! the crate use its methods. It knows neither wasmtime nor SQL: it talks to
//! the sandbox and storage through their interfaces (`dyn Sandbox`,
//! `dyn Storage`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use wasmflow_core::activation::{
    ActivationOutcome, ActivationRequest, BoxFuture, ChildRequest, ChildResolution,
    ComponentVersion, HostServices, ParentIdentity, RunIdentity, Sandbox, ServiceError, StoreMap,
    StubRequest, StubResponse, Stubs, entry_bytes,
};
use wasmflow_core::clock::Clock;
use wasmflow_core::grant::{GrantTable, Grants};
use wasmflow_core::journal::{Journal, JournalEntry, TaskResult};
use wasmflow_core::model::{HistoryEvent, Pending, RunId, WorkflowTypeSpec, json_null, now_ms};
use wasmflow_core::plan::{NewRun, NextState, Timer, plan};
use wasmflow_core::{ErrorKind, HandlerKind, RunStatus, WorkflowError};
use wasmflow_storage::{CommitOutcome, Effects, Resume, RunRecord, StateCommit, Storage};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::plugins::{Deployed, PluginDir, Plugins, ScanReport};
use crate::telemetry::{self, SpanSink, Spans};

/// What an engine is started with besides its storage and sandbox.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The plugins directory, if any.
    pub plugins: Option<std::path::PathBuf>,
    /// Memory caps of plugin files, by file name.
    pub plugin_memory: HashMap<String, usize>,
    /// The activation deadline of handlers without their own.
    pub step_timeout: Duration,
    /// History entries a run may have.
    pub max_history_len: u64,
    /// What plugins may reach (outbound HTTP, secrets).
    pub grants: GrantTable,
    /// How long a claim on a run lasts without renewal (hosts sharing a
    /// database take a dead host's runs over after it).
    pub claim_lease: Duration,
    /// Where the spans of runs, activations and tasks go; `None`: no
    /// spans are made.
    pub spans: Option<SpanSink>,
    /// The time of runs: what timers, workflow timeouts, task retry delays
    /// and the guest's `now` read ([`SystemClock`] in a real host).
    pub clock: Arc<dyn Clock>,
    /// Task outcomes and outbound responses a test harness gives instead
    /// of running the tasks and sending the requests; `None` in a real host.
    pub stubs: Option<Arc<dyn Stubs>>,
    /// Finished runs older than this are deleted in the background
    /// (module `retention`); `None`: kept for ever.
    pub retention: Option<Duration>,
}

/// The system clock: time passes by itself, timers sleep on tokio's.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn sleep_until(&self, due_ms: u64) -> BoxFuture<'static, ()> {
        let wait = Duration::from_millis(due_ms.saturating_sub(now_ms()));
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The scheduling core behind a [`crate::Host`].
pub(crate) struct Engine {
    sandbox: Arc<dyn Sandbox>,
    storage: Arc<dyn Storage>,
    plugin_dir: Option<PluginDir>,
    /// Memory caps of plugin files, by file name.
    plugin_memory: HashMap<String, usize>,
    step_timeout: Duration,
    max_history_len: u64,
    grants: GrantTable,
    claim_lease: Duration,
    retention: Option<Duration>,
    /// Other hosts share the database: watch for their notices and for the
    /// runs of hosts that died.
    shared: bool,
    /// The plugin file each loaded version came from, for its grants.
    version_files: Mutex<HashMap<String, Option<String>>>,
    metrics: Metrics,
    /// The span emitter, with a span sink.
    spans: Option<Arc<Spans>>,
    /// The time of runs.
    clock: Arc<dyn Clock>,
    stubs: Option<Arc<dyn Stubs>>,
    /// Runs with a driver; `true` when it should look at the run again.
    drivers: Mutex<HashMap<RunId, Driver>>,
    /// Callers waiting for runs to end.
    watchers: Mutex<HashMap<RunId, Vec<oneshot::Sender<()>>>>,
    /// Every component version this host has loaded, by hash: runs pinned
    /// to a version whose file was replaced or removed keep finding it.
    versions: Mutex<HashMap<String, Arc<ComponentVersion>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Load the plugins, keep their versions, and resume every unfinished
    /// run of `storage`.
    pub(crate) async fn start(
        config: EngineConfig,
        storage: Arc<dyn Storage>,
        sandbox: Arc<dyn Sandbox>,
    ) -> Result<Arc<Engine>> {
        let plugin_dir = config
            .plugins
            .map(|dir| PluginDir::new(dir, config.plugin_memory.clone()));
        let engine = Arc::new(Engine {
            sandbox,
            shared: storage.notices().is_some(),
            storage,
            plugin_dir,
            plugin_memory: config.plugin_memory,
            step_timeout: config.step_timeout,
            max_history_len: config.max_history_len,
            grants: config.grants,
            claim_lease: config.claim_lease,
            retention: config.retention,
            version_files: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            spans: config.spans.map(Spans::new),
            clock: config.clock,
            stubs: config.stubs,
            drivers: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        if let Some(dir) = &engine.plugin_dir {
            let report = dir.scan(engine.sandbox.as_ref(), true).await?;
            engine.publish(report).await?;
            if engine.shared {
                engine.sync_deployments().await?;
            }
            let live = engine.storage.live_versions().await?;
            let mut keep: Vec<String> = live.into_iter().map(|l| l.version).collect();
            keep.extend(dir.snapshot().files().map(|(_, c, _)| c.hash.clone()));
            engine.storage.prune_components(keep).await?;
            watch(&engine);
        }
        engine.resume().await?;
        Ok(engine)
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The time of runs now.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The activation deadline of handlers without their own.
    pub(crate) fn step_timeout(&self) -> Duration {
        self.step_timeout
    }

    /// Drive a run the caller just created, from `seed`, with its workflow
    /// timeout at `deadline_ms`.
    pub(crate) fn drive_new(self: &Arc<Self>, seed: LiveRun, deadline_ms: Option<u64>) {
        let run = &seed.identity;
        let parent = run.parent.as_ref().map(|p| p.run_id);
        telemetry::log_started(
            &run.workflow_id,
            run.run_id,
            &run.workflow_type,
            &run.version,
            parent,
        );
        if let Some(due_ms) = deadline_ms {
            arm_deadline(self, seed.run_id, due_ms);
        }
        wake(self, seed.run_id, Some(seed));
    }

    /// Drive a failed run that was just made running again.
    pub(crate) fn retried(self: &Arc<Self>, run_id: RunId, deadline_ms: Option<u64>) {
        if let Some(due_ms) = deadline_ms {
            arm_deadline(self, run_id, due_ms);
        }
        wake(self, run_id, None);
    }

    /// Act on what a write did to other runs.
    pub(crate) fn apply(self: &Arc<Self>, effects: Effects) {
        apply_effects(self, effects);
    }

    /// Resolves when `run_id` may have ended (look at it again), or the host
    /// stops (`Err`).
    pub(crate) fn ended(&self, run_id: RunId) -> impl Future<Output = Result<()>> + use<> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut watchers) = self.watchers.lock() {
            watchers.entry(run_id).or_default().push(tx);
        }
        let shutdown = self.shutdown.clone();
        // With other hosts, a lost notice must not leave a caller waiting:
        // look again now and then.
        let fallback = if self.shared { RECHECK } else { Duration::MAX };
        async move {
            tokio::select! {
                _ = rx => Ok(()),
                _ = tokio::time::sleep(fallback) => Ok(()),
                _ = shutdown.cancelled() => Err(Error::ShuttingDown),
            }
        }
    }

    /// Stop the drivers and timers and wait until they have stopped.
    pub(crate) async fn stop(&self) {
        self.shutdown_now();
        self.tasks.wait().await;
    }

    /// Tell the drivers and timers to stop, without waiting for them.
    pub(crate) fn shutdown_now(&self) {
        self.shutdown.cancel();
        self.tasks.close();
    }

    /// Resume every unfinished run: running ones get a driver, waiting ones
    /// their timer.
    async fn resume(self: &Arc<Self>) -> Result<()> {
        let runs = self.storage.live_runs().await?;
        if !runs.is_empty() {
            tracing::info!(runs = runs.len(), "resuming unfinished runs");
        }
        for run in runs {
            if let Some(due_ms) = run.deadline_ms {
                arm_deadline(self, run.run_id, due_ms);
            }
            match run.status {
                RunStatus::Running => wake(self, run.run_id, None),
                RunStatus::Waiting => {
                    if let Some(timer) = run.timer {
                        arm_timer(self, run.run_id, run.seq, timer);
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
            if let Ok(mut files) = self.version_files.lock() {
                files.insert(component.hash.clone(), name.clone());
            }
            self.storage
                .save_component(&component.hash, name.clone(), bytes, now_ms())
                .await?;
            if let (true, Some(name)) = (self.shared, name) {
                self.storage
                    .deploy(&name, &component.hash, now_ms())
                    .await?;
            }
        }
        if self.shared {
            for file in report.removed {
                if let Some(name) = file.file_name() {
                    self.storage.retire(&name.to_string_lossy()).await?;
                }
            }
        }
        Ok(())
    }

    /// Deploy plugin file `file` with content `bytes` (over the API): the
    /// directory's checks, then written into it and published like a file
    /// that appeared there — kept in the database and, on a shared one,
    /// deployed to every host. Its types are startable when this returns.
    pub(crate) async fn deploy(&self, file: &str, bytes: Arc<[u8]>) -> Result<Deployed> {
        let dir = self.plugin_dir.as_ref().ok_or(Error::NoPluginsDir)?;
        let deployed = match dir.deploy(self.sandbox.as_ref(), file, bytes).await {
            Err(e @ Error::PluginRejected { .. }) => {
                self.metrics.plugin_rejected();
                return Err(e);
            }
            other => other?,
        };
        if deployed.changed {
            let report = ScanReport {
                loaded: vec![(
                    deployed.file.clone(),
                    deployed.component.clone(),
                    deployed.bytes.clone(),
                )],
                ..ScanReport::default()
            };
            self.publish(report).await?;
        }
        Ok(deployed)
    }

    /// The component version `version` (a full hash, or a prefix of at
    /// least 4 hex digits of one this host has loaded) that provides
    /// `workflow_type`, for a start pinned to it, and the type's spec there.
    pub(crate) async fn pinned_version(
        &self,
        workflow_type: &str,
        version: &str,
    ) -> Result<(Arc<ComponentVersion>, Arc<WorkflowTypeSpec>)> {
        let prefix = version.to_ascii_lowercase();
        if !(4..=64).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!(
                    "`version` must be a component version: 4 to 64 hex digits of its hash, not `{version}`"
                ),
            )
            .into());
        }
        let mut matches: Vec<Arc<ComponentVersion>> = self
            .versions
            .lock()
            .map_err(|_| Error::Poisoned {
                what: "the component versions",
            })?
            .values()
            .filter(|c| c.hash.starts_with(&prefix))
            .cloned()
            .collect();
        if matches.is_empty() && prefix.len() == 64 {
            // Not loaded here, perhaps kept in the database.
            match self.component(&prefix).await {
                Ok(c) => matches.push(c),
                Err(Error::VersionMissing { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if matches.is_empty() {
            return Err(Error::UnknownVersion {
                version: version.to_owned(),
            });
        }
        let mut providing: Vec<_> = matches
            .iter()
            .filter_map(|c| c.workflow_type(workflow_type).map(|s| (c, s)))
            .collect();
        match providing.len() {
            0 => Err(Error::VersionWithoutType {
                version: matches[0].hash.clone(),
                workflow_type: workflow_type.to_owned(),
            }),
            1 => {
                let (c, spec) = providing.remove(0);
                Ok((c.clone(), spec.clone()))
            }
            _ => {
                let mut hashes: Vec<String> = providing
                    .iter()
                    .map(|(c, _)| crate::plugins::short_version(&c.hash).to_owned())
                    .collect();
                hashes.sort();
                Err(Error::AmbiguousVersion {
                    prefix: version.to_owned(),
                    workflow_type: workflow_type.to_owned(),
                    matches: hashes,
                })
            }
        }
    }

    /// Another host deployed plugin file `file` at `version`: load it and
    /// start new runs of its types from it here too.
    pub(crate) async fn deployed(&self, file: &str, version: &str) {
        let Some(dir) = &self.plugin_dir else { return };
        if dir.snapshot().version(version).is_some() {
            return;
        }
        let adopted =
            async {
                let component = self.component(version).await?;
                let (bytes, _) = self.storage.component(version).await?.ok_or_else(|| {
                    Error::VersionMissing {
                        version: version.to_owned(),
                    }
                })?;
                Ok::<_, Error>((component, bytes))
            };
        match adopted.await {
            Ok((component, bytes)) => {
                if let Err(reason) = dir.adopt(file, component, bytes.into()) {
                    tracing::warn!(%file, %version, %reason, "cannot start a plugin another host deployed");
                }
            }
            Err(e) => {
                tracing::warn!(%file, %version, error = %e, "cannot load a plugin another host deployed")
            }
        }
    }

    /// Another host's directory lost plugin file `file`.
    pub(crate) fn retired(&self, file: &str) {
        if let Some(dir) = &self.plugin_dir
            && let Err(reason) = dir.retire(file)
        {
            tracing::warn!(%file, %reason, "cannot retire a plugin");
        }
    }

    /// Start what other hosts deployed and this directory does not have:
    /// when the host starts, and after notices may have been missed.
    pub(crate) async fn sync_deployments(&self) -> Result<()> {
        let Some(dir) = &self.plugin_dir else {
            return Ok(());
        };
        for (file, version) in self.storage.deployments().await? {
            if !dir.has_own(&file) {
                self.deployed(&file, &version).await;
            }
        }
        Ok(())
    }

    /// The component a run is pinned to: one this host loaded, or the copy
    /// kept in the database.
    pub(crate) async fn component(&self, version: &str) -> Result<Arc<ComponentVersion>> {
        if let Some(c) = self.loaded_version(version) {
            return Ok(c);
        }
        let (bytes, file) =
            self.storage
                .component(version)
                .await?
                .ok_or_else(|| Error::VersionMissing {
                    version: version.to_owned(),
                })?;
        let memory = file
            .as_ref()
            .and_then(|f| self.plugin_memory.get(f).copied());
        if let Ok(mut files) = self.version_files.lock() {
            files.insert(version.to_owned(), file);
        }
        let component = self
            .sandbox
            .load(bytes.into(), memory)
            .await
            .map_err(|source| Error::VersionInvalid {
                version: version.to_owned(),
                source,
            })?;
        let component = Arc::new(component);
        if let Ok(mut versions) = self.versions.lock() {
            versions
                .entry(version.to_owned())
                .or_insert_with(|| component.clone());
        }
        Ok(component)
    }

    /// A component version another host kept in the database: load it now,
    /// so runs pinned to it (children, upgrades, take-overs) find it
    /// compiled.
    pub(crate) async fn adopt(&self, version: &str) {
        if let Err(e) = self.component(version).await {
            tracing::warn!(%version, error = %e, "cannot load a component version another host kept");
        }
    }

    /// What runs of `workflow_type` at `version` may reach.
    pub(crate) fn grants(&self, version: &str, workflow_type: &str) -> Arc<Grants> {
        let file = self
            .version_files
            .lock()
            .ok()
            .and_then(|files| files.get(version).cloned())
            .flatten();
        self.grants.for_run(file.as_deref(), workflow_type)
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
        let spec = provided(&component, &record.workflow_type)?;
        let identity = self.identity(&record).await?;
        let store = self.storage.store(run_id).await?;
        let store_bytes = store.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        let history_len = self.storage.history_len(run_id).await?;
        let journal = Arc::new(self.storage.journal(run_id).await?);
        let grants = self.grants(&record.version, &record.workflow_type);
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
            journal,
            grants,
            trace_root: None,
        }))
    }

    /// The root of the tree `run_id` is in (the run itself without a
    /// parent): its trace. A parent that cannot be read ends the walk.
    async fn root_of(&self, mut run_id: RunId) -> RunId {
        for _ in 0..MAX_TREE_DEPTH {
            match self.storage.run(run_id).await {
                Ok(Some(RunRecord {
                    parent_run_id: Some(parent),
                    ..
                })) => run_id = parent,
                _ => break,
            }
        }
        run_id
    }

    /// The root of `live`'s tree, found once per loaded run.
    async fn trace_root(&self, live: &mut LiveRun) -> RunId {
        if let Some(root) = live.trace_root {
            return root;
        }
        let root = match &live.identity.parent {
            None => live.run_id,
            Some(parent) => self.root_of(parent.run_id).await,
        };
        live.trace_root = Some(root);
        root
    }

    /// Who a run is, as its guest sees it.
    pub(crate) async fn identity(&self, record: &RunRecord) -> Result<RunIdentity> {
        let parent = match record.parent_run_id {
            Some(parent_id) => self.storage.run(parent_id).await?.map(|p| ParentIdentity {
                workflow_type: p.workflow_type,
                workflow_id: p.workflow_id,
                run_id: p.run_id,
                version: p.version,
            }),
            None => None,
        };
        Ok(RunIdentity {
            workflow_type: record.workflow_type.clone(),
            workflow_id: record.workflow_id.clone(),
            run_id: record.run_id,
            version: record.version.clone(),
            parent,
        })
    }

    /// The spec of `workflow_type` in component `version`.
    pub(crate) async fn spec(
        &self,
        version: &str,
        workflow_type: &str,
    ) -> Result<Arc<WorkflowTypeSpec>> {
        provided(&*self.component(version).await?, workflow_type)
    }

    /// This host no longer drives `run_id`.
    fn forget_driver(&self, run_id: RunId) {
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.remove(&run_id);
        }
    }

    /// Run `task` until the host stops.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Resolves when the host is stopping.
    pub(crate) fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }

    /// How many runs have a driver on this host now: an activation in
    /// progress, or one about to start (a wake registers the driver before
    /// its task runs, and a commit wakes the runs it delivers to before its
    /// own driver lets go).
    pub(crate) fn driven_runs(&self) -> usize {
        self.drivers.lock().map_or(0, |d| d.len())
    }

    /// How long a claim on a run lasts without renewal.
    pub(crate) fn claim_lease(&self) -> Duration {
        self.claim_lease
    }

    /// How long finished runs are kept.
    pub(crate) fn retention(&self) -> Option<Duration> {
        self.retention
    }

    /// Abandon the activation this host's driver runs for `run_id`, if any:
    /// the run ended elsewhere.
    pub(crate) fn abort_driver(&self, run_id: RunId) {
        abort(self, run_id);
    }

    /// Wake every caller waiting for a run to end, to look again.
    pub(crate) fn notify_all(&self) {
        let waiting = self
            .watchers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for tx in waiting.into_values().flatten() {
            let _ = tx.send(());
        }
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

/// `workflow_type` as `component` provides it.
fn provided(component: &ComponentVersion, workflow_type: &str) -> Result<Arc<WorkflowTypeSpec>> {
    component
        .workflow_type(workflow_type)
        .cloned()
        .ok_or_else(|| Error::TypeMissing {
            version: component.hash.clone(),
            workflow_type: workflow_type.to_owned(),
        })
}

/// The deepest tree of runs whose root a span looks for.
const MAX_TREE_DEPTH: usize = 1_000;

/// How often a caller waiting for a run's end looks again when other hosts
/// share the database and no notice came (one lost with a connection).
const RECHECK: Duration = Duration::from_secs(2);

/// A run in the hands of a driver: what it needs to execute activations
/// without reading storage each time.
pub(crate) struct LiveRun {
    pub run_id: RunId,
    pub identity: Arc<RunIdentity>,
    pub component: Arc<ComponentVersion>,
    pub spec: Arc<WorkflowTypeSpec>,
    pub seq: u64,
    pub pending: Pending,
    pub store: Arc<StoreMap>,
    /// The store's size, for the `max_store_bytes` quota.
    pub store_bytes: usize,
    /// History entries so far (those this host wrote or loaded), for the
    /// `max_history_len` quota.
    pub history_len: u64,
    /// The pending activation's journal: what its earlier executions
    /// recorded.
    pub journal: Arc<Journal>,
    /// What the run may reach.
    pub grants: Arc<Grants>,
    /// The root run of the run's tree, for its spans; `None`: not looked
    /// up yet.
    pub trace_root: Option<RunId>,
}

/// The driver of one run in this host.
pub(crate) struct Driver {
    /// Look at the run again when the current work is done.
    poked: bool,
    /// Abandon the activation in progress: the run ended under the driver
    /// (terminated, timed out).
    abort: CancellationToken,
}

/// Make sure a driver works on `run_id`. `seed` is the run's state when the
/// caller has it; otherwise the driver loads it.
pub(crate) fn wake(inner: &Arc<Engine>, run_id: RunId, seed: Option<LiveRun>) {
    let abort = {
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        match drivers.entry(run_id) {
            // A driver is on it: have it look again when it is done.
            Entry::Occupied(mut e) => {
                e.get_mut().poked = true;
                return;
            }
            Entry::Vacant(e) => {
                let abort = inner.shutdown.child_token();
                e.insert(Driver {
                    poked: false,
                    abort: abort.clone(),
                });
                abort
            }
        }
    };
    let task_inner = inner.clone();
    inner
        .tasks
        .spawn(async move { drive(task_inner, run_id, seed, abort).await });
}

/// Abandon the activation a driver of this host runs for `run_id`, if any.
fn abort(inner: &Engine, run_id: RunId) {
    if let Ok(drivers) = inner.drivers.lock()
        && let Some(driver) = drivers.get(&run_id)
    {
        driver.abort.cancel();
    }
}

async fn drive(
    inner: Arc<Engine>,
    run_id: RunId,
    mut seed: Option<LiveRun>,
    abort: CancellationToken,
) {
    loop {
        // Exactly one host drives a run: the one holding its claim.
        if !claim(&inner, run_id).await {
            inner.forget_driver(run_id);
            return;
        }
        let live = match seed.take() {
            Some(live) => Some(live),
            None => match inner.load_live(run_id).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::error!(%run_id, error = %e, "cannot load run");
                    None
                }
            },
        };
        let worked = live.is_some();
        let reload = match live {
            Some(live) => {
                // Every log line about the run carries its ids.
                let span = tracing::info_span!(
                    "run",
                    %run_id,
                    workflow_id = %live.identity.workflow_id,
                    workflow_type = %live.identity.workflow_type,
                );
                let parked = run_until_parked(&inner, live, &abort).instrument(span);
                tokio::select! {
                    parked = parked => parked == Parked::Reload,
                    // Another host took the run over: stop here (its commit
                    // or ours is stale).
                    () = keep_claim(&inner, run_id) => {
                        inner.forget_driver(run_id);
                        return;
                    }
                }
            }
            None => false,
        };
        let poked = {
            let Ok(mut drivers) = inner.drivers.lock() else {
                return;
            };
            let poked = drivers.get(&run_id).is_some_and(|d| d.poked);
            if let Some(d) = drivers.get_mut(&run_id) {
                d.poked = false;
            }
            poked
        };
        if (poked || reload) && !abort.is_cancelled() {
            continue;
        }
        // Give the claim up. A run that became ready meanwhile (another
        // host woke it but could not claim it) is driven on.
        let ready = match inner.storage.release(run_id).await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(%run_id, error = %e, "cannot release the claim on a run");
                false
            }
        };
        if ready && worked && !abort.is_cancelled() {
            continue;
        }
        let Ok(mut drivers) = inner.drivers.lock() else {
            return;
        };
        if drivers.get(&run_id).is_some_and(|d| d.poked) && !abort.is_cancelled() {
            drop(drivers);
            continue;
        }
        drivers.remove(&run_id);
        return;
    }
}

/// Claim `run_id` for this host for one lease; `false` when another host
/// holds it or the database cannot say.
async fn claim(inner: &Engine, run_id: RunId) -> bool {
    let until = now_ms().saturating_add(inner.claim_lease.as_millis() as u64);
    match inner.storage.claim(run_id, until).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::debug!(%run_id, "another host drives this run");
            false
        }
        Err(e) => {
            tracing::warn!(%run_id, error = %e, "cannot claim run");
            false
        }
    }
}

/// Renew the claim on `run_id` every third of a lease; returns when it is
/// lost (another host took the run over after a renewal failed for a whole
/// lease).
async fn keep_claim(inner: &Engine, run_id: RunId) {
    let lease = inner.claim_lease;
    let mut held_until = std::time::Instant::now() + lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let until = now_ms().saturating_add(lease.as_millis() as u64);
        match inner.storage.claim(run_id, until).await {
            Ok(true) => held_until = std::time::Instant::now() + lease,
            Ok(false) => {
                tracing::warn!(%run_id, "another host took this run over");
                return;
            }
            // The database is away: the claim holds until it runs out.
            Err(e) => {
                tracing::warn!(%run_id, error = %e, "cannot renew the claim on a run");
                if std::time::Instant::now() >= held_until {
                    return;
                }
            }
        }
    }
}

/// Why a driver stopped executing activations.
#[derive(Debug, PartialEq, Eq)]
enum Parked {
    /// The run waits, ended, or the host is shutting down.
    Done,
    /// The run changed under the driver (a commit was stale): look again.
    Reload,
}

/// Execute activations until the run waits, ends, the host shuts down or
/// `abort` says the run ended under the driver.
async fn run_until_parked(
    inner: &Arc<Engine>,
    mut live: LiveRun,
    abort: &CancellationToken,
) -> Parked {
    loop {
        // Emitted as it drops: when this activation's turn of the loop ends.
        let mut span = match &inner.spans {
            Some(spans) => {
                let root = inner.trace_root(&mut live).await;
                Some(spans.activation(&live.identity, root, &live.pending, live.seq))
            }
            None => None,
        };
        let handler = live
            .spec
            .handler(live.pending.kind, &live.pending.handler)
            .cloned();
        let outcome = match &handler {
            _ if live.history_len >= inner.max_history_len => ActivationOutcome::failed(
                WorkflowError::quota("max_history_len", live.history_len, inner.max_history_len),
            ),
            Some(h) => {
                let request = ActivationRequest {
                    run: live.identity.clone(),
                    spec: live.spec.clone(),
                    services: inner.clone(),
                    kind: live.pending.kind,
                    handler: live.pending.handler.clone(),
                    input: live.pending.input.clone(),
                    sequence: live.seq,
                    store: live.store.clone(),
                    store_bytes: live.store_bytes,
                    timeout: h.timeout.unwrap_or(inner.step_timeout),
                    journal: live.journal.clone(),
                    grants: live.grants.clone(),
                };
                tokio::select! {
                    _ = abort.cancelled() => return Parked::Done,
                    outcome = live.component.activate(request) => outcome,
                }
            }
            None => ActivationOutcome::failed(missing_handler(&live.spec, &live.pending)),
        };
        inner.metrics.activation(
            &live.identity.workflow_type,
            outcome.result.is_ok(),
            outcome.duration,
        );
        if let Some(fault) = &outcome.host_fault {
            // Not the guest's doing: nothing is committed, the activation
            // runs again.
            tracing::error!(run_id = %live.run_id, %fault, "activation hit a host fault; retrying");
            if let Some(span) = &mut span {
                span.ended("host_fault");
            }
            if pause(inner).await.is_err() {
                return Parked::Done;
            }
            // It may have recorded tasks before the fault: start over from
            // storage.
            return Parked::Reload;
        }
        let at_ms = inner.clock.now_ms();
        let plan = plan(
            &live.spec,
            live.run_id,
            &live.identity,
            &live.pending,
            live.seq,
            outcome,
            at_ms,
        );
        // The run's end is logged once storage has applied it
        // (`apply_effects`), whoever ended it.
        if let Some(span) = &mut span {
            span.planned(&plan.next);
        }
        let children = plan.children;
        let commit = StateCommit {
            run_id: live.run_id,
            expected_seq: live.seq,
            next: plan.next.clone(),
            writes: plan.writes,
            history: plan.history,
            children: children.clone(),
            to_parent: plan.to_parent,
            at_ms,
        };
        let writes = commit.writes.clone();
        let history_len = commit.history.len() as u64;
        let committing = std::time::Instant::now();
        let committed = inner.storage.commit(commit).await;
        inner.metrics.commit(committing.elapsed());
        let (seq, next, effects) = match committed {
            Ok(CommitOutcome::Applied { seq, next, effects }) => (seq, next, effects),
            // The run moved on without this driver (terminated, or a host
            // that was stopping committed late): start over from storage.
            Ok(CommitOutcome::Stale) => {
                if let Some(span) = &mut span {
                    span.ended("stale");
                }
                return Parked::Reload;
            }
            // A child's workflow id was taken meanwhile: execute the
            // activation again; this time the guest sees who holds it.
            Ok(CommitOutcome::Conflict {
                workflow_id,
                run_id: holder,
            }) => {
                tracing::debug!(
                    run_id = %live.run_id, %workflow_id, %holder,
                    "child workflow id taken; re-executing"
                );
                if let Some(span) = &mut span {
                    span.ended("reexecuted");
                }
                // With what it recorded meanwhile.
                match inner.storage.journal(live.run_id).await {
                    Ok(journal) => live.journal = Arc::new(journal),
                    Err(_) => return Parked::Reload,
                }
                continue;
            }
            Err(e) => {
                // Nothing was committed: execute the activation again later,
                // with what it recorded.
                tracing::error!(run_id = %live.run_id, error = %e, "commit failed; retrying");
                if let Some(span) = &mut span {
                    span.ended("commit_failed");
                }
                if pause(inner).await.is_err() {
                    return Parked::Done;
                }
                return Parked::Reload;
            }
        };
        if plan.next.ends_activation() {
            live.journal = Arc::default();
        }
        live.seq = seq;
        // Its own entries, and the received + dispatched pair of an event
        // handed over as it parked.
        let dispatched = matches!(plan.next, NextState::Waiting(_)) && next.is_some();
        live.history_len += history_len + if dispatched { 2 } else { 0 };
        if !writes.is_empty() {
            let store = Arc::make_mut(&mut live.store);
            for (key, value) in writes {
                if let Some(old) = store.get(&key) {
                    live.store_bytes -= entry_bytes(&key, old);
                }
                match value {
                    Some(v) => {
                        live.store_bytes += entry_bytes(&key, &v);
                        store.insert(key, v)
                    }
                    None => store.remove(&key),
                };
            }
        }
        for child in children {
            start_child(inner, &live, child);
        }
        apply_effects(inner, effects);
        match next {
            Some(pending) => live.pending = pending,
            None => {
                match plan.next {
                    NextState::Waiting(Some(timer)) => {
                        arm_timer(inner, live.run_id, live.seq, timer)
                    }
                    NextState::Retrying { due_ms, .. } => {
                        arm_timer(inner, live.run_id, live.seq, Timer::retry(due_ms))
                    }
                    _ => {}
                }
                return Parked::Done;
            }
        }
    }
}

/// Wait a second before retrying after a fault; `Err` when the host stops.
async fn pause(inner: &Arc<Engine>) -> Result<(), ()> {
    tokio::select! {
        _ = inner.shutdown.cancelled() => Err(()),
        _ = tokio::time::sleep(Duration::from_secs(1)) => Ok(()),
    }
}

/// Wake the runs a write woke and tell waiters about the runs it ended.
pub(crate) fn apply_effects(inner: &Arc<Engine>, effects: Effects) {
    for run_id in effects.woken {
        wake(inner, run_id, None);
    }
    for ended in effects.finished {
        inner.metrics.run_ended(&ended.workflow_type, ended.status);
        // A run that was ended from outside (terminated, timed out, a
        // parent's close policy) stops its activation now.
        if matches!(ended.status, RunStatus::Terminated | RunStatus::Failed) {
            abort(inner, ended.run_id);
        }
        inner.notify_terminal(ended.run_id);
        log_end(inner, ended.run_id);
    }
}

/// Log how `run_id` ended and emit its span, from the run as stored (the
/// effect names only its id, type and status).
fn log_end(inner: &Arc<Engine>, run_id: RunId) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let record = match inner.storage.run(run_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%run_id, error = %e, "cannot read a run that ended, to log it");
                return;
            }
        };
        telemetry::log_ended(&record);
        if let Some(spans) = &inner.spans {
            let root = match record.parent_run_id {
                Some(parent) => inner.root_of(parent).await,
                None => record.run_id,
            };
            spans.run(&record, root);
        }
    });
}

/// Drive a child created by `parent`'s commit, and arm its workflow timeout.
fn start_child(inner: &Arc<Engine>, parent: &LiveRun, child: NewRun) {
    // Created with the parent's commit: a run started, like a root run.
    inner.metrics.run_started(&child.workflow_type);
    telemetry::log_started(
        &child.workflow_id,
        child.run_id,
        &child.workflow_type,
        &child.version,
        Some(parent.run_id),
    );
    if let Some(due_ms) = child.deadline_ms {
        arm_deadline(inner, child.run_id, due_ms);
    }
    let Some(entry) = inner.loaded_version(&child.version) else {
        wake(inner, child.run_id, None);
        return;
    };
    let Some(spec) = entry.workflow_type(&child.workflow_type).cloned() else {
        wake(inner, child.run_id, None);
        return;
    };
    let grants = inner.grants(&child.version, &child.workflow_type);
    let seed = LiveRun {
        run_id: child.run_id,
        identity: Arc::new(RunIdentity {
            workflow_type: child.workflow_type,
            workflow_id: child.workflow_id,
            run_id: child.run_id,
            version: child.version,
            parent: Some(ParentIdentity {
                workflow_type: parent.identity.workflow_type.clone(),
                workflow_id: parent.identity.workflow_id.clone(),
                run_id: parent.identity.run_id,
                version: parent.identity.version.clone(),
            }),
        }),
        component: entry.clone(),
        spec,
        seq: 0,
        pending: child.pending,
        store: Arc::default(),
        store_bytes: 0,
        history_len: 1,
        journal: Arc::default(),
        grants,
        trace_root: parent.trace_root,
    };
    wake(inner, seed.run_id, Some(seed));
}

/// Fire `timer` when due: run its step (or, for a timed wait without one,
/// fail the run with `WaitTimeout`), unless the run moved on first.
pub(crate) fn arm_timer(inner: &Arc<Engine>, run_id: RunId, seq: u64, timer: Timer) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = inner.clock.sleep_until(timer.due_ms) => {}
        }
        if timer.retry {
            // A task's retry is due: the kept activation runs again.
            match inner
                .storage
                .reexecute(run_id, Resume::RetryDue { seq }, inner.clock.now_ms())
                .await
            {
                Ok(Ok(_)) => wake(&inner, run_id, None),
                Ok(Err(_)) => {}
                Err(e) => tracing::error!(%run_id, error = %e, "a task's retry could not fire"),
            }
            return;
        }
        let next = match &timer.on_timeout {
            Some(step) => NextState::Running(Pending {
                kind: HandlerKind::Step,
                handler: step.clone(),
                input: json_null(),
            }),
            None => NextState::Failed(Timer::wait_timeout(run_id)),
        };
        let mut commit = StateCommit::new(run_id, seq, next, inner.clock.now_ms());
        commit.history.push(HistoryEvent::TimerFired {
            on_timeout: timer.on_timeout,
        });
        match inner.storage.commit(commit).await {
            Ok(CommitOutcome::Applied { effects, .. }) => {
                apply_effects(&inner, effects);
                wake(&inner, run_id, None);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(%run_id, error = %e, "timer could not fire"),
        }
    });
}

/// Fail the run with `WorkflowTimeout` at `due_ms` if it is still alive.
pub(crate) fn arm_deadline(inner: &Arc<Engine>, run_id: RunId, due_ms: u64) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = inner.clock.sleep_until(due_ms) => {}
        }
        match inner
            .storage
            .expire(run_id, inner.clock.now_ms().max(due_ms))
            .await
        {
            Ok(effects) => apply_effects(&inner, effects),
            Err(e) => tracing::error!(%run_id, error = %e, "workflow timeout could not fire"),
        }
    });
}

fn missing_handler(spec: &WorkflowTypeSpec, pending: &Pending) -> WorkflowError {
    let kind = match pending.kind {
        HandlerKind::Event => ErrorKind::UnknownEvent,
        _ => ErrorKind::UnknownStep,
    };
    WorkflowError::new(
        kind,
        format!(
            "workflow type `{}` has no {} handler `{}`",
            spec.name, pending.kind, pending.handler
        ),
    )
}

impl HostServices for Engine {
    fn resolve_child<'a>(
        &'a self,
        parent_run_id: RunId,
        request: &'a ChildRequest,
    ) -> BoxFuture<'a, std::result::Result<ChildResolution, ServiceError>> {
        Box::pin(async move {
            // A child of a type its parent's component provides gets that
            // component's version (a pinned parent's children are pinned
            // with it); any other type gets the version new runs get.
            let parent = self
                .storage
                .run(parent_run_id)
                .await
                .map_err(ServiceError::host)?;
            let sibling = match parent {
                Some(p) => {
                    let component = self
                        .component(&p.version)
                        .await
                        .map_err(ServiceError::host)?;
                    component
                        .workflow_type(&request.workflow_type)
                        .cloned()
                        .map(|spec| (component.hash.clone(), spec))
                }
                None => None,
            };
            let (version, spec) = match sibling {
                Some(found) => found,
                None => {
                    let plugins = self.plugins();
                    let entry = plugins.get(&request.workflow_type)?;
                    (entry.component.hash.clone(), entry.spec.clone())
                }
            };
            let start = spec.start().ok_or_else(|| {
                ServiceError::host(Error::TypeWithoutStart {
                    workflow_type: request.workflow_type.clone(),
                })
            })?;
            start.check_payload(&request.input).map_err(|mut e| {
                e.message = format!("child `{}`: {}", request.workflow_id, e.message);
                e
            })?;
            let active = self
                .storage
                .active_run(&request.workflow_id)
                .await
                .map_err(ServiceError::host)?;
            match active {
                Some(run) if run.parent_run_id == Some(parent_run_id) => {
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
                    version,
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
            let spec = self
                .spec(&parent.version, &parent.workflow_type)
                .await
                .map_err(ServiceError::host)?;
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

    fn record(
        &self,
        run_id: RunId,
        sequence: u64,
        entries: Vec<JournalEntry>,
    ) -> BoxFuture<'_, std::result::Result<(), ServiceError>> {
        Box::pin(async move {
            let traced = self.spans.as_ref().map(|spans| (spans, entries.clone()));
            match self
                .storage
                .record(run_id, sequence, entries, self.clock.now_ms())
                .await
            {
                Ok(true) => {
                    if let Some((spans, entries)) = traced {
                        spans.tasks(run_id, &entries);
                    }
                    Ok(())
                }
                Ok(false) => Err(ServiceError::host(Error::RunMovedOn { run_id })),
                Err(e) => Err(ServiceError::host(e)),
            }
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn waits_in_activation(&self) -> bool {
        self.clock.passes_by_itself()
    }

    fn stubbed_task(&self, workflow_type: &str, task: &str) -> Option<TaskResult> {
        self.stubs.as_ref()?.task(workflow_type, task)
    }

    fn stubbed_http(&self, workflow_type: &str, request: &StubRequest) -> Option<StubResponse> {
        self.stubs.as_ref()?.http(workflow_type, request)
    }
}

/// How often the plugins directory is looked at. A file is loaded once it
/// held still for one period, so a new plugin is startable within about two.
const WATCH_PERIOD: Duration = Duration::from_millis(200);

/// Watch the plugins directory for the host's lifetime.
fn watch(inner: &Arc<Engine>) {
    let task_inner = inner.clone();
    inner.tasks.spawn(async move {
        let inner = task_inner;
        let Some(dir) = &inner.plugin_dir else { return };
        loop {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(WATCH_PERIOD) => {}
            }
            match dir.scan(inner.sandbox.as_ref(), false).await {
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
