//! Target `guest_values`: every kind of value a guest hands the host, fed
//! to the host's decoding directly (no wasm): the directive a handler
//! returns (a step, a wait, a sleep, a result, a failure), the error it
//! returns, its `describe` answer, a child start, an event payload and a
//! store value. Properties: only typed errors; what is accepted is within
//! its bounds, and its JSON re-encodes to the same JSON as the text the
//! guest gave.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use serde_json::Value;
use wasmflow_core::ErrorKind;
use wasmflow_core::limits::MAX_WORKFLOW_TIMEOUT;
use wasmflow_core::model::{Directive, Json, WorkflowTypeSpec, guest_json, json_value, parse_json};
use wasmflow_sandbox::SandboxConfig;
use wasmflow_sandbox::decode::{self, wit};

use crate::json;

/// Small bounds, so that inputs reach them.
fn config() -> &'static SandboxConfig {
    static CONFIG: OnceLock<SandboxConfig> = OnceLock::new();
    CONFIG.get_or_init(|| SandboxConfig {
        max_value_bytes: 2048,
        max_name_bytes: 40,
        max_message_bytes: 200,
        max_details_bytes: 300,
        ..SandboxConfig::default()
    })
}

const KINDS: &[wit::ErrorKind] = &[
    wit::ErrorKind::KeyNotFound,
    wit::ErrorKind::InvalidPayload,
    wit::ErrorKind::UnknownStep,
    wit::ErrorKind::UnknownEvent,
    wit::ErrorKind::UnknownWorkflowType,
    wit::ErrorKind::NoParent,
    wit::ErrorKind::WorkflowAlreadyRunning,
    wit::ErrorKind::WorkflowTimeout,
    wit::ErrorKind::WaitTimeout,
    wit::ErrorKind::StepTimeout,
    wit::ErrorKind::MemoryLimit,
    wit::ErrorKind::StackOverflow,
    wit::ErrorKind::Trap,
    wit::ErrorKind::QuotaExceeded,
    wit::ErrorKind::NotSupported,
    wit::ErrorKind::Cancelled,
    wit::ErrorKind::Terminated,
    wit::ErrorKind::Application,
    wit::ErrorKind::CapabilityDenied,
    wit::ErrorKind::NonDeterminism,
];

const HANDLER_KINDS: &[wit::HandlerKind] = &[
    wit::HandlerKind::Start,
    wit::HandlerKind::Step,
    wit::HandlerKind::Event,
    wit::HandlerKind::Query,
];

/// A name: usual, empty, with whitespace or control characters, at the
/// byte bound or one over, or anything.
fn name(u: &mut Unstructured) -> Result<String> {
    let max = config().max_name_bytes;
    Ok(match u.int_in_range(0..=7)? {
        0 => ["start", "next", "poke", "Order", "a"][u.choose_index(5)?].to_owned(),
        1 => String::new(),
        2 => ["a b", "a\nb", "\u{0}", "é", "  ", "x\u{7f}"][u.choose_index(6)?].to_owned(),
        3 => "n".repeat(max),
        4 => "n".repeat(max + 1),
        5 => "é".repeat(max / 2 + u.int_in_range(0..=1)?),
        _ => u.arbitrary()?,
    })
}

fn duration_ms(u: &mut Unstructured) -> Result<u64> {
    let max = MAX_WORKFLOW_TIMEOUT.as_millis() as u64;
    Ok(match u.int_in_range(0..=4)? {
        0 => 0,
        1 => max,
        2 => max + 1,
        3 => u64::MAX,
        _ => u.arbitrary()?,
    })
}

/// JSON text, sometimes over the value bound.
fn value_text(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 10)? {
        let n = config().max_value_bytes - 2 + u.int_in_range(0..=1)?;
        return Ok(format!("\"{}\"", "x".repeat(n)));
    }
    json::text(u)
}

fn error(u: &mut Unstructured) -> Result<wit::Error> {
    let message = if u.ratio(1, 10)? {
        "m".repeat(config().max_message_bytes + u.int_in_range(0..=1)?)
    } else {
        u.arbitrary()?
    };
    let details = if u.arbitrary()? {
        let text = if u.ratio(1, 10)? {
            "1".repeat(config().max_details_bytes + u.int_in_range(0..=1)?)
        } else {
            json::text(u)?
        };
        Some(text)
    } else {
        None
    };
    Ok(wit::Error {
        kind: KINDS[u.choose_index(KINDS.len())?],
        message,
        details,
    })
}

/// The same JSON, whatever its spelling: what `text` parses to, encoded.
fn reencoded(text: &str) -> String {
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("accepted JSON text does not parse: {e}: {text:?}"));
    value.to_string()
}

/// An accepted JSON document reads back, and re-encodes as the guest's text.
fn check_json(json: &Json, given: &str) {
    let value = json_value(json).unwrap_or_else(|e| panic!("accepted JSON cannot be read: {e}"));
    assert_eq!(
        value.to_string(),
        reencoded(given),
        "JSON changed on the way in"
    );
}

fn check_directive(u: &mut Unstructured) -> Result<()> {
    let config = config();
    let given = match u.int_in_range(0..=4)? {
        0 => wit::Directive::Step(name(u)?),
        1 => wit::Directive::Wait(wit::WaitSpec {
            timeout_ms: if u.arbitrary()? {
                Some(duration_ms(u)?)
            } else {
                None
            },
            on_timeout: if u.arbitrary()? { Some(name(u)?) } else { None },
        }),
        2 => wit::Directive::Sleep(wit::SleepSpec {
            duration_ms: duration_ms(u)?,
            step: name(u)?,
        }),
        3 => wit::Directive::Complete(value_text(u)?),
        _ => wit::Directive::Fail(error(u)?),
    };
    let max_ms = MAX_WORKFLOW_TIMEOUT.as_millis();
    match (given.clone(), decode::directive(given, config)) {
        (_, Err(e)) => assert!(
            matches!(e.kind, ErrorKind::QuotaExceeded | ErrorKind::InvalidPayload)
                && !e.message.is_empty(),
            "{e:?}"
        ),
        (wit::Directive::Step(n), Ok(Directive::Step(step))) => {
            assert!(step == n && step.len() <= config.max_name_bytes)
        }
        (
            wit::Directive::Wait(spec),
            Ok(Directive::Wait {
                timeout,
                on_timeout,
            }),
        ) => {
            assert_eq!(timeout.map(|t| t.as_millis() as u64), spec.timeout_ms);
            assert!(timeout.is_none_or(|t| t.as_millis() <= max_ms));
            assert!(on_timeout.is_none_or(|s| s.len() <= config.max_name_bytes));
        }
        (wit::Directive::Sleep(spec), Ok(Directive::Sleep { duration, step })) => {
            assert_eq!(duration.as_millis() as u64, spec.duration_ms);
            assert!(duration.as_millis() <= max_ms && step.len() <= config.max_name_bytes);
        }
        (wit::Directive::Complete(text), Ok(Directive::Complete(json))) => {
            assert!(text.len() <= config.max_value_bytes);
            check_json(&json, &text);
        }
        (wit::Directive::Fail(e), Ok(Directive::Fail(error))) => check_error(&e, &error),
        (given, Ok(decoded)) => panic!("{given:?} decoded as {decoded:?}"),
    }
    Ok(())
}

/// An accepted error keeps the guest's message, and its details as JSON
/// when they are JSON the host can read, else as the text.
fn check_error(given: &wit::Error, decoded: &wasmflow_core::WorkflowError) {
    let config = config();
    assert_eq!(decoded.message, given.message);
    assert!(decoded.message.len() <= config.max_message_bytes);
    match (&given.details, &decoded.details) {
        (None, None) => {}
        (Some(text), Some(details)) => {
            assert!(text.len() <= config.max_details_bytes);
            match parse_json(text, "details") {
                Ok(json) if json_value(&json).is_ok() => {
                    assert_eq!(details.to_string(), reencoded(text))
                }
                _ => assert_eq!(details, &Value::String(text.clone())),
            }
        }
        (given, decoded) => panic!("details {given:?} decoded as {decoded:?}"),
    }
}

fn check_returned_error(u: &mut Unstructured) -> Result<()> {
    let given = error(u)?;
    match decode::error(given.clone(), config()) {
        Ok(decoded) => check_error(&given, &decoded),
        Err(quota) => assert_eq!(quota.kind, ErrorKind::QuotaExceeded, "{quota:?}"),
    }
    Ok(())
}

fn check_describe(u: &mut Unstructured) -> Result<()> {
    let mut infos = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let mut handlers = Vec::new();
        for _ in 0..u.int_in_range(0..=5)? {
            let mut params = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                let schema = match u.int_in_range(0..=3)? {
                    0 => None,
                    1 => Some(json::text(u)?),
                    _ => Some(
                        [
                            r#"{"type":"string"}"#,
                            r#"{"type":"integer","minimum":0}"#,
                            "true",
                            "{}",
                            r##"{"$ref":"#/$defs/x"}"##,
                        ][u.choose_index(5)?]
                        .to_owned(),
                    ),
                };
                params.push(wit::Param {
                    name: name(u)?,
                    optional: u.arbitrary()?,
                    schema,
                });
            }
            handlers.push(wit::HandlerInfo {
                name: name(u)?,
                kind: HANDLER_KINDS[u.choose_index(HANDLER_KINDS.len())?],
                params,
                timeout_ms: if u.arbitrary()? {
                    Some(duration_ms(u)?)
                } else {
                    None
                },
            });
        }
        infos.push(wit::WorkflowTypeInfo {
            name: name(u)?,
            handlers,
        });
    }
    match decode::describe(infos, 3) {
        Ok(specs) => {
            assert!(!specs.is_empty() && specs.len() <= 3);
            for (i, spec) in specs.iter().enumerate() {
                spec.validate()
                    .unwrap_or_else(|e| panic!("an accepted type is invalid: {e}"));
                assert!(specs[..i].iter().all(|s| s.name != spec.name));
                // What the host stores of a version reads back the same.
                let text = serde_json::to_string(spec.as_ref()).expect("a spec serializes");
                let again: WorkflowTypeSpec = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("a stored spec does not read back: {e}: {text}"));
                assert_eq!(&again, spec.as_ref());
            }
        }
        Err(e) => assert!(e.0.starts_with("`describe`"), "{e}"),
    }
    Ok(())
}

fn check_child_start(u: &mut Unstructured) -> Result<()> {
    let child = wit::ChildStart {
        workflow_type: name(u)?,
        workflow_id: name(u)?,
        input: json::text(u)?,
        timeout_ms: if u.arbitrary()? {
            Some(duration_ms(u)?)
        } else {
            None
        },
        on_completed: if u.arbitrary()? { Some(name(u)?) } else { None },
        close_policy: [
            wit::ClosePolicy::Abandon,
            wit::ClosePolicy::Cancel,
            wit::ClosePolicy::Terminate,
        ][u.choose_index(3)?],
    };
    match decode::child_start(&child) {
        Ok((timeout, json, value)) => {
            assert!(value.is_object());
            assert!(timeout.is_none_or(|t| t <= MAX_WORKFLOW_TIMEOUT));
            check_json(&json, &child.input);
            assert_eq!(value.to_string(), reencoded(&child.input));
        }
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidPayload, "{e:?}"),
    }
    Ok(())
}

fn check_event_and_store_value(u: &mut Unstructured) -> Result<()> {
    let event = name(u)?;
    let payload = json::text(u)?;
    match decode::event_payload(&event, &payload) {
        Ok((json, value)) => {
            check_json(&json, &payload);
            assert_eq!(value.to_string(), reencoded(&payload));
        }
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidPayload, "{e:?}"),
    }
    let text = value_text(u)?;
    match guest_json(&text, "store value", config().max_value_bytes) {
        Ok(json) => {
            assert!(text.len() <= config().max_value_bytes);
            check_json(&json, &text);
        }
        Err(e) => assert!(matches!(
            e.kind,
            ErrorKind::InvalidPayload | ErrorKind::QuotaExceeded
        )),
    }
    Ok(())
}

pub fn guest_values(data: &[u8]) {
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        let step = match u.int_in_range(0..=4u8) {
            Ok(0) => check_directive(&mut u),
            Ok(1) => check_returned_error(&mut u),
            Ok(2) => check_describe(&mut u),
            Ok(3) => check_child_start(&mut u),
            Ok(_) => check_event_and_store_value(&mut u),
            Err(_) => return,
        };
        if step.is_err() {
            return;
        }
    }
}
