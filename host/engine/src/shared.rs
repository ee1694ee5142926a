//! Several hosts on one database: what a host does besides driving its own
//! runs when its storage is shared ([`Storage::notices`] is `Some`).
//!
//! - [`listen`]: other hosts' notices. A run that ended elsewhere wakes this
//!   host's callers waiting for it (`result --wait` on host A for a run
//!   host B completes) and stops a driver this host still had on it; a
//!   plugin file another host deployed becomes startable here (one it
//!   retired, no longer); a [`Notice::Resync`] (missed notices) wakes every
//!   waiting caller to look again, catches up on deployments and sweeps at
//!   once.
//! - [`sweep`]: every [`sweep_period`], the runs no host looks after
//!   ([`Storage::orphans`]): running runs whose host died (its claim
//!   expired) get a driver here, overdue timers and workflow timeouts fire
//!   here. Two hosts sweeping the same run is harmless: one claim wins, and
//!   a timer's commit is guarded by the run's sequence number.
//!
//! Work that one host makes ready is driven by that host at once (an event
//! it delivers, a child its commit creates), so no host polls for it; the
//! sweep is the fallback for hosts that die and for lost notices.
//!
//! [`Storage::notices`]: wasmflow_storage::Storage::notices
//! [`Storage::orphans`]: wasmflow_storage::Storage::orphans

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use wasmflow_core::RunStatus;
use wasmflow_storage::Notice;

use crate::engine::{Engine, apply_effects, arm_timer, wake};

/// Orphans taken per sweep.
const SWEEP_BATCH: usize = 500;

/// How often a host looks for orphaned runs: a tenth of the claim lease,
/// between 200 ms and 2 s. A run is an orphan once it is two periods
/// overdue.
fn sweep_period(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// With a shared database: listen and sweep for the host's lifetime.
pub(crate) fn start(engine: &Arc<Engine>) {
    if let Some(notices) = engine.storage().notices() {
        listen(engine, notices);
        sweep(engine);
    }
}

/// Act on other hosts' notices for the host's lifetime.
fn listen(engine: &Arc<Engine>, mut notices: broadcast::Receiver<Notice>) {
    let inner = engine.clone();
    engine.spawn(async move {
        loop {
            let notice = tokio::select! {
                _ = inner.stopping() => return,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(Notice::Finished(run_id)) => {
                    inner.abort_driver(run_id);
                    inner.notify_terminal(run_id);
                }
                Ok(Notice::Component(version)) => inner.adopt(&version).await,
                Ok(Notice::Deployed { file, version }) => inner.deployed(&file, &version).await,
                Ok(Notice::Retired { file }) => inner.retired(&file),
                Ok(Notice::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    inner.notify_all();
                    if let Err(e) = inner.sync_deployments().await {
                        tracing::warn!(error = %e, "cannot look at the plugins other hosts deployed");
                    }
                    sweep_once(&inner).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Look for orphaned runs every [`sweep_period`] for the host's lifetime.
fn sweep(engine: &Arc<Engine>) {
    let inner = engine.clone();
    engine.spawn(async move {
        let period = sweep_period(inner.claim_lease());
        loop {
            tokio::select! {
                _ = inner.stopping() => return,
                _ = tokio::time::sleep(period) => {}
            }
            sweep_once(&inner).await;
        }
    });
}

async fn sweep_once(inner: &Arc<Engine>) {
    let overdue = 2 * sweep_period(inner.claim_lease());
    let now = inner.now_ms();
    let orphans = match inner
        .storage()
        .orphans(now, overdue.as_millis() as u64, SWEEP_BATCH)
        .await
    {
        Ok(orphans) => orphans,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for runs no host drives");
            return;
        }
    };
    for run in orphans {
        match run.status {
            RunStatus::Running => {
                tracing::info!(run_id = %run.run_id, "taking over a run no host drives");
                wake(inner, run.run_id, None);
            }
            RunStatus::Waiting => {
                if let Some(due_ms) = run.deadline_ms.filter(|&d| d <= now) {
                    match inner.storage().expire(run.run_id, due_ms).await {
                        Ok(effects) => apply_effects(inner, effects),
                        Err(e) => {
                            tracing::warn!(run_id = %run.run_id, error = %e, "workflow timeout could not fire");
                        }
                    }
                } else if let Some(timer) = run.timer.filter(|t| t.due_ms <= now) {
                    arm_timer(inner, run.run_id, run.seq, timer);
                }
            }
            _ => {}
        }
    }
}
