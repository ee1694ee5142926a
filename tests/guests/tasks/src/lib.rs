//! Test guest: workflow types that exercise tasks (SPEC 8), recorded values,
//! retries, outbound HTTP under grants and secrets (SPEC 13). Used by the
//! integration tests only (`tests/tasks.rs`), against loopback servers the
//! tests run.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wasmflow::prelude::*;

/// One HTTP request through `wasi:http`: the status and the body as text.
fn http(
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Result<(u16, String)> {
    wstd::runtime::block_on(async {
        use wstd::http::{Body, Client, Request};
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from_json(json)?
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|e| Error::msg(format!("cannot build the request: {e}")))?;
        let mut response = Client::new()
            .send(request)
            .await
            .map_err(|e| Error::msg(format!("{method} {url} failed: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .contents()
            .await
            .map_err(|e| Error::msg(format!("{method} {url}: reading the body failed: {e}")))?;
        Ok((status, String::from_utf8_lossy(text).into_owned()))
    })
}

/// POST `{url}/count/{name}` on the tests' counting server: its new count.
fn count(url: &str, name: &str) -> Result<u64> {
    let (status, body) = http(
        "POST",
        &format!("{url}/count/{name}"),
        &BTreeMap::new(),
        None,
    )?;
    if status != 200 {
        return Err(Error::msg(format!("the counter answered {status}: {body}")));
    }
    let body: Value = serde_json::from_str(&body)
        .map_err(|e| Error::msg(format!("the counter answered {body}: {e}")))?;
    body["n"]
        .as_u64()
        .ok_or_else(|| Error::msg(format!("the counter answered no count: {body}")))
}

/// POST a charge to the payments service with the attempt's key; a 5xx is an
/// error (retryable), the transaction id otherwise.
fn charge(url: &str, attempt: &Attempt, headers: &BTreeMap<String, String>) -> Result<String> {
    let mut headers = headers.clone();
    headers.insert("idempotency-key".into(), attempt.idempotency_key.clone());
    let (status, body) = http(
        "POST",
        &format!("{url}/charges"),
        &headers,
        Some(&json!({"amount": 12.5})),
    )?;
    if status != 200 {
        return Err(Error::msg(format!(
            "the payments service answered {status}: {body}"
        )));
    }
    let body: Value = serde_json::from_str(&body)
        .map_err(|e| Error::msg(format!("the payments service answered {body}: {e}")))?;
    body["txn_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::msg(format!("no txn_id in {body}")))
}

fn described(e: &Error) -> Value {
    json!({"kind": e.kind().to_string(), "message": e.message()})
}

/// Recorded values and a parked retry: `work` takes now/random/uuid4, runs
/// task `a` (one POST to the counter, returning the values it saw), then
/// task `b`, whose first attempt fails and whose retry delay (`delay_ms`)
/// may be longer than the step timeout: the activation is then executed
/// again, without committing in between.
#[wasmflow::workflow(name = "Reexec")]
mod reexec {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[start]
    fn start(ctx: &mut Context, url: String, delay_ms: u64) -> Result<Directive> {
        ctx.store.put("url", url)?;
        ctx.store.put("delay_ms", delay_ms)?;
        Ok(ctx.next.step(work))
    }

    #[step(timeout = "2s")]
    fn work(ctx: &mut Context) -> Result<Directive> {
        let url: String = ctx.store.get("url")?;
        let delay_ms: u64 = ctx.store.get("delay_ms")?;
        let now_ms = ctx
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let random = ctx.random();
        let random_u64 = ctx.random_u64();
        let uuid = ctx.uuid4();
        let seen = json!({
            "now_ms": now_ms,
            // As bits: a float's JSON text is compared exactly.
            "random_bits": random.to_bits(),
            "random_u64": random_u64,
            "uuid": uuid,
        });
        let a: Value = ctx.task("a", RetryPolicy::none(), |attempt| {
            let n = count(&url, "a")?;
            Ok(json!({"count": n, "key": attempt.idempotency_key, "seen": seen}))
        })?;
        let policy = RetryPolicy::attempts(2)
            .initial_delay(Duration::from_millis(delay_ms))
            .jitter(0.0);
        let b: Value = ctx.task("b", policy, |attempt| {
            let n = count(&url, "b")?;
            if attempt.attempt == 1 {
                return Err(Error::msg("b fails its first attempt"));
            }
            Ok(json!({"count": n, "attempt": attempt.attempt, "key": attempt.idempotency_key}))
        })?;
        Ok(ctx.next.complete(json!({"a": a, "b": b, "seen": seen})))
    }
}

/// Retry policies: `flaky` charges (the service fails the first requests),
/// `fatal` fails with a kind the policy never retries, `exhaust` fails
/// every attempt. The handler catches the task's error and completes with
/// it.
#[wasmflow::workflow(name = "Retries")]
mod retries {
    use super::*;

    #[start]
    fn start(ctx: &mut Context, url: String, mode: String) -> Result<Directive> {
        ctx.store.put("url", url)?;
        ctx.store.put("mode", mode)?;
        Ok(ctx.next.step(go))
    }

    #[step]
    fn go(ctx: &mut Context) -> Result<Directive> {
        let url: String = ctx.store.get("url")?;
        let mode: String = ctx.store.get("mode")?;
        let quick = |n| {
            RetryPolicy::attempts(n)
                .initial_delay(Duration::from_millis(20))
                .jitter(0.0)
        };
        let mut calls = Vec::new();
        let outcome: Result<String> = match mode.as_str() {
            "flaky" => ctx.task("charge", quick(5), |attempt| {
                calls.push(attempt.attempt);
                charge(&url, attempt, &BTreeMap::new())
            }),
            "fatal" => ctx.task(
                "fatal",
                quick(5).never_retry(ErrorKind::InvalidPayload),
                |attempt| {
                    calls.push(attempt.attempt);
                    Err(Error::new(ErrorKind::InvalidPayload, "no such card"))
                },
            ),
            "exhaust" => ctx.task("exhaust", quick(3), |attempt| {
                calls.push(attempt.attempt);
                Err(Error::msg(format!("attempt {} failed", attempt.attempt)))
            }),
            other => return Err(Error::msg(format!("unknown mode {other}"))),
        };
        Ok(ctx.next.complete(match outcome {
            Ok(txn) => json!({"ok": txn, "calls": calls}),
            Err(e) => json!({"error": described(&e), "calls": calls}),
        }))
    }
}

/// One request, in a task (or, with `outside`, not in one): completes with
/// `{"ok": {"status", "body"}}` or `{"error": {"kind", "message"}}`.
#[wasmflow::workflow(name = "Fetch")]
mod fetch {
    use super::*;

    #[start]
    fn start(
        ctx: &mut Context,
        url: String,
        method: Option<String>,
        headers: Option<BTreeMap<String, String>>,
        body: Option<Value>,
        outside: Option<bool>,
    ) -> Result<Directive> {
        ctx.store.put("url", url)?;
        ctx.store
            .put("method", method.unwrap_or_else(|| "GET".into()))?;
        ctx.store.put("headers", headers.unwrap_or_default())?;
        ctx.store.put("body", body)?;
        ctx.store.put("outside", outside.unwrap_or(false))?;
        Ok(ctx.next.step(go))
    }

    #[step]
    fn go(ctx: &mut Context) -> Result<Directive> {
        let url: String = ctx.store.get("url")?;
        let method: String = ctx.store.get("method")?;
        let headers: BTreeMap<String, String> = ctx.store.get("headers")?;
        let body: Option<Value> = ctx.store.get("body")?;
        let outside: bool = ctx.store.get("outside")?;
        let request = || {
            http(&method, &url, &headers, body.as_ref())
                .map(|(status, body)| json!({"status": status, "body": body}))
        };
        let outcome = if outside {
            // Not in a task: the host must fail the activation even though
            // this handler swallows the error.
            request()
        } else {
            ctx.task("fetch", RetryPolicy::none(), |_| request())
        };
        Ok(ctx.next.complete(match outcome {
            Ok(v) => json!({"ok": v}),
            Err(e) => json!({"error": described(&e)}),
        }))
    }
}

/// `retry` of a failed run: `reserve` (counted) then `charge` with no
/// retries; a failed charge fails the run.
#[wasmflow::workflow(name = "Reserve")]
mod reserve {
    use super::*;

    #[start]
    fn start(ctx: &mut Context, counter: String, payments: String) -> Result<Directive> {
        ctx.store.put("counter", counter)?;
        ctx.store.put("payments", payments)?;
        Ok(ctx.next.step(go))
    }

    #[step]
    fn go(ctx: &mut Context) -> Result<Directive> {
        let counter: String = ctx.store.get("counter")?;
        let payments: String = ctx.store.get("payments")?;
        let reservation: u64 = ctx.task("reserve", RetryPolicy::none(), |_| {
            count(&counter, "reserve")
        })?;
        let txn: String = ctx.task("charge", RetryPolicy::none(), |attempt| {
            charge(&payments, attempt, &BTreeMap::new())
        })?;
        Ok(ctx
            .next
            .complete(json!({"reservation": reservation, "txn": txn})))
    }
}

/// A task whose value is floats: are they returned exactly as the closure
/// made them (first execution, through the host's record)? Completes with
/// the bits of every float that came back different.
#[wasmflow::workflow(name = "Floats")]
mod floats {
    use super::*;

    #[start]
    fn start(ctx: &mut Context, n: u32) -> Result<Directive> {
        // Deterministic pseudo-random floats in [0, 1), no recorded values.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let made: Vec<f64> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        let back: Vec<f64> = ctx.task("floats", RetryPolicy::none(), |_| Ok(made.clone()))?;
        let changed: Vec<Value> = made
            .iter()
            .zip(&back)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .map(|(a, b)| json!({"made": format!("{a:?}"), "returned": format!("{b:?}")}))
            .collect();
        Ok(ctx
            .next
            .complete(json!({"n": back.len(), "changed": changed})))
    }
}

/// The benchmark's task workload (`cargo xtask bench --only tasks`): `n`
/// tasks in one activation, each returning a value — or, with `url` (a
/// payments service), each POSTing a charge there first.
#[wasmflow::workflow(name = "TaskLoop")]
mod task_loop {
    use super::*;

    #[start]
    fn start(ctx: &mut Context, n: u32, url: Option<String>) -> Result<Directive> {
        let headers = BTreeMap::from([(
            "authorization".to_owned(),
            "Bearer {{secret:payments_token}}".to_owned(),
        )]);
        let mut done = 0u32;
        for i in 0..n {
            let _: String = ctx.task("step", RetryPolicy::none(), |attempt| match &url {
                Some(url) => charge(url, attempt, &headers),
                None => Ok(i.to_string()),
            })?;
            done += 1;
        }
        Ok(ctx.next.complete(done))
    }
}

wasmflow::export!(reexec, retries, fetch, reserve, floats, task_loop);
