//! The engine's public error type.

use std::path::PathBuf;

use wasmflow_core::activation::LoadError;
use wasmflow_core::model::RunId;
use wasmflow_core::{ErrorKind, RunStatus, WorkflowError};
use wasmflow_storage::{RunGone, StorageError};

/// What an engine call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request was rejected before anything was stored: an unknown workflow
    /// type, an input that does not fit the start handler, an id that is
    /// already active, ...
    #[error(transparent)]
    Rejected(#[from] WorkflowError),
    #[error("cannot read the plugins directory `{}`", path.display())]
    PluginsDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No run with this run id or workflow id.
    #[error("no run `{0}`")]
    RunNotFound(String),
    /// The run has ended; it takes no more events, cancels or terminations.
    #[error("run `{run_id}` is already {status}")]
    RunTerminal { run_id: RunId, status: RunStatus },
    /// A setting is out of range.
    #[error("invalid setting `{setting}`: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
    /// The sandbox could not be set up.
    #[error("the sandbox could not be set up")]
    Sandbox(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A component version a run is pinned to is in neither this host's
    /// plugins nor the database.
    #[error("component version `{version}` is not in the database")]
    VersionMissing { version: String },
    /// A component version kept in the database no longer loads.
    #[error("component version `{version}` does not load")]
    VersionInvalid {
        version: String,
        #[source]
        source: LoadError,
    },
    /// A run's component version does not provide its workflow type.
    #[error("component version `{version}` does not provide workflow type `{workflow_type}`")]
    TypeMissing {
        version: String,
        workflow_type: String,
    },
    /// The host could not serve an activation (storage failed, a pinned
    /// version would not load).
    #[error("the host could not serve the activation")]
    HostFault(#[source] wasmflow_core::activation::HostFault),
    /// A workflow type without a start handler (`describe` validation
    /// forbids it; a type read back from elsewhere could still lack one).
    #[error("workflow type `{workflow_type}` has no start handler")]
    TypeWithoutStart { workflow_type: String },
    /// A query handler failed (trapped, hit a limit, returned an error, or
    /// tried to change the run).
    #[error("the query failed: {0}")]
    QueryFailed(#[source] WorkflowError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the host is shutting down")]
    ShuttingDown,
    /// A run changed while one of its activations was executing (ended,
    /// or driven by another host): what the activation did is dropped.
    #[error("run `{run_id}` moved on while its activation was executing")]
    RunMovedOn { run_id: RunId },
    /// `retry` of a run that cannot be retried.
    #[error(transparent)]
    NotRetryable(#[from] wasmflow_storage::NotRetryable),
    /// A plugin file deployed over the API did not pass the checks a file
    /// of the plugins directory passes; nothing was written.
    #[error("plugin file `{file}` was rejected: {reason}")]
    PluginRejected { file: String, reason: String },
    /// A deployed plugin file could not be written into the plugins
    /// directory; nothing changed.
    #[error("cannot write plugin file `{}`", path.display())]
    PluginWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A deployment to a host without a plugins directory.
    #[error("this host has no plugins directory to deploy into")]
    NoPluginsDir,
    /// A start asked for a component version this host has not loaded.
    #[error(
        "no component version `{version}` is loaded on this host (`wasmflow plugins` and `wasmflow types` list them)"
    )]
    UnknownVersion { version: String },
    /// A version prefix that matches several loaded versions of the type.
    #[error("version prefix `{prefix}` matches {} versions of `{workflow_type}` ({}); give more digits", matches.len(), matches.join(", "))]
    AmbiguousVersion {
        prefix: String,
        workflow_type: String,
        matches: Vec<String>,
    },
    /// A start asked for a version whose component does not provide the
    /// workflow type.
    #[error("component version `{version}` does not provide workflow type `{workflow_type}`")]
    VersionWithoutType {
        version: String,
        workflow_type: String,
    },
    /// A thread panicked while holding a lock of the host's.
    #[error("{what} is unusable: a thread panicked while changing it")]
    Poisoned { what: &'static str },
}

impl From<RunGone> for Error {
    fn from(e: RunGone) -> Self {
        match e {
            RunGone::NotFound(run_id) => Error::RunNotFound(run_id.to_string()),
            RunGone::Terminal { run_id, status } => Error::RunTerminal { run_id, status },
            RunGone::InboxFull { run_id, len } => Error::Rejected(
                WorkflowError::quota("max_inbox_len", len + 1, len).with_details(
                    serde_json::json!({
                        "limit": "max_inbox_len", "value": len + 1, "max": len,
                        "run_id": run_id.to_string(),
                    }),
                ),
            ),
        }
    }
}

impl From<wasmflow_core::activation::ServiceError> for Error {
    fn from(e: wasmflow_core::activation::ServiceError) -> Self {
        match e {
            wasmflow_core::activation::ServiceError::Guest(e) => Error::Rejected(e),
            wasmflow_core::activation::ServiceError::Host(fault) => Error::HostFault(fault),
        }
    }
}

impl Error {
    /// The typed kind, when the error is a door rejection.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Rejected(e) => Some(e.kind),
            _ => None,
        }
    }
}

/// `Result<T, wasmflow_engine::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
