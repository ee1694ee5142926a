//! JSON values and texts from fuzzer bytes, biased towards what breaks
//! checks: numbers at the edges of the integer types, integral floats,
//! the parameter names the targets use, deep nesting, and text that is
//! almost JSON.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Keys the targets' handlers and schemas use, so that objects often fit.
pub const KEYS: &[&str] = &[
    "amount", "order_id", "item", "priority", "limit", "shape", "strict", "sku", "qty", "tags",
    "note", "a", "b", "r", "Circle", "Square", "script", "type", "id", "input", "",
];

/// A number: an edge of an integer type, an integral or fractional float,
/// or any finite `f64`.
pub fn number(u: &mut Unstructured) -> Result<Value> {
    let edges: [f64; 8] = [
        0.5,
        -0.0,
        1e300,
        -1e300,
        1.5e19,
        2f64.powi(64),
        2f64.powi(63),
        1e-300,
    ];
    Ok(match u.int_in_range(0..=7)? {
        0 => Value::from(u.int_in_range(-3i64..=300)?),
        1 => {
            let base: [i128; 8] = [
                u8::MAX as i128,
                u16::MAX as i128,
                u32::MAX as i128,
                i32::MIN as i128,
                i32::MAX as i128,
                u64::MAX as i128,
                i64::MIN as i128,
                i64::MAX as i128,
            ];
            let n = base[u.choose_index(base.len())?] + u.int_in_range(-1i128..=1)?;
            u64::try_from(n)
                .map(Value::from)
                .or_else(|_| i64::try_from(n).map(Value::from))
                .unwrap_or_else(|_| Value::from(n as f64))
        }
        2 => {
            Number::from_f64(u.int_in_range(-3i32..=300)? as f64).map_or(Value::Null, Value::Number)
        }
        3 => {
            Number::from_f64(edges[u.choose_index(edges.len())?]).map_or(Value::Null, Value::Number)
        }
        4 => Value::from(u.arbitrary::<u64>()?),
        5 => Value::from(u.arbitrary::<i64>()?),
        _ => Number::from_f64(u.arbitrary::<f64>()?).map_or(Value::Null, Value::Number),
    })
}

/// A string: one of [`KEYS`], a one-character string, or any string.
pub fn string(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => KEYS[u.choose_index(KEYS.len())?].to_owned(),
        1 => u.arbitrary::<char>()?.to_string(),
        _ => u.arbitrary::<String>()?,
    })
}

/// Any JSON value, nested at most `depth` deep.
pub fn value(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let last = if depth == 0 { 4 } else { 7 };
    Ok(match u.int_in_range(0..=last)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 | 4 => Value::String(string(u)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(object(u, depth)?),
    })
}

/// A JSON object whose keys are mostly [`KEYS`].
pub fn object(u: &mut Unstructured, depth: usize) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let key = string(u)?;
        map.insert(key, value(u, depth.saturating_sub(1))?);
    }
    Ok(map)
}

/// JSON text or almost: a value's text, any string, nesting deeper than
/// the host allows, a number out of range, or a value with a byte changed.
pub fn text(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0..=4 => value(u, 3)?.to_string(),
        5 => u.arbitrary::<String>()?,
        6 => {
            let depth = u.int_in_range(1..=200)?;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        7 => [
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890",
            "-0",
            "[1e309]",
        ][u.choose_index(6)?]
        .to_owned(),
        8 => {
            let mut text = value(u, 3)?.to_string().into_bytes();
            if !text.is_empty() {
                let at = u.choose_index(text.len())?;
                text[at] = u.arbitrary()?;
            }
            String::from_utf8_lossy(&text).into_owned()
        }
        _ => String::new(),
    })
}

/// One of `pool`.
pub fn one<T: Copy>(u: &mut Unstructured, pool: &[T]) -> Result<T> {
    Ok(pool[u.choose_index(pool.len())?])
}

/// Usually one of `pool`, sometimes any [`string`].
pub fn pick(u: &mut Unstructured, pool: &[&str]) -> Result<String> {
    Ok(if u.ratio(1, 6)? {
        string(u)?
    } else {
        one(u, pool)?.to_owned()
    })
}
