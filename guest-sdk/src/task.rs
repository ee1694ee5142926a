//! Tasks: side effects whose outcome the host records (SPEC 8).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasmflow::workflow::host;
use crate::bindings::wasmflow::workflow::types as wit;
use crate::context::Context;
use crate::error::{Error, Result, error_kind_to_wit};

/// How a failed task is retried: attempts, delays (exponential backoff with
/// jitter) and which error kinds never retry. `RetryPolicy::default()` is
/// five attempts, 1 s doubling up to 60 s, ±20 % jitter;
/// [`RetryPolicy::none`] is one attempt.
///
/// ```
/// use std::time::Duration;
/// use wasmflow::{ErrorKind, RetryPolicy};
///
/// let policy = RetryPolicy::attempts(5)
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(5))
///     .never_retry(ErrorKind::InvalidPayload);
/// assert_eq!(policy.max_attempts, 5);
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
pub use wasmflow_protocol::RetryPolicy;

/// What a task's closure gets: which attempt this is, and the key that stays
/// the same for every attempt and every re-execution of this task.
///
/// ```no_run
/// # use wasmflow::prelude::*;
/// # fn f(ctx: &mut Context) -> Result<Directive> {
/// let receipt: String = ctx.task("send_receipt", RetryPolicy::default(), |attempt: &Attempt| {
///     ctx.log.info(format!("attempt {} with key {}", attempt.attempt, attempt.idempotency_key));
///     Ok("sent".to_owned())
/// })?;
/// # Ok(ctx.next.complete(receipt))
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Unique per run, activation, task name and occurrence, and stable
    /// across attempts and re-executions: send it to the service the task
    /// calls (an `Idempotency-Key` header, say) so that a request repeated
    /// after a crash is applied once.
    pub idempotency_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

fn policy_to_wit(p: &RetryPolicy) -> wit::RetryPolicy {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    wit::RetryPolicy {
        max_attempts: p.max_attempts,
        initial_delay_ms: ms(p.initial_delay),
        backoff_multiplier: p.backoff_multiplier,
        max_delay_ms: ms(p.max_delay),
        jitter: p.jitter,
        non_retryable: p
            .non_retryable
            .iter()
            .map(|k| error_kind_to_wit(*k))
            .collect(),
    }
}

fn recorded<T: DeserializeOwned>(name: &str, outcome: Result<String, wit::Error>) -> Result<T> {
    match outcome {
        Ok(json) => serde_json::from_str(&json).map_err(|e| {
            Error::invalid_payload(format!(
                "the recorded value of task `{name}` is not a {}: {e}",
                std::any::type_name::<T>()
            ))
        }),
        Err(e) => Err(Error::from_wit(e)),
    }
}

impl Context {
    /// Run `f` as task `name`: a side effect (a payment, an email, an HTTP
    /// call) whose outcome the host records durably before this handler
    /// goes on.
    ///
    /// If this activation is executed again (after a crash, or a retry
    /// delay), a task whose outcome was recorded returns it without running
    /// `f` again. A failed attempt is retried per `policy`; each attempt is
    /// recorded. When the attempts are exhausted, or the error's kind is not
    /// retryable, the last error is returned for the handler to handle (a
    /// compensation) or pass on (the run fails).
    ///
    /// Outbound HTTP (`wasi:http`, through any client for `wasm32-wasip2`)
    /// is allowed only inside `f`, to what the operator granted the plugin.
    ///
    /// A task's side effect may happen more than once if the host dies after
    /// it happened and before its outcome was recorded; pass
    /// [`Attempt::idempotency_key`] to the service so that it applies it once.
    ///
    /// ```no_run
    /// # use wasmflow::prelude::*;
    /// # fn f(ctx: &mut Context) -> Result<Directive> {
    /// let txn: String = ctx.task("charge_card", RetryPolicy::attempts(3), |t| {
    ///     // ... POST to the payments service with `t.idempotency_key` ...
    ///     Ok(format!("txn-{}", t.idempotency_key))
    /// })?;
    /// # Ok(ctx.next.complete(txn))
    /// # }
    /// ```
    pub fn task<T, F>(&self, name: &str, policy: RetryPolicy, mut f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&Attempt) -> Result<T>,
    {
        let begun = host::task_begin(name, &policy_to_wit(&policy)).map_err(Error::from_wit)?;
        let mut attempt = match begun {
            wit::TaskBegun::Recorded(outcome) => return recorded(name, outcome),
            wit::TaskBegun::Attempt(a) => Attempt {
                idempotency_key: a.idempotency_key,
                attempt: a.attempt,
            },
        };
        loop {
            let outcome = f(&attempt).and_then(|value| {
                serde_json::to_string(&value).map_err(|e| {
                    Error::invalid_payload(format!(
                        "the value of task `{name}` cannot be serialized as JSON: {e}"
                    ))
                })
            });
            let outcome = outcome.map_err(Error::into_wit);
            let outcome = match &outcome {
                Ok(json) => Ok(json.as_str()),
                Err(e) => Err(e),
            };
            match host::task_end(outcome) {
                wit::TaskEnded::Done(outcome) => return recorded(name, outcome),
                wit::TaskEnded::Retry(next) => {
                    attempt = Attempt {
                        idempotency_key: next.idempotency_key,
                        attempt: next.attempt,
                    };
                }
            }
        }
    }
}
