//! The storage interface: what the engine asks of a database, and the
//! rules that cross runs, written once for every backend.
//!
//! A backend (SQLite now, PostgreSQL next) implements two small traits:
//!
//! - [`RunTx`]: row-level operations inside one transaction — read a run's
//!   state, insert a run, update its state columns, store writes, history
//!   appends, inbox push/pop, live children, savepoints. No rule lives in a
//!   backend: it never decides what a state change means.
//! - [`Storage`]: the backend's handle. Its one write entry point,
//!   [`Storage::write`], opens a transaction, hands it to
//!   [`rules::apply`] with the [`Write`] to perform, and commits; the typed
//!   methods ([`Storage::commit`], [`Storage::deliver`], ...) are provided on
//!   top of it. Reads are plain queries.
//!
//! [`rules`] holds the cross-run rules of SPEC 6 and 7, over [`RunTx`]:
//! - a run that parks while its inbox holds events gets the oldest one
//!   dispatched at once, and an event that arrives for a parked run is
//!   dispatched at once: both inside the writing transaction, so no event is
//!   lost or handled twice;
//! - children are created with their parent's commit (a taken workflow id
//!   undoes the whole commit), events to a parent are appended with the
//!   child's commit;
//! - a run that ends drops its inbox, tells its parent (completion notice)
//!   and applies its children's close policies;
//! - a cancel requested during an activation takes effect when that
//!   activation commits.
//!
//! [`conformance`] runs those rules against a backend through this
//! interface, at unit-test speed and without wasm: every backend's tests call
//! [`conformance_tests!`](crate::conformance_tests).
//!
//! Invariants every backend keeps: a [`Write`] lands atomically or not at
//! all; a [`StateCommit`] applies only if the run's sequence number is still
//! the one it was computed from (the sequence guard, which also rejects a
//! commit from a host whose lease on the run expired); at most one active
//! (running or waiting) run per workflow id.
//!
//! Several hosts on one database: a host drives a run only while it holds
//! the run's claim ([`Storage::claim`], a lease that expires); a backend
//! that one host holds exclusively (SQLite) grants every claim.

pub mod conformance;
pub mod rows;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use wasmflow_core::activation::StoreMap;
use wasmflow_core::journal::{Journal, JournalEntry};
use wasmflow_core::model::{HistoryEvent, Json, Pending, RunId};
use wasmflow_core::plan::{Delivery, InboxKind, NewRun, NextState, Timer};
use wasmflow_core::{ClosePolicy, RunStatus, WorkflowError};

/// Storage failures. Outcomes the caller acts on (a stale commit, a taken
/// workflow id, a terminal run) are not errors here but results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database could not be opened or prepared.
    #[error("database `{path}`: {reason}")]
    Open {
        path: String,
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Another process holds the database (one host per SQLite file).
    #[error(
        "database `{path}` is in use by another wasmflow host ({holder}); stop it or use another database"
    )]
    Locked { path: String, holder: String },
    /// The database was written by a newer wasmflow.
    #[error(
        "database `{path}` has schema version {found}, newer than this wasmflow's {supported}; use a newer wasmflow"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    /// A migration could not be applied.
    #[error("database `{path}`: cannot migrate the schema")]
    Migration {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend failed a query.
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data does not read back as what was written.
    #[error("database holds invalid data: {0}")]
    Corrupt(String),
    /// The database cannot be reached now (the server is down, the
    /// connection was lost): nothing of the failed call was applied, or a
    /// commit's outcome is unknown and the sequence guard settles it when
    /// the call is made again. The caller retries later.
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("the storage writer has stopped")]
    Closed,
}

impl StorageError {
    /// Wrap a backend's own error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StorageError::Backend(Box::new(e))
    }

    /// Whether the call may succeed when made again once the database is
    /// back ([`StorageError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. })
    }
}

/// What another host sharing the database did that this host may care
/// about, as a backend shared by several hosts reports it
/// ([`Storage::notices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A run ended (on any host): callers waiting for it look again.
    Finished(RunId),
    /// A component version was kept in the database (by any host).
    Component(String),
    /// A host loaded plugin file `file` at `version` ([`Storage::deploy`]):
    /// every host starts new runs of its types from it.
    Deployed { file: String, version: String },
    /// A host's plugins directory lost `file` ([`Storage::retire`]).
    Retired { file: String },
    /// Notices may have been missed (a reconnect, a slow reader): look at
    /// everything again.
    Resync,
}

/// Another active run holds the workflow id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow id `{workflow_id}` already has an active run `{run_id}`")]
pub struct AlreadyActive {
    pub workflow_id: String,
    pub run_id: RunId,
}

/// Why an event, a cancel or a termination could not be applied to a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunGone {
    #[error("no run with id `{0}`")]
    NotFound(RunId),
    #[error("run `{run_id}` is already {status}")]
    Terminal { run_id: RunId, status: RunStatus },
    /// The run's inbox holds as many events as the `max_inbox_len` quota
    /// allows.
    #[error("the inbox of run `{run_id}` is full: {len} events (quota `max_inbox_len`)")]
    InboxFull { run_id: RunId, len: u64 },
}

/// Why a run's activation could not be executed again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRetryable {
    #[error("no run with id `{0}`")]
    NotFound(RunId),
    /// `retry` of a run that has not failed.
    #[error("run `{run_id}` is {status}, not failed: only a failed run can be retried")]
    NotFailed { run_id: RunId, status: RunStatus },
    /// The run failed outside an activation (a wait or workflow timeout).
    #[error(
        "run `{0}` did not fail in an activation (it timed out waiting): there is no activation to execute again"
    )]
    NoActivation(RunId),
    /// Another run of the workflow id is active now.
    #[error(
        "workflow id `{workflow_id}` has an active run `{holder}` now; end it before retrying this one"
    )]
    WorkflowIdTaken { workflow_id: String, holder: RunId },
    /// A retry timer that is no longer current.
    #[error("run `{0}` moved on")]
    Stale(RunId),
}

/// What executes a run's activation again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A task's retry delay passed; the run waits at sequence number `seq`.
    RetryDue { seq: u64 },
    /// `retry` of a failed run, on `to_version` when given.
    Failed { to_version: Option<String> },
}

/// One atomic write: what [`Storage::write`] applies in one transaction
/// through [`rules::apply`].
#[derive(Debug, Clone)]
pub enum Write {
    /// Create a run and record `run_started`.
    CreateRun(NewRun),
    /// Apply an activation's (or a timer's) state change, if still current.
    Commit(StateCommit),
    /// Append an event to a live run's inbox; dispatch it if the run waits.
    Deliver(Delivery),
    /// Cancel a run: at once if it waits, when its activation ends if it
    /// runs.
    Cancel {
        run_id: RunId,
        reason: String,
        at_ms: u64,
    },
    /// End a live run at once.
    Terminate {
        run_id: RunId,
        reason: String,
        at_ms: u64,
    },
    /// Fail a live run whose workflow timeout has passed.
    Expire { run_id: RunId, at_ms: u64 },
    /// Append to the journal of a running run's current activation (task
    /// attempts also go to its history), if it still runs at `sequence`.
    Record {
        run_id: RunId,
        sequence: u64,
        entries: Vec<JournalEntry>,
        at_ms: u64,
    },
    /// Execute a run's kept activation again: after a retry delay, or to
    /// resume a failed run.
    Reexecute {
        run_id: RunId,
        resume: Resume,
        at_ms: u64,
    },
    /// Move a waiting run from version `from` to `to`, if it is still
    /// waiting at sequence number `seq` on `from`.
    Upgrade {
        run_id: RunId,
        seq: u64,
        from: String,
        to: String,
        at_ms: u64,
    },
}

/// What a [`Write`] did, variant for variant.
#[derive(Debug, Clone)]
pub enum Written {
    Created(Result<(), AlreadyActive>),
    Committed(CommitOutcome),
    /// Deliver, cancel and terminate.
    Applied(Result<Effects, RunGone>),
    Expired(Effects),
    /// Whether the run still ran at the sequence number given.
    Recorded(bool),
    /// The run's activation and sequence number now.
    Reexecuted(Result<(Pending, u64), NotRetryable>),
    Upgraded(bool),
}

/// The quotas the rules enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Events an inbox may hold.
    pub max_inbox_len: u64,
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
    /// When the run's state last changed. For a `running` run: since when
    /// its `pending` activation is current (it executes from then, or
    /// again from the start after a host restart); a cancel request does
    /// not change it.
    pub updated_ms: u64,
}

/// Which runs a listing shows: those matching every field that is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub workflow_type: Option<String>,
    pub status: Option<RunStatus>,
    /// Workflow ids that begin with this (compared byte for byte).
    pub id_prefix: Option<String>,
}

/// A run's place in the order of [`Storage::list_runs`]: newest first by
/// creation time, then by run id (as text), both descending. The position
/// of a page's last run continues the listing after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListPosition {
    pub created_ms: u64,
    pub run_id: RunId,
}

impl ListPosition {
    /// The position of `run`.
    pub fn of(run: &RunRecord) -> Self {
        ListPosition {
            created_ms: run.created_ms,
            run_id: run.run_id,
        }
    }
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

/// A run's state columns, as [`RunTx::run_state`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub workflow_id: String,
    pub workflow_type: String,
    pub version: String,
    pub status: RunStatus,
    pub seq: u64,
    pub parent_run_id: Option<RunId>,
    pub on_completed: Option<String>,
    pub close_policy: ClosePolicy,
    pub deadline_ms: Option<u64>,
    /// A cancel waiting for the current activation to end.
    pub cancel_requested: Option<String>,
    /// The run waits in a durable sleep: no event is dispatched to it until
    /// its timer fires.
    pub sleeping: bool,
    /// This host holds the run's claim (always, on a backend one host
    /// holds): only then may it record its activation's tasks.
    pub claimed: bool,
}

/// A run's new state columns, as [`RunTx::update_run`] writes them. Every
/// update consumes a pending cancel request.
#[derive(Debug, Clone)]
pub struct RunUpdate {
    pub seq: u64,
    pub status: RunStatus,
    pub pending: Option<Pending>,
    pub timer: Option<Timer>,
    pub result: Option<Json>,
    pub error: Option<WorkflowError>,
    pub at_ms: u64,
    /// Keep the stored pending activation (`pending` is ignored): a failed
    /// run keeps the activation it failed in, for `retry`.
    pub keep_pending: bool,
}

/// An entry of an inbox (the oldest, for [`RunTx::inbox_first`]; each in
/// arrival order, for [`Storage::inbox`]).
#[derive(Debug, Clone)]
pub struct InboxEntry {
    /// The backend's id of the entry, for [`RunTx::inbox_remove`].
    pub id: i64,
    pub name: String,
    pub payload: Json,
    pub kind: InboxKind,
}

/// Row-level operations inside one transaction: what a backend supplies for
/// [`rules`] to work on. Each call sees the writes made earlier in the same
/// transaction. None of them decides anything about a run's lifecycle.
pub trait RunTx {
    /// A run's state, or `None` if there is no such run. A backend shared by
    /// several processes locks the row for the rest of the transaction.
    fn run_state(&mut self, run_id: RunId) -> Result<Option<RunState>, StorageError>;

    /// Insert a new run: status `running`, sequence number 0, `run.pending`
    /// as its activation. `Ok(Err(holder))` when another active run holds
    /// the workflow id; the transaction stays usable.
    fn insert_run(&mut self, run: &NewRun) -> Result<Result<(), RunId>, StorageError>;

    /// Write a run's state columns and clear its cancel request.
    fn update_run(&mut self, run_id: RunId, update: &RunUpdate) -> Result<(), StorageError>;

    /// Record a cancel request for a running run (its `updated_ms` stays).
    fn request_cancel(
        &mut self,
        run_id: RunId,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StorageError>;

    /// Pin a run to another component version.
    fn set_version(&mut self, run_id: RunId, version: &str, at_ms: u64)
    -> Result<(), StorageError>;

    /// Write (`Some`) or delete (`None`) a store key.
    fn store_write(
        &mut self,
        run_id: RunId,
        key: &str,
        value: Option<&Json>,
    ) -> Result<(), StorageError>;

    /// Append a history entry.
    fn history_append(
        &mut self,
        run_id: RunId,
        at_ms: u64,
        event: &HistoryEvent,
    ) -> Result<(), StorageError>;

    /// Entries in a run's inbox.
    fn inbox_len(&mut self, run_id: RunId) -> Result<u64, StorageError>;

    /// Append to a run's inbox.
    fn inbox_push(
        &mut self,
        run_id: RunId,
        name: &str,
        payload: &Json,
        kind: InboxKind,
        at_ms: u64,
    ) -> Result<(), StorageError>;

    /// The oldest entry of a run's inbox.
    fn inbox_first(&mut self, run_id: RunId) -> Result<Option<InboxEntry>, StorageError>;

    /// Remove one inbox entry.
    fn inbox_remove(&mut self, entry_id: i64) -> Result<(), StorageError>;

    /// Empty a run's inbox; the names of what it held, oldest first.
    fn inbox_clear(&mut self, run_id: RunId) -> Result<Vec<String>, StorageError>;

    /// A run's pending activation (a running run's, a failed run's, or that
    /// of a run waiting out a task's retry delay).
    fn pending(&mut self, run_id: RunId) -> Result<Option<Pending>, StorageError>;

    /// The active (running or waiting) run of a workflow id.
    fn active_run_id(&mut self, workflow_id: &str) -> Result<Option<RunId>, StorageError>;

    /// Append to a run's journal.
    fn journal_append(&mut self, run_id: RunId, entry: &JournalEntry) -> Result<(), StorageError>;

    /// Drop a run's journal.
    fn journal_clear(&mut self, run_id: RunId) -> Result<(), StorageError>;

    /// A run's live (running or waiting) children and their close policies.
    fn live_children(&mut self, run_id: RunId) -> Result<Vec<(RunId, ClosePolicy)>, StorageError>;

    /// Mark a point the transaction can roll back to.
    fn savepoint(&mut self) -> Result<(), StorageError>;

    /// Undo everything since the last savepoint, and forget it.
    fn rollback_to_savepoint(&mut self) -> Result<(), StorageError>;

    /// Keep everything since the last savepoint, and forget it.
    fn release_savepoint(&mut self) -> Result<(), StorageError>;
}

/// A database the engine keeps runs in. Implemented by each backend; the
/// engine holds it as `Arc<dyn Storage>`.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Apply `write` in one transaction through [`rules::apply`], durably:
    /// when this returns `Ok`, the write is committed.
    async fn write(&self, write: Write) -> Result<Written, StorageError>;

    /// Claim `run_id` for this host until `until_ms` (a lease), so that
    /// exactly one host drives it. `false`: another host holds an unexpired
    /// claim. A backend that one host holds exclusively grants every claim.
    async fn claim(&self, run_id: RunId, until_ms: u64) -> Result<bool, StorageError>;

    /// Give up this host's claim on `run_id` (its driver stopped). `true`
    /// when the run is running again: it became ready while this host held
    /// the claim (another host's write woke it and could not claim it), so
    /// the caller drives it on. A backend one host holds has nothing to
    /// give up.
    async fn release(&self, _run_id: RunId) -> Result<bool, StorageError> {
        Ok(false)
    }

    /// Live runs no host looks after, as of `now_ms`: running runs whose
    /// claim expired (their host died) or that nobody claimed for
    /// `overdue_ms`, and unclaimed waiting runs whose timer or workflow
    /// timeout is `overdue_ms` past due; at most `limit`. A backend one host
    /// holds has none: that host resumed every live run when it started.
    async fn orphans(
        &self,
        _now_ms: u64,
        _overdue_ms: u64,
        _limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        Ok(Vec::new())
    }

    /// What other hosts on the same database do ([`Notice`]); `None` for a
    /// backend one host holds.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        None
    }

    async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StorageError>;
    /// The newest run of a workflow id.
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError>;
    /// The active (running or waiting) run of a workflow id.
    async fn active_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError>;
    /// Every running or waiting run: what a starting host resumes.
    async fn live_runs(&self) -> Result<Vec<RunRecord>, StorageError>;
    /// The live runs of a workflow type, oldest first.
    async fn live_runs_of_type(&self, workflow_type: &str) -> Result<Vec<RunRecord>, StorageError>;
    /// Runs, newest first (by creation time, then run id, both
    /// descending), those `filter` selects; only those after `after` in
    /// that order (the position of the last run of the previous page;
    /// `None`: from the newest); at most `limit`.
    async fn list_runs(
        &self,
        filter: RunFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError>;
    /// A run's children, oldest first.
    async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>, StorageError>;
    /// A run's committed store.
    async fn store(&self, run_id: RunId) -> Result<StoreMap, StorageError>;
    /// A run's history, oldest first.
    async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>, StorageError>;
    /// What waits in a run's inbox, oldest first.
    async fn inbox(&self, run_id: RunId) -> Result<Vec<InboxEntry>, StorageError>;
    /// The journal of a run's current activation.
    async fn journal(&self, run_id: RunId) -> Result<Journal, StorageError>;
    /// How many history entries a run has.
    async fn history_len(&self, run_id: RunId) -> Result<u64, StorageError>;
    /// Events waiting in all inboxes.
    async fn inbox_depth(&self) -> Result<u64, StorageError>;
    /// What ties a run to its code besides its handlers (see [`Anchors`]).
    async fn anchors(&self, run_id: RunId) -> Result<Anchors, StorageError>;
    /// The component versions live runs are pinned to.
    async fn live_versions(&self) -> Result<Vec<LiveVersion>, StorageError>;

    /// Keep a component version's bytes (once per version), with the name
    /// of the file it came from.
    async fn save_component(
        &self,
        version: &str,
        file: Option<String>,
        bytes: Arc<[u8]>,
        at_ms: u64,
    ) -> Result<(), StorageError>;
    /// A kept component version's bytes and file name.
    async fn component(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StorageError>;
    /// Forget component versions no live run is pinned to, except `keep`
    /// and those deployed.
    async fn prune_components(&self, keep: Vec<String>) -> Result<usize, StorageError>;

    /// Retention: delete up to `limit` finished runs (completed, failed,
    /// cancelled, terminated) that ended before `ended_before_ms`, oldest
    /// first, with their store, inbox, history and journal, in one
    /// transaction; the number deleted. A run with a live child, or a child
    /// whose parent is live, is kept (the family still reaches it).
    async fn delete_finished(
        &self,
        ended_before_ms: u64,
        limit: usize,
    ) -> Result<usize, StorageError>;

    /// Plugin file `file` (a file name) is deployed at `version`, a kept
    /// component: the hosts sharing the database start new runs of its
    /// types from it, and are told ([`Notice::Deployed`]). A backend one
    /// host holds exclusively keeps no deployments: that host's plugins
    /// directory is all there is.
    async fn deploy(&self, _file: &str, _version: &str, _at_ms: u64) -> Result<(), StorageError> {
        Ok(())
    }

    /// Plugin file `file` is deployed no more ([`Notice::Retired`]).
    async fn retire(&self, _file: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// Every deployed plugin file and its version, by file name.
    async fn deployments(&self) -> Result<Vec<(String, String)>, StorageError> {
        Ok(Vec::new())
    }

    /// Create a run and record `run_started`, durably.
    async fn create_run(&self, run: NewRun) -> Result<Result<(), AlreadyActive>, StorageError> {
        match self.write(Write::CreateRun(run)).await? {
            Written::Created(created) => Ok(created),
            other => Err(mismatch("create_run", &other)),
        }
    }

    /// Apply a state change of a run, durably, if it is still current.
    async fn commit(&self, commit: StateCommit) -> Result<CommitOutcome, StorageError> {
        match self.write(Write::Commit(commit)).await? {
            Written::Committed(outcome) => Ok(outcome),
            other => Err(mismatch("commit", &other)),
        }
    }

    /// Append an event to a live run's inbox, durably; dispatch it if the
    /// run waits.
    async fn deliver(&self, delivery: Delivery) -> Result<Result<Effects, RunGone>, StorageError> {
        applied(self.write(Write::Deliver(delivery)).await?, "deliver")
    }

    /// Cancel a run: at once if it waits, when its activation ends if it
    /// runs.
    async fn cancel(
        &self,
        run_id: RunId,
        reason: String,
        at_ms: u64,
    ) -> Result<Result<Effects, RunGone>, StorageError> {
        let write = Write::Cancel {
            run_id,
            reason,
            at_ms,
        };
        applied(self.write(write).await?, "cancel")
    }

    /// End a live run at once.
    async fn terminate(
        &self,
        run_id: RunId,
        reason: String,
        at_ms: u64,
    ) -> Result<Result<Effects, RunGone>, StorageError> {
        let write = Write::Terminate {
            run_id,
            reason,
            at_ms,
        };
        applied(self.write(write).await?, "terminate")
    }

    /// Fail a live run whose workflow timeout has passed (`WorkflowTimeout`).
    async fn expire(&self, run_id: RunId, at_ms: u64) -> Result<Effects, StorageError> {
        match self.write(Write::Expire { run_id, at_ms }).await? {
            Written::Expired(effects) => Ok(effects),
            other => Err(mismatch("expire", &other)),
        }
    }

    /// Record journal entries of a running run's activation, durably;
    /// `false` when the run no longer runs at `sequence`.
    async fn record(
        &self,
        run_id: RunId,
        sequence: u64,
        entries: Vec<JournalEntry>,
        at_ms: u64,
    ) -> Result<bool, StorageError> {
        let write = Write::Record {
            run_id,
            sequence,
            entries,
            at_ms,
        };
        match self.write(write).await? {
            Written::Recorded(current) => Ok(current),
            other => Err(mismatch("record", &other)),
        }
    }

    /// Execute a run's kept activation again (see [`Resume`]); its pending
    /// activation and sequence number.
    async fn reexecute(
        &self,
        run_id: RunId,
        resume: Resume,
        at_ms: u64,
    ) -> Result<Result<(Pending, u64), NotRetryable>, StorageError> {
        let write = Write::Reexecute {
            run_id,
            resume,
            at_ms,
        };
        match self.write(write).await? {
            Written::Reexecuted(done) => Ok(done),
            other => Err(mismatch("reexecute", &other)),
        }
    }

    /// Move a waiting run from version `from` to `to`, if it is still
    /// waiting at sequence number `seq` on `from`. Returns whether it moved.
    async fn upgrade_run(
        &self,
        run_id: RunId,
        seq: u64,
        from: String,
        to: String,
        at_ms: u64,
    ) -> Result<bool, StorageError> {
        let write = Write::Upgrade {
            run_id,
            seq,
            from,
            to,
            at_ms,
        };
        match self.write(write).await? {
            Written::Upgraded(moved) => Ok(moved),
            other => Err(mismatch("upgrade_run", &other)),
        }
    }
}

fn applied(written: Written, what: &str) -> Result<Result<Effects, RunGone>, StorageError> {
    match written {
        Written::Applied(result) => Ok(result),
        other => Err(mismatch(what, &other)),
    }
}

/// A backend answered a write with another write's result.
fn mismatch(what: &str, written: &Written) -> StorageError {
    StorageError::Corrupt(format!("`{what}` was answered with {written:?}"))
}
