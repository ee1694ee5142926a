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
}

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
        serde_json::from_value(value).map_err(|e| {
            Error::invalid_payload(format!(
                "parameter `{name}` expects a {}: {e}",
                std::any::type_name::<T>()
            ))
        })
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
    let args = Args::bind(handler, &activation.input)?;
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
