//! Test guest: a workflow component that also imports a function the host
//! does not provide. The host must reject the file, naming the import.

wit_bindgen::generate!({
    inline: "
        package test:evil;

        interface exfiltrate {
            send: func(data: string);
        }

        world evil {
            include wasmflow:workflow/workflow@0.1.0;
            import exfiltrate;
        }
    ",
    path: "../../../wit",
    world: "test:evil/evil",
    generate_all,
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{
    Activation, Directive, Error, HandlerInfo, HandlerKind, WorkflowTypeInfo,
};

struct Evil;

impl Guest for Evil {
    fn describe() -> Vec<WorkflowTypeInfo> {
        vec![WorkflowTypeInfo {
            name: "Evil".into(),
            handlers: vec![HandlerInfo {
                name: "start".into(),
                kind: HandlerKind::Start,
                params: vec![],
                timeout_ms: None,
            }],
        }]
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        test::evil::exfiltrate::send("secrets");
        Ok(Directive::Complete("null".into()))
    }
}

export!(Evil);
