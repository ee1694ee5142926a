//! `cargo xtask <command>`: the project's build chores.
//!
//! - `guests`: build the example and test guest components (`wasm32-wasip2`).
//! - `demo`:   build the examples and the host, then run the seed's
//!   Order/Payment example on a fresh embedded SQLite database and print the
//!   Order's result and its Payment child's.
//! - `test`:   build the guests, then the layering check, `cargo fmt
//!   --check`, clippy's lints (warnings are errors) and every test of the
//!   workspace, with a throw-away PostgreSQL server on loopback for the
//!   PostgreSQL backend's tests (`xtask::postgres`); the integration suite
//!   runs twice, on SQLite and on PostgreSQL.
//! - `layers`: check the architecture's dependency rules (see
//!   `xtask::layers`).
//! - `bench`:  build the guests and run the benchmark (release build).
//! - `postgres`: start a throw-away PostgreSQL server on loopback and print
//!   its URL, for running PostgreSQL tests by hand
//!   (`WASMFLOW_TEST_POSTGRES=<url> cargo test ...`); Enter stops it.
//! - `readme`: build the `wasmflow` binary, then run README's "Writing a
//!   workflow" commands and files in a fresh temp dir against it
//!   (`xtask::readme`); `test` runs the same check.
//! - `fuzz [TARGET] [--seconds N]`: coverage-guided fuzzing of the host's
//!   doors with libFuzzer (`xtask::fuzz`).

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
        Some("postgres") => postgres(),
        Some("fuzz") => xtask::fuzz::fuzz(&args[1..]),
        Some("readme") => readme(),
        _ => {
            eprintln!(
                "usage: cargo xtask <guests | demo | test | bench | layers | postgres | fuzz | readme>\n\n\
                 guests  build the example and test guest components\n\
                 demo    build everything and run the demo workflow\n\
                 test    fmt check, clippy and the whole test suite\n\
                 bench   the benchmark (prints the figures)\n\
                 layers  check the crates' dependency rules\n\
                 postgres  start a throw-away PostgreSQL server for the tests\n\
                 fuzz    [TARGET] [--seconds N]: libFuzzer on the host's doors\n\
                 readme  run README's \"Writing a workflow\" steps in a temp dir"
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
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "wasmflow-cli",
        "--package",
        "payments-service",
    ]))?;
    let root = workspace_root();
    let release = root.join("target").join("release");
    let dir = root.join("target").join("demo");
    std::fs::create_dir_all(&dir).context("cannot create target/demo")?;
    let db = dir.join("wasmflow.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    // The payments service charge_card calls, on loopback, with a token the
    // host substitutes into the request (the plugin never sees it).
    let token = format!("demo-{}", std::process::id());
    let payments = Payments::start(&release.join("payments-service"), &token)?;
    let config = dir.join("wasmflow.toml");
    std::fs::write(
        &config,
        format!(
            "# The demo's grants: order-payment.wasm may POST to the payments service,\n\
             # with the payments_token secret substituted into its Authorization header.\n\
             [secrets]\n\
             payments_token = {{ env = \"PAYMENTS_TOKEN\" }}\n\n\
             [[grants]]\n\
             plugin = \"order-payment.wasm\"\n\
             [[grants.http]]\n\
             url = \"{url}\"\n\
             methods = [\"POST\"]\n\
             secrets = [\"payments_token\"]\n",
            url = payments.url
        ),
    )
    .context("cannot write the demo's config file")?;

    let wasmflow = release.join("wasmflow");
    let input = format!(
        r#"{{"order_id":"abc","amount":42.5,"payments_url":"{}"}}"#,
        payments.url
    );
    println!(
        "$ wasmflow run --plugins {} --db {} --config {} Order --id order-abc --input '{input}' --event start_payment",
        guests.examples.display(),
        db.display(),
        config.display(),
    );
    let output = Command::new(&wasmflow)
        .arg("run")
        .arg("--plugins")
        .arg(&guests.examples)
        .arg("--db")
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .env("PAYMENTS_TOKEN", &token)
        .args(["Order", "--id", "order-abc", "--input", &input])
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
    let stats: serde_json::Value = ureq::get(format!("{}/stats", payments.url))
        .call()
        .context("cannot ask the payments service for its stats")?
        .body_mut()
        .read_json()
        .context("the payments service's stats are not JSON")?;
    println!(
        "payments service: {} charge(s) applied, {} request(s) received",
        stats["charges"], stats["requests"]
    );
    Ok(())
}

/// The demo's payments service, stopped when dropped.
struct Payments {
    child: std::process::Child,
    url: String,
}

impl Payments {
    fn start(binary: &std::path::Path, token: &str) -> Result<Payments> {
        use std::io::BufRead;
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--token", token])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .context("the payments service did not start")?;
        let url = line.trim().strip_prefix("listening on ").map(str::to_owned);
        match url {
            Some(url) => Ok(Payments { child, url }),
            None => {
                let _ = child.kill();
                bail!("the payments service printed `{}`", line.trim())
            }
        }
    }
}

impl Drop for Payments {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Build the `wasmflow` binary (target/debug), then check README's
/// "Writing a workflow" against it.
fn readme() -> Result<()> {
    run(cargo().args([
        "build",
        "--quiet",
        "--package",
        "wasmflow-cli",
        "--bin",
        "wasmflow",
    ]))?;
    xtask::readme::check()
}

fn postgres() -> Result<()> {
    let cluster = xtask::postgres::Cluster::start()?;
    println!("{}={}", xtask::postgres::URL_ENV, cluster.url());
    println!("(press Enter to stop the server and delete its data)");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(cluster);
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    build_guests()?;
    xtask::ensure_browser()?;
    xtask::layers::check(&workspace_root())?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    // Clippy's driver compiles the workspace's crates for the tests and lints
    // them on the way (warnings are errors): the same lints as `cargo clippy
    // --workspace --all-targets -- -D warnings`, which would compile every
    // dependency a second time (as `cargo check`) for them.
    xtask::lint_guests()?;
    let lints = clippy_env()?;
    let lint = |cmd: &mut Command| {
        for (key, value) in &lints {
            cmd.env(key, value);
        }
    };
    let mut build = cargo();
    build.args(["test", "--workspace", "--all-targets", "--no-run"]);
    lint(&mut build);
    run(&mut build).context("a lint failed or a test target does not build")?;
    // That build made target/debug/wasmflow: README's "Writing a workflow",
    // copy-pasted into a temp dir, runs against it.
    xtask::readme::check()?;
    // The PostgreSQL backend's tests run against a throw-away server on
    // loopback, stopped (and its data deleted) when the tests end.
    let postgres = match std::env::var(xtask::postgres::URL_ENV) {
        Ok(url) => {
            eprintln!("xtask: PostgreSQL tests use {url}");
            None
        }
        Err(_) => Some(xtask::postgres::Cluster::start()?),
    };
    let with_postgres = |cmd: &mut Command| {
        if let Some(cluster) = &postgres {
            cmd.env(xtask::postgres::URL_ENV, cluster.url());
        }
    };
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(extra);
    lint(&mut test);
    with_postgres(&mut test);
    // The compile-fail test compares rustc's own messages (clippy's driver
    // words them differently), so it runs below without the driver.
    test.args(["--", "--skip", "mistakes_do_not_compile"]);
    run(&mut test)?;
    // `--workspace` keeps the first pass's features: the dependencies are
    // not compiled again (only the workspace's crates, without the driver).
    run(cargo().args(["test", "--workspace", "--test", "compile_fail"]))?;
    // The integration suite again on PostgreSQL: every in-process host and
    // `serve` of the tests on a schema of its own (tests/testbed).
    // `--workspace`, like the first pass: the same features, so the same
    // build (selecting one package would resolve features anew and compile
    // the dependencies a second time).
    let mut again = cargo();
    again
        .args(["test", "--workspace", "--test", "integration"])
        .env("WASMFLOW_TEST_BACKEND", "postgres");
    lint(&mut again);
    with_postgres(&mut again);
    again.args(["--", "--skip", "sqlite_", "--skip", "hosts::"]);
    run(&mut again).context("the integration suite on PostgreSQL failed")
}

/// The environment under which cargo compiles the workspace's crates with
/// clippy's driver and `-D warnings` (what `cargo clippy` sets).
fn clippy_env() -> Result<Vec<(&'static str, std::ffi::OsString)>> {
    let driver = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().into())
        .unwrap_or_else(|| std::ffi::OsString::from("clippy-driver"));
    let version = Command::new(&driver).arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        bail!(
            "clippy is not installed ({} does not run): `rustup component add clippy`",
            driver.to_string_lossy()
        );
    }
    Ok(vec![
        ("RUSTC_WORKSPACE_WRAPPER", driver),
        (
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".into(),
        ),
    ])
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
        .env("WASMFLOW_PLUGINS", &guests.examples)
        .env("WASMFLOW_TEST_PLUGINS", &guests.tests))
}
