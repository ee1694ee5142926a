//! Test guest: a component whose `describe` lies — a workflow type with two
//! start handlers and a step named twice. The host must reject the file.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{
    Activation, Directive, Error, HandlerInfo, HandlerKind, WorkflowTypeInfo,
};

struct Liar;

fn handler(name: &str, kind: HandlerKind) -> HandlerInfo {
    HandlerInfo {
        name: name.into(),
        kind,
        params: vec![],
        timeout_ms: None,
    }
}

impl Guest for Liar {
    fn describe() -> Vec<WorkflowTypeInfo> {
        vec![WorkflowTypeInfo {
            name: "Liar".into(),
            handlers: vec![
                handler("start", HandlerKind::Start),
                handler("other_start", HandlerKind::Start),
                handler("step", HandlerKind::Step),
                handler("step", HandlerKind::Step),
            ],
        }]
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        Ok(Directive::Complete("null".into()))
    }
}

export!(Liar);
