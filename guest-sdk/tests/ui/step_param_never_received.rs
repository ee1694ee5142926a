// A step only ever receives a child's outcome: a `String` parameter could
// never be filled.
#[wasmflow::workflow(name = "Greeter")]
mod greeter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.step(greet))
    }

    #[step]
    fn greet(ctx: &mut Context, name: String) -> Result<Directive> {
        Ok(ctx.next.complete(name))
    }
}

fn main() {}
