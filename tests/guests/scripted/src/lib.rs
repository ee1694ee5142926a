//! Test guest for the structure-aware guest fuzzer (`host/fuzz`, target
//! `guest`): written against the WIT world directly, it performs whatever
//! sequence of host calls its input spells out, with the names, keys, sizes
//! and JSON texts given, valid or not, then returns the directive given.
//!
//! A script is a JSON array of operations, each an array whose first element
//! names it:
//!
//! | operation | host call |
//! |---|---|
//! | `["put", key, text]` | `store-put` of `text` (JSON or not) |
//! | `["put_n", key, n]` | `store-put` of a string of `n` bytes |
//! | `["get", key]`, `["del", key]` | `store-get`, `store-delete` |
//! | `["child", type, id, input, timeout_ms, on_completed, close]` | `start-child` |
//! | `["send", event, payload]` | `send-to-parent` |
//! | `["task", name, attempts, delay_ms, ok, error]` | `task-begin`, `task-end` |
//! | `["log", level, message]` | `log` |
//! | `["now"]`, `["random"]`, `["uuid"]`, `["run"]` | the recorded values, `current-run` |
//! | `["alloc", bytes]`, `["spin", n]`, `["recurse", n]`, `["panic", message]` | memory, time, stack, a trap |
//!
//! and the last may be a directive: `["complete", text]`, `["fail", kind,
//! message, details]`, `["error", kind, message]` (the handler returns an
//! error), `["step", name]`, `["wait", timeout_ms, on_timeout]`, `["sleep",
//! ms, step]`; without one the handler completes with `null`.
//!
//! Workflow type `Scripted`: the start handler runs `script` of its input;
//! event `poke` runs `script` of its payload; steps `next` and `after_child`
//! run the script stored under `script:next` / `script:after_child` (a
//! script may put one there); query `peek` answers the store's `q`.

wit_bindgen::generate!({
    world: "workflow",
    path: "../../../wit",
});

use exports::wasmflow::workflow::guest::Guest;
use serde_json::Value;
use wasmflow::workflow::host;
use wasmflow::workflow::types::{
    Activation, ChildStart, ClosePolicy, Directive, Error, ErrorKind, HandlerInfo, HandlerKind,
    LogLevel, Param, RetryPolicy, SleepSpec, TaskBegun, WaitSpec, WorkflowTypeInfo,
};

struct Scripted;

const KINDS: [ErrorKind; 20] = [
    ErrorKind::KeyNotFound,
    ErrorKind::InvalidPayload,
    ErrorKind::UnknownStep,
    ErrorKind::UnknownEvent,
    ErrorKind::UnknownWorkflowType,
    ErrorKind::NoParent,
    ErrorKind::WorkflowAlreadyRunning,
    ErrorKind::WorkflowTimeout,
    ErrorKind::WaitTimeout,
    ErrorKind::StepTimeout,
    ErrorKind::MemoryLimit,
    ErrorKind::StackOverflow,
    ErrorKind::Trap,
    ErrorKind::QuotaExceeded,
    ErrorKind::NotSupported,
    ErrorKind::Cancelled,
    ErrorKind::Terminated,
    ErrorKind::Application,
    ErrorKind::CapabilityDenied,
    ErrorKind::NonDeterminism,
];

fn handler(name: &str, kind: HandlerKind, params: &[(&str, bool)]) -> HandlerInfo {
    HandlerInfo {
        name: name.into(),
        kind,
        params: params
            .iter()
            .map(|(name, optional)| Param {
                name: (*name).into(),
                optional: *optional,
                schema: None,
            })
            .collect(),
        timeout_ms: None,
    }
}

impl Guest for Scripted {
    fn describe() -> Vec<WorkflowTypeInfo> {
        vec![WorkflowTypeInfo {
            name: "Scripted".into(),
            handlers: vec![
                handler("start", HandlerKind::Start, &[("script", true)]),
                handler("next", HandlerKind::Step, &[]),
                handler("after_child", HandlerKind::Step, &[("outcome", true)]),
                handler("poke", HandlerKind::Event, &[("script", true)]),
                handler("peek", HandlerKind::Query, &[]),
            ],
        }]
    }

    fn handle(activation: Activation) -> Result<Directive, Error> {
        let script = match activation.kind {
            HandlerKind::Query => {
                return Ok(Directive::Complete(
                    host::store_get("q").unwrap_or_else(|| "null".into()),
                ));
            }
            HandlerKind::Step => host::store_get(&format!("script:{}", activation.handler))
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(Value::Null),
            _ => serde_json::from_str::<Value>(&activation.input)
                .ok()
                .and_then(|input| input.get("script").cloned())
                .unwrap_or(Value::Null),
        };
        run(script.as_array().map(Vec::as_slice).unwrap_or_default())
    }
}

fn text(op: &[Value], i: usize) -> String {
    match op.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn opt_text(op: &[Value], i: usize) -> Option<String> {
    op.get(i).filter(|v| !v.is_null()).map(|_| text(op, i))
}

fn num(op: &[Value], i: usize) -> u64 {
    op.get(i).and_then(Value::as_u64).unwrap_or(0)
}

fn opt_num(op: &[Value], i: usize) -> Option<u64> {
    op.get(i).and_then(Value::as_u64)
}

fn kind(op: &[Value], i: usize) -> ErrorKind {
    KINDS[(num(op, i) % KINDS.len() as u64) as usize]
}

fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        std::hint::black_box(recurse(n - 1)) + 1
    }
}

fn run(script: &[Value]) -> Result<Directive, Error> {
    let mut sink = 0u64;
    for op in script {
        let Some(op) = op.as_array() else { continue };
        let name = op.first().and_then(Value::as_str).unwrap_or("");
        match name {
            "put" => {
                let _ = host::store_put(&text(op, 1), &text(op, 2));
            }
            "put_n" => {
                let n = num(op, 2).min(16 << 20) as usize;
                let _ = host::store_put(&text(op, 1), &format!("\"{}\"", "x".repeat(n)));
            }
            "get" => sink += host::store_get(&text(op, 1)).map_or(0, |v| v.len() as u64),
            "del" => host::store_delete(&text(op, 1)),
            "child" => {
                let close = match num(op, 6) % 3 {
                    0 => ClosePolicy::Abandon,
                    1 => ClosePolicy::Cancel,
                    _ => ClosePolicy::Terminate,
                };
                let _ = host::start_child(&ChildStart {
                    workflow_type: text(op, 1),
                    workflow_id: text(op, 2),
                    input: text(op, 3),
                    timeout_ms: opt_num(op, 4),
                    on_completed: opt_text(op, 5),
                    close_policy: close,
                });
            }
            "send" => {
                let _ = host::send_to_parent(&text(op, 1), &text(op, 2));
            }
            "task" => {
                let policy = RetryPolicy {
                    max_attempts: num(op, 2) as u32,
                    initial_delay_ms: num(op, 3),
                    backoff_multiplier: 2.0,
                    max_delay_ms: num(op, 3).saturating_mul(4),
                    jitter: 0.0,
                    non_retryable: Vec::new(),
                };
                if let Ok(TaskBegun::Attempt(_)) = host::task_begin(&text(op, 1), &policy) {
                    let outcome = match opt_text(op, 4) {
                        Some(ok) => Ok(ok),
                        None => Err(Error {
                            kind: ErrorKind::Application,
                            message: text(op, 5),
                            details: None,
                        }),
                    };
                    let _ = host::task_end(outcome.as_deref());
                }
            }
            "log" => {
                let level = match num(op, 1) % 5 {
                    0 => LogLevel::Trace,
                    1 => LogLevel::Debug,
                    2 => LogLevel::Info,
                    3 => LogLevel::Warn,
                    _ => LogLevel::Error,
                };
                host::log(level, &text(op, 2));
            }
            "now" => sink += host::now(),
            "random" => sink ^= host::random(),
            "uuid" => sink += host::uuid4().len() as u64,
            "run" => sink += host::current_run().sequence,
            "alloc" => {
                let bytes = vec![1u8; num(op, 1).min(1 << 30) as usize];
                sink += std::hint::black_box(&bytes)
                    .iter()
                    .map(|&b| b as u64)
                    .sum::<u64>();
            }
            "spin" => {
                for i in 0..num(op, 1) {
                    sink = std::hint::black_box(sink.wrapping_add(i));
                }
            }
            "recurse" => sink += recurse(num(op, 1)),
            "panic" => panic!("{}", text(op, 1)),
            "complete" => return Ok(Directive::Complete(text(op, 1))),
            "fail" => {
                return Ok(Directive::Fail(Error {
                    kind: kind(op, 1),
                    message: text(op, 2),
                    details: opt_text(op, 3),
                }));
            }
            "error" => {
                return Err(Error {
                    kind: kind(op, 1),
                    message: text(op, 2),
                    details: None,
                });
            }
            "step" => return Ok(Directive::Step(text(op, 1))),
            "wait" => {
                return Ok(Directive::Wait(WaitSpec {
                    timeout_ms: opt_num(op, 1),
                    on_timeout: opt_text(op, 2),
                }));
            }
            "sleep" => {
                return Ok(Directive::Sleep(SleepSpec {
                    duration_ms: num(op, 1),
                    step: text(op, 2),
                }));
            }
            _ => {}
        }
    }
    std::hint::black_box(sink);
    Ok(Directive::Complete("null".into()))
}

export!(Scripted);
