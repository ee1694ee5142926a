//! Target `guest`: the structure-aware guest fuzzer. The fuzzer's bytes
//! become a script for the `scripted` test guest (`tests/guests/scripted`):
//! store writes with odd keys and sizes, child starts (of itself, with
//! scripts of their own), events to the parent, tasks, logs, memory, time,
//! stack and panics, then a directive. It runs in the real sandbox on a
//! real host with small quotas, beside a neighbouring `Greeter` run.
//! Properties: the host never panics; the run's store stays within its
//! quotas; the neighbour completes with its result.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use serde_json::{Value, json};
use wasmflow_core::RunStatus;
use wasmflow_core::activation::entry_bytes;
use wasmflow_core::limits::MAX_KEY_BYTES;
use wasmflow_host::{RunId, RunTree, StartOptions};

use crate::harness::{self, Harness};
use crate::json::{self, one, pick};

const MAX_VALUE_BYTES: usize = 4096;
const MAX_STORE_BYTES: usize = 16 << 10;
const MAX_HISTORY_LEN: u64 = 300;

fn guest_host() -> &'static Harness {
    static HOST: OnceLock<Harness> = OnceLock::new();
    HOST.get_or_init(|| {
        Harness::start(&["scripted", "hello"], |b| {
            b.max_value_bytes(MAX_VALUE_BYTES)
                .max_store_bytes(MAX_STORE_BYTES)
                .max_children_per_activation(3)
                .max_events_per_activation(3)
                .max_inbox_len(8)
                .max_history_len(MAX_HISTORY_LEN)
                .memory_limit(32 << 20)
                .step_timeout(Duration::from_millis(400))
        })
    })
}

fn key(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0 => "k".repeat(MAX_KEY_BYTES + u.int_in_range(0..=1)?),
        1 => String::new(),
        _ => pick(u, &["a", "b", "q", "script:next", "script:after_child"])?,
    })
}

fn small_ms(u: &mut Unstructured) -> Result<Value> {
    Ok(json!(one(u, &[0u64, 1, 5, 30, 400, u64::MAX])?))
}

/// A script of at most `len` operations; children's scripts nest `depth`.
fn script(u: &mut Unstructured, depth: usize, len: usize) -> Result<Value> {
    let mut ops = Vec::new();
    for _ in 0..u.int_in_range(0..=len)? {
        let op = match u.int_in_range(0..=13)? {
            0 | 1 => {
                let key = key(u)?;
                let value = if key.starts_with("script:") && depth > 0 {
                    script(u, depth - 1, 3)?.to_string()
                } else {
                    json::text(u)?
                };
                json!(["put", key, value])
            }
            2 => json!(["put_n", key(u)?, one(u, &[10u64, 4000, 4100, 20_000])?]),
            3 => json!([one(u, &["get", "del"])?, key(u)?]),
            4 if depth > 0 => {
                let input = if u.ratio(3, 4)? {
                    json!({ "script": script(u, depth - 1, 4)? }).to_string()
                } else {
                    json::text(u)?
                };
                let on_completed = if u.arbitrary()? {
                    Value::from(pick(u, &["after_child", "next", "nowhere"])?)
                } else {
                    Value::Null
                };
                json!([
                    "child",
                    pick(u, &["Scripted", "Greeter", "Nope", ""])?,
                    pick(u, &["c1", "c2", "", "bad id"])?,
                    input,
                    if u.arbitrary()? {
                        small_ms(u)?
                    } else {
                        Value::Null
                    },
                    on_completed,
                    u.int_in_range(0..=2u8)?
                ])
            }
            5 => {
                let payload = if u.ratio(1, 2)? && depth > 0 {
                    json!({ "script": script(u, depth - 1, 3)? }).to_string()
                } else {
                    json::text(u)?
                };
                json!(["send", pick(u, &["poke", "nope"])?, payload])
            }
            6 => {
                let ok = if u.arbitrary()? {
                    Value::from(json::text(u)?)
                } else {
                    Value::Null
                };
                json!([
                    "task",
                    pick(u, &["charge", ""])?,
                    u.int_in_range(0..=4u32)?,
                    u.int_in_range(0..=20u64)?,
                    ok,
                    json::string(u)?
                ])
            }
            7 => json!(["log", u.int_in_range(0..=4u8)?, json::string(u)?]),
            8 => json!([one(u, &["now", "random", "uuid", "run"])?]),
            9 => json!(["alloc", one(u, &[1u64 << 10, 1 << 20, 16 << 20, 64 << 20])?]),
            10 => json!(["spin", one(u, &[10u64, 100_000, 10_000_000_000])?]),
            11 => json!(["recurse", one(u, &[10u64, 1_000, 1_000_000])?]),
            12 => json!(["panic", json::string(u)?]),
            _ => continue,
        };
        ops.push(op);
    }
    let directive = match u.int_in_range(0..=7)? {
        0 => json!(["complete", json::text(u)?]),
        1 => json!([
            "fail",
            u.int_in_range(0..=19u8)?,
            json::string(u)?,
            if u.arbitrary()? {
                Value::from(json::text(u)?)
            } else {
                Value::Null
            }
        ]),
        2 => json!(["error", u.int_in_range(0..=19u8)?, json::string(u)?]),
        3 => json!(["step", pick(u, &["next", "after_child", "nowhere", ""])?]),
        4 => json!([
            "wait",
            if u.arbitrary()? {
                small_ms(u)?
            } else {
                Value::Null
            },
            if u.arbitrary()? {
                Value::from(pick(u, &["next", "nowhere"])?)
            } else {
                Value::Null
            }
        ]),
        5 => json!(["sleep", small_ms(u)?, pick(u, &["next", "nowhere"])?]),
        _ => Value::Null,
    };
    if !directive.is_null() {
        ops.push(directive);
    }
    Ok(Value::Array(ops))
}

/// Wait until the run ends or parks with no timer; then end it and its
/// descendants, so that the host is idle for the next input.
async fn settle(harness: &Harness, run_id: RunId) {
    let host = &harness.host;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let run = host.run(run_id).await.expect("read the scripted run");
        let parked = run.status == RunStatus::Waiting && run.timer.is_none();
        if run.status.is_terminal() || parked || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let tree = host.tree(run_id).await.expect("read the run tree");
    let mut stack: Vec<&RunTree> = vec![&tree];
    while let Some(node) = stack.pop() {
        check_quotas(harness, node.run.run_id).await;
        if !node.run.status.is_terminal() {
            // It may end on its own meanwhile: then there is nothing to do.
            let _ = host
                .terminate(&node.run.workflow_id, "fuzz input done")
                .await;
        }
        stack.extend(node.children.iter());
    }
}

async fn check_quotas(harness: &Harness, run_id: RunId) {
    let host = &harness.host;
    let store = host.store(run_id).await.expect("read the store");
    let mut bytes = 0;
    for (key, value) in &store {
        let text = value.to_string();
        assert!(
            key.len() <= MAX_KEY_BYTES,
            "store key of {} bytes",
            key.len()
        );
        assert!(
            text.len() <= MAX_VALUE_BYTES,
            "store value of {} bytes",
            text.len()
        );
        let json = serde_json::value::RawValue::from_string(text).expect("a value's text");
        bytes += entry_bytes(key, &json);
    }
    assert!(bytes <= MAX_STORE_BYTES, "store of {bytes} bytes");
    let history = host.history(run_id).await.expect("read the history");
    assert!(
        history.len() as u64 <= MAX_HISTORY_LEN + 2,
        "history of {} entries",
        history.len()
    );
}

pub fn guest(data: &[u8]) {
    let harness = guest_host();
    let mut u = Unstructured::new(data);
    let Ok(script) = script(&mut u, 2, 8) else {
        return;
    };
    let input = json!({ "script": script }).to_string();
    harness.runtime.block_on(async {
        let host = &harness.host;
        let started = host
            .start("Scripted", &input, StartOptions::new())
            .await
            .unwrap_or_else(|e| panic!("the scripted run does not start: {e}"));
        let neighbour = host
            .start("Greeter", r#"{"name":"neighbour"}"#, StartOptions::new())
            .await
            .expect("the neighbour starts");
        settle(harness, started.run_id).await;
        let done = tokio::time::timeout(Duration::from_secs(10), host.wait(neighbour.run_id))
            .await
            .expect("the neighbour finishes within 10 s")
            .expect("wait for the neighbour");
        assert_eq!(
            done.status,
            RunStatus::Completed,
            "the neighbour: {:?}",
            done.error
        );
        assert_eq!(
            done.result.as_ref().map(|r| r.get()),
            Some(r#""Hello, neighbour""#)
        );
    });
    assert_eq!(harness::panics(), 0, "the host panicked");
}
