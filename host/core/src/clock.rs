//! The clock run timers read (SPEC 5: wait timeouts, sleeps, workflow
//! timeouts, task retry delays) and the guest's `now`.
//!
//! The engine and the sandbox read the time of runs through a [`Clock`]:
//! the system clock in a real host, a clock a test moves by hand in the
//! test harness (`wasmflow-testing`). Leases between hosts, fault pauses and
//! the plugins watcher stay on the system clock: they are about hosts, not
//! runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// What [`Clock::sleep_until`] returns.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time for runs, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time now.
    fn now_ms(&self) -> u64;

    /// Resolves once [`Clock::now_ms`] has reached `due_ms` (at once if it
    /// has).
    fn sleep_until(&self, due_ms: u64) -> Sleep;

    /// Whether time passes by itself. `false` (a clock moved by hand): a
    /// task's retry delay never waits inside the activation, it parks the
    /// run with a retry timer (as a delay longer than the step timeout
    /// does), so that the delay passes when the clock is moved.
    fn passes_by_itself(&self) -> bool {
        true
    }
}
