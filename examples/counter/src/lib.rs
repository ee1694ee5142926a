//! `Counter`: a step that loops to itself `n` times, storing the count, then
//! completes with it. Every iteration is one activation, committed durably.
//!
//! ```text
//! wasmflow run --plugins <dir> Counter --input '{"n":1000}'
//! 1000
//! ```

#[wasmflow::workflow(name = "Counter")]
mod counter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        ctx.store.put("n", n)?;
        ctx.store.put("count", 0u64)?;
        Ok(ctx.next.step(tick))
    }

    #[step]
    fn tick(ctx: &mut Context) -> Result<Directive> {
        let n: u64 = ctx.store.get("n")?;
        let count: u64 = ctx.store.get("count")?;
        if count >= n {
            return Ok(ctx.next.complete(count));
        }
        ctx.store.put("count", count + 1)?;
        Ok(ctx.next.step(tick))
    }
}

wasmflow::export!(counter);
