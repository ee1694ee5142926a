//! One host per database file: an OS lock on `<database>.lock`, held for
//! the storage's lifetime and released by the OS when the process ends
//! (also on a crash or SIGKILL, so a stale lock never blocks a restart).
//! The file says who holds it, for the error a second host gets.
//!
//! A host of this same process that is shutting down (dropped, its tasks
//! ending) still holds the file for a moment; opening the database again
//! from the same process waits for it, up to [`SAME_PROCESS_GRACE`]. Another
//! process is refused at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmflow_storage::StorageError;

/// How long an open waits for a host of the same process to let go.
pub(crate) const SAME_PROCESS_GRACE: Duration = Duration::from_secs(10);

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct HostLock {
    _file: File,
}

impl HostLock {
    /// Lock `<db>.lock` for this process, or say who holds it.
    pub(crate) fn acquire(db: &Path) -> Result<HostLock, StorageError> {
        let path = lock_path(db);
        let open_error = |e: std::io::Error| StorageError::Open {
            path: db.display().to_string(),
            reason: format!("cannot open the lock file `{}`: {e}", path.display()),
            source: Some(Box::new(e)),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_error)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(open_error(e)),
            }
            let mut holder = String::new();
            let _ = file.seek(SeekFrom::Start(0));
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let ours = holder.starts_with(&format!("process {} ", std::process::id()));
            if !ours || started.elapsed() >= SAME_PROCESS_GRACE {
                return Err(StorageError::Locked {
                    path: db.display().to_string(),
                    holder: if holder.is_empty() {
                        format!("lock file `{}`", path.display())
                    } else {
                        format!("{holder}; lock file `{}`", path.display())
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let holder = format!(
            "process {} (`{}`)",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(open_error)?;
        Ok(HostLock { _file: file })
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_process_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let first = HostLock::acquire(&db).unwrap();
        // Pretend the holder is another process.
        std::fs::write(lock_path(&db), "process 1 (`init`)").unwrap();
        let started = Instant::now();
        let err = HostLock::acquire(&db).unwrap_err();
        assert!(
            started.elapsed() < SAME_PROCESS_GRACE / 2,
            "refused at once"
        );
        let message = err.to_string();
        assert!(matches!(err, StorageError::Locked { .. }), "{err:?}");
        assert!(message.contains("w.db"), "{message}");
        assert!(message.contains("process 1 (`init`)"), "{message}");
        drop(first);
        HostLock::acquire(&db).unwrap();
    }

    #[test]
    fn the_same_process_waits_for_its_host_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let first = HostLock::acquire(&db).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        HostLock::acquire(&db).unwrap();
        release.join().unwrap();
    }
}
