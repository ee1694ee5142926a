//! Storage: the only module that knows SQL.
//!
//! Runs, their stores, inboxes and histories, and the component versions
//! they are pinned to live in an embedded SQLite file (WAL,
//! `synchronous=FULL`: an acknowledged write is on disk). Writes go through
//! one writer thread that groups whatever is queued into one transaction, so
//! concurrent activations share an fsync instead of queueing behind each
//! other's (group commit). Reads use a small pool of separate connections and
//! never wait for the writer.
//!
//! The scheduler decides a run's own next state ([`NextState`]); the rules
//! that cross runs must land in the same transaction, so they live here:
//! - a run that parks while its inbox holds events gets the oldest one
//!   dispatched at once, and an event that arrives for a parked run is
//!   dispatched at once: both happen under the writer's single transaction
//!   order, so no event is lost or handled twice (SPEC 6);
//! - children are created with their parent's commit, events to a parent are
//!   appended with the child's commit (SPEC 7);
//! - a run that ends drops its inbox, tells its parent (completion notice)
//!   and applies its children's close policies;
//! - a cancel requested during an activation takes effect when that
//!   activation commits.
//!
//! Invariants: a [`StateCommit`] lands atomically or not at all, and only if
//! the run's sequence number is still the one it was computed from; at most
//! one active (running or waiting) run per workflow id, enforced by a unique
//! index.

mod sqlite;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::WorkflowError;
use crate::model::{ClosePolicy, HandlerKind, HistoryEvent, Json, Pending, RunId, RunStatus};

pub use sqlite::Storage;

/// Storage failures. Outcomes the caller acts on (a stale commit, a taken
/// workflow id, a terminal run) are not errors here but results.
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

/// A child's link to its parent.
#[derive(Debug, Clone)]
pub struct ParentLink {
    pub run_id: RunId,
    /// The parent step told of the child's end.
    pub on_completed: Option<String>,
    pub close_policy: ClosePolicy,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: RunId,
    pub workflow_id: String,
    pub workflow_type: String,
    pub version: String,
    pub parent: Option<ParentLink>,
    pub input: Json,
    /// The start activation.
    pub pending: Pending,
    /// When the workflow timeout fails the run.
    pub deadline_ms: Option<u64>,
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

/// What goes into an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// An event for an event handler.
    Event,
    /// A child's completion notice for a parent step.
    Notice,
}

impl InboxKind {
    /// The kind of activation it becomes when dispatched.
    pub fn handler_kind(self) -> HandlerKind {
        match self {
            InboxKind::Event => HandlerKind::Event,
            InboxKind::Notice => HandlerKind::Step,
        }
    }
}

/// An event for a run's inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub run_id: RunId,
    pub name: String,
    pub payload: Json,
    pub kind: InboxKind,
    /// `client`, or the sending child's run id.
    pub source: String,
}

/// Everything one state change of a run writes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct StateCommit {
    pub run_id: RunId,
    /// The run's sequence number this commit was computed from; the commit
    /// applies only if it is still current.
    pub expected_seq: u64,
    pub next: NextState,
    /// Store writes (`None`: delete).
    pub writes: BTreeMap<String, Option<Json>>,
    pub history: Vec<HistoryEvent>,
    /// Children to create (their `parent` is this run).
    pub children: Vec<NewRun>,
    /// Events for this run's parent.
    pub to_parent: Vec<Delivery>,
    pub at_ms: u64,
}

impl StateCommit {
    pub fn new(run_id: RunId, expected_seq: u64, next: NextState, at_ms: u64) -> Self {
        StateCommit {
            run_id,
            expected_seq,
            next,
            writes: BTreeMap::new(),
            history: Vec::new(),
            children: Vec::new(),
            to_parent: Vec::new(),
            at_ms,
        }
    }
}

/// Runs a write changed besides its own target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Runs that became `running` (an inbox event was dispatched to them).
    pub woken: Vec<RunId>,
    /// Runs that reached a terminal state.
    pub finished: Vec<Finished>,
}

/// A run that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub run_id: RunId,
    pub workflow_type: String,
    pub status: RunStatus,
}

/// What became of a commit.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    Applied {
        /// The run's sequence number now.
        seq: u64,
        /// The run's next activation, when it is running: the planned one,
        /// or the inbox event dispatched as it parked.
        next: Option<Pending>,
        effects: Effects,
    },
    /// The run had moved on (or does not exist); nothing was written.
    Stale,
    /// A child's workflow id was taken by another active run meanwhile;
    /// nothing was written.
    Conflict { workflow_id: String, run_id: RunId },
}

/// Why an event or a cancel could not be applied to a run.
#[derive(Debug, thiserror::Error)]
pub enum RunGone {
    #[error("no run with id `{0}`")]
    NotFound(RunId),
    #[error("run `{run_id}` is already {status}")]
    Terminal { run_id: RunId, status: RunStatus },
    /// The run's inbox holds as many events as the `max_inbox_len` quota
    /// allows.
    #[error("the inbox of run `{run_id}` is full: {len} events (quota `max_inbox_len`)")]
    InboxFull { run_id: RunId, len: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
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
    pub on_completed: Option<String>,
    pub close_policy: ClosePolicy,
    pub input: Json,
    pub result: Option<Json>,
    pub error: Option<WorkflowError>,
    pub seq: u64,
    pub pending: Option<Pending>,
    pub timer: Option<Timer>,
    pub deadline_ms: Option<u64>,
    /// A cancel waiting for the current activation to end.
    pub cancel_requested: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// What ties a waiting run to its code besides its event handlers: the
/// steps its children's completion notices will run, and what its inbox
/// holds.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    /// `on_completed` steps of the run's live children.
    pub child_steps: Vec<String>,
    /// Inbox entries: name, and whether it is a completion notice (for a
    /// step) rather than an event.
    pub inbox: Vec<(String, bool)>,
}

/// How many live runs are pinned to a version of a workflow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVersion {
    pub workflow_type: String,
    pub version: String,
    pub runs: u64,
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
