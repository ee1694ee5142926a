#[wasmflow::workflow(name = "Greeter")]
mod greeter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.step(greet))
    }

    #[step]
    fn greet(ctx: &mut Context, outcome: ChildOutcome, extra: u32) -> Result<Directive> {
        Ok(ctx.next.complete((outcome.workflow_id, extra)))
    }
}

fn main() {}
