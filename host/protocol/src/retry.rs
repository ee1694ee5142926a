//! A task's retry policy (SPEC 8): how often a failed task is attempted
//! again, after which delays, and which error kinds are never retried.
//!
//! The guest SDK builds one, the host checks it ([`RetryPolicy::check`])
//! and computes each delay ([`RetryPolicy::delay`]); both use this one
//! definition.

use std::time::Duration;

use crate::ErrorKind;

/// How a failed task is retried.
///
/// Attempt `n` (1-based) that fails with a retryable kind is followed by
/// attempt `n + 1` after `initial_delay * backoff_multiplier^(n-1)`, capped
/// at `max_delay`, spread by `jitter` (a fraction: 0.2 means ±20 %), until
/// `max_attempts` attempts were made; then the last error is the task's
/// outcome. `CapabilityDenied` and `NonDeterminism` are never retried
/// whatever the policy says: another attempt cannot succeed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The delay before the second attempt.
    pub initial_delay: Duration,
    /// Each further delay is the previous one times this (at least 1.0).
    pub backoff_multiplier: f64,
    /// No delay is longer than this.
    pub max_delay: Duration,
    /// A delay varies by up to this fraction either way (0.0 to 1.0).
    pub jitter: f64,
    /// Error kinds that fail the task at once.
    pub non_retryable: Vec<ErrorKind>,
}

/// Most attempts a policy may ask for.
pub const MAX_ATTEMPTS: u32 = 1_000;
/// Longest delay a policy may ask for: 30 days.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for RetryPolicy {
    /// Five attempts, 1 s then doubling up to 60 s, ±20 % jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
            non_retryable: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// `max_attempts` attempts with the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    /// The same policy with `initial_delay` as its first delay.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The same policy with `multiplier` as its backoff multiplier.
    pub fn backoff(mut self, multiplier: f64) -> Self {
        self.backoff_multiplier = multiplier;
        self
    }

    /// The same policy with `delay` as its longest delay.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The same policy with `jitter` (a fraction) as its spread.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same policy, never retrying errors of `kind`.
    pub fn never_retry(mut self, kind: ErrorKind) -> Self {
        if !self.non_retryable.contains(&kind) {
            self.non_retryable.push(kind);
        }
        self
    }

    /// Why this policy cannot be used, naming the field; `Ok` when it can.
    pub fn check(&self) -> Result<(), String> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(format!(
                "max_attempts must be between 1 and {MAX_ATTEMPTS}, not {}",
                self.max_attempts
            ));
        }
        if !(self.backoff_multiplier.is_finite()
            && (1.0..=100.0).contains(&self.backoff_multiplier))
        {
            return Err(format!(
                "backoff_multiplier must be between 1.0 and 100.0, not {}",
                self.backoff_multiplier
            ));
        }
        if !(self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter)) {
            return Err(format!(
                "jitter must be between 0.0 and 1.0, not {}",
                self.jitter
            ));
        }
        for (name, delay) in [
            ("initial_delay", self.initial_delay),
            ("max_delay", self.max_delay),
        ] {
            if delay > MAX_DELAY {
                return Err(format!(
                    "{name} must be at most {} days, not {} s",
                    MAX_DELAY.as_secs() / 86_400,
                    delay.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// Whether a failure of `kind` may be retried at all.
    pub fn retries(&self, kind: ErrorKind) -> bool {
        !matches!(
            kind,
            ErrorKind::CapabilityDenied | ErrorKind::NonDeterminism
        ) && !self.non_retryable.contains(&kind)
    }

    /// The delay after failed attempt `attempt` (1-based) of kind `kind`, or
    /// `None` when no attempt follows. `unit` is a random number in
    /// `[0, 1)` that places the delay within the jitter.
    pub fn delay(&self, attempt: u32, kind: ErrorKind, unit: f64) -> Option<Duration> {
        if attempt >= self.max_attempts || !self.retries(kind) {
            return None;
        }
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_delay.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let secs = (capped * spread).clamp(0.0, MAX_DELAY.as_secs_f64());
        Some(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::attempts(4)
            .initial_delay(Duration::from_millis(100))
            .backoff(3.0)
            .max_delay(Duration::from_millis(500))
            .jitter(0.0)
    }

    #[test]
    fn delays_grow_by_the_multiplier_up_to_the_cap() {
        let p = policy();
        let d = |n| p.delay(n, ErrorKind::Application, 0.5);
        assert_eq!(d(1), Some(Duration::from_millis(100)));
        assert_eq!(d(2), Some(Duration::from_millis(300)));
        assert_eq!(d(3), Some(Duration::from_millis(500)));
        assert_eq!(d(4), None, "four attempts in all");
    }

    #[test]
    fn jitter_spreads_both_ways_within_its_fraction() {
        let p = policy().jitter(0.5);
        let low = p.delay(1, ErrorKind::Application, 0.0).unwrap();
        let high = p.delay(1, ErrorKind::Application, 0.999_999).unwrap();
        assert_eq!(low, Duration::from_millis(50));
        assert!(high > Duration::from_millis(149) && high <= Duration::from_millis(150));
    }

    #[test]
    fn non_retryable_kinds_stop_at_once() {
        let p = policy().never_retry(ErrorKind::InvalidPayload);
        assert_eq!(p.delay(1, ErrorKind::InvalidPayload, 0.5), None);
        assert_eq!(p.delay(1, ErrorKind::CapabilityDenied, 0.5), None);
        assert_eq!(p.delay(1, ErrorKind::NonDeterminism, 0.5), None);
        assert!(p.delay(1, ErrorKind::Trap, 0.5).is_some());
    }

    #[test]
    fn bad_policies_are_named() {
        let zero = RetryPolicy::attempts(0).check().unwrap_err();
        assert!(zero.contains("max_attempts"), "{zero}");
        let shrink = policy().backoff(0.5).check().unwrap_err();
        assert!(shrink.contains("backoff_multiplier"), "{shrink}");
        let nan = policy().jitter(f64::NAN).check().unwrap_err();
        assert!(nan.contains("jitter"), "{nan}");
        let long = policy()
            .max_delay(MAX_DELAY + Duration::from_secs(1))
            .check()
            .unwrap_err();
        assert!(long.contains("max_delay"), "{long}");
        assert!(RetryPolicy::default().check().is_ok());
        assert!(RetryPolicy::none().check().is_ok());
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy::attempts(MAX_ATTEMPTS).max_delay(MAX_DELAY);
        let d = p
            .delay(MAX_ATTEMPTS - 1, ErrorKind::Application, 0.5)
            .unwrap();
        assert!(d <= MAX_DELAY);
    }
}
