//! Several hosts on one PostgreSQL database (SPEC 8): work started on one
//! host, events sent through another, results awaited on a third; three
//! `wasmflow serve` processes through a SIGKILL, a rolling restart, and the
//! database server restarted under them; every workflow completes exactly
//! once. Each test takes a fresh schema in the server `cargo xtask test`
//! starts (`WASMFLOW_TEST_POSTGRES`), or a server of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmflow_host::{Database, Host, HostBuilder, RunStatus, StartOptions};

use crate::testbed::fleet::{
    Addresses, Client, Host as ServeHost, Load, Payments, check_exactly_once,
};
use crate::testbed::{
    TEST_LEASE, TestBed, finish, fresh_postgres_schema, postgres_serve_args, result, until,
};

const LIMIT: Duration = Duration::from_secs(120);

/// A fresh schema of the test server.
async fn shared_database() -> Database {
    let url = tokio::task::spawn_blocking(xtask::postgres::fresh_schema)
        .await
        .expect("fresh_schema does not panic")
        .unwrap_or_else(|e| panic!("{e:#}"));
    Database::Postgres(url)
}

/// A host with its own plugins directory (the order-payment example) on
/// `db`.
async fn host_on(db: &Database) -> (TestBed, Host) {
    host_with(db, &["order-payment"]).await
}

/// A host on `db` whose plugins directory holds `components`.
async fn host_with(db: &Database, components: &[&str]) -> (TestBed, Host) {
    let bed = TestBed::new(components);
    let host = HostBuilder::new(db.clone())
        .plugins(bed.plugins())
        .cache_dir(bed.path().join("cache"))
        .lease_timeout(Duration::from_secs(2))
        .pool_size(4)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a host starts on PostgreSQL: {e}"));
    (bed, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_on_one_database_complete_every_order_exactly_once() {
    let db = shared_database().await;
    let mut beds = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let (bed, host) = host_on(&db).await;
        beds.push(bed);
        hosts.push(Arc::new(host));
    }
    const ORDERS: usize = 60;
    let mut tasks = Vec::new();
    for i in 0..ORDERS {
        // Started on one host, the event sent through the next, the result
        // awaited on the third.
        let starter = hosts[i % 3].clone();
        let sender = hosts[(i + 1) % 3].clone();
        let waiter = hosts[(i + 2) % 3].clone();
        tasks.push(tokio::spawn(async move {
            let input = json!({"order_id": format!("o{i}"), "amount": 1.0 + i as f64});
            let run = starter
                .start(
                    "Order",
                    &input.to_string(),
                    StartOptions::new().workflow_id(format!("order-{i}")),
                )
                .await
                .expect("start on one host");
            until(&sender, run.run_id, LIMIT, |r| {
                r.status == RunStatus::Waiting
            })
            .await;
            sender
                .send(&format!("order-{i}"), "start_payment", "")
                .await
                .expect("send through another host");
            (i, finish(&waiter, run.run_id, LIMIT).await)
        }));
    }
    for task in tasks {
        let (i, order) = task.await.expect("the order's task");
        assert_eq!(
            order.status,
            RunStatus::Completed,
            "order {i}: {:?}",
            order.error
        );
        let host = &hosts[i % 3];
        let children = host.children(order.run_id).await.expect("children");
        assert_eq!(children.len(), 1, "order {i} has exactly one Payment");
        let payment = finish(host, children[0].run_id, LIMIT).await;
        assert_eq!(
            result(&payment),
            result(&order),
            "order {i}: one transaction"
        );
        let history = host.history(order.run_id).await.expect("history");
        let received = history
            .iter()
            .filter(|h| h.event.kind() == "event_received")
            .count();
        assert_eq!(
            received, 2,
            "order {i}: start_payment and payment_done, once each"
        );
    }
    for host in hosts {
        if let Ok(host) = Arc::try_unwrap(host) {
            host.shutdown().await;
        }
    }
}

/// A run started on a host that then stopped for good is finished by a
/// host that never saw it start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_on_a_host_that_stopped_is_finished_by_another() {
    let db = shared_database().await;
    let (_bed_a, a) = host_on(&db).await;
    let order = a
        .start(
            "Order",
            r#"{"order_id": "x", "amount": 2.0}"#,
            StartOptions::new().workflow_id("order-x"),
        )
        .await
        .expect("start on host A");
    until(&a, order.run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    // Host A stops for good; host B starts afterwards and drives on.
    a.shutdown().await;
    let (_bed_b, b) = host_on(&db).await;
    b.send("order-x", "start_payment", "")
        .await
        .expect("send through host B");
    let done = finish(&b, order.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    b.shutdown().await;
}

/// Durable timers armed on three hosts fire once each, those of a host
/// that stopped before they were due too (another host's sweep fires them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_across_hosts_even_when_their_host_stops() {
    let db = shared_database().await;
    let mut beds = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let (bed, host) = host_with(&db, &["probe"]).await;
        beds.push(bed);
        hosts.push(host);
    }
    let mut runs = Vec::new();
    for i in 0..30 {
        let run = hosts[i % 3]
            .start("Sleeper", r#"{"ms": 1500}"#, StartOptions::new())
            .await
            .expect("start a sleeper");
        runs.push(run.run_id);
    }
    for run_id in &runs {
        until(&hosts[1], *run_id, LIMIT, |r| {
            r.status == RunStatus::Waiting && r.timer.is_some()
        })
        .await;
    }
    // Host 0 stops with its ten timers armed and not due yet.
    let first = hosts.remove(0);
    first.shutdown().await;
    for run_id in &runs {
        let done = finish(&hosts[0], *run_id, LIMIT).await;
        assert_eq!(result(&done), json!("woke after 1500 ms"));
        let history = hosts[1].history(*run_id).await.expect("history");
        let fired = history
            .iter()
            .filter(|h| h.event.kind() == "timer_fired")
            .count();
        assert_eq!(fired, 1, "run {run_id}: the timer fires once");
    }
    for host in hosts {
        host.shutdown().await;
    }
}

/// A plugin file dropped into one host's directory is startable on every
/// host (a host that starts later too); removed, it is startable nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_dropped_on_one_host_starts_on_every_host() {
    let db = shared_database().await;
    let (bed_a, a) = host_on(&db).await;
    // Host B's own directory is empty: it starts what host A deployed.
    let bed_b = TestBed::new(&[]);
    let start_b = || {
        HostBuilder::new(db.clone())
            .plugins(bed_b.plugins())
            .cache_dir(bed_b.path().join("cache"))
            .lease_timeout(TEST_LEASE)
            .pool_size(4)
            .start()
    };
    let b = start_b().await.expect("host B starts");
    let order = b
        .start(
            "Order",
            r#"{"order_id": "p", "amount": 1.0}"#,
            StartOptions::new(),
        )
        .await
        .expect("host B starts an Order from host A's plugin");
    b.send_to_run(order.run_id, "start_payment", "")
        .await
        .expect("send");
    assert_eq!(
        finish(&b, order.run_id, LIMIT).await.status,
        RunStatus::Completed
    );

    // A file dropped into host A's directory while both run.
    let dropped = Instant::now();
    bed_a.add("counter");
    let startable = |host: &Host| host.plugins().get("Counter").is_ok();
    while !(startable(&a) && startable(&b)) {
        assert!(
            dropped.elapsed() < Duration::from_secs(30),
            "Counter is not startable on both hosts after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let on_both = dropped.elapsed();
    let counter = b
        .start("Counter", r#"{"n": 3}"#, StartOptions::new())
        .await
        .expect("host B starts a Counter");
    assert_eq!(result(&finish(&b, counter.run_id, LIMIT).await), json!(3));

    // A host that starts afterwards has it too.
    let bed_c = TestBed::new(&[]);
    let c = HostBuilder::new(db.clone())
        .plugins(bed_c.plugins())
        .cache_dir(bed_c.path().join("cache"))
        .lease_timeout(TEST_LEASE)
        .start()
        .await
        .expect("host C starts");
    assert!(
        startable(&c),
        "a host started later starts deployed plugins"
    );

    // Removed from host A's directory: startable nowhere.
    let removed = Instant::now();
    std::fs::remove_file(bed_a.plugins().join("counter.wasm")).expect("remove");
    while startable(&a) || startable(&b) || startable(&c) {
        assert!(
            removed.elapsed() < Duration::from_secs(30),
            "Counter is still startable 30 s after its file was removed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = b
        .start("Counter", r#"{"n": 3}"#, StartOptions::new())
        .await
        .expect_err("Counter is retired");
    assert!(err.to_string().contains("Counter"), "{err}");
    println!(
        "a plugin dropped on host A: startable on A and B after {} ms; removed: gone from all \
         three after {} ms",
        on_both.as_millis(),
        removed.elapsed().as_millis()
    );
    for host in [a, b, c] {
        host.shutdown().await;
    }
}

/// Every client command works against any host and sees the same runs:
/// two `wasmflow serve` processes on one database, each command sent to
/// the host that did not handle the run before; a `result --wait` on host
/// A is answered when the run completes on host B.
#[test]
fn every_client_command_works_against_any_host() {
    let url = fresh_postgres_schema();
    let payments = Payments::start(0);
    let (beds, hosts) = serve_hosts(&url, 2, &["order-payment", "failing"], &payments);
    let (a, b) = (hosts[0].addr(), hosts[1].addr());
    let cli = |addr: &str, args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(args)
            .args(["--addr", addr])
            .env_remove("WASMFLOW_TOKEN")
            .env_remove("WASMFLOW_PLUGINS")
            .output()
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} on {addr}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let order = r#"{"order_id": "x", "amount": 5.0}"#;

    // Started on A, looked at and sent to on B, awaited on A meanwhile.
    cli(&a, &["start", "Order", "--id", "o1", "--input", order]);
    // The start answers once the run exists; its start activation may
    // still be running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cli(&b, &["status", "o1"]).contains("waiting") {
        assert!(
            std::time::Instant::now() < deadline,
            "o1 waits for its event, seen from B"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let waiting = std::process::Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["result", "o1", "--wait", "--addr", &a])
        .env_remove("WASMFLOW_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a long poll");
    std::thread::sleep(Duration::from_millis(300));
    cli(&b, &["send", "o1", "start_payment"]);
    let answered = waiting.wait_with_output().expect("the long poll ends");
    assert_eq!(answered.status.code(), Some(0));
    let result = String::from_utf8_lossy(&answered.stdout).into_owned();
    assert!(result.contains("txn-"), "the long poll on A: {result}");
    let summary = cli(&b, &["query", "o1", "summary"]);
    assert!(summary.contains("txn-"), "{summary}");
    assert!(cli(&a, &["history", "o1"]).contains("run_completed"));
    assert!(cli(&b, &["list", "--type", "Payment"]).contains("payment-x"));

    // Cancelled through B, terminated through A.
    cli(&a, &["start", "Order", "--id", "o2", "--input", order]);
    cli(&b, &["cancel", "o2"]);
    cli(&b, &["start", "Order", "--id", "o3", "--input", order]);
    cli(&a, &["terminate", "o3"]);
    let ended = |id: &str, status: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cli(&b, &["status", id]).contains(status) {
            assert!(Instant::now() < deadline, "{id} is not {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ended("o2", "cancelled");
    ended("o3", "terminated");

    // A run that failed on one host, retried through the other.
    cli(
        &a,
        &[
            "start",
            "Checkout",
            "--id",
            "c1",
            "--input",
            r#"{"items": []}"#,
        ],
    );
    ended("c1", "failed");
    cli(&b, &["retry", "c1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli(&a, &["history", "c1"]).contains("run_retried") {
        assert!(Instant::now() < deadline, "c1 was not retried");
        std::thread::sleep(Duration::from_millis(50));
    }
    ended("c1", "failed");

    // `upgrade` works on the shared database beside both hosts.
    cli(&a, &["start", "Order", "--id", "o4", "--input", order]);
    let upgrade = std::process::Command::new(env!("CARGO_BIN_EXE_wasmflow"))
        .args(["upgrade", "Order", "--plugins"])
        .arg(beds[0].plugins())
        .args(["--db", &url])
        .env_remove("WASMFLOW_DB")
        .output()
        .expect("run upgrade");
    let report = String::from_utf8_lossy(&upgrade.stdout).into_owned();
    assert_eq!(
        upgrade.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&upgrade.stderr)
    );
    assert!(report.starts_with("Order: "), "{report}");
}

/// `n` `wasmflow serve` processes on the PostgreSQL database `url`, each
/// with a plugins directory of its own holding `components`, started.
fn serve_hosts(
    url: &str,
    n: usize,
    components: &[&str],
    payments: &Payments,
) -> (Vec<TestBed>, Vec<ServeHost>) {
    let addrs = Addresses::new(n);
    let beds: Vec<TestBed> = (0..n).map(|_| TestBed::new(components)).collect();
    let mut hosts: Vec<ServeHost> = beds
        .iter()
        .enumerate()
        .map(|(i, bed)| ServeHost::on(bed, postgres_serve_args(url), &payments.url(), &addrs, i))
        .collect();
    for host in &mut hosts {
        host.start();
    }
    (beds, hosts)
}

/// Only ever "unavailable for now" (503): never an internal error.
fn assert_only_unavailable(client: &Client, label: &str) -> usize {
    let errors = client.server_errors.lock().expect("server errors").clone();
    for (status, kind) in &errors {
        assert!(
            *status == 503 && (kind == "DatabaseUnavailable" || kind == "ShuttingDown"),
            "{label}: a server error other than unavailable: {status} {kind}; all: {errors:?}"
        );
    }
    errors.len()
}

/// Three `wasmflow serve` processes on one database, 3,000 Orders spread
/// over them through the HTTP API; one host is killed (SIGKILL) half-way
/// and never comes back. The other two take its runs over once its leases
/// expire, and every Order completes exactly once.
#[test]
fn three_serve_hosts_one_killed_for_good_complete_every_order_once() {
    const ORDERS: usize = 3000;
    let began = Instant::now();
    let url = fresh_postgres_schema();
    let payments = Payments::start(0);
    let (_beds, mut hosts) = serve_hosts(&url, 3, &["order-payment"], &payments);
    let client = hosts[0].client();
    let load = Load::start(&client, &payments.url(), ORDERS, 6);
    load.wait_sent(ORDERS / 2);
    let killed_at = load.sent();
    hosts[1].kill();
    load.finish();
    let clients_done = began.elapsed();
    let label = format!("three hosts, host 1 killed at order {killed_at}");
    let tally = check_exactly_once(&client, &payments, ORDERS, Duration::from_secs(180), &label);
    let errors = assert_only_unavailable(&client, &label);
    println!(
        "{label}: {ORDERS} orders, {tally:?}, server errors {errors}, clients done {:.1}s, \
         elapsed {:.1}s",
        clients_done.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}

/// Under load, each of three hosts in turn is stopped (SIGTERM) and
/// started again: nothing is lost, every Order completes exactly once.
#[test]
fn a_rolling_restart_of_three_serve_hosts_loses_nothing() {
    const ORDERS: usize = 1200;
    let began = Instant::now();
    let url = fresh_postgres_schema();
    let payments = Payments::start(0);
    let (_beds, mut hosts) = serve_hosts(&url, 3, &["order-payment"], &payments);
    let client = hosts[0].client();
    let load = Load::start(&client, &payments.url(), ORDERS, 6);
    let mut restarts = Vec::new();
    for (i, host) in hosts.iter_mut().enumerate() {
        load.wait_sent(ORDERS * (i + 1) / 5);
        host.stop();
        restarts.push((load.sent(), host.start().as_millis()));
    }
    load.finish();
    let label = format!("rolling restart at (order, ms to start) {restarts:?}");
    let tally = check_exactly_once(&client, &payments, ORDERS, Duration::from_secs(180), &label);
    let errors = assert_only_unavailable(&client, &label);
    println!(
        "{label}: {ORDERS} orders, {tally:?}, server errors {errors}, elapsed {:.1}s",
        began.elapsed().as_secs_f64()
    );
}

/// The PostgreSQL server stops abruptly under load and starts again: the
/// hosts answer 503 `DatabaseUnavailable` meanwhile, resume by themselves,
/// and every Order completes exactly once. The server is this test's own.
#[test]
fn the_database_restarted_under_load_loses_nothing_acknowledged() {
    const ORDERS: usize = 900;
    let began = Instant::now();
    let cluster = xtask::postgres::Cluster::start().unwrap_or_else(|e| panic!("{e:#}"));
    let payments = Payments::start(0);
    let (_beds, hosts) = serve_hosts(cluster.url(), 2, &["order-payment"], &payments);
    let client = hosts[0].client();
    let load = Load::start(&client, &payments.url(), ORDERS, 6);
    load.wait_sent(ORDERS / 3);

    cluster.stop().unwrap_or_else(|e| panic!("{e:#}"));
    let stopped = Instant::now();
    // The API says so while the database is away.
    let probe = client.another(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Ok((503, body)) = probe.try_http("GET", "/v1/workflows/order-0", None) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no 503 while the database is down"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(answer["kind"], "DatabaseUnavailable", "{answer}");
    assert!(
        answer["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    std::thread::sleep(Duration::from_secs(1));
    cluster.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    let outage = stopped.elapsed();
    let sent_at_restart = load.sent();

    load.finish();
    let label = format!("database down for {outage:?} at order {sent_at_restart}");
    let tally = check_exactly_once(&client, &payments, ORDERS, Duration::from_secs(180), &label);
    let errors = assert_only_unavailable(&client, &label);
    println!(
        "{label}: {ORDERS} orders, {tally:?}, server errors {errors}, elapsed {:.1}s",
        began.elapsed().as_secs_f64()
    );
}
