//! Storage: the only module that knows SQL.
//!
//! Runs, their stores, their histories and the component versions they are
//! pinned to live in an embedded SQLite file (WAL, `synchronous=FULL`: an
//! acknowledged write is on disk). Writes go through one writer thread that
//! groups whatever is queued into one transaction, so concurrent activations
//! share an fsync instead of queueing behind each other's (group commit).
//! Reads use a small pool of separate connections and never wait for the
//! writer.
//!
//! Invariants kept here:
//! - a [`StateCommit`] lands atomically or not at all, and only if the run's
//!   sequence number is still the one the commit expects (a stale or
//!   duplicate commit is answered [`CommitOutcome::Stale`] and changes
//!   nothing);
//! - at most one active (running or waiting) run per workflow id, enforced by
//!   a unique index, so the check cannot race.

mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::WorkflowError;
use crate::model::{HistoryEvent, Json, Pending, RunId, RunStatus};

pub use sqlite::Storage;

/// Storage failures. A constraint the caller can act on is not an error here
/// but part of the operation's result.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database `{path}`: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database holds invalid data: {0}")]
    Corrupt(String),
    #[error("the storage writer has stopped")]
    Closed,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: RunId,
    pub workflow_id: String,
    pub workflow_type: String,
    pub version: String,
    pub parent_run_id: Option<RunId>,
    pub input: Json,
    /// The start activation.
    pub pending: Pending,
    pub at_ms: u64,
}

/// Why a run could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Another run with this workflow id is active.
    #[error("workflow id `{workflow_id}` already has an active run `{run_id}`")]
    AlreadyActive { workflow_id: String, run_id: RunId },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A wait timer: when it is due, the run's `on_timeout` step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timer {
    pub due_ms: u64,
    pub on_timeout: String,
}

/// The state a commit moves a run to.
#[derive(Debug, Clone)]
pub enum NextState {
    /// Another activation follows.
    Running(Pending),
    /// Parked until an event or the timer.
    Waiting(Option<Timer>),
    Completed(Json),
    Failed(WorkflowError),
}

impl NextState {
    pub fn status(&self) -> RunStatus {
        match self {
            NextState::Running(_) => RunStatus::Running,
            NextState::Waiting(_) => RunStatus::Waiting,
            NextState::Completed(_) => RunStatus::Completed,
            NextState::Failed(_) => RunStatus::Failed,
        }
    }
}

/// Everything one state change of a run writes, applied in one transaction:
/// the new state, store writes and history.
#[derive(Debug, Clone)]
pub struct StateCommit {
    pub run_id: RunId,
    /// The run's sequence number this commit was computed from; the commit
    /// applies only if it is still current, and increments it.
    pub expected_seq: u64,
    pub next: NextState,
    /// Store writes (`None`: delete).
    pub writes: BTreeMap<String, Option<Json>>,
    pub history: Vec<HistoryEvent>,
    pub at_ms: u64,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Applied,
    /// The run had moved on (or does not exist); nothing was written.
    Stale,
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: RunId,
    pub workflow_id: String,
    pub workflow_type: String,
    pub version: String,
    pub status: RunStatus,
    pub parent_run_id: Option<RunId>,
    pub input: Json,
    pub result: Option<Json>,
    pub error: Option<WorkflowError>,
    pub seq: u64,
    pub pending: Option<Pending>,
    pub timer: Option<Timer>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// One stored history entry.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRecord {
    /// Position in the database's commit order; increases along a run.
    pub id: i64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: HistoryEvent,
}
