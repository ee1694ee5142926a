//! Several hosts on one PostgreSQL database (SPEC 8): work started on one
//! host, events sent through another, results awaited on a third; every
//! workflow completes exactly once. Each test takes a fresh schema in the
//! server `cargo xtask test` starts (`WASMFLOW_TEST_POSTGRES`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wasmflow_host::{Database, Host, HostBuilder, RunStatus, StartOptions};

use crate::testbed::{TestBed, finish, result, until};

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
    let bed = TestBed::new(&["order-payment"]);
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
