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

use crate::run;

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
    /// Create and start a cluster on 127.0.0.1.
    pub fn start() -> Result<Cluster> {
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
        // Throw-away data: no fsync (the machine does not crash under a
        // test), but every commit written before it is acknowledged (a
        // server stopped abruptly loses nothing); room for many hosts'
        // pools at once.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off \
             -c max_connections=800 -c shared_buffers=64MB",
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

/// A new, empty schema in the server of [`URL_ENV`]: the URL that works in
/// it (`options=-csearch_path=...`).
pub fn fresh_schema() -> Result<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var(URL_ENV).with_context(|| {
        format!("{URL_ENV} is not set: run the tests with `cargo xtask test`, which starts a PostgreSQL server, or point {URL_ENV} at one (postgres://user@host:port/database)")
    })?;
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .with_context(|| format!("cannot connect to {URL_ENV}={base}"))?;
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .with_context(|| format!("cannot create schema {schema}"))?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{separator}options=-csearch_path%3D{schema}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
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
    let sudo = !is_root();
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "postgresql",
    ])?;
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
