//! Errors: the typed [`WorkflowError`] that runs fail with and guests match
//! on (SPEC 10), and the host API's [`Error`].

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a user or a guest can match on. Mirrors the WIT
/// `error-kind` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    KeyNotFound,
    InvalidPayload,
    UnknownStep,
    UnknownEvent,
    UnknownWorkflowType,
    NoParent,
    WorkflowAlreadyRunning,
    WorkflowTimeout,
    StepTimeout,
    MemoryLimit,
    StackOverflow,
    Trap,
    QuotaExceeded,
    NotSupported,
    Cancelled,
    Terminated,
    Application,
    /// A query name the run's workflow type has no handler for (host only:
    /// guests never see it).
    UnknownQuery,
}

impl ErrorKind {
    /// The name used in output and JSON, e.g. `KeyNotFound`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::KeyNotFound => "KeyNotFound",
            ErrorKind::InvalidPayload => "InvalidPayload",
            ErrorKind::UnknownStep => "UnknownStep",
            ErrorKind::UnknownEvent => "UnknownEvent",
            ErrorKind::UnknownWorkflowType => "UnknownWorkflowType",
            ErrorKind::NoParent => "NoParent",
            ErrorKind::WorkflowAlreadyRunning => "WorkflowAlreadyRunning",
            ErrorKind::WorkflowTimeout => "WorkflowTimeout",
            ErrorKind::StepTimeout => "StepTimeout",
            ErrorKind::MemoryLimit => "MemoryLimit",
            ErrorKind::StackOverflow => "StackOverflow",
            ErrorKind::Trap => "Trap",
            ErrorKind::QuotaExceeded => "QuotaExceeded",
            ErrorKind::NotSupported => "NotSupported",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Terminated => "Terminated",
            ErrorKind::Application => "Application",
            ErrorKind::UnknownQuery => "UnknownQuery",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed error: why a run failed, or why a request was rejected at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WorkflowError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl WorkflowError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WorkflowError {
            kind,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A per-run or per-activation quota was exceeded.
    pub fn quota(limit: &str, value: u64, max: u64) -> Self {
        WorkflowError::new(
            ErrorKind::QuotaExceeded,
            format!("quota `{limit}` exceeded: {value} > {max}"),
        )
        .with_details(serde_json::json!({"limit": limit, "value": value, "max": max}))
    }
}

/// The host API's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request was rejected before anything was stored: an unknown workflow
    /// type, an input that does not fit the start handler, an id that is
    /// already active, ...
    #[error(transparent)]
    Rejected(#[from] WorkflowError),
    #[error("cannot read the plugins directory `{}`", path.display())]
    PluginsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No run with this run id or workflow id.
    #[error("no run `{0}`")]
    RunNotFound(String),
    /// The run has ended; it takes no more events, cancels or terminations.
    #[error("run `{run_id}` is already {status}")]
    RunTerminal {
        run_id: String,
        status: crate::model::RunStatus,
    },
    #[error("invalid setting `{setting}`: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A query handler failed (trapped, hit a limit, returned an error, or
    /// tried to change the run).
    #[error("the query failed: {0}")]
    QueryFailed(WorkflowError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("the host is shutting down")]
    ShuttingDown,
}

impl From<crate::storage::RunGone> for Error {
    fn from(e: crate::storage::RunGone) -> Self {
        use crate::storage::RunGone;
        match e {
            RunGone::NotFound(run_id) => Error::RunNotFound(run_id.to_string()),
            RunGone::Terminal { run_id, status } => Error::RunTerminal {
                run_id: run_id.to_string(),
                status,
            },
            RunGone::InboxFull { run_id, len } => Error::Rejected(WorkflowError::quota(
                "max_inbox_len",
                len + 1,
                len,
            ).with_details(serde_json::json!({
                "limit": "max_inbox_len", "value": len + 1, "max": len, "run_id": run_id.to_string(),
            }))),
            RunGone::Storage(e) => Error::Storage(e),
        }
    }
}

impl From<crate::sandbox::ServiceError> for Error {
    fn from(e: crate::sandbox::ServiceError) -> Self {
        match e {
            crate::sandbox::ServiceError::Guest(e) => Error::Rejected(e),
            crate::sandbox::ServiceError::Host(fault) => Error::Engine(fault),
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

/// `Result<T, wasmflow_host::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
