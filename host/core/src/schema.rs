//! A handler parameter's JSON Schema (SPEC 4 and 10): compiled once when a
//! component version loads, checked against payloads at the door, and
//! summarised in JSON terms ("a string", "an integer ≥ 0") for error
//! messages and the types listing.
//!
//! ```
//! use serde_json::json;
//! use wasmflow_core::schema::ParamSchema;
//!
//! let schema = ParamSchema::parse(r#"{"type": "integer", "minimum": 0}"#).unwrap();
//! assert_eq!(schema.summary(), "an integer ≥ 0");
//! assert!(schema.check(&json!(3)).is_ok());
//! let mismatch = schema.check(&json!("3")).unwrap_err();
//! assert_eq!(mismatch, "expects an integer ≥ 0, got a string: \"3\"");
//! ```
//!
//! Schemas are self-contained: a `$ref` outside the schema is refused when
//! the component loads (the validator resolves nothing over the network or
//! from files).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use wasmflow_protocol::payload::json_type;

/// At most this many characters of a summary or of a value quoted in a
/// message: what a guest's schema makes the host print stays bounded.
const MAX_SUMMARY_CHARS: usize = 120;
/// How deep a summary follows `$ref`, `anyOf` and friends.
const MAX_SUMMARY_DEPTH: usize = 4;
/// How many alternatives (`enum` values, `anyOf` branches) a summary names.
const MAX_ALTERNATIVES: usize = 6;

/// A parameter's schema: its JSON, the validator compiled from it, and its
/// summary. Cheap to clone (shared).
#[derive(Clone)]
pub struct ParamSchema(Arc<Inner>);

struct Inner {
    schema: Value,
    validator: jsonschema::Validator,
    summary: String,
}

impl ParamSchema {
    /// Parse and compile schema text; the error says why it is not a usable
    /// schema (not JSON, not a valid JSON Schema, an unresolvable `$ref`).
    pub fn parse(text: &str) -> Result<ParamSchema, String> {
        let schema: Value =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        ParamSchema::new(schema)
    }

    /// Compile a schema.
    pub fn new(schema: Value) -> Result<ParamSchema, String> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(format!(
                "a schema is an object or a boolean, not {}",
                json_type(&schema)
            ));
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&schema)
            .map_err(|e| format!("not a valid JSON Schema: {}", clip(&e.to_string())))?;
        let summary = clip(&summarize(&schema, &schema, 0));
        Ok(ParamSchema(Arc::new(Inner {
            schema,
            validator,
            summary,
        })))
    }

    /// The schema as JSON.
    pub fn schema(&self) -> &Value {
        &self.0.schema
    }

    /// What the schema accepts, in JSON terms: "a string", "an integer ≥ 0",
    /// "an object with keys `a`, `b`". Bounded in length.
    pub fn summary(&self) -> &str {
        &self.0.summary
    }

    /// Check a value; the error says what was expected and what came
    /// ("expects a string, got a number: 42").
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let Err(error) = self.0.validator.validate(value) else {
            return Ok(());
        };
        let path = error.instance_path().to_string();
        if path.is_empty() {
            Err(format!(
                "expects {}, got {}: {}",
                self.0.summary,
                json_type(value),
                clip(&value.to_string())
            ))
        } else {
            Err(format!(
                "expects {}; at `{}`: {}",
                self.0.summary,
                clip(&path),
                clip(&error.to_string())
            ))
        }
    }
}

impl fmt::Debug for ParamSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ParamSchema").field(&self.0.schema).finish()
    }
}

impl PartialEq for ParamSchema {
    fn eq(&self, other: &Self) -> bool {
        self.0.schema == other.0.schema
    }
}

impl Eq for ParamSchema {}

impl Serialize for ParamSchema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.schema.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ParamSchema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let schema = Value::deserialize(d)?;
        ParamSchema::new(schema).map_err(serde::de::Error::custom)
    }
}

/// At most [`MAX_SUMMARY_CHARS`] characters, control characters escaped.
fn clip(text: &str) -> String {
    let clipped = match text.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    };
    clipped
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_debug().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// "a string", "an integer from 0 to 255", "one of \"a\", \"b\"", ...
fn summarize(schema: &Value, root: &Value, depth: usize) -> String {
    const ANY: &str = "any value";
    let map = match schema {
        Value::Bool(true) => return ANY.to_owned(),
        Value::Bool(false) => return "nothing (no value fits)".to_owned(),
        Value::Object(map) => map,
        _ => return ANY.to_owned(),
    };
    if depth > MAX_SUMMARY_DEPTH {
        return "a value fitting its schema".to_owned();
    }
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        let resolved = target
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer));
        return match resolved {
            Some(inner) => summarize(inner, root, depth + 1),
            None => "a value fitting its schema".to_owned(),
        };
    }
    if let Some(value) = map.get("const") {
        return clip(&value.to_string());
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        return format!("one of {}", list(values.iter().map(Value::to_string)));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(key) {
            return alternatives(branches.iter().map(|b| summarize(b, root, depth + 1)));
        }
    }
    match map.get("type") {
        Some(Value::String(ty)) => one_type(ty, map),
        Some(Value::Array(types)) => alternatives(
            types
                .iter()
                .filter_map(Value::as_str)
                .map(|t| one_type(t, map)),
        ),
        _ => ANY.to_owned(),
    }
}

fn one_type(ty: &str, map: &serde_json::Map<String, Value>) -> String {
    match ty {
        "string" => "a string".to_owned(),
        "integer" => format!("an integer{}", range(map)),
        "number" => format!("a number{}", range(map)),
        "boolean" => "a boolean".to_owned(),
        "null" => "null".to_owned(),
        "array" => "an array".to_owned(),
        "object" => match map.get("required") {
            Some(Value::Array(keys)) if !keys.is_empty() => format!(
                "an object with keys {}",
                list(keys.iter().map(|k| match k {
                    Value::String(k) => format!("`{k}`"),
                    other => other.to_string(),
                }))
            ),
            _ => "an object".to_owned(),
        },
        other => format!("a value of type `{other}`"),
    }
}

/// " ≥ 0", " from 0 to 255", " ≤ 10", or "".
fn range(map: &serde_json::Map<String, Value>) -> String {
    let bound = |key| map.get(key).filter(|v| v.is_number()).map(Value::to_string);
    match (bound("minimum"), bound("maximum")) {
        (Some(min), Some(max)) => format!(" from {min} to {max}"),
        (Some(min), None) => format!(" ≥ {min}"),
        (None, Some(max)) => format!(" ≤ {max}"),
        (None, None) => String::new(),
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.take(MAX_ALTERNATIVES + 1).collect();
    if items.len() > MAX_ALTERNATIVES {
        format!("{}, …", items[..MAX_ALTERNATIVES].join(", "))
    } else {
        items.join(", ")
    }
}

/// "a string or null"; an `Option<T>`'s null comes last.
fn alternatives(items: impl Iterator<Item = String>) -> String {
    let mut items: Vec<String> = items.take(MAX_ALTERNATIVES + 1).collect();
    items.dedup();
    if let Some(null) = items.iter().position(|i| i == "null") {
        let null = items.remove(null);
        items.push(null);
    }
    match items.len() {
        0 => "any value".to_owned(),
        n if n > MAX_ALTERNATIVES => format!("{} or …", items[..MAX_ALTERNATIVES].join(", ")),
        _ => items.join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(schema: Value) -> String {
        ParamSchema::new(schema).unwrap().summary().to_owned()
    }

    #[test]
    fn summaries_speak_json() {
        assert_eq!(summary(json!({"type": "string"})), "a string");
        assert_eq!(
            summary(json!({"type": "integer", "minimum": 0, "maximum": 255})),
            "an integer from 0 to 255"
        );
        assert_eq!(
            summary(json!({"type": ["string", "null"]})),
            "a string or null"
        );
        assert_eq!(
            summary(json!({"type": ["null", "boolean"]})),
            "a boolean or null"
        );
        assert_eq!(summary(json!(true)), "any value");
        assert_eq!(summary(json!({"enum": ["a", "b"]})), "one of \"a\", \"b\"");
        assert_eq!(
            summary(json!({
                "$ref": "#/$defs/Order",
                "$defs": {"Order": {"type": "object", "required": ["id", "amount"]}}
            })),
            "an object with keys `id`, `amount`"
        );
        assert_eq!(
            summary(json!({"anyOf": [{"type": "number"}, {"type": "null"}]})),
            "a number or null"
        );
    }

    #[test]
    fn checks_name_what_was_expected_and_what_came() {
        let s = ParamSchema::new(json!({"type": "string"})).unwrap();
        assert!(s.check(&json!("ok")).is_ok());
        assert_eq!(
            s.check(&json!(42)).unwrap_err(),
            "expects a string, got a number: 42"
        );
        let order = ParamSchema::new(json!({
            "type": "object",
            "properties": {"amount": {"type": "number"}},
            "required": ["amount"]
        }))
        .unwrap();
        let err = order.check(&json!({"amount": "x"})).unwrap_err();
        assert!(
            err.starts_with("expects an object with keys `amount`; at `/amount`:"),
            "{err}"
        );
    }

    #[test]
    fn invalid_and_external_schemas_are_refused() {
        assert!(ParamSchema::parse("{").unwrap_err().contains("not JSON"));
        assert!(
            ParamSchema::parse("42")
                .unwrap_err()
                .contains("object or a boolean")
        );
        let err = ParamSchema::new(json!({"type": "strung"})).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        let err = ParamSchema::new(json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }

    #[test]
    fn messages_are_bounded() {
        let long = "x".repeat(10_000);
        let s = ParamSchema::new(json!({"type": "integer"})).unwrap();
        let err = s.check(&json!(long)).unwrap_err();
        assert!(err.len() < 400, "{}", err.len());
        let s = ParamSchema::new(json!({"enum": (0..1000).collect::<Vec<_>>()})).unwrap();
        assert!(s.summary().chars().count() <= MAX_SUMMARY_CHARS + 1);
    }

    #[test]
    fn serializes_as_its_schema() {
        let s = ParamSchema::new(json!({"type": "string"})).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"type":"string"}"#);
        let back: ParamSchema = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }
}
