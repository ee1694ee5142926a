//! Crash injection: a storage layer that drops an activation's commit, as a
//! host that died before its commit would.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use wasmflow_host::activation::StoreMap;
use wasmflow_host::journal::Journal;
use wasmflow_host::{HistoryRecord, InboxEntry, LiveVersion, RunFilter, RunId, RunRecord};
use wasmflow_storage::{Anchors, ListPosition, Notice, Storage, StorageError, Write, Written};

/// When to crash: after letting `skip` more activation commits through, drop
/// the next one.
#[derive(Debug, Default)]
pub(crate) struct CrashPlan {
    armed: Mutex<Option<u32>>,
    crashed: AtomicBool,
}

impl CrashPlan {
    pub(crate) fn arm(&self, skip: u32) {
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some(skip);
    }

    /// Whether a commit was dropped since the last call.
    pub(crate) fn take_crashed(&self) -> bool {
        self.crashed.swap(false, Ordering::SeqCst)
    }

    /// Whether a commit was dropped and not yet taken.
    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Whether this commit (an activation's or a timer's) is the one to
    /// drop.
    fn drops(&self) -> bool {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        match *armed {
            Some(0) => {
                *armed = None;
                self.crashed.store(true, Ordering::SeqCst);
                true
            }
            Some(n) => {
                *armed = Some(n - 1);
                false
            }
            None => false,
        }
    }
}

/// The backend, with the commits [`CrashPlan`] picks dropped: the engine
/// sees the database unavailable (nothing was written), and the harness
/// then stops the host and opens a new one on the same file.
pub(crate) struct Crashing {
    pub(crate) inner: Arc<dyn Storage>,
    pub(crate) plan: Arc<CrashPlan>,
}

#[async_trait]
impl Storage for Crashing {
    async fn write(&self, write: Write) -> Result<Written, StorageError> {
        if matches!(write, Write::Commit(_)) && self.plan.drops() {
            return Err(StorageError::Unavailable {
                reason: "the harness crashed the host before this commit".to_owned(),
                source: None,
            });
        }
        self.inner.write(write).await
    }
    async fn claim(&self, run_id: RunId, until_ms: u64) -> Result<bool, StorageError> {
        self.inner.claim(run_id, until_ms).await
    }
    async fn release(&self, run_id: RunId) -> Result<bool, StorageError> {
        self.inner.release(run_id).await
    }
    async fn orphans(
        &self,
        now_ms: u64,
        overdue_ms: u64,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        self.inner.orphans(now_ms, overdue_ms, limit).await
    }
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        self.inner.notices()
    }
    async fn run(&self, run_id: RunId) -> Result<Option<RunRecord>, StorageError> {
        self.inner.run(run_id).await
    }
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        self.inner.latest_run(workflow_id).await
    }
    async fn active_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StorageError> {
        self.inner.active_run(workflow_id).await
    }
    async fn live_runs(&self) -> Result<Vec<RunRecord>, StorageError> {
        self.inner.live_runs().await
    }
    async fn live_runs_of_type(&self, workflow_type: &str) -> Result<Vec<RunRecord>, StorageError> {
        self.inner.live_runs_of_type(workflow_type).await
    }
    async fn list_runs(
        &self,
        filter: RunFilter,
        after: Option<ListPosition>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StorageError> {
        self.inner.list_runs(filter, after, limit).await
    }
    async fn children(&self, run_id: RunId) -> Result<Vec<RunRecord>, StorageError> {
        self.inner.children(run_id).await
    }
    async fn store(&self, run_id: RunId) -> Result<StoreMap, StorageError> {
        self.inner.store(run_id).await
    }
    async fn history(&self, run_id: RunId) -> Result<Vec<HistoryRecord>, StorageError> {
        self.inner.history(run_id).await
    }
    async fn inbox(&self, run_id: RunId) -> Result<Vec<InboxEntry>, StorageError> {
        self.inner.inbox(run_id).await
    }
    async fn journal(&self, run_id: RunId) -> Result<Journal, StorageError> {
        self.inner.journal(run_id).await
    }
    async fn history_len(&self, run_id: RunId) -> Result<u64, StorageError> {
        self.inner.history_len(run_id).await
    }
    async fn inbox_depth(&self) -> Result<u64, StorageError> {
        self.inner.inbox_depth().await
    }
    async fn anchors(&self, run_id: RunId) -> Result<Anchors, StorageError> {
        self.inner.anchors(run_id).await
    }
    async fn live_versions(&self) -> Result<Vec<LiveVersion>, StorageError> {
        self.inner.live_versions().await
    }
    async fn save_component(
        &self,
        version: &str,
        file: Option<String>,
        bytes: Arc<[u8]>,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.inner.save_component(version, file, bytes, at_ms).await
    }
    async fn component(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StorageError> {
        self.inner.component(version).await
    }
    async fn prune_components(&self, keep: Vec<String>) -> Result<usize, StorageError> {
        self.inner.prune_components(keep).await
    }

    async fn delete_finished(
        &self,
        ended_before_ms: u64,
        limit: usize,
    ) -> Result<usize, StorageError> {
        self.inner.delete_finished(ended_before_ms, limit).await
    }
    async fn deploy(&self, file: &str, version: &str, at_ms: u64) -> Result<(), StorageError> {
        self.inner.deploy(file, version, at_ms).await
    }
    async fn retire(&self, file: &str) -> Result<(), StorageError> {
        self.inner.retire(file).await
    }
    async fn deployments(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.inner.deployments().await
    }
}
