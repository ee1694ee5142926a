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
///
/// ```
/// use wasmflow::{Error, ErrorKind};
///
/// fn parse(text: &str) -> wasmflow::Result<u32> {
///     Ok(text.parse::<u32>()?) // a `ParseIntError` becomes an application error
/// }
///
/// let e = parse("ten").unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Application);
/// assert_eq!(e.message(), "invalid digit found in string");
/// ```
#[derive(Clone, PartialEq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    details: Option<serde_json::Value>,
}

impl Error {
    /// An error of the given kind.
    ///
    /// ```
    /// use wasmflow::{Error, ErrorKind};
    ///
    /// let e = Error::new(ErrorKind::InvalidPayload, "amount must be positive");
    /// assert_eq!(e.kind(), ErrorKind::InvalidPayload);
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            details: None,
        }
    }

    /// An application error: what a workflow reports about its own domain
    /// ("card declined", "out of stock").
    ///
    /// ```
    /// use wasmflow::{Error, ErrorKind};
    ///
    /// let e = Error::msg("out of stock");
    /// assert_eq!((e.kind(), e.message()), (ErrorKind::Application, "out of stock"));
    /// ```
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Application, message)
    }

    /// Attach structured details (any JSON value).
    ///
    /// ```
    /// use wasmflow::Error;
    ///
    /// let e = Error::msg("card declined").with_details(serde_json::json!({ "code": 51 }));
    /// assert_eq!(e.details().and_then(|d| d["code"].as_u64()), Some(51));
    /// ```
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// What went wrong, for a handler to match on.
    ///
    /// ```
    /// use wasmflow::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::msg("card declined").kind(), ErrorKind::Application);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message.
    ///
    /// ```
    /// use wasmflow::Error;
    ///
    /// assert_eq!(Error::msg("card declined").message(), "card declined");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The structured details, if any were attached.
    ///
    /// ```
    /// use wasmflow::Error;
    ///
    /// let e = Error::msg("card declined").with_details(serde_json::json!({ "code": 51 }));
    /// assert_eq!(e.details(), Some(&serde_json::json!({ "code": 51 })));
    /// ```
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

/// `Result<T, wasmflow::Error>`: what handlers return.
///
/// ```
/// use wasmflow::prelude::*;
///
/// fn amount(ctx: &Context) -> Result<f64> {
///     ctx.store.get("amount")
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`ctx.next.fail`](crate::Next::fail) takes: an [`Error`], anything
/// that converts into one (any `std::error::Error`), or a message (`&str`,
/// `String`), which becomes an [`ErrorKind::Application`] error.
///
/// The parameter `M` only tells the two families apart (a blanket
/// conversion from every `std::error::Error` and one from strings cannot
/// both be `From` impls); it is inferred, never written.
///
/// ```
/// use wasmflow::{Error, ErrorKind, IntoError};
///
/// fn error<M>(e: impl IntoError<M>) -> Error {
///     e.into_error()
/// }
///
/// assert_eq!(error("card declined"), Error::msg("card declined"));
/// assert_eq!(error(format!("card {} declined", 4242)).message(), "card 4242 declined");
/// assert_eq!(error(Error::new(ErrorKind::Cancelled, "no")).kind(), ErrorKind::Cancelled);
/// assert_eq!(error(std::fmt::Error).kind(), ErrorKind::Application);
/// ```
pub trait IntoError<M> {
    /// The error.
    fn into_error(self) -> Error;
}

/// The markers that tell the [`IntoError`] families apart.
pub mod marker {
    /// [`IntoError`](crate::IntoError) through `Into<Error>`: an [`Error`](crate::Error)
    /// or any `std::error::Error`.
    #[derive(Debug)]
    pub enum Convert {}
    /// [`IntoError`](crate::IntoError) from a message: `&str`, `String`, `Cow<str>`.
    #[derive(Debug)]
    pub enum Message {}
}

impl<E: Into<Error>> IntoError<marker::Convert> for E {
    fn into_error(self) -> Error {
        self.into()
    }
}

impl IntoError<marker::Message> for &str {
    fn into_error(self) -> Error {
        Error::msg(self)
    }
}

impl IntoError<marker::Message> for String {
    fn into_error(self) -> Error {
        Error::msg(self)
    }
}

impl IntoError<marker::Message> for &String {
    fn into_error(self) -> Error {
        Error::msg(self.as_str())
    }
}

impl IntoError<marker::Message> for std::borrow::Cow<'_, str> {
    fn into_error(self) -> Error {
        Error::msg(self)
    }
}

#[cfg(test)]
mod wit_tests {
    use super::*;

    fn error<M>(e: impl IntoError<M>) -> Error {
        e.into_error()
    }

    #[test]
    fn messages_errors_and_std_errors_all_make_errors() {
        let owned = String::from("out of stock");
        for e in [
            error("out of stock"),
            error(owned.clone()),
            error(&owned),
            error(std::borrow::Cow::Borrowed("out of stock")),
        ] {
            assert_eq!(e, Error::msg("out of stock"));
            assert_eq!(e.details(), None);
        }
        let typed = Error::new(ErrorKind::WaitTimeout, "late").with_details(serde_json::json!(1));
        assert_eq!(error(typed.clone()), typed);
        let io = error(std::io::Error::other("disk on fire"));
        assert_eq!(io.kind(), ErrorKind::Application);
        assert_eq!(io.message(), "disk on fire");
        assert_eq!(
            io.details(),
            Some(&serde_json::json!({ "type": "std::io::error::Error" }))
        );
    }

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
