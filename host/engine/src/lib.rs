//! The wasmflow engine: runs durable workflows over a storage backend and a
//! sandbox, knowing neither (no wasmtime, no SQL).
//!
//! A [`Host`] is the public face: it validates requests at the door (before
//! anything is stored), creates runs, delivers events, cancels and
//! terminates, answers queries and reads runs back. Behind it the engine
//! owns scheduling: one driver per run with work executes its pending
//! activation in a fresh instance, plans the next state
//! (`wasmflow_core::plan`) and has storage commit it; durable timers fire
//! wait timeouts and workflow timeouts; the plugins directory is watched and
//! its component versions kept in the database so pinned runs find them.
//!
//! The engine is assembled from parts behind interfaces:
//! - storage: `Arc<dyn wasmflow_storage::Storage>` (the embedded SQLite
//!   backend today);
//! - the sandbox: `Arc<dyn wasmflow_core::activation::Sandbox>` (wasmtime).
//!
//! Crate `wasmflow-host` wires the defaults together; `Host::new` takes any.
//!
//! Modules: `host` (the façade and its door checks), `engine` (drivers,
//! timers, waiters, run loading, component versions), [`plugins`] (the
//! plugins directory), [`upgrade`] (the opt-in move of waiting runs to a new
//! version), `admin` (inspection without driving runs), `metrics`,
//! `telemetry` (the lifecycle log lines and the OpenTelemetry spans).

mod admin;
mod engine;
mod error;
mod host;
mod metrics;
pub mod plugins;
mod retention;
mod shared;
mod telemetry;
pub mod upgrade;

pub use admin::Admin;
pub use engine::{EngineConfig, SystemClock};
pub use error::{Error, Result};
pub use host::{Host, RunTree, StartOptions, Started};
pub use plugins::{Deployed, Origin, PluginFile, Plugins, Rejected, TypeEntry, short_version};
pub use telemetry::SpanSink;
pub use upgrade::{PinnedRun, UpgradeReport};
