// The `Versioned` workflow, shared by the `versioned-*` test guests; each
// defines `LABEL` (and, for the incompatible one, `COMPATIBLE = false`)
// before including this file. A run steps, waits a little, steps again and
// completes with the label of the version that finished it and the one that
// started it.

#[wasmflow::workflow(name = "Versioned")]
mod versioned {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, wait_ms: u64) -> Result<Directive> {
        ctx.store.put("started_on", super::LABEL)?;
        ctx.store.put("wait_ms", wait_ms)?;
        Ok(ctx.next.step(work))
    }

    #[step]
    fn work(ctx: &mut Context) -> Result<Directive> {
        let wait_ms: u64 = ctx.store.get("wait_ms")?;
        Ok(ctx.next.wait_timeout(Duration::from_millis(wait_ms), resume))
    }

    /// Ends the wait early.
    #[event]
    fn poke(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.step(finish))
    }

    #[step]
    fn resume(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.step(finish))
    }

    #[step]
    fn finish(ctx: &mut Context) -> Result<Directive> {
        let started_on: String = ctx.store.get("started_on")?;
        Ok(ctx.next.complete(format!("{started_on}->{}", super::LABEL)))
    }
}

wasmflow::export!(versioned);
