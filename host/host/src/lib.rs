//! The embeddable wasmflow host: runs durable workflows compiled to
//! WebAssembly components, on an embedded SQLite file.
//!
//! A [`Host`] loads the workflow components of a plugins directory, runs
//! every activation of every run in a fresh sandboxed instance, and commits
//! each activation's effects atomically to the database, so a host that
//! stops (or crashes) and starts again finishes every run.
//!
//! ```no_run
//! # async fn f() -> wasmflow_host::Result<()> {
//! use wasmflow_host::{HostBuilder, StartOptions};
//!
//! let host = HostBuilder::new("wasmflow.db").plugins("./plugins").start().await?;
//! let run = host.start("Greeter", r#"{"name":"Ada"}"#, StartOptions::new()).await?;
//! let done = host.wait(run.run_id).await?;
//! assert_eq!(done.result.unwrap().get(), r#""Hello, Ada""#);
//! # Ok(()) }
//! ```
//!
//! This crate is the wiring: [`HostBuilder`] checks the settings and
//! assembles the engine (`wasmflow-engine`) with the SQLite backend
//! (`wasmflow-storage-sqlite`) and the wasmtime sandbox
//! (`wasmflow-sandbox`). One database, one host: a second host on a file
//! that a running host holds is refused at start, naming the holder. The
//! types a user of the host meets are re-exported here. See
//! `ARCHITECTURE.md` for how the crates fit together.

mod builder;
mod config;
mod database;

use std::path::Path;
use std::sync::Arc;

pub use builder::HostBuilder;
pub use config::{Config, ConfigError};
pub use database::Database;
pub use wasmflow_core::activation;
pub use wasmflow_core::activation::ComponentVersion;
pub use wasmflow_core::limits as defaults;
pub use wasmflow_core::model::{
    Directive, HandlerSpec, HistoryEvent, Json, ParamSpec, Pending, RunId, WorkflowTypeSpec,
    json_value,
};
pub use wasmflow_core::plan::{InboxKind, Timer};
pub use wasmflow_core::{
    ChildStatus, ClosePolicy, ErrorKind, HandlerKind, RunStatus, WorkflowError,
};
pub use wasmflow_core::{clock, grant, journal};
pub use wasmflow_engine::{
    Admin, Deployed, Error, Host, Origin, PinnedRun, PluginFile, Plugins, Rejected, Result,
    RunTree, StartOptions, Started, SystemClock, TypeEntry, UpgradeReport, short_version,
};
pub use wasmflow_sandbox as sandbox;
pub use wasmflow_storage::{
    HistoryRecord, InboxEntry, LiveVersion, NotRetryable, RunFilter, RunRecord, StorageError,
};

use wasmflow_sandbox::{SandboxConfig, WasmtimeSandbox};
use wasmflow_storage::Quotas;

/// Open the database `db` and load the plugins of `plugins` once, to look
/// and upgrade without driving runs (`wasmflow types`, `wasmflow upgrade`),
/// also while a host works on the same database.
pub async fn open_admin(db: &Database, plugins: &Path) -> Result<Admin> {
    let sandbox = sandbox_with_cache(db)?;
    let quotas = Quotas {
        max_inbox_len: defaults::MAX_INBOX_LEN,
    };
    let storage = db.open(false, quotas, 4).await?;
    Admin::new(storage, Arc::new(sandbox), plugins).await
}

/// Load every `*.wasm` file of `dir` once, to see what it provides.
pub async fn inspect_plugins(dir: &Path) -> Result<Plugins> {
    let sandbox =
        WasmtimeSandbox::new(SandboxConfig::default()).map_err(|e| Error::Sandbox(Box::new(e)))?;
    Plugins::inspect(dir, &sandbox).await
}

/// A default sandbox with the database's compilation cache.
fn sandbox_with_cache(db: &Database) -> Result<WasmtimeSandbox> {
    let config = SandboxConfig {
        cache_dir: Some(db.cache_dir()),
        ..SandboxConfig::default()
    };
    WasmtimeSandbox::new(config).map_err(|e| Error::Sandbox(Box::new(e)))
}
