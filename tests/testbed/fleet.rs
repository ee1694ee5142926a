//! Real `wasmflow serve` processes running Order/Payment workflows that
//! charge a real (loopback) payments service; API clients that drive them
//! over HTTP through kills, restarts and database outages; and the check
//! that every Order completed exactly once. `chaos::` kills one host again
//! and again; `hosts::` runs several on one PostgreSQL database.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::testbed::TestBed;

/// The payments service's bearer token, a secret of the hosts' config.
pub const TOKEN: &str = "chaos-token";

/// A tiny seeded xorshift64*: reproducible kill timings without a crate.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
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
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// `WASMFLOW_CHAOS_SEED`, or one from the clock (printed by the tests).
pub fn chaos_seed() -> u64 {
    std::env::var("WASMFLOW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// The payments service, on a runtime of its own in the test process: it
/// outlives every kill of a host.
pub struct Payments {
    pub running: payments_service::Running,
    _runtime: tokio::runtime::Runtime,
}

impl Payments {
    /// The service; it refuses its first `fail_first` requests (503).
    pub fn start(fail_first: u64) -> Payments {
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

    pub fn url(&self) -> String {
        self.running.url()
    }
}

/// The API addresses of a group of hosts, one slot per host: empty while
/// that host is down. Clients spread over the slots that are up.
#[derive(Clone)]
pub struct Addresses(Arc<RwLock<Vec<String>>>);

impl Addresses {
    pub fn new(hosts: usize) -> Addresses {
        Addresses(Arc::new(RwLock::new(vec![String::new(); hosts])))
    }

    fn set(&self, slot: usize, addr: String) {
        self.0.write().expect("addresses")[slot] = addr;
    }

    /// The `turn`-th address of a host that is up (any, if none is).
    fn pick(&self, turn: usize) -> String {
        let all = self.0.read().expect("addresses");
        let up: Vec<&String> = all.iter().filter(|a| !a.is_empty()).collect();
        match up.len() {
            0 => all[turn % all.len()].clone(),
            n => up[turn % n].clone(),
        }
    }
}

/// `wasmflow serve` on a database and a plugins dir, restartable; its
/// current address is in its slot of the group's [`Addresses`].
pub struct Host {
    plugins: PathBuf,
    db_args: Vec<OsString>,
    config: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    addrs: Addresses,
    slot: usize,
}

impl Host {
    /// The one host of `bed`'s database.
    pub fn new(bed: &TestBed, payments_url: &str) -> Host {
        Host::on(bed, bed.host_db_args(), payments_url, &Addresses::new(1), 0)
    }

    /// A host of a group: `bed`'s plugins and config, the database of
    /// `db_args`, slot `slot` of `addrs`.
    pub fn on(
        bed: &TestBed,
        db_args: Vec<OsString>,
        payments_url: &str,
        addrs: &Addresses,
        slot: usize,
    ) -> Host {
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
            db_args,
            config,
            dir: bed.path().to_owned(),
            child: None,
            addrs: addrs.clone(),
            slot,
        }
    }

    /// Start `serve` and wait until `/healthz` answers; how long it took.
    pub fn start(&mut self) -> Duration {
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
            .env_remove("WASMFLOW_DB")
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
        self.addrs.set(self.slot, addr);
        self.child = Some(child);
        began.elapsed()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.signal("-9");
    }

    /// SIGTERM (a graceful stop), and wait for the process to exit.
    pub fn stop(&mut self) {
        self.signal("-TERM");
    }

    fn signal(&mut self, signal: &str) {
        let mut child = self.child.take().expect("the host is running");
        self.addrs.set(self.slot, String::new());
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
        let _ = child.wait();
    }

    /// This host's API address while it runs (`http://127.0.0.1:PORT`).
    pub fn addr(&self) -> String {
        self.addrs.0.read().expect("addresses")[self.slot].clone()
    }

    /// A client of this host's group.
    pub fn client(&self) -> Client {
        Client::new(&self.addrs, self.slot)
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

/// An API client that follows a group of hosts across restarts: each
/// request goes to a host that is up, and after no answer or a server
/// error, to the next.
pub struct Client {
    agent: ureq::Agent,
    addrs: Addresses,
    turn: AtomicUsize,
    /// Every server error answered (status and `kind`), for the tests to
    /// check they were the ones expected.
    pub server_errors: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Client {
    /// A client that starts at host `first` of `addrs`.
    pub fn new(addrs: &Addresses, first: usize) -> Client {
        Client {
            agent: agent(),
            addrs: addrs.clone(),
            turn: AtomicUsize::new(first),
            server_errors: Arc::default(),
        }
    }

    /// Another client of the same hosts, starting at host `first`, sharing
    /// the record of server errors.
    pub fn another(&self, first: usize) -> Client {
        Client {
            server_errors: self.server_errors.clone(),
            ..Client::new(&self.addrs, first)
        }
    }

    /// One attempt: the status and JSON body, or `Err` when no answer came
    /// (the host is down, or was killed mid-request).
    pub fn try_http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let addr = self.addrs.pick(self.turn.load(Ordering::Relaxed));
        let url = format!("{addr}{path}");
        let response = if method == "GET" {
            self.agent.get(&url).call()
        } else {
            match body {
                Some(b) => self.agent.post(&url).send_json(b),
                None => self.agent.post(&url).send_empty(),
            }
        };
        let answer = response.map_err(|e| e.to_string()).and_then(|mut r| {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Ok((status, body))
        });
        match &answer {
            Ok((status, _)) if *status < 500 => {}
            Ok((status, body)) => {
                let kind = body["kind"].as_str().unwrap_or("").to_owned();
                self.server_errors
                    .lock()
                    .expect("server errors")
                    .push((*status, kind));
                self.turn.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.turn.fetch_add(1, Ordering::Relaxed);
            }
        }
        answer
    }

    /// A request retried until an answer that is not a server error comes,
    /// within `limit`. Only for requests safe to repeat.
    pub fn http(
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

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.http("GET", path, None, Duration::from_secs(90));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Start an Order. A repeat after a lost answer finds it started: 409.
    pub fn start_order(&self, n: usize, payments_url: &str) {
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
    pub fn start_payment(&self, n: usize) {
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

    /// Every run of `workflow_type`, page by page.
    pub fn list(&self, workflow_type: &str) -> Vec<Value> {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/v1/workflows?type={workflow_type}&limit=1000"),
                Some(c) => format!("/v1/workflows?type={workflow_type}&limit=1000&cursor={c}"),
            };
            let page = self.get(&path);
            runs.extend(page["runs"].as_array().expect("a list of runs").clone());
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return runs,
            }
        }
    }
}

/// History entries of `type` `kind` named `name`.
pub fn count(history: &Value, kind: &str, name: &str) -> usize {
    events(history)
        .iter()
        .filter(|e| e["type"] == kind && e["name"] == name)
        .count()
}

pub fn events(history: &Value) -> &Vec<Value> {
    history["events"].as_array().expect("history events")
}

/// `orders` Orders started and sent `start_payment` by `threads` client
/// threads of `client`'s hosts, in order of their numbers, while the test
/// goes on. [`Load::sent`] says how far they got.
pub struct Load {
    next: Arc<AtomicUsize>,
    orders: usize,
    done: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(client: &Client, payments_url: &str, orders: usize, threads: usize) -> Load {
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..threads)
            .map(|i| {
                let client = client.another(i);
                let next = next.clone();
                let url = payments_url.to_owned();
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
        Load {
            next,
            orders,
            done,
            watcher: Some(watcher),
        }
    }

    /// Orders handed to a client so far.
    pub fn sent(&self) -> usize {
        self.next.load(Ordering::SeqCst).min(self.orders)
    }

    /// Wait until `n` orders were handed to clients (or all were sent).
    pub fn wait_sent(&self, n: usize) {
        while self.sent() < n.min(self.orders) && !self.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for every client to finish; a client's panic fails the test.
    pub fn finish(mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.join().expect("the clients");
        }
        assert!(self.done.load(Ordering::SeqCst));
    }
}

/// What [`check_exactly_once`] counted.
#[derive(Debug)]
pub struct Tally {
    pub charges: u64,
    pub charge_requests: u64,
    pub replayed: u64,
    /// `charge_card` attempts recorded in the Payments' histories.
    pub attempts: usize,
}

/// Wait (up to `limit`) for every one of `orders` Orders to complete, then
/// check each completed exactly once: one run per Order and per Payment,
/// one charge per order and each the result of its own Order and Payment,
/// every event received and dispatched once, no task run again after it
/// succeeded. `label` (the seed, the test) heads every failure.
pub fn check_exactly_once(
    client: &Client,
    payments: &Payments,
    orders: usize,
    limit: Duration,
    label: &str,
) -> Tally {
    let deadline = Instant::now() + limit;
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
                "{label}: only {completed} of {orders} orders completed within {limit:?}; \
                 by status {by_status:?}; e.g. {stuck:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    assert_eq!(order_runs.len(), orders, "{label}: one run per order");
    let payment_runs = client.list("Payment");
    assert_eq!(payment_runs.len(), orders, "{label}: one Payment per Order");
    let payment_result: HashMap<String, Value> = payment_runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "completed", "{label}: {r}");
            (
                r["workflow_id"].as_str().expect("an id").to_owned(),
                r["result"].clone(),
            )
        })
        .collect();
    assert_eq!(
        payment_result.len(),
        orders,
        "{label}: distinct Payment ids"
    );

    // The card was charged once per order, and each charge is one order's.
    let stats = payments.running.stats();
    let charges = payments.running.charges();
    assert_eq!(stats.charges as usize, orders, "{label}: charges {stats:?}");
    let charged_txns: HashMap<&str, &str> = charges
        .iter()
        .map(|(key, txn)| (txn.as_str(), key.as_str()))
        .collect();
    assert_eq!(
        charged_txns.len(),
        orders,
        "{label}: distinct transaction ids"
    );
    let mut txns_of_orders = HashSet::new();
    for r in &order_runs {
        let id = r["workflow_id"].as_str().expect("an id");
        let n = id.strip_prefix("order-").expect("an order id");
        let txn = r["result"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: {id} completed with {}", r["result"]));
        assert_eq!(
            payment_result.get(&format!("payment-{n}")),
            Some(&Value::String(txn.to_owned())),
            "{label}: {id}'s txn is its Payment's"
        );
        assert!(
            charged_txns.contains_key(txn),
            "{label}: {id}'s txn {txn} was never charged"
        );
        assert!(
            txns_of_orders.insert(txn.to_owned()),
            "{label}: txn {txn} is the result of two orders"
        );
    }

    // No event handled twice, no task run again after its outcome: the
    // histories, read by four clients at once.
    let charges = Arc::new(charges);
    let attempts: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let client = client.another(w);
                let charges = charges.clone();
                scope.spawn(move || {
                    let mut attempts = 0;
                    for n in (w..orders).step_by(4) {
                        attempts += check_histories(&client, n, &charges, label);
                    }
                    attempts
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a history checker"))
            .sum()
    });
    Tally {
        charges: stats.charges,
        charge_requests: stats.requests,
        replayed: stats.replayed,
        attempts,
    }
}

/// Order `n`'s and its Payment's histories: each event once, one successful
/// `charge_card`, the last, with the transaction the service charged for
/// its key. How many `charge_card` attempts were recorded.
fn check_histories(
    client: &Client,
    n: usize,
    charges: &HashMap<String, String>,
    label: &str,
) -> usize {
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
            "{label}: order-{n} has not exactly one {kind} {name}: {history:#}"
        );
    }
    let history = client.get(&format!("/v1/workflows/payment-{n}/history"));
    let tasks: Vec<&Value> = events(&history)
        .iter()
        .filter(|e| e["type"] == "task_attempted" && e["name"] == "charge_card")
        .collect();
    let ok: Vec<usize> = (0..tasks.len())
        .filter(|&i| tasks[i]["result"].get("value").is_some())
        .collect();
    assert_eq!(
        ok.len(),
        1,
        "{label}: payment-{n} has not exactly one successful charge_card: {history:#}"
    );
    assert_eq!(
        ok[0],
        tasks.len() - 1,
        "{label}: payment-{n} ran charge_card again after it succeeded: {history:#}"
    );
    let key = tasks[ok[0]]["key"].as_str().expect("a task key");
    assert_eq!(
        charges.get(key).map(|t| Value::String(t.clone())).as_ref(),
        Some(&tasks[ok[0]]["result"]["value"]),
        "{label}: payment-{n}'s recorded txn is what the service charged for its key"
    );
    tasks.len()
}
