//! `cargo xtask fuzz [TARGET] [--seconds N]`: coverage-guided fuzzing of the
//! host's doors with libFuzzer (through cargo-fuzz, on the nightly
//! toolchain, which it installs when missing). The targets are
//! `wasmflow-fuzz`'s (`host/fuzz`); their drivers are the binaries of
//! `host/fuzz/libfuzzer`.
//!
//! Each target starts from its seed corpus (`host/fuzz/corpus/TARGET`,
//! small, in the repository) and keeps what it finds in
//! `target/fuzz/corpus/TARGET`; a failing input is written to
//! `target/fuzz/artifacts/TARGET/` and the command fails. Without a target,
//! every target runs in turn for the given time (default 60 s each).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build_guests, run, workspace_root};

/// The fuzz targets, as `wasmflow_fuzz::TARGETS` names them.
pub const TARGETS: &[&str] = &[
    "payload",
    "schema",
    "guest_values",
    "config",
    "api",
    "guest",
];

/// The components the `api` and `guest` targets load.
const COMPONENTS: &[&str] = &["hello", "order-payment", "scripted"];

pub fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 60;
    let mut targets: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("`--seconds` needs a number")?;
                seconds = value.parse().with_context(|| {
                    format!("`--seconds {value}`: not a whole number of seconds")
                })?;
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(target) => targets.push(target),
                None => bail!(
                    "no fuzz target `{name}`; the targets are {}",
                    TARGETS.join(", ")
                ),
            },
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    ensure_cargo_fuzz()?;
    let root = workspace_root();
    let work = root.join("target").join("fuzz");
    let components = work.join("components");
    std::fs::create_dir_all(&components)?;
    let guests = build_guests()?;
    for name in COMPONENTS {
        let example = guests.example(name);
        let from = if example.exists() {
            example
        } else {
            guests.test_guest(name)
        };
        std::fs::copy(&from, components.join(format!("{name}.wasm")))
            .with_context(|| format!("copy {}", from.display()))?;
    }
    // The drivers' workspace resolves the same versions as the main one.
    let drivers = root.join("host").join("fuzz").join("libfuzzer");
    let lock = drivers.join("Cargo.lock");
    if !lock.exists() {
        std::fs::copy(root.join("Cargo.lock"), &lock)?;
    }
    for target in targets {
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let seeds = root.join("host").join("fuzz").join("corpus").join(target);
        eprintln!(
            "xtask: fuzzing `{target}` for {seconds} s (corpus {})",
            corpus.display()
        );
        let mut cmd = nightly_cargo();
        cmd.current_dir(&root)
            .args(["fuzz", "run", "--sanitizer", "none", "--fuzz-dir"])
            .arg(&drivers)
            .arg("--target-dir")
            .arg(work.join("build"))
            .arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=30")
            .arg("-rss_limit_mb=8192")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .env("WASMFLOW_FUZZ_COMPONENTS", &components);
        run(&mut cmd).with_context(|| {
            format!(
                "fuzz target `{target}` failed: the input is in {}",
                artifacts.display()
            )
        })?;
    }
    Ok(())
}

/// `cargo` of the nightly toolchain (cargo-fuzz's instrumentation needs
/// it), without the clippy wrapper a test run may have set.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))
        .context("fuzzing needs the nightly toolchain")?;
    }
    let installed = nightly_cargo().args(["fuzz", "--version"]).output();
    if !installed.is_ok_and(|o| o.status.success()) {
        run(Command::new(cargo_path()).args(["install", "cargo-fuzz", "--locked"]))
            .context("install cargo-fuzz")?;
    }
    Ok(())
}

fn cargo_path() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("cargo").to_owned())
}
