//! `Context`: everything a handler can touch, all of it through the host.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasmflow::workflow::host;
use crate::bindings::wasmflow::workflow::types as wit;
use crate::directive::{Directive, StepRef};
use crate::error::{Error, ErrorKind, Result};

/// What a handler receives: the run's [`Store`], the [`Next`] directive
/// builder, who is running ([`RunInfo`]), a [`Log`], and the calls that reach
/// outside the run (children, the parent, recorded non-deterministic values).
///
/// It mirrors the seed page's `ctx`: `ctx.store`, `ctx.next`, `ctx.run`,
/// `ctx.start(...)`, `ctx.send_to_parent(...)`.
pub struct Context {
    /// The run's key/value store.
    pub store: Store,
    /// Builds the directive a handler returns.
    pub next: Next,
    /// The run and activation being executed (`ctx.run.workflow_id`, ...),
    /// fetched from the host on first use.
    pub run: CurrentRun,
    /// The run's log.
    pub log: Log,
}

impl Context {
    pub(crate) fn new(workflow: &'static str) -> Self {
        Context {
            store: Store { _private: () },
            next: Next { workflow },
            run: CurrentRun {
                info: std::cell::OnceCell::new(),
            },
            log: Log { _private: () },
        }
    }

    /// Start a child workflow run, created when this activation commits.
    ///
    /// `workflow_id` is the dedup key: if this activation is executed again, or
    /// the child with this id is still active, the same child is returned
    /// instead of a second one being created.
    pub fn start<I: Serialize + ?Sized>(
        &self,
        workflow_type: &str,
        workflow_id: impl Into<String>,
        input: &I,
    ) -> Result<ChildHandle> {
        self.start_with(workflow_type, workflow_id, input, StartOptions::default())
    }

    /// [`Context::start`] with a timeout, a completion step or a close policy.
    pub fn start_with<I: Serialize + ?Sized>(
        &self,
        workflow_type: &str,
        workflow_id: impl Into<String>,
        input: &I,
        options: StartOptions,
    ) -> Result<ChildHandle> {
        let input = to_json(input, "child input")?;
        if let Some(step) = &options.on_completed
            && step.0 != self.next.workflow
        {
            return Err(Error::new(
                ErrorKind::UnknownStep,
                format!(
                    "on_completed step `{}` belongs to workflow `{}`, not `{}`",
                    step.1, step.0, self.next.workflow
                ),
            ));
        }
        let handle = host::start_child(&wit::ChildStart {
            workflow_type: workflow_type.to_owned(),
            workflow_id: workflow_id.into(),
            input,
            timeout_ms: options.timeout.map(duration_ms),
            on_completed: options.on_completed.map(|(_, step)| step.to_owned()),
            close_policy: crate::error::close_policy_to_wit(options.close_policy),
        })
        .map_err(Error::from_wit)?;
        Ok(ChildHandle {
            workflow_id: handle.workflow_id,
            run_id: handle.run_id,
        })
    }

    /// Send an event to the parent run's inbox, delivered when this
    /// activation commits. From a run without a parent this is a
    /// [`ErrorKind::NoParent`] error.
    pub fn send_to_parent<P: Serialize + ?Sized>(&self, event: &str, payload: &P) -> Result<()> {
        let payload = to_json(payload, "event payload")?;
        host::send_to_parent(event, &payload).map_err(Error::from_wit)
    }

    /// The current time, recorded so a re-executed activation sees the same.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(host::now())
    }

    /// A random number in `[0, 1)`, recorded so a re-executed activation sees
    /// the same.
    pub fn random(&self) -> f64 {
        // 53 random bits make every representable value in [0, 1) equally likely.
        (host::random() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random `u64`, recorded so a re-executed activation sees the same.
    pub fn random_u64(&self) -> u64 {
        host::random()
    }

    /// A random UUID (v4), recorded so a re-executed activation sees the same.
    pub fn uuid4(&self) -> String {
        host::uuid4()
    }
}

/// The run's key/value store (SPEC 5).
///
/// Reads see the run's committed values overlaid with this activation's own
/// writes. Writes are buffered and committed atomically with the directive the
/// handler returns; if the handler fails they are discarded.
pub struct Store {
    _private: (),
}

impl Store {
    /// Read `key` and deserialize it into `T`.
    ///
    /// A missing key is an [`ErrorKind::KeyNotFound`] error, a value that does
    /// not fit `T` an [`ErrorKind::InvalidPayload`] error.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        match host::store_get(key) {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                Error::invalid_payload(format!(
                    "store key `{key}` does not hold a {}: {e}",
                    std::any::type_name::<T>()
                ))
            }),
            None => Err(Error::new(
                ErrorKind::KeyNotFound,
                format!("store key `{key}` not found"),
            )),
        }
    }

    /// Like [`Store::get`], with `None` for a missing key.
    pub fn try_get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::KeyNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write `value` under `key`. Fails when the value cannot be serialized or
    /// exceeds the host's value-size quota.
    pub fn put<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let json = to_json(&value, &format!("store value for `{key}`"))?;
        host::store_put(key, &json).map_err(Error::from_wit)
    }

    /// Remove `key` (a no-op when it does not exist).
    pub fn delete(&self, key: &str) {
        host::store_delete(key)
    }
}

/// Builds the [`Directive`] a handler returns.
pub struct Next {
    workflow: &'static str,
}

impl Next {
    /// Run `step` next. `step` is the step function itself; naming a function
    /// that is not a `#[step]` of this workflow does not compile.
    pub fn step<S: StepRef>(&self, step: S) -> Directive {
        let _ = step;
        match self.check::<S>() {
            Ok(()) => Directive::step(S::NAME),
            Err(e) => Directive::from_error(e),
        }
    }

    /// Park the run until an event arrives in its inbox. No timer is set: the
    /// run waits for as long as it takes.
    pub fn wait(&self) -> Directive {
        Directive::wait(None, None)
    }

    /// Park the run until an event arrives; if none arrives within `timeout`,
    /// run `on_timeout` instead.
    pub fn wait_timeout<S: StepRef>(&self, timeout: Duration, on_timeout: S) -> Directive {
        let _ = on_timeout;
        match self.check::<S>() {
            Ok(()) => Directive::wait(Some(duration_ms(timeout)), Some(S::NAME)),
            Err(e) => Directive::from_error(e),
        }
    }

    /// Park the run until an event arrives; if none arrives within
    /// `timeout`, the run fails with [`ErrorKind::WaitTimeout`]. The timer is
    /// durable.
    pub fn wait_or_fail(&self, timeout: Duration) -> Directive {
        Directive::wait(Some(duration_ms(timeout)), None)
    }

    /// A durable sleep: park the run for `duration`, then run `step`. Events
    /// that arrive meanwhile stay in the inbox (no event handler runs during
    /// the sleep); they are dispatched when the run next waits. The timer
    /// survives a host restart.
    pub fn sleep<S: StepRef>(&self, duration: Duration, step: S) -> Directive {
        let _ = step;
        match self.check::<S>() {
            Ok(()) => Directive::sleep(duration_ms(duration), S::NAME),
            Err(e) => Directive::from_error(e),
        }
    }

    /// Finish the run with `result`.
    pub fn complete<T: Serialize>(&self, result: T) -> Directive {
        match to_json(&result, "workflow result") {
            Ok(json) => Directive::complete(json),
            Err(e) => Directive::from_error(e),
        }
    }

    /// Finish the run as failed with `error`.
    pub fn fail(&self, error: impl Into<Error>) -> Directive {
        Directive::fail(error.into())
    }

    fn check<S: StepRef>(&self) -> Result<()> {
        if S::WORKFLOW == self.workflow {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::UnknownStep,
                format!(
                    "step `{}` belongs to workflow `{}`, not `{}`",
                    S::NAME,
                    S::WORKFLOW,
                    self.workflow
                ),
            ))
        }
    }
}

/// Options for [`Context::start_with`].
#[derive(Default)]
pub struct StartOptions {
    timeout: Option<Duration>,
    on_completed: Option<(&'static str, &'static str)>,
    close_policy: ClosePolicy,
}

impl StartOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The child fails with `WorkflowTimeout` if it has not finished by then.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run `step` of this workflow with the child's [`ChildOutcome`] when the
    /// child reaches a terminal state, whatever that state is.
    pub fn on_completed<S: StepRef>(mut self, step: S) -> Self {
        let _ = step;
        self.on_completed = Some((S::WORKFLOW, S::NAME));
        self
    }

    /// What happens to the child when this run ends (default: it runs on).
    pub fn close_policy(mut self, policy: ClosePolicy) -> Self {
        self.close_policy = policy;
        self
    }
}

/// What a parent's end does to a child.
pub use wasmflow_protocol::ClosePolicy;

/// A started child run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildHandle {
    pub workflow_id: String,
    pub run_id: String,
}

/// How a child run ended, as delivered to a parent's `on_completed` step.
pub use wasmflow_protocol::{ChildOutcome, ChildStatus};

/// The current run's [`RunInfo`], asked of the host the first time it is
/// read (most activations never do).
pub struct CurrentRun {
    info: std::cell::OnceCell<RunInfo>,
}

impl std::ops::Deref for CurrentRun {
    type Target = RunInfo;
    fn deref(&self) -> &RunInfo {
        self.info
            .get_or_init(|| RunInfo::from_wit(host::current_run()))
    }
}

impl std::fmt::Debug for CurrentRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Who is running.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub workflow_type: String,
    pub workflow_id: String,
    /// The host-generated id of this run (UUID v7).
    pub id: String,
    /// The component version (content hash) this run is pinned to.
    pub version: String,
    pub parent: Option<ParentInfo>,
    /// The handler this activation runs.
    pub handler: String,
    /// The activation's sequence number within the run (0 for start).
    pub sequence: u64,
}

impl RunInfo {
    fn from_wit(info: wit::RunInfo) -> Self {
        RunInfo {
            workflow_type: info.workflow_type,
            workflow_id: info.workflow_id,
            id: info.run_id,
            version: info.version,
            parent: info.parent.map(|p| ParentInfo {
                workflow_type: p.workflow_type,
                workflow_id: p.workflow_id,
                run_id: p.run_id,
            }),
            handler: info.handler,
            sequence: info.sequence,
        }
    }
}

/// The parent of a child run.
#[derive(Debug, Clone)]
pub struct ParentInfo {
    pub workflow_type: String,
    pub workflow_id: String,
    pub run_id: String,
}

/// The run's log. Lines are attributed to the run and activation by the host.
pub struct Log {
    _private: (),
}

impl Log {
    pub fn debug(&self, message: impl AsRef<str>) {
        host::log(wit::LogLevel::Debug, message.as_ref())
    }
    pub fn info(&self, message: impl AsRef<str>) {
        host::log(wit::LogLevel::Info, message.as_ref())
    }
    pub fn warn(&self, message: impl AsRef<str>) {
        host::log(wit::LogLevel::Warn, message.as_ref())
    }
    pub fn error(&self, message: impl AsRef<str>) {
        host::log(wit::LogLevel::Error, message.as_ref())
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::invalid_payload(format!("{what} cannot be serialized as JSON: {e}")))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
