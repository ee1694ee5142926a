//! Target `payload`: the door's payload check (the binder, then each
//! parameter's JSON Schema) against the SDK's binding of the same payload
//! (the binder, then serde into the parameter's Rust type), for handlers
//! whose parameters have the types authors use. The property: the host
//! accepts a payload exactly when the guest can deserialize it. A payload
//! the host accepts and the guest cannot read is a run that is stored and
//! then fails; one the host refuses and the guest could read is a start
//! refused for nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use serde::Deserialize;
use wasmflow::Context;
use wasmflow::rt::{self, Args, HandlerDef, HandlerKind, ParamDef, WitDirective, WorkflowDef};
use wasmflow::schemars::{self, JsonSchema};
use wasmflow_core::model::{HandlerSpec, ParamSpec, json_value, parse_json};
use wasmflow_core::schema::ParamSchema;

use crate::json;

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "schemars")]
#[allow(dead_code)]
struct Item {
    sku: String,
    qty: u16,
    #[serde(default)]
    tags: Vec<String>,
    note: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "schemars")]
enum Priority {
    Low,
    High,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "schemars")]
#[allow(dead_code)]
enum Shape {
    Circle { r: f64 },
    Square(u32),
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "schemars")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Strict {
    a: i8,
    b: Option<bool>,
}

/// A handler whose parameters are deserialized into the given types, as
/// `#[workflow]` generates it.
macro_rules! handler {
    ($name:literal, $kind:ident, [$(($param:literal, $ty:ty, $optional:literal)),*]) => {{
        fn call(_: &mut Context, mut args: Args) -> wasmflow::Result<WitDirective> {
            let mut _index = 0;
            $(
                let _: $ty = args.take(_index)?;
                _index += 1;
            )*
            Ok(WitDirective::Complete("null".into()))
        }
        HandlerDef {
            name: $name,
            kind: HandlerKind::$kind,
            params: &[$(ParamDef {
                name: $param,
                optional: $optional,
                schema: rt::param_schema::<$ty>,
            }),*],
            timeout_ms: None,
            call,
        }
    }};
}

static HANDLERS: &[HandlerDef] = &[
    handler!("amount", Start, [("amount", u32, false)]),
    handler!(
        "order",
        Start,
        [("order_id", String, false), ("amount", f64, false)]
    ),
    handler!("item", Start, [("item", Item, false)]),
    handler!("priority", Event, [("priority", Priority, false)]),
    handler!("limit", Query, [("limit", Option<u8>, true)]),
    handler!("shape", Start, [("shape", Shape, false), ("note", Option<String>, true)]),
    handler!("strict", Event, [("strict", Strict, false)]),
    handler!("wide", Start, [("a", i64, false), ("b", u64, false)]),
    handler!("tags", Query, [("tags", Vec<i32>, false)]),
    handler!(
        "pair",
        Start,
        [("a", char, false), ("b", (u8, bool), false)]
    ),
    handler!("maybe_item", Event, [("r", Option<Item>, true)]),
    handler!("any", Start, [("amount", serde_json::Value, false)]),
    handler!("qty", Start, [("qty", u16, false)]),
    handler!("map", Start, [("a", HashMap<String, u32>, false)]),
    handler!("small", Event, [("b", i8, false)]),
];

/// The handlers with a struct among their parameter types.
const STRUCTS: &[&str] = &["item", "shape", "strict", "maybe_item"];

static WORKFLOW: WorkflowDef = WorkflowDef {
    name: "Fuzz",
    handlers: HANDLERS,
};

/// The host's model of each handler, as `describe` would give it.
fn specs() -> &'static [HandlerSpec] {
    static SPECS: OnceLock<Vec<HandlerSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        HANDLERS
            .iter()
            .map(|h| HandlerSpec {
                name: h.name.to_owned(),
                kind: match h.kind {
                    HandlerKind::Start => wasmflow_core::HandlerKind::Start,
                    HandlerKind::Step => wasmflow_core::HandlerKind::Step,
                    HandlerKind::Event => wasmflow_core::HandlerKind::Event,
                    HandlerKind::Query => wasmflow_core::HandlerKind::Query,
                },
                params: h
                    .params
                    .iter()
                    .map(|p| ParamSpec {
                        name: p.name.to_owned(),
                        optional: p.optional,
                        schema: (p.schema)().map(|text| {
                            ParamSchema::parse(&text).unwrap_or_else(|e| {
                                panic!("the SDK's schema for `{}` does not compile: {e}", p.name)
                            })
                        }),
                    })
                    .collect(),
                timeout: None,
            })
            .collect()
    })
}

pub fn payload(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(index), Ok(value)) = (u.choose_index(HANDLERS.len()), json::value(&mut u, 4)) else {
        return;
    };
    let handler = &HANDLERS[index];
    let spec = &specs()[index];
    // What the door does with a request body: parse the text, read it as a
    // value, check it against the handler; the guest gets the same text.
    let text = value.to_string();
    let Ok(payload) = parse_json(&text, "the input").and_then(|json| json_value(&json)) else {
        return;
    };
    let host = spec.check_payload(&payload);
    let guest = rt::call(&WORKFLOW, handler, &text);
    match (host, guest) {
        (Ok(()), Ok(_)) => {}
        (Err(e), Err(_)) => assert_eq!(e.kind, wasmflow_core::ErrorKind::InvalidPayload, "{e}"),
        (Ok(()), Err(e)) => panic!(
            "the host accepts {text} for handler `{}` but the SDK cannot read it: {}",
            handler.name,
            e.message()
        ),
        // serde reads a struct from an array of its fields too (`[1, true]`
        // for `{"a": 1, "b": true}`); the schema, and so the host, asks for
        // the object form only.
        (Err(_), Ok(_)) if STRUCTS.contains(&handler.name) && text.contains('[') => {}
        (Err(e), Ok(_)) => panic!(
            "the host refuses {text} for handler `{}`, which the SDK reads: {}",
            handler.name, e.message
        ),
    }
}
