//! The storage conformance suite (`wasmflow_storage::conformance`) against
//! the SQLite backend, plus what only SQLite promises: one host per file.

use tempfile::TempDir;
use wasmflow_core::model::{Pending, RunId, json_null};
use wasmflow_core::plan::NewRun;
use wasmflow_core::{HandlerKind, RunStatus};
use wasmflow_storage::conformance::QUOTAS;
use wasmflow_storage::{Storage, StorageError};
use wasmflow_storage_sqlite::{Access, SqliteStorage};

/// A fresh database file in its own temporary directory.
async fn open() -> (TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("conformance.db");
    match SqliteStorage::open(&path, Access::Host, QUOTAS) {
        Ok(storage) => (dir, storage),
        Err(e) => panic!("opening {}: {e} ({e:?})", path.display()),
    }
}

wasmflow_storage::conformance_tests!(open);

/// A second host on the same file is refused, naming the file; an admin
/// opens it alongside; once the holder closes, a host opens it again and
/// finds what was committed.
#[tokio::test]
async fn one_host_holds_a_database_file_while_admins_may_open_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("held.db");
    let holder = SqliteStorage::open(&path, Access::Host, QUOTAS)
        .unwrap_or_else(|e| panic!("the first host opens a new database: {e} ({e:?})"));
    let run = NewRun {
        run_id: RunId::new(),
        workflow_id: "order-1".into(),
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
        at_ms: 1,
    };
    let run_id = run.run_id;
    let created = holder.create_run(run).await.expect("the holder writes");
    assert_eq!(created, Ok(()), "the holder creates a run");

    // As if another process held it: a host of this process that is
    // shutting down would be waited for.
    std::fs::write(
        dir.path().join("held.db.lock"),
        "process 1 (`wasmflow serve`)",
    )
    .expect("the lock file is writable");
    match SqliteStorage::open(&path, Access::Host, QUOTAS) {
        Ok(_) => panic!("a second host must not open a held database"),
        Err(e @ StorageError::Locked { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("held.db"),
                "the refusal names the file: {message}"
            );
            assert!(
                message.contains("process 1 (`wasmflow serve`)"),
                "the refusal names the holder: {message}"
            );
        }
        Err(e) => panic!("a second host must be refused with Locked, got {e:?}"),
    }

    let admin = SqliteStorage::open(&path, Access::Admin, QUOTAS)
        .unwrap_or_else(|e| panic!("an admin opens a held database: {e}"));
    let seen = admin
        .run(run_id)
        .await
        .expect("an admin reads the held database");
    assert!(seen.is_some(), "an admin sees the holder's committed run");

    drop(admin);
    drop(holder);
    let reopened = SqliteStorage::open(&path, Access::Host, QUOTAS).unwrap_or_else(|e| {
        panic!("a host opens the database once its holder closed it: {e} ({e:?})")
    });
    let found = reopened
        .run(run_id)
        .await
        .expect("the reopened database reads");
    assert_eq!(
        found.map(|r| (r.workflow_id, r.status)),
        Some(("order-1".to_owned(), RunStatus::Running)),
        "a reopened database reads back what was committed"
    );
}
