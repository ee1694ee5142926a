//! Test guest: workflows written to do harm. Each must fail its own run with
//! the right typed error and nothing else. Used by `tests/hostile.rs`.

#[wasmflow::workflow(name = "BigValue")]
mod big_value {
    use wasmflow::prelude::*;

    /// Completes with a string of `mib` MiB.
    #[start]
    fn start(ctx: &mut Context, mib: usize) -> Result<Directive> {
        Ok(ctx.next.complete("x".repeat(mib << 20)))
    }
}

#[wasmflow::workflow(name = "KeyFlood")]
mod key_flood {
    use wasmflow::prelude::*;

    /// Writes `n` store keys, 4 KiB each.
    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        let value = "v".repeat(4 << 10);
        for i in 0..n {
            ctx.store.put(&format!("key-{i:08}"), &value)?;
        }
        Ok(ctx.next.complete(n))
    }
}

#[wasmflow::workflow(name = "ChildFlood")]
mod child_flood {
    use serde_json::json;
    use wasmflow::prelude::*;

    /// Starts `n` children in one activation.
    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        let me = ctx.run.workflow_id.clone();
        for i in 0..n {
            ctx.start("Quiet", format!("{me}-{i}"), &json!({}))?;
        }
        Ok(ctx.next.complete(n))
    }
}

#[wasmflow::workflow(name = "Quiet")]
mod quiet {
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.complete("quiet"))
    }
}

/// A parent for `EventFlood`: starts it and waits.
#[wasmflow::workflow(name = "FloodedParent")]
mod flooded_parent {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        let id = format!("{}-flood", ctx.run.workflow_id);
        let options = StartOptions::new().on_completed(flood_done);
        ctx.start_with("EventFlood", id, &json!({ "n": n }), options)?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn ping(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.wait())
    }

    #[step]
    fn flood_done(ctx: &mut Context, outcome: ChildOutcome) -> Result<Directive> {
        Ok(ctx.next.complete(outcome))
    }
}

#[wasmflow::workflow(name = "EventFlood")]
mod event_flood {
    use serde_json::json;
    use wasmflow::prelude::*;

    /// Sends `n` events to its parent in one activation.
    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        for _ in 0..n {
            ctx.send_to_parent("ping", &json!({}))?;
        }
        Ok(ctx.next.complete(n))
    }
}

#[wasmflow::workflow(name = "FsSnoop")]
mod fs_snoop {
    use wasmflow::prelude::*;

    /// Tries to read a host file; the panic carries the error.
    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let secret = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
        Ok(ctx.next.complete(secret))
    }
}

#[wasmflow::workflow(name = "NetSnoop")]
mod net_snoop {
    use std::io::Write;
    use wasmflow::prelude::*;

    /// Tries to open a TCP connection; the panic carries the error.
    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let mut stream =
            std::net::TcpStream::connect("127.0.0.1:80").expect("connecting to 127.0.0.1:80");
        stream
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .expect("writing");
        Ok(ctx.next.complete("connected"))
    }
}

#[wasmflow::workflow(name = "EnvSnoop")]
mod env_snoop {
    use wasmflow::prelude::*;

    /// Reports what it can see of the host's environment and arguments.
    #[start]
    fn start(ctx: &mut Context) -> Result<Directive> {
        let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let args: Vec<String> = std::env::args().collect();
        let cwd = std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string());
        Ok(ctx
            .next
            .complete(serde_json::json!({"vars": vars, "args": args, "cwd": cwd})))
    }
}

#[wasmflow::workflow(name = "Chatty")]
mod chatty {
    use wasmflow::prelude::*;

    /// Prints `mib` MiB to stdout and stderr, then completes.
    #[start]
    fn start(ctx: &mut Context, mib: usize) -> Result<Directive> {
        let line = "y".repeat(1023);
        for _ in 0..(mib << 10) {
            println!("{line}");
            eprintln!("{line}");
        }
        Ok(ctx.next.complete("said it all"))
    }
}

#[wasmflow::workflow(name = "Oversized")]
mod oversized {
    use serde_json::json;
    use wasmflow::prelude::*;

    /// Hands the host something `bytes` long (or, for `deletes`, `bytes`
    /// deletes) that it must refuse: a store key, a delete's key, an error
    /// message or details, an event name, a child's workflow id or type.
    #[start]
    fn start(ctx: &mut Context, what: String, bytes: usize) -> Result<Directive> {
        let big = "x".repeat(bytes);
        match what.as_str() {
            "key" => ctx.store.put(&big, 1)?,
            "delete_key" => ctx.store.delete(&big),
            "deletes" => {
                for i in 0..bytes {
                    ctx.store.delete(&format!("missing-{i}"));
                }
            }
            "message" => return Err(Error::msg(big)),
            "details" => return Err(Error::msg("details").with_details(json!(big))),
            "fail_message" => return Ok(ctx.next.fail(Error::msg(big))),
            "event_name" => ctx.send_to_parent(&big, &json!({}))?,
            "child_id" => {
                ctx.start("Quiet", big, &json!({}))?;
            }
            "child_type" => {
                ctx.start(&big, "child", &json!({}))?;
            }
            other => return Err(Error::msg(format!("unknown case {other}"))),
        }
        Ok(ctx.next.complete("accepted"))
    }
}

#[wasmflow::workflow(name = "Deep")]
mod deep {
    use serde_json::{Value, json};
    use wasmflow::prelude::*;

    /// `depth` arrays nested in one another.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, _| json!([inner]))
    }

    /// Hands the host JSON nested `depth` levels deep `at` one entry: the
    /// result, a store value, a child's input, an event to the parent, or
    /// (`query`: it waits) a query's answer.
    #[start]
    fn start(ctx: &mut Context, at: String, depth: usize) -> Result<Directive> {
        match at.as_str() {
            "result" => return Ok(ctx.next.complete(nested(depth))),
            "store" => ctx.store.put("deep", nested(depth))?,
            "child" => {
                ctx.start("Quiet", "deep-child", &json!({ "deep": nested(depth) }))?;
            }
            "query" => return Ok(ctx.next.wait()),
            other => return Err(Error::msg(format!("unknown entry {other}"))),
        }
        Ok(ctx.next.complete("accepted"))
    }

    #[query]
    fn answer(_ctx: &mut Context, depth: usize) -> Result<Value> {
        Ok(nested(depth))
    }
}

#[wasmflow::workflow(name = "DeepChild")]
mod deep_child {
    use serde_json::json;
    use wasmflow::prelude::*;

    /// Sends its parent an event nested `depth` levels deep.
    #[start]
    fn start(ctx: &mut Context, depth: usize) -> Result<Directive> {
        let deep = (0..depth).fold(json!(1), |inner, _| json!([inner]));
        ctx.send_to_parent("ping", &json!({ "deep": deep }))?;
        Ok(ctx.next.complete("sent"))
    }
}

/// A parent for `DeepChild`: completes with the child's outcome.
#[wasmflow::workflow(name = "DeepParent")]
mod deep_parent {
    use serde_json::json;
    use wasmflow::prelude::*;

    #[start]
    fn start(ctx: &mut Context, depth: usize) -> Result<Directive> {
        let id = format!("{}-child", ctx.run.workflow_id);
        let options = StartOptions::new().on_completed(child_done);
        ctx.start_with("DeepChild", id, &json!({ "depth": depth }), options)?;
        Ok(ctx.next.wait())
    }

    #[event]
    fn ping(ctx: &mut Context, deep: serde_json::Value) -> Result<Directive> {
        let _ = deep;
        Ok(ctx.next.wait())
    }

    #[step]
    fn child_done(ctx: &mut Context, outcome: ChildOutcome) -> Result<Directive> {
        Ok(ctx.next.complete(outcome))
    }
}

#[wasmflow::workflow(name = "LogFlood")]
mod log_flood {
    use wasmflow::prelude::*;

    /// Logs `n` empty lines and `n` lines to stdout, then completes.
    #[start]
    fn start(ctx: &mut Context, n: u64) -> Result<Directive> {
        for _ in 0..n {
            ctx.log.info("");
        }
        for _ in 0..n {
            println!();
        }
        Ok(ctx.next.complete(n))
    }
}

wasmflow::export!(
    oversized,
    deep,
    deep_child,
    deep_parent,
    log_flood,
    big_value,
    key_flood,
    child_flood,
    quiet,
    flooded_parent,
    event_flood,
    fs_snoop,
    net_snoop,
    env_snoop,
    chatty
);
