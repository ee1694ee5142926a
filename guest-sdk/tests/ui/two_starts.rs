#[wasmflow::workflow(name = "Twice")]
mod twice {
    use wasmflow::prelude::*;

    #[start]
    fn one(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(1))
    }

    #[start]
    fn two(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(2))
    }
}

fn main() {}
