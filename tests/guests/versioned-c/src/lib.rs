//! Test guest: version "c" of `Versioned`, which dropped the `resume` step
//! and the `poke` event: runs waiting on an older version cannot be upgraded
//! to it.

#[wasmflow::workflow(name = "Versioned")]
mod versioned {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, wait_ms: u64) -> Result<Directive> {
        ctx.store.put("started_on", "c")?;
        let _ = wait_ms;
        Ok(ctx.next.step(finish))
    }

    #[step]
    fn finish(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("c->c"))
    }
}

wasmflow::export!(versioned);
