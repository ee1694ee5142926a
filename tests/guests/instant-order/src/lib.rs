//! Order/Payment as the performance issue measures it on every engine: the
//! parent starts the child from its start handler, the child steps twice
//! and replies with an event, the parent completes — six activations, one
//! request (a start that waits) per Order.

#[wasmflow::workflow(name = "InstantPayment")]
mod instant_payment {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, amount: f64) -> Result<Directive> {
        ctx.store.put("amount", amount)?;
        Ok(ctx.next.step(process))
    }

    #[step]
    fn process(ctx: &mut Context) -> Result<Directive> {
        let amount: f64 = ctx.store.get("amount")?;
        let key = ctx.run.workflow_id.clone();
        ctx.store.put("txn_id", format!("txn-{key}-{amount}"))?;
        Ok(ctx.next.step(done))
    }

    #[step]
    fn done(ctx: &mut Context) -> Result<Directive> {
        let txn_id: String = ctx.store.get("txn_id")?;
        ctx.send_to_parent("payment_completed", &json!({ "txn_id": txn_id }))?;
        Ok(ctx.next.complete(txn_id))
    }
}

#[wasmflow::workflow(name = "InstantOrder")]
mod instant_order {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, order_id: String, amount: f64) -> Result<Directive> {
        ctx.start(
            super::instant_payment::TYPE,
            format!("payment-{order_id}"),
            &json!({ "amount": amount }),
        )?;
        Ok(ctx.next.wait_for_event())
    }

    #[event]
    fn payment_completed(ctx: &mut Context, txn_id: String) -> Result<Directive> {
        Ok(ctx.next.complete(txn_id))
    }
}

wasmflow::export!(instant_payment, instant_order);
