//! The host as a service: the real `wasmflow serve` binary, driven through
//! its HTTP API and through the client subcommands.

use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::testbed::TestBed;
use serde_json::{Value, json};

/// A `wasmflow serve` on a free loopback port.
struct Served {
    _sandbox: TestBed,
    child: Child,
    addr: String,
    token: Option<String>,
}

impl Served {
    fn start(components: &[&str], token: Option<&str>) -> Served {
        let sandbox = TestBed::new(components);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(sandbox.plugins())
            .arg("--db")
            .arg(sandbox.db())
            .current_dir(sandbox.path())
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN")
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd.spawn().expect("start wasmflow serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("serve logs its address");
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split(';').next().unwrap().trim().to_owned();
            }
        };
        Served {
            _sandbox: sandbox,
            child,
            addr,
            token: token.map(str::to_owned),
        }
    }

    /// A client subcommand against this host.
    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        cmd.args(args)
            .args(["--addr", &self.addr])
            .env_remove("WASMFLOW_TOKEN")
            .env_remove("WASMFLOW_PLUGINS");
        if let Some(t) = &self.token {
            cmd.args(["--token", t]);
        }
        cmd.output().expect("run the client")
    }

    /// An HTTP request; the status and the JSON body.
    fn http(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.http_as(self.token.as_deref(), method, path, body)
    }

    fn http_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.addr);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = if method == "GET" {
            let mut req = agent.get(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        } else {
            let mut req = agent.post(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            match body {
                Some(b) => req.send_json(b),
                None => req.send_empty(),
            }
        };
        let mut response = response.expect("the host answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    fn wait_result(&self, id: &str) -> Value {
        let (status, body) = self.http(
            "GET",
            &format!("/v1/workflows/{id}/result?wait_ms=30000"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
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

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_client_drives_the_seed_example() {
    let host = Served::start(&["order-payment"], None);
    let o = host.cli(&[
        "start",
        "Order",
        "--id",
        "abc",
        "--input",
        r#"{"order_id":"abc","amount":42.5}"#,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).starts_with("abc "), "{}", out(&o));

    let o = host.cli(&["send", "abc", "start_payment"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("sent to run"));

    let o = host.cli(&["result", "abc", "--wait", "--timeout", "30s"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let txn = out(&o).trim().trim_matches('"').to_owned();
    assert!(txn.starts_with("txn-"), "{txn}");

    let o = host.cli(&["status", "abc"]);
    assert!(
        out(&o).contains("completed") && out(&o).contains("Order"),
        "{}",
        out(&o)
    );
    let o = host.cli(&["status", "abc", "--json"]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["status"], "completed");
    assert_eq!(status["result"], json!(txn));

    let o = host.cli(&["tree", "abc"]);
    let tree = out(&o);
    assert!(tree.contains("Order abc (run "), "{tree}");
    assert!(tree.contains("  Payment payment-abc (run "), "{tree}");

    let o = host.cli(&["list", "--type", "Payment", "--json"]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    assert_eq!(list["runs"][0]["workflow_id"], "payment-abc");
    let o = host.cli(&["list", "--status", "completed"]);
    assert!(out(&o).contains("payment-abc") && out(&o).contains("abc"));

    let o = host.cli(&["history", "abc"]);
    assert!(out(&o).contains("child_started") && out(&o).contains("run_completed"));

    let o = host.cli(&["query", "abc", "summary"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let summary: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(
        summary,
        json!({"order_id": "abc", "amount": 42.5, "txn_id": txn})
    );

    let o = host.cli(&["types"]);
    assert!(
        out(&o).contains("Order") && out(&o).contains("order-payment.wasm"),
        "{}",
        out(&o)
    );
}

#[test]
fn the_seed_example_has_exactly_this_history() {
    let host = Served::start(&["order-payment"], None);
    let (s, _) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Order", "id": "order-1", "input": {"order_id": "1", "amount": 9.5}})),
    );
    assert_eq!(s, 201);
    // The event goes to a waiting Order, so the history's order is fixed (an
    // event sent earlier is received during the start activation, as it may).
    wait_status(&host, "order-1", "waiting");
    let (s, _) = host.http(
        "POST",
        "/v1/workflows/order-1/events",
        Some(json!({"name": "start_payment"})),
    );
    assert_eq!(s, 202);
    let done = host.wait_result("order-1");
    let txn = done["result"].clone();

    let (_, order) = host.http("GET", "/v1/workflows/order-1/history", None);
    let events: Vec<Value> = order["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let m = e.as_object_mut().unwrap();
            for volatile in [
                "id",
                "at_ms",
                "started_ms",
                "duration_us",
                "version",
                "run_id",
                "source",
            ] {
                m.remove(volatile);
            }
            e
        })
        .collect();
    assert_eq!(
        events,
        vec![
            json!({"type": "run_started", "workflow_type": "Order", "workflow_id": "order-1",
                   "input": {"order_id": "1", "amount": 9.5}}),
            json!({"type": "activation_completed", "sequence": 0, "kind": "start", "handler": "order_start",
                   "directive": {"wait": {}}, "keys_changed": ["amount", "order_id"]}),
            json!({"type": "event_received", "name": "start_payment", "payload": null}),
            json!({"type": "event_dispatched", "name": "start_payment", "kind": "event"}),
            json!({"type": "activation_completed", "sequence": 2, "kind": "event", "handler": "start_payment",
                   "directive": {"wait": {}}, "keys_changed": []}),
            json!({"type": "child_started", "workflow_type": "Payment", "workflow_id": "payment-1"}),
            json!({"type": "event_received", "name": "payment_completed", "payload": {"txn_id": txn}}),
            json!({"type": "event_dispatched", "name": "payment_completed", "kind": "event"}),
            json!({"type": "activation_completed", "sequence": 4, "kind": "event", "handler": "payment_completed",
                   "directive": {"complete": txn}, "keys_changed": ["txn_id"]}),
            json!({"type": "run_completed", "result": txn}),
        ]
    );
    let (_, payment) = host.http("GET", "/v1/workflows/payment-1/history", None);
    let kinds: Vec<&str> = payment["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "activation_completed",
            "activation_completed",
            "activation_completed",
            "event_sent_to_parent",
            "run_completed"
        ]
    );
}

#[test]
fn errors_have_a_kind_a_message_and_the_right_status() {
    let host = Served::start(&["family", "order-payment"], None);
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        (
            "POST",
            "/v1/workflows",
            Some(json!({"type": "Nope"})),
            404,
            "UnknownWorkflowType",
        ),
        (
            "POST",
            "/v1/workflows",
            Some(json!({"type": "Order", "input": [1]})),
            400,
            "InvalidPayload",
        ),
        (
            "POST",
            "/v1/workflows",
            Some(json!({"type": "Order", "input": {"order_id": "x"}})),
            400,
            "InvalidPayload",
        ),
        (
            "POST",
            "/v1/workflows",
            Some(json!({"tipe": "Order"})),
            400,
            "InvalidPayload",
        ),
        ("GET", "/v1/workflows/nobody", None, 404, "RunNotFound"),
        (
            "GET",
            "/v1/workflows/nobody/history",
            None,
            404,
            "RunNotFound",
        ),
        (
            "POST",
            "/v1/workflows/nobody/events",
            Some(json!({"name": "x"})),
            404,
            "RunNotFound",
        ),
        (
            "GET",
            "/v1/workflows?status=sleeping",
            None,
            400,
            "InvalidPayload",
        ),
        ("GET", "/v1/nothing/here", None, 404, "NotFound"),
    ];
    for (method, path, body, status, kind) in cases {
        let (s, b) = host.http(method, path, body.clone());
        assert_eq!(s, status, "{method} {path} {body:?}: {b}");
        assert_eq!(b["kind"], kind, "{method} {path}: {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    }
    // A run to collide with.
    let start = json!({"type": "Collector", "id": "busy", "input": {"expected": 5}});
    assert_eq!(
        host.http("POST", "/v1/workflows", Some(start.clone())).0,
        201
    );
    let (s, b) = host.http("POST", "/v1/workflows", Some(start.clone()));
    assert_eq!(
        (s, b["kind"].as_str()),
        (409, Some("WorkflowAlreadyRunning")),
        "{b}"
    );
    let mut again = start.clone();
    again["on_conflict"] = json!("return_existing");
    let (s, b) = host.http("POST", "/v1/workflows", Some(again));
    assert_eq!(s, 200);
    assert_eq!(b["existing"], true);
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/busy/events",
        Some(json!({"name": "nope"})),
    );
    assert_eq!((s, b["kind"].as_str()), (400, Some("UnknownEvent")), "{b}");
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/busy/events",
        Some(json!({"name": "item", "payload": {"idd": 1}})),
    );
    assert_eq!(
        (s, b["kind"].as_str()),
        (400, Some("InvalidPayload")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("missing key `id`"));
    // Terminal runs answer 409.
    assert_eq!(
        host.http("POST", "/v1/workflows/busy/terminate", None).0,
        200
    );
    let (s, b) = host.http("POST", "/v1/workflows/busy/cancel", None);
    assert_eq!((s, b["kind"].as_str()), (409, Some("RunTerminal")), "{b}");
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/busy/events",
        Some(json!({"name": "item", "payload": {"id": "x"}})),
    );
    assert_eq!((s, b["kind"].as_str()), (409, Some("RunTerminal")), "{b}");

    // The CLI shows the same, with exit code 1.
    let o = host.cli(&["start", "Nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("UnknownWorkflowType") && err(&o).contains("HTTP 404"),
        "{}",
        err(&o)
    );
    let o = host.cli(&["status", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("RunNotFound"));
}

#[test]
fn a_finished_id_starts_anew_and_run_ids_address_older_runs() {
    let host = Served::start(&["hello"], None);
    let start = json!({"type": "Greeter", "id": "g", "input": {"name": "one"}});
    let (_, first) = host.http("POST", "/v1/workflows", Some(start));
    host.wait_result("g");
    let (s, second) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Greeter", "id": "g", "input": {"name": "two"}})),
    );
    assert_eq!(s, 201);
    assert_ne!(first["run_id"], second["run_id"]);
    assert_eq!(host.wait_result("g")["result"], "Hello, two");
    let (_, latest) = host.http("GET", "/v1/workflows/g", None);
    assert_eq!(latest["run_id"], second["run_id"]);
    let first_id = first["run_id"].as_str().unwrap();
    let (_, older) = host.http(
        "GET",
        &format!("/v1/workflows/g/result?run_id={first_id}"),
        None,
    );
    assert_eq!(older["result"], "Hello, one");
    let o = host.cli(&["history", "g", "--run", first_id, "--json"]);
    let history: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(history["run_id"], json!(first_id));
    assert_eq!(history["events"][0]["input"]["name"], "one");
}

#[test]
fn cancel_terminate_and_result_long_polls() {
    let host = Served::start(&["family"], None);
    // A waiting run is cancelled at once.
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Collector", "id": "w", "input": {"expected": 2}})),
    );
    wait_status(&host, "w", "waiting");
    let o = host.cli(&["cancel", "w", "--reason", "changed my mind"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("cancelled"), "{}", out(&o));
    let (_, r) = host.http("GET", "/v1/workflows/w/result", None);
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["error"]["message"], "changed my mind");

    // A run in an activation is cancelled when the activation ends.
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Inbox", "id": "b", "input": {"busy_ms": 1500}})),
    );
    wait_seq(&host, "b", 1);
    let (s, r) = host.http(
        "POST",
        "/v1/workflows/b/cancel",
        Some(json!({"reason": "stop"})),
    );
    assert_eq!(s, 200);
    assert_eq!(r["status"], "running");
    assert_eq!(r["cancel_requested"], "stop");
    let done = host.wait_result("b");
    assert_eq!(done["status"], "cancelled");
    let (_, h) = host.http("GET", "/v1/workflows/b/history", None);
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["cancel_requested", "activation_completed", "run_cancelled"]
    );

    // Terminate ends a busy run at once, abandoning its activation.
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Inbox", "id": "t", "input": {"busy_ms": 20000}})),
    );
    wait_seq(&host, "t", 1);
    let asked = Instant::now();
    let o = host.cli(&["terminate", "t", "--reason", "enough"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("terminated"));
    assert!(asked.elapsed() < Duration::from_secs(5));
    let (_, h) = host.http("GET", "/v1/workflows/t/history", None);
    let last = h["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "run_terminated");
    assert_eq!(last["reason"], "enough");

    // Long poll: 202 while running, 200 once ended.
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Timed", "id": "slow", "input": {"ms": 1500}})),
    );
    let (s, r) = host.http("GET", "/v1/workflows/slow/result?wait_ms=100", None);
    assert_eq!((s, r["status"].as_str()), (202, Some("waiting")), "{r}");
    let o = host.cli(&["result", "slow"]);
    assert_eq!(o.status.code(), Some(3), "not ended yet");
    let o = host.cli(&["result", "slow", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o).trim(), "\"timed out\"");
}

fn wait_status(host: &Served, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.http("GET", &format!("/v1/workflows/{id}"), None).1["status"] != status {
        assert!(Instant::now() < deadline, "{id} never {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_seq(host: &Served, id: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, h) = host.http("GET", &format!("/v1/workflows/{id}/history"), None);
        let done = h["events"].as_array().map_or(0, |e| {
            e.iter()
                .filter(|e| e["type"] == "activation_completed")
                .count()
        });
        if done as u64 >= seq {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never reached {seq}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn queries_read_live_and_finished_runs_and_change_nothing() {
    let host = Served::start(&["family"], None);
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Inbox", "id": "q"})),
    );
    host.http(
        "POST",
        "/v1/workflows/q/events",
        Some(json!({"name": "note", "payload": "one"})),
    );
    host.http(
        "POST",
        "/v1/workflows/q/events",
        Some(json!({"name": "note", "payload": "two"})),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, b) = host.http("POST", "/v1/workflows/q/queries/seen", None);
        assert_eq!(s, 200, "{b}");
        if b["result"].as_array().unwrap().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, b) = host.http(
        "POST",
        "/v1/workflows/q/queries/seen",
        Some(json!({"args": {"last": 1}})),
    );
    assert_eq!(b["result"], json!([{"note": "two"}]));
    // Read-only: a write fails the query and changes nothing.
    let (s, b) = host.http("POST", "/v1/workflows/q/queries/sneaky", None);
    assert_eq!((s, b["kind"].as_str()), (422, Some("NotSupported")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("read-only"));
    let (s, b) = host.http("POST", "/v1/workflows/q/queries/nope", None);
    assert_eq!((s, b["kind"].as_str()), (404, Some("UnknownQuery")), "{b}");
    // Finished runs answer too.
    host.http(
        "POST",
        "/v1/workflows/q/events",
        Some(json!({"name": "finish"})),
    );
    host.wait_result("q");
    let o = host.cli(&["query", "q", "seen", "--args", r#"{"last": 2}"#]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let seen: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(seen, json!([{"note": "one"}, {"note": "two"}]));
}

#[test]
fn every_documented_route_is_served() {
    let host = Served::start(&["hello"], None);
    let (s, doc) = host.http("GET", "/v1/openapi.json", None);
    assert_eq!(s, 200);
    let file: Value = serde_json::from_str(include_str!("../host/server/openapi.json")).unwrap();
    assert_eq!(
        doc, file,
        "the served document is the one in the repository"
    );
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Greeter", "id": "x", "input": {"name": "x"}})),
    );
    host.wait_result("x");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "x")
                .replace("{name}", "nope")
                .replace("{type}", "Greeter");
            let (s, b) = host.http(&method.to_uppercase(), &concrete, None);
            assert!(
                s != 405 && !(s == 404 && b["kind"] == "NotFound"),
                "{method} {path} is not served: {s} {b}"
            );
        }
    }
    let (s, metrics) = host.http("GET", "/metrics", None);
    assert_eq!(s, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"wasmflow_runs_started_total{workflow_type="Greeter"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"wasmflow_runs_ended_total{workflow_type="Greeter",status="completed"} 1"#)
    );
    assert!(metrics.contains("wasmflow_commit_duration_seconds_count"));
    assert!(metrics.contains("wasmflow_plugin_loads_total 1"));
    assert_eq!(
        host.http("GET", "/healthz", None),
        (200, json!({"status": "ok"}))
    );
    let (_, upgrade) = host.http("POST", "/v1/types/Greeter/upgrade", None);
    assert_eq!(upgrade["upgraded"], json!([]));
}

#[test]
fn a_token_guards_every_route() {
    let host = Served::start(&["hello"], Some("s3cret"));
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/v1/types"),
        ("POST", "/v1/workflows"),
        ("GET", "/v1/workflows/x"),
    ] {
        let (s, b) = host.http_as(None, method, path, None);
        assert_eq!(
            (s, b["kind"].as_str()),
            (401, Some("Unauthorized")),
            "{method} {path}"
        );
        let (s, _) = host.http_as(Some("wrong"), method, path, None);
        assert_eq!(s, 401, "{method} {path}");
    }
    assert_eq!(host.http("GET", "/healthz", None).0, 200);
    let o = host.cli(&["types"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let mut tokenless = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
    let o = tokenless
        .args(["types", "--addr", &host.addr])
        .env_remove("WASMFLOW_TOKEN")
        .env_remove("WASMFLOW_PLUGINS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("Unauthorized"));
}

#[test]
fn listening_off_loopback_needs_a_token() {
    let sandbox = TestBed::new(&["hello"]);
    let o = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["serve", "--listen", "0.0.0.0:0", "--plugins"])
        .arg(sandbox.plugins())
        .arg("--db")
        .arg(sandbox.db())
        .env_remove("WASMFLOW_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("invalid setting `listen`"), "{}", err(&o));
    assert!(!sandbox.db().exists(), "nothing was opened");
}

#[test]
fn an_unreachable_host_is_named() {
    let o = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["status", "x", "--addr", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("cannot reach the host at http://127.0.0.1:9"),
        "{}",
        err(&o)
    );
}

#[test]
fn a_second_host_on_the_same_database_is_refused_naming_the_holder() {
    let host = Served::start(&["hello"], None);
    let db = host._sandbox.db();
    let plugins = host._sandbox.plugins();
    let second: [&[&str]; 2] = [
        &["serve", "--listen", "127.0.0.1:0"],
        &["run", "Greeter", "--input", r#"{"name":"Ada"}"#],
    ];
    for args in second {
        let o = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(args)
            .arg("--plugins")
            .arg(&plugins)
            .arg("--db")
            .arg(&db)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} must be refused: {}", out(&o));
        let e = err(&o);
        assert!(e.contains(&db.display().to_string()), "names the file: {e}");
        assert!(e.contains("in use by another wasmflow host"), "{e}");
        assert!(
            e.contains(&format!("process {} ", host.child.id())),
            "names the holder: {e}"
        );
    }
    // The first host goes on serving.
    let (status, body) = host.http("GET", "/healthz", None);
    assert_eq!(status, 200, "{body}");
}
