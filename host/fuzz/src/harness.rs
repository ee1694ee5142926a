//! A real host for the targets that need one (`api`, `guest`): the engine,
//! the sandbox and a SQLite file in a temp dir (on `/dev/shm` where there is
//! one: fsyncs there are free, and a fuzzer runs thousands of starts), with
//! its plugins directory holding the named components. One per target and
//! process, started on first use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use tempfile::TempDir;
use tokio::runtime::Runtime;
use wasmflow_host::{Database, Host, HostBuilder};

/// Where the fuzz drivers find the built components (`cargo xtask fuzz`
/// builds them and sets it); without it they are built here.
pub const COMPONENTS_ENV: &str = "WASMFLOW_FUZZ_COMPONENTS";

pub struct Harness {
    pub runtime: Runtime,
    pub host: Arc<Host>,
    _dir: TempDir,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Panics anywhere in the process since it started, the host's tasks
/// included (tokio would otherwise swallow a panic in a spawned task).
pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// The built component `name` (an example or a test guest).
fn component(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(COMPONENTS_ENV) {
        return PathBuf::from(dir).join(format!("{name}.wasm"));
    }
    let guests = xtask::build_guests().expect("the guest components build");
    let example = guests.example(name);
    if example.exists() {
        example
    } else {
        guests.test_guest(name)
    }
}

impl Harness {
    /// A host on a fresh database with `components` in its plugins
    /// directory, configured by `configure`.
    pub fn start(
        components: &[&str],
        configure: impl FnOnce(HostBuilder) -> HostBuilder,
    ) -> Harness {
        count_panics();
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("the plugins dir");
        for name in components {
            let from = component(name);
            std::fs::copy(&from, plugins.join(format!("{name}.wasm")))
                .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let builder =
            HostBuilder::new(Database::Sqlite(dir.path().join("wasmflow.db"))).plugins(plugins);
        let host = runtime
            .block_on(configure(builder).start())
            .expect("the host starts");
        Harness {
            runtime,
            host: Arc::new(host),
            _dir: dir,
        }
    }
}
