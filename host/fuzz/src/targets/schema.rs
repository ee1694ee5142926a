//! Target `schema`: a parameter schema as a guest's `describe` may give it
//! (built from the JSON Schema vocabulary, or any text), compiled the way a
//! component load compiles it, then checked against payloads. Properties:
//! compiling and checking answer (no panic; libFuzzer's timeout catches a
//! hang), their messages are bounded, a check gives the same answer twice,
//! a compiled schema round-trips through serde, and the handler check at
//! the door agrees with the parameter's own check.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value, json};
use wasmflow_core::HandlerKind;
use wasmflow_core::model::{HandlerSpec, ParamSpec};
use wasmflow_core::schema::ParamSchema;

use crate::json;

/// Longest message a schema may make the host print: a summary (120
/// characters, control characters escaped) and a clipped validator message
/// around it.
const MAX_MESSAGE_CHARS: usize = 4 * 120 * 10;

const TYPES: &[&str] = &[
    "null", "boolean", "integer", "number", "string", "array", "object", "strung",
];
const PATTERNS: &[&str] = &[
    "^a+$",
    "(a+)+$",
    "^(\\d+)*$",
    "(",
    "\\p{L}+",
    "^[0-9]{2,}$",
    "(?=a)",
    "a{99999}",
    "\\",
];
const REFS: &[&str] = &[
    "#",
    "#/$defs/a",
    "#/$defs/missing",
    "#/properties/a",
    "https://example.com/x.json",
    "other.json",
    "#a",
    "urn:x",
];
const FORMATS: &[&str] = &[
    "email",
    "date-time",
    "uint32",
    "int64",
    "regex",
    "uri",
    "uuid",
];

fn schema_value(u: &mut Unstructured, depth: usize) -> Result<Value> {
    if depth == 0 || u.ratio(1, 8)? {
        return Ok(Value::Bool(u.arbitrary()?));
    }
    let mut map = Map::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let sub = |u: &mut Unstructured| schema_value(u, depth - 1);
        let (key, value) = match u.int_in_range(0..=17)? {
            0 | 1 => {
                let pick = |u: &mut Unstructured| -> Result<Value> {
                    Ok(TYPES[u.choose_index(TYPES.len())?].into())
                };
                let value = if u.ratio(1, 4)? {
                    Value::Array(vec![pick(u)?, pick(u)?])
                } else {
                    pick(u)?
                };
                ("type", value)
            }
            2 => {
                let key = [
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "multipleOf",
                ][u.choose_index(5)?];
                (key, json::number(u)?)
            }
            3 => {
                let key = [
                    "minLength",
                    "maxLength",
                    "minItems",
                    "maxItems",
                    "minProperties",
                    "maxProperties",
                ][u.choose_index(6)?];
                (key, json::number(u)?)
            }
            4 => {
                let value = if u.ratio(1, 3)? {
                    u.arbitrary::<String>()?
                } else {
                    PATTERNS[u.choose_index(PATTERNS.len())?].to_owned()
                };
                ("pattern", value.into())
            }
            5 => {
                let n = u.int_in_range(0..=4)?;
                (
                    "enum",
                    Value::Array((0..n).map(|_| json::value(u, 2)).collect::<Result<_>>()?),
                )
            }
            6 => ("const", json::value(u, 2)?),
            7 => {
                let mut props = Map::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    props.insert(json::string(u)?, sub(u)?);
                }
                ("properties", Value::Object(props))
            }
            8 => {
                let n = u.int_in_range(0..=3)?;
                let keys: Vec<Value> = (0..n)
                    .map(|_| json::string(u).map(Value::from))
                    .collect::<Result<_>>()?;
                ("required", Value::Array(keys))
            }
            9 => {
                let key = [
                    "additionalProperties",
                    "items",
                    "contains",
                    "not",
                    "propertyNames",
                    "unevaluatedProperties",
                    "if",
                    "then",
                    "else",
                ][u.choose_index(9)?];
                (key, sub(u)?)
            }
            10 => {
                let key = ["anyOf", "oneOf", "allOf", "prefixItems"][u.choose_index(4)?];
                let n = u.int_in_range(0..=3)?;
                (
                    key,
                    Value::Array((0..n).map(|_| sub(u)).collect::<Result<_>>()?),
                )
            }
            11 => {
                let value = if u.ratio(1, 4)? {
                    u.arbitrary::<String>()?
                } else {
                    REFS[u.choose_index(REFS.len())?].to_owned()
                };
                (["$ref", "$dynamicRef"][u.choose_index(2)?], value.into())
            }
            12 => ("$defs", json!({ "a": sub(u)? })),
            13 => ("format", FORMATS[u.choose_index(FORMATS.len())?].into()),
            14 => {
                let value = [
                    "https://json-schema.org/draft/2020-12/schema",
                    "http://json-schema.org/draft-04/schema#",
                    "https://example.com/meta",
                ][u.choose_index(3)?];
                ("$schema", value.into())
            }
            15 => (
                ["$id", "$anchor"][u.choose_index(2)?],
                json::string(u)?.into(),
            ),
            16 => (
                "dependentRequired",
                json!({ json::string(u)?: [json::string(u)?] }),
            ),
            _ => {
                // Any keyword with any value.
                let key: &'static str = json::KEYS[u.choose_index(json::KEYS.len())?];
                (key, json::value(u, 2)?)
            }
        };
        map.insert(key.to_owned(), value);
    }
    Ok(Value::Object(map))
}

pub fn schema(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = u.ratio(1, 10) else { return };
    let text = if raw {
        json::text(&mut u)
    } else {
        schema_value(&mut u, 4).map(|v| v.to_string())
    };
    let Ok(text) = text else { return };
    let schema = match ParamSchema::parse(&text) {
        Ok(schema) => schema,
        Err(e) => {
            assert!(
                !e.is_empty() && e.chars().count() <= MAX_MESSAGE_CHARS,
                "{e}"
            );
            return;
        }
    };
    let summary = schema.summary();
    // 120 characters and a marker, each control character escaped.
    assert!(
        !summary.is_empty()
            && summary.chars().count() <= 121 * 10
            && !summary.contains(char::is_control),
        "summary {summary:?}"
    );
    let again: ParamSchema = serde_json::to_value(&schema)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|e| panic!("a compiled schema does not round-trip: {e}: {text}"));
    assert_eq!(again, schema);
    let spec = HandlerSpec {
        name: "start".into(),
        kind: HandlerKind::Start,
        params: vec![ParamSpec {
            name: "a".into(),
            optional: false,
            schema: Some(schema.clone()),
        }],
        timeout: None,
    };
    while let Ok(value) = json::value(&mut u, 3) {
        let first = schema.check(&value);
        assert_eq!(first, schema.check(&value), "a check changed its answer");
        if let Err(e) = &first {
            assert!(e.chars().count() <= MAX_MESSAGE_CHARS, "{e}");
        }
        // The door binds `{"a": value}` to the parameter, then checks it.
        if !value.is_null() {
            let door = spec.check_payload(&json!({ "a": value }));
            assert_eq!(
                door.is_ok(),
                first.is_ok(),
                "the door and the schema disagree on {value}: {door:?} / {first:?}"
            );
        }
        if u.is_empty() {
            break;
        }
    }
}
