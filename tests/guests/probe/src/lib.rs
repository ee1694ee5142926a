//! Test guest: workflow types that probe the host's behaviour (store,
//! errors, panics, limits, timers). Used by the integration tests only.

use std::hint::black_box;

#[wasmflow::workflow(name = "StoreProbe")]
mod store_probe {
    use serde_json::{Value, json};
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, text: String, number: i64, object: Value) -> Result<Directive> {
        ctx.store.put("text", &text)?;
        ctx.store.put("number", number)?;
        ctx.store.put("object", object)?;
        ctx.store.put("doomed", true)?;
        // Reads see this activation's own writes.
        let again: String = ctx.store.get("text")?;
        if again != text {
            return Err(Error::msg("read-your-writes failed"));
        }
        Ok(ctx.next.step(second))
    }

    #[step]
    fn second(ctx: &mut Context) -> Result<Directive> {
        let number: i64 = ctx.store.get("number")?;
        ctx.store.put("number", number + 1)?;
        ctx.store.delete("doomed");
        Ok(ctx.next.step(third))
    }

    #[step]
    fn third(ctx: &mut Context) -> Result<Directive> {
        let doomed: Option<bool> = ctx.store.try_get("doomed")?;
        Ok(ctx.next.complete(json!({
            "text": ctx.store.get::<String>("text")?,
            "number": ctx.store.get::<i64>("number")?,
            "object": ctx.store.get::<Value>("object")?,
            "doomed": doomed,
        })))
    }
}

#[wasmflow::workflow(name = "KeyProbe")]
mod key_probe {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let missing = match ctx.store.get::<String>("missing") {
            Ok(_) => return Err(Error::msg("a missing key was found")),
            Err(e) => e,
        };
        ctx.store.put("n", "not a number")?;
        let mismatch = match ctx.store.get::<u64>("n") {
            Ok(_) => return Err(Error::msg("a string deserialized as a number")),
            Err(e) => e,
        };
        Ok(ctx.next.complete(serde_json::json!({
            "missing": format!("{:?}", missing.kind()),
            "missing_message": missing.message(),
            "mismatch": format!("{:?}", mismatch.kind()),
        })))
    }
}

#[wasmflow::workflow(name = "Panicker")]
mod panicker {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, message: String) -> Result<Directive> {
        ctx.store.put("message", message)?;
        Ok(ctx.next.step(explode))
    }

    #[step]
    fn explode(ctx: &mut Context) -> Result<Directive> {
        let message: String = ctx.store.get("message")?;
        panic!("boom: {message}");
    }
}

#[wasmflow::workflow(name = "Spinner")]
mod spinner {
    use wasmflow::prelude::*;

    /// Loops for ever; its own timeout ends it whatever the host's default.
    #[start(timeout = "1s")]
    fn start(_ctx: &mut Context) -> Result<Directive> {
        let mut x: u64 = 1;
        loop {
            x = super::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

#[wasmflow::workflow(name = "Hog")]
mod hog {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(super::black_box(vec![1u8; 1 << 20]));
            if chunks.len() > 100_000 {
                return Ok(ctx.next.complete(chunks.len()));
            }
        }
    }
}

#[wasmflow::workflow(name = "Recurser")]
mod recurser {
    use wasmflow::prelude::*;

    fn depth(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            1 + depth(super::black_box(n - 1)) + super::black_box(0)
        }
    }

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(depth(super::black_box(u64::MAX))))
    }
}

#[wasmflow::workflow(name = "Sleeper")]
mod sleeper {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, ms: u64) -> Result<Directive> {
        ctx.store.put("slept", ms)?;
        Ok(ctx.next.wait_timeout(Duration::from_millis(ms), woke))
    }

    #[step]
    fn woke(ctx: &mut Context) -> Result<Directive> {
        let ms: u64 = ctx.store.get("slept")?;
        Ok(ctx.next.complete(format!("woke after {ms} ms")))
    }
}

#[wasmflow::workflow(name = "Orphan")]
mod orphan {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        match ctx.send_to_parent("hello", &serde_json::json!({})) {
            Ok(()) => Err(Error::msg("a root run sent to its parent")),
            Err(e) => Ok(ctx.next.complete(format!("{:?}", e.kind()))),
        }
    }
}

#[wasmflow::workflow(name = "Logger")]
mod logger {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, note: Option<String>) -> Result<Directive> {
        ctx.log.info(format!("note: {note:?}"));
        println!("to stdout");
        Ok(ctx.next.complete(note))
    }
}

/// Typed parameters, checked by the host at the door against the schemas
/// `describe` carries: an approval with a typed start, event and query.
#[wasmflow::workflow(name = "Approval")]
mod approval {
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use wasmflow::prelude::*;
    use wasmflow::schemars::JsonSchema;

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    #[schemars(crate = "wasmflow::schemars")]
    pub struct Order {
        pub id: String,
        pub amount: f64,
    }

    #[start]
    fn start(
        ctx: &mut Context,
        approver: String,
        level: u8,
        order: Order,
        note: Option<String>,
    ) -> Result<Directive> {
        ctx.store.put("approver", &approver)?;
        ctx.store.put("level", level)?;
        ctx.store.put("order", json!(order))?;
        ctx.store.put("note", note)?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn approve(ctx: &mut Context, by: String, level: u32) -> Result<Directive> {
        Ok(ctx.next.complete(json!({
            "approver": ctx.store.get::<String>("approver")?,
            "by": by,
            "level": level,
            "order": ctx.store.get::<serde_json::Value>("order")?,
        })))
    }

    #[query]
    fn peek(ctx: &mut Context, field: String) -> Result<serde_json::Value> {
        ctx.store.get(&field)
    }
}

/// A child that sends its parent an `approve` of the wrong type, catches the
/// error, then sends a right one and completes with what it caught.
#[wasmflow::workflow(name = "Nagger")]
mod nagger {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let caught = match ctx.send_to_parent("approve", &json!({"by": 42, "level": 1})) {
            Ok(()) => json!(null),
            Err(e) => json!({"kind": e.kind().to_string(), "message": e.message()}),
        };
        ctx.send_to_parent("approve", &json!({"by": "nagger", "level": 2}))?;
        Ok(ctx.next.complete(caught))
    }
}

/// Starts a `Nagger` child and waits for its `approve`.
#[wasmflow::workflow(name = "NaggedApproval")]
mod nagged_approval {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        ctx.start("Nagger", "nagger", &json!({}))?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn approve(ctx: &mut Context, by: String, level: u32) -> Result<Directive> {
        Ok(ctx.next.complete(json!({"by": by, "level": level})))
    }
}

wasmflow::export!(
    approval,
    nagger,
    nagged_approval,
    store_probe,
    key_probe,
    panicker,
    spinner,
    hog,
    recurser,
    sleeper,
    orphan,
    logger
);
