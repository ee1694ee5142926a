// Start, event and query parameters need a JSON Schema: the host checks
// payloads against it at the door.
#[wasmflow::workflow(name = "Orders")]
mod orders {
    use wasmflow::prelude::*;

    #[derive(serde::Deserialize)]
    pub struct Order {
        pub id: String,
    }

    #[start]
    fn start(ctx: &mut Context, order: Order) -> Result<Directive> {
        Ok(ctx.next.complete(order.id))
    }
}

fn main() {}
