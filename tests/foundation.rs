//! The foundation, end to end: real components built from `examples/` and
//! `tests/guests/`, the real host, a real SQLite file in a temp dir.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::testbed::{TestBed, finish, result};
use serde_json::json;
use wasmflow_host::{ErrorKind, HistoryEvent, RunStatus, StartOptions};

const LIMIT: Duration = Duration::from_secs(60);

fn kinds(history: &[wasmflow_host::HistoryRecord]) -> Vec<&'static str> {
    history.iter().map(|h| h.event.kind()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_starts_steps_and_completes() {
    let sandbox = TestBed::new(&["hello"]);
    let host = sandbox.host().await;
    let run = host
        .start(
            "Greeter",
            r#"{"name":"Ada"}"#,
            StartOptions::new().workflow_id("greet-ada"),
        )
        .await
        .unwrap();
    assert_eq!(run.workflow_id, "greet-ada");
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(result(&done), json!("Hello, Ada"));
    assert_eq!(done.seq, 2, "two activations committed: start and greet");

    let history = host.history(run.run_id).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            "run_started",
            "activation_completed",
            "activation_completed",
            "run_completed",
        ]
    );
    match &history[1].event {
        HistoryEvent::ActivationCompleted {
            handler,
            keys_changed,
            directive,
            sequence,
            ..
        } => {
            assert_eq!(handler, "start");
            assert_eq!(*sequence, 0);
            assert_eq!(keys_changed, &["name"]);
            assert_eq!(
                serde_json::to_value(directive).unwrap(),
                json!({"step": "greet"})
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let store = host.store(run.run_id).await.unwrap();
    assert_eq!(store.get("name"), Some(&json!("Ada")));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_round_trips_across_steps() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let input = json!({"text": "héllo", "number": 41, "object": {"a": [1, 2, {"b": null}]}});
    let run = host
        .start("StoreProbe", &input.to_string(), StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(
        result(&done),
        json!({"text": "héllo", "number": 42, "object": {"a": [1, 2, {"b": null}]}, "doomed": null})
    );
    let store = host.store(run.run_id).await.unwrap();
    assert_eq!(store.get("number"), Some(&json!(42)));
    assert!(
        !store.contains_key("doomed"),
        "the deleted key is gone: {store:?}"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_a_catchable_key_not_found() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let run = host
        .start("KeyProbe", "{}", StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(
        result(&done),
        json!({
            "missing": "KeyNotFound",
            "missing_message": "store key `missing` not found",
            "mismatch": "InvalidPayload",
        })
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_error_fails_the_run_with_its_message() {
    let sandbox = TestBed::new(&["failing"]);
    let host = sandbox.host().await;
    let run = host
        .start("Checkout", r#"{"items":[]}"#, StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Application);
    assert_eq!(error.message, "cannot charge an empty cart");
    let history = host.history(run.run_id).await.unwrap();
    assert_eq!(kinds(&history)[2..], ["activation_failed", "run_failed"]);

    // `ctx.next.fail` ends the run with the error and its details.
    let run = host
        .start("Checkout", r#"{"items":[9000, 2000]}"#, StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    let error = done.error.expect("an error");
    assert_eq!(error.message, "total 11000 is over the limit of 10000");
    assert_eq!(error.details, Some(json!({"total": 11000, "limit": 10000})));

    // And a cart within the limit completes.
    let run = host
        .start("Checkout", r#"{"items":[1, 2, 3]}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(result(&finish(&host, run.run_id, LIMIT).await), json!(6));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_the_run_with_the_panic_message() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let run = host
        .start("Panicker", r#"{"message":"kaput"}"#, StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::Trap);
    assert!(
        error.message.contains("boom: kaput") && error.message.contains("panicked at"),
        "{}",
        error.message
    );
    // The failed step's store writes are discarded; the start's remain.
    let store = host.store(run.run_id).await.unwrap();
    assert_eq!(store.get("message"), Some(&json!("kaput")));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_steps_complete_with_the_right_count() {
    let sandbox = TestBed::new(&["counter"]);
    let host = sandbox.host().await;
    let run = host
        .start("Counter", r#"{"n":1000}"#, StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!(1000));
    // start + 1001 ticks (the last one sees count == n and completes).
    assert_eq!(done.seq, 1002);
    let store = host.store(run.run_id).await.unwrap();
    assert_eq!(store.get("count"), Some(&json!(1000)));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_progress_concurrently() {
    let sandbox = TestBed::new(&["counter", "hello"]);
    let host = sandbox.host().await;
    let mut runs = Vec::new();
    for i in 0..200 {
        let input = json!({"n": 20 + i % 7});
        runs.push((
            20 + i % 7,
            host.start("Counter", &input.to_string(), StartOptions::new())
                .await
                .unwrap(),
        ));
    }
    for (n, run) in runs {
        assert_eq!(result(&finish(&host, run.run_id, LIMIT).await), json!(n));
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_dropped_mid_run_is_finished_by_the_next() {
    let sandbox = TestBed::new(&["counter"]);
    let host = sandbox.host().await;
    let n = 3000;
    let run = host
        .start("Counter", &json!({"n": n}).to_string(), StartOptions::new())
        .await
        .unwrap();
    // Let it get going, then drop the host in the middle of the loop.
    let deadline = Instant::now() + LIMIT;
    loop {
        let record = host.run(run.run_id).await.unwrap();
        assert_eq!(record.status, RunStatus::Running, "{:?}", record.error);
        if record.seq >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "the run does not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(host);

    let host = sandbox.host().await;
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!(n));
    // Every activation committed exactly once, in order.
    let history = host.history(run.run_id).await.unwrap();
    let sequences: Vec<u64> = history
        .iter()
        .filter_map(|h| match h.event {
            HistoryEvent::ActivationCompleted { sequence, .. } => Some(sequence),
            _ => None,
        })
        .collect();
    let expected: Vec<u64> = (0..(n + 2)).collect();
    assert_eq!(sequences, expected);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_timer_fires_its_step_even_across_a_restart() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let started = Instant::now();
    let run = host
        .start("Sleeper", r#"{"ms": 1200}"#, StartOptions::new())
        .await
        .unwrap();
    loop {
        let record = host.run(run.run_id).await.unwrap();
        if record.status == RunStatus::Waiting {
            assert!(record.timer.is_some());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.shutdown().await;

    let host = sandbox.host().await;
    let done = finish(&host, run.run_id, LIMIT).await;
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert_eq!(result(&done), json!("woke after 1200 ms"));
    let history = host.history(run.run_id).await.unwrap();
    let fired = kinds(&history)
        .into_iter()
        .filter(|k| *k == "timer_fired")
        .count();
    assert_eq!(fired, 1, "the timer fires once");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directive_naming_an_unknown_step_fails_the_run() {
    let sandbox = TestBed::new(&["raw"]);
    let host = sandbox.host().await;
    let run = host.start("Raw", "{}", StartOptions::new()).await.unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    let error = done.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::UnknownStep);
    assert!(error.message.contains("`nowhere`"), "{}", error.message);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fail_only_the_offending_run() {
    let sandbox = TestBed::new(&["probe", "hello"]);
    let host = sandbox
        .builder()
        .step_timeout(Duration::from_millis(500))
        .memory_limit(16 << 20)
        .start()
        .await
        .unwrap();
    let spinner = host
        .start("Spinner", "{}", StartOptions::new())
        .await
        .unwrap();
    let hog = host.start("Hog", "{}", StartOptions::new()).await.unwrap();
    let recurser = host
        .start("Recurser", "{}", StartOptions::new())
        .await
        .unwrap();
    let greeter = host
        .start("Greeter", r#"{"name":"Grace"}"#, StartOptions::new())
        .await
        .unwrap();

    let done = finish(&host, greeter.run_id, LIMIT).await;
    assert_eq!(result(&done), json!("Hello, Grace"));
    for (run, kind) in [
        (spinner, ErrorKind::StepTimeout),
        (hog, ErrorKind::MemoryLimit),
        (recurser, ErrorKind::StackOverflow),
    ] {
        let done = finish(&host, run.run_id, LIMIT).await;
        let error = done.error.expect("an error");
        assert_eq!(error.kind, kind, "{error}");
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_parent_from_a_root_run_is_no_parent() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let run = host
        .start("Orphan", "{}", StartOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, run.run_id, LIMIT).await),
        json!("NoParent")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_parameters_may_be_absent() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let run = host
        .start("Logger", "{}", StartOptions::new())
        .await
        .unwrap();
    assert_eq!(result(&finish(&host, run.run_id, LIMIT).await), json!(null));
    let run = host
        .start("Logger", r#"{"note":"hi"}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(result(&finish(&host, run.run_id, LIMIT).await), json!("hi"));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_active_run_per_workflow_id() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let options = || StartOptions::new().workflow_id("sleepy");
    let first = host
        .start("Sleeper", r#"{"ms": 300}"#, options())
        .await
        .unwrap();
    let err = host
        .start("Sleeper", r#"{"ms": 300}"#, options())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::WorkflowAlreadyRunning));
    assert!(err.to_string().contains(&first.run_id.to_string()), "{err}");
    // Once it finished, the id starts a new run.
    finish(&host, first.run_id, LIMIT).await;
    let second = host
        .start("Sleeper", r#"{"ms": 1}"#, options())
        .await
        .unwrap();
    assert_ne!(second.run_id, first.run_id);
    finish(&host, second.run_id, LIMIT).await;
    assert_eq!(
        host.latest_run("sleepy").await.unwrap().run_id,
        second.run_id
    );
    let ids: BTreeSet<_> = [first.run_id, second.run_id].into();
    assert_eq!(ids.len(), 2);
    host.shutdown().await;
}

/// A long step shows while it runs: the run's pending activation and since
/// when it is current (a cancel request leaves both), and when it started
/// in the history once it committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_step_shows_its_handler_and_since_when_while_it_runs() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let run = host
        .start(
            "Chatty",
            r#"{"ms": 1500}"#,
            StartOptions::new().workflow_id("chatty"),
        )
        .await
        .unwrap();
    let busy = crate::testbed::until(&host, run.run_id, LIMIT, |r| {
        r.pending.as_ref().is_some_and(|p| p.handler == "work")
    })
    .await;
    assert_eq!(busy.status, RunStatus::Running);
    let since = busy.updated_ms;
    assert!(since >= before, "since {since}, started after {before}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.cancel("chatty", "enough").await.unwrap();
    let still = host.run(run.run_id).await.unwrap();
    assert_eq!(
        (
            still.status,
            still.pending.map(|p| p.handler),
            still.updated_ms,
            still.cancel_requested.as_deref()
        ),
        (
            RunStatus::Running,
            Some("work".to_owned()),
            since,
            Some("enough")
        ),
        "the step is still current, since the same time"
    );
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(done.status, RunStatus::Cancelled);
    let history = host.history(run.run_id).await.unwrap();
    let started = history.iter().find_map(|h| match &h.event {
        HistoryEvent::ActivationCompleted {
            handler,
            started_ms,
            ..
        } if handler == "work" => Some(*started_ms),
        _ => None,
    });
    assert!(
        started.is_some_and(|s| s >= since),
        "history records when `work` started: {started:?} (current since {since})"
    );
    host.shutdown().await;
}
