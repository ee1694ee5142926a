//! The PostgreSQL schema: migrations applied once when several hosts start
//! at once, and a schema newer than this binary refused with a clear error.

use wasmflow_storage::StorageError;
use wasmflow_storage::conformance::QUOTAS;
use wasmflow_storage_postgres::{PostgresOptions, PostgresStorage};

fn open(url: &str) -> Result<PostgresStorage, StorageError> {
    PostgresStorage::open(
        url,
        QUOTAS,
        PostgresOptions {
            pool_size: 2,
            ..PostgresOptions::default()
        },
    )
}

#[test]
fn hosts_starting_together_migrate_once() {
    let url = xtask::postgres::fresh_schema().unwrap_or_else(|e| panic!("{e:#}"));
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || open(&url).map(drop))
        })
        .collect();
    for host in opened {
        host.join()
            .expect("open does not panic")
            .unwrap_or_else(|e| panic!("a host starting beside others: {e}"));
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let applied: i64 = client
        .query_one("SELECT COUNT(*) FROM refinery_schema_history", &[])
        .and_then(|r| r.try_get(0))
        .expect("the migration history");
    let runs_ended: bool = client
        .query_one("SELECT to_regclass('runs_ended') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .expect("the indexes");
    assert_eq!(applied, 3, "each migration once");
    assert!(runs_ended, "the newest migration applied");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_naming_both_versions() {
    let url = xtask::postgres::fresh_schema().unwrap_or_else(|e| panic!("{e:#}"));
    drop(open(&url).expect("a fresh schema opens"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
        )
        .expect("a newer binary's migration");
    let err = match open(&url) {
        Ok(_) => panic!("a newer schema was opened"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            StorageError::SchemaTooNew {
                found: 999,
                supported: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("999") && message.contains("newer"),
        "{message}"
    );
}
