//! Chaos: the real `wasmflow serve` killed with SIGKILL again and again
//! while it runs Order/Payment workflows that charge a real (loopback)
//! payments service. Every order must complete exactly once, every card be
//! charged exactly once, and no recorded task or dispatched event run twice.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::testbed::TestBed;
use crate::testbed::fleet::{
    Host, Load, Payments, XorShift, chaos_seed, check_exactly_once, events,
};

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
    let url = payments.url();
    let bed = bed();
    let mut host = Host::new(&bed, &url);
    let first_start = host.start();

    // The clients start every Order, then send it start_payment, through
    // the kills.
    let load = Load::start(&host.client(), &url, orders, 4);

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
    let sent_during_kills = load.sent();
    load.finish();
    let clients_done = began.elapsed();

    let tally = check_exactly_once(
        &host.client(),
        &payments,
        orders,
        Duration::from_secs(120),
        &format!("seed {seed}, {kills} kills"),
    );
    let restart_ms: Vec<u128> = restarts.iter().map(|d| d.as_millis()).collect();
    println!(
        "chaos summary: seed {seed}, orders {orders}, kills {kills} (orders sent before the \
         last kill: {sent_during_kills}), {tally:?}, first start {} ms, restarts \
         {restart_ms:?} ms, clients done {:.1}s, elapsed {:.1}s",
        first_start.as_millis(),
        clients_done.as_secs_f64(),
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
    let url = payments.url();
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
