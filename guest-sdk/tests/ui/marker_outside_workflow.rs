use wasmflow::prelude::*;

#[step]
fn loose(ctx: &mut Context) -> Result<Directive> {
    Ok(ctx.next.complete(1))
}

fn main() {}
