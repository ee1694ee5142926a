//! The hostile-guest suite (SPEC 10): components written to do harm fail
//! their own runs (or are rejected) with the right typed error; the host
//! stays up and well-behaved runs next to them complete.

use std::time::Duration;

use crate::testbed::{TestBed, finish, result};
use serde_json::json;
use wasmflow_host::{Error, ErrorKind, Host, RunId, RunStatus, StartOptions};

const LIMIT: Duration = Duration::from_secs(90);

/// Start `ty` with `input` and expect it to fail with `kind`; returns the
/// error's message.
async fn fails(host: &Host, run: RunId, kind: ErrorKind) -> String {
    let done = finish(host, run, LIMIT).await;
    assert_eq!(
        done.status,
        RunStatus::Failed,
        "{:?}",
        done.result.map(|r| r.get().to_owned())
    );
    let error = done.error.expect("an error");
    assert_eq!(error.kind, kind, "{error}");
    error.message
}

async fn start(host: &Host, ty: &str, input: serde_json::Value) -> RunId {
    host.start(ty, &input.to_string(), StartOptions::new())
        .await
        .unwrap_or_else(|e| panic!("start {ty}: {e}"))
        .run_id
}

/// A well-behaved run: `Counter` to `n`, checked to complete.
async fn counter(host: &Host, n: u64) -> RunId {
    start(host, "Counter", json!({"n": n})).await
}

async fn counts(host: &Host, run: RunId, n: u64) {
    assert_eq!(result(&finish(host, run, LIMIT).await), json!(n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_allocation_recursion_and_panics_fail_only_themselves() {
    let sandbox = TestBed::new(&["probe", "counter"]);
    let host = sandbox
        .builder()
        .step_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let good = counter(&host, 300).await;
    let spinner = start(&host, "Spinner", json!({})).await;
    let hog = start(&host, "Hog", json!({})).await;
    let recurser = start(&host, "Recurser", json!({})).await;
    let panicker = start(&host, "Panicker", json!({"message": "on purpose"})).await;

    let msg = fails(&host, spinner, ErrorKind::StepTimeout).await;
    assert!(msg.contains("step timeout"), "{msg}");
    let took =
        host.run(spinner).await.unwrap().updated_ms - host.run(spinner).await.unwrap().created_ms;
    assert!(
        took >= 1000,
        "the handler's own 1 s timeout applies: {took} ms"
    );
    let msg = fails(&host, hog, ErrorKind::MemoryLimit).await;
    assert!(msg.contains(&(64u64 << 20).to_string()), "{msg}");
    fails(&host, recurser, ErrorKind::StackOverflow).await;
    let msg = fails(&host, panicker, ErrorKind::Trap).await;
    assert!(msg.contains("boom: on purpose"), "{msg}");
    counts(&host, good, 300).await;

    // Each failure is in its run's history, with the limit's error.
    let history = host.history(hog).await.unwrap();
    assert!(history.iter().any(|h| matches!(
        &h.event,
        wasmflow_host::HistoryEvent::ActivationFailed { error, .. } if error.kind == ErrorKind::MemoryLimit
    )));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_and_stores_exceed_their_quotas() {
    let sandbox = TestBed::new(&["hostile", "counter"]);
    let host = sandbox
        .builder()
        .memory_limit(512 << 20)
        .step_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let good = counter(&host, 200).await;
    let big = start(&host, "BigValue", json!({"mib": 100})).await;
    let keys = start(&host, "KeyFlood", json!({"n": 1_000_000})).await;

    let msg = fails(&host, big, ErrorKind::QuotaExceeded).await;
    assert!(msg.contains("max_value_bytes"), "{msg}");
    let done = host.run(big).await.unwrap();
    assert_eq!(
        done.error.unwrap().details.unwrap()["limit"],
        "max_value_bytes"
    );
    let msg = fails(&host, keys, ErrorKind::QuotaExceeded).await;
    assert!(msg.contains("max_store_bytes"), "{msg}");
    // The failed activation's writes are discarded.
    assert!(host.store(keys).await.unwrap().is_empty());
    counts(&host, good, 200).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_children_and_events_exceed_their_quotas() {
    let sandbox = TestBed::new(&["hostile", "counter"]);
    let host = sandbox
        .builder()
        .step_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let good = counter(&host, 200).await;
    let children = start(&host, "ChildFlood", json!({"n": 100_000})).await;
    let parent = start(&host, "FloodedParent", json!({"n": 100_000})).await;

    let msg = fails(&host, children, ErrorKind::QuotaExceeded).await;
    assert!(msg.contains("max_children_per_activation"), "{msg}");
    assert!(
        host.children(children).await.unwrap().is_empty(),
        "no child was created"
    );

    // The flooding child fails; its parent hears of it and got no event.
    let outcome = result(&finish(&host, parent, LIMIT).await);
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["error"]["kind"], "QuotaExceeded");
    assert!(
        outcome["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_events_per_activation")
    );
    let received = host
        .history(parent)
        .await
        .unwrap()
        .iter()
        .filter(|h| h.event.kind() == "event_received")
        .count();
    assert_eq!(received, 1, "only the completion notice arrived");
    counts(&host, good, 200).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_granted_files_sockets_environment() {
    let sandbox = TestBed::new(&["hostile"]);
    let host = sandbox.host().await;
    let fs = start(&host, "FsSnoop", json!({})).await;
    let net = start(&host, "NetSnoop", json!({})).await;
    let env = start(&host, "EnvSnoop", json!({})).await;

    let msg = fails(&host, fs, ErrorKind::Trap).await;
    assert!(msg.contains("reading /etc/passwd"), "{msg}");
    let msg = fails(&host, net, ErrorKind::Trap).await;
    assert!(msg.contains("connecting to 127.0.0.1:80"), "{msg}");
    let seen = result(&finish(&host, env, LIMIT).await);
    assert_eq!(seen["vars"], json!([]), "no environment");
    assert_eq!(seen["args"], json!([]), "no arguments");
    // The guest's idea of a working directory is its own, not the host's.
    let host_cwd = std::env::current_dir().unwrap().display().to_string();
    assert_ne!(seen["cwd"], json!(host_cwd));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_output_is_bounded_not_fatal() {
    let sandbox = TestBed::new(&["hostile"]);
    let host = sandbox.host().await;
    let chatty = start(&host, "Chatty", json!({"mib": 4})).await;
    assert_eq!(
        result(&finish(&host, chatty, LIMIT).await),
        json!("said it all")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_cannot_be_trusted_to_load_are_rejected() {
    let sandbox = TestBed::new(&[
        "describe-trap",
        "describe-loop",
        "describe-lies",
        "evil-import",
        "counter",
    ]);
    let started = std::time::Instant::now();
    let host = sandbox
        .builder()
        .describe_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let reason = |file: &str| {
        host.plugins()
            .rejected()
            .iter()
            .find(|r| r.file.ends_with(file))
            .map(|r| r.reason.clone())
            .unwrap_or_else(|| panic!("{file} was not rejected"))
    };
    let trap = reason("describe-trap.wasm");
    assert!(
        trap.contains("`describe` failed") && trap.contains("describe refuses to describe"),
        "{trap}"
    );
    let stuck = reason("describe-loop.wasm");
    assert!(
        stuck.contains("`describe` failed") && stuck.contains("step timeout"),
        "{stuck}"
    );
    let lies = reason("describe-lies.wasm");
    assert!(
        lies.contains("`describe` is invalid") && lies.contains("`Liar` has 2 start handlers"),
        "{lies}"
    );
    let evil = reason("evil-import.wasm");
    assert!(
        evil.contains("test:evil/exfiltrate") && evil.contains("which the host does not provide"),
        "{evil}"
    );
    // The directory's good plugin works.
    let good = counter(&host, 50).await;
    counts(&host, good, 50).await;
    host.shutdown().await;

    // The same answers without a host.
    let inspected = wasmflow_host::inspect_plugins(&sandbox.plugins())
        .await
        .unwrap();
    assert_eq!(inspected.rejected().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_run_next_to_well_behaved_load() {
    let sandbox = TestBed::new(&["probe", "hostile", "rogue", "counter"]);
    // Spinners end by their own 1 s timeout; the floods get all the time
    // they need to reach their quotas on a loaded machine.
    let host = sandbox
        .builder()
        .step_timeout(Duration::from_secs(60))
        .max_children_per_activation(1_000)
        .start()
        .await
        .unwrap();
    let mut good = Vec::new();
    for i in 0..40 {
        good.push((30 + i, counter(&host, 30 + i).await));
    }
    let hostile = vec![
        (
            start(&host, "Spinner", json!({})).await,
            ErrorKind::StepTimeout,
        ),
        (
            start(&host, "Spinner", json!({})).await,
            ErrorKind::StepTimeout,
        ),
        (start(&host, "Hog", json!({})).await, ErrorKind::MemoryLimit),
        (
            start(&host, "Recurser", json!({})).await,
            ErrorKind::StackOverflow,
        ),
        (
            start(&host, "ChildFlood", json!({"n": 100_000})).await,
            ErrorKind::QuotaExceeded,
        ),
        (
            start(&host, "KeyFlood", json!({"n": 1_000_000})).await,
            ErrorKind::QuotaExceeded,
        ),
        (start(&host, "FsSnoop", json!({})).await, ErrorKind::Trap),
        (
            start(&host, "Panicker", json!({"message": "x"})).await,
            ErrorKind::Trap,
        ),
        (
            start(
                &host,
                "Oversized",
                json!({"what": "deletes", "bytes": 1_000_000}),
            )
            .await,
            ErrorKind::QuotaExceeded,
        ),
        (
            start(
                &host,
                "Oversized",
                json!({"what": "message", "bytes": 1 << 20}),
            )
            .await,
            ErrorKind::QuotaExceeded,
        ),
        (
            start(&host, "HugeStep", json!({})).await,
            ErrorKind::QuotaExceeded,
        ),
        (
            start(&host, "Deep", json!({"at": "result", "depth": 200})).await,
            ErrorKind::InvalidPayload,
        ),
    ];
    let chatty = start(&host, "LogFlood", json!({"n": 200_000})).await;
    for i in 40..80 {
        good.push((30 + i, counter(&host, 30 + i).await));
    }
    for (n, run) in good {
        counts(&host, run, n).await;
    }
    for (run, kind) in hostile {
        fails(&host, run, kind).await;
    }
    assert_eq!(result(&finish(&host, chatty, LIMIT).await), json!(200_000));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_back_pressure_not_an_error() {
    let sandbox = TestBed::new(&["counter"]);
    let host = sandbox.builder().instance_slots(2).start().await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..60 {
        runs.push(counter(&host, 20).await);
    }
    for run in runs {
        counts(&host, run, 20).await;
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_can_have_a_lower_memory_cap() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox
        .builder()
        .plugin_memory_limit("probe.wasm", 8 << 20)
        .start()
        .await
        .unwrap();
    let hog = start(&host, "Hog", json!({})).await;
    let msg = fails(&host, hog, ErrorKind::MemoryLimit).await;
    assert!(msg.contains(&(8u64 << 20).to_string()), "{msg}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_rejects_events_naming_the_quota() {
    let sandbox = TestBed::new(&["family"]);
    let host = sandbox.builder().max_inbox_len(3).start().await.unwrap();
    let run = host
        .start(
            "Inbox",
            r#"{"busy_ms": 1000}"#,
            StartOptions::new().workflow_id("full"),
        )
        .await
        .unwrap();
    for i in 0..3 {
        host.send("full", "note", &json!(format!("n{i}")).to_string())
            .await
            .unwrap();
    }
    let err = host
        .send("full", "note", r#""one too many""#)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::QuotaExceeded), "{err}");
    assert!(err.to_string().contains("max_inbox_len"), "{err}");
    host.terminate("full", "done testing").await.unwrap();
    assert!(matches!(
        host.send("full", "note", r#""late""#).await,
        Err(Error::RunTerminal { .. })
    ));
    let _ = run;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_outgrows_its_history_fails_naming_the_quota() {
    let sandbox = TestBed::new(&["counter"]);
    let host = sandbox
        .builder()
        .max_history_len(100)
        .start()
        .await
        .unwrap();
    let run = counter(&host, 1000).await;
    let msg = fails(&host, run, ErrorKind::QuotaExceeded).await;
    assert!(msg.contains("max_history_len"), "{msg}");
    let short = counter(&host, 10).await;
    counts(&host, short, 10).await;
    host.shutdown().await;
}

/// The quota a run failed with names `limit`.
async fn over(host: &Host, run: RunId, limit: &str) {
    let msg = fails(host, run, ErrorKind::QuotaExceeded).await;
    assert!(msg.contains(limit), "{limit}: {msg}");
    let error = host.run(run).await.unwrap().error.unwrap();
    assert_eq!(error.details.unwrap()["limit"], limit);
    // What the guest handed over is not what is stored.
    let stored: usize = host
        .history(run)
        .await
        .unwrap()
        .iter()
        .map(|h| serde_json::to_string(&h.event).unwrap().len())
        .sum();
    assert!(stored < 64 << 10, "{limit}: {stored} bytes of history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_name_key_and_message_from_a_guest_is_bounded() {
    let sandbox = TestBed::new(&["hostile", "rogue", "counter"]);
    let host = sandbox
        .builder()
        .memory_limit(256 << 20)
        .start()
        .await
        .unwrap();
    let good = counter(&host, 100).await;
    let mib = 10 << 20;
    let cases = [
        ("key", 2_000, "max_key_bytes"),
        ("delete_key", mib, "max_key_bytes"),
        ("deletes", 1_000_000, "max_keys_changed_per_activation"),
        ("message", 50 << 20, "max_message_bytes"),
        ("fail_message", mib, "max_message_bytes"),
        ("details", mib, "max_details_bytes"),
        ("event_name", mib, "max_name_bytes"),
        ("child_id", mib, "max_name_bytes"),
        ("child_type", mib, "max_name_bytes"),
    ];
    let mut runs = Vec::new();
    for (what, bytes, limit) in cases {
        let run = start(&host, "Oversized", json!({"what": what, "bytes": bytes})).await;
        runs.push((run, limit));
    }
    runs.push((start(&host, "HugeStep", json!({})).await, "max_name_bytes"));
    runs.push((start(&host, "HugeWait", json!({})).await, "max_name_bytes"));
    for (run, limit) in runs {
        over(&host, run, limit).await;
    }
    // Within the bounds, the same handler is fine.
    let fine = start(&host, "Oversized", json!({"what": "deletes", "bytes": 100})).await;
    assert_eq!(result(&finish(&host, fine, LIMIT).await), json!("accepted"));
    counts(&host, good, 100).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_log_lines_is_counted_not_kept() {
    let sandbox = TestBed::new(&["hostile", "counter"]);
    let host = sandbox.host().await;
    let good = counter(&host, 100).await;
    let started = std::time::Instant::now();
    let flood = start(&host, "LogFlood", json!({"n": 500_000})).await;
    assert_eq!(result(&finish(&host, flood, LIMIT).await), json!(500_000));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    counts(&host, good, 100).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_too_deep_is_refused_at_every_entry() {
    let sandbox = TestBed::new(&["hostile", "counter"]);
    let host = sandbox.host().await;
    let good = counter(&host, 100).await;
    let depth = 200;
    for at in ["result", "store", "child"] {
        let run = start(&host, "Deep", json!({"at": at, "depth": depth})).await;
        let msg = fails(&host, run, ErrorKind::InvalidPayload).await;
        assert!(msg.contains("max_json_depth"), "{at}: {msg}");
    }
    // The event a child sends its parent: the child fails, the parent hears.
    let parent = start(&host, "DeepParent", json!({"depth": depth})).await;
    let outcome = result(&finish(&host, parent, LIMIT).await);
    assert_eq!(outcome["error"]["kind"], "InvalidPayload", "{outcome}");
    // A query's answer.
    let waiting = start(&host, "Deep", json!({"at": "query", "depth": 0})).await;
    crate::testbed::until(&host, waiting, LIMIT, |r| r.status == RunStatus::Waiting).await;
    let err = host
        .query(waiting, "answer", &json!({"depth": depth}).to_string())
        .await
        .unwrap_err();
    match &err {
        Error::QueryFailed(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidPayload, "{e}");
            assert!(e.message.contains("max_json_depth"), "{e}");
        }
        other => panic!("unexpected {other}"),
    }
    let shallow = host
        .query(waiting, "answer", &json!({"depth": 3}).to_string())
        .await
        .unwrap();
    assert_eq!(shallow, json!([[[1]]]));
    // Within the bound, results complete as they were (never `null`).
    let fine = start(&host, "Deep", json!({"at": "result", "depth": 60})).await;
    let value = result(&finish(&host, fine, LIMIT).await);
    let mut depth_seen = 0;
    let mut v = &value;
    while let Some(inner) = v.get(0) {
        depth_seen += 1;
        v = inner;
    }
    assert_eq!((depth_seen, v), (60, &json!(1)));
    counts(&host, good, 100).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_over_its_bounds_is_rejected_quickly() {
    let sandbox = TestBed::new(&["describe-flood", "counter"]);
    let started = std::time::Instant::now();
    let host = sandbox.host().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let rejected = host.plugins().rejected();
    let flood = rejected
        .iter()
        .find(|r| r.file.ends_with("describe-flood.wasm"))
        .expect("describe-flood.wasm is rejected");
    assert!(
        flood.reason.contains("100000 workflow types")
            && flood.reason.contains("max_types_per_component"),
        "{}",
        flood.reason
    );
    assert!(flood.reason.len() < 500, "{}", flood.reason);
    let good = counter(&host, 20).await;
    counts(&host, good, 20).await;
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_durations_in_directives_fail_the_run_naming_the_field() {
    let sandbox = TestBed::new(&["rogue"]);
    let host = sandbox.host().await;
    for (workflow_type, field) in [
        ("EndlessWait", "the wait's timeout_ms"),
        ("ZeroSleep", "the sleep's duration_ms"),
    ] {
        let run = start(&host, workflow_type, json!({})).await;
        let done = finish(&host, run, LIMIT).await;
        assert_eq!(done.status, RunStatus::Failed, "{workflow_type}");
        let error = done.error.unwrap();
        assert_eq!(error.kind, ErrorKind::InvalidPayload, "{error}");
        assert!(error.message.contains(field), "{error}");
        // Nothing overflowed into storage: no timer was set.
        assert!(done.timer.is_none());
    }
    host.shutdown().await;
}
