//! The seed page's names, through the macros and the runtime as a component
//! uses them (on the host target: only handlers that make no host call run).

use wasmflow::__rt::{self, HandlerKind, WitDirective};

#[wasmflow::workflow(name = "Payment")]
mod payment {
    use wasmflow::prelude::*;

    #[start]
    fn payment_start(ctx: &mut Context, amount: f64) -> Result<Directive> {
        if amount <= 0.0 {
            return Ok(ctx.next.fail(format!("cannot charge {amount}")));
        }
        Ok(ctx.next.fail("card declined"))
    }
}

#[wasmflow::workflow(name = "Order")]
mod order {
    use wasmflow::prelude::*;

    #[start]
    fn order_start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.wait_for_event())
    }

    /// The typed start compiles only because `payment` is a workflow module.
    #[allow(dead_code)]
    fn start_payment(ctx: &mut Context) -> Result<WorkflowHandle> {
        ctx.start_with(
            super::payment::TYPE,
            "payment-abc",
            None,
            StartOptions::new().workflow_timeout(Duration::from_secs(300)),
        )
    }
}

fn run(def: &__rt::WorkflowDef, kind: HandlerKind, name: &str, input: &str) -> WitDirective {
    let handler = def
        .handlers
        .iter()
        .find(|h| h.kind == kind && h.name == name)
        .expect("the handler is declared");
    match __rt::call(def, handler, input) {
        Ok(directive) => directive,
        Err(e) => panic!("{name} failed: {e:?}"),
    }
}

#[test]
fn each_module_names_its_type() {
    assert_eq!(payment::TYPE.name(), "Payment");
    assert_eq!(order::TYPE.name(), "Order");
    assert_eq!(payment::TYPE.name(), payment::WORKFLOW.name);
    let as_str: &str = payment::TYPE.as_ref();
    assert_eq!(as_str, "Payment");
}

#[test]
fn wait_for_event_parks_without_a_timer() {
    match run(&order::WORKFLOW, HandlerKind::Start, "order_start", "{}") {
        WitDirective::Wait(spec) => {
            assert_eq!((spec.timeout_ms, spec.on_timeout), (None, None));
        }
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn fail_with_a_message_is_an_application_error() {
    for (input, message) in [
        (r#"{"amount": 42.5}"#, "card declined"),
        (r#"{"amount": 0}"#, "cannot charge 0"),
    ] {
        match run(
            &payment::WORKFLOW,
            HandlerKind::Start,
            "payment_start",
            input,
        ) {
            WitDirective::Fail(e) => {
                assert_eq!(e.message, message);
                assert_eq!(e.details, None);
                assert!(
                    matches!(
                        e.kind,
                        wasmflow::bindings::wasmflow::workflow::types::ErrorKind::Application
                    ),
                    "{:?}",
                    e.kind
                );
            }
            other => panic!("expected a fail, got {other:?}"),
        }
    }
}
