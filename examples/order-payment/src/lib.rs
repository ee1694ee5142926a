//! The seed page's complete example: a parent `Order` starts a child
//! `Payment` and waits for its result. Both live in this one component.
//!
//! ```text
//! wasmflow run --plugins <dir> Order --input '{"order_id":"abc","amount":42.5}' --event start_payment
//! ```
//!
//! `Order` stores the order and waits. Its `start_payment` event handler
//! starts `Payment` with workflow id `payment-<order_id>` and waits again.
//! `Payment` charges the card in `payment_process`, then in `payment_done`
//! sends `payment_completed` with the transaction id to its parent and
//! completes with it. `Order`'s `payment_completed` handler receives `txn_id`
//! by parameter name and completes the order with it.

// --- Child workflow ---
#[wasmflow::workflow(name = "Payment")]
mod payment {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn payment_start(ctx: &mut Context, amount: f64) -> Result<Directive> {
        ctx.store.put("amount", amount)?;
        Ok(ctx.next.step(payment_process))
    }

    #[step]
    fn payment_process(ctx: &mut Context) -> Result<Directive> {
        let amount: f64 = ctx.store.get("amount")?;
        let txn_id = charge_card(ctx, amount)?;
        ctx.store.put("txn_id", txn_id)?;
        Ok(ctx.next.step(payment_done))
    }

    #[step]
    fn payment_done(ctx: &mut Context) -> Result<Directive> {
        let txn_id: String = ctx.store.get("txn_id")?;
        ctx.send_to_parent("payment_completed", &json!({ "txn_id": txn_id }))?;
        Ok(ctx.next.complete(txn_id))
    }

    /// Stands in for a card processor: refuses nonsense amounts and returns a
    /// transaction id.
    fn charge_card(ctx: &Context, amount: f64) -> Result<String> {
        if !(amount > 0.0 && amount.is_finite()) {
            return Err(Error::msg(format!("cannot charge an amount of {amount}")));
        }
        Ok(format!("txn-{}", ctx.uuid4()))
    }
}

// --- Parent workflow ---
#[wasmflow::workflow(name = "Order")]
mod order {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn order_start(ctx: &mut Context, order_id: String, amount: f64) -> Result<Directive> {
        ctx.store.put("order_id", order_id)?;
        ctx.store.put("amount", amount)?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn start_payment(ctx: &mut Context) -> Result<Directive> {
        let amount: f64 = ctx.store.get("amount")?;
        let order_id: String = ctx.store.get("order_id")?;
        ctx.start(
            "Payment",
            format!("payment-{order_id}"),
            &json!({ "amount": amount }),
        )?;
        Ok(ctx.next.wait())
    }

    #[event(name = "payment_completed")]
    fn on_payment_done(ctx: &mut Context, txn_id: String) -> Result<Directive> {
        ctx.store.put("txn_id", &txn_id)?;
        Ok(ctx.next.complete(txn_id))
    }

    /// Where the order stands (`wasmflow query <id> summary`).
    #[query]
    fn summary(ctx: &mut Context) -> Result<serde_json::Value> {
        Ok(json!({
            "order_id": ctx.store.get::<String>("order_id")?,
            "amount": ctx.store.get::<f64>("amount")?,
            "txn_id": ctx.store.try_get::<String>("txn_id")?,
        }))
    }
}

// Both workflows are registered in the same component.
wasmflow::export!(payment, order);
