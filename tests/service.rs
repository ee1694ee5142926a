//! The host as a service: the real `wasmflow serve` binary, driven through
//! its HTTP API and through the client subcommands.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output};
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
        Self::start_with(components, token, &[])
    }

    /// [`Served::start`] with more `serve` flags.
    fn start_with(components: &[&str], token: Option<&str>, flags: &[&str]) -> Served {
        let sandbox = TestBed::new(components);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(sandbox.plugins())
            .args(sandbox.host_db_args())
            .current_dir(sandbox.path())
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.args(flags);
        let (child, addr) = crate::testbed::spawn_serve(cmd);
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

    /// A connection to the host's port, with a bound on every read.
    fn connect(&self) -> TcpStream {
        let addr = self.addr.trim_start_matches("http://");
        let stream = TcpStream::connect(addr).expect("connect to the host");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Send `request` as is on a new connection; what comes back until the
    /// host closes it.
    fn raw(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        read_to_close(&mut stream).expect("the host answers and closes")
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

/// Everything `stream` receives until the peer closes it (`Err` if the
/// read timeout passes first). A host that closes with part of a request
/// unread resets the connection after its answer: the answer counts.
fn read_to_close(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !received.is_empty() => {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// The status and the JSON body of a raw HTTP answer.
fn parse_answer(answer: &str) -> (u16, Value) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, body)
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
                   "directive": {"wait": {}}, "keys_changed": ["amount", "order_id", "payments_url"]}),
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
            "task_attempted",
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

    // A start that waits: the outcome in the start's own answer.
    let (s, r) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Timed", "id": "quick", "input": {"ms": 50}, "wait_ms": 30000})),
    );
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["outcome"]["status"], "completed", "{r}");
    assert_eq!(r["outcome"]["result"], "timed out", "{r}");
    assert_eq!(r["outcome"]["run_id"], r["run_id"], "{r}");
    // A wait that runs out answers with the run as it is.
    let (s, r) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Timed", "id": "slower", "input": {"ms": 1500}, "wait_ms": 100})),
    );
    assert_eq!(
        (s, r["outcome"]["status"].as_str()),
        (201, Some("waiting")),
        "{r}"
    );
    assert!(r["outcome"]["result"].is_null(), "{r}");
    // A bad wait is refused before anything is stored.
    for bad in [json!(0), json!(60_001), json!("1s")] {
        let (s, r) = host.http(
            "POST",
            "/v1/workflows",
            Some(json!({"type": "Timed", "id": "never", "input": {"ms": 1}, "wait_ms": bad})),
        );
        assert_eq!(
            (s, r["kind"].as_str()),
            (400, Some("InvalidPayload")),
            "{bad}: {r}"
        );
        assert!(r["message"].as_str().unwrap().contains("wait_ms"), "{r}");
    }
    let (s, _) = host.http("GET", "/v1/workflows/never", None);
    assert_eq!(s, 404, "no run was stored");
    // `start --wait` prints the outcome.
    let o = host.cli(&[
        "start",
        "Timed",
        "--id",
        "cli-quick",
        "--input",
        r#"{"ms": 20}"#,
        "--wait",
    ]);
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
        // Compared in constant time, whole: a prefix, an extension or
        // another case of the token is as wrong as anything else.
        for wrong in ["wrong", "s3cre", "s3cret1", "S3CRET", ""] {
            let (s, _) = host.http_as(Some(wrong), method, path, None);
            assert_eq!(s, 401, "{method} {path} with {wrong:?}");
        }
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
fn sqlite_a_second_host_on_the_same_database_is_refused_naming_the_holder() {
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

/// Every answer the API or its router gives on its own is `{kind,
/// message}` with the right status: wrong methods, malformed query strings,
/// bodies and request targets over the limits, durations out of range,
/// limits out of range, ids and event names outside the charset.
#[test]
fn every_error_of_the_edge_is_kind_and_message() {
    let host = Served::start_with(&["family", "hello"], None, &["--max-request-bytes", "1024"]);
    let expect = |(status, body): (u16, Value), want: u16, kind: &str, needle: &str, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["kind"], kind, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: {message:?} names {needle:?}"
        );
    };
    // Wrong methods: 405, naming the methods the route has.
    for (method, path, allowed) in [
        ("DELETE", "/v1/workflows", "POST, GET"),
        ("PUT", "/v1/workflows/x/events", "POST"),
        ("POST", "/healthz", "GET"),
    ] {
        let answer = host.raw(
            format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        expect(
            parse_answer(&answer),
            405,
            "MethodNotAllowed",
            allowed,
            &format!("{method} {path}"),
        );
    }
    // Malformed query strings and limits out of range: 400.
    for (path, needle) in [
        ("/v1/workflows?limit=abc", "limit"),
        ("/v1/workflows?limit=-1", "limit"),
        ("/v1/workflows?limit=99999999999999999999999", "limit"),
        ("/v1/workflows?limit=0", "`limit` must be 1 to 1000"),
        ("/v1/workflows?limit=1001", "`limit` must be 1 to 1000"),
        ("/v1/workflows?cursor=nonsense", "`cursor`"),
        ("/v1/workflows/x/result?wait_ms=abc", "wait_ms"),
        (
            "/v1/workflows/x/result?wait_ms=0",
            "`wait_ms` must be 1 to 60000",
        ),
        (
            "/v1/workflows/x/result?wait_ms=60001",
            "`wait_ms` must be 1 to 60000",
        ),
        (
            "/v1/workflows/x/result?wait_ms=18446744073709551615",
            "`wait_ms` must be 1 to 60000",
        ),
        ("/v1/workflows/x/history?run_id=nope", "`run_id`"),
    ] {
        expect(
            host.http("GET", path, None),
            400,
            "InvalidPayload",
            needle,
            path,
        );
    }
    // Workflow timeouts: 0 and absurd values name the field.
    for ms in [0, u64::MAX, 315_360_000_001] {
        let start = json!({"type": "Greeter", "input": {"name": "x"}, "timeout_ms": ms});
        expect(
            host.http("POST", "/v1/workflows", Some(start)),
            400,
            "InvalidPayload",
            "`timeout_ms` must be 1 to",
            &format!("timeout_ms {ms}"),
        );
    }
    assert_eq!(
        host.http("GET", "/v1/workflows", None).1["runs"],
        json!([]),
        "nothing was started"
    );
    // Bodies over `max_request_bytes`: declared or streamed, 413.
    let big = format!(
        r#"{{"type": "Greeter", "input": {{"name": "{}"}}}}"#,
        "x".repeat(2000)
    );
    let answer = host.raw(
        format!(
            "POST /v1/workflows HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    );
    expect(
        parse_answer(&answer),
        413,
        "PayloadTooLarge",
        "1024 bytes",
        "declared length",
    );
    let answer = host.raw(
        format!("POST /v1/workflows HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n", big.len())
            .as_bytes(),
    );
    expect(
        parse_answer(&answer),
        413,
        "PayloadTooLarge",
        "1024 bytes",
        "chunked body",
    );
    // Request targets over 8 KiB: 414.
    let long = format!("/v1/workflows/{}", "x".repeat(9000));
    expect(
        host.http("GET", &long, None),
        414,
        "UriTooLong",
        "8192",
        "a long URI",
    );
    // Workflow ids and event names: no control or bidi characters, at
    // most 255 bytes; 400 naming which.
    let long_id = "x".repeat(256);
    for id in [
        "",
        "nul\u{0}",
        "line\nbreak",
        "tab\t",
        "del\u{7f}",
        "c1\u{85}",
        "rtl\u{202e}",
        "iso\u{2066}",
        long_id.as_str(),
    ] {
        let start = json!({"type": "Greeter", "id": id, "input": {"name": "x"}});
        expect(
            host.http("POST", "/v1/workflows", Some(start)),
            400,
            "InvalidPayload",
            "invalid workflow id",
            &format!("id {id:?}"),
        );
    }
    assert_eq!(
        host.http("GET", "/v1/workflows", None).1["runs"],
        json!([]),
        "nothing was started"
    );
    let fine = "x".repeat(255);
    for id in ["with space", "ünïcödé-✓", fine.as_str()] {
        let start = json!({"type": "Greeter", "id": id, "input": {"name": "x"}});
        let (s, b) = host.http("POST", "/v1/workflows", Some(start));
        assert_eq!(s, 201, "id {id:?}: {b}");
    }
    host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Collector", "id": "c", "input": {"expected": 1}})),
    );
    wait_status(&host, "c", "waiting");
    let history_len = |host: &Served| {
        let (_, h) = host.http("GET", "/v1/workflows/c/history", None);
        h["events"].as_array().map_or(0, Vec::len)
    };
    let before = history_len(&host);
    for name in ["item\u{0}", "it\u{202d}em", "", long_id.as_str()] {
        expect(
            host.http(
                "POST",
                "/v1/workflows/c/events",
                Some(json!({"name": name, "payload": {"id": "a"}})),
            ),
            400,
            "InvalidPayload",
            "invalid event name",
            &format!("event {name:?}"),
        );
    }
    assert_eq!(history_len(&host), before, "no event was stored");
    assert_eq!(
        host.http("GET", "/v1/workflows/c", None).1["status"],
        "waiting"
    );
}

/// A client that sends half a request head, or half a body, is cut off
/// after the timeout; and connections beyond `--max-connections` wait
/// until one closes.
#[test]
fn slow_clients_are_cut_off_and_connections_are_limited() {
    let host = Served::start_with(
        &["hello"],
        None,
        &["--header-timeout", "500ms", "--body-timeout", "500ms"],
    );
    // Half a head: closed without an answer.
    let mut stalled = host.connect();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let began = Instant::now();
    let got = read_to_close(&mut stalled).expect("the host closes a stalled head");
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "not before the timeout"
    );
    assert!(!got.contains(" 200 "), "{got}");
    // A head with half its body: 408, then closed.
    let answer =
        host.raw(b"POST /v1/workflows HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"type\"");
    let (status, body) = parse_answer(&answer);
    assert_eq!(
        (status, body["kind"].as_str()),
        (408, Some("RequestTimeout")),
        "{answer}"
    );
    assert!(body["message"].as_str().unwrap().contains("body_timeout"));
    // An idle kept-alive connection is closed too.
    let mut idle = host.connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut idle).expect("an idle connection is closed");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    drop(host);

    // One connection at a time: a second waits while the first holds it.
    let host = Served::start_with(
        &["hello"],
        None,
        &["--max-connections", "1", "--header-timeout", "1s"],
    );
    let mut first = host.connect();
    first.write_all(b"GET /hea").unwrap();
    // Accepted in the order they connected: the first holds the only
    // slot.
    let mut second = host.connect();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = second.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the second connection is not served while the first holds the slot: {early:?}"
    );
    let closed = read_to_close(&mut first).expect("the first is closed after its header timeout");
    assert!(!closed.contains(" 200 "), "{closed}");
    second
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let rest = read_to_close(&mut second).expect("then the second is served");
    let answer = format!(
        "{}{rest}",
        String::from_utf8_lossy(&byte[..early.map_or(0, |n| n)])
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `GET /v1/workflows` pages with a cursor: every run once, newest first;
/// no cursor is the first page; the CLI follows `next` with `--cursor` or
/// `--all`.
#[test]
fn list_pages_with_a_cursor() {
    let host = Served::start(&["hello"], None);
    for i in 0..7 {
        let start = json!({"type": "Greeter", "id": format!("g{i}"), "input": {"name": "x"}});
        assert_eq!(host.http("POST", "/v1/workflows", Some(start)).0, 201);
    }
    let (s, all) = host.http("GET", "/v1/workflows?limit=1000", None);
    assert_eq!(s, 200);
    assert_eq!(all["next"], Value::Null, "one page holds them all");
    let run_ids = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = run_ids(&all);
    assert_eq!(expected.len(), 7);
    let (_, first) = host.http("GET", "/v1/workflows", None);
    assert_eq!(
        run_ids(&first),
        expected,
        "no cursor, no limit: the first page of 100"
    );
    let mut seen = Vec::new();
    let mut path = "/v1/workflows?limit=3".to_owned();
    for _ in 0..7 {
        let (s, page) = host.http("GET", &path, None);
        assert_eq!(s, 200, "{page}");
        assert!(page["runs"].as_array().unwrap().len() <= 3);
        seen.extend(run_ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/workflows?limit=3&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, expected, "pages visit every run once, newest first");

    // The CLI: one page and its cursor, a cursor, every page.
    let o = host.cli(&["list", "--limit", "3", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run_ids(&page), expected[..3]);
    let next = page["next"].as_str().expect("a next page").to_owned();
    let o = host.cli(&["list", "--limit", "3"]);
    assert!(err(&o).contains(&format!("--cursor {next}")), "{}", err(&o));
    let o = host.cli(&["list", "--limit", "3", "--cursor", &next, "--json"]);
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run_ids(&page), expected[3..6]);
    let o = host.cli(&["list", "--limit", "2", "--all", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let every: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run_ids(&every), expected);
    assert_eq!(every["next"], Value::Null);
    let o = host.cli(&["list", "--limit", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("`limit` must be 1 to 1000"), "{}", err(&o));
}

/// Server settings out of range are refused at start, naming the setting,
/// before anything is opened: an empty token (flag or environment), zero
/// timeouts, no connections, a tiny body limit.
#[test]
fn serve_settings_out_of_range_are_refused_at_start() {
    let sandbox = TestBed::new(&["hello"]);
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        (&["--token", ""], None, "invalid setting `token`"),
        (&[], Some(""), "invalid setting `token`"),
        (&["--token", "two words"], None, "invalid setting `token`"),
        (
            &["--header-timeout", "0s"],
            None,
            "invalid setting `header_timeout`",
        ),
        (
            &["--max-connections", "0"],
            None,
            "invalid setting `max_connections`",
        ),
        (
            &["--max-request-bytes", "10"],
            None,
            "invalid setting `max_request_bytes`",
        ),
    ];
    for (flags, env_token, needle) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(sandbox.plugins())
            .arg("--db")
            .arg(sandbox.db())
            .args(flags)
            .env_remove("WASMFLOW_TOKEN");
        if let Some(t) = env_token {
            cmd.env("WASMFLOW_TOKEN", t);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        assert!(err(&o).contains(needle), "{flags:?}: {}", err(&o));
        assert!(!sandbox.db().exists(), "{flags:?}: nothing was opened");
    }
}

/// A payload of the wrong type is a 400 naming the parameter, the type it
/// expects and what came, for starts, events and queries; `types` (API and
/// CLI) shows each parameter's type.
#[test]
fn wrong_types_are_400s_and_types_show_each_parameter_type() {
    let host = Served::start(&["hello", "probe"], None);
    let (s, b) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Greeter", "id": "g", "input": {"name": 42}})),
    );
    assert_eq!(
        (s, b["kind"].as_str()),
        (400, Some("InvalidPayload")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("parameter `name` expects a string, got a number: 42"),
        "{b}"
    );
    assert_eq!(host.http("GET", "/v1/workflows/g", None).0, 404);

    let input = json!({"approver": "ada", "level": 1, "order": {"id": "o", "amount": 1}});
    let start = json!({"type": "Approval", "id": "a", "input": input});
    assert_eq!(host.http("POST", "/v1/workflows", Some(start)).0, 201);
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/a/events",
        Some(json!({"name": "approve", "payload": {"by": "bob", "level": -1}})),
    );
    assert_eq!(
        (s, b["kind"].as_str()),
        (400, Some("InvalidPayload")),
        "{b}"
    );
    assert!(
        b["message"].as_str().unwrap().contains(
            "parameter `level` expects an integer from 0 to 4294967295, got a number: -1"
        ),
        "{b}"
    );
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/a/queries/peek",
        Some(json!({"args": {"field": false}})),
    );
    assert_eq!(
        (s, b["kind"].as_str()),
        (400, Some("InvalidPayload")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("parameter `field` expects a string, got a boolean: false"),
        "{b}"
    );
    // The run was not harmed: a right event completes it.
    let (s, b) = host.http(
        "POST",
        "/v1/workflows/a/events",
        Some(json!({"name": "approve", "payload": {"by": "bob", "level": 3}})),
    );
    assert_eq!(s, 202, "{b}");
    let done = host.wait_result("a");
    assert_eq!(done["result"]["level"], 3, "{done}");

    // `GET /v1/types`: each parameter with its type in JSON terms.
    let (s, b) = host.http("GET", "/v1/types", None);
    assert_eq!(s, 200);
    let approval = b["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Approval")
        .expect("Approval is listed")
        .clone();
    let start = approval["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "start")
        .unwrap()
        .clone();
    assert_eq!(
        start["params"],
        json!([
            {"name": "approver", "optional": false, "type": "a string"},
            {"name": "level", "optional": false, "type": "an integer from 0 to 255"},
            {"name": "order", "optional": false, "type": "an object with keys `id`, `amount`"},
            {"name": "note", "optional": true, "type": "a string or null"},
        ])
    );
    // The CLI's table shows them too.
    let o = host.cli(&["types"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("name: a string"), "{}", out(&o));
}

#[test]
fn a_running_run_shows_its_current_step_in_status() {
    let host = Served::start(&["family"], None);
    let (s, b) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Chatty", "id": "chatty", "input": {"ms": 3000}})),
    );
    assert_eq!(s, 201, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let current = loop {
        let (s, b) = host.http("GET", "/v1/workflows/chatty", None);
        assert_eq!(s, 200, "{b}");
        if b["current"]["handler"] == "work" {
            break b["current"].clone();
        }
        assert!(Instant::now() < deadline, "the step never showed: {b}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(current["kind"], "step", "{current}");
    assert!(current["since_ms"].as_u64().is_some(), "{current}");
    let o = host.cli(&["status", "chatty"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("step `work` for"), "{}", out(&o));
    // Not shown once the run stops running.
    let (s, b) = host.http("POST", "/v1/workflows/chatty/terminate", Some(json!({})));
    assert_eq!(s, 200, "{b}");
    let (_, b) = host.http("GET", "/v1/workflows/chatty", None);
    assert!(b.get("current").is_none(), "{b}");
}

#[test]
fn finished_runs_past_the_retention_are_deleted_and_live_ones_kept() {
    let host = Served::start_with(&["family"], None, &["--retention", "1s"]);
    let (s, r) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Timed", "id": "done", "input": {"ms": 1}, "wait_ms": 30000})),
    );
    assert_eq!(
        (s, r["outcome"]["status"].as_str()),
        (201, Some("completed")),
        "{r}"
    );
    let (s, r) = host.http(
        "POST",
        "/v1/workflows",
        Some(json!({"type": "Collector", "id": "live", "input": {"expected": 2}})),
    );
    assert_eq!(s, 201, "{r}");
    wait_status(&host, "live", "waiting");
    // The first pass comes 5 s after the start; then every minute.
    let began = Instant::now();
    loop {
        let (s, r) = host.http("GET", "/v1/workflows/done", None);
        if s == 404 {
            assert_eq!(r["kind"], "RunNotFound", "{r}");
            break;
        }
        assert_eq!((s, r["status"].as_str()), (200, Some("completed")), "{r}");
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the finished run was not deleted: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (s, _) = host.http("GET", "/v1/workflows/done/history", None);
    assert_eq!(s, 404, "its history went with it");
    let (s, r) = host.http("GET", "/v1/workflows/live", None);
    assert_eq!((s, r["status"].as_str()), (200, Some("waiting")), "{r}");
}
