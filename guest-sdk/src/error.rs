//! The error type handlers return and match on.

use std::fmt;

use crate::bindings::wasmflow::workflow::types as wit;

/// The kind of an [`Error`]: what went wrong, in terms a handler can match on.
///
/// The host and the SDK produce every kind except [`ErrorKind::Application`],
/// which is what workflow code's own errors become.
///
/// ```no_run
/// # use wasmflow::prelude::*;
/// # fn f(ctx: &mut Context) -> Result<Directive> {
/// let count: u64 = match ctx.store.get("count") {
///     Ok(count) => count,
///     Err(e) if e.kind() == ErrorKind::KeyNotFound => 0,
///     Err(e) => return Err(e),
/// };
/// # Ok(ctx.next.complete(count))
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A store key that does not exist was read.
    KeyNotFound,
    /// A payload, input or stored value that does not fit its type.
    InvalidPayload,
    /// A directive named a step the workflow type does not have.
    UnknownStep,
    /// An event name the workflow type has no handler for.
    UnknownEvent,
    /// A workflow type no plugin provides.
    UnknownWorkflowType,
    /// `send_to_parent` from a run without a parent.
    NoParent,
    /// The workflow id is held by an active run that is not this run's child.
    WorkflowAlreadyRunning,
    /// A run exceeded its workflow timeout.
    WorkflowTimeout,
    /// An activation exceeded its step timeout.
    StepTimeout,
    /// An activation exceeded its memory cap.
    MemoryLimit,
    /// An activation exhausted its stack.
    StackOverflow,
    /// A guest trapped or panicked.
    Trap,
    /// A quota was exceeded.
    QuotaExceeded,
    /// The host does not support the call yet.
    NotSupported,
    /// The run was cancelled.
    Cancelled,
    /// The run was terminated.
    Terminated,
    /// An error of the workflow's own.
    Application,
}

impl ErrorKind {
    fn to_wit(self) -> wit::ErrorKind {
        use wit::ErrorKind as W;
        match self {
            ErrorKind::KeyNotFound => W::KeyNotFound,
            ErrorKind::InvalidPayload => W::InvalidPayload,
            ErrorKind::UnknownStep => W::UnknownStep,
            ErrorKind::UnknownEvent => W::UnknownEvent,
            ErrorKind::UnknownWorkflowType => W::UnknownWorkflowType,
            ErrorKind::NoParent => W::NoParent,
            ErrorKind::WorkflowAlreadyRunning => W::WorkflowAlreadyRunning,
            ErrorKind::WorkflowTimeout => W::WorkflowTimeout,
            ErrorKind::StepTimeout => W::StepTimeout,
            ErrorKind::MemoryLimit => W::MemoryLimit,
            ErrorKind::StackOverflow => W::StackOverflow,
            ErrorKind::Trap => W::Trap,
            ErrorKind::QuotaExceeded => W::QuotaExceeded,
            ErrorKind::NotSupported => W::NotSupported,
            ErrorKind::Cancelled => W::Cancelled,
            ErrorKind::Terminated => W::Terminated,
            ErrorKind::Application => W::Application,
        }
    }

    fn from_wit(kind: wit::ErrorKind) -> Self {
        use wit::ErrorKind as W;
        match kind {
            W::KeyNotFound => ErrorKind::KeyNotFound,
            W::InvalidPayload => ErrorKind::InvalidPayload,
            W::UnknownStep => ErrorKind::UnknownStep,
            W::UnknownEvent => ErrorKind::UnknownEvent,
            W::UnknownWorkflowType => ErrorKind::UnknownWorkflowType,
            W::NoParent => ErrorKind::NoParent,
            W::WorkflowAlreadyRunning => ErrorKind::WorkflowAlreadyRunning,
            W::WorkflowTimeout => ErrorKind::WorkflowTimeout,
            W::StepTimeout => ErrorKind::StepTimeout,
            W::MemoryLimit => ErrorKind::MemoryLimit,
            W::StackOverflow => ErrorKind::StackOverflow,
            W::Trap => ErrorKind::Trap,
            W::QuotaExceeded => ErrorKind::QuotaExceeded,
            W::NotSupported => ErrorKind::NotSupported,
            W::Cancelled => ErrorKind::Cancelled,
            W::Terminated => ErrorKind::Terminated,
            W::Application => ErrorKind::Application,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An error with a [kind](ErrorKind), a message and optional JSON details.
///
/// Any `std::error::Error` converts into it with `?` (as an
/// [`ErrorKind::Application`] error), so handlers can use the crates they like.
/// Like `anyhow::Error`, it does not itself implement `std::error::Error`.
#[derive(Clone, PartialEq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    details: Option<serde_json::Value>,
}

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            details: None,
        }
    }

    /// An application error: what a workflow reports about its own domain
    /// ("card declined", "out of stock").
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Application, message)
    }

    /// Attach structured details (any JSON value).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }

    pub(crate) fn invalid_payload(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidPayload, message)
    }

    pub(crate) fn into_wit(self) -> wit::Error {
        wit::Error {
            kind: self.kind.to_wit(),
            message: self.message,
            details: self.details.map(|d| d.to_string()),
        }
    }

    pub(crate) fn from_wit(e: wit::Error) -> Self {
        Error {
            kind: ErrorKind::from_wit(e.kind),
            message: e.message,
            details: e.details.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::msg(e.to_string()).with_details(serde_json::json!({
            "type": std::any::type_name::<E>(),
        }))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(d) = &self.details {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// `Result<T, wasmflow::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
