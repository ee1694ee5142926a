//! The `wasmflow` binary: `run` and `types`, their output and exit codes.

use std::process::{Command, Output};

use wasmflow_host::RunStatus;

use crate::testbed::TestBed;

fn wasmflow(sandbox: &TestBed, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(args)
        .arg("--plugins")
        .arg(sandbox.plugins())
        .current_dir(sandbox.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run wasmflow")
}

fn run(sandbox: &TestBed, args: &[&str]) -> Output {
    let db = sandbox.host_db_args();
    let mut all = vec!["run"];
    all.extend(db.iter().map(|a| a.to_str().expect("a UTF-8 path")));
    all.extend_from_slice(args);
    wasmflow(sandbox, &all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_the_result_and_exits_zero() {
    let sandbox = TestBed::new(&["hello", "counter"]);
    let out = run(&sandbox, &["Greeter", "--input", r#"{"name":"Ada"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"Hello, Ada\"\n");

    let out = run(
        &sandbox,
        &["Counter", "--input", r#"{"n":25}"#, "--id", "count-25"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "25\n");
}

#[test]
fn a_failed_run_prints_kind_and_message_and_exits_one() {
    let sandbox = TestBed::new(&["failing", "probe"]);
    let out = run(&sandbox, &["Checkout", "--input", r#"{"items":[]}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("failed: Application: cannot charge an empty cart"),
        "{err}"
    );

    let out = run(&sandbox, &["Panicker", "--input", r#"{"message":"oh no"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Trap: ") && err.contains("boom: oh no"),
        "{err}"
    );
}

#[test]
fn rejected_requests_exit_two_naming_the_problem() {
    let sandbox = TestBed::new(&["hello", "family"]);
    let cases: [(&[&str], &str); 7] = [
        (
            &["Nope"],
            "UnknownWorkflowType: no plugin provides workflow type `Nope`",
        ),
        (
            &["Greeter", "--input", r#"{"name":"x"}"#, "--timeout", "0s"],
            "the workflow timeout must be 1 ms to",
        ),
        (
            &[
                "Greeter",
                "--input",
                r#"{"name":"x"}"#,
                "--timeout",
                "20000days",
            ],
            "the workflow timeout must be 1 ms to",
        ),
        (
            &["Greeter", "--input", r#"{"name":"x"}"#, "--id", "a\tb"],
            "invalid workflow id",
        ),
        (
            &[
                "Collector",
                "--input",
                r#"{"expected":1}"#,
                "--event",
                "it\u{202e}em",
            ],
            "invalid event name",
        ),
        (
            &["Greeter", "--input", "{}"],
            "InvalidPayload: start `start`: missing key `name`",
        ),
        (
            &["Greeter", "--input", "[]"],
            "must be a JSON object, found an array",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&sandbox, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["run", "Greeter", "--plugins", "/no/such/plugins"])
        .current_dir(sandbox.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("/no/such/plugins") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn types_lists_types_handlers_and_rejected_files() {
    let sandbox = TestBed::new(&["hello", "failing"]);
    let out = wasmflow(&sandbox, &["types"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("Greeter  (hello.wasm, version "),
        "{listing}"
    );
    assert!(
        listing.contains("  start  start(name: a string)"),
        "{listing}"
    );
    assert!(listing.contains("  step   greet()"), "{listing}");
    assert!(listing.contains("Checkout  (failing.wasm"), "{listing}");

    std::fs::write(sandbox.plugins().join("broken.wasm"), "nope").unwrap();
    let out = wasmflow(&sandbox, &["types", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Checkout", "Greeter"]);
    let rejected = &json["rejected"][0];
    assert!(rejected["file"].as_str().unwrap().ends_with("broken.wasm"));
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );
}

#[test]
fn run_delivers_events_in_order_and_shows_the_children() {
    let sandbox = TestBed::new(&["order-payment", "family"]);
    let out = run(
        &sandbox,
        &[
            "Order",
            "--input",
            r#"{"order_id":"abc","amount":42.5}"#,
            "--event",
            "start_payment",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let txn = result.as_str().unwrap();
    assert!(txn.starts_with("txn-"), "{txn}");
    let err = text(&out.stderr);
    assert!(
        err.contains("child Payment payment-abc (run ")
            && err.contains(&format!("completed: \"{txn}\"")),
        "{err}"
    );

    let out = run(
        &sandbox,
        &[
            "Inbox",
            "--event",
            r#"note="one""#,
            "--event",
            r#"pair={"a":1,"b":2}"#,
            "--event",
            r#"note={"text":"three"}"#,
            "--event",
            "finish",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[\"busy done\",{\"note\":\"one\"},{\"sum\":3},{\"note\":\"three\"}]\n"
    );
}

#[test]
fn run_on_a_run_parked_with_nothing_left_says_what_it_waits_for_and_exits_four() {
    let sandbox = TestBed::new(&["family"]);
    let out = run(&sandbox, &["Inbox", "--event", r#"note="one""#]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(out.stdout.is_empty(), "no result: {}", text(&out.stdout));
    assert!(
        err.contains("is waiting for one of the events")
            && ["`note`", "`pair`", "`finish`"]
                .iter()
                .all(|e| err.contains(e))
            && err.contains("nothing is left to send one"),
        "{err}"
    );

    // A run waiting with a timer is waited for; the wait is reported.
    let out = run(&sandbox, &["Timed", "--input", r#"{"ms": 1500}"#]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(text(&out.stdout), "\"timed out\"\n");
    assert!(
        err.contains("waits for event `ping`; next timer: run "),
        "{err}"
    );
}

#[test]
fn guest_log_lines_show_while_the_step_runs() {
    use std::io::BufRead;
    let sandbox = TestBed::new(&["family"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["run", "Chatty", "--input", r#"{"ms": 4000}"#])
        .args(sandbox.host_db_args())
        .arg("--plugins")
        .arg(sandbox.plugins())
        .current_dir(sandbox.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start wasmflow run");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("working for 4000 ms"));
    let seen = std::time::Instant::now();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(line.is_some(), "the line is logged: {rest:?}");
    // The step is busy for 4 s after the line: it shows long before the end.
    assert!(
        seen.elapsed() >= std::time::Duration::from_millis(3000),
        "the line shows while the step still runs ({:?} before the end)",
        seen.elapsed()
    );
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("done working")), "{rest:?}");
}

#[test]
fn an_event_without_a_handler_is_named_and_nothing_starts() {
    let sandbox = TestBed::new(&["order-payment"]);
    let out = run(
        &sandbox,
        &[
            "Order",
            "--input",
            r#"{"order_id":"x","amount":1}"#,
            "--id",
            "never-started",
            "--event",
            "start_payment",
            "--event",
            "refund={}",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("UnknownEvent") && err.contains("no handler for event `refund`"),
        "{err}"
    );
    // Nothing was stored.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = sandbox.host().await;
        assert!(matches!(
            host.latest_run("never-started").await,
            Err(wasmflow_host::Error::RunNotFound(_))
        ));
        host.shutdown().await;
    });
}

#[test]
fn limits_out_of_range_are_refused_at_start_up_naming_the_setting() {
    let sandbox = TestBed::new(&["hello"]);
    for (flag, value, setting) in [
        ("--memory-limit-mib", "0", "memory_limit"),
        ("--max-inbox", "0", "max_inbox_len"),
        (
            "--plugin-memory-limit",
            "hello.wasm=4096",
            "plugin_memory_limit",
        ),
    ] {
        let out = run(
            &sandbox,
            &["Greeter", "--input", r#"{"name":"x"}"#, flag, value],
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("invalid setting `{setting}`")),
            "{flag}: {err}"
        );
    }
    let out = run(
        &sandbox,
        &["Greeter", "--plugin-memory-limit", "no-equals-sign"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not FILE=MIB"));
}

#[test]
fn serve_picks_up_plugins_and_stops_on_sigterm() {
    let sandbox = TestBed::new(&[]);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["serve", "--plugins"])
        .arg(sandbox.plugins())
        .args(sandbox.host_db_args())
        .current_dir(sandbox.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasmflow serve");
    let stderr = serve.stderr.take().unwrap();
    let lines = std::sync::mpsc::channel();
    let (tx, rx) = lines;
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
                if line.contains(needle) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("`{needle}` never logged; saw {seen:#?}");
    };
    wait_for("serving");
    std::fs::copy(
        crate::testbed::component("hello"),
        sandbox.plugins().join("hello.wasm"),
    )
    .unwrap();
    let loaded = wait_for("workflow type loaded");
    assert!(
        loaded.contains("Greeter") && loaded.contains("hello.wasm") && loaded.contains("version"),
        "{loaded}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = serve.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn types_shows_in_flight_versions_and_upgrade_moves_runs() {
    let sandbox = TestBed::new(&[]);
    std::fs::copy(
        crate::testbed::component("versioned-a"),
        sandbox.plugins().join("versioned.wasm"),
    )
    .unwrap();
    // Two runs left waiting by a host that stopped.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let host = sandbox.host().await;
        for _ in 0..2 {
            let run = host
                .start(
                    "Versioned",
                    r#"{"wait_ms": 600000}"#,
                    wasmflow_host::StartOptions::new(),
                )
                .await
                .unwrap();
            crate::testbed::until(&host, run.run_id, std::time::Duration::from_secs(30), |r| {
                r.status == wasmflow_host::RunStatus::Waiting
            })
            .await;
        }
        host.shutdown().await;
    });
    std::fs::copy(
        crate::testbed::component("versioned-b"),
        sandbox.plugins().join("versioned.wasm"),
    )
    .unwrap();
    let db = sandbox.db_arg();
    let db = db.to_str().expect("a UTF-8 path");
    let out = wasmflow(&sandbox, &["types", "--db", db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("in flight: 2 run(s) on version "),
        "{listing}"
    );
    assert!(
        !listing.contains("(current)"),
        "the runs are on the old version: {listing}"
    );

    let out = wasmflow(&sandbox, &["upgrade", "Versioned", "--db", db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("2 run(s) moved to version"), "{report}");
    assert_eq!(report.matches("  upgraded  ").count(), 2, "{report}");

    let out = wasmflow(&sandbox, &["types", "--db", db, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versioned = &json["types"][0];
    assert_eq!(versioned["in_flight"][0]["version"], versioned["version"]);
    assert_eq!(versioned["in_flight"][0]["runs"], 2);
}

/// The config file's `[database]` names the database when `--db` does not;
/// `--db` wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_names_the_database_and_the_flag_wins() {
    let sandbox = TestBed::new(&["counter"]);
    let config = sandbox.path().join("wasmflow.toml");
    let url = sandbox.db_arg();
    let url = url.to_str().expect("a UTF-8 database");
    std::fs::write(
        &config,
        format!("[database]\nurl = {url:?}\nlease_timeout_ms = 2000\npool_size = 4\n"),
    )
    .expect("write the config file");
    let config = config.to_str().expect("a UTF-8 path");
    // Elsewhere than the database, so that the default would not be it.
    let cwd = sandbox.path().join("cwd");
    std::fs::create_dir(&cwd).expect("a working directory");
    let counter = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--config",
            config,
            "Counter",
            "--input",
            r#"{"n":3}"#,
        ];
        args.extend_from_slice(&["--id", id]);
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(&args)
            .arg("--plugins")
            .arg(sandbox.plugins())
            .current_dir(&cwd)
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_DB")
            .env_remove("WASMFLOW_CONFIG")
            .output()
            .expect("run wasmflow");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "3\n");
    };
    counter("from-config", &[]);
    let elsewhere = sandbox.path().join("elsewhere.db");
    counter(
        "from-flag",
        &["--db", elsewhere.to_str().expect("a UTF-8 path")],
    );
    assert!(elsewhere.exists(), "--db wins over the config file");
    assert!(
        !cwd.join("wasmflow.db").exists(),
        "the default database is not opened when the config file names one"
    );

    let host = sandbox.host().await;
    let run = host.latest_run("from-config").await.expect("the run");
    assert_eq!(run.status, RunStatus::Completed);
    assert!(host.latest_run("from-flag").await.is_err(), "not here");

    let bad = sandbox.path().join("bad.toml");
    std::fs::write(&bad, "[database]\npool_size = 0\n").expect("write");
    let out = wasmflow(
        &sandbox,
        &["run", "--config", bad.to_str().unwrap(), "Counter"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("database.pool_size"),
        "{}",
        text(&out.stderr)
    );
}

/// `wasmflow new`: the crate's files, and the inputs it refuses without
/// touching what is there. (The crate building, testing and deploying is
/// the README check's, `cargo xtask readme`.)
#[test]
fn new_writes_a_crate_and_refuses_bad_names_and_full_directories() {
    let dir = tempfile::tempdir().unwrap();
    let new = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .arg("new")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = new(&["order-check"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for command in [
        "cargo build --target wasm32-wasip2 --release",
        "cargo test",
        "wasmflow deploy target/wasm32-wasip2/release/order_check.wasm",
    ] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let crate_dir = dir.path().join("order-check");
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains(r#"#[wasmflow::workflow(name = "OrderCheck")]"#),
        "{lib}"
    );
    assert!(lib.contains("mod order_check {"), "{lib}");
    assert!(lib.contains("wasmflow::export!(order_check);"), "{lib}");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let checkout = std::fs::canonicalize(xtask::workspace_root()).unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}/guest-sdk\"", checkout.display())),
        "{manifest}"
    );
    assert!(crate_dir.join("tests/workflow.rs").is_file());

    // Again: the directory is not empty; nothing in it changes.
    std::fs::write(crate_dir.join("src/lib.rs"), "// mine").unwrap();
    let out = new(&["order-check"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exists and is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap(),
        "// mine"
    );

    for bad in ["1st", "has space", "a/b"] {
        let out = new(&[bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid crate name"), "{bad}: {stderr}");
        assert!(!dir.path().join(bad).exists(), "{bad}");
    }
    let out = new(&["other", "--wasmflow", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a wasmflow checkout"),
        "{out:?}"
    );
    assert!(!dir.path().join("other").exists());
}
