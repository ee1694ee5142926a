//! [`Host`]: the public face of the engine. It validates requests at the
//! door (before anything is stored), creates runs, delivers events, cancels
//! and terminates, answers queries, and reads runs back; the [`Engine`]
//! behind it drives them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmflow_core::activation::{ActivationRequest, RunIdentity, Sandbox, entry_bytes};
use wasmflow_core::model::{
    Directive, Json, Pending, RunId, WorkflowTypeSpec, check_id, json_value, parse_json,
};
use wasmflow_core::plan::{Delivery, InboxKind, NewRun};
use wasmflow_core::{ErrorKind, HandlerKind, WorkflowError};
use wasmflow_storage::{
    AlreadyActive, HistoryRecord, InboxEntry, ListPosition, LiveVersion, RunFilter, RunRecord,
    Storage, StorageError,
};

use crate::engine::{Engine, EngineConfig, LiveRun};
use crate::error::{Error, Result};
use crate::plugins::{Deployed, Plugins};
use crate::upgrade::UpgradeReport;
use wasmflow_core::limits::MAX_WORKFLOW_TIMEOUT;

/// A workflow timeout is at least 1 ms and at most [`MAX_WORKFLOW_TIMEOUT`].
fn check_timeout(timeout: Duration) -> std::result::Result<(), WorkflowError> {
    if timeout < Duration::from_millis(1) || timeout > MAX_WORKFLOW_TIMEOUT {
        return Err(WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!(
                "the workflow timeout must be 1 ms to {} ms (ten years), not {} ms",
                MAX_WORKFLOW_TIMEOUT.as_millis(),
                timeout.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Options of [`Host::start`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    workflow_id: Option<String>,
    timeout: Option<Duration>,
    return_existing: bool,
    version: Option<String>,
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

    /// Pin the run to this component version instead of the one new runs
    /// get: a full hash, or a prefix of at least 4 hex digits of a version
    /// this host has loaded (one whose file was replaced too), of a
    /// component that provides the type.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
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
    engine: Arc<Engine>,
}

impl Host {
    /// Start a host on `storage` and `sandbox`: load the plugins, keep their
    /// versions, and resume every unfinished run. (`wasmflow_host::Host`'s
    /// builder wires the embedded SQLite store and the wasmtime sandbox.)
    pub async fn new(
        config: EngineConfig,
        storage: Arc<dyn Storage>,
        sandbox: Arc<dyn Sandbox>,
    ) -> Result<Host> {
        let engine = Engine::start(config, storage, sandbox).await?;
        crate::shared::start(&engine);
        crate::retention::start(&engine);
        Ok(Host { engine })
    }

    /// The workflow types the plugins provide now, and the rejected files.
    pub fn plugins(&self) -> Arc<Plugins> {
        self.engine.plugins()
    }

    /// Deploy plugin file `file` (a bare `*.wasm` file name) with content
    /// `bytes`, as `POST /v1/plugins` does: checked exactly as a file copied
    /// into the plugins directory (same checks, same reasons; a rejected
    /// content stores nothing: [`Error::PluginRejected`]), then written
    /// into the directory atomically, so that it survives a restart, kept
    /// in the database and, on a shared one, deployed to every host. Its
    /// types are startable when this returns; runs pinned to a replaced
    /// version finish on it.
    pub async fn deploy(&self, file: &str, bytes: Vec<u8>) -> Result<Deployed> {
        self.engine.deploy(file, bytes.into()).await
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
        let (component, spec) = match &options.version {
            Some(version) => self.engine.pinned_version(workflow_type, version).await?,
            None => {
                let plugins = self.engine.plugins();
                let entry = plugins.get(workflow_type)?;
                (entry.component.clone(), entry.spec.clone())
            }
        };
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
                    wasmflow_core::payload::json_type(&value)
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
        check_id("workflow id", &workflow_id)?;
        if let Some(timeout) = options.timeout {
            check_timeout(timeout)?;
        }
        let pending = Pending {
            kind: HandlerKind::Start,
            handler: start.name.clone(),
            input: input.clone(),
        };
        let at_ms = self.engine.now_ms();
        // In range (checked above): the deadline is a few years ahead at
        // most, far from overflowing the database's signed integers.
        let deadline_ms = options
            .timeout
            .map(|t| at_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let new = NewRun {
            run_id,
            workflow_id: workflow_id.clone(),
            workflow_type: workflow_type.to_owned(),
            version: component.hash.clone(),
            parent: None,
            input,
            pending: pending.clone(),
            deadline_ms,
            at_ms,
        };
        match self.engine.storage().create_run(new).await? {
            Ok(()) => {}
            Err(AlreadyActive {
                workflow_id,
                run_id,
            }) if options.return_existing => {
                return Ok(Started {
                    run_id,
                    workflow_id,
                    existing: true,
                });
            }
            Err(AlreadyActive {
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
        }
        let live = LiveRun {
            run_id,
            identity: Arc::new(RunIdentity {
                workflow_type: workflow_type.to_owned(),
                workflow_id: workflow_id.clone(),
                run_id,
                version: component.hash.clone(),
                parent: None,
            }),
            component: component.clone(),
            spec,
            seq: 0,
            pending,
            store: Arc::default(),
            store_bytes: 0,
            history_len: 1,
            journal: Arc::default(),
            grants: self.engine.grants(&component.hash, workflow_type),
            trace_root: Some(run_id),
        };
        self.engine.drive_new(live, deadline_ms);
        self.engine.metrics().run_started(workflow_type);
        Ok(Started {
            run_id,
            workflow_id,
            existing: false,
        })
    }

    /// Wait until the run reaches a terminal state and return it.
    pub async fn wait(&self, run_id: RunId) -> Result<RunRecord> {
        loop {
            // Registered before the look, so an end in between is not missed.
            let ended = self.engine.ended(run_id);
            let record = self.run(run_id).await?;
            if record.status.is_terminal() {
                return Ok(record);
            }
            ended.await?;
        }
    }

    /// The run as stored now.
    pub async fn run(&self, run_id: RunId) -> Result<RunRecord> {
        self.engine
            .storage()
            .run(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_string()))
    }

    /// The newest run of a workflow id.
    pub async fn latest_run(&self, workflow_id: &str) -> Result<RunRecord> {
        self.engine
            .storage()
            .latest_run(workflow_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(workflow_id.to_owned()))
    }

    /// Check, without sending it, that `event` with `payload` (JSON text;
    /// empty for none) would be accepted by a new run of `workflow_type`.
    pub fn check_event(&self, workflow_type: &str, event: &str, payload: &str) -> Result<()> {
        let plugins = self.engine.plugins();
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
                run_id: run.run_id,
                status: run.status,
            });
        }
        let payload = if payload.trim().is_empty() {
            "null"
        } else {
            payload
        };
        let spec = self.engine.spec(&run.version, &run.workflow_type).await?;
        let payload = check_event(&spec, event, payload)?;
        let effects = self
            .engine
            .storage()
            .deliver(Delivery {
                run_id: run.run_id,
                name: event.to_owned(),
                payload,
                kind: InboxKind::Event,
                source: "client".to_owned(),
            })
            .await??;
        self.engine.apply(effects);
        Ok(run.run_id)
    }

    /// Cancel the latest run of `workflow_id`: a waiting run at once, a run
    /// in an activation when that activation ends (its directive is
    /// discarded). Its children's close policies apply.
    pub async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<RunId> {
        let run = self.latest_run(workflow_id).await?;
        let effects = self
            .engine
            .storage()
            .cancel(run.run_id, reason.to_owned(), self.engine.now_ms())
            .await??;
        self.engine.apply(effects);
        Ok(run.run_id)
    }

    /// End the latest run of `workflow_id` at once, in any live state. Its
    /// children's close policies apply.
    pub async fn terminate(&self, workflow_id: &str, reason: &str) -> Result<RunId> {
        let run = self.latest_run(workflow_id).await?;
        let effects = self
            .engine
            .storage()
            .terminate(run.run_id, reason.to_owned(), self.engine.now_ms())
            .await??;
        self.engine.apply(effects);
        Ok(run.run_id)
    }

    /// Move the waiting runs of `workflow_type` to the version the plugins
    /// directory provides now, at their next activation, where every handler
    /// they can still reach exists in it; the others stay pinned and are
    /// listed with the reason (see the README's "Upgrading running
    /// workflows").
    pub async fn upgrade(&self, workflow_type: &str) -> Result<UpgradeReport> {
        let plugins = self.engine.plugins();
        crate::upgrade::upgrade(self.engine.storage(), &plugins, workflow_type, |version| {
            let engine = &self.engine;
            async move { engine.spec(&version, workflow_type).await }
        })
        .await
    }

    /// Resume the latest run of `workflow_id`, which failed: its failed
    /// activation is executed again from the run's last committed state
    /// (tasks it recorded return their outcomes), on its pinned version or,
    /// with `upgrade`, on the version the plugins provide now if the run
    /// passes the upgrade check there. Returns the run id and the version
    /// it runs on.
    pub async fn retry(&self, workflow_id: &str, upgrade: bool) -> Result<(RunId, String)> {
        let run = self.latest_run(workflow_id).await?;
        let mut to_version = None;
        if upgrade {
            let plugins = self.engine.plugins();
            let entry = plugins.get(&run.workflow_type)?;
            if entry.component.hash != run.version {
                let old = self.engine.spec(&run.version, &run.workflow_type).await?;
                let anchors = self.engine.storage().anchors(run.run_id).await?;
                crate::upgrade::check(&old, &entry.spec, &run, &anchors).map_err(|reason| {
                    WorkflowError::new(
                        ErrorKind::InvalidPayload,
                        format!(
                            "run `{}` cannot move to version {}: {reason}",
                            run.run_id, entry.component.hash
                        ),
                    )
                })?;
                to_version = Some(entry.component.hash.clone());
            }
        }
        let version = to_version.clone().unwrap_or_else(|| run.version.clone());
        let resume = wasmflow_storage::Resume::Failed { to_version };
        self.engine
            .storage()
            .reexecute(run.run_id, resume, self.engine.now_ms())
            .await??;
        tracing::info!(
            target: "wasmflow::run",
            parent: None,
            %workflow_id, run_id = %run.run_id, workflow_type = %run.workflow_type,
            version = %crate::plugins::short_version(&version),
            "run retried"
        );
        self.engine.retried(run.run_id, run.deadline_ms);
        Ok((run.run_id, version))
    }

    /// The runs `run_id` started, oldest first.
    pub async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>> {
        Ok(self.engine.storage().children(run_id).await?)
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

    /// Runs, newest first (by creation time, then run id), those `filter`
    /// selects; at most `limit`. `after` continues a listing:
    /// the `(created_ms, run_id)` of the last run of the previous page
    /// (`None`: from the newest run). Paging this way visits every run
    /// once, whatever is started meanwhile.
    pub async fn list(
        &self,
        filter: RunFilter,
        after: Option<(u64, RunId)>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let after = after.map(|(created_ms, run_id)| ListPosition { created_ms, run_id });
        Ok(self
            .engine
            .storage()
            .list_runs(filter, after, limit)
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
            let children = self.engine.storage().children(node.run.run_id).await?;
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
        let component = self.engine.component(&run.version).await?;
        let spec = self.engine.spec(&run.version, &run.workflow_type).await?;
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
        let store = self.engine.storage().store(run_id).await?;
        let store_bytes = store.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        let request = ActivationRequest {
            run: Arc::new(self.engine.identity(&run).await?),
            spec: spec.clone(),
            services: self.engine.clone(),
            kind: HandlerKind::Query,
            handler: name.to_owned(),
            input,
            sequence: run.seq,
            store: Arc::new(store),
            store_bytes,
            timeout: handler.timeout.unwrap_or(self.engine.step_timeout()),
            journal: Arc::default(),
            grants: Arc::default(),
        };
        let outcome = component.activate(request).await;
        if let Some(fault) = outcome.host_fault {
            return Err(Error::HostFault(fault));
        }
        match outcome.result {
            Ok(Directive::Complete(value)) => Ok(json_value(&value)?),
            Ok(other) => Err(Error::QueryFailed(WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!("query `{name}` returned a directive instead of a value: {other:?}"),
            ))),
            Err(e) => Err(Error::QueryFailed(e)),
        }
    }

    /// Every live run (running or waiting), read in one snapshot: a run
    /// moving from one status to the other is seen once, in one of them.
    pub async fn live_runs(&self) -> Result<Vec<RunRecord>> {
        Ok(self.engine.storage().live_runs().await?)
    }

    /// How many runs this host is driving now (an activation in progress
    /// or about to start). With [`Host::live_runs`], how a test harness
    /// knows every run has parked: none driven, none running, nothing due.
    pub fn driven_runs(&self) -> usize {
        self.engine.driven_runs()
    }

    /// The versions live runs are pinned to, by workflow type.
    pub async fn live_versions(&self) -> Result<Vec<LiveVersion>> {
        Ok(self.engine.storage().live_versions().await?)
    }

    /// The host's metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let depth = self.engine.storage().inbox_depth().await?;
        Ok(self.engine.metrics().encode(depth))
    }

    /// The run's history, oldest first.
    pub async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>> {
        Ok(self.engine.storage().history(run_id).await?)
    }

    /// What waits in the run's inbox, oldest first.
    pub async fn inbox(&self, run_id: RunId) -> Result<Vec<InboxEntry>> {
        Ok(self.engine.storage().inbox(run_id).await?)
    }

    /// The run's committed store.
    pub async fn store(&self, run_id: RunId) -> Result<HashMap<String, serde_json::Value>> {
        let store = self.engine.storage().store(run_id).await?;
        store
            .into_iter()
            .map(|(k, v)| {
                let value = json_value(&v).map_err(|e| StorageError::Corrupt(e.message))?;
                Ok((k, value))
            })
            .collect()
    }

    /// Stop the drivers and wait for them: activations in progress are
    /// abandoned (they run again on the next start), nothing committed is
    /// lost.
    pub async fn shutdown(self) {
        self.engine.stop().await;
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Without waiting: the tasks see the cancellation and end.
        self.engine.shutdown_now();
    }
}

/// Check an event against the handlers of `spec`: the name has an event
/// handler and the payload (JSON text) fits its parameters.
fn check_event(
    spec: &WorkflowTypeSpec,
    event: &str,
    payload: &str,
) -> std::result::Result<Json, WorkflowError> {
    check_id("event name", event)?;
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
