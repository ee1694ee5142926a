//! The error type handlers return and match on.

use std::fmt;

use crate::bindings::wasmflow::workflow::types as wit;

/// The kind of an [`Error`]: what went wrong, in terms a handler can match on.
///
/// The host and the SDK produce every kind except [`ErrorKind::Application`],
/// which is what workflow code's own errors become. The host uses the same
/// type (crate `wasmflow-protocol`).
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
pub use wasmflow_protocol::ErrorKind;

wasmflow_protocol::wit_conversions!(crate::bindings::wasmflow::workflow::types);

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
            kind: error_kind_to_wit(self.kind),
            message: self.message,
            details: self.details.map(|d| d.to_string()),
        }
    }

    pub(crate) fn from_wit(e: wit::Error) -> Self {
        Error {
            kind: error_kind_from_wit(e.kind),
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

#[cfg(test)]
mod wit_tests {
    use super::*;

    #[test]
    fn every_error_kind_in_the_wit_world_round_trips() {
        for kind in ErrorKind::ALL.iter().filter(|k| k.in_wit()) {
            assert_eq!(error_kind_from_wit(error_kind_to_wit(*kind)), *kind);
        }
        for policy in crate::ClosePolicy::ALL {
            assert_eq!(close_policy_from_wit(close_policy_to_wit(*policy)), *policy);
        }
    }
}
