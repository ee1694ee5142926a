//! Test guest: `describe` declares 100,000 workflow types. The host must
//! reject it quickly, naming the bound. Used by `tests/hostile.rs`.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{
    Activation, Directive, Error, HandlerInfo, HandlerKind, WorkflowTypeInfo,
};

struct Flood;

impl Guest for Flood {
    fn describe() -> Vec<WorkflowTypeInfo> {
        (0..100_000)
            .map(|i| WorkflowTypeInfo {
                name: format!("Flood{i:06}"),
                handlers: vec![HandlerInfo {
                    name: "start".into(),
                    kind: HandlerKind::Start,
                    params: vec![],
                    timeout_ms: None,
                }],
            })
            .collect()
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        Ok(Directive::Complete("null".into()))
    }
}

export!(Flood);
