//! The vocabulary the wasmflow host and the guest SDK share.
//!
//! Everything here crosses a boundary — the WIT interface between a guest
//! and the host, the database, the HTTP API — so it is spelled out once, in
//! this crate, and every side uses it:
//!
//! - [`ErrorKind`]: what went wrong, in terms a user or a guest matches on
//!   (SPEC 10);
//! - [`HandlerKind`]: start, step, event, query;
//! - [`RunStatus`]: where a run is in its state machine (SPEC 3);
//! - [`ClosePolicy`]: what a parent's end does to a child (SPEC 7);
//! - [`ChildOutcome`] and [`ChildStatus`]: the completion notice a parent
//!   step receives when a child ends;
//! - [`payload`]: how a JSON payload binds to a handler's parameters
//!   (SPEC 4), used by the host to check at the door and by the SDK to bind.
//!
//! Each enum has one name table: `as_str` gives the name used in JSON, the
//! database and output, [`FromStr`](std::str::FromStr) parses it back, and
//! serde uses the same names.
//!
//! ```
//! use wasmflow_protocol::{ErrorKind, RunStatus};
//!
//! assert_eq!(ErrorKind::KeyNotFound.as_str(), "KeyNotFound");
//! assert_eq!("waiting".parse::<RunStatus>(), Ok(RunStatus::Waiting));
//! assert!(RunStatus::Cancelled.is_terminal());
//! assert_eq!(serde_json::to_string(&RunStatus::Running).unwrap(), r#""running""#);
//! ```
//!
//! The WIT interface declares its own copies of the enums the guest sees
//! (`error-kind`, `handler-kind`, `close-policy`); [`wit_conversions!`]
//! converts between them and these, on both sides of the boundary, so a
//! kind added on one side and not the other is a compile error.
//!
//! This crate depends on nothing but serde: it builds for the host and for
//! `wasm32-wasip2` guests alike.

pub mod payload;
pub mod retry;

pub use retry::RetryPolicy;

use std::fmt;
use std::str::FromStr;

/// Declares a fieldless enum with one name per variant: `as_str`,
/// `Display`, `FromStr`, `ALL` and serde, all from the one table.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name used in JSON, the database and output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(UnknownName { what: $what, name: other.to_owned() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A name that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was parsed, e.g. `run status`.
    pub what: &'static str,
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} `{}`", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

named_enum! {
    /// What went wrong, in terms a user or a guest can match on (SPEC 10).
    ///
    /// The host and the SDK produce every kind except
    /// [`ErrorKind::Application`], which is what workflow code's own errors
    /// become.
    #[non_exhaustive]
    pub enum ErrorKind ("error kind") {
        /// A store key that does not exist was read.
        KeyNotFound = "KeyNotFound",
        /// A payload, input or stored value that does not fit its type.
        InvalidPayload = "InvalidPayload",
        /// A directive named a step the workflow type does not have.
        UnknownStep = "UnknownStep",
        /// An event name the workflow type has no handler for.
        UnknownEvent = "UnknownEvent",
        /// A workflow type no plugin provides.
        UnknownWorkflowType = "UnknownWorkflowType",
        /// `send_to_parent` from a run without a parent.
        NoParent = "NoParent",
        /// The workflow id is held by an active run that is not this run's
        /// child.
        WorkflowAlreadyRunning = "WorkflowAlreadyRunning",
        /// A run exceeded its workflow timeout.
        WorkflowTimeout = "WorkflowTimeout",
        /// A timed wait without a timeout step saw no event in time.
        WaitTimeout = "WaitTimeout",
        /// An activation exceeded its step timeout.
        StepTimeout = "StepTimeout",
        /// An activation exceeded its memory cap.
        MemoryLimit = "MemoryLimit",
        /// An activation exhausted its stack.
        StackOverflow = "StackOverflow",
        /// A guest trapped or panicked.
        Trap = "Trap",
        /// A quota was exceeded; the details name the limit.
        QuotaExceeded = "QuotaExceeded",
        /// The host does not support the call yet.
        NotSupported = "NotSupported",
        /// The run was cancelled.
        Cancelled = "Cancelled",
        /// The run was terminated.
        Terminated = "Terminated",
        /// An error of the workflow's own.
        Application = "Application",
        /// A call the operator did not grant: outbound HTTP outside a task,
        /// to a target no grant names, or with a secret not granted for it.
        CapabilityDenied = "CapabilityDenied",
        /// A re-executed activation asked for recorded values in another
        /// order than the execution that recorded them.
        NonDeterminism = "NonDeterminism",
        /// A query name the run's workflow type has no handler for. Host
        /// only: not in the WIT world, guests never see it.
        UnknownQuery = "UnknownQuery",
    }
}

named_enum! {
    /// The kind of a handler.
    pub enum HandlerKind ("handler kind") {
        /// Runs once when the run starts; receives the workflow input.
        Start = "start",
        /// Runs when a directive names it, a wait times out into it, or a
        /// child's completion notice is dispatched to it.
        Step = "step",
        /// Runs when an inbox event of its name is dispatched.
        Event = "event",
        /// Runs read-only on a run's committed store and returns a value.
        Query = "query",
    }
}

named_enum! {
    /// Where a run is in its state machine (SPEC 3).
    pub enum RunStatus ("run status") {
        /// An activation is scheduled or executing.
        Running = "running",
        /// Parked until an event or a timer.
        Waiting = "waiting",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Terminated = "terminated",
    }
}

impl ErrorKind {
    /// Whether guests know this kind (it is in the WIT `error-kind` enum).
    /// Host-only kinds are never handed to a guest.
    pub fn in_wit(self) -> bool {
        match self {
            ErrorKind::UnknownQuery => false,
            ErrorKind::KeyNotFound
            | ErrorKind::InvalidPayload
            | ErrorKind::UnknownStep
            | ErrorKind::UnknownEvent
            | ErrorKind::UnknownWorkflowType
            | ErrorKind::NoParent
            | ErrorKind::WorkflowAlreadyRunning
            | ErrorKind::WorkflowTimeout
            | ErrorKind::WaitTimeout
            | ErrorKind::StepTimeout
            | ErrorKind::MemoryLimit
            | ErrorKind::StackOverflow
            | ErrorKind::Trap
            | ErrorKind::QuotaExceeded
            | ErrorKind::NotSupported
            | ErrorKind::Cancelled
            | ErrorKind::Terminated
            | ErrorKind::Application
            | ErrorKind::CapabilityDenied
            | ErrorKind::NonDeterminism => true,
        }
    }
}

impl RunStatus {
    /// Completed, failed, cancelled or terminated: the run takes no more
    /// activations.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Waiting)
    }
}

named_enum! {
    /// What a parent's end does to a child that is still live (SPEC 7).
    #[derive(Default)]
    pub enum ClosePolicy ("close policy") {
        /// The child runs on (the default).
        #[default]
        Abandon = "abandon",
        /// The child is cancelled.
        Cancel = "cancel",
        /// The child is terminated.
        Terminate = "terminate",
    }
}

named_enum! {
    /// How a child ended, as its completion notice says.
    pub enum ChildStatus ("child status") {
        Completed = "completed",
        /// Failed with any error but `WorkflowTimeout`.
        Failed = "failed",
        Cancelled = "cancelled",
        Terminated = "terminated",
        /// Failed with `WorkflowTimeout`.
        TimedOut = "timed_out",
    }
}

/// The completion notice a parent's `on_completed` step receives when a
/// child ends, for every terminal status (SPEC 7).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChildOutcome {
    pub workflow_id: String,
    pub run_id: String,
    pub status: ChildStatus,
    /// The child's result when it completed; `null` otherwise.
    pub result: Option<serde_json::Value>,
    /// The error it ended with (`{kind, message, details?}`); `null` when it
    /// completed.
    pub error: Option<serde_json::Value>,
}

/// Conversions between this crate's enums and the ones `wit-bindgen` (guest)
/// or `wasmtime::component::bindgen!` (host) generate from the WIT world.
/// Invoke it where the generated `types` module is in scope:
///
/// ```ignore
/// wasmflow_protocol::wit_conversions!(crate::bindings::wasmflow::workflow::types);
/// ```
///
/// It defines `error_kind_from_wit`, `error_kind_to_wit`,
/// `handler_kind_from_wit`, `handler_kind_to_wit`, `close_policy_from_wit`
/// and `close_policy_to_wit` in the invoking module. Every match is
/// exhaustive, so a kind added to the WIT or here without the other is a
/// compile error on both sides.
#[macro_export]
macro_rules! wit_conversions {
    ($wit:path) => {
        mod __wit_conversions {
            use $crate::{ClosePolicy, ErrorKind, HandlerKind};
            use $wit as wit;

            pub fn error_kind_from_wit(kind: wit::ErrorKind) -> ErrorKind {
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
                    W::WaitTimeout => ErrorKind::WaitTimeout,
                    W::StepTimeout => ErrorKind::StepTimeout,
                    W::MemoryLimit => ErrorKind::MemoryLimit,
                    W::StackOverflow => ErrorKind::StackOverflow,
                    W::Trap => ErrorKind::Trap,
                    W::QuotaExceeded => ErrorKind::QuotaExceeded,
                    W::NotSupported => ErrorKind::NotSupported,
                    W::Cancelled => ErrorKind::Cancelled,
                    W::Terminated => ErrorKind::Terminated,
                    W::Application => ErrorKind::Application,
                    W::CapabilityDenied => ErrorKind::CapabilityDenied,
                    W::NonDeterminism => ErrorKind::NonDeterminism,
                }
            }

            /// Host-only kinds (not in the WIT world) reach a guest as
            /// `UnknownStep`, the nearest kind it knows. A test on each side
            /// checks that every kind in the WIT world round-trips.
            pub fn error_kind_to_wit(kind: ErrorKind) -> wit::ErrorKind {
                use wit::ErrorKind as W;
                match kind {
                    ErrorKind::KeyNotFound => W::KeyNotFound,
                    ErrorKind::InvalidPayload => W::InvalidPayload,
                    ErrorKind::UnknownStep => W::UnknownStep,
                    ErrorKind::UnknownEvent => W::UnknownEvent,
                    ErrorKind::UnknownWorkflowType => W::UnknownWorkflowType,
                    ErrorKind::NoParent => W::NoParent,
                    ErrorKind::WorkflowAlreadyRunning => W::WorkflowAlreadyRunning,
                    ErrorKind::WorkflowTimeout => W::WorkflowTimeout,
                    ErrorKind::WaitTimeout => W::WaitTimeout,
                    ErrorKind::StepTimeout => W::StepTimeout,
                    ErrorKind::MemoryLimit => W::MemoryLimit,
                    ErrorKind::StackOverflow => W::StackOverflow,
                    ErrorKind::Trap => W::Trap,
                    ErrorKind::QuotaExceeded => W::QuotaExceeded,
                    ErrorKind::NotSupported => W::NotSupported,
                    ErrorKind::Cancelled => W::Cancelled,
                    ErrorKind::Terminated => W::Terminated,
                    ErrorKind::Application => W::Application,
                    ErrorKind::CapabilityDenied => W::CapabilityDenied,
                    ErrorKind::NonDeterminism => W::NonDeterminism,
                    // Host-only kinds (see `ErrorKind::in_wit`).
                    _ => W::UnknownStep,
                }
            }

            pub fn handler_kind_from_wit(kind: wit::HandlerKind) -> HandlerKind {
                match kind {
                    wit::HandlerKind::Start => HandlerKind::Start,
                    wit::HandlerKind::Step => HandlerKind::Step,
                    wit::HandlerKind::Event => HandlerKind::Event,
                    wit::HandlerKind::Query => HandlerKind::Query,
                }
            }

            pub fn handler_kind_to_wit(kind: HandlerKind) -> wit::HandlerKind {
                match kind {
                    HandlerKind::Start => wit::HandlerKind::Start,
                    HandlerKind::Step => wit::HandlerKind::Step,
                    HandlerKind::Event => wit::HandlerKind::Event,
                    HandlerKind::Query => wit::HandlerKind::Query,
                }
            }

            pub fn close_policy_from_wit(policy: wit::ClosePolicy) -> ClosePolicy {
                match policy {
                    wit::ClosePolicy::Abandon => ClosePolicy::Abandon,
                    wit::ClosePolicy::Cancel => ClosePolicy::Cancel,
                    wit::ClosePolicy::Terminate => ClosePolicy::Terminate,
                }
            }

            pub fn close_policy_to_wit(policy: ClosePolicy) -> wit::ClosePolicy {
                match policy {
                    ClosePolicy::Abandon => wit::ClosePolicy::Abandon,
                    ClosePolicy::Cancel => wit::ClosePolicy::Cancel,
                    ClosePolicy::Terminate => wit::ClosePolicy::Terminate,
                }
            }
        }
        #[allow(unused_imports)]
        pub(crate) use __wit_conversions::{
            close_policy_from_wit, close_policy_to_wit, error_kind_from_wit, error_kind_to_wit,
            handler_kind_from_wit, handler_kind_to_wit,
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for k in ErrorKind::ALL {
            assert_eq!(k.as_str().parse::<ErrorKind>(), Ok(*k));
        }
        for k in HandlerKind::ALL {
            assert_eq!(k.as_str().parse::<HandlerKind>(), Ok(*k));
        }
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<RunStatus>(&json).unwrap(), *s);
        }
        for p in ClosePolicy::ALL {
            assert_eq!(p.as_str().parse::<ClosePolicy>(), Ok(*p));
        }
        for s in ChildStatus::ALL {
            assert_eq!(s.as_str().parse::<ChildStatus>(), Ok(*s));
        }
    }

    #[test]
    fn unknown_names_are_named() {
        let err = "done".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown run status `done`");
        assert!(serde_json::from_str::<ErrorKind>(r#""Oops""#).is_err());
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = RunStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(terminal, ["completed", "failed", "cancelled", "terminated"]);
    }

    #[test]
    fn the_child_outcome_has_the_documented_shape() {
        let outcome = ChildOutcome {
            workflow_id: "payment-1".into(),
            run_id: "r".into(),
            status: ChildStatus::TimedOut,
            result: None,
            error: Some(serde_json::json!({"kind": "WorkflowTimeout", "message": "late"})),
        };
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({
                "workflow_id": "payment-1", "run_id": "r", "status": "timed_out",
                "result": null, "error": {"kind": "WorkflowTimeout", "message": "late"},
            })
        );
    }
}
