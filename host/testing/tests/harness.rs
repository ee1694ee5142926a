//! The harness on real components: `examples/order-payment` (the seed's
//! Order and Payment) and the `probe` test guest's `Sleeper`.

mod common;

use std::time::Duration;

use common::component;
use serde_json::json;
use wasmflow_testing::{
    ErrorKind, Harness, HistoryEvent, HttpResponse, RunStatus, StartOptions, TaskResult,
};

async fn order_payment() -> Harness {
    Harness::new(component("order-payment"))
        .await
        .expect("a harness")
}

/// How many times `handler` completed an activation in `workflow_id`'s
/// history.
async fn completions(h: &Harness, workflow_id: &str, handler: &str) -> usize {
    h.history(workflow_id)
        .await
        .expect("the history")
        .iter()
        .filter(|r| matches!(&r.event, HistoryEvent::ActivationCompleted { handler: name, .. } if name == handler))
        .count()
}

#[tokio::test]
async fn an_order_completes_with_its_payments_txn_id() {
    let mut h = order_payment().await;
    h.start("Order", "order-1", json!({"order_id": "1", "amount": 42.5}))
        .await
        .unwrap();
    assert_eq!(h.status("order-1").await.unwrap(), RunStatus::Waiting);
    assert_eq!(
        h.query("order-1", "summary", json!({})).await.unwrap(),
        json!({"order_id": "1", "amount": 42.5, "txn_id": null})
    );
    assert!(h.children("order-1").await.unwrap().is_empty());

    h.send("order-1", "start_payment", json!({})).await.unwrap();

    let txn: String = h.result("order-1").await.unwrap();
    assert!(txn.starts_with("txn-"), "{txn}");
    let children = h.children("order-1").await.unwrap();
    assert_eq!(children.len(), 1);
    let payment = &children[0];
    assert_eq!(
        (
            payment.workflow_id.as_str(),
            payment.workflow_type.as_str(),
            payment.status
        ),
        ("payment-1", "Payment", RunStatus::Completed)
    );
    assert_eq!(h.result::<String>("payment-1").await.unwrap(), txn);
    assert_eq!(
        h.store_value::<String>("order-1", "txn_id").await.unwrap(),
        Some(txn.clone())
    );
    let attempts = h.task_attempts("payment-1", "charge_card").await.unwrap();
    assert_eq!(attempts.len(), 1, "one charge: {attempts:?}");
    assert_eq!(attempts[0].result, TaskResult::Value(json!(txn)));
    assert_eq!(h.restarts(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_stubbed_charge_card_answers_without_running() {
    let mut h = order_payment().await;
    h.stub_task("charge_card", Ok(json!("txn-stubbed")));
    h.start("Order", "order-2", json!({"order_id": "2", "amount": 10.0}))
        .await
        .unwrap();
    h.send("order-2", "start_payment", json!({})).await.unwrap();
    assert_eq!(h.result::<String>("order-2").await.unwrap(), "txn-stubbed");
    let attempts = h.task_attempts("payment-2", "charge_card").await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].result, TaskResult::Value(json!("txn-stubbed")));
    assert_eq!(attempts[0].attempt, 1);

    // A stubbed error is final: the Payment fails with it, the Order waits on.
    h.stub_task_of(
        "Payment",
        "charge_card",
        Err((ErrorKind::InvalidPayload, "card declined".to_owned())),
    );
    h.start("Order", "order-3", json!({"order_id": "3", "amount": 10.0}))
        .await
        .unwrap();
    h.send("order-3", "start_payment", json!({})).await.unwrap();
    assert_eq!(h.status("payment-3").await.unwrap(), RunStatus::Failed);
    let error = h.error("payment-3").await.unwrap().expect("an error");
    assert_eq!(error.kind, ErrorKind::InvalidPayload, "{error}");
    assert!(error.message.contains("card declined"), "{error}");
    assert_eq!(h.status("order-3").await.unwrap(), RunStatus::Waiting);
    let not_completed = h.result::<String>("payment-3").await.unwrap_err();
    assert!(
        matches!(
            not_completed,
            wasmflow_testing::HarnessError::NotCompleted {
                status: RunStatus::Failed,
                ..
            }
        ),
        "{not_completed}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_before_a_commit_executes_the_activation_again_and_replays_the_charge() {
    let mut h = order_payment().await;
    h.start("Order", "order-4", json!({"order_id": "4", "amount": 7.0}))
        .await
        .unwrap();
    // Commits from here: the Order's `start_payment` (1), the Payment's
    // start (2), then `payment_process`, which charged the card and
    // recorded it: that commit is dropped, the host crashes.
    h.crash_after(2);
    h.send("order-4", "start_payment", json!({})).await.unwrap();
    assert_eq!(h.restarts(), 1, "the host crashed and was opened again");

    let txn: String = h.result("order-4").await.unwrap();
    assert_eq!(h.result::<String>("payment-4").await.unwrap(), txn);
    // The charge ran once; the second execution got its recorded outcome.
    let attempts = h.task_attempts("payment-4", "charge_card").await.unwrap();
    assert_eq!(attempts.len(), 1, "charged once: {attempts:?}");
    assert_eq!(attempts[0].result, TaskResult::Value(json!(txn)));
    // The dropped commit left nothing; the re-execution's applied once.
    assert_eq!(completions(&h, "payment-4", "payment_process").await, 1);
    assert_eq!(
        h.store_value::<String>("payment-4", "txn_id")
            .await
            .unwrap(),
        Some(txn)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_the_orders_activations() {
    let mut h = order_payment().await;
    h.start("Order", "order-5", json!({"order_id": "5", "amount": 3.0}))
        .await
        .unwrap();
    // The Order's `start_payment` commit (which starts the child) is
    // dropped: after the restart it runs again and starts one child.
    h.crash_before_commit();
    h.send("order-5", "start_payment", json!({})).await.unwrap();
    assert_eq!(h.restarts(), 1);
    assert_eq!(h.children("order-5").await.unwrap().len(), 1);
    assert_eq!(completions(&h, "order-5", "start_payment").await, 1);
    let txn: String = h.result("order-5").await.unwrap();
    assert_eq!(h.result::<String>("payment-5").await.unwrap(), txn);
    h.shutdown().await;
}

#[tokio::test]
async fn a_workflow_timeout_fires_when_the_clock_reaches_it() {
    let mut h = order_payment().await;
    let options = StartOptions::new()
        .workflow_id("order-6")
        .timeout(Duration::from_secs(3600));
    h.start_with("Order", options, json!({"order_id": "6", "amount": 1.0}))
        .await
        .unwrap();
    h.advance(Duration::from_secs(3599)).await.unwrap();
    assert_eq!(h.status("order-6").await.unwrap(), RunStatus::Waiting);
    h.advance(Duration::from_secs(1)).await.unwrap();
    assert_eq!(h.status("order-6").await.unwrap(), RunStatus::Failed);
    let error = h.error("order-6").await.unwrap().expect("an error");
    assert_eq!(error.kind, ErrorKind::WorkflowTimeout, "{error}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_wait_timeout_fires_on_advance_not_before() {
    let mut h = Harness::new(component("probe")).await.unwrap();
    let started_at = h.now_ms();
    h.start("Sleeper", "sleeper", json!({"ms": 86_400_000u64}))
        .await
        .unwrap();
    let run = h.run("sleeper").await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(
        run.timer.map(|t| t.due_ms),
        Some(started_at + 86_400_000),
        "the timer is on the fake clock"
    );
    h.advance(Duration::from_secs(86_399)).await.unwrap();
    assert_eq!(h.status("sleeper").await.unwrap(), RunStatus::Waiting);
    h.advance(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        h.result::<String>("sleeper").await.unwrap(),
        "woke after 86400000 ms"
    );
    // A restart keeps the store and the fake clock.
    h.restart().await.unwrap();
    assert_eq!(h.status("sleeper").await.unwrap(), RunStatus::Completed);
    h.shutdown().await;
}

#[tokio::test]
async fn a_stubbed_payments_service_fails_once_and_the_retry_fires_on_advance() {
    let mut h = order_payment().await;
    h.stub_http_responses(
        "POST https://payments.test/charges",
        vec![
            HttpResponse::json(503, json!({"error": "try later"})),
            HttpResponse::json(201, json!({"txn_id": "txn-from-service"})),
        ],
    );
    h.start(
        "Order",
        "order-7",
        json!({"order_id": "7", "amount": 12.0, "payments_url": "https://payments.test"}),
    )
    .await
    .unwrap();
    h.send("order-7", "start_payment", json!({})).await.unwrap();

    // The first attempt got the 503: the Payment waits for its retry, due
    // after the policy's 200 ms (give or take its jitter) on the fake clock.
    let payment = h.run("payment-7").await.unwrap();
    assert_eq!(payment.status, RunStatus::Waiting, "{payment:?}");
    let retry = payment.timer.expect("a retry timer");
    assert!(retry.retry, "{retry:?}");
    let delay = retry.due_ms - h.now_ms();
    assert!((100..=300).contains(&delay), "{delay} ms");
    let attempts = h.task_attempts("payment-7", "charge_card").await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(!attempts[0].result.is_ok(), "{attempts:?}");
    assert_eq!(attempts[0].retry_at_ms, Some(retry.due_ms));
    let request = &attempts[0].requests[0];
    assert_eq!(
        (
            request.method.as_str(),
            request.path.as_str(),
            request.status
        ),
        ("POST", "/charges", Some(503))
    );

    h.advance(Duration::from_millis(delay - 1)).await.unwrap();
    assert_eq!(h.http_served("POST https://payments.test/charges"), 1);
    h.advance(Duration::from_millis(1)).await.unwrap();
    assert_eq!(
        h.result::<String>("order-7").await.unwrap(),
        "txn-from-service"
    );
    let attempts = h.task_attempts("payment-7", "charge_card").await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[1].attempt, 2);
    assert_eq!(attempts[0].key, attempts[1].key, "one idempotency key");
    assert_eq!(attempts[1].requests[0].status, Some(201));
    assert_eq!(h.http_served("POST https://payments.test/charges"), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn an_unstubbed_url_needs_a_grant_as_in_a_real_host() {
    let mut h = order_payment().await;
    h.stub_http("https://payments.test/charges", HttpResponse::status(500));
    h.start(
        "Order",
        "order-8",
        json!({"order_id": "8", "amount": 1.0, "payments_url": "https://elsewhere.test"}),
    )
    .await
    .unwrap();
    h.send("order-8", "start_payment", json!({})).await.unwrap();
    let attempts = h.task_attempts("payment-8", "charge_card").await.unwrap();
    let first = attempts.first().expect("an attempt");
    let TaskResult::Error(error) = &first.result else {
        panic!("the request is refused: {first:?}");
    };
    assert!(error.message.contains("elsewhere.test"), "{error}");
    assert_eq!(h.http_served("https://payments.test/charges"), 0);
    h.shutdown().await;
}
