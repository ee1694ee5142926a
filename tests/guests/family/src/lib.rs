//! Test guest: events, the inbox and child workflows. Used by
//! `tests/events.rs` and `tests/children.rs` only.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Busy for about `ms` milliseconds of wall-clock time.
fn spin(ms: u64) {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut x = 1u64;
    while Instant::now() < until {
        for _ in 0..1000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// A parent that starts the children its input lists and records what
/// happens: handles (or start errors), completion notices, reports.
#[wasmflow::workflow(name = "Spawner")]
mod spawner {
    use serde::Deserialize;
    use serde_json::{Value, json};
    use wasmflow::prelude::*;

    #[derive(Deserialize, wasmflow::schemars::JsonSchema)]
    #[schemars(crate = "wasmflow::schemars")]
    pub struct Child {
        #[serde(rename = "type")]
        ty: String,
        id: String,
        #[serde(default)]
        input: Value,
        timeout_ms: Option<u64>,
        #[serde(default)]
        notify: bool,
        #[serde(default)]
        close: String,
    }

    fn start_children(ctx: &mut Context, children: Vec<Child>) -> Result<()> {
        let mut handles: Vec<Value> = ctx.store.try_get("handles")?.unwrap_or_default();
        for child in children {
            let mut options = StartOptions::new();
            if let Some(ms) = child.timeout_ms {
                options = options.timeout(Duration::from_millis(ms));
            }
            if child.notify {
                options = options.on_completed(child_done);
            }
            options = options.close_policy(match child.close.as_str() {
                "cancel" => ClosePolicy::Cancel,
                "terminate" => ClosePolicy::Terminate,
                _ => ClosePolicy::Abandon,
            });
            let input = if child.input.is_null() {
                json!({})
            } else {
                child.input
            };
            handles.push(match ctx.start_with(&child.ty, &child.id, &input, options) {
                Ok(h) => json!({"id": h.workflow_id, "run_id": h.run_id}),
                Err(e) => json!({"id": child.id, "error": e.kind().to_string(), "message": e.message()}),
            });
        }
        ctx.store.put("handles", handles)?;
        Ok(())
    }

    fn summary(ctx: &Context) -> Result<Value> {
        Ok(json!({
            "handles": ctx.store.try_get::<Value>("handles")?,
            "outcomes": ctx.store.try_get::<Value>("outcomes")?,
            "reports": ctx.store.try_get::<Value>("reports")?,
        }))
    }

    /// `then`: `wait` (for events and notices), `complete`, or `fail` (after
    /// starting the children, so none of them may exist). `spin_ms` keeps the
    /// start activation busy after the children were registered.
    #[start]
    fn start(
        ctx: &mut Context,
        children: Vec<Child>,
        then: String,
        expect: Option<usize>,
        spin_ms: Option<u64>,
    ) -> Result<Directive> {
        ctx.store.put("expect", expect.unwrap_or(usize::MAX))?;
        start_children(ctx, children)?;
        super::spin(spin_ms.unwrap_or(0));
        match then.as_str() {
            "complete" => Ok(ctx.next.complete(summary(ctx)?)),
            "fail" => Err(Error::msg("failing after starting children")),
            _ => Ok(ctx.next.wait()),
        }
    }

    /// Start more children from an event.
    #[event]
    fn spawn(ctx: &mut Context, children: Vec<Child>) -> Result<Directive> {
        start_children(ctx, children)?;
        Ok(ctx.next.wait())
    }

    /// A child's report, sent with `send_to_parent`.
    #[event]
    fn report(ctx: &mut Context, value: Value, from: Option<String>) -> Result<Directive> {
        let mut reports: Vec<Value> = ctx.store.try_get("reports")?.unwrap_or_default();
        reports.push(json!({"value": value, "from": from}));
        let done = reports.len() >= ctx.store.get::<usize>("expect")?;
        ctx.store.put("reports", reports)?;
        if done {
            Ok(ctx.next.complete(summary(ctx)?))
        } else {
            Ok(ctx.next.wait())
        }
    }

    /// The completion notice of a child started with `notify`.
    #[step]
    fn child_done(ctx: &mut Context, outcome: ChildOutcome) -> Result<Directive> {
        let mut outcomes: Vec<ChildOutcome> = ctx.store.try_get("outcomes")?.unwrap_or_default();
        outcomes.push(outcome);
        let done = outcomes.len() >= ctx.store.get::<usize>("expect")?;
        ctx.store.put("outcomes", outcomes)?;
        if done {
            Ok(ctx.next.complete(summary(ctx)?))
        } else {
            Ok(ctx.next.wait())
        }
    }

    #[event]
    fn done(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(summary(ctx)?))
    }
}

/// Completes with its input.
#[wasmflow::workflow(name = "Echo")]
mod echo {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, x: serde_json::Value) -> Result<Directive> {
        Ok(ctx.next.complete(x))
    }
}

/// Fails.
#[wasmflow::workflow(name = "Boom")]
mod boom {
    use wasmflow::prelude::*;

    #[start]
    fn start(_ctx: &mut Context) -> Result<Directive> {
        Err(Error::msg("boom"))
    }
}

/// Waits for ever (or until `done`); `spin_ms` keeps its start busy first.
#[wasmflow::workflow(name = "Waiter")]
mod waiter {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, spin_ms: Option<u64>) -> Result<Directive> {
        super::spin(spin_ms.unwrap_or(0));
        Ok(ctx.next.wait())
    }

    #[event]
    fn done(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("done"))
    }
}

/// Reports `value` to its parent and completes.
#[wasmflow::workflow(name = "Reporter")]
mod reporter {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, value: serde_json::Value) -> Result<Directive> {
        let me = ctx.run.workflow_id.clone();
        ctx.send_to_parent("report", &json!({"value": value, "from": me}))?;
        Ok(ctx.next.complete(value))
    }
}

/// Sends events its parent cannot take, catches the errors, then completes
/// with their kinds.
#[wasmflow::workflow(name = "BadReporter")]
mod bad_reporter {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let kind = |r: Result<()>| r.err().map(|e| e.kind().to_string());
        let unknown = kind(ctx.send_to_parent("nope", &json!({})));
        let missing = kind(ctx.send_to_parent("report", &json!({"wrong": 1})));
        Ok(ctx
            .next
            .complete(json!({"unknown": unknown, "missing": missing})))
    }
}

/// Records every event it handles, in order.
#[wasmflow::workflow(name = "Inbox")]
mod inbox {
    use serde_json::{Value, json};
    use wasmflow::prelude::*;

    fn record(ctx: &mut Context, entry: Value) -> Result<()> {
        let mut seen: Vec<Value> = ctx.store.try_get("seen")?.unwrap_or_default();
        seen.push(entry);
        ctx.store.put("seen", seen)
    }

    /// `busy_ms`: spend that long in a first step before waiting, so events
    /// sent meanwhile queue up.
    #[start]
    fn start(ctx: &mut Context, busy_ms: Option<u64>) -> Result<Directive> {
        ctx.store.put("busy_ms", busy_ms.unwrap_or(0))?;
        Ok(ctx.next.step(busy))
    }

    #[step]
    fn busy(ctx: &mut Context) -> Result<Directive> {
        super::spin(ctx.store.get("busy_ms")?);
        record(ctx, json!("busy done"))?;
        Ok(ctx.next.wait())
    }

    /// A single parameter: takes a scalar payload whole.
    #[event]
    fn note(ctx: &mut Context, text: String) -> Result<Directive> {
        record(ctx, json!({"note": text}))?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn pair(ctx: &mut Context, a: i64, b: i64) -> Result<Directive> {
        record(ctx, json!({"sum": a + b}))?;
        Ok(ctx.next.wait())
    }

    #[event(name = "finish")]
    fn on_finish(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete(ctx.store.try_get::<Value>("seen")?))
    }

    /// What it handled so far, the last `last` entries (all without).
    #[query]
    fn seen(ctx: &mut Context, last: Option<usize>) -> Result<Value> {
        let seen: Vec<Value> = ctx.store.try_get("seen")?.unwrap_or_default();
        let skip = last.map_or(0, |n| seen.len().saturating_sub(n));
        Ok(Value::from(seen[skip..].to_vec()))
    }

    /// Tries to change the run from a query.
    #[query]
    fn sneaky(ctx: &mut Context) -> Result<Value> {
        ctx.store.put("seen", json!(["forged"]))?;
        Ok(json!("wrote it"))
    }
}

/// Collects `expected` items, then completes with them in arrival order.
#[wasmflow::workflow(name = "Collector")]
mod collector {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, expected: usize) -> Result<Directive> {
        ctx.store.put("expected", expected)?;
        ctx.store.put("items", Vec::<String>::new())?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn item(ctx: &mut Context, id: String) -> Result<Directive> {
        let mut items: Vec<String> = ctx.store.get("items")?;
        items.push(id);
        let done = items.len() >= ctx.store.get::<usize>("expected")?;
        ctx.store.put("items", &items)?;
        if done {
            Ok(ctx.next.complete(items))
        } else {
            Ok(ctx.next.wait())
        }
    }
}

/// Waits `ms` for a `ping`; without one, its `late` step runs.
#[wasmflow::workflow(name = "Timed")]
mod timed {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, ms: u64) -> Result<Directive> {
        Ok(ctx.next.wait_timeout(Duration::from_millis(ms), late))
    }

    #[event]
    fn ping(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("pinged"))
    }

    #[step]
    fn late(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("timed out"))
    }
}

/// Waits `ms` for a `ping`; without one, the run fails with `WaitTimeout`.
#[wasmflow::workflow(name = "Impatient")]
mod impatient {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, ms: u64) -> Result<Directive> {
        Ok(ctx.next.wait_or_fail(Duration::from_millis(ms)))
    }

    #[event]
    fn ping(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("pinged"))
    }
}

/// Sleeps `ms`, then waits for two `note`s; its result says how many notes
/// it had handled when it woke (none: they wait out the sleep in the inbox).
#[wasmflow::workflow(name = "Napper")]
mod napper {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, ms: u64) -> Result<Directive> {
        ctx.store.put("notes", Vec::<String>::new())?;
        Ok(ctx.next.sleep(Duration::from_millis(ms), woke))
    }

    #[step]
    fn woke(ctx: &mut Context) -> Result<Directive> {
        let notes: Vec<String> = ctx.store.get("notes")?;
        ctx.store.put("seen_at_wake", notes.len())?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn note(ctx: &mut Context, text: String) -> Result<Directive> {
        let mut notes: Vec<String> = ctx.store.get("notes")?;
        notes.push(text);
        ctx.store.put("notes", &notes)?;
        match ctx.store.try_get::<usize>("seen_at_wake")? {
            Some(seen) if notes.len() >= 2 => Ok(ctx
                .next
                .complete(json!({"seen_at_wake": seen, "notes": notes}))),
            _ => Ok(ctx.next.wait()),
        }
    }
}

/// A long step that logs as it goes: `work` logs, then is busy for `ms`.
#[wasmflow::workflow(name = "Chatty")]
mod chatty {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, ms: u64) -> Result<Directive> {
        ctx.store.put("ms", ms)?;
        Ok(ctx.next.step(work))
    }

    #[step]
    fn work(ctx: &mut Context) -> Result<Directive> {
        let ms: u64 = ctx.store.get("ms")?;
        ctx.log.info(format!("working for {ms} ms"));
        super::spin(ms);
        ctx.log.info("done working");
        Ok(ctx.next.complete("worked"))
    }
}

wasmflow::export!(
    spawner,
    echo,
    boom,
    waiter,
    reporter,
    bad_reporter,
    inbox,
    collector,
    timed,
    impatient,
    napper,
    chatty
);
