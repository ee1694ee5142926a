//! [`HostBuilder`]: settings, their checks, and the wiring of the default
//! parts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmflow_core::limits as defaults;
use wasmflow_engine::{EngineConfig, Error, Host, Result};
use wasmflow_sandbox::{SandboxConfig, WasmtimeSandbox};
use wasmflow_storage::{Quotas, Storage};

use crate::Database;

/// Configures and starts a [`Host`]. Every setting has a default; a value
/// out of range is refused by [`HostBuilder::start`] with the setting named.
///
/// ```no_run
/// # async fn f() -> wasmflow_host::Result<()> {
/// use std::time::Duration;
/// let host = wasmflow_host::HostBuilder::new("wasmflow.db")
///     .plugins("./plugins")
///     .step_timeout(Duration::from_secs(30))
///     .plugin_memory_limit("reports.wasm", 256 << 20)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HostBuilder {
    db: Database,
    claim_lease: Duration,
    pool_size: u32,
    plugins: Option<PathBuf>,
    sandbox: SandboxConfig,
    step_timeout: Duration,
    plugin_memory: HashMap<String, usize>,
    max_inbox_len: u64,
    max_history_len: u64,
    grants: wasmflow_core::grant::GrantTable,
    spans: Option<wasmflow_engine::SpanSink>,
    clock: Arc<dyn wasmflow_core::clock::Clock>,
    stubs: Option<Arc<dyn wasmflow_core::activation::Stubs>>,
    storage_layer: Option<StorageLayer>,
    retention: Option<Duration>,
}

/// A wrapper around the storage backend the host opens (see
/// [`HostBuilder::storage_layer`]).
#[derive(Clone)]
struct StorageLayer(Arc<LayerFn>);

/// What a storage layer is: the opened backend in, the one the host uses out.
type LayerFn = dyn Fn(Arc<dyn Storage>) -> Arc<dyn Storage> + Send + Sync;

impl std::fmt::Debug for StorageLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageLayer")
    }
}

impl HostBuilder {
    /// What plugins may reach (outbound HTTP targets and secrets) and the
    /// limits of outbound requests; default: nothing. See [`crate::Config`]
    /// for the config file that gives them.
    pub fn grants(mut self, grants: wasmflow_core::grant::GrantTable) -> Self {
        self.grants = grants;
        self
    }

    /// The settings of a config file ([`crate::Config`]): its grants, and
    /// the lease timeout and pool size its `[database]` section gives (the
    /// database itself is the one [`HostBuilder::new`] was given).
    pub fn config(mut self, config: crate::Config) -> Self {
        if let Some(timeout) = config.database.lease_timeout {
            self.claim_lease = timeout;
        }
        if let Some(connections) = config.database.pool_size {
            self.pool_size = connections;
        }
        if let Some(retention) = config.database.retention {
            self.retention = retention;
        }
        self.grants(config.grants)
    }

    /// How long finished runs (completed, failed, cancelled, terminated)
    /// are kept: older ones are deleted in the background, a small batch at
    /// a time, with their store, inbox and history (a run with a live
    /// child, or a child with a live parent, is kept). Default: 30 days;
    /// `None`: kept for ever.
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention.filter(|r| !r.is_zero());
        self
    }

    /// How long a host's claim on a run lasts without being renewed: when a
    /// host sharing a PostgreSQL database dies, other hosts take its runs
    /// over this long after its last renewal (default 30 s; renewed every
    /// third of it while the run's activation executes).
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.claim_lease = timeout;
        self
    }

    /// Where the host's OpenTelemetry spans go (runs, activations, task
    /// attempts): an SDK span processor, e.g. a batch processor over an
    /// OTLP exporter, which the caller flushes when the host has stopped.
    /// Default: none, and no spans are made.
    pub fn spans(mut self, sink: wasmflow_engine::SpanSink) -> Self {
        self.spans = Some(sink);
        self
    }

    /// The clock of runs: what wait timeouts, sleeps, workflow timeouts,
    /// task retry delays and the guest's `now` read. Default: the system
    /// clock; the test harness (`wasmflow-testing`) gives one it moves by
    /// hand.
    pub fn clock(mut self, clock: Arc<dyn wasmflow_core::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Outcomes of tasks and responses to outbound requests given instead
    /// of running the tasks and sending the requests: for tests
    /// (`wasmflow-testing`'s `stub_task` and `stub_http`). Default: none,
    /// every task runs and every request goes out under the grants.
    pub fn stubs(mut self, stubs: Arc<dyn wasmflow_core::activation::Stubs>) -> Self {
        self.stubs = Some(stubs);
        self
    }

    /// Wrap the storage backend the host opens, e.g. to inject faults in
    /// tests (`wasmflow-testing`'s crash injection). Default: the backend
    /// as it is.
    pub fn storage_layer(
        mut self,
        layer: impl Fn(Arc<dyn Storage>) -> Arc<dyn Storage> + Send + Sync + 'static,
    ) -> Self {
        self.storage_layer = Some(StorageLayer(Arc::new(layer)));
        self
    }

    /// Connections to a PostgreSQL database (default 16).
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections;
        self
    }

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
            defaults::MAX_STEP_TIMEOUT,
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
        range(
            "lease_timeout",
            self.claim_lease,
            Duration::from_millis(500),
            Duration::from_secs(3600),
            "",
        )?;
        range("pool_size", self.pool_size, 2, 1000, "")?;
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

    /// Open the database, load the plugins and resume unfinished runs. A
    /// database another host holds is refused, naming the holder.
    pub async fn start(mut self) -> Result<Host> {
        self.check()?;
        if self.sandbox.cache_dir.is_none() {
            self.sandbox.cache_dir = Some(self.db.cache_dir());
        }
        self.sandbox.outbound = self.grants.limits;
        let sandbox =
            WasmtimeSandbox::new(self.sandbox).map_err(|e| Error::Sandbox(Box::new(e)))?;
        let quotas = Quotas {
            max_inbox_len: self.max_inbox_len,
        };
        let mut storage = self.db.open(true, quotas, self.pool_size).await?;
        if let Some(StorageLayer(layer)) = &self.storage_layer {
            storage = layer(storage);
        }
        let config = EngineConfig {
            plugins: self.plugins,
            plugin_memory: self.plugin_memory,
            step_timeout: self.step_timeout,
            max_history_len: self.max_history_len,
            grants: self.grants,
            claim_lease: self.claim_lease,
            spans: self.spans,
            clock: self.clock,
            stubs: self.stubs,
            retention: self.retention,
        };
        Host::new(config, storage, Arc::new(sandbox)).await
    }
}

/// `<path><suffix>`, e.g. `wasmflow.db.cache`.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut path = path.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}

impl HostBuilder {
    /// Start configuring a host on `db`: a SQLite file's path, or a
    /// `postgres://` URL ([`Database`]).
    pub fn new(db: impl Into<Database>) -> HostBuilder {
        HostBuilder {
            db: db.into(),
            claim_lease: defaults::CLAIM_LEASE,
            pool_size: 16,
            plugins: None,
            sandbox: SandboxConfig::default(),
            step_timeout: defaults::STEP_TIMEOUT,
            plugin_memory: HashMap::new(),
            max_inbox_len: defaults::MAX_INBOX_LEN,
            max_history_len: defaults::MAX_HISTORY_LEN,
            grants: Default::default(),
            spans: None,
            clock: Arc::new(wasmflow_engine::SystemClock),
            stubs: None,
            storage_layer: None,
            retention: Some(defaults::RETENTION),
        }
    }
}
