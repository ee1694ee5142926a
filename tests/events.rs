//! Events and the inbox (SPEC 6), on real components.

use std::time::{Duration, Instant};

use crate::testbed::{TestBed, finish, history_kinds, result, until};
use serde_json::json;
use wasmflow_host::{Error, ErrorKind, RunStatus, StartOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_inbox_during_a_step_and_run_oldest_first() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let run = host
        .start(
            "Inbox",
            // Long enough for the sends below on a loaded machine.
            r#"{"busy_ms": 1500}"#,
            StartOptions::new().workflow_id("inbox"),
        )
        .await
        .unwrap();
    // The run is busy in its `busy` step while these arrive.
    until(&host, run.run_id, LIMIT, |r| r.seq >= 1).await;
    host.send("inbox", "note", r#""first""#).await.unwrap();
    host.send("inbox", "pair", r#"{"a": 2, "b": 3, "extra": "ignored"}"#)
        .await
        .unwrap();
    host.send("inbox", "note", r#"{"text": "third"}"#)
        .await
        .unwrap();
    host.send("inbox", "finish", "").await.unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(
        result(&done),
        json!(["busy done", {"note": "first"}, {"sum": 5}, {"note": "third"}])
    );
    // They were received during the step and dispatched one per wait.
    let kinds = history_kinds(&host, run.run_id).await;
    let received = kinds.iter().position(|k| *k == "event_received").unwrap();
    let first_wait_done = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "activation_completed")
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    assert!(received < first_wait_done, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "event_dispatched").count(),
        4
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_lose_nothing_and_duplicate_nothing() {
    let sandbox = TestBed::new(&["family"]);
    let host = std::sync::Arc::new(sandbox.host().await);
    let (senders, each) = (8, 60);
    let run = host
        .start(
            "Collector",
            &json!({"expected": senders * each}).to_string(),
            StartOptions::new().workflow_id("collector"),
        )
        .await
        .unwrap();
    // Senders race the run's start activation and every wait it enters.
    let mut tasks = Vec::new();
    for s in 0..senders {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let payload = json!({"id": format!("s{s}-{i}")}).to_string();
                host.send("collector", "item", &payload).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let done = finish(&host, run.run_id, LIMIT).await;
    let items: Vec<String> = serde_json::from_value(result(&done)).unwrap();
    assert_eq!(items.len(), senders * each, "every event handled once");
    let mut sorted = items.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), senders * each, "no event handled twice");
    // Each sender's events are handled in the order it sent them.
    for s in 0..senders {
        let mine: Vec<usize> = items
            .iter()
            .filter_map(|id| id.strip_prefix(&format!("s{s}-")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..each).collect::<Vec<_>>());
    }
    let store = host.store(run.run_id).await.unwrap();
    assert_eq!(store["items"].as_array().unwrap().len(), senders * each);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_rejected_at_the_door() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let run = host
        .start("Inbox", "{}", StartOptions::new().workflow_id("door"))
        .await
        .unwrap();
    let cases = [
        (
            "nope",
            "{}",
            ErrorKind::UnknownEvent,
            "no handler for event `nope`",
        ),
        (
            "pair",
            r#"{"a": 1}"#,
            ErrorKind::InvalidPayload,
            "missing key `b`",
        ),
        (
            "pair",
            "7",
            ErrorKind::InvalidPayload,
            "expected a JSON object with keys `a`, `b`",
        ),
        ("note", "", ErrorKind::InvalidPayload, "missing key `text`"),
        ("note", "{oops", ErrorKind::InvalidPayload, "not valid JSON"),
    ];
    for (event, payload, kind, needle) in cases {
        let err = host.send("door", event, payload).await.unwrap_err();
        assert_eq!(err.kind(), Some(kind), "{event} {payload}: {err}");
        assert!(
            err.to_string().contains(needle),
            "{event}: `{err}` lacks `{needle}`"
        );
    }
    // Nothing reached the inbox.
    host.send("door", "finish", "").await.unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!(["busy done"]));
    assert!(
        !history_kinds(&host, run.run_id)
            .await
            .contains(&"event_dropped")
    );

    // Finished and unknown runs.
    let err = host.send("door", "note", r#""late""#).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::RunTerminal {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("already completed"), "{err}");
    let err = host.send("nobody", "note", r#""x""#).await.unwrap_err();
    assert!(matches!(err, Error::RunNotFound(_)), "{err:?}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_timeout_runs_its_step_unless_an_event_comes_first() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    // No event: the timeout step runs.
    let started = Instant::now();
    let late = host
        .start("Timed", r#"{"ms": 300}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, late.run_id, LIMIT).await),
        json!("timed out")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // An event first: it is handled and the timer is cancelled.
    let pinged = host
        .start(
            "Timed",
            r#"{"ms": 400}"#,
            StartOptions::new().workflow_id("ping"),
        )
        .await
        .unwrap();
    until(&host, pinged.run_id, LIMIT, |r| {
        r.status == RunStatus::Waiting
    })
    .await;
    host.send("ping", "ping", "").await.unwrap();
    assert_eq!(
        result(&finish(&host, pinged.run_id, LIMIT).await),
        json!("pinged")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let kinds = history_kinds(&host, pinged.run_id).await;
    assert!(!kinds.contains(&"timer_fired"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_completed"));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_wait_without_a_step_fails_with_wait_timeout_even_across_a_restart() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    // An event first: it is handled.
    let pinged = host
        .start(
            "Impatient",
            r#"{"ms": 5000}"#,
            StartOptions::new().workflow_id("pinged"),
        )
        .await
        .unwrap();
    until(&host, pinged.run_id, LIMIT, |r| {
        r.status == RunStatus::Waiting
    })
    .await;
    host.send("pinged", "ping", "").await.unwrap();
    assert_eq!(
        result(&finish(&host, pinged.run_id, LIMIT).await),
        json!("pinged")
    );

    // No event: the run fails with `WaitTimeout` when the timer fires, also
    // on a host started after the wait began.
    let started = Instant::now();
    let run = host
        .start("Impatient", r#"{"ms": 800}"#, StartOptions::new())
        .await
        .unwrap();
    let waiting = until(&host, run.run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    let timer = waiting.timer.expect("a timed wait has a timer");
    assert_eq!(timer.on_timeout, None, "and no step");
    host.shutdown().await;
    let host = sandbox.host().await;
    let done = finish(&host, run.run_id, LIMIT).await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::WaitTimeout, "{error:?}");
    assert_eq!(
        history_kinds(&host, run.run_id).await,
        [
            "run_started",
            "activation_completed",
            "timer_set",
            "timer_fired",
            "run_failed"
        ]
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_keeps_events_in_the_inbox_until_the_run_next_waits() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let started = Instant::now();
    let run = host
        .start(
            "Napper",
            r#"{"ms": 1200}"#,
            StartOptions::new().workflow_id("napper"),
        )
        .await
        .unwrap();
    let sleeping = until(&host, run.run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    assert!(
        sleeping.timer.as_ref().is_some_and(|t| t.sleep),
        "{:?}",
        sleeping.timer
    );
    host.send("napper", "note", r#"{"text": "a"}"#)
        .await
        .unwrap();
    host.send("napper", "note", r#"{"text": "b"}"#)
        .await
        .unwrap();
    let still = host.run(run.run_id).await.unwrap();
    assert_eq!(
        (still.status, still.seq, still.pending.is_none()),
        (RunStatus::Waiting, sleeping.seq, true),
        "events do not wake a sleeping run"
    );
    // The sleep is durable.
    host.shutdown().await;
    let host = sandbox.host().await;
    let done = finish(&host, run.run_id, LIMIT).await;
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert_eq!(
        result(&done),
        json!({"seen_at_wake": 0, "notes": ["a", "b"]}),
        "no event ran during the sleep; both ran after"
    );
    let kinds = history_kinds(&host, run.run_id).await;
    let fired = kinds.iter().position(|k| *k == "timer_fired");
    let dispatched = kinds.iter().position(|k| *k == "event_dispatched");
    assert!(
        fired.is_some() && fired < dispatched,
        "the events are dispatched after the timer fired: {kinds:?}"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_wait_waits_with_no_timer_and_survives_a_restart() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let run = host
        .start(
            "Collector",
            r#"{"expected": 1}"#,
            StartOptions::new().workflow_id("patient"),
        )
        .await
        .unwrap();
    let waiting = until(&host, run.run_id, LIMIT, |r| r.status == RunStatus::Waiting).await;
    assert!(waiting.timer.is_none(), "no hidden timer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        host.run(run.run_id).await.unwrap().status,
        RunStatus::Waiting
    );
    host.shutdown().await;

    // An event accepted before a restart is not lost; one sent after is
    // handled by the new host.
    let host = sandbox.host().await;
    host.send("patient", "item", r#"{"id": "after restart"}"#)
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!(["after restart"]));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_accepted_before_a_crash_is_handled_after_it() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.host().await;
    let run = host
        .start(
            "Inbox",
            r#"{"busy_ms": 1500}"#,
            StartOptions::new().workflow_id("crash"),
        )
        .await
        .unwrap();
    until(&host, run.run_id, LIMIT, |r| r.seq >= 1).await;
    // Accepted (durably in the inbox) while the run is busy...
    host.send("crash", "note", r#""kept""#).await.unwrap();
    host.send("crash", "finish", "").await.unwrap();
    // ...then the host goes away mid-step.
    drop(host);
    let host = sandbox.host().await;
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!(["busy done", {"note": "kept"}]));
    host.shutdown().await;
}
