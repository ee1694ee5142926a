//! `Greeter`: the smallest workflow. Its start handler stores the name it is
//! given and steps to `greet`, which reads it back and completes.
//!
//! ```text
//! wasmflow run --plugins <dir> Greeter --input '{"name":"Ada"}'
//! "Hello, Ada"
//! ```

#[wasmflow::workflow(name = "Greeter")]
mod greeter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, name: String) -> Result<Directive> {
        ctx.store.put("name", name)?;
        Ok(ctx.next.step(greet))
    }

    #[step]
    fn greet(ctx: &mut Context) -> Result<Directive> {
        let name: String = ctx.store.get("name")?;
        Ok(ctx.next.complete(format!("Hello, {name}")))
    }
}

wasmflow::export!(greeter);
