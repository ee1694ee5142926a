//! Child workflows (SPEC 7) and the seed's Order/Payment, on real
//! components.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::testbed::{Backend, TestBed, backend, finish, history_kinds, result, until};
use serde_json::{Value, json};
use wasmflow_host::{ErrorKind, Host, RunId, RunStatus, StartOptions};

const LIMIT: Duration = Duration::from_secs(60);

async fn spawner(host: &Host, id: &str, input: Value) -> RunId {
    host.start(
        "Spawner",
        &input.to_string(),
        StartOptions::new().workflow_id(id),
    )
    .await
    .unwrap()
    .run_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_order_payment_example_runs_end_to_end() {
    let sandbox = TestBed::new(&["order-payment"]);
    let host = sandbox.host().await;
    let order = host
        .start(
            "Order",
            r#"{"order_id": "abc", "amount": 42.5}"#,
            StartOptions::new().workflow_id("order-abc"),
        )
        .await
        .unwrap();
    until(&host, order.run_id, LIMIT, |r| {
        r.status == RunStatus::Waiting
    })
    .await;
    host.send("order-abc", "start_payment", "").await.unwrap();
    let done = finish(&host, order.run_id, LIMIT).await;
    let txn_id = result(&done);
    assert!(txn_id.as_str().unwrap().starts_with("txn-"), "{txn_id}");

    let children = host.children(order.run_id).await.unwrap();
    assert_eq!(children.len(), 1);
    let payment = &children[0];
    assert_eq!(payment.workflow_type, "Payment");
    assert_eq!(payment.workflow_id, "payment-abc");
    assert_eq!(payment.parent_run_id, Some(order.run_id));
    let payment = finish(&host, payment.run_id, LIMIT).await;
    assert_eq!(
        result(&payment),
        txn_id,
        "both complete with the transaction id"
    );
    let payment_store = host.store(payment.run_id).await.unwrap();
    assert_eq!(payment_store["amount"], json!(42.5));
    let order_store = host.store(order.run_id).await.unwrap();
    assert_eq!(order_store["txn_id"], txn_id);

    assert_eq!(
        history_kinds(&host, order.run_id).await,
        [
            "run_started",
            "activation_completed", // order_start: wait
            "event_received",       // start_payment
            "event_dispatched",
            "activation_completed", // start_payment: start Payment, wait
            "child_started",
            "event_received", // payment_completed, from the child's commit
            "event_dispatched",
            "activation_completed", // on_payment_done: complete
            "run_completed",
        ]
    );
    assert_eq!(
        history_kinds(&host, payment.run_id).await,
        [
            "run_started",
            "activation_completed", // payment_start
            "task_attempted",       // charge_card, recorded before payment_process goes on
            "activation_completed", // payment_process
            "activation_completed", // payment_done: send_to_parent, complete
            "event_sent_to_parent",
            "run_completed",
        ]
    );
    // A child run counts as started, like a root run.
    let metrics = host.metrics().await.unwrap();
    for ty in ["Order", "Payment"] {
        assert!(
            metrics.contains(&format!(
                r#"wasmflow_runs_started_total{{workflow_type="{ty}"}} 1"#
            )),
            "{ty} started once: {metrics}"
        );
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_exists_only_if_its_parents_activation_commits() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let parent = spawner(
        &host,
        "failing-parent",
        json!({"children": [{"type": "Waiter", "id": "orphan-to-be"}], "then": "fail"}),
    )
    .await;
    let done = finish(&host, parent, LIMIT).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(host.children(parent).await.unwrap().is_empty());
    assert!(
        host.latest_run("orphan-to-be").await.is_err(),
        "no child run exists"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_an_active_child_again_returns_the_same_handle() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let waiter = json!({"type": "Waiter", "id": "kid"});
    // Twice in one activation, then again from a later activation.
    let parent = spawner(
        &host,
        "dedup",
        json!({"children": [waiter, waiter], "then": "wait"}),
    )
    .await;
    until(&host, parent, LIMIT, |r| r.status == RunStatus::Waiting).await;
    host.send("dedup", "spawn", &json!({"children": [waiter]}).to_string())
        .await
        .unwrap();
    host.send("dedup", "done", "").await.unwrap();
    let done = result(&finish(&host, parent, LIMIT).await);
    let handles = done["handles"].as_array().unwrap();
    assert_eq!(handles.len(), 3);
    let run_ids: Vec<&Value> = handles.iter().map(|h| &h["run_id"]).collect();
    assert!(run_ids.iter().all(|r| *r == run_ids[0]), "{handles:?}");
    let children = host.children(parent).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(json!(children[0].run_id.to_string()), *run_ids[0]);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_held_by_an_unrelated_run_is_a_catchable_error() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let stranger = host
        .start("Waiter", "{}", StartOptions::new().workflow_id("taken"))
        .await
        .unwrap();
    let parent = spawner(
        &host,
        "late-comer",
        json!({
            "children": [
                {"type": "Waiter", "id": "taken"},
                {"type": "NoSuchType", "id": "ghost"},
                {"type": "Echo", "id": "bad-input", "input": {"y": 1}},
            ],
            "then": "complete",
        }),
    )
    .await;
    let done = result(&finish(&host, parent, LIMIT).await);
    let handles = done["handles"].as_array().unwrap();
    assert_eq!(handles[0]["error"], "WorkflowAlreadyRunning");
    assert!(
        handles[0]["message"]
            .as_str()
            .unwrap()
            .contains(&stranger.run_id.to_string())
    );
    assert_eq!(handles[1]["error"], "UnknownWorkflowType");
    assert!(
        handles[1]["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchType")
    );
    assert_eq!(handles[2]["error"], "InvalidPayload");
    assert!(
        handles[2]["message"]
            .as_str()
            .unwrap()
            .contains("missing key `x`")
    );
    assert!(host.children(parent).await.unwrap().is_empty());
    // The stranger is untouched.
    assert_eq!(
        host.run(stranger.run_id).await.unwrap().status,
        RunStatus::Waiting
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_taken_while_the_activation_ran_is_seen_on_re_execution() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    // The parent registers child `contested`, then stays busy; meanwhile an
    // unrelated run takes the id. The parent's commit must not create a
    // second active `contested`: it executes again and sees the holder.
    let parent = spawner(
        &host,
        "slow-parent",
        json!({"children": [{"type": "Echo", "id": "contested", "input": {"x": 1}}],
               "then": "complete", "spin_ms": 1500}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stranger = host
        .start("Waiter", "{}", StartOptions::new().workflow_id("contested"))
        .await
        .unwrap();
    let done = result(&finish(&host, parent, LIMIT).await);
    assert_eq!(
        done["handles"][0]["error"], "WorkflowAlreadyRunning",
        "{done}"
    );
    assert!(host.children(parent).await.unwrap().is_empty());
    assert_eq!(
        host.run(stranger.run_id).await.unwrap().status,
        RunStatus::Waiting
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_executed_activation_creates_no_second_child() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let parent = spawner(
        &host,
        "crashy",
        json!({"children": [{"type": "Echo", "id": "only-once", "input": {"x": 7}, "notify": true}],
               "then": "wait", "expect": 1, "spin_ms": 1500}),
    )
    .await;
    // The host goes away while the parent's start is still running.
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(host);
    let host = sandbox.host().await;
    let done = result(&finish(&host, parent, LIMIT).await);
    assert_eq!(done["outcomes"][0]["status"], "completed");
    assert_eq!(done["outcomes"][0]["result"], 7);
    let children = host.children(parent).await.unwrap();
    assert_eq!(children.len(), 1, "one child, not two");
    assert_eq!(
        done["handles"][0]["run_id"],
        json!(children[0].run_id.to_string())
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_child_finished_its_id_starts_a_new_run() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let echo = json!({"type": "Echo", "id": "again", "input": {"x": 1}, "notify": true});
    let parent = spawner(
        &host,
        "repeat",
        json!({"children": [echo], "then": "wait", "expect": 2}),
    )
    .await;
    // Wait for the first child's notice, then start the same id again.
    until(&host, parent, LIMIT, |r| {
        r.status == RunStatus::Waiting && r.seq >= 3
    })
    .await;
    host.send("repeat", "spawn", &json!({"children": [echo]}).to_string())
        .await
        .unwrap();
    let done = result(&finish(&host, parent, LIMIT).await);
    let handles = done["handles"].as_array().unwrap();
    assert_ne!(handles[0]["run_id"], handles[1]["run_id"]);
    assert_eq!(host.children(parent).await.unwrap().len(), 2);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_parent_delivers_exactly_once_and_bad_events_are_catchable() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let parent = spawner(
        &host,
        "listener",
        json!({"children": [
            {"type": "Reporter", "id": "r1", "input": {"value": 1}},
            {"type": "Reporter", "id": "r2", "input": {"value": "two"}},
            {"type": "BadReporter", "id": "bad", "notify": true},
        ], "then": "wait", "expect": 2}),
    )
    .await;
    let done = result(&finish(&host, parent, LIMIT).await);
    let mut reports: Vec<(String, Value)> = done["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["from"].as_str().unwrap().to_owned(), r["value"].clone()))
        .collect();
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        reports,
        [("r1".into(), json!(1)), ("r2".into(), json!("two"))]
    );
    let received = history_kinds(&host, parent)
        .await
        .into_iter()
        .filter(|k| *k == "event_received")
        .count();
    assert!(received >= 2);
    let bad = host.latest_run("bad").await.unwrap();
    let bad = finish(&host, bad.run_id, LIMIT).await;
    assert_eq!(
        result(&bad),
        json!({"unknown": "UnknownEvent", "missing": "InvalidPayload"})
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_notices_arrive_for_every_terminal_status() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let notify = |ty: &str, id: &str, extra: Value| {
        let mut child = json!({"type": ty, "id": id, "notify": true});
        if let (Some(c), Some(e)) = (child.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        child
    };
    let parent = spawner(
        &host,
        "watcher",
        json!({"children": [
            notify("Echo", "n-completed", json!({"input": {"x": "fine"}})),
            notify("Boom", "n-failed", json!({})),
            notify("Waiter", "n-cancelled", json!({})),
            notify("Waiter", "n-terminated", json!({})),
            notify("Waiter", "n-timed-out", json!({"timeout_ms": 300})),
        ], "then": "wait", "expect": 5}),
    )
    .await;
    let cancelled = until_exists(&host, "n-cancelled").await;
    until(&host, cancelled, LIMIT, |r| r.status == RunStatus::Waiting).await;
    host.cancel("n-cancelled", "not needed").await.unwrap();
    let terminated = until_exists(&host, "n-terminated").await;
    until(&host, terminated, LIMIT, |r| r.status == RunStatus::Waiting).await;
    host.terminate("n-terminated", "stop now").await.unwrap();

    let done = result(&finish(&host, parent, LIMIT).await);
    let outcomes: BTreeMap<String, Value> = done["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["workflow_id"].as_str().unwrap().to_owned(), o.clone()))
        .collect();
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    let status = |id: &str| outcomes[id]["status"].as_str().unwrap().to_owned();
    let kind = |id: &str| outcomes[id]["error"]["kind"].as_str().unwrap().to_owned();
    assert_eq!(status("n-completed"), "completed");
    assert_eq!(outcomes["n-completed"]["result"], "fine");
    assert_eq!(status("n-failed"), "failed");
    assert_eq!(kind("n-failed"), "Application");
    assert_eq!(status("n-cancelled"), "cancelled");
    assert_eq!(outcomes["n-cancelled"]["error"]["message"], "not needed");
    assert_eq!(status("n-terminated"), "terminated");
    assert_eq!(kind("n-terminated"), "Terminated");
    assert_eq!(status("n-timed-out"), "timed_out");
    assert_eq!(kind("n-timed-out"), "WorkflowTimeout");
    // The outcome names the child's run.
    let timed_out = host.latest_run("n-timed-out").await.unwrap();
    assert_eq!(
        outcomes["n-timed-out"]["run_id"],
        json!(timed_out.run_id.to_string())
    );
    assert_eq!(timed_out.status, RunStatus::Failed);
    assert_eq!(timed_out.error.unwrap().kind, ErrorKind::WorkflowTimeout);
    host.shutdown().await;
}

async fn until_exists(host: &Host, workflow_id: &str) -> RunId {
    for _ in 0..2000 {
        if let Ok(run) = host.latest_run(workflow_id).await {
            return run.run_id;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("run `{workflow_id}` never appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_policies_apply_when_the_parent_ends() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let parent = spawner(
        &host,
        "closer",
        json!({"children": [
            {"type": "Waiter", "id": "c-abandon"},
            {"type": "Waiter", "id": "c-cancel", "close": "cancel"},
            {"type": "Waiter", "id": "c-terminate", "close": "terminate"},
            {"type": "Waiter", "id": "c-busy", "close": "cancel", "input": {"spin_ms": 1200}},
        ], "then": "wait"}),
    )
    .await;
    for id in ["c-abandon", "c-cancel", "c-terminate"] {
        let run = until_exists(&host, id).await;
        until(&host, run, LIMIT, |r| r.status == RunStatus::Waiting).await;
    }
    let busy = until_exists(&host, "c-busy").await;
    host.send("closer", "done", "").await.unwrap();
    finish(&host, parent, LIMIT).await;

    let status = |id: &'static str| {
        let host = &host;
        async move { host.latest_run(id).await.unwrap().status }
    };
    assert_eq!(status("c-abandon").await, RunStatus::Waiting);
    assert_eq!(status("c-cancel").await, RunStatus::Cancelled);
    assert_eq!(status("c-terminate").await, RunStatus::Terminated);
    // The busy child is cancelled once its activation ends.
    let busy = finish(&host, busy, LIMIT).await;
    assert_eq!(busy.status, RunStatus::Cancelled);
    let kinds = history_kinds(&host, busy.run_id).await;
    assert_eq!(
        kinds,
        [
            "run_started",
            "cancel_requested",
            "activation_completed",
            "run_cancelled"
        ]
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_a_thousand_children() {
    let sandbox = TestBed::new(&["fan-out"]);
    let host = sandbox.host().await;
    let n: u64 = 1000;
    let run = host
        .start("FanOut", &json!({"n": n}).to_string(), StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    let expected: u64 = (0..n).map(|i| i * i).sum();
    assert_eq!(result(&done), json!(expected));
    let children = host.children(run.run_id).await.unwrap();
    assert_eq!(children.len() as u64, n);
    assert!(children.iter().all(|c| c.status == RunStatus::Completed));
    let dispatched = history_kinds(&host, run.run_id)
        .await
        .into_iter()
        .filter(|k| *k == "event_dispatched")
        .count();
    assert_eq!(dispatched as u64, n, "every report handled exactly once");
    host.shutdown().await;
}

/// Ten thousand Order/Payment at once, far more runs than instance slots,
/// every slot busy. (At this load the benchmark once ran out of wasmtime's
/// fiber stacks, which the pool now sizes at two per slot.) On PostgreSQL,
/// two thousand, still far more than slots, in a fifth of the time (one host
/// drives about a hundred Orders a second there on two cores, against
/// several hundred on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_orders_at_once_all_complete() {
    let orders = match backend() {
        Backend::Sqlite => 10_000,
        Backend::Postgres => 2_000,
    };
    let sandbox = TestBed::new(&["order-payment"]);
    let host = std::sync::Arc::new(sandbox.host().await);
    let mut tasks = Vec::new();
    for i in 0..orders {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let input = json!({"order_id": format!("o{i}"), "amount": 1.0 + i as f64});
            let run = host
                .start("Order", &input.to_string(), StartOptions::new())
                .await
                .unwrap();
            host.send_to_run(run.run_id, "start_payment", "")
                .await
                .unwrap();
            finish(&host, run.run_id, Duration::from_secs(300)).await
        }));
    }
    for task in tasks {
        let done = task.await.unwrap();
        assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    }
}
