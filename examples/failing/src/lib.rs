//! `Checkout`: a workflow whose step fails with a message. The start handler
//! records the cart; `charge` rejects an empty cart (or one over the limit) by
//! returning an error, which fails the run with that message.
//!
//! ```text
//! wasmflow run --plugins <dir> Checkout --input '{"items":[]}'
//! error: Application: cannot charge an empty cart
//! ```

#[wasmflow::workflow(name = "Checkout")]
mod checkout {
    use wasmflow::prelude::*;

    const LIMIT: u64 = 10_000;

    #[start]
    fn start(ctx: &mut Context, items: Vec<u64>) -> Result<Directive> {
        ctx.store.put("items", items)?;
        Ok(ctx.next.step(charge))
    }

    #[step]
    fn charge(ctx: &mut Context) -> Result<Directive> {
        let items: Vec<u64> = ctx.store.get("items")?;
        if items.is_empty() {
            return Err(Error::msg("cannot charge an empty cart"));
        }
        let total: u64 = items.iter().sum();
        if total > LIMIT {
            return Ok(ctx.next.fail(
                Error::msg(format!("total {total} is over the limit of {LIMIT}"))
                    .with_details(serde_json::json!({"total": total, "limit": LIMIT})),
            ));
        }
        Ok(ctx.next.complete(total))
    }
}

wasmflow::export!(checkout);
