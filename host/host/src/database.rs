//! [`Database`]: which storage backend a host works on, and opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmflow_storage::{Quotas, Storage, StorageError};
use wasmflow_storage_postgres::{PostgresOptions, PostgresStorage};
use wasmflow_storage_sqlite::{Access, SqliteStorage};

/// Where a host keeps its runs: an embedded SQLite file (one host), or a
/// PostgreSQL database several hosts share.
///
/// ```
/// use wasmflow_host::Database;
/// assert!(matches!(Database::parse("wasmflow.db"), Database::Sqlite(_)));
/// assert!(matches!(
///     Database::parse("postgres://wasmflow@db.internal/wasmflow"),
///     Database::Postgres(_)
/// ));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite file at this path (created if missing).
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

impl Database {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL database;
    /// anything else is a SQLite file's path.
    pub fn parse(text: &str) -> Database {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(text))
        }
    }

    /// Whether the database exists (a PostgreSQL database is assumed to:
    /// connecting says otherwise).
    pub fn exists(&self) -> bool {
        match self {
            Database::Sqlite(path) => path.exists(),
            Database::Postgres(_) => true,
        }
    }

    /// Where compiled components are cached by default: beside a SQLite
    /// file, in the user's cache directory for PostgreSQL.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        match self {
            Database::Sqlite(path) => crate::builder::beside(path, ".cache"),
            Database::Postgres(_) => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("wasmflow"),
        }
    }

    /// Open the backend. `host`: a host that drives runs (a SQLite file is
    /// then locked for this process) rather than an admin command.
    pub(crate) async fn open(
        &self,
        host: bool,
        quotas: Quotas,
        pool_size: u32,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(match self {
            Database::Sqlite(path) => {
                let access = if host { Access::Host } else { Access::Admin };
                Arc::new(SqliteStorage::open(path, access, quotas)?)
            }
            Database::Postgres(url) => {
                let url = url.clone();
                let options = PostgresOptions {
                    pool_size,
                    connect_timeout: Duration::from_secs(5),
                };
                // Connecting blocks (the sync client runs its own runtime).
                let storage = tokio::task::spawn_blocking(move || {
                    PostgresStorage::open(&url, quotas, options)
                })
                .await
                .map_err(|_| StorageError::Closed)??;
                Arc::new(storage)
            }
        })
    }
}

/// The URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&wasmflow_storage_postgres::redacted(url)),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

impl From<&str> for Database {
    fn from(text: &str) -> Self {
        Database::parse(text)
    }
}

impl From<String> for Database {
    fn from(text: String) -> Self {
        Database::parse(&text)
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Self {
        Database::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Self {
        Database::Sqlite(path.clone())
    }
}
