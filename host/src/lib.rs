//! The wasmflow host: runs durable workflows compiled to WebAssembly
//! components.
//!
//! A [`Host`] loads the workflow components of a plugins directory, runs
//! every activation of every run in a fresh sandboxed instance, and commits
//! each activation's effects atomically to an embedded SQLite database, so a
//! host that stops (or crashes) and starts again finishes every run.
//!
//! ```no_run
//! # async fn f() -> wasmflow_host::Result<()> {
//! use wasmflow_host::{Host, StartOptions};
//!
//! let host = Host::builder("wasmflow.db").plugins("./plugins").start().await?;
//! let run = host.start("Greeter", r#"{"name":"Ada"}"#, StartOptions::new()).await?;
//! let done = host.wait(run.run_id).await?;
//! assert_eq!(done.result.unwrap().get(), r#""Hello, Ada""#);
//! # Ok(()) }
//! ```
//!
//! See `ARCHITECTURE.md` for how the modules fit together.

mod admin;
pub mod api;
pub mod defaults;
mod error;
mod host;
mod metrics;
mod model;
mod plugins;
pub mod sandbox;
mod scheduler;
mod storage;
mod upgrade;

pub use admin::Admin;
pub use error::{Error, ErrorKind, Result, WorkflowError};
pub use host::{Host, HostBuilder, RunTree, StartOptions, Started};
pub use model::{
    Directive, HandlerKind, HandlerSpec, HistoryEvent, Json, ParamSpec, Pending, RunId, RunStatus,
    WorkflowTypeSpec,
};
pub use plugins::{Plugins, Rejected, TypeEntry, short_version};
pub use sandbox::ComponentVersion;
pub use storage::{HistoryRecord, LiveVersion, RunRecord, StorageError, Timer};
pub use upgrade::{PinnedRun, UpgradeReport};
