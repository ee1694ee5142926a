//! Chaos: the real `wasmflow serve` killed with SIGKILL again and again
//! while it runs Order/Payment workflows that charge a real (loopback)
//! payments service. Every order must complete exactly once, every card be
//! charged exactly once, and no recorded task or dispatched event run twice.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::testbed::TestBed;

const TOKEN: &str = "chaos-token";

/// A tiny seeded xorshift64*: reproducible kill timings without a crate.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn chaos_seed() -> u64 {
    std::env::var("WASMFLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// The payments service, on a runtime of its own in the test process: it
/// outlives every kill of the host.
struct Payments {
    running: payments_service::Running,
    _runtime: tokio::runtime::Runtime,
}

impl Payments {
    fn start(fail_first: u64) -> Payments {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the payments service");
        let running = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the payments service");
            payments_service::spawn(
                listener,
                payments_service::Options {
                    token: Some(TOKEN.to_owned()),
                    fail_first,
                },
            )
            .expect("start the payments service")
        });
        Payments {
            running,
            _runtime: runtime,
        }
    }
}

/// `wasmflow serve` on one database and plugins dir, restartable; its
/// current address is shared with the clients.
struct Host {
    plugins: PathBuf,
    db_args: Vec<std::ffi::OsString>,
    config: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    addr: Arc<RwLock<String>>,
}

impl Host {
    fn new(bed: &TestBed, payments_url: &str) -> Host {
        let config = bed.path().join("wasmflow.toml");
        std::fs::write(
            &config,
            format!(
                "[secrets]\n\
                 payments_token = {{ env = \"PAYMENTS_TOKEN\" }}\n\n\
                 [[grants]]\n\
                 plugin = \"order-payment.wasm\"\n\
                 [[grants.http]]\n\
                 url = \"{payments_url}\"\n\
                 methods = [\"POST\"]\n\
                 secrets = [\"payments_token\"]\n"
            ),
        )
        .expect("write the config file");
        Host {
            plugins: bed.plugins(),
            db_args: bed.host_db_args(),
            config,
            dir: bed.path().to_owned(),
            child: None,
            addr: Arc::new(RwLock::new(String::new())),
        }
    }

    /// Start `serve` and wait until `/healthz` answers; how long it took.
    fn start(&mut self) -> Duration {
        assert!(self.child.is_none(), "the host is already running");
        let began = Instant::now();
        let mut serve = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(&self.plugins)
            .args(&self.db_args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN")
            .env_remove("WASMFLOW_CONFIG")
            .env("PAYMENTS_TOKEN", TOKEN);
        let (child, addr) = crate::testbed::spawn_serve(serve);
        let deadline = Instant::now() + Duration::from_secs(60);
        let agent = agent();
        loop {
            let healthy = agent
                .get(format!("{addr}/healthz"))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                break;
            }
            assert!(Instant::now() < deadline, "{addr}/healthz never answered");
            std::thread::sleep(Duration::from_millis(10));
        }
        *self.addr.write().unwrap() = addr;
        self.child = Some(child);
        began.elapsed()
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("the host is running");
        let status = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 failed");
        let _ = child.wait();
    }

    fn client(&self) -> Client {
        Client {
            agent: agent(),
            addr: self.addr.clone(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// An API client that follows the host across restarts.
struct Client {
    agent: ureq::Agent,
    addr: Arc<RwLock<String>>,
}

impl Client {
    /// One attempt: the status and JSON body, or `Err` when no answer came
    /// (the host is down, or was killed mid-request).
    fn try_http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.addr.read().unwrap());
        let response = if method == "GET" {
            self.agent.get(&url).call()
        } else {
            match body {
                Some(b) => self.agent.post(&url).send_json(b),
                None => self.agent.post(&url).send_empty(),
            }
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// A request retried until an answer that is not a server error comes,
    /// within `limit`. Only for requests safe to repeat.
    fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        limit: Duration,
    ) -> (u16, Value) {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.try_http(method, path, body) {
                Ok((status, body)) if status < 500 => return (status, body),
                Ok((status, body)) => format!("{status} {body}"),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{method} {path}: no answer within {limit:?}; last: {last}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.http("GET", path, None, Duration::from_secs(90));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Start an Order. A repeat after a lost answer finds it started: 409.
    fn start_order(&self, n: usize, payments_url: &str) {
        let request = json!({
            "type": "Order",
            "id": format!("order-{n}"),
            "input": { "order_id": n.to_string(), "amount": 42.5, "payments_url": payments_url },
        });
        let (status, body) = self.http(
            "POST",
            "/v1/workflows",
            Some(&request),
            Duration::from_secs(90),
        );
        assert!(
            status == 201 || status == 409,
            "start order-{n}: {status} {body}"
        );
    }

    /// Send `start_payment` to an Order exactly once: after an attempt
    /// that got no answer, the Order's history says whether it arrived.
    fn start_payment(&self, n: usize) {
        let id = format!("order-{n}");
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut uncertain = false;
        loop {
            if uncertain {
                let history =
                    match self.try_http("GET", &format!("/v1/workflows/{id}/history"), None) {
                        Ok((200, h)) => h,
                        other => {
                            assert!(Instant::now() < deadline, "history of {id}: {other:?}");
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                if count(&history, "event_received", "start_payment") > 0 {
                    return;
                }
            }
            match self.try_http(
                "POST",
                &format!("/v1/workflows/{id}/events"),
                Some(&json!({ "name": "start_payment" })),
            ) {
                Ok((202, _)) => return,
                Ok((status, body)) if status < 500 => {
                    panic!("start_payment to {id}: {status} {body}")
                }
                _ => uncertain = true,
            }
            assert!(
                Instant::now() < deadline,
                "start_payment to {id}: no answer within 90s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every run of `workflow_type` (at most 1000, one page).
    fn list(&self, workflow_type: &str) -> Vec<Value> {
        let page = self.get(&format!("/v1/workflows?type={workflow_type}&limit=1000"));
        assert!(
            page["next"].is_null(),
            "more than 1000 runs of {workflow_type}"
        );
        page["runs"].as_array().expect("a list of runs").clone()
    }
}

/// History entries of `type` `kind` named `name`.
fn count(history: &Value, kind: &str, name: &str) -> usize {
    events(history)
        .iter()
        .filter(|e| e["type"] == kind && e["name"] == name)
        .count()
}

fn events(history: &Value) -> &Vec<Value> {
    history["events"].as_array().expect("history events")
}

fn bed() -> TestBed {
    TestBed::new(&["order-payment"])
}

#[test]
fn chaos_sigkill_orders_complete_exactly_once() {
    let seed = chaos_seed();
    println!("chaos seed: {seed}");
    let orders: usize = std::env::var("WASMFLOW_CHAOS_ORDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let kills_wanted: usize = 20;
    let mut rng = XorShift::new(seed);
    let began = Instant::now();

    let payments = Payments::start(0);
    let url = payments.running.url();
    let bed = bed();
    let mut host = Host::new(&bed, &url);
    let first_start = host.start();

    // The clients: start every Order, then send it start_payment, through
    // the kills.
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let client = host.client();
            let next = next.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= orders {
                        break;
                    }
                    client.start_order(n, &url);
                    client.start_payment(n);
                }
            })
        })
        .collect();
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            for c in clients {
                c.join().expect("a client thread");
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // The killer: SIGKILL after a random 100-600 ms, restart on the same
    // database, again and again.
    let mut kills = 0;
    let mut restarts = Vec::new();
    while kills < kills_wanted {
        std::thread::sleep(Duration::from_millis(rng.between(100, 600)));
        host.kill();
        kills += 1;
        restarts.push(host.start());
    }
    let sent_during_kills = next.load(Ordering::SeqCst).min(orders);
    watcher.join().expect("the clients");
    assert!(done.load(Ordering::SeqCst));
    let clients_done = began.elapsed();

    // Then every Order must complete.
    let client = host.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    let order_runs = loop {
        let runs = client.list("Order");
        let completed = runs.iter().filter(|r| r["status"] == "completed").count();
        if completed == orders {
            break runs;
        }
        if Instant::now() >= deadline {
            let mut by_status: HashMap<String, usize> = HashMap::new();
            for r in &runs {
                *by_status.entry(r["status"].to_string()).or_default() += 1;
            }
            let stuck: Vec<_> = runs
                .iter()
                .filter(|r| r["status"] != "completed")
                .take(3)
                .collect();
            panic!(
                "seed {seed}: only {completed} of {orders} orders completed within 120s after \
                 {kills} kills; by status {by_status:?}; e.g. {stuck:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let all_done = began.elapsed();

    // Exactly one run per Order and per Payment, all completed.
    assert_eq!(order_runs.len(), orders, "one run per order");
    let payment_runs = client.list("Payment");
    assert_eq!(
        payment_runs.len(),
        orders,
        "seed {seed}: one Payment per Order"
    );
    let payment_result: HashMap<String, Value> = payment_runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "completed", "seed {seed}: {r}");
            (
                r["workflow_id"].as_str().unwrap().to_owned(),
                r["result"].clone(),
            )
        })
        .collect();
    assert_eq!(payment_result.len(), orders, "distinct Payment ids");

    // The card was charged once per order, and each charge is one order's.
    let stats = payments.running.stats();
    let charges = payments.running.charges();
    assert_eq!(
        stats.charges as usize, orders,
        "seed {seed}: charges {stats:?}"
    );
    let charged_txns: HashMap<&str, &str> = charges
        .iter()
        .map(|(key, txn)| (txn.as_str(), key.as_str()))
        .collect();
    assert_eq!(charged_txns.len(), orders, "distinct transaction ids");
    let mut txns_of_orders = HashSet::new();
    for r in &order_runs {
        let id = r["workflow_id"].as_str().unwrap();
        let n = id.strip_prefix("order-").expect("an order id");
        let txn = r["result"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} completed with {}", r["result"]));
        assert_eq!(
            payment_result.get(&format!("payment-{n}")),
            Some(&Value::String(txn.to_owned())),
            "seed {seed}: {id}'s txn is its Payment's"
        );
        assert!(
            charged_txns.contains_key(txn),
            "seed {seed}: {id}'s txn {txn} was never charged"
        );
        assert!(
            txns_of_orders.insert(txn.to_owned()),
            "seed {seed}: txn {txn} is the result of two orders"
        );
    }

    // No event handled twice, no task run again after its outcome.
    let mut attempts = 0;
    for n in 0..orders {
        let history = client.get(&format!("/v1/workflows/order-{n}/history"));
        for (kind, name) in [
            ("event_received", "start_payment"),
            ("event_dispatched", "start_payment"),
            ("event_received", "payment_completed"),
            ("event_dispatched", "payment_completed"),
        ] {
            assert_eq!(
                count(&history, kind, name),
                1,
                "seed {seed}: order-{n} has not exactly one {kind} {name}: {history:#}"
            );
        }
        let history = client.get(&format!("/v1/workflows/payment-{n}/history"));
        let tasks: Vec<&Value> = events(&history)
            .iter()
            .filter(|e| e["type"] == "task_attempted" && e["name"] == "charge_card")
            .collect();
        attempts += tasks.len();
        let ok: Vec<usize> = (0..tasks.len())
            .filter(|&i| tasks[i]["result"].get("value").is_some())
            .collect();
        assert_eq!(
            ok.len(),
            1,
            "seed {seed}: payment-{n} has not exactly one successful charge_card: {history:#}"
        );
        assert_eq!(
            ok[0],
            tasks.len() - 1,
            "seed {seed}: payment-{n} ran charge_card again after it succeeded: {history:#}"
        );
        let key = tasks[ok[0]]["key"].as_str().expect("a task key");
        assert_eq!(
            charges.get(key).map(|t| Value::String(t.clone())).as_ref(),
            Some(&tasks[ok[0]]["result"]["value"]),
            "seed {seed}: payment-{n}'s recorded txn is what the service charged for its key"
        );
    }

    let restart_ms: Vec<u128> = restarts.iter().map(|d| d.as_millis()).collect();
    println!(
        "chaos summary: seed {seed}, orders {orders}, kills {kills} (orders sent before the \
         last kill: {sent_during_kills}), charges {}, charge requests {}, replayed {}, \
         charge_card attempts recorded {attempts}, first start {} ms, restarts {restart_ms:?} ms, \
         clients done {:.1}s, all completed {:.1}s, elapsed {:.1}s",
        stats.charges,
        stats.requests,
        stats.replayed,
        first_start.as_millis(),
        clients_done.as_secs_f64(),
        all_done.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
}

/// A task attempt recorded before a kill is not run again: the first
/// charge fails (503) and the host waits its 200 ms retry delay inside the
/// activation; the host is killed in that window, after the failed attempt
/// is in the history and before the second is made. After the restart the
/// re-executed activation goes on with attempt 2, not attempt 1 again.
#[test]
fn a_task_recorded_before_a_kill_is_not_run_again() {
    let payments = Payments::start(1);
    let url = payments.running.url();
    let bed = bed();
    let mut host = Host::new(&bed, &url);
    host.start();
    let client = host.client();
    client.start_order(0, &url);
    client.start_payment(0);

    // Wait for the failed attempt 1 to be recorded, then kill at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, history) = client.http(
            "GET",
            "/v1/workflows/payment-0/history",
            None,
            Duration::from_secs(30),
        );
        if status == 200
            && events(&history)
                .iter()
                .any(|e| e["type"] == "task_attempted" && e["attempt"] == 1)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt 1: {history:#}");
        std::thread::sleep(Duration::from_millis(2));
    }
    host.kill();
    let at_kill = payments.running.stats();
    assert_eq!(
        at_kill.requests, 1,
        "the kill came after the retry delay (attempt 2 already made): {at_kill:?}"
    );
    assert_eq!(at_kill.charges, 0);

    host.start();
    let (status, result) = client.http(
        "GET",
        "/v1/workflows/order-0/result?wait_ms=30000",
        None,
        Duration::from_secs(60),
    );
    assert_eq!(status, 200, "{result}");
    let history = client.get("/v1/workflows/payment-0/history");
    let attempts: Vec<(u64, bool)> = events(&history)
        .iter()
        .filter(|e| e["type"] == "task_attempted")
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["result"].get("value").is_some(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![(1, false), (2, true)],
        "attempt 1 recorded once, then attempt 2: {history:#}"
    );
    let stats = payments.running.stats();
    assert_eq!(
        (stats.requests, stats.charges),
        (2, 1),
        "one refused request, one charge: {stats:?}"
    );
    let order = client.get("/v1/workflows/order-0");
    assert_eq!(order["status"], "completed", "{order}");
    let charges = payments.running.charges();
    assert_eq!(
        charges.values().next().map(|t| Value::String(t.clone())),
        Some(order["result"].clone())
    );
}
