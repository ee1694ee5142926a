//! The plugins directory while the host runs (SPEC 11): new files become
//! startable, replaced files serve new runs while old runs finish on their
//! version, bad files change nothing, removed files stop new starts, and
//! the opt-in upgrade.

use std::time::{Duration, Instant};

use crate::testbed::{TestBed, component, finish, result, until};
use serde_json::json;
use wasmflow_host::{ErrorKind, Host, RunId, RunStatus, StartOptions};

const LIMIT: Duration = Duration::from_secs(60);

/// Copy a built component into the plugins directory as `file`, the way a
/// user would: write, then rename into place.
fn install(sandbox: &TestBed, name: &str, file: &str) {
    let tmp = sandbox.path().join(format!("{file}.partial"));
    std::fs::copy(component(name), &tmp).unwrap();
    std::fs::rename(&tmp, sandbox.plugins().join(file)).unwrap();
}

/// The version of `workflow_type` the host serves now, if any.
fn serving(host: &Host, workflow_type: &str) -> Option<String> {
    host.plugins()
        .get(workflow_type)
        .ok()
        .map(|e| e.component.hash.clone())
}

/// Wait until the host serves `workflow_type` at a version other than
/// `not`; returns it and how long it took.
async fn until_served(host: &Host, workflow_type: &str, not: Option<&str>) -> (String, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = serving(host, workflow_type)
            && Some(v.as_str()) != not
        {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < LIMIT, "{workflow_type} never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn versioned(host: &Host, wait_ms: u64) -> RunId {
    host.start(
        "Versioned",
        &json!({"wait_ms": wait_ms}).to_string(),
        StartOptions::new(),
    )
    .await
    .unwrap()
    .run_id
}

fn label(host_result: &serde_json::Value) -> &str {
    host_result.as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_is_startable_within_about_a_second() {
    let sandbox = TestBed::new(&[]);
    let host = sandbox.host().await;
    assert!(serving(&host, "Greeter").is_none());
    install(&sandbox, "hello", "hello.wasm");
    let (_, took) = until_served(&host, "Greeter", None).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let run = host
        .start("Greeter", r#"{"name":"Hot"}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, run.run_id, LIMIT).await),
        json!("Hello, Hot")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_file_serves_new_runs_and_old_runs_finish_on_their_version() {
    let sandbox = TestBed::new(&[]);
    install(&sandbox, "versioned-a", "versioned.wasm");
    let host = sandbox.host().await;
    let v1 = serving(&host, "Versioned").unwrap();
    let old = versioned(&host, 1500).await;
    until(&host, old, LIMIT, |r| r.status == RunStatus::Waiting).await;

    install(&sandbox, "versioned-b", "versioned.wasm");
    let (v2, _) = until_served(&host, "Versioned", Some(&v1)).await;
    let new = versioned(&host, 10).await;
    assert_eq!(label(&result(&finish(&host, new, LIMIT).await)), "b->b");
    assert_eq!(host.run(new).await.unwrap().version, v2);

    let done = finish(&host, old, LIMIT).await;
    assert_eq!(
        label(&result(&done)),
        "a->a",
        "the old run stayed on its version"
    );
    assert_eq!(done.version, v1);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_survives_its_file_and_a_restart() {
    let sandbox = TestBed::new(&[]);
    install(&sandbox, "versioned-a", "versioned.wasm");
    let host = sandbox.host().await;
    let old = versioned(&host, 60_000).await;
    until(&host, old, LIMIT, |r| r.status == RunStatus::Waiting).await;
    host.shutdown().await;

    // Replaced while no host runs, then removed altogether.
    install(&sandbox, "versioned-b", "versioned.wasm");
    let host = sandbox.host().await;
    std::fs::remove_file(sandbox.plugins().join("versioned.wasm")).unwrap();
    let started = Instant::now();
    while serving(&host, "Versioned").is_some() {
        assert!(started.elapsed() < LIMIT);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = host
        .start("Versioned", r#"{"wait_ms": 1}"#, StartOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::UnknownWorkflowType));
    // The old run still finishes, on version "a" from the database.
    host.send_to_run(old, "poke", "").await.unwrap();
    assert_eq!(label(&result(&finish(&host, old, LIMIT).await)), "a->a");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_replacement_changes_nothing() {
    let sandbox = TestBed::new(&["hello"]);
    install(&sandbox, "versioned-a", "versioned.wasm");
    let host = sandbox.host().await;
    let v1 = serving(&host, "Versioned").unwrap();

    // Garbage over a good file: rejected, the old version stays.
    std::fs::write(
        sandbox.plugins().join("versioned.wasm"),
        b"garbage, not wasm",
    )
    .unwrap();
    // A second file claiming a type another file provides.
    install(&sandbox, "hello", "hello-copy.wasm");
    let started = Instant::now();
    while host.plugins().rejected().len() < 2 {
        assert!(started.elapsed() < LIMIT, "{:?}", host.plugins().rejected());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rejected = host.plugins().rejected();
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|r| r.file.ends_with(file))
            .map(|r| r.reason.as_str())
            .unwrap()
    };
    assert!(reason("versioned.wasm").contains("not a WebAssembly file"));
    assert!(reason("hello-copy.wasm").contains("`Greeter` is already provided by"));
    assert_eq!(
        serving(&host, "Versioned"),
        Some(v1.clone()),
        "the previous version stays"
    );
    let run = versioned(&host, 1).await;
    assert_eq!(label(&result(&finish(&host, run, LIMIT).await)), "a->a");

    // A good file again clears the rejection.
    install(&sandbox, "versioned-b", "versioned.wasm");
    until_served(&host, "Versioned", Some(&v1)).await;
    assert_eq!(host.plugins().rejected().len(), 1);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_slowly_is_not_loaded_half_written() {
    let sandbox = TestBed::new(&[]);
    let host = sandbox.host().await;
    let bytes = std::fs::read(component("hello")).unwrap();
    let path = sandbox.plugins().join("hello.wasm");
    // Written in place, in pieces, with pauses shorter and longer than the
    // watcher's period.
    let mut file = std::fs::File::create(&path).unwrap();
    let chunks: Vec<&[u8]> = bytes.chunks(bytes.len() / 4 + 1).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        use std::io::Write;
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 50 } else { 450 })).await;
    }
    drop(file);
    until_served(&host, "Greeter", None).await;
    // Any half file that held still long enough was rejected; the complete
    // one replaced that.
    assert!(
        host.plugins().rejected().is_empty(),
        "{:?}",
        host.plugins().rejected()
    );
    let run = host
        .start("Greeter", r#"{"name":"Slow"}"#, StartOptions::new())
        .await
        .unwrap();
    assert_eq!(
        result(&finish(&host, run.run_id, LIMIT).await),
        json!("Hello, Slow")
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_moves_waiting_runs_that_fit_and_lists_the_rest() {
    let sandbox = TestBed::new(&[]);
    install(&sandbox, "versioned-a", "versioned.wasm");
    let host = sandbox.host().await;
    let v1 = serving(&host, "Versioned").unwrap();
    let waiting: Vec<RunId> = futures_join(&host, 3).await;
    for run in &waiting {
        until(&host, *run, LIMIT, |r| r.status == RunStatus::Waiting).await;
    }

    // An incompatible version: nothing moves, every run is listed.
    install(&sandbox, "versioned-c", "versioned.wasm");
    let (v3, _) = until_served(&host, "Versioned", Some(&v1)).await;
    let report = host.upgrade("Versioned").await.unwrap();
    assert_eq!(report.version, v3);
    assert!(report.upgraded.is_empty());
    assert_eq!(report.pinned.len(), 3);
    for pinned in &report.pinned {
        assert_eq!(pinned.version, v1);
        assert!(pinned.reason.contains("is missing"), "{}", pinned.reason);
    }

    // A compatible one: all three move and finish on it.
    install(&sandbox, "versioned-b", "versioned.wasm");
    let (v2, _) = until_served(&host, "Versioned", Some(&v3)).await;
    let report = host.upgrade("Versioned").await.unwrap();
    assert_eq!(report.upgraded.len(), 3, "{:?}", report.pinned);
    for run in &waiting {
        host.send_to_run(*run, "poke", "").await.unwrap();
        let done = finish(&host, *run, LIMIT).await;
        assert_eq!(label(&result(&done)), "a->b", "started on a, finished on b");
        assert_eq!(done.version, v2);
        let kinds: Vec<_> = host
            .history(*run)
            .await
            .unwrap()
            .iter()
            .map(|h| h.event.kind())
            .collect();
        assert!(kinds.contains(&"run_upgraded"), "{kinds:?}");
    }
    host.shutdown().await;
}

async fn futures_join(host: &Host, n: usize) -> Vec<RunId> {
    let mut runs = Vec::new();
    for _ in 0..n {
        runs.push(versioned(host, 60_000).await);
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_replacements_under_load_fail_no_run() {
    let sandbox = TestBed::new(&[]);
    install(&sandbox, "versioned-a", "versioned.wasm");
    let host = std::sync::Arc::new(sandbox.host().await);
    let a = serving(&host, "Versioned").unwrap();
    let b = {
        let inspected = wasmflow_host::inspect_plugins(&{
            let dir = sandbox.path().join("b-only");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(component("versioned-b"), dir.join("versioned.wasm")).unwrap();
            dir
        })
        .await
        .unwrap();
        inspected.get("Versioned").unwrap().component.hash.clone()
    };

    // A steady stream of runs that step and wait, while the plugin flips
    // between its two versions twenty times.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let starter = {
        let host = host.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut runs = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let run = host
                    .start("Versioned", r#"{"wait_ms": 150}"#, StartOptions::new())
                    .await
                    .unwrap();
                runs.push(run.run_id);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            runs
        })
    };
    let mut current = a.clone();
    for i in 0..20 {
        let (name, expect) = if i % 2 == 0 {
            ("versioned-b", &b)
        } else {
            ("versioned-a", &a)
        };
        install(&sandbox, name, "versioned.wasm");
        let (now, _) = until_served(&host, "Versioned", Some(&current)).await;
        assert_eq!(&now, expect);
        current = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = starter.await.unwrap();
    assert!(runs.len() > 50, "only {} runs", runs.len());
    let mut on = std::collections::BTreeMap::<String, usize>::new();
    for run in runs {
        let done = finish(&host, run, LIMIT).await;
        assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
        let label = label(&result(&done)).to_owned();
        // Started and finished on the same version, the one it is pinned to.
        let (start, end) = label.split_once("->").unwrap();
        assert_eq!(start, end, "{label}");
        let version = if start == "a" { &a } else { &b };
        assert_eq!(&done.version, version);
        *on.entry(label).or_default() += 1;
    }
    assert_eq!(on.len(), 2, "runs started on both versions: {on:?}");
    let Ok(host) = std::sync::Arc::try_unwrap(host) else {
        panic!("host still shared")
    };
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_keep_going_while_a_plugin_compiles() {
    let sandbox = TestBed::new(&["counter"]);
    let host = sandbox.host().await;
    let run = host
        .start("Counter", r#"{"n": 100000}"#, StartOptions::new())
        .await
        .unwrap()
        .run_id;
    until(&host, run, LIMIT, |r| r.seq > 10).await;
    // A plugin this host never compiled (its cache is fresh).
    let before = host.run(run).await.unwrap().seq;
    install(&sandbox, "probe", "probe.wasm");
    let mut progressed_while_loading = 0;
    while serving(&host, "StoreProbe").is_none() {
        let seq = host.run(run).await.unwrap().seq;
        progressed_while_loading = seq - before;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        progressed_while_loading > 0,
        "the counter stood still while the plugin loaded"
    );
    host.terminate(&host.run(run).await.unwrap().workflow_id, "enough")
        .await
        .unwrap();
    host.shutdown().await;
}
