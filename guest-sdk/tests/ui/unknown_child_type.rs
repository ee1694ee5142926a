#[wasmflow::workflow(name = "Payment")]
mod payment {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, amount: f64) -> Result<Directive> {
        Ok(ctx.next.complete(amount))
    }
}

#[wasmflow::workflow(name = "Order")]
mod order {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        ctx.start(super::paymnet::TYPE, "payment-abc", None)?;
        Ok(ctx.next.wait_for_event())
    }
}

fn main() {}
