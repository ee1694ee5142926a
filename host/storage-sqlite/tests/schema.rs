//! Schema versions: a database made before migrations were versioned opens
//! unchanged, with its runs; a database from a newer wasmflow is refused.

use rusqlite::Connection;
use wasmflow_storage::{Quotas, Storage, StorageError};
use wasmflow_storage_sqlite::{Access, SqliteStorage};

const QUOTAS: Quotas = Quotas { max_inbox_len: 100 };

/// The first migration is the schema wasmflow 0.1 created by hand, with
/// `PRAGMA user_version = 1`.
fn make_unversioned(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(include_str!("../migrations/V1__initial.sql"))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO runs (run_id, workflow_id, workflow_type, version, status, close_policy,
                           input, result, seq, created_at, updated_at)
         VALUES ('0190c3a4-5b6c-7d8e-9f00-112233445566', 'order-1', 'Order', 'v1', 'completed',
                 'abandon', '{}', '\"txn-1\"', 4, 1, 2);
         PRAGMA user_version = 1;",
    )
    .unwrap();
}

#[tokio::test]
async fn a_database_from_before_versioned_migrations_opens_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    make_unversioned(&path);
    let storage = SqliteStorage::open(&path, Access::Host, QUOTAS).unwrap();
    let run = storage
        .latest_run("order-1")
        .await
        .unwrap()
        .expect("the run is still there");
    assert_eq!(run.result.unwrap().get(), "\"txn-1\"");
    assert_eq!(run.seq, 4);
    drop(storage);
    // And again, now that the migration is recorded.
    let storage = SqliteStorage::open(&path, Access::Host, QUOTAS).unwrap();
    assert!(storage.latest_run("order-1").await.unwrap().is_some());
}

#[test]
fn a_newer_schema_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    // Newer by the old-style version number.
    let path = dir.path().join("newer.db");
    make_unversioned(&path);
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    let err = SqliteStorage::open(&path, Access::Host, QUOTAS)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StorageError::SchemaTooNew {
                found: 7,
                supported: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer.db"), "{err}");

    // Newer by a migration this binary does not know.
    let path = dir.path().join("migrated.db");
    drop(SqliteStorage::open(&path, Access::Host, QUOTAS).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (6, 'later', '2026-11-28T00:00:00Z', '0')",
        )
        .unwrap();
    let err = SqliteStorage::open(&path, Access::Host, QUOTAS)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StorageError::SchemaTooNew {
                found: 6,
                supported: 5,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("schema version 6, newer than this wasmflow's 5"),
        "{message}"
    );
}
