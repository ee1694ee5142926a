//! Bad input gets a clear error naming what was wrong, nothing already
//! accepted is lost, and the host keeps working.

use std::time::Duration;

use crate::testbed::{TestBed, finish, result};
use serde_json::json;
use wasmflow_host::{Error, ErrorKind, HostBuilder, StartOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_starts_are_rejected_at_the_door_and_nothing_is_stored() {
    let sandbox = TestBed::new(&["hello"]);
    let host = sandbox.host().await;
    let cases = [
        (
            "Nope",
            "{}",
            ErrorKind::UnknownWorkflowType,
            "workflow type `Nope`",
        ),
        (
            "Greeter",
            "[1, 2]",
            ErrorKind::InvalidPayload,
            "must be a JSON object, found an array",
        ),
        (
            "Greeter",
            "\"Ada\"",
            ErrorKind::InvalidPayload,
            "found a string",
        ),
        (
            "Greeter",
            "{name: Ada}",
            ErrorKind::InvalidPayload,
            "not valid JSON",
        ),
        (
            "Greeter",
            "{}",
            ErrorKind::InvalidPayload,
            "missing key `name`",
        ),
        (
            "Greeter",
            r#"{"nam":"Ada"}"#,
            ErrorKind::InvalidPayload,
            "missing key `name`",
        ),
        // A value of the wrong type is refused at the door too, naming the
        // parameter, the type expected in JSON terms and what came.
        (
            "Greeter",
            r#"{"name": 42}"#,
            ErrorKind::InvalidPayload,
            "parameter `name` expects a string, got a number: 42",
        ),
    ];
    for (i, (ty, input, kind, needle)) in cases.into_iter().enumerate() {
        let id = format!("bad-{i}");
        let err = host
            .start(ty, input, StartOptions::new().workflow_id(&id))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Some(kind), "{ty} {input}: {err}");
        assert!(
            err.to_string().contains(needle),
            "{ty} {input}: `{err}` lacks `{needle}`"
        );
        assert!(
            matches!(host.latest_run(&id).await, Err(Error::RunNotFound(_))),
            "a rejected start stored a run"
        );
    }
    // The host is unharmed.
    let run = host
        .start(
            "Greeter",
            r#"{"name":"Ada","extra":true}"#,
            StartOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, run.run_id, LIMIT).await),
        json!("Hello, Ada")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_plugins_directory_is_named() {
    let sandbox = TestBed::new(&[]);
    let missing = sandbox.path().join("no-such-dir");
    let err = HostBuilder::new(sandbox.db())
        .plugins(&missing)
        .start()
        .await
        .err()
        .expect("the host refuses a missing plugins directory");
    assert!(matches!(err, Error::PluginsDir { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_files_are_rejected_with_their_reason() {
    let sandbox = TestBed::new(&["hello", "otherworld"]);
    let plugins = sandbox.plugins();
    std::fs::write(plugins.join("notes.wasm"), "these are not wasm").unwrap();
    std::fs::write(plugins.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(plugins.join("empty.wasm"), b"").unwrap();
    // A second file claiming a type another file provides.
    std::fs::copy(
        crate::testbed::component("hello"),
        plugins.join("hello2.wasm"),
    )
    .unwrap();
    // Not a plugin at all: ignored.
    std::fs::write(plugins.join("README.txt"), "ignored").unwrap();

    let loaded = wasmflow_host::inspect_plugins(&plugins).await.unwrap();
    let reasons: Vec<(String, String)> = loaded
        .rejected()
        .iter()
        .map(|r| {
            let name = r.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, r.reason.clone())
        })
        .collect();
    let reason = |file: &str| {
        reasons
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, r)| r.as_str())
            .unwrap_or_else(|| panic!("{file} was not rejected: {reasons:?}"))
    };
    assert!(reason("notes.wasm").contains("not a WebAssembly file"));
    assert!(reason("empty.wasm").contains("not a WebAssembly file"));
    assert!(reason("core.wasm").contains("core WebAssembly module, not a component"));
    assert!(
        reason("otherworld.wasm").contains("does not target the wasmflow world")
            && reason("otherworld.wasm").contains("wasmflow:workflow/guest"),
        "{}",
        reason("otherworld.wasm")
    );
    assert!(reason("hello2.wasm").contains("`Greeter` is already provided by"));
    assert_eq!(reasons.len(), 5, "{reasons:?}");

    // The good file still works, in a host on the same directory.
    let host = sandbox.host().await;
    assert_eq!(host.plugins().rejected().len(), 5);
    let run = host
        .start("Greeter", r#"{"name":"Lin"}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, run.run_id, LIMIT).await),
        json!("Hello, Lin")
    );
    // An unknown type names the rejected files, a hint at what went wrong.
    let err = host
        .start("Other", "{}", StartOptions::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("otherworld.wasm"), "{err}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_file_that_is_not_a_database_is_named() {
    let sandbox = TestBed::new(&["hello"]);
    std::fs::write(
        sandbox.db(),
        "this is not a SQLite database, just text. ".repeat(100),
    )
    .unwrap();
    let err = sandbox.builder().start().await.err().expect("refused");
    assert!(err.to_string().contains("wasmflow.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_out_of_range_are_named() {
    let sandbox = TestBed::new(&["hello"]);
    let cases = [
        (
            sandbox.builder().step_timeout(Duration::ZERO),
            "step_timeout",
        ),
        (sandbox.builder().memory_limit(1024), "memory_limit"),
        (sandbox.builder().instance_slots(0), "instance_slots"),
        (sandbox.builder().max_value_bytes(0), "max_value_bytes"),
        (sandbox.builder().max_store_bytes(8), "max_store_bytes"),
        (
            sandbox
                .builder()
                .max_value_bytes(1 << 20)
                .max_store_bytes(1 << 10),
            "max_store_bytes",
        ),
        (
            sandbox
                .builder()
                .plugin_memory_limit("hello.wasm", 128 << 20),
            "plugin_memory_limit",
        ),
        (
            sandbox.builder().max_children_per_activation(10_000_000),
            "max_children_per_activation",
        ),
        (
            sandbox.builder().max_events_per_activation(10_000_000),
            "max_events_per_activation",
        ),
        (sandbox.builder().max_inbox_len(0), "max_inbox_len"),
        (sandbox.builder().max_history_len(5), "max_history_len"),
        (
            sandbox.builder().describe_timeout(Duration::ZERO),
            "describe_timeout",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.start().await.err().expect("refused");
        assert!(
            matches!(&err, Error::Config { setting: s, .. } if *s == setting),
            "{setting}: {err:?}"
        );
        assert!(err.to_string().contains(setting), "{err}");
    }
}

/// Start inputs, event payloads and query arguments are checked against each
/// parameter's schema at the door: a wrong type is refused, naming the
/// parameter, what it expects and what came, and the run is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_of_the_wrong_type_are_refused_at_the_door() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let good = json!({"approver": "ada", "level": 2, "order": {"id": "o1", "amount": 9.5}});
    let with = |key: &str, value: serde_json::Value| {
        let mut input = good.clone();
        input[key] = value;
        input.to_string()
    };
    let cases = [
        (
            with("approver", json!(42)),
            "parameter `approver` expects a string, got a number: 42",
        ),
        (
            with("level", json!(-1)),
            "parameter `level` expects an integer from 0 to 255, got a number: -1",
        ),
        (
            with("level", json!(256)),
            "parameter `level` expects an integer from 0 to 255",
        ),
        (with("level", json!(1.5)), "`level` expects an integer"),
        (
            with("order", json!({"id": "o1"})),
            "parameter `order` expects an object with keys",
        ),
        (
            with("order", json!({"id": "o1", "amount": "lots"})),
            "at `/amount`",
        ),
        (
            with("note", json!(7)),
            "parameter `note` expects a string or null, got a number: 7",
        ),
    ];
    for (i, (input, needle)) in cases.into_iter().enumerate() {
        let id = format!("typed-{i}");
        let err = host
            .start("Approval", &input, StartOptions::new().workflow_id(&id))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            Some(ErrorKind::InvalidPayload),
            "{input}: {err}"
        );
        assert!(
            err.to_string().contains(needle),
            "{input}: `{err}` lacks `{needle}`"
        );
        assert!(
            matches!(host.latest_run(&id).await, Err(Error::RunNotFound(_))),
            "a rejected start stored a run"
        );
    }

    // A good start; the run waits for `approve`.
    let run = host
        .start(
            "Approval",
            &good.to_string(),
            StartOptions::new().workflow_id("ok"),
        )
        .await
        .unwrap();
    crate::testbed::until(&host, run.run_id, LIMIT, |r| {
        r.status == wasmflow_host::RunStatus::Waiting
    })
    .await;
    // Queries: a wrong argument type is refused; a right one answers.
    let err = host
        .query(run.run_id, "peek", r#"{"field": 1}"#)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidPayload), "{err}");
    assert!(
        err.to_string()
            .contains("parameter `field` expects a string"),
        "{err}"
    );
    assert_eq!(
        host.query(run.run_id, "peek", r#"{"field": "approver"}"#)
            .await
            .unwrap(),
        json!("ada")
    );
    // Events: wrong types are refused and the run keeps waiting for a right one.
    for payload in [
        r#"{"by": 42, "level": 1}"#,
        r#"{"by": "bob", "level": -3}"#,
        "\"bob\"",
    ] {
        let err = host.send("ok", "approve", payload).await.unwrap_err();
        assert_eq!(
            err.kind(),
            Some(ErrorKind::InvalidPayload),
            "{payload}: {err}"
        );
    }
    let err = host
        .send("ok", "approve", r#"{"by": 42, "level": 1}"#)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("parameter `by` expects a string, got a number: 42"),
        "{err}"
    );
    host.send("ok", "approve", r#"{"by": "bob", "level": 3}"#)
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done)["by"], json!("bob"));
    assert_eq!(result(&done)["order"], json!({"id": "o1", "amount": 9.5}));
    host.shutdown().await;
}

/// A child's `send_to_parent` of the wrong type is a catchable
/// `InvalidPayload` in the child; the parent never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_event_of_the_wrong_type_is_a_catchable_error_in_the_child() {
    let sandbox = TestBed::new(&["probe"]);
    let host = sandbox.host().await;
    let run = host
        .start("NaggedApproval", "{}", StartOptions::new())
        .await
        .unwrap();
    let done = finish(&host, run.run_id, LIMIT).await;
    assert_eq!(result(&done), json!({"by": "nagger", "level": 2}));
    let child = host.latest_run("nagger").await.unwrap();
    let child = finish(&host, child.run_id, LIMIT).await;
    let caught = result(&child);
    assert_eq!(caught["kind"], json!("InvalidPayload"), "{caught}");
    assert!(
        caught["message"]
            .as_str()
            .is_some_and(|m| m.contains("parameter `by` expects a string, got a number: 42")),
        "{caught}"
    );
    host.shutdown().await;
}
