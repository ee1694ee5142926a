//! Test guest: a component whose `describe` traps. The host must reject
//! the file with that reason and load the rest of the directory.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use wasmflow::workflow::types::{Activation, Directive, Error, WorkflowTypeInfo};

struct Bad;

impl Guest for Bad {
    fn describe() -> Vec<WorkflowTypeInfo> {
        panic!("describe refuses to describe")
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        Ok(Directive::Step("never".into()))
    }
}

export!(Bad);
