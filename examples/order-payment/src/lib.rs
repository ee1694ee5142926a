//! The seed page's complete example: a parent `Order` starts a child
//! `Payment` and waits for its result. Both live in this one component.
//!
//! ```text
//! wasmflow run --plugins <dir> Order --input '{"order_id":"abc","amount":42.5}' --event start_payment
//! ```
//!
//! `Order` stores the order and waits. Its `start_payment` event handler
//! starts `Payment` with workflow id `payment-<order_id>` and waits again.
//! `Payment` charges the card in `payment_process` — a task, `charge_card`,
//! recorded so that a crash or a retry never charges twice — then in
//! `payment_done` sends `payment_completed` with the transaction id to its
//! parent and completes with it. `Order`'s `payment_completed` handler
//! receives `txn_id` by parameter name and completes the order with it.
//!
//! With `payments_url` in the Order's input, `charge_card` POSTs to that
//! payments service (`examples/payments-service`) with the task's
//! idempotency key and the operator's `payments_token` secret, through
//! `wasi:http` (the `wstd` client); the operator must grant the plugin that
//! URL (see the README's "Grants and secrets"). Without it, the task makes
//! the transaction id itself.

// --- Child workflow ---
#[wasmflow::workflow(name = "Payment")]
mod payment {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn payment_start(
        ctx: &mut Context,
        amount: f64,
        payments_url: Option<String>,
    ) -> Result<Directive> {
        ctx.store.put("amount", amount)?;
        ctx.store.put("payments_url", payments_url)?;
        Ok(ctx.next.step(payment_process))
    }

    #[step]
    fn payment_process(ctx: &mut Context) -> Result<Directive> {
        let amount: f64 = ctx.store.get("amount")?;
        let url: Option<String> = ctx.store.get("payments_url")?;
        let policy = RetryPolicy::attempts(5)
            .initial_delay(Duration::from_millis(200))
            .max_delay(Duration::from_secs(5))
            .never_retry(ErrorKind::InvalidPayload);
        let txn_id: String = ctx.task("charge_card", policy, |attempt| {
            charge_card(url.as_deref(), amount, attempt)
        })?;
        ctx.store.put("txn_id", txn_id)?;
        Ok(ctx.next.step(payment_done))
    }

    #[step]
    fn payment_done(ctx: &mut Context) -> Result<Directive> {
        let txn_id: String = ctx.store.get("txn_id")?;
        ctx.send_to_parent("payment_completed", &json!({ "txn_id": txn_id }))?;
        Ok(ctx.next.complete(txn_id))
    }

    /// Charge the card: POST `{url}/charges` with the attempt's idempotency
    /// key (the service applies each key once) and the operator's token,
    /// which the host substitutes for the placeholder. Without a service,
    /// the transaction id comes from the key.
    fn charge_card(url: Option<&str>, amount: f64, attempt: &Attempt) -> Result<String> {
        if !(amount > 0.0 && amount.is_finite()) {
            return Err(Error::new(
                ErrorKind::InvalidPayload,
                format!("cannot charge an amount of {amount}"),
            ));
        }
        let Some(url) = url else {
            return Ok(format!("txn-{}", attempt.idempotency_key));
        };
        wstd::runtime::block_on(async {
            use wstd::http::{Body, Client, Request};
            let request = Request::post(format!("{url}/charges"))
                .header("idempotency-key", attempt.idempotency_key.as_str())
                .header("authorization", "Bearer {{secret:payments_token}}")
                .header("content-type", "application/json")
                .body(Body::from_json(&json!({ "amount": amount }))?)
                .map_err(|e| Error::msg(format!("cannot build the charge request: {e}")))?;
            let mut response = Client::new()
                .send(request)
                .await
                .map_err(|e| Error::msg(format!("the payments service is unreachable: {e}")))?;
            let status = response.status();
            let body: serde_json::Value =
                response.body_mut().json().await.map_err(|e| {
                    Error::msg(format!("the payments service answered {status}: {e}"))
                })?;
            if !status.is_success() {
                return Err(Error::msg(format!(
                    "the payments service answered {status}: {body}"
                )));
            }
            body["txn_id"].as_str().map(str::to_owned).ok_or_else(|| {
                Error::msg(format!("the payments service answered no txn_id: {body}"))
            })
        })
    }
}

// --- Parent workflow ---
#[wasmflow::workflow(name = "Order")]
mod order {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn order_start(
        ctx: &mut Context,
        order_id: String,
        amount: f64,
        payments_url: Option<String>,
    ) -> Result<Directive> {
        ctx.store.put("order_id", order_id)?;
        ctx.store.put("amount", amount)?;
        ctx.store.put("payments_url", payments_url)?;
        Ok(ctx.next.wait_for_event())
    }

    #[event]
    fn start_payment(ctx: &mut Context) -> Result<Directive> {
        let amount: f64 = ctx.store.get("amount")?;
        let order_id: String = ctx.store.get("order_id")?;
        let payments_url: Option<String> = ctx.store.try_get("payments_url")?.flatten();
        // `Payment` is in this component: its module's `TYPE` names it, so
        // a typo does not compile (`ctx.start("Payment", ...)` also works).
        ctx.start(
            super::payment::TYPE,
            format!("payment-{order_id}"),
            &json!({ "amount": amount, "payments_url": payments_url }),
        )?;
        Ok(ctx.next.wait_for_event())
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
