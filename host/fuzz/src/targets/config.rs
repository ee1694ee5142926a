//! Target `config`: the operator's config file, as TOML built from its own
//! keys (with values of the wrong type, out of range, unknown keys, odd
//! URLs and secrets that cannot be read) or as any text. Properties: a
//! refused file is a typed error naming the file; an accepted one has well
//! formed grants; and no secret's value appears in an error or in the
//! config's debug output.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use arbitrary::{Result, Unstructured};
use wasmflow_host::{Config, ConfigError};

use crate::json;

const SECRET: &str = "s3cr3t-VALUE-7f1e";

const URLS: &[&str] = &[
    "http://127.0.0.1:9100",
    "https://Payments.Example.COM",
    "http://[::1]:8080",
    "http://host:99999",
    "ftp://x",
    "http://h/path",
    "http://user@h",
    "http://",
    "https://h:0",
    "http://h:443?q",
    "HTTP://H",
];
const DB_URLS: &[&str] = &[
    "",
    "wasmflow.db",
    "postgres://wasmflow@db.internal/wasmflow",
    "postgres://",
    "postgresql://u:p@h:5432/d?sslmode=disable",
    "sqlite:x",
    "/tmp/x.db",
];

/// A TOML value: usually of a fitting kind, sometimes not.
fn scalar(u: &mut Unstructured, fitting: &str) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0 => format!("{}", u.arbitrary::<i64>()?),
        1 => format!("{:?}", u.arbitrary::<String>()?),
        2 => "true".into(),
        3 => "[1, 2]".into(),
        4 => "0".into(),
        _ => fitting.to_owned(),
    })
}

fn quoted(u: &mut Unstructured, pool: &[&str]) -> Result<String> {
    Ok(if u.ratio(1, 5)? {
        format!("{:?}", json::string(u)?)
    } else {
        format!("{:?}", pool[u.choose_index(pool.len())?])
    })
}

fn file(u: &mut Unstructured) -> Result<String> {
    let mut text = String::new();
    if u.arbitrary()? {
        text.push_str("[database]\n");
        let url = quoted(u, DB_URLS)?;
        let _ = writeln!(text, "url = {}", scalar(u, &url)?);
        let lease = u.int_in_range(0..=100_000u64)?.to_string();
        let _ = writeln!(text, "lease_timeout_ms = {}", scalar(u, &lease)?);
        let pool = u.int_in_range(0..=300u32)?.to_string();
        let _ = writeln!(text, "pool_size = {}", scalar(u, &pool)?);
    }
    if u.arbitrary()? {
        text.push_str("[outbound]\n");
        let timeout = u.arbitrary::<u32>()?.to_string();
        let _ = writeln!(text, "timeout_ms = {}", scalar(u, &timeout)?);
        let max = u.arbitrary::<u32>()?.to_string();
        let _ = writeln!(text, "max_response_bytes = {}", scalar(u, &max)?);
    }
    let secrets = ["token", "key", "missing", ""];
    if u.arbitrary()? {
        text.push_str("[secrets]\n");
        for _ in 0..u.int_in_range(0..=3)? {
            let name = secrets[u.choose_index(secrets.len())?];
            let source = match u.int_in_range(0..=4)? {
                0 => "{ env = \"TOKEN\" }".to_owned(),
                1 => "{ env = \"NOT_SET\" }".to_owned(),
                2 => "{ file = \"/nonexistent/secret\" }".to_owned(),
                3 => "{ env = \"TOKEN\", file = \"/x\" }".to_owned(),
                _ => "{}".to_owned(),
            };
            let _ = writeln!(text, "{name:?} = {source}");
        }
    }
    for _ in 0..u.int_in_range(0..=3)? {
        text.push_str("[[grants]]\n");
        match u.int_in_range(0..=3)? {
            0 => {
                let _ = writeln!(
                    text,
                    "plugin = {}",
                    quoted(u, &["order-payment.wasm", "a/b.wasm", ""])?
                );
            }
            1 => {
                let _ = writeln!(text, "workflow_type = {}", quoted(u, &["Payment", ""])?);
            }
            2 => text.push_str("plugin = \"p.wasm\"\nworkflow_type = \"T\"\n"),
            _ => {}
        }
        for _ in 0..u.int_in_range(0..=2)? {
            text.push_str("[[grants.http]]\n");
            let _ = writeln!(text, "url = {}", quoted(u, URLS)?);
            if u.arbitrary()? {
                let methods = ["GET", "post", "FOO", "", "P OST"];
                let m = methods[u.choose_index(methods.len())?];
                let _ = writeln!(text, "methods = [{m:?}]");
            }
            if u.arbitrary()? {
                let s = secrets[u.choose_index(secrets.len())?];
                let _ = writeln!(text, "secrets = [{s:?}]");
            }
            if u.arbitrary()? {
                let _ = writeln!(text, "allow_private = {}", scalar(u, "true")?);
            }
        }
    }
    if u.ratio(1, 8)? {
        let _ = writeln!(text, "{} = 1", json::string(u)?);
    }
    Ok(text)
}

pub fn config(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let text = match u.ratio(1, 6) {
        Ok(true) => String::from_utf8_lossy(u.take_rest()).into_owned(),
        Ok(false) => match file(&mut u) {
            Ok(text) => text,
            Err(_) => return,
        },
        Err(_) => return,
    };
    let env = HashMap::from([("TOKEN".to_owned(), SECRET.to_owned())]);
    let path = Path::new("wasmflow.toml");
    match Config::parse(&text, path, &env) {
        Ok(config) => {
            let shown = format!("{config:?}");
            assert!(!shown.contains(SECRET), "a secret shows in {shown}");
            for (_, grant) in &config.grants.grants {
                assert!(
                    matches!(grant.scheme.as_str(), "http" | "https"),
                    "{grant:?}"
                );
                assert!(
                    !grant.host.is_empty() && grant.host == grant.host.to_ascii_lowercase(),
                    "{grant:?}"
                );
                assert!(
                    grant
                        .methods
                        .iter()
                        .all(|m| !m.is_empty() && *m == m.to_ascii_uppercase()),
                    "{grant:?}"
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("wasmflow.toml"), "{message}");
            assert!(!message.contains(SECRET), "a secret shows in {message}");
            assert!(
                matches!(e, ConfigError::Parse { .. } | ConfigError::Invalid { .. }),
                "{e:?}"
            );
        }
    }
}
