//! `wasmflow new NAME`: a workflow crate that builds, tests and deploys as
//! it stands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use askama::Template;
use clap::Args;

/// The checkout this binary was built from: the SDK and the harness are
/// path dependencies into it.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[derive(Args)]
pub struct NewArgs {
    /// The crate's name (letters, digits, `-` and `_`, starting with a
    /// letter); the workflow type is its CamelCase form (`order-check` →
    /// `OrderCheck`).
    name: String,
    /// Where to write the crate (default: `./NAME`); must not exist or be
    /// empty.
    #[arg(long)]
    path: Option<PathBuf>,
    /// The wasmflow checkout the crate's `wasmflow` and `wasmflow-testing`
    /// dependencies point at (default: the one this binary was built from).
    #[arg(long, value_name = "DIR")]
    wasmflow: Option<PathBuf>,
}

#[derive(Template)]
#[template(path = "new/Cargo.toml", escape = "none")]
struct Manifest<'a> {
    crate_name: &'a str,
    module: &'a str,
    checkout: &'a str,
}

#[derive(Template)]
#[template(path = "new/lib.rs", escape = "none")]
struct Workflow<'a> {
    type_name: &'a str,
    module: &'a str,
}

#[derive(Template)]
#[template(path = "new/workflow.rs", escape = "none")]
struct Test<'a> {
    type_name: &'a str,
    crate_name: &'a str,
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    check_name(name)?;
    let module = name.replace('-', "_").to_ascii_lowercase();
    let type_name = camel_case(name);
    let dir = args.path.unwrap_or_else(|| PathBuf::from(name));
    let checkout = checkout(args.wasmflow)?;
    let checkout_text = checkout
        .to_str()
        .with_context(|| format!("the checkout path {} is not UTF-8", checkout.display()))?;
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists and is not empty: choose another NAME or --path",
                dir.display()
            );
        }
    }
    let files = [
        (
            "Cargo.toml",
            Manifest {
                crate_name: name,
                module: &module,
                checkout: checkout_text,
            }
            .render()?,
        ),
        (
            "src/lib.rs",
            Workflow {
                type_name: &type_name,
                module: &module,
            }
            .render()?,
        ),
        (
            "tests/workflow.rs",
            Test {
                type_name: &type_name,
                crate_name: name,
            }
            .render()?,
        ),
        (
            ".gitignore",
            include_str!("../templates/new/gitignore").to_owned(),
        ),
    ];
    for (file, text) in &files {
        write(&dir.join(file), text)?;
    }
    let wasm = format!("target/wasm32-wasip2/release/{module}.wasm");
    println!(
        "Created `{name}` in {dir}: workflow type `{type_name}` (src/lib.rs), its tests \
         (tests/workflow.rs).\n\
         \n\
         cd {dir}\n\
         cargo build --target wasm32-wasip2 --release   # build: {wasm}\n\
         cargo test                                     # test it in the harness (builds it too)\n\
         wasmflow deploy {wasm}   # deploy to the host at WASMFLOW_ADDR\n\
         \n\
         Then: wasmflow start {type_name} --id {name}-1 --input '{{\"name\":\"Ada\"}}'",
        dir = dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    if !ok {
        bail!(
            "invalid crate name `{name}`: use 1 to 64 ASCII letters, digits, `-` and `_`, \
             starting with a letter"
        );
    }
    Ok(())
}

/// `order-check` → `OrderCheck`.
fn camel_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn checkout(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let from_build = given.is_none();
    let dir = given.unwrap_or_else(|| PathBuf::from(BUILT_FROM));
    let sdk = dir.join("guest-sdk").join("Cargo.toml");
    if !sdk.is_file() {
        let how = if from_build {
            "the checkout this binary was built from is gone"
        } else {
            "that is not a wasmflow checkout"
        };
        bail!(
            "{} has no guest-sdk/Cargo.toml ({how}): pass --wasmflow DIR, a checkout of the \
             wasmflow repository",
            dir.display()
        );
    }
    std::fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types_and_modules() {
        assert_eq!(camel_case("order-check"), "OrderCheck");
        assert_eq!(camel_case("invoice"), "Invoice");
        assert_eq!(camel_case("a_b-c"), "ABC");
        for bad in ["", "1abc", "a b", "ü", "-x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("my-flow_2").is_ok());
    }
}
