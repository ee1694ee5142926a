//! Tasks and side effects (SPEC 8, 13), on real components: recorded
//! outcomes, retries (in the activation and parked), recorded values,
//! outbound HTTP under grants, secrets, and `retry` of a failed run. The
//! guest is `tests/guests/tasks`; the services it calls are loopback
//! servers run here: the payments service of `examples/payments-service`
//! and a small counting server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use wasmflow_host::{Config, ErrorKind, Host, RunId, RunStatus, StartOptions};

use crate::testbed::{TestBed, finish, history_kinds, result, until};

const LIMIT: Duration = Duration::from_secs(60);

// --- Loopback servers ---

/// What the counting server saw.
#[derive(Default)]
struct Seen {
    /// Requests of any kind, to any path.
    requests: u64,
    /// `POST /count/{name}` per name.
    counts: HashMap<String, u64>,
}

/// A loopback server: `POST /count/{name}` counts and answers `{"n": count}`;
/// `GET /big` answers 64 KiB; `GET /redirect/{port}` answers 302 to
/// `http://127.0.0.1:{port}/count/redirected`. Every request is counted.
struct Counter {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    async fn spawn() -> Counter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/count/{name}", post(count))
            .route("/big", get(big))
            .route("/redirect/{port}", get(redirect))
            .fallback(fallback)
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Counter { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> u64 {
        self.seen.lock().unwrap().requests
    }

    fn count(&self, name: &str) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .counts
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn count(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(name): UrlPath<String>,
    // Read the body before answering: a server that answers with the
    // request body unread closes the connection under a client still
    // writing it (a reset, not the host's fault).
    _body: axum::body::Bytes,
) -> String {
    let mut seen = seen.lock().unwrap();
    seen.requests += 1;
    let n = seen.counts.entry(name).or_default();
    *n += 1;
    json!({"n": *n}).to_string()
}

async fn big(State(seen): State<Arc<Mutex<Seen>>>) -> String {
    seen.lock().unwrap().requests += 1;
    "x".repeat(64 * 1024)
}

async fn redirect(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(port): UrlPath<u16>,
) -> impl IntoResponse {
    seen.lock().unwrap().requests += 1;
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("http://127.0.0.1:{port}/count/redirected"),
        )],
        "moved",
    )
}

async fn fallback(State(seen): State<Arc<Mutex<Seen>>>) -> StatusCode {
    seen.lock().unwrap().requests += 1;
    StatusCode::NOT_FOUND
}

async fn payments(options: payments_service::Options) -> payments_service::Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    payments_service::spawn(listener, options).unwrap()
}

// --- Hosts and history ---

/// A config granting the `tasks` plugin `urls` (each with `secrets`),
/// with `extra` TOML before the grants and `env` as the environment.
fn config(extra: &str, urls: &[(&str, &[&str])], env: &[(&str, &str)]) -> Config {
    let mut text = format!("{extra}\n");
    if !urls.is_empty() {
        text.push_str("[[grants]]\nplugin = \"tasks.wasm\"\n");
        for (url, secrets) in urls {
            text.push_str(&format!(
                "[[grants.http]]\nurl = {url:?}\nsecrets = {secrets:?}\n"
            ));
        }
    }
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(&text, Path::new("t.toml"), &env)
        .unwrap_or_else(|e| panic!("config refused: {e}\n{text}"))
}

async fn host_with(bed: &TestBed, config: Config) -> Host {
    bed.builder()
        .config(config)
        .start()
        .await
        .expect("the host starts")
}

/// The run's history entries as JSON (`type` names the kind).
async fn history_json(host: &Host, run_id: RunId) -> Vec<Value> {
    host.history(run_id)
        .await
        .expect("read the history")
        .iter()
        .map(|h| serde_json::to_value(h).expect("a history entry serializes"))
        .collect()
}

/// The `task_attempted` entries of task `name`, oldest first.
fn attempts<'a>(history: &'a [Value], name: &str) -> Vec<&'a Value> {
    history
        .iter()
        .filter(|h| h["type"] == "task_attempted" && h["name"] == name)
        .collect()
}

fn attempt_numbers(attempts: &[&Value]) -> Vec<u64> {
    attempts
        .iter()
        .map(|a| a["attempt"].as_u64().expect("an attempt number"))
        .collect()
}

async fn start(host: &Host, workflow_type: &str, id: &str, input: Value) -> RunId {
    host.start(
        workflow_type,
        &input.to_string(),
        StartOptions::new().workflow_id(id),
    )
    .await
    .unwrap_or_else(|e| panic!("start {workflow_type} {id}: {e}"))
    .run_id
}

/// A `Fetch` run to its end: its result (`{"ok": ...}` or `{"error": ...}`).
async fn fetch(host: &Host, id: &str, input: Value) -> Value {
    let run_id = start(host, "Fetch", id, input).await;
    let done = finish(host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{id}: {:?}", done.error);
    result(&done)
}

fn error_kind(outcome: &Value) -> &str {
    outcome["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {outcome}"))
}

// --- 1. Recorded outcomes ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_task_is_not_run_again_when_its_activation_is_executed_again() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(&bed, config("", &[(&counter.url(), &[])], &[])).await;
    // `b` fails once; its 2.5 s delay does not fit the 2 s step timeout, so
    // the activation stops without committing and is executed again.
    let run_id = start(
        &host,
        "Reexec",
        "reexec",
        json!({"url": counter.url(), "delay_ms": 2500}),
    )
    .await;
    let parked = until(&host, run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    assert!(parked.result.is_none());
    assert_eq!(counter.count("a"), 1);
    assert_eq!(counter.count("b"), 1);
    assert!(
        history_kinds(&host, run_id)
            .await
            .contains(&"retry_scheduled")
    );

    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    // `a` ran once: its side effect happened once, its recorded value
    // was returned to the second execution.
    assert_eq!(counter.count("a"), 1, "task a ran again");
    assert_eq!(out["a"]["count"], 1);
    assert_eq!(counter.count("b"), 2);
    assert_eq!(out["b"]["attempt"], 2);
    assert_eq!(out["b"]["count"], 2);

    let history = history_json(&host, run_id).await;
    let a = attempts(&history, "a");
    let b = attempts(&history, "b");
    assert_eq!(attempt_numbers(&a), [1], "{history:#?}");
    assert_eq!(attempt_numbers(&b), [1, 2], "{history:#?}");
    assert_eq!(a[0]["result"]["value"], out["a"], "{:#}", a[0]);
    assert!(b[0]["retry_at_ms"].is_u64(), "{:#}", b[0]);
    assert!(b[1].get("retry_at_ms").is_none_or(Value::is_null));
    // One key for the task, the same for both attempts and the value.
    assert_eq!(b[0]["key"], b[1]["key"]);
    assert_eq!(b[1]["key"], out["b"]["key"]);
    assert_eq!(a[0]["key"], out["a"]["key"]);
    assert_ne!(a[0]["key"], b[0]["key"]);
    // Each attempt recorded its one request.
    assert_eq!(a[0]["requests"][0]["path"], "/count/a");
    assert_eq!(a[0]["requests"][0]["status"], 200);
    // Order: a, b#1, parked, timer, b#2, then the step completes.
    let kinds: Vec<&str> = history
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("retry_scheduled") < at("retry_timer_fired"), "{kinds:?}");
    let b2 = history
        .iter()
        .position(|h| h["type"] == "task_attempted" && h["name"] == "b" && h["attempt"] == 2)
        .unwrap();
    assert!(at("retry_timer_fired") < b2, "{kinds:?}");
    // The delay was waited: b#2 started no earlier than b#1's retry_at_ms.
    assert!(
        b[1]["started_ms"].as_u64().unwrap() >= b[0]["retry_at_ms"].as_u64().unwrap(),
        "{b:#?}"
    );
    host.shutdown().await;
}

// --- 2. Retries ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_retried_until_it_succeeds() {
    let service = payments(payments_service::Options {
        token: None,
        fail_first: 2,
    })
    .await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(&bed, config("", &[(&service.url(), &[])], &[])).await;
    let started = Instant::now();
    let run_id = start(
        &host,
        "Retries",
        "flaky",
        json!({"url": service.url(), "mode": "flaky"}),
    )
    .await;
    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(out["calls"], json!([1, 2, 3]), "{out}");
    let stats = service.stats();
    assert_eq!((stats.requests, stats.charges), (3, 1), "{stats:?}");
    let history = history_json(&host, run_id).await;
    let charge = attempts(&history, "charge");
    assert_eq!(attempt_numbers(&charge), [1, 2, 3], "{history:#?}");
    for (i, attempt) in charge.iter().enumerate() {
        assert_eq!(
            attempt["key"], charge[0]["key"],
            "one key for every attempt"
        );
        let status = if i < 2 { 503 } else { 200 };
        assert_eq!(attempt["requests"][0]["status"], status, "{attempt:#}");
    }
    // The first two name when the next is due, 20 ms on; the last does not.
    for attempt in &charge[..2] {
        let due = attempt["retry_at_ms"].as_u64().expect("retry_at_ms");
        let began = attempt["started_ms"].as_u64().unwrap();
        assert!(due >= began + 20, "{attempt:#}");
    }
    assert!(charge[2].get("retry_at_ms").is_none_or(Value::is_null));
    assert!(charge[1]["started_ms"].as_u64() >= charge[0]["retry_at_ms"].as_u64());
    assert!(charge[2]["started_ms"].as_u64() >= charge[1]["retry_at_ms"].as_u64());
    assert_eq!(
        charge[2]["result"]["value"], out["ok"],
        "the recorded value is the charge's txn"
    );
    assert_eq!(
        service.charges().values().next().map(String::as_str),
        out["ok"].as_str()
    );
    // Short delays were waited inside the activation: nothing parked.
    assert!(!history.iter().any(|h| h["type"] == "retry_scheduled"));
    assert!(started.elapsed() < Duration::from_secs(20));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_error_is_attempted_once_and_exhausted_attempts_return_the_last_error() {
    let bed = TestBed::new(&["tasks"]);
    let host = bed.host().await;
    let fatal = start(
        &host,
        "Retries",
        "fatal",
        json!({"url": "unused", "mode": "fatal"}),
    )
    .await;
    let exhaust = start(
        &host,
        "Retries",
        "exhaust",
        json!({"url": "unused", "mode": "exhaust"}),
    )
    .await;

    let done = finish(&host, fatal, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(
        out["calls"],
        json!([1]),
        "never_retry(InvalidPayload): {out}"
    );
    assert_eq!(out["error"]["kind"], "InvalidPayload", "{out}");
    assert_eq!(out["error"]["message"], "no such card", "{out}");
    let history = history_json(&host, fatal).await;
    let tried = attempts(&history, "fatal");
    assert_eq!(attempt_numbers(&tried), [1]);
    assert!(tried[0].get("retry_at_ms").is_none_or(Value::is_null));
    assert_eq!(tried[0]["result"]["error"]["kind"], "InvalidPayload");

    let done = finish(&host, exhaust, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(out["calls"], json!([1, 2, 3]), "{out}");
    assert_eq!(out["error"]["kind"], "Application", "{out}");
    assert_eq!(out["error"]["message"], "attempt 3 failed", "{out}");
    let history = history_json(&host, exhaust).await;
    let tried = attempts(&history, "exhaust");
    assert_eq!(attempt_numbers(&tried), [1, 2, 3]);
    assert!(tried[2].get("retry_at_ms").is_none_or(Value::is_null));
    host.shutdown().await;
}

// --- 3. Parked retries survive a restart ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_retry_is_durable_and_resumes_after_a_host_restart() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let grants = || config("", &[(&counter.url(), &[])], &[]);
    let host = host_with(&bed, grants()).await;
    let run_id = start(
        &host,
        "Reexec",
        "restart",
        json!({"url": counter.url(), "delay_ms": 3000}),
    )
    .await;
    let parked = until(&host, run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    assert!(
        parked.timer.is_some() || parked.pending.is_some(),
        "{parked:?}"
    );
    assert!(
        history_kinds(&host, run_id)
            .await
            .contains(&"retry_scheduled")
    );
    host.shutdown().await;
    assert_eq!((counter.count("a"), counter.count("b")), (1, 1));

    // A new host on the same database and plugins finishes the run.
    let host = host_with(&bed, grants()).await;
    let record = host.run(run_id).await.unwrap();
    assert_eq!(
        record.status,
        RunStatus::Waiting,
        "still parked after the restart"
    );
    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(counter.count("a"), 1, "task a ran again after the restart");
    assert_eq!(counter.count("b"), 2);
    assert_eq!(out["a"]["count"], 1);
    assert_eq!(out["b"]["attempt"], 2);
    let history = history_json(&host, run_id).await;
    assert_eq!(attempt_numbers(&attempts(&history, "a")), [1]);
    assert_eq!(attempt_numbers(&attempts(&history, "b")), [1, 2]);
    let kinds: Vec<&str> = history
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "retry_scheduled").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"retry_timer_fired"), "{kinds:?}");
    host.shutdown().await;
}

// --- 4. Recorded values ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_random_and_uuid4_are_replayed_when_an_activation_is_executed_again() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(&bed, config("", &[(&counter.url(), &[])], &[])).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let runs = [
        start(
            &host,
            "Reexec",
            "values-1",
            json!({"url": counter.url(), "delay_ms": 2000}),
        )
        .await,
        start(
            &host,
            "Reexec",
            "values-2",
            json!({"url": counter.url(), "delay_ms": 2000}),
        )
        .await,
    ];
    let mut uuids = Vec::new();
    for run_id in runs {
        let done = finish(&host, run_id, LIMIT).await;
        assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
        let out = result(&done);
        // The activation was executed again ...
        let kinds = history_kinds(&host, run_id).await;
        assert!(kinds.contains(&"retry_timer_fired"), "{kinds:?}");
        // ... and saw the values of its first execution, which task `a`
        // recorded then.
        let first = &out["a"]["seen"];
        let last = &out["seen"];
        assert_eq!(first, last, "recorded values were not replayed");
        let now = last["now_ms"].as_u64().unwrap();
        assert!(now >= before, "{now} < {before}");
        let random = f64::from_bits(last["random_bits"].as_u64().unwrap());
        assert!((0.0..1.0).contains(&random), "{random}");
        let uuid = last["uuid"].as_str().unwrap().to_owned();
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(uuid.as_bytes()[14], b'4', "a version 4 uuid: {uuid}");
        uuids.push((uuid, last["random_u64"].clone()));
    }
    assert_ne!(uuids[0], uuids[1], "two runs got the same values");
    host.shutdown().await;
}

/// A task's value is returned exactly as its closure made it: floats
/// included (their JSON text must survive the host's record bit for bit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_value_with_floats_is_returned_exactly() {
    let bed = TestBed::new(&["tasks"]);
    let host = bed.host().await;
    let run_id = start(&host, "Floats", "floats", json!({"n": 2000})).await;
    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(out["n"], 2000);
    let changed = out["changed"].as_array().unwrap();
    assert!(
        changed.is_empty(),
        "{} of 2000 floats came back changed, e.g. {:?}",
        changed.len(),
        &changed[..changed.len().min(3)]
    );
    host.shutdown().await;
}

// --- 5. Grants ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grant_a_request_is_denied_and_never_sent() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let host = bed.host().await;
    let url = format!("{}/count/x", counter.url());
    let out = fetch(&host, "no-grant", json!({"url": url, "method": "POST"})).await;
    assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");
    assert_eq!(counter.requests(), 0);
    let run = host.latest_run("no-grant").await.unwrap();
    let history = history_json(&host, run.run_id).await;
    let tried = attempts(&history, "fetch");
    assert_eq!(attempt_numbers(&tried), [1]);
    assert!(
        tried[0]["requests"][0]["error"].is_string(),
        "{:#}",
        tried[0]
    );
    assert!(
        tried[0]["requests"][0]
            .get("status")
            .is_none_or(Value::is_null)
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_for_one_port_reaches_that_port_only_and_redirects_are_not_followed() {
    let granted = Counter::spawn().await;
    let other = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(&bed, config("", &[(&granted.url(), &[])], &[])).await;

    let out = fetch(
        &host,
        "granted",
        json!({"url": format!("{}/count/x", granted.url()), "method": "POST"}),
    )
    .await;
    assert_eq!(out["ok"]["status"], 200, "{out}");
    assert_eq!(out["ok"]["body"], r#"{"n":1}"#, "{out}");
    assert_eq!(granted.count("x"), 1);

    // The same host, another port: denied, never sent.
    let out = fetch(
        &host,
        "other-port",
        json!({"url": format!("{}/count/x", other.url()), "method": "POST"}),
    )
    .await;
    assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");
    // `localhost` is another host than the granted `127.0.0.1`.
    let out = fetch(
        &host,
        "by-name",
        json!({"url": format!("http://localhost:{}/count/x", granted.addr.port()), "method": "POST"}),
    )
    .await;
    assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");

    // A redirect to the ungranted port is not followed there.
    let out = fetch(
        &host,
        "redirect",
        json!({"url": format!("{}/redirect/{}", granted.url(), other.addr.port())}),
    )
    .await;
    if out.get("ok").is_some() {
        assert_eq!(out["ok"]["status"], 302, "{out}");
    } else {
        assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");
    }
    assert_eq!(granted.count("x"), 1);
    assert_eq!(other.requests(), 0, "the ungranted server was reached");
    assert_eq!(granted.count("redirected"), 0);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_size_cap_fails_the_task_with_quota_exceeded() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(
        &bed,
        config(
            "[outbound]\nmax_response_bytes = 1000",
            &[(&counter.url(), &[])],
            &[],
        ),
    )
    .await;
    // A small body fits.
    let out = fetch(
        &host,
        "small",
        json!({"url": format!("{}/count/small", counter.url()), "method": "POST"}),
    )
    .await;
    assert_eq!(out["ok"]["status"], 200, "{out}");
    // 64 KiB does not.
    let out = fetch(
        &host,
        "big",
        json!({"url": format!("{}/big", counter.url())}),
    )
    .await;
    assert_eq!(error_kind(&out), "QuotaExceeded", "{out}");
    let message = out["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_response_bytes"), "{message}");
    assert_eq!(counter.requests(), 2);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_a_task_fails_the_run_with_capability_denied() {
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    // Granted, yet outside a task: refused all the same.
    let host = host_with(&bed, config("", &[(&counter.url(), &[])], &[])).await;
    let run_id = start(
        &host,
        "Fetch",
        "outside",
        json!({"url": format!("{}/count/x", counter.url()), "method": "POST", "outside": true}),
    )
    .await;
    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Failed, "{:?}", done.result);
    let error = done.error.as_ref().expect("an error");
    assert_eq!(error.kind, ErrorKind::CapabilityDenied, "{error:?}");
    assert!(error.message.contains("outside a task"), "{error:?}");
    assert_eq!(counter.requests(), 0);
    host.shutdown().await;
}

// --- 6. Secrets ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_secret_is_substituted_only_for_its_grant_and_stored_nowhere() {
    let secret = format!("tok-{}-Zq8vX", std::process::id());
    let service = payments(payments_service::Options {
        token: Some(secret.clone()),
        fail_first: 0,
    })
    .await;
    let counter = Counter::spawn().await;
    let bed = TestBed::new(&["tasks"]);
    let config = config(
        "[secrets]\ntoken = { env = \"TASKS_TEST_TOKEN\" }",
        &[(&service.url(), &["token"]), (&counter.url(), &[])],
        &[("TASKS_TEST_TOKEN", &secret)],
    );
    let host = host_with(&bed, config).await;
    let charge = |id: &str, authorization: &str| {
        json!({
            "url": format!("{}/charges", service.url()),
            "method": "POST",
            "headers": {"authorization": authorization, "idempotency-key": id},
            "body": {"amount": 5},
        })
    };

    // Without the token the service refuses: it does check.
    let out = fetch(&host, "no-token", charge("k0", "Bearer nope")).await;
    assert_eq!(out["ok"]["status"], 401, "{out}");
    // The placeholder is replaced on the grant that lists the secret.
    let out = fetch(&host, "with-token", charge("k1", "Bearer {{secret:token}}")).await;
    assert_eq!(out["ok"]["status"], 200, "{out}");
    assert!(service.charge("k1").is_some(), "{:?}", service.charges());
    // On a grant without it: refused, never sent.
    let out = fetch(
        &host,
        "wrong-host",
        json!({
            "url": format!("{}/count/leak", counter.url()),
            "method": "POST",
            "headers": {"x-token": "{{secret:token}}"},
        }),
    )
    .await;
    assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");
    assert!(!out.to_string().contains(&secret), "{out}");
    assert_eq!(counter.requests(), 0);
    // An unknown secret is refused too.
    let out = fetch(
        &host,
        "unknown-secret",
        charge("k2", "Bearer {{secret:nope}}"),
    )
    .await;
    assert_eq!(error_kind(&out), "CapabilityDenied", "{out}");
    assert!(service.charge("k2").is_none());

    // The secret is nowhere the host keeps or returns things.
    let mut seen = String::new();
    for id in ["no-token", "with-token", "wrong-host", "unknown-secret"] {
        let run = host.latest_run(id).await.unwrap();
        seen.push_str(&format!("{run:?}\n"));
        let history = host.history(run.run_id).await.unwrap();
        seen.push_str(&serde_json::to_string(&history).unwrap());
        seen.push_str(&format!("{history:?}\n"));
        seen.push_str(&format!("{:?}\n", host.store(run.run_id).await.unwrap()));
    }
    assert!(seen.contains("{{secret:token}}"), "the runs were read");
    assert!(!seen.contains(&secret), "the secret leaked: {seen}");
    let files = |when: &str| {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(bed.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                if hit {
                    found.push(format!("{when}: {}", path.display()));
                }
            }
        }
        found
    };
    let mut found = files("open");
    assert!(bed.db().exists());
    host.shutdown().await;
    found.extend(files("shut down"));
    assert!(found.is_empty(), "the secret is in {found:?}");
}

// --- 7. retry of a failed run ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resumes_a_failed_run_without_repeating_its_completed_tasks() {
    let counter = Counter::spawn().await;
    let service = payments(payments_service::Options {
        token: None,
        fail_first: 1,
    })
    .await;
    let bed = TestBed::new(&["tasks"]);
    let host = host_with(
        &bed,
        config("", &[(&counter.url(), &[]), (&service.url(), &[])], &[]),
    )
    .await;
    let run_id = start(
        &host,
        "Reserve",
        "reserve",
        json!({"counter": counter.url(), "payments": service.url()}),
    )
    .await;
    let failed = finish(&host, run_id, LIMIT).await;
    assert_eq!(failed.status, RunStatus::Failed, "{:?}", failed.result);
    let error = failed.error.as_ref().unwrap();
    assert!(error.message.contains("503"), "{error:?}");
    assert_eq!(counter.count("reserve"), 1);
    assert_eq!(service.stats().requests, 1);

    let (retried, _version) = host.retry("reserve", false).await.unwrap();
    assert_eq!(retried, run_id, "the same run is resumed");
    let done = finish(&host, run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let out = result(&done);
    assert_eq!(counter.count("reserve"), 1, "reserve ran again");
    assert_eq!(out["reservation"], 1);
    let stats = service.stats();
    assert_eq!((stats.requests, stats.charges), (2, 1), "{stats:?}");
    assert_eq!(
        service.charges().values().next(),
        out["txn"].as_str().map(str::to_owned).as_ref()
    );

    let history = history_json(&host, run_id).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"run_retried"), "{kinds:?}");
    assert!(kinds.contains(&"run_failed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_completed"), "{kinds:?}");
    assert_eq!(attempt_numbers(&attempts(&history, "reserve")), [1]);
    let charge = attempts(&history, "charge");
    assert_eq!(charge.len(), 2, "{history:#?}");
    assert_eq!(charge[0]["key"], charge[1]["key"], "one idempotency key");
    assert!(charge[0]["result"]["error"].is_object());
    assert_eq!(charge[1]["result"]["value"], out["txn"]);
    // A run that is not failed cannot be retried.
    assert!(host.retry("reserve", false).await.is_err());
    host.shutdown().await;
}
