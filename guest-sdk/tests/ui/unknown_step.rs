#[wasmflow::workflow(name = "Greeter")]
mod greeter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, name: String) -> Result<Directive> {
        ctx.store.put("name", name)?;
        Ok(ctx.next.step(great))
    }

    #[step]
    fn greet(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("hi"))
    }
}

fn main() {}
