#[wasmflow::workflow(name = "Greeter")]
mod greeter {
    use wasmflow::prelude::*;

    fn helper(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("hi"))
    }

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.step(helper))
    }
}

fn main() {}
