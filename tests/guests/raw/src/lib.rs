//! Test guest written against the WIT world directly, without the SDK: it
//! does what the SDK makes impossible, so the host's own checks can be
//! tested. `Raw` steps to a step it does not have.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{
    Activation, Directive, Error, HandlerInfo, HandlerKind, WorkflowTypeInfo,
};

struct Raw;

impl Guest for Raw {
    fn describe() -> Vec<WorkflowTypeInfo> {
        vec![WorkflowTypeInfo {
            name: "Raw".into(),
            handlers: vec![HandlerInfo {
                name: "start".into(),
                kind: HandlerKind::Start,
                params: vec![],
                timeout_ms: None,
            }],
        }]
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        Ok(Directive::Step("nowhere".into()))
    }
}

export!(Raw);
