//! What `wasmflow serve` tells its operators: one log line per change of a
//! run's life, guest lines kept to one line, `--log-format json`, no colours
//! off a terminal; and the OpenTelemetry spans of the seed example, received
//! by a loopback OTLP/HTTP collector.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

use crate::testbed::TestBed;

/// A `wasmflow serve` whose whole stderr is kept.
struct Serve {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Serve {
    fn start(sandbox: &TestBed, flags: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(sandbox.plugins())
            .args(sandbox.host_db_args())
            .args(flags)
            .current_dir(sandbox.path())
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("WASMFLOW_LOG_FORMAT")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmflow serve");
        let stderr = child.stderr.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                let rest = l.split("serving on ").nth(1)?;
                Some(rest.split(';').next().unwrap_or(rest).trim().to_owned())
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                Instant::now() < deadline,
                "serve logs its address: {:#?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Serve {
            child,
            addr,
            lines,
            reader: Some(reader),
        }
    }

    fn http(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.addr);
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            (_, Some(b)) => agent.post(&url).send_json(b),
            (_, None) => agent.post(&url).send_empty(),
        };
        let mut response = response.expect("the host answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn start_run(&self, workflow_type: &str, id: &str, input: Value) {
        let (s, b) = self.http(
            "POST",
            "/v1/workflows",
            Some(json!({"type": workflow_type, "id": id, "input": input})),
        );
        assert_eq!(s, 201, "{b}");
    }

    fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, run) = self.http("GET", &format!("/v1/workflows/{id}"), None);
            if run["status"] == status {
                return run;
            }
            assert!(Instant::now() < deadline, "{id} never {status}: {run}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait for the exit, and everything it logged.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("serve exits");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        assert!(exit.success(), "serve exits cleanly: {lines:#?}");
        lines
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines that say `message` of workflow id `id`.
fn lines_of<'a>(lines: &'a [String], message: &str, id: &str) -> Vec<&'a String> {
    let id_field = format!("workflow_id={id} ");
    lines
        .iter()
        .filter(|l| l.contains(message) && l.contains(&id_field))
        .collect()
}

/// The one line that says `message` of `id`, naming the run once.
fn one_line<'a>(lines: &'a [String], message: &str, id: &str) -> &'a String {
    let found = lines_of(lines, message, id);
    assert_eq!(found.len(), 1, "one `{message}` of {id}: {lines:#?}");
    let line = found[0];
    for field in ["workflow_id=", "run_id=", "workflow_type="] {
        assert_eq!(line.matches(field).count(), 1, "{field} once: {line}");
    }
    line
}

fn scripted(script: Value) -> Value {
    json!({ "script": script })
}

#[test]
fn serve_logs_one_line_per_change_of_a_run_and_guest_lines_stay_one_line() {
    let sandbox = TestBed::new(&["scripted", "versioned-a"]);
    let serve = Serve::start(&sandbox, &[]);
    // Started, completed, and a guest line with a newline and an escape.
    serve.start_run(
        "Scripted",
        "done",
        scripted(json!([
            ["log", 2, "two\nlines \u{1b}[31mred"],
            ["complete", "1"]
        ])),
    );
    // Failed with a kind (17: Application), retried, failed again.
    serve.start_run(
        "Scripted",
        "bad",
        scripted(json!([["error", 17, "no\nway"]])),
    );
    // Cancelled and terminated while waiting.
    serve.start_run("Scripted", "cancel-me", scripted(json!([["wait"]])));
    serve.start_run("Scripted", "end-me", scripted(json!([["wait"]])));
    // Upgraded: waiting on version a when b replaces it.
    serve.start_run("Versioned", "v", json!({"wait_ms": 60_000}));

    serve.wait_status("done", "completed");
    serve.wait_status("bad", "failed");
    let (s, b) = serve.http("POST", "/v1/workflows/bad/retry", Some(json!({})));
    assert_eq!(s, 200, "{b}");
    serve.wait_status("cancel-me", "waiting");
    assert_eq!(
        serve.http("POST", "/v1/workflows/cancel-me/cancel", None).0,
        200
    );
    serve.wait_status("end-me", "waiting");
    assert_eq!(
        serve.http("POST", "/v1/workflows/end-me/terminate", None).0,
        200
    );
    serve.wait_status("v", "waiting");
    let replacement = sandbox.path().join("versioned.partial");
    std::fs::copy(crate::testbed::component("versioned-b"), &replacement).unwrap();
    std::fs::rename(&replacement, sandbox.plugins().join("versioned-a.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, report) = serve.http("POST", "/v1/types/Versioned/upgrade", None);
        if report["upgraded"].as_array().is_some_and(|u| !u.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "never upgraded: {report}");
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.wait_status("bad", "failed");
    serve.wait_status("cancel-me", "cancelled");
    let lines = serve.stop();

    for id in ["done", "bad", "cancel-me", "end-me", "v"] {
        let started = one_line(&lines, "run started", id);
        assert!(started.contains("version="), "{started}");
    }
    one_line(&lines, "run completed", "done");
    let retried = one_line(&lines, "run retried", "bad");
    let failed = lines_of(&lines, "run failed", "bad");
    assert_eq!(failed.len(), 2, "failed, retried, failed again: {lines:#?}");
    for line in &failed {
        assert!(
            line.contains("error_kind=Application") && line.contains(r#"error="no\nway""#),
            "{line}"
        );
        assert_eq!(line.matches("run_id=").count(), 1, "{line}");
    }
    let at = |l: &String| lines.iter().position(|x| x == l).unwrap();
    assert!(at(failed[0]) < at(retried) && at(retried) < at(failed[1]));
    one_line(&lines, "run cancelled", "cancel-me");
    one_line(&lines, "run terminated", "end-me");
    let upgraded = one_line(&lines, "run upgraded", "v");
    assert!(
        upgraded.contains("from=") && upgraded.contains("to="),
        "{upgraded}"
    );
    // The guest's line: one line, its newline and escape shown escaped.
    let guest: Vec<_> = lines.iter().filter(|l| l.contains("two\\nlines")).collect();
    assert_eq!(guest.len(), 1, "{lines:#?}");
    assert!(
        guest[0].contains(r"two\nlines \u{1b}[31mred"),
        "{}",
        guest[0]
    );
    assert!(guest[0].contains("workflow_id=done"), "{}", guest[0]);
    assert!(!lines.iter().any(|l| l.trim() == "lines"), "{lines:#?}");
    // Not a terminal: no colours.
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "{lines:#?}");
}

#[test]
fn log_format_json_writes_one_object_a_line_with_the_run_fields() {
    let sandbox = TestBed::new(&["scripted"]);
    let serve = Serve::start(&sandbox, &["--log-format", "json"]);
    serve.start_run(
        "Scripted",
        "j",
        scripted(json!([["log", 2, "a\nb"], ["complete", "1"]])),
    );
    let run = serve.wait_status("j", "completed");
    let lines = serve.stop();
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for message in ["run started", "run completed"] {
        let found: Vec<_> = objects
            .iter()
            .filter(|o| o["message"] == message && o["workflow_id"] == "j")
            .collect();
        assert_eq!(found.len(), 1, "{message}: {objects:#?}");
        let o = found[0];
        assert_eq!(o["run_id"], run["run_id"], "{o}");
        assert_eq!(o["workflow_type"], "Scripted", "{o}");
        assert_eq!(o["level"], "INFO", "{o}");
        assert!(o.get("span").is_none() && o.get("spans").is_none(), "{o}");
    }
    let guest: Vec<_> = objects
        .iter()
        .filter(|o| o["target"] == "wasmflow::guest")
        .collect();
    assert_eq!(guest.len(), 1, "{objects:#?}");
    assert_eq!(guest[0]["message"], r"a\nb");
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')));
}

/// A loopback OTLP/HTTP collector: what was posted to `/v1/traces`.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Collector {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body)
                        .expect("the host posts an OTLP protobuf request");
                    let mut all = received.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| string(kv.value.as_ref()));
                        assert_eq!(service.as_deref(), Some("wasmflow"));
                        for scope in resource.scope_spans {
                            all.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Collector {
            url,
            spans,
            _runtime: runtime,
        }
    }
}

fn string(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string(kv.value.as_ref()))
}

#[test]
fn the_seed_example_exports_its_span_tree_to_an_otlp_collector() {
    let collector = Collector::start();
    let sandbox = TestBed::new(&["order-payment"]);
    let serve = Serve::start(&sandbox, &["--otlp-endpoint", &collector.url]);
    serve.start_run("Order", "order-7", json!({"order_id": "7", "amount": 3.5}));
    serve.wait_status("order-7", "waiting");
    let (s, b) = serve.http(
        "POST",
        "/v1/workflows/order-7/events",
        Some(json!({"name": "start_payment"})),
    );
    assert_eq!(s, 202, "{b}");
    let order = serve.wait_status("order-7", "completed");
    let payment = serve.wait_status("payment-7", "completed");
    // SIGTERM flushes what is still queued.
    let lines = serve.stop();
    let spans = collector.spans.lock().unwrap().clone();
    let find = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };

    let order_span = match find("run Order").as_slice() {
        [one] => *one,
        other => panic!("one Order run span, got {other:#?}; log {lines:#?}"),
    };
    assert!(order_span.parent_span_id.is_empty(), "the root of the tree");
    for (key, value) in [
        ("wasmflow.workflow_id", "order-7"),
        ("wasmflow.workflow_type", "Order"),
        ("wasmflow.outcome", "completed"),
    ] {
        assert_eq!(attr(order_span, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        attr(order_span, "wasmflow.run_id").as_deref(),
        order["run_id"].as_str()
    );
    assert_eq!(
        attr(order_span, "wasmflow.version").as_deref(),
        order["version"].as_str()
    );
    assert!(order_span.end_time_unix_nano > order_span.start_time_unix_nano);

    // The Order's activations, under its run span, named by handler.
    let order_activations: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == order_span.span_id)
        .filter(|s| attr(s, "wasmflow.workflow_type").as_deref() == Some("Order"))
        .collect();
    let handlers: Vec<String> = order_activations
        .iter()
        .filter_map(|s| attr(s, "wasmflow.handler"))
        .collect();
    for handler in ["order_start", "start_payment", "payment_completed"] {
        assert!(
            handlers.iter().any(|h| h == handler),
            "{handler} in {handlers:?}"
        );
    }
    for a in &order_activations {
        assert_eq!(a.trace_id, order_span.trace_id);
        assert!(attr(a, "wasmflow.outcome").is_some(), "{a:?}");
        assert_eq!(attr(a, "wasmflow.workflow_id").as_deref(), Some("order-7"));
    }

    // The Payment child: its run span in the Order's trace, under the
    // Order's run span.
    let payment_span = match find("run Payment").as_slice() {
        [one] => *one,
        other => panic!("one Payment run span, got {other:#?}"),
    };
    assert_eq!(payment_span.trace_id, order_span.trace_id);
    assert_eq!(payment_span.parent_span_id, order_span.span_id);
    assert_eq!(
        attr(payment_span, "wasmflow.run_id").as_deref(),
        payment["run_id"].as_str()
    );
    assert_eq!(
        attr(payment_span, "wasmflow.outcome").as_deref(),
        Some("completed")
    );
    assert_eq!(
        attr(payment_span, "wasmflow.parent_run_id").as_deref(),
        order["run_id"].as_str()
    );
    let payment_activations: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == payment_span.span_id)
        .collect();
    assert!(
        payment_activations
            .iter()
            .any(|s| attr(s, "wasmflow.handler").as_deref() == Some("payment_process")),
        "{payment_activations:#?}"
    );
    // The task attempt, under the activation that ran it.
    let task = match find("task charge_card").as_slice() {
        [one] => *one,
        other => panic!("one charge_card attempt, got {other:#?}"),
    };
    let process = payment_activations
        .iter()
        .find(|s| s.span_id == task.parent_span_id)
        .expect("the task's parent is a Payment activation");
    assert_eq!(
        attr(process, "wasmflow.handler").as_deref(),
        Some("payment_process")
    );
    assert_eq!(task.trace_id, order_span.trace_id);
    assert_eq!(attr(task, "wasmflow.attempt").as_deref(), Some("1"));
    assert_eq!(attr(task, "wasmflow.outcome").as_deref(), Some("ok"));
    // Every span is in the one trace.
    assert!(spans.iter().all(|s| s.trace_id == order_span.trace_id));
}
