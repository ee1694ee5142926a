//! `cargo xtask <command>`: the project's build chores.
//!
//! - `guests`: build the example and test guest components (`wasm32-wasip2`).
//! - `demo`:   build the examples and the host, then run the seed's
//!   Order/Payment example on a fresh embedded SQLite database and print the
//!   Order's result and its Payment child's.
//! - `test`:   build the guests, then the layering check, `cargo fmt
//!   --check`, `cargo clippy` (warnings are errors) and every test of the
//!   workspace.
//! - `layers`: check the architecture's dependency rules (see
//!   `xtask::layers`).
//! - `bench`:  build the guests and run the benchmark (release build).

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use xtask::{build_guests, run, workspace_root};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("guests") => guests(),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("layers") => xtask::layers::check(&workspace_root()),
        _ => {
            eprintln!(
                "usage: cargo xtask <guests | demo | test | bench | layers>\n\n\
                 guests  build the example and test guest components\n\
                 demo    build everything and run the demo workflow\n\
                 test    fmt check, clippy and the whole test suite\n\
                 bench   the benchmark (prints the figures)\n\
                 layers  check the crates' dependency rules"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn guests() -> Result<()> {
    let guests = build_guests()?;
    println!("examples:    {}", guests.examples.display());
    println!("test guests: {}", guests.tests.display());
    Ok(())
}

fn demo() -> Result<()> {
    let guests = build_guests()?;
    run(cargo().args(["build", "--release", "--quiet", "--package", "wasmflow-cli"]))?;
    let root = workspace_root();
    let dir = root.join("target").join("demo");
    std::fs::create_dir_all(&dir).context("cannot create target/demo")?;
    let db = dir.join("wasmflow.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let wasmflow = root.join("target").join("release").join("wasmflow");
    let input = r#"{"order_id":"abc","amount":42.5}"#;
    println!(
        "$ wasmflow run --plugins {} --db {} Order --id order-abc --input '{input}' --event start_payment",
        guests.examples.display(),
        db.display()
    );
    let output = Command::new(&wasmflow)
        .arg("run")
        .arg("--plugins")
        .arg(&guests.examples)
        .arg("--db")
        .arg(&db)
        .args(["Order", "--id", "order-abc", "--input", input])
        .args(["--event", "start_payment"])
        .output()
        .with_context(|| format!("cannot run {}", wasmflow.display()))?;
    let result = String::from_utf8_lossy(&output.stdout);
    let children = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprint!("{children}");
        bail!("the demo workflow failed ({})", output.status);
    }
    println!("Order order-abc completed: {}", result.trim());
    // `run` reports each child on stderr: "child <type> <id> (run <id>) <status>: <result>".
    for line in children.lines() {
        match line.strip_prefix("child ") {
            Some(child) => println!("{child}"),
            None => eprintln!("{line}"),
        }
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    build_guests()?;
    xtask::layers::check(&workspace_root())?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace"]).args(extra))
}

fn bench(extra: &[String]) -> Result<()> {
    let guests = build_guests()?;
    run(cargo()
        .args([
            "bench",
            "--package",
            "wasmflow-cli",
            "--bench",
            "activations",
            "--",
        ])
        .args(extra)
        .env("WASMFLOW_PLUGINS", &guests.examples))
}
