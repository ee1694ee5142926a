//! The sandbox: the only crate that knows wasmtime.
//!
//! [`WasmtimeSandbox`] implements the engine's [`Sandbox`] interface
//! (`wasmflow_core::activation`). One shared [`Engine`] with the pooling
//! allocator (tuned as the wasmtime 48 notes measured: keep-resident memory,
//! tables and stacks, pagemap scan where the kernel has it) and epoch
//! interruption. A component is compiled and
//! linked once into a [`ComponentVersion`]; every activation gets a fresh
//! instance of it in a fresh store, with a memory cap, a wall-clock deadline
//! that also time-slices busy guests, and WASI with nothing granted. The
//! instance is dropped when the handler returns; what the handler did comes
//! back as an [`ActivationOutcome`] for the engine to commit.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use wasmflow_core::activation::Sandbox;
//! use wasmflow_sandbox::{SandboxConfig, WasmtimeSandbox};
//!
//! let sandbox = WasmtimeSandbox::new(SandboxConfig::default())?;
//! let bytes: Arc<[u8]> = std::fs::read("hello.wasm")?.into();
//! // Compiled, linked, and described: the workflow types it declares.
//! let version = Sandbox::load(&sandbox, bytes, None).await?;
//! for spec in &version.types {
//!     println!("{} ({} handlers) at version {}", spec.name, spec.handlers.len(), version.hash);
//! }
//! // `version.activate(request)` runs one handler in a fresh instance.
//! # Ok(()) }
//! ```
//!
//! Invariants: an instance never outlives its activation and is never shared
//! between runs; no guest error, trap or limit escapes as anything but a
//! typed [`WorkflowError`] in the outcome.

mod bindings;
pub mod decode;
mod outbound;
mod output;
mod state;
mod tasks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime::{Store, Trap, UpdateDeadline};

use bindings::types as wit;
use state::{ActivationInput, ActivationLimits, ActivationState, Stop};
use wasmflow_core::activation::{
    ActivationOutcome, ActivationRequest, BoxFuture, CompiledComponent, ComponentVersion,
    LoadError, LogLevel, RunIdentity, Sandbox,
};
use wasmflow_core::model::{RunId, WorkflowTypeSpec};
use wasmflow_core::{ErrorKind, HandlerKind, WorkflowError};

wasmflow_protocol::wit_conversions!(crate::bindings::types);

/// Settings of the sandbox. Every field has a default; the host's builder
/// sets them.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Linear memory cap per instance (a plugin may get a lower one, see
    /// [`Sandbox::load`]); also the size of each pooled memory slot.
    pub memory_bytes: usize,
    /// Instances that may exist at once; activations beyond this wait.
    pub instance_slots: u32,
    /// Wasm stack limit per activation.
    pub max_wasm_stack: usize,
    /// Largest JSON value a guest may store, return or send.
    pub max_value_bytes: usize,
    /// Largest total size of a run's store (keys and values).
    pub max_store_bytes: usize,
    /// Log bytes kept per activation (log calls, stdout, stderr).
    pub log_bytes: usize,
    /// Children one activation may start.
    pub max_children_per_activation: usize,
    /// Events one activation may send to its parent.
    pub max_events_per_activation: usize,
    /// Longest store key, in bytes.
    pub max_key_bytes: usize,
    /// Store keys one activation may write or delete.
    pub max_keys_changed_per_activation: usize,
    /// Longest name a guest gives the host (types, handlers, parameters,
    /// steps, child workflow ids, event names), in bytes.
    pub max_name_bytes: usize,
    /// Longest error message a guest may fail with, in bytes.
    pub max_message_bytes: usize,
    /// Largest error details a guest may fail with, as JSON text.
    pub max_details_bytes: usize,
    /// Log lines kept per activation; the rest are counted.
    pub max_log_lines: usize,
    /// Longest log line kept, in bytes.
    pub max_log_line_bytes: usize,
    /// Workflow types one component may declare.
    pub max_types_per_component: usize,
    /// Deadline of the `describe` call when a component is loaded.
    pub describe_timeout: Duration,
    /// Memory caps, deadlines and epoch time-slicing. Only the benchmark
    /// turns this off, to measure what the limits cost.
    pub enforce_limits: bool,
    /// Where compiled components are cached (keyed by content and engine
    /// settings), so a restart does not compile them again. `None`: no
    /// cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Timeout and response cap of outbound HTTP requests.
    pub outbound: wasmflow_core::grant::OutboundLimits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        use wasmflow_core::limits as d;
        SandboxConfig {
            memory_bytes: d::MEMORY_BYTES,
            instance_slots: d::INSTANCE_SLOTS,
            max_wasm_stack: d::MAX_WASM_STACK,
            max_value_bytes: d::MAX_VALUE_BYTES,
            max_store_bytes: d::MAX_STORE_BYTES,
            log_bytes: d::LOG_BYTES,
            max_children_per_activation: d::MAX_CHILDREN_PER_ACTIVATION,
            max_events_per_activation: d::MAX_EVENTS_PER_ACTIVATION,
            max_key_bytes: d::MAX_KEY_BYTES,
            max_keys_changed_per_activation: d::MAX_KEYS_CHANGED_PER_ACTIVATION,
            max_name_bytes: d::MAX_NAME_BYTES,
            max_message_bytes: d::MAX_MESSAGE_BYTES,
            max_details_bytes: d::MAX_DETAILS_BYTES,
            max_log_lines: d::MAX_LOG_LINES,
            max_log_line_bytes: d::MAX_LOG_LINE_BYTES,
            max_types_per_component: d::MAX_TYPES_PER_COMPONENT,
            describe_timeout: d::DESCRIBE_TIMEOUT,
            enforce_limits: true,
            cache_dir: None,
            outbound: Default::default(),
        }
    }
}

/// The wasmtime engine, the linker, the instance pool and the epoch clock.
/// Cheap to clone: clones share them.
#[derive(Clone)]
pub struct WasmtimeSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<ActivationState>,
    slots: Arc<Semaphore>,
    config: SandboxConfig,
    _ticker: EpochTicker,
}

/// A component compiled and linked by a [`WasmtimeSandbox`].
struct Compiled {
    pre: bindings::WorkflowPre<ActivationState>,
    sandbox: Arc<Inner>,
}

impl CompiledComponent for Compiled {
    fn activate(
        &self,
        memory_bytes: usize,
        request: ActivationRequest,
    ) -> BoxFuture<'_, ActivationOutcome> {
        Box::pin(self.sandbox.activate(&self.pre, memory_bytes, request))
    }
}

impl Sandbox for WasmtimeSandbox {
    fn load(
        &self,
        bytes: Arc<[u8]>,
        memory_bytes: Option<usize>,
    ) -> BoxFuture<'_, Result<ComponentVersion, LoadError>> {
        Box::pin(self.load(bytes, memory_bytes))
    }
}

/// Epoch interruption advances one tick per millisecond.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("compilation cache `{}`", dir.display())]
    CacheDir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wasmtime: {0}")]
    Wasmtime(String),
    #[error("cannot start the epoch thread")]
    Ticker(#[source] std::io::Error),
}

impl WasmtimeSandbox {
    pub fn new(config: SandboxConfig) -> Result<WasmtimeSandbox, SetupError> {
        let slots = config.instance_slots;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .max_core_instances_per_component(16)
            .total_core_instances(slots.saturating_mul(16))
            .max_memories_per_component(2)
            .total_memories(slots.saturating_mul(2))
            .max_tables_per_component(8)
            .total_tables(slots.saturating_mul(8))
            // wasmtime may run a step of an activation (an async host call,
            // a resource's destructor) on a fiber of its own while the
            // activation's fiber waits: two stacks per slot.
            .total_stacks(slots.saturating_mul(2))
            .max_memory_size(config.memory_bytes)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(128 << 10)
            .pagemap_scan(Enabled::Auto);

        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(config.enforce_limits)
            .max_wasm_stack(config.max_wasm_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = &config.cache_dir {
            let dir = std::path::absolute(dir)
                .and_then(|d| std::fs::create_dir_all(&d).map(|()| d))
                .map_err(|source| SetupError::CacheDir {
                    dir: dir.clone(),
                    source,
                })?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache =
                wasmtime::Cache::new(cache).map_err(|e| SetupError::Wasmtime(error_chain(&e)))?;
            cfg.cache(Some(cache));
        }
        let engine = Engine::new(&cfg).map_err(|e| SetupError::Wasmtime(error_chain(&e)))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| SetupError::Wasmtime(error_chain(&e)))?;
        // Outbound HTTP, checked against the run's grants (`outbound.rs`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| SetupError::Wasmtime(error_chain(&e)))?;
        bindings::Workflow::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| SetupError::Wasmtime(error_chain(&e)))?;

        let ticker = EpochTicker::start(engine.clone()).map_err(SetupError::Ticker)?;
        Ok(WasmtimeSandbox {
            inner: Arc::new(Inner {
                engine,
                linker,
                slots: Arc::new(Semaphore::new(slots as usize)),
                config,
                _ticker: ticker,
            }),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Compile, link and describe a component. Compilation runs on a blocking
    /// thread, off the scheduler's workers. Its instances get `memory_bytes`
    /// of memory at most (capped by the sandbox's own limit).
    pub async fn load(
        &self,
        bytes: Arc<[u8]>,
        memory_bytes: Option<usize>,
    ) -> Result<ComponentVersion, LoadError> {
        let memory_bytes = memory_bytes
            .unwrap_or(self.inner.config.memory_bytes)
            .min(self.inner.config.memory_bytes);
        check_header(&bytes)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let engine = self.inner.engine.clone();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| LoadError(format!("compilation did not finish: {e}")))?
            .map_err(|e| LoadError(format!("invalid component: {}", error_chain(&e))))?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError(describe_link_error(&e)))?;
        let pre = bindings::WorkflowPre::new(pre).map_err(|e| {
            LoadError(format!(
                "does not target the wasmflow world: {}",
                error_chain(&e)
            ))
        })?;
        let types = self.inner.describe(&pre, &hash, memory_bytes).await?;
        Ok(ComponentVersion {
            hash,
            types,
            memory_bytes,
            compiled: Arc::new(Compiled {
                pre,
                sandbox: self.inner.clone(),
            }),
        })
    }
}

impl Inner {
    async fn describe(
        &self,
        pre: &bindings::WorkflowPre<ActivationState>,
        hash: &str,
        memory_bytes: usize,
    ) -> Result<Vec<Arc<WorkflowTypeSpec>>, LoadError> {
        let run = Arc::new(RunIdentity {
            workflow_type: String::new(),
            workflow_id: String::new(),
            run_id: RunId::new(),
            version: hash.to_owned(),
            parent: None,
        });
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| LoadError("the sandbox is shutting down".into()))?;
        let mut store = self.new_store(
            Instant::now() + self.config.describe_timeout,
            memory_bytes,
            ActivationInput {
                run,
                spec: None,
                services: None,
                handler: "describe".into(),
                sequence: 0,
                committed: Arc::default(),
                committed_bytes: 0,
                read_only: true,
                journal: Arc::default(),
                grants: Arc::default(),
            },
        );
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .wasmflow_workflow_guest()
                .call_describe(&mut store)
                .await
        }
        .await;
        let infos = match result {
            Ok(infos) => infos,
            Err(e) => {
                let error = classify_trap(&e, store.data());
                return Err(LoadError(format!("`describe` failed: {error}")));
            }
        };
        decode::describe(infos, self.config.max_types_per_component)
    }

    fn new_store(
        &self,
        deadline: Instant,
        memory_bytes: usize,
        input: ActivationInput,
    ) -> Store<ActivationState> {
        let limits = ActivationLimits {
            memory_bytes,
            max_value_bytes: self.config.max_value_bytes,
            max_store_bytes: self.config.max_store_bytes,
            log_bytes: self.config.log_bytes,
            max_children: self.config.max_children_per_activation,
            max_events_sent: self.config.max_events_per_activation,
            max_key_bytes: self.config.max_key_bytes,
            max_keys_changed: self.config.max_keys_changed_per_activation,
            max_name_bytes: self.config.max_name_bytes,
            max_message_bytes: self.config.max_message_bytes,
            max_log_lines: self.config.max_log_lines,
            max_log_line_bytes: self.config.max_log_line_bytes,
            max_details_bytes: self.config.max_details_bytes,
            outbound: self.config.outbound,
        };
        let state = ActivationState::new(limits, deadline, input);
        let mut store = Store::new(&self.engine, state);
        if !self.config.enforce_limits {
            return store;
        }
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        // Check the deadline at every tick and yield to other tasks in
        // between: one busy guest cannot starve the rest of the host.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(Stop::Deadline))
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }

    /// Run one handler in a fresh instance of `component`. Waits for a free
    /// instance slot first (back-pressure, never an error).
    async fn activate(
        &self,
        pre: &bindings::WorkflowPre<ActivationState>,
        memory_bytes: usize,
        request: ActivationRequest,
    ) -> ActivationOutcome {
        let _permit = match self.slots.acquire().await {
            Ok(permit) => permit,
            Err(_) => {
                return ActivationOutcome::failed(WorkflowError::new(
                    ErrorKind::Trap,
                    "the sandbox is shutting down",
                ));
            }
        };
        let started = Instant::now();
        let mut store = self.new_store(
            started + request.timeout,
            memory_bytes,
            ActivationInput {
                run: request.run,
                spec: Some(request.spec),
                services: Some(request.services),
                handler: request.handler.clone(),
                sequence: request.sequence,
                committed: request.store,
                committed_bytes: request.store_bytes,
                read_only: request.kind == HandlerKind::Query,
                journal: request.journal,
                grants: request.grants,
            },
        );
        let activation = wit::Activation {
            workflow_type: store.data().run_identity().workflow_type.clone(),
            kind: handler_kind_to_wit(request.kind),
            handler: request.handler,
            input: request.input.get().to_owned(),
        };
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .wasmflow_workflow_guest()
                .call_handle(&mut store, &activation)
                .await
        }
        .await;
        let duration = started.elapsed();
        // A rule the guest broke wins over whatever it returned afterwards.
        let violation = store
            .data()
            .violation
            .clone()
            .or_else(|| store.data().outbound.violation());
        let result = match (call, violation) {
            (Ok(_), Some(violation)) => Err(violation),
            (Ok(Ok(directive)), None) => decode::directive(directive, &self.config),
            (Ok(Err(error)), None) => {
                Err(decode::error(error, &self.config).unwrap_or_else(|quota| quota))
            }
            (Err(e), _) => Err(classify_trap(&e, store.data())),
        };
        let mut state = store.into_data();
        for (output, level, name) in [
            (state.stdout.clone(), LogLevel::Info, "stdout"),
            (state.stderr.clone(), LogLevel::Warn, "stderr"),
        ] {
            let (bytes, dropped) = output.take();
            for line in String::from_utf8_lossy(&bytes).lines() {
                state.push_log(level, line);
            }
            if dropped > 0 {
                state.push_log(
                    LogLevel::Warn,
                    &format!("[{dropped} more bytes of {name} dropped]"),
                );
            }
        }
        let logs = state.finish_logs();
        ActivationOutcome {
            result,
            writes: state.writes,
            children: state.children,
            sent: state.sent,
            logs,
            duration,
            host_fault: state.host_fault,
            retry_at_ms: state.tasks.retry_at_ms,
        }
    }
}

/// Type a wasmtime error from a guest call.
fn classify_trap(error: &wasmtime::Error, state: &ActivationState) -> WorkflowError {
    if let Some(v) = &state.violation {
        return v.clone();
    }
    if let Some(stop) = error.downcast_ref::<Stop>() {
        return match stop {
            Stop::Deadline => WorkflowError::new(
                ErrorKind::StepTimeout,
                "the activation exceeded its step timeout",
            ),
            Stop::Memory { .. } => WorkflowError::new(ErrorKind::MemoryLimit, stop.to_string()),
            Stop::Violation(e) => e.clone(),
            Stop::HostFault(fault) => {
                WorkflowError::new(ErrorKind::Trap, format!("host fault: {fault}"))
            }
            Stop::Park => WorkflowError::new(ErrorKind::Trap, stop.to_string()),
        };
    }
    if state.memory_exceeded {
        return WorkflowError::new(
            ErrorKind::MemoryLimit,
            format!(
                "memory limit of {} bytes exceeded",
                state.limits.memory_bytes
            ),
        );
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => WorkflowError::new(
            ErrorKind::StackOverflow,
            "the activation exhausted its wasm stack",
        ),
        Some(Trap::Interrupt) => WorkflowError::new(
            ErrorKind::StepTimeout,
            "the activation exceeded its step timeout",
        ),
        _ => {
            // The SDK's panic hook reports the panic message; a guest without
            // it at least left its stderr.
            let message = match &state.panic {
                Some(panic) => panic.clone(),
                None => {
                    let trap = error.root_cause().to_string();
                    match state.stderr.tail(1024) {
                        Some(stderr) => format!("{trap}; guest stderr: {stderr}"),
                        None => trap,
                    }
                }
            };
            WorkflowError::new(ErrorKind::Trap, message)
        }
    }
}

/// Recognise files that are not components before handing them to wasmtime,
/// so the message says what the file is.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError(
            "not a WebAssembly file (it does not start with `\\0asm`)".to_owned(),
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError(
            "a core WebAssembly module, not a component; build it with `--target wasm32-wasip2`"
                .to_owned(),
        ));
    }
    Ok(())
}

fn describe_link_error(e: &wasmtime::Error) -> String {
    let chain = error_chain(e);
    // wasmtime says "component imports instance `x`, but a matching
    // implementation was not found in the linker".
    match chain.split('`').nth(1) {
        Some(name) if chain.contains("not found in the linker") => {
            format!("imports `{name}`, which the host does not provide")
        }
        _ => format!("cannot be linked: {chain}"),
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasmflow-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_in_the_wit_world_round_trips() {
        for kind in ErrorKind::ALL.iter().filter(|k| k.in_wit()) {
            assert_eq!(error_kind_from_wit(error_kind_to_wit(*kind)), *kind);
        }
        for kind in HandlerKind::ALL {
            assert_eq!(handler_kind_from_wit(handler_kind_to_wit(*kind)), *kind);
        }
    }
}
