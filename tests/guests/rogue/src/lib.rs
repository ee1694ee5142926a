//! Test guest written against the WIT world directly: it returns what the
//! SDK cannot, names far beyond the host's bounds. `HugeStep` steps to a
//! step named with 10 MiB; `HugeWait` waits with a 10 MiB `on_timeout`;
//! `EndlessWait` waits `u64::MAX` ms; `ZeroSleep` sleeps 0 ms.
//! Used by `tests/hostile.rs`.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{
    Activation, Directive, Error, HandlerInfo, HandlerKind, SleepSpec, WaitSpec, WorkflowTypeInfo,
};

struct Rogue;

fn handler(name: &str, kind: HandlerKind) -> HandlerInfo {
    HandlerInfo {
        name: name.into(),
        kind,
        params: vec![],
        timeout_ms: None,
    }
}

impl Guest for Rogue {
    fn describe() -> Vec<WorkflowTypeInfo> {
        ["HugeStep", "HugeWait", "EndlessWait", "ZeroSleep"]
            .into_iter()
            .map(|name| WorkflowTypeInfo {
                name: name.into(),
                handlers: vec![
                    handler("start", HandlerKind::Start),
                    handler("later", HandlerKind::Step),
                ],
            })
            .collect()
    }

    fn handle(activation: Activation) -> Result<Directive, Error> {
        let huge = "s".repeat(10 << 20);
        Ok(match activation.workflow_type.as_str() {
            "HugeStep" => Directive::Step(huge),
            "EndlessWait" => Directive::Wait(WaitSpec {
                timeout_ms: Some(u64::MAX),
                on_timeout: Some("later".into()),
            }),
            "ZeroSleep" => Directive::Sleep(SleepSpec {
                duration_ms: 0,
                step: "later".into(),
            }),
            _ => Directive::Wait(WaitSpec {
                timeout_ms: Some(1_000),
                on_timeout: Some(huge),
            }),
        })
    }
}

export!(Rogue);
