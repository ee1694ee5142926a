//! Fan-out: `FanOut` starts `n` children in one activation; each `Square`
//! child squares its number and reports it to the parent with
//! `send_to_parent`; the parent adds the reports up and completes with the
//! sum once all `n` have reported.
//!
//! ```text
//! wasmflow run --plugins <dir> FanOut --input '{"n":1000}'
//! 332833500
//! ```

#[wasmflow::workflow(name = "FanOut")]
mod fan_out {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        ctx.store.put("n", n)?;
        ctx.store.put("reported", 0u64)?;
        ctx.store.put("sum", 0u64)?;
        if n == 0 {
            return Ok(ctx.next.complete(0u64));
        }
        let me = ctx.run.workflow_id.clone();
        for i in 0..n {
            ctx.start("Square", format!("{me}-square-{i}"), &json!({ "x": i }))?;
        }
        Ok(ctx.next.wait())
    }

    #[event]
    fn reported(ctx: &mut Context, value: u64) -> Result<Directive> {
        let n: u64 = ctx.store.get("n")?;
        let reported: u64 = ctx.store.get::<u64>("reported")? + 1;
        let sum: u64 = ctx.store.get::<u64>("sum")? + value;
        ctx.store.put("reported", reported)?;
        ctx.store.put("sum", sum)?;
        if reported == n {
            Ok(ctx.next.complete(sum))
        } else {
            Ok(ctx.next.wait())
        }
    }
}

#[wasmflow::workflow(name = "Square")]
mod square {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, x: u64) -> Result<Directive> {
        let value = x * x;
        ctx.send_to_parent("reported", &json!({ "value": value }))?;
        Ok(ctx.next.complete(value))
    }
}

wasmflow::export!(fan_out, square);
