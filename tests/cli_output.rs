//! What the client subcommands print for people, against a real `wasmflow
//! serve` running the examples: local times and durations in words (epoch
//! milliseconds only in `--json`), tables within 100 columns with long
//! values cut at `…` (whole in `--json`), `history --follow` and `status
//! --watch` streaming until the run ends, errors that say what to do next,
//! and client options only on the subcommands that take them.

use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::testbed::TestBed;

/// A `wasmflow serve` on a free loopback port, stopped when dropped.
struct Served {
    _bed: TestBed,
    child: Child,
    addr: String,
    token: Option<&'static str>,
}

impl Served {
    fn start(components: &[&str], token: Option<&'static str>) -> Served {
        let bed = TestBed::new(components);
        let mut serve = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(bed.plugins())
            .args(bed.host_db_args())
            .current_dir(bed.path())
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN");
        if let Some(t) = token {
            serve.args(["--token", t]);
        }
        let (child, addr) = crate::testbed::spawn_serve(serve);
        Served {
            _bed: bed,
            child,
            addr,
            token,
        }
    }

    /// A client subcommand against this host (its token, if it has one).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = wasmflow(args);
        cmd.env("WASMFLOW_ADDR", &self.addr);
        if let Some(t) = self.token {
            cmd.env("WASMFLOW_TOKEN", t);
        }
        cmd
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the client")
    }

    /// `args`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", err(&o));
        out(&o)
    }

    /// `args` in the background, its stdout lines sent as they come.
    fn stream(&self, args: &[&str]) -> (Child, Receiver<String>) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        (child, rx)
    }

    /// Wait until the run of `id` has `status`.
    fn until_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self.cli(&["status", id, "--json"]);
            if o.status.success() {
                let run: Value = serde_json::from_slice(&o.stdout).expect("JSON");
                if run["status"] == status {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{id} never {status}: {}",
                out(&o)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The `wasmflow` binary with `args`, none of the client's variables set.
fn wasmflow(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
    cmd.args(args)
        .env_remove("WASMFLOW_ADDR")
        .env_remove("WASMFLOW_TOKEN")
        .env_remove("WASMFLOW_PLUGINS")
        .env_remove("RUST_LOG");
    cmd
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `text` holds a local timestamp, `2026-12-07 14:31:05`.
fn has_timestamp(text: &str) -> bool {
    let pattern = b"dddd-dd-dd dd:dd:dd";
    text.as_bytes().windows(pattern.len()).any(|w| {
        w.iter().zip(pattern).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
    })
}

/// The longest run of decimal digits in `text` (an epoch time in
/// milliseconds has 13).
fn longest_number(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Every line of `text` fits 100 columns.
fn assert_fits(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{what}: a line of {} columns: {line}\n{text}",
            line.chars().count()
        );
    }
}

/// Lines from `rx` until one contains `needle`; all of them.
fn lines_until(rx: &Receiver<String>, needle: &str, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("{what}: `{needle}` never printed; printed {seen:#?}")
            }
        }
    }
}

/// The rest of `child`'s output once it exits (within 20 s), and its exit
/// code.
fn finish(mut child: Child, rx: &Receiver<String>, what: &str) -> (Vec<String>, Option<i32>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end with the run");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    (rest, code)
}

#[test]
fn times_are_local_and_tables_fit_100_columns_cutting_long_values() {
    let host = Served::start(&["hello", "order-payment"], None);
    let name = "n".repeat(400);
    let input = format!(r#"{{"name":"{name}"}}"#);
    host.ok(&[
        "start", "Greeter", "--id", "long", "--input", &input, "--wait",
    ]);
    host.ok(&[
        "start",
        "Order",
        "--id",
        "an-order-with-a-rather-long-workflow-id-to-make-the-columns-fight-for-room",
        "--input",
        r#"{"order_id":"o","amount":2.5}"#,
    ]);
    for args in [
        &["status", "long"][..],
        &["list"],
        &["history", "long"],
        &["tree", "long"],
        &["types"],
    ] {
        let text = host.ok(args);
        assert_fits(&format!("{args:?}"), &text);
        assert!(
            longest_number(&text) < 13,
            "{args:?}: no epoch milliseconds: {text}"
        );
        if args[0] != "types" {
            if args[0] != "tree" {
                assert!(has_timestamp(&text), "{args:?}: a local time: {text}");
            }
            assert!(
                text.contains('…'),
                "{args:?}: the long value is cut: {text}"
            );
            assert!(!text.contains(&name), "{args:?}: {text}");
        }
    }
    // `status`: times and how long the run took, in words.
    let status = host.ok(&["status", "long"]);
    assert!(
        status.contains("started") && status.contains("ended") && status.contains(" (after "),
        "{status}"
    );
    // `history`: each entry's time after the first, in words.
    let history = host.ok(&["history", "long"]);
    assert!(
        history.contains("run_started") && history.contains("+0"),
        "{history}"
    );

    // `--json` is the API's, whole: the input, and epoch milliseconds.
    let history: Value =
        serde_json::from_str(&host.ok(&["history", "long", "--json"])).expect("JSON");
    assert_eq!(history["events"][0]["input"]["name"], name.as_str());
    assert!(history["events"][0]["at_ms"].as_u64().is_some());
    let list: Value = serde_json::from_str(&host.ok(&["list", "--json"])).expect("JSON");
    let results: Vec<&Value> = list["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| &r["result"])
        .collect();
    assert!(
        results.contains(&&Value::String(format!("Hello, {name}"))),
        "{list}"
    );
}

#[test]
fn history_follow_streams_until_the_run_ends() {
    let host = Served::start(&["order-payment"], None);
    host.ok(&[
        "start",
        "Order",
        "--id",
        "followed",
        "--input",
        r#"{"order_id":"f","amount":1.5}"#,
    ]);
    host.until_status("followed", "waiting");
    let (child, rx) = host.stream(&["history", "followed", "--follow"]);
    // The history so far, before anything else happens.
    let before = lines_until(&rx, "run_started", "history --follow");
    assert!(
        before
            .iter()
            .any(|l| l.contains("event") && l.contains("details")),
        "a header first: {before:#?}"
    );
    std::thread::sleep(Duration::from_millis(400));
    host.ok(&["send", "followed", "start_payment"]);
    let (rest, code) = finish(child, &rx, "history --follow");
    let all: Vec<&String> = before.iter().chain(&rest).collect();
    assert_eq!(code, Some(0), "completed: exit 0; printed {all:#?}");
    let text = all
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert_fits("history --follow", &text);
    assert!(has_timestamp(&text), "{text}");
    // Each entry once, the new ones after the event was sent.
    assert_eq!(text.matches("run_started").count(), 1, "{text}");
    for kind in ["event_received", "child_started", "run_completed"] {
        assert!(
            rest.iter().any(|l| l.contains(kind)),
            "{kind} streamed after the send: {rest:#?}"
        );
    }
    let last = rest.last().expect("a last line");
    assert!(
        last.starts_with("run ") && last.contains(" completed after "),
        "it says the run ended: {last}"
    );

    // `--json`: one entry per line, the API's, and the same exit code.
    let (child, rx) = host.stream(&["history", "followed", "--follow", "--json"]);
    let (lines, code) = finish(child, &rx, "history --follow --json");
    assert_eq!(code, Some(0));
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            let entry: Value = serde_json::from_str(l).expect("a JSON line");
            assert!(entry["at_ms"].as_u64().is_some(), "{entry}");
            entry["type"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run_started"));
    assert_eq!(kinds.last().map(String::as_str), Some("run_completed"));
}

#[test]
fn status_watch_prints_each_change_until_the_run_ends() {
    let host = Served::start(&["order-payment", "failing"], None);
    host.ok(&[
        "start",
        "Order",
        "--id",
        "watched",
        "--input",
        r#"{"order_id":"w","amount":3.0}"#,
    ]);
    host.until_status("watched", "waiting");
    let (child, rx) = host.stream(&["status", "watched", "--watch"]);
    let before = lines_until(&rx, "waiting", "status --watch");
    std::thread::sleep(Duration::from_millis(400));
    host.ok(&["send", "watched", "start_payment"]);
    let (rest, code) = finish(child, &rx, "status --watch");
    let text = before
        .iter()
        .chain(&rest)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(code, Some(0), "{text}");
    assert_fits("status --watch", &text);
    assert!(has_timestamp(&text) && longest_number(&text) < 13, "{text}");
    assert!(
        rest.iter().any(|l| l.contains("completed")),
        "the new status is printed: {text}"
    );
    let last = rest.last().expect("a last line");
    assert!(last.contains(" completed after "), "{last}");

    // A run that fails: exit 1, saying how it ended.
    let o = host.cli(&[
        "start",
        "Checkout",
        "--id",
        "bad",
        "--input",
        r#"{"items":[]}"#,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = host.cli(&["status", "bad", "--watch"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains(" failed after ") && out(&o).contains("cannot charge an empty cart"),
        "{}",
        out(&o)
    );
}

#[test]
fn errors_say_what_to_do_next() {
    // Nothing listens on port 9.
    let o = wasmflow(&["status", "x", "--addr", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("cannot reach the host at http://127.0.0.1:9")
            && err(&o).contains("is `wasmflow serve` running? set WASMFLOW_ADDR or --addr"),
        "{}",
        err(&o)
    );
    let o = wasmflow(&["list", "--addr", "127.0.0.1:7420"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("e.g. http://127.0.0.1:7420"),
        "{}",
        err(&o)
    );
    // An invalid value lists the valid ones.
    let o = wasmflow(&["list", "--status", "done"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("running, waiting, completed, failed, cancelled, terminated"),
        "{}",
        err(&o)
    );
    let o = wasmflow(&["start", "Greeter", "--timeout", "soon"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("`soon` is not a duration"), "{}", err(&o));

    let host = Served::start(&["hello"], Some("s3cret"));
    let tokenless = |args: &[&str]| {
        wasmflow(args)
            .args(["--addr", &host.addr])
            .output()
            .expect("run")
    };
    let o = tokenless(&["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("Unauthorized") && err(&o).contains("set WASMFLOW_TOKEN or --token"),
        "{}",
        err(&o)
    );
    let o = tokenless(&["list", "--token", "wrong"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("is not the one the host was started with"),
        "{}",
        err(&o)
    );
    let o = host.cli(&["status", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("RunNotFound") && err(&o).contains("`wasmflow list`"),
        "{}",
        err(&o)
    );
    let o = host.cli(&["start", "Nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("`wasmflow types` lists"), "{}", err(&o));
}

#[test]
fn client_options_on_subcommands_that_do_not_take_them_are_usage_errors() {
    let bed = TestBed::new(&[]);
    let plugins = bed.plugins();
    let plugins = plugins.to_str().expect("a UTF-8 path");
    let cases: [(&[&str], &str); 6] = [
        (
            &["run", "Greeter", "--addr", "http://127.0.0.1:1"],
            "'--addr'",
        ),
        (&["run", "Greeter", "--json"], "'--json'"),
        (&["upgrade", "Greeter", "--token", "t"], "'--token'"),
        (&["serve", "--addr", "http://127.0.0.1:1"], "'--addr'"),
        (
            &[
                "types",
                "--plugins",
                plugins,
                "--addr",
                "http://127.0.0.1:1",
            ],
            "with `--plugins`",
        ),
        (&["types", "--db", "x.db"], "goes with `--plugins DIR`"),
    ];
    for (args, needle) in cases {
        let o = wasmflow(args)
            .current_dir(bed.path())
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
        assert!(err(&o).contains("Usage: wasmflow"), "{args:?}: {}", err(&o));
    }
    // A client option before the subcommand is not one of `wasmflow`'s.
    let o = wasmflow(&["--addr", "http://127.0.0.1:1", "list"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}
