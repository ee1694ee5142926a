//! The runtime behind `#[workflow]` and `export!`: the tables the macros
//! generate, `describe`, and the dispatch of one activation to its handler.
//! Not part of the public API; the macros are the only users.

use std::sync::Once;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasmflow_protocol::payload::{self, Binding, Param};

use crate::bindings::wasmflow::workflow::{host, types as wit};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};

pub use crate::bindings::exports::wasmflow::workflow::guest::Guest;
pub use wit::{Activation, Directive as WitDirective, HandlerKind};

/// One workflow type, as `#[workflow]` generates it.
pub struct WorkflowDef {
    pub name: &'static str,
    pub handlers: &'static [HandlerDef],
}

/// One handler of a workflow type.
pub struct HandlerDef {
    pub name: &'static str,
    pub kind: HandlerKind,
    pub params: &'static [ParamDef],
    pub timeout_ms: Option<u64>,
    pub call: fn(&mut Context, Args) -> Result<WitDirective>,
}

pub struct ParamDef {
    pub name: &'static str,
    pub optional: bool,
    /// The parameter's JSON Schema as text, when its type has one.
    pub schema: fn() -> Option<String>,
}

/// A type a start, event or query parameter may have: one with a JSON
/// Schema, which `describe` hands to the host so that it can check payloads
/// at the door (`#[derive(JsonSchema)]` on your own types).
#[diagnostic::on_unimplemented(
    message = "handler parameter type `{Self}` has no JSON Schema for the host to check payloads against",
    label = "`{Self}` does not implement `JsonSchema`",
    note = "derive it: `#[derive(wasmflow::schemars::JsonSchema)]` with `#[schemars(crate = \"wasmflow::schemars\")]`, or take a `serde_json::Value`"
)]
pub trait ParamType {
    fn schema() -> String;
}

impl<T: ?Sized + schemars::JsonSchema> ParamType for T {
    fn schema() -> String {
        schema_text::<T>()
    }
}

/// The schema of a parameter of type `T` (generated code).
pub fn param_schema<T: ?Sized + ParamType>() -> Option<String> {
    Some(T::schema())
}

/// The JSON Schema of `T` as compact text (draft 2020-12, self-contained),
/// with the ranges that schemars only names as a `format` (`uint32`, ...)
/// made explicit, so the host refuses what `T` cannot hold.
pub fn schema_text<T: ?Sized + schemars::JsonSchema>() -> String {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    add_ranges(&mut schema);
    schema.to_string()
}

fn add_ranges(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let range: Option<(Value, Value)> = match map.get("format").and_then(Value::as_str) {
                Some("uint32") => Some((0.into(), u32::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("uint64") => Some((0.into(), u64::MAX.into())),
                Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
                Some("uint") => Some((0.into(), (usize::MAX as u64).into())),
                Some("int") => Some(((isize::MIN as i64).into(), (isize::MAX as i64).into())),
                _ => None,
            };
            if let Some((min, max)) = range {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(add_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(add_ranges),
        _ => {}
    }
}

/// Checks that a step's parameter is one a step can receive: a child's
/// outcome (`ChildOutcome`, or `Option<ChildOutcome>` for a step that is
/// also reached without one).
#[diagnostic::on_unimplemented(
    message = "a step's parameter must be `ChildOutcome` or `Option<ChildOutcome>`, not `{Self}`",
    label = "a step only ever receives a child's outcome",
    note = "steps take their data from `ctx.store`; only a child's completion passes a value to a step"
)]
pub trait StepParam {}

impl StepParam for crate::ChildOutcome {}
impl StepParam for Option<crate::ChildOutcome> {}

/// Used by the generated code: compiles only when `T: StepParam`.
pub fn step_param<T: StepParam>() {}

/// A handler's bound arguments, taken one by one by the generated wrapper.
pub struct Args {
    values: Vec<Option<Value>>,
    params: &'static [ParamDef],
}

impl Args {
    fn bind(handler: &HandlerDef, input: &str) -> Result<Args> {
        let payload: Value = if input.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(input)
                .map_err(|e| Error::invalid_payload(format!("input is not valid JSON: {e}")))?
        };
        let params: Vec<Param<'_>> = handler
            .params
            .iter()
            .map(|p| Param {
                name: p.name,
                optional: p.optional,
            })
            .collect();
        let binding = Binding::of(crate::error::handler_kind_from_wit(handler.kind));
        let values = payload::bind(&params, binding, &payload)
            .map_err(|e| Error::invalid_payload(e.to_string()))?
            .into_iter()
            .map(|v| v.cloned())
            .collect();
        Ok(Args {
            values,
            params: handler.params,
        })
    }

    /// Deserialize parameter `index` into `T` (an absent optional is `null`).
    pub fn take<T: DeserializeOwned>(&mut self, index: usize) -> Result<T> {
        let value = self
            .values
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or(Value::Null);
        let name = self.params.get(index).map_or("?", |p| p.name);
        // JSON Schema, which the host checks at the door, counts `229.0` as
        // the integer it equals; serde does not: read such numbers as
        // integers when the value does not deserialize as it is.
        T::deserialize(&value)
            .or_else(|e| match integral(&value) {
                Some(integers) => T::deserialize(&integers).map_err(|_| e),
                None => Err(e),
            })
            .map_err(|e| {
                Error::invalid_payload(format!(
                    "parameter `{name}` expects a {}: {e}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

/// `value` with every float that has no fractional part and fits an
/// integer (`229.0`) made that integer; `None` when it has no such float.
fn integral(value: &Value) -> Option<Value> {
    let mut value = value.clone();
    make_integral(&mut value).then_some(value)
}

/// Make the integral floats in `value` integers; whether there were any.
fn make_integral(value: &mut Value) -> bool {
    match value {
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) else {
                return false;
            };
            *value = if (0.0..18446744073709551616.0).contains(&f) {
                Value::from(f as u64)
            } else if (-9223372036854775808.0..0.0).contains(&f) {
                Value::from(f as i64)
            } else {
                return false;
            };
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| make_integral(v) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| make_integral(v) | any),
        _ => false,
    }
}

/// A query handler's value, as the `complete` directive the host expects.
pub fn query_result<T: Serialize, E: Into<Error>>(
    result: std::result::Result<T, E>,
) -> Result<WitDirective> {
    let value = result.map_err(Into::into)?;
    serde_json::to_string(&value)
        .map(WitDirective::Complete)
        .map_err(|e| Error::invalid_payload(format!("query result cannot be serialized: {e}")))
}

/// The `describe` export.
pub fn describe(workflows: &[&WorkflowDef]) -> Vec<wit::WorkflowTypeInfo> {
    workflows
        .iter()
        .map(|w| wit::WorkflowTypeInfo {
            name: w.name.to_owned(),
            handlers: w
                .handlers
                .iter()
                .map(|h| wit::HandlerInfo {
                    name: h.name.to_owned(),
                    kind: h.kind,
                    params: h
                        .params
                        .iter()
                        .map(|p| wit::Param {
                            name: p.name.to_owned(),
                            optional: p.optional,
                            schema: (p.schema)(),
                        })
                        .collect(),
                    timeout_ms: h.timeout_ms,
                })
                .collect(),
        })
        .collect()
}

/// The `handle` export: find the handler and run it.
pub fn handle(
    workflows: &[&WorkflowDef],
    activation: Activation,
) -> std::result::Result<WitDirective, wit::Error> {
    install_panic_hook();
    dispatch(workflows, activation).map_err(Error::into_wit)
}

fn dispatch(workflows: &[&WorkflowDef], activation: Activation) -> Result<WitDirective> {
    let workflow = workflows
        .iter()
        .find(|w| w.name == activation.workflow_type)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownWorkflowType,
                format!(
                    "this component has no workflow type `{}`",
                    activation.workflow_type
                ),
            )
        })?;
    let handler = workflow
        .handlers
        .iter()
        .find(|h| h.kind == activation.kind && h.name == activation.handler)
        .ok_or_else(|| {
            let kind = match activation.kind {
                HandlerKind::Event => ErrorKind::UnknownEvent,
                _ => ErrorKind::UnknownStep,
            };
            Error::new(
                kind,
                format!(
                    "workflow `{}` has no {:?} handler `{}`",
                    workflow.name, activation.kind, activation.handler
                ),
            )
        })?;
    call(workflow, handler, &activation.input)
}

/// Bind `input` to `handler`'s parameters (deserializing each into its
/// type) and run it: what `handle` does once it has found the handler. The
/// fuzz targets call it on the host to check that the host's schema check
/// and the SDK's binding accept the same payloads.
pub fn call(workflow: &WorkflowDef, handler: &HandlerDef, input: &str) -> Result<WitDirective> {
    let args = Args::bind(handler, input)?;
    let mut ctx = Context::new(workflow.name);
    (handler.call)(&mut ctx, args)
}

/// Route panics to the host before the guest traps, so the run fails with
/// the panic's message and location instead of a bare `unreachable`.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| host::report_panic(&info.to_string())));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_floats_read_as_integers() {
        // Found by the `payload` fuzz target: the host accepted `229.0` for
        // a `u32` (JSON Schema's integer) and the SDK refused it.
        assert_eq!(integral(&json!(229.0)), Some(json!(229)));
        assert_eq!(integral(&json!(-3.0)), Some(json!(-3)));
        assert_eq!(integral(&json!(2.5)), None);
        assert_eq!(integral(&json!(1e300)), None);
        assert_eq!(integral(&json!(7)), None);
        assert_eq!(
            integral(&json!({"a": [1.0, 2.5, "x"], "b": true})),
            Some(json!({"a": [1, 2.5, "x"], "b": true}))
        );
        assert_eq!(integral(&json!({"a": [2.5]})), None);
    }
}
