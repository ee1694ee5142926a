//! A throw-away PostgreSQL server for the tests, and fresh schemas in it.
//!
//! [`Cluster::start`] finds Debian's PostgreSQL binaries (installing the
//! `postgresql` package with apt when they are missing), creates a cluster
//! in a temporary directory with trust authentication, and starts it on
//! loopback on a free port; dropping the [`Cluster`] stops it and deletes
//! the directory. `cargo xtask test` starts one for the whole suite and
//! hands its URL to the tests in [`URL_ENV`]; each test takes a schema of
//! its own with [`fresh_schema`]. PostgreSQL refuses to run as root: as
//! root, the server runs as the `postgres` user the package creates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};

use crate::{is_root, run};

/// The environment variable that gives the tests a PostgreSQL server:
/// `postgres://user@host:port/database`.
pub const URL_ENV: &str = "WASMFLOW_TEST_POSTGRES";

/// A running throw-away cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    user: Option<&'static str>,
    url: String,
    /// The server's settings, for starting it again.
    options: String,
}

impl Cluster {
    /// Create and start a cluster on 127.0.0.1 for the tests.
    pub fn start() -> Result<Cluster> {
        // Throw-away data: no fsync (the machine does not crash under a
        // test), but every commit written before it is acknowledged (a
        // server stopped abruptly loses nothing).
        Cluster::start_with("-c fsync=off -c full_page_writes=off")
    }

    /// A cluster as durable as a production one (every commit flushed to
    /// disk) that counts statements (`pg_stat_statements`): for the
    /// benchmark's figures.
    pub fn start_durable() -> Result<Cluster> {
        Cluster::start_with("-c shared_preload_libraries=pg_stat_statements")
    }

    fn start_with(settings: &str) -> Result<Cluster> {
        let bin = binaries()?;
        let user = is_root().then_some("postgres");
        let dir = std::env::temp_dir().join(format!(
            "wasmflow-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if let Some(user) = user {
            run(Command::new("chown").arg(user).arg(&dir))?;
        }
        let data = dir.join("data");
        run(as_user(user, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(std::process::Stdio::null()))
        .context("initdb failed")?;
        let port = free_port()?;
        // Room for many hosts' pools at once.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c max_connections=800 -c shared_buffers=64MB {settings}",
            dir.display()
        );
        let cluster = Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            user,
            options,
        };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Start the server again after [`Cluster::stop`], on the same port
    /// with the same data.
    pub fn start_again(&self) -> Result<()> {
        run(as_user(self.user, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &self.options, "-w", "-t", "60", "start"])
            .stdout(std::process::Stdio::null()))
        .with_context(|| {
            format!(
                "the PostgreSQL server did not start; see {}",
                self.dir.join("server.log").display()
            )
        })
    }

    /// Stop the server the way a crash would (`pg_ctl -m immediate`):
    /// every connection is cut at once.
    pub fn stop(&self) -> Result<()> {
        run(as_user(self.user, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null()))
        .context("the PostgreSQL server did not stop")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_user(self.user, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a server did, counted since it started (or since the last
/// [`Cluster::stats`] reset): for figures per workflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    /// Statements executed, `BEGIN` and `COMMIT` included: each one a
    /// round trip of the client.
    pub statements: u64,
    /// Transactions committed.
    pub commits: u64,
    /// WAL flushes to disk (`fsync`s of commits).
    pub wal_syncs: u64,
    /// CPU seconds the server's processes used.
    pub cpu_seconds: f64,
}

impl Cluster {
    /// The server's counts now (needs [`Cluster::start_durable`]'s
    /// `pg_stat_statements`).
    pub fn stats(&self) -> Result<ServerStats> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .with_context(|| format!("cannot connect to {}", self.url))?;
        client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        let row = client.query_one(
            "SELECT (SELECT COALESCE(SUM(calls), 0)::BIGINT FROM pg_stat_statements),
                    (SELECT SUM(xact_commit)::BIGINT FROM pg_stat_database),
                    (SELECT wal_sync FROM pg_stat_wal)",
            &[],
        )?;
        let count = |i: usize| -> Result<u64> {
            let v: i64 = row.try_get(i)?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok(ServerStats {
            statements: count(0)?,
            commits: count(1)?,
            wal_syncs: count(2)?,
            cpu_seconds: self.cpu_seconds(),
        })
    }

    /// CPU time of the server's processes (the postmaster's process group),
    /// from `/proc`.
    fn cpu_seconds(&self) -> f64 {
        let Ok(pid) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else {
            return 0.0;
        };
        let Some(leader) = pid
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            return 0.0;
        };
        let ticks = 100.0; // USER_HZ on Linux
        let mut total = 0u64;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // After the `(comm)` field: state ppid pgrp ... utime(14) stime(15)
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
            if pid == leader || ppid == leader {
                let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
                let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
                total += utime + stime;
            }
        }
        total as f64 / ticks
    }
}

/// A new, empty schema in the server of [`URL_ENV`]: the URL that works in
/// it (`options=-csearch_path=...`).
pub fn fresh_schema() -> Result<String> {
    let base = std::env::var(URL_ENV).with_context(|| {
        format!("{URL_ENV} is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL server, or point {URL_ENV} at one (postgres://user@host:port/database)")
    })?;
    schema_in(&base)
}

/// A new, empty schema in the database of `base`: the URL that works in it.
pub fn schema_in(base: &str) -> Result<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut client = postgres::Client::connect(base, postgres::NoTls)
        .with_context(|| format!("cannot connect to {base}"))?;
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .with_context(|| format!("cannot create schema {schema}"))?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{separator}options=-csearch_path%3D{schema}"))
}

fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The newest installed PostgreSQL's `bin` directory; installs Debian's
/// `postgresql` package if there is none.
fn binaries() -> Result<PathBuf> {
    if let Some(bin) = installed() {
        return Ok(bin);
    }
    eprintln!("xtask: PostgreSQL is not installed; installing Debian's `postgresql` package");
    crate::apt_install(&["postgresql"])?;
    installed().context("PostgreSQL was installed but its binaries are not in /usr/lib/postgresql")
}

fn installed() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
