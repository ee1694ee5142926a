//! The storage conformance suite (`wasmflow_storage::conformance`) against
//! the PostgreSQL backend, each check in a fresh schema of the server
//! `cargo xtask test` starts, plus what only a shared database promises:
//! claims, orphans and notices between hosts.

use wasmflow_storage::conformance::QUOTAS;
use wasmflow_storage_postgres::{PostgresOptions, PostgresStorage};

fn options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 4,
        ..PostgresOptions::default()
    }
}

/// A fresh schema and the storage on it.
async fn open() -> ((), PostgresStorage) {
    let storage = tokio::task::spawn_blocking(|| {
        let url = xtask::postgres::fresh_schema().unwrap_or_else(|e| panic!("{e:#}"));
        PostgresStorage::open(&url, QUOTAS, options())
    })
    .await
    .expect("open does not panic")
    .unwrap_or_else(|e| panic!("opening PostgreSQL: {e} ({e:?})"));
    ((), storage)
}

wasmflow_storage::conformance_tests!(open);

mod shared {
    use std::time::Duration;

    use wasmflow_core::HandlerKind;
    use wasmflow_core::model::{Pending, RunId, json_null, now_ms};
    use wasmflow_core::plan::NewRun;
    use wasmflow_storage::conformance::QUOTAS;
    use wasmflow_storage::{Notice, Storage};
    use wasmflow_storage_postgres::PostgresStorage;

    /// Two hosts' storages on one fresh schema.
    async fn two() -> (PostgresStorage, PostgresStorage) {
        tokio::task::spawn_blocking(|| {
            let url = xtask::postgres::fresh_schema().unwrap_or_else(|e| panic!("{e:#}"));
            let open = || {
                PostgresStorage::open(&url, QUOTAS, super::options())
                    .unwrap_or_else(|e| panic!("opening PostgreSQL: {e}"))
            };
            (open(), open())
        })
        .await
        .expect("open does not panic")
    }

    fn new_run(workflow_id: &str) -> NewRun {
        NewRun {
            run_id: RunId::new(),
            workflow_id: workflow_id.into(),
            workflow_type: "Order".into(),
            version: "v1".into(),
            parent: None,
            input: json_null(),
            pending: Pending {
                kind: HandlerKind::Start,
                handler: "start".into(),
                input: json_null(),
            },
            deadline_ms: None,
            at_ms: now_ms(),
        }
    }

    /// One host at a time holds a run's claim; it passes on when released
    /// or expired; a released running run is nobody's and becomes an orphan
    /// once overdue, a claimed one only once its claim expired.
    #[tokio::test]
    async fn a_claim_is_held_by_one_host_until_released_or_expired() {
        let (a, b) = two().await;
        let run = new_run("order-1");
        let run_id = run.run_id;
        assert_eq!(a.create_run(run).await.expect("create"), Ok(()));
        let soon = now_ms() + 60_000;
        assert!(
            a.claim(run_id, soon).await.expect("claim"),
            "A claims a free run"
        );
        assert!(
            a.claim(run_id, soon).await.expect("claim"),
            "A renews its own claim"
        );
        assert!(
            !b.claim(run_id, soon).await.expect("claim"),
            "B cannot take A's claim"
        );
        assert!(
            b.orphans(now_ms(), 0, 10)
                .await
                .expect("orphans")
                .is_empty(),
            "a claimed run is no orphan"
        );
        assert!(
            a.release(run_id).await.expect("release"),
            "the released run is still running: its driver drives on"
        );
        assert!(
            !b.release(run_id).await.expect("release"),
            "B held nothing to release"
        );
        assert!(
            b.claim(run_id, now_ms() + 1).await.expect("claim"),
            "B claims it once free"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let orphans = a.orphans(now_ms(), 0, 10).await.expect("orphans");
        assert_eq!(
            orphans.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            vec![run_id],
            "a run whose claim expired is an orphan"
        );
        assert!(
            a.claim(run_id, soon).await.expect("claim"),
            "A takes an expired claim over"
        );
        assert!(!b.claim(run_id, soon).await.expect("claim"));
    }

    /// A run that ends on one host is announced to the other.
    #[tokio::test]
    async fn a_run_that_ends_is_announced_to_every_host() {
        let (a, b) = two().await;
        let mut notices = b.notices().expect("a shared backend has notices");
        let run = new_run("order-2");
        let run_id = run.run_id;
        assert_eq!(a.create_run(run).await.expect("create"), Ok(()));
        a.terminate(run_id, "done".into(), now_ms())
            .await
            .expect("terminate")
            .expect("the run was live");
        let notice = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match notices.recv().await {
                    Ok(Notice::Finished(id)) if id == run_id => return,
                    Ok(_) => continue,
                    Err(e) => panic!("notices stopped: {e}"),
                }
            }
        })
        .await;
        assert!(notice.is_ok(), "host B hears that the run ended on host A");
    }

    /// The next notice `pick` accepts, within 10 s.
    async fn next_notice<T>(
        notices: &mut tokio::sync::broadcast::Receiver<Notice>,
        pick: impl Fn(Notice) -> Option<T>,
    ) -> Option<T> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match notices.recv().await {
                    Ok(notice) => {
                        if let Some(found) = pick(notice) {
                            return found;
                        }
                    }
                    Err(e) => panic!("notices stopped: {e}"),
                }
            }
        })
        .await
        .ok()
    }

    /// A plugin file one host deploys is listed for every host and
    /// announced once per version; retired, it is gone and announced; a
    /// deployed version is never pruned.
    #[tokio::test]
    async fn a_deployed_plugin_file_is_announced_listed_and_kept() {
        let (a, b) = two().await;
        let mut notices = b.notices().expect("a shared backend has notices");
        let bytes: std::sync::Arc<[u8]> = b"\0asm".as_slice().into();
        a.save_component("v1", Some("order.wasm".into()), bytes.clone(), now_ms())
            .await
            .expect("save");
        a.deploy("order.wasm", "v1", now_ms())
            .await
            .expect("deploy");
        let deployed = next_notice(&mut notices, |n| match n {
            Notice::Deployed { file, version } => Some((file, version)),
            _ => None,
        })
        .await;
        assert_eq!(
            deployed,
            Some(("order.wasm".to_owned(), "v1".to_owned())),
            "host B hears of the deployment"
        );
        assert_eq!(
            b.deployments().await.expect("deployments"),
            vec![("order.wasm".to_owned(), "v1".to_owned())]
        );
        assert_eq!(
            b.prune_components(Vec::new()).await.expect("prune"),
            0,
            "a deployed version is kept"
        );

        // The same version again says nothing; a new one replaces it.
        a.deploy("order.wasm", "v1", now_ms())
            .await
            .expect("deploy");
        a.save_component("v2", Some("order.wasm".into()), bytes, now_ms())
            .await
            .expect("save");
        b.deploy("order.wasm", "v2", now_ms())
            .await
            .expect("deploy");
        let deployed = next_notice(&mut notices, |n| match n {
            Notice::Deployed { version, .. } => Some(version),
            _ => None,
        })
        .await;
        assert_eq!(deployed.as_deref(), Some("v2"), "not v1 a second time");
        assert_eq!(
            a.deployments().await.expect("deployments"),
            vec![("order.wasm".to_owned(), "v2".to_owned())]
        );

        a.retire("order.wasm").await.expect("retire");
        let retired = next_notice(&mut notices, |n| match n {
            Notice::Retired { file } => Some(file),
            _ => None,
        })
        .await;
        assert_eq!(retired.as_deref(), Some("order.wasm"));
        assert!(b.deployments().await.expect("deployments").is_empty());
        assert_eq!(
            b.prune_components(Vec::new()).await.expect("prune"),
            1,
            "v1, neither deployed nor the newest of its file, is forgotten"
        );
    }

    /// A host whose claim another host took over (its lease ran out) can
    /// no longer record its activation's tasks: the other host may be
    /// running them too. The new holder records.
    #[tokio::test]
    async fn only_the_claim_holder_records_tasks() {
        use wasmflow_core::journal::{JournalEntry, RecordedValue};

        let (a, b) = two().await;
        let run = new_run("order-3");
        let run_id = run.run_id;
        assert_eq!(a.create_run(run).await.expect("create"), Ok(()));
        let entry = || vec![JournalEntry::Value(RecordedValue::Now(now_ms()))];
        assert!(
            !a.record(run_id, 0, entry(), now_ms())
                .await
                .expect("record"),
            "nobody holds the claim yet"
        );
        assert!(a.claim(run_id, now_ms() + 1).await.expect("claim"));
        assert!(
            a.record(run_id, 0, entry(), now_ms())
                .await
                .expect("record")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            b.claim(run_id, now_ms() + 60_000).await.expect("claim"),
            "B takes the expired claim over"
        );
        assert!(
            !a.record(run_id, 0, entry(), now_ms())
                .await
                .expect("record"),
            "A lost the claim: its record is refused"
        );
        assert!(
            b.record(run_id, 0, entry(), now_ms())
                .await
                .expect("record")
        );
        assert_eq!(b.journal(run_id).await.expect("journal").entries.len(), 2);
    }
}
