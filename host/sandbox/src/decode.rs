//! What a guest hands back, checked into the host's model: the directive a
//! handler returns, the error it fails with, its `describe` answer, and the
//! input of a child it starts. Every name, size, duration and JSON text is
//! checked here, and anything out of bounds is a typed [`WorkflowError`] (or
//! a [`LoadError`] for `describe`), never a panic or a default.
//!
//! Pure functions over the WIT world's values ([`wit`]): the sandbox calls
//! them after each guest call, and the fuzz targets (`host/fuzz`) feed them
//! arbitrary values directly, without a component.
//!
//! ```
//! use wasmflow_sandbox::decode::{self, wit};
//! use wasmflow_sandbox::SandboxConfig;
//!
//! let config = SandboxConfig::default();
//! let done = decode::directive(wit::Directive::Complete(r#"{"ok":true}"#.into()), &config);
//! assert!(done.is_ok());
//! let err = decode::directive(wit::Directive::Complete("{oops".into()), &config).unwrap_err();
//! assert_eq!(err.kind, wasmflow_core::ErrorKind::InvalidPayload);
//! ```

use std::sync::Arc;
use std::time::Duration;

use wasmflow_core::activation::LoadError;
use wasmflow_core::limits::MAX_WORKFLOW_TIMEOUT;
use wasmflow_core::model::{
    Directive, HandlerSpec, Json, ParamSpec, WorkflowTypeSpec, check_duration, check_id,
    guest_json, json_value, parse_json, shorten,
};
use wasmflow_core::schema::ParamSchema;
use wasmflow_core::{ErrorKind, WorkflowError};

use crate::{SandboxConfig, error_kind_from_wit, handler_kind_from_wit};

/// The WIT world's types (`wit/workflow.wit`), as wasmtime generates them.
pub use crate::bindings::types as wit;

/// A name the guest returned, within `max_name_bytes`.
pub fn check_name(name: &str, config: &SandboxConfig) -> Result<(), WorkflowError> {
    let max = config.max_name_bytes;
    if name.len() > max {
        return Err(WorkflowError::quota(
            "max_name_bytes",
            name.len() as u64,
            max as u64,
        ));
    }
    Ok(())
}

/// The directive a handler returned, with every name, value and error in it
/// within its bound.
pub fn directive(d: wit::Directive, config: &SandboxConfig) -> Result<Directive, WorkflowError> {
    Ok(match d {
        wit::Directive::Step(name) => {
            check_name(&name, config)?;
            Directive::Step(name)
        }
        wit::Directive::Wait(spec) => {
            if let Some(step) = &spec.on_timeout {
                check_name(step, config)?;
            }
            Directive::Wait {
                timeout: spec
                    .timeout_ms
                    .map(|ms| check_duration("the wait's timeout_ms", ms, MAX_WORKFLOW_TIMEOUT))
                    .transpose()?,
                on_timeout: spec.on_timeout,
            }
        }
        wit::Directive::Sleep(spec) => {
            check_name(&spec.step, config)?;
            Directive::Sleep {
                duration: check_duration(
                    "the sleep's duration_ms",
                    spec.duration_ms,
                    MAX_WORKFLOW_TIMEOUT,
                )?,
                step: spec.step,
            }
        }
        wit::Directive::Complete(json) => Directive::Complete(guest_json(
            &json,
            "the handler's result",
            config.max_value_bytes,
        )?),
        wit::Directive::Fail(error) => Directive::Fail(self::error(error, config)?),
    })
}

/// The error a guest failed with, or the quota it broke doing so.
pub fn error(e: wit::Error, config: &SandboxConfig) -> Result<WorkflowError, WorkflowError> {
    let kind = error_kind_from_wit(e.kind);
    let max = config.max_message_bytes;
    if e.message.len() > max {
        return Err(WorkflowError::quota(
            "max_message_bytes",
            e.message.len() as u64,
            max as u64,
        ));
    }
    let max = config.max_details_bytes;
    if let Some(d) = &e.details
        && d.len() > max
    {
        return Err(WorkflowError::quota(
            "max_details_bytes",
            d.len() as u64,
            max as u64,
        ));
    }
    // Details that are not valid (or too deeply nested) JSON are kept as a
    // string.
    let details = e.details.map(|d| {
        match parse_json(&d, "the error details").and_then(|json| json_value(&json)) {
            Ok(value) => value,
            Err(_) => serde_json::Value::String(d),
        }
    });
    Ok(WorkflowError {
        kind,
        message: e.message,
        details,
    })
}

/// The bytes of names and parameter schemas in a `describe` answer.
pub fn describe_bytes(infos: &[wit::WorkflowTypeInfo]) -> usize {
    let param = |p: &wit::Param| p.name.len() + p.schema.as_ref().map_or(0, String::len);
    infos
        .iter()
        .map(|t| {
            t.name.len()
                + t.handlers
                    .iter()
                    .map(|h| h.name.len() + h.params.iter().map(param).sum::<usize>())
                    .sum::<usize>()
        })
        .sum()
}

/// The model of one described type; each parameter schema is compiled here,
/// once per component version, and an invalid one rejects the component.
pub fn type_spec(info: wit::WorkflowTypeInfo) -> Result<WorkflowTypeSpec, LoadError> {
    let type_name = info.name;
    let mut handlers = Vec::with_capacity(info.handlers.len());
    for h in info.handlers {
        let kind = handler_kind_from_wit(h.kind);
        let mut params = Vec::with_capacity(h.params.len());
        for p in h.params {
            let schema = match p.schema {
                None => None,
                Some(text) => Some(ParamSchema::parse(&text).map_err(|e| {
                    LoadError(format!(
                        "`describe` is invalid: parameter `{}` of {kind} `{}` of workflow type \
                         `{}` has an unusable schema: {e}",
                        shorten(&p.name),
                        shorten(&h.name),
                        shorten(&type_name)
                    ))
                })?),
            };
            params.push(ParamSpec {
                name: p.name,
                optional: p.optional,
                schema,
            });
        }
        handlers.push(HandlerSpec {
            name: h.name,
            kind,
            params,
            timeout: h.timeout_ms.map(Duration::from_millis),
        });
    }
    Ok(WorkflowTypeSpec {
        name: type_name,
        handlers,
    })
}

/// A whole `describe` answer: at least one and at most `max_types` types,
/// within [`MAX_DESCRIBE_BYTES`](wasmflow_core::limits::MAX_DESCRIBE_BYTES),
/// each valid ([`WorkflowTypeSpec::validate`]) and named once.
pub fn describe(
    infos: Vec<wit::WorkflowTypeInfo>,
    max_types: usize,
) -> Result<Vec<Arc<WorkflowTypeSpec>>, LoadError> {
    if infos.is_empty() {
        return Err(LoadError(
            "`describe` returned no workflow types".to_owned(),
        ));
    }
    if infos.len() > max_types {
        return Err(LoadError(format!(
            "`describe` is invalid: it declares {} workflow types; a component may declare \
             at most {max_types} (max_types_per_component)",
            infos.len()
        )));
    }
    let bytes = describe_bytes(&infos);
    let max = wasmflow_core::limits::MAX_DESCRIBE_BYTES;
    if bytes > max {
        return Err(LoadError(format!(
            "`describe` is invalid: its answer names {bytes} bytes of types, handlers, \
             parameters and parameter schemas; at most {max} (max_describe_bytes)"
        )));
    }
    let mut types: Vec<Arc<WorkflowTypeSpec>> = Vec::with_capacity(infos.len());
    for info in infos {
        let spec = type_spec(info)?;
        spec.validate()
            .map_err(|e| LoadError(format!("`describe` is invalid: {e}")))?;
        if types.iter().any(|t| t.name == spec.name) {
            return Err(LoadError(format!(
                "`describe` is invalid: workflow type `{}` is declared twice",
                shorten(&spec.name)
            )));
        }
        types.push(Arc::new(spec));
    }
    Ok(types)
}

/// A child start's own fields, before the host looks the child type up:
/// the workflow id (the door's charset), the timeout, and the input (a JSON
/// object), as text to store and as a value to check against the child's
/// start handler.
pub fn child_start(
    child: &wit::ChildStart,
) -> Result<(Option<Duration>, Json, serde_json::Value), WorkflowError> {
    check_id("workflow id", &child.workflow_id)?;
    let timeout = child
        .timeout_ms
        .map(|ms| check_duration("the child's timeout_ms", ms, MAX_WORKFLOW_TIMEOUT))
        .transpose()?;
    let what = format!("the input of child `{}`", shorten(&child.workflow_id));
    let input_json = parse_json(&child.input, &what)?;
    let input = json_value(&input_json)?;
    if !input.is_object() {
        return Err(WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!(
                "{what} must be a JSON object, found {}",
                wasmflow_core::payload::json_type(&input)
            ),
        ));
    }
    Ok((timeout, input_json, input))
}

/// The payload of an event a child sends its parent, as text to store and
/// as a value to check against the parent's event handler.
pub fn event_payload(
    event: &str,
    payload: &str,
) -> Result<(Json, serde_json::Value), WorkflowError> {
    let what = format!("the payload of event `{}`", shorten(event));
    let json = parse_json(payload, &what)?;
    let value = json_value(&json)?;
    Ok((json, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_describe_answer_counts_every_name() {
        let param = |name: &str| wit::Param {
            name: name.into(),
            optional: false,
            schema: None,
        };
        let infos = vec![wit::WorkflowTypeInfo {
            name: "Order".into(),
            handlers: vec![wit::HandlerInfo {
                name: "start".into(),
                kind: wit::HandlerKind::Start,
                params: vec![param("id"), param("amount")],
                timeout_ms: None,
            }],
        }];
        assert_eq!(describe_bytes(&infos), 5 + 5 + 2 + 6);
        let mut typed = infos.clone();
        typed[0].handlers[0].params[0].schema = Some(r#"{"type":"string"}"#.into());
        assert_eq!(describe_bytes(&typed), 5 + 5 + 2 + 6 + 17);
    }

    #[test]
    fn parameter_schemas_are_compiled_at_load_and_an_invalid_one_rejects_the_component() {
        let info = |schema: &str| wit::WorkflowTypeInfo {
            name: "Order".into(),
            handlers: vec![wit::HandlerInfo {
                name: "start".into(),
                kind: wit::HandlerKind::Start,
                params: vec![wit::Param {
                    name: "amount".into(),
                    optional: false,
                    schema: Some(schema.into()),
                }],
                timeout_ms: None,
            }],
        };
        let spec = type_spec(info(r#"{"type":"integer","minimum":0}"#)).unwrap();
        let err = spec.handlers[0]
            .check_payload(&serde_json::json!({"amount": "ten"}))
            .unwrap_err();
        assert!(
            err.message.contains("`amount` expects an integer ≥ 0"),
            "{err}"
        );
        for (schema, why) in [
            (r#"{"type":"strung"}"#, "not a valid JSON Schema"),
            ("{", "not JSON"),
            (
                r#"{"$ref":"https://example.com/x.json"}"#,
                "not a valid JSON Schema",
            ),
        ] {
            let err = type_spec(info(schema)).unwrap_err().to_string();
            assert!(
                err.contains("parameter `amount` of start `start` of workflow type `Order`")
                    && err.contains(why),
                "{schema}: {err}"
            );
        }
    }
}
