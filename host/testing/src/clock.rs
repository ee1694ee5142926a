//! [`ManualClock`]: time that passes only when a test moves it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use wasmflow_host::activation::BoxFuture;
use wasmflow_host::clock::Clock;

/// A [`Clock`] that stands still until [`ManualClock::advance`] moves it.
/// Everything sleeping until a time that the move reaches (wait timeouts,
/// durable sleeps, workflow timeouts, task retry delays) wakes at once.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    now_ms: u64,
    sleepers: Vec<(u64, oneshot::Sender<()>)>,
}

impl ManualClock {
    /// A clock at `start_ms` (milliseconds since the Unix epoch).
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            state: Mutex::new(State {
                now_ms: start_ms,
                sleepers: Vec::new(),
            }),
        }
    }

    /// Move the clock forward by `by` and wake every sleeper now due.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let due = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.now_ms = state.now_ms.saturating_add(by);
            let now = state.now_ms;
            let (due, later) = std::mem::take(&mut state.sleepers)
                .into_iter()
                .partition::<Vec<_>, _>(|(at, _)| *at <= now);
            state.sleepers = later;
            due
        };
        for (_, wake) in due {
            let _ = wake.send(());
        }
    }

    /// How many sleepers wait for a time not reached yet.
    pub fn sleepers(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sleepers.len()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).now_ms
    }

    fn sleep_until(&self, due_ms: u64) -> BoxFuture<'static, ()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if due_ms <= state.now_ms {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        state.sleepers.push((due_ms, tx));
        Box::pin(async move {
            let _ = rx.await;
        })
    }

    fn passes_by_itself(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_when_the_clock_reaches_them() {
        let clock = ManualClock::new(1_000);
        let early = clock.sleep_until(1_500);
        let late = clock.sleep_until(3_000);
        clock.sleep_until(900).await;
        assert_eq!(clock.sleepers(), 2);
        clock.advance(Duration::from_millis(500));
        early.await;
        assert_eq!((clock.now_ms(), clock.sleepers()), (1_500, 1));
        clock.advance(Duration::from_secs(2));
        late.await;
        assert_eq!(clock.sleepers(), 0);
    }
}
