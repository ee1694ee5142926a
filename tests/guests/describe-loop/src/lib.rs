//! Test guest: a component whose `describe` never returns. The host must reject
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
        let mut x = 1u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
    }

    fn handle(_activation: Activation) -> Result<Directive, Error> {
        Ok(Directive::Step("never".into()))
    }
}

export!(Bad);
