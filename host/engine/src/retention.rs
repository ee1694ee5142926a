//! Retention: finished runs older than the host's retention are deleted in
//! the background, in small batches, so that history and finished runs do
//! not grow the database for ever. With several hosts on one database each
//! deletes; a batch locks the runs it takes, so they never collide.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;

/// Runs deleted per transaction: small, so a batch never holds the writer
/// (or a lock on many rows) for long.
const BATCH: usize = 200;

/// How often a host looks for runs past the retention.
const PERIOD: Duration = Duration::from_secs(60);

/// The pause between two batches of one pass: the hot path's writes go
/// first.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// With a retention: a pass shortly after start and then every [`PERIOD`],
/// for the host's lifetime.
pub(crate) fn start(engine: &Arc<Engine>) {
    let Some(retention) = engine.retention() else {
        return;
    };
    let inner = engine.clone();
    engine.spawn(async move {
        let mut wait = Duration::from_secs(5);
        loop {
            tokio::select! {
                _ = inner.stopping() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = PERIOD;
            pass(&inner, retention).await;
        }
    });
}

/// Delete every finished run that ended more than `retention` ago, a
/// batch at a time.
async fn pass(inner: &Arc<Engine>, retention: Duration) {
    let keep_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let before = inner.now_ms().saturating_sub(keep_ms);
    let mut deleted = 0;
    loop {
        match inner.storage().delete_finished(before, BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot delete finished runs; trying again later");
                break;
            }
        }
        tokio::select! {
            _ = inner.stopping() => return,
            _ = tokio::time::sleep(BETWEEN_BATCHES) => {}
        }
    }
    if deleted > 0 {
        tracing::info!(
            deleted,
            retention_s = retention.as_secs(),
            "retention: deleted finished runs that ended before the retention"
        );
    }
}
