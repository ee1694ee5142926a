#[wasmflow::workflow(name = "Headless")]
mod headless {
    use wasmflow::prelude::*;

    #[step]
    fn only(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(1))
    }
}

fn main() {}
