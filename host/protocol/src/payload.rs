//! How a payload binds to a handler's parameters (SPEC 4).
//!
//! The host checks a start input or event payload with [`bind`] at the door,
//! before anything is stored; the guest SDK binds with the same function
//! before it deserializes each parameter. One rule, one place:
//!
//! - start, event and query handlers take their parameters **by name** from a
//!   JSON object; extra keys are ignored; a missing key is an error naming it
//!   unless the parameter is optional;
//! - a scalar or array payload goes whole to a handler with exactly one
//!   parameter;
//! - a step takes at most one parameter (a child's outcome), which receives
//!   the whole payload;
//! - a handler without parameters ignores its payload.
//!
//! ```
//! use serde_json::json;
//! use wasmflow_protocol::payload::{bind, Binding, Param};
//!
//! let params = [Param { name: "order_id", optional: false }, Param { name: "amount", optional: false }];
//! let input = json!({"order_id": "abc", "amount": 12.5, "note": "ignored"});
//! let values = bind(&params, Binding::ByName, &input).unwrap();
//! assert_eq!(values, vec![Some(&json!("abc")), Some(&json!(12.5))]);
//!
//! let err = bind(&params, Binding::ByName, &json!({"order_id": "abc"})).unwrap_err();
//! assert_eq!(err.to_string(), "missing key `amount`");
//! ```

use std::fmt;

use serde_json::Value;

/// One handler parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    /// May be absent (an `Option<T>` in Rust).
    pub optional: bool,
}

/// How a handler's parameters are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Start, event and query handlers: object keys by name.
    ByName,
    /// Steps: the whole payload to the single parameter.
    Whole,
}

impl Binding {
    /// How handlers of `kind` bind their payload.
    pub fn of(kind: crate::HandlerKind) -> Binding {
        match kind {
            crate::HandlerKind::Step => Binding::Whole,
            _ => Binding::ByName,
        }
    }
}

/// Why a payload does not fit a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// A required parameter has no key in the payload object.
    MissingKey(String),
    /// The handler has several parameters but the payload is not an object.
    NotAnObject {
        expected: Vec<String>,
        found: &'static str,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::MissingKey(key) => write!(f, "missing key `{key}`"),
            BindError::NotAnObject { expected, found } => write!(
                f,
                "expected a JSON object with keys {}, found {found}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for BindError {}

/// The value for each parameter, in order (`None`: an absent optional).
pub fn bind<'v>(
    params: &[Param<'_>],
    binding: Binding,
    payload: &'v Value,
) -> Result<Vec<Option<&'v Value>>, BindError> {
    match (params, binding, payload) {
        ([], _, _) => Ok(Vec::new()),
        ([param], Binding::Whole, value) | ([param], Binding::ByName, value)
            if !value.is_object() =>
        {
            if value.is_null() && !param.optional {
                Err(BindError::MissingKey(param.name.to_owned()))
            } else {
                Ok(vec![Some(value).filter(|v| !v.is_null())])
            }
        }
        (_, Binding::Whole, value) => Ok(vec![Some(value)]),
        (params, Binding::ByName, Value::Object(map)) => params
            .iter()
            .map(|p| match map.get(p.name) {
                Some(v) if !v.is_null() => Ok(Some(v)),
                _ if p.optional => Ok(None),
                Some(v) => Ok(Some(v)),
                None => Err(BindError::MissingKey(p.name.to_owned())),
            })
            .collect(),
        (params, Binding::ByName, other) => Err(BindError::NotAnObject {
            expected: params.iter().map(|p| p.name.to_owned()).collect(),
            found: json_type(other),
        }),
    }
}

/// "an object", "a string", ... for error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const fn p(name: &str, optional: bool) -> Param<'_> {
        Param { name, optional }
    }

    #[test]
    fn no_params_ignore_the_payload() {
        assert_eq!(bind(&[], Binding::ByName, &json!([1, 2])), Ok(vec![]));
        assert_eq!(bind(&[], Binding::Whole, &json!(null)), Ok(vec![]));
    }

    #[test]
    fn objects_bind_by_name_and_ignore_extra_keys() {
        let v = json!({"a": 1, "b": "x", "c": true});
        assert_eq!(
            bind(&[p("b", false), p("a", false)], Binding::ByName, &v),
            Ok(vec![Some(&json!("x")), Some(&json!(1))])
        );
    }

    #[test]
    fn a_missing_key_is_named() {
        let v = json!({"a": 1});
        assert_eq!(
            bind(&[p("a", false), p("b", false)], Binding::ByName, &v),
            Err(BindError::MissingKey("b".into()))
        );
        // A single by-name parameter also wants its key in an object.
        assert_eq!(
            bind(&[p("b", false)], Binding::ByName, &v),
            Err(BindError::MissingKey("b".into()))
        );
    }

    #[test]
    fn optional_params_may_be_absent_or_null() {
        let v = json!({"a": 1, "b": null});
        assert_eq!(
            bind(
                &[p("a", false), p("b", true), p("c", true)],
                Binding::ByName,
                &v
            ),
            Ok(vec![Some(&json!(1)), None, None])
        );
        assert_eq!(
            bind(&[p("a", true)], Binding::ByName, &json!(null)),
            Ok(vec![None])
        );
    }

    #[test]
    fn scalars_and_arrays_go_to_a_single_parameter() {
        assert_eq!(
            bind(&[p("priority", false)], Binding::ByName, &json!("high")),
            Ok(vec![Some(&json!("high"))])
        );
        assert_eq!(
            bind(&[p("items", false)], Binding::ByName, &json!([1, 2])),
            Ok(vec![Some(&json!([1, 2]))])
        );
        assert_eq!(
            bind(&[p("x", false)], Binding::ByName, &json!(null)),
            Err(BindError::MissingKey("x".into()))
        );
    }

    #[test]
    fn several_params_need_an_object() {
        let err = bind(&[p("a", false), p("b", false)], Binding::ByName, &json!(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a JSON object with keys `a`, `b`, found a number"
        );
    }

    #[test]
    fn a_step_gets_the_whole_payload() {
        let outcome = json!({"workflow_id": "w", "status": "completed"});
        assert_eq!(
            bind(&[p("outcome", false)], Binding::Whole, &outcome),
            Ok(vec![Some(&outcome)])
        );
    }
}
