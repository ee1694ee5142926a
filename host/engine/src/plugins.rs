//! Plugins: the `*.wasm` files of the plugins directory, loaded into
//! component versions, and the workflow types they provide (SPEC 11).
//!
//! [`Plugins`] is an immutable snapshot: which file provides which types at
//! which version, and which files were rejected and why. [`PluginDir`] keeps
//! the current snapshot of one directory and replaces it atomically when a
//! file is added, changed or removed: readers always see a whole snapshot.
//!
//! Rules: a file that cannot be loaded (not wasm, not a component, the wrong
//! world, a `describe` that traps or lies, a type another file already
//! provides) is rejected with its name and the reason and changes nothing —
//! the file's previous version, if any, stays active. Removing a file removes
//! its types. Files load in name order at start, so which of two files
//! claiming the same type wins is deterministic. A file is loaded only once
//! its size and modification time held still for one scan (a file still
//! being written is not loaded half-written), and a content that failed is
//! reported once, not at every scan.
//!
//! A file can also arrive over the API ([`PluginDir::deploy`]): its bytes go
//! through the same checks ([`PluginDir::check`], then the snapshot's type
//! conflict check) and, only once they pass, are written into the directory
//! atomically (a temporary file renamed into place), so that a deployed file
//! survives a restart exactly like a copied one. Where each file came from
//! (the directory, the API, another host) is kept in the snapshot; for the
//! API that is remembered across restarts in `.deployed.json` beside the
//! files (file name → version and time; an entry whose version no longer
//! matches the file is ignored).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use wasmflow_core::activation::{ComponentVersion, Sandbox};
use wasmflow_core::model::{WorkflowTypeSpec, now_ms};
use wasmflow_core::{ErrorKind, WorkflowError};

use crate::error::Error;

/// A workflow type and the component version that provides it.
#[derive(Debug, Clone)]
pub struct TypeEntry {
    pub spec: Arc<WorkflowTypeSpec>,
    pub component: Arc<ComponentVersion>,
    pub file: PathBuf,
}

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub file: PathBuf,
    pub reason: String,
}

/// Where a loaded plugin file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Copied into the plugins directory.
    Directory,
    /// Deployed over the API (`POST /v1/plugins`, `wasmflow deploy`).
    Api,
    /// Deployed by another host of the shared database.
    Fleet,
}

impl Origin {
    /// The name on the wire: `directory`, `api` or `fleet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Directory => "directory",
            Origin::Api => "api",
            Origin::Fleet => "fleet",
        }
    }
}

/// A loaded file.
#[derive(Debug, Clone)]
struct Loaded {
    component: Arc<ComponentVersion>,
    bytes: Arc<[u8]>,
    origin: Origin,
    /// When it arrived (deployed over the API) or was loaded here, ms since
    /// the epoch.
    since_ms: u64,
}

/// A plugin file of a snapshot, for listings.
#[derive(Debug, Clone)]
pub struct PluginFile {
    pub file: PathBuf,
    pub component: Arc<ComponentVersion>,
    pub origin: Origin,
    pub since_ms: u64,
}

/// What [`PluginDir::deploy`] did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub file: PathBuf,
    pub component: Arc<ComponentVersion>,
    pub bytes: Arc<[u8]>,
    /// The version the file had before, if it was replaced.
    pub previous: Option<String>,
    /// `false`: the file already had exactly this content; nothing changed.
    pub changed: bool,
    /// Where the file came from: the API, unless it already had this
    /// content from elsewhere.
    pub origin: Origin,
    pub since_ms: u64,
}

/// What a plugins directory provides, at one moment.
#[derive(Debug, Default, Clone)]
pub struct Plugins {
    types: HashMap<String, TypeEntry>,
    rejected: BTreeMap<PathBuf, String>,
    files: BTreeMap<PathBuf, Loaded>,
}

impl Plugins {
    /// Load every `*.wasm` file of `dir` once, in a sandbox of its own, to
    /// see what it provides (for listings and checks; a
    /// [`Host`](crate::Host) watches its own).
    pub async fn inspect(dir: &Path, sandbox: &dyn Sandbox) -> Result<Plugins, Error> {
        let dir = PluginDir::new(dir.to_owned(), HashMap::new());
        dir.scan(sandbox, true).await?;
        Ok(dir.snapshot().as_ref().clone())
    }

    /// The component that provides `workflow_type`.
    pub fn get(&self, workflow_type: &str) -> Result<&TypeEntry, WorkflowError> {
        self.types.get(workflow_type).ok_or_else(|| {
            let mut message = format!("no plugin provides workflow type `{workflow_type}`");
            if !self.rejected.is_empty() {
                let files: Vec<String> = self
                    .rejected
                    .keys()
                    .map(|f| format!("`{}`", f.display()))
                    .collect();
                message.push_str(&format!(" (rejected plugin files: {})", files.join(", ")));
            }
            WorkflowError::new(ErrorKind::UnknownWorkflowType, message)
        })
    }

    /// The loaded component with this version, if a file provides it now.
    pub fn version(&self, hash: &str) -> Option<&Arc<ComponentVersion>> {
        self.files
            .values()
            .map(|l| &l.component)
            .find(|c| c.hash == hash)
    }

    /// Every loaded file with where it came from, in name order.
    pub fn plugin_files(&self) -> Vec<PluginFile> {
        self.files
            .iter()
            .map(|(p, l)| PluginFile {
                file: p.clone(),
                component: l.component.clone(),
                origin: l.origin,
                since_ms: l.since_ms,
            })
            .collect()
    }

    /// Every loaded file with its component and bytes, in name order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &Arc<ComponentVersion>, &Arc<[u8]>)> {
        self.files
            .iter()
            .map(|(p, l)| (p.as_path(), &l.component, &l.bytes))
    }

    /// Workflow types by name, sorted.
    pub fn types(&self) -> Vec<(&str, &TypeEntry)> {
        let mut types: Vec<_> = self.types.iter().map(|(n, e)| (n.as_str(), e)).collect();
        types.sort_by_key(|(n, _)| *n);
        types
    }

    /// Rejected files, in name order.
    pub fn rejected(&self) -> Vec<Rejected> {
        self.rejected
            .iter()
            .map(|(file, reason)| Rejected {
                file: file.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// This snapshot with `file` providing `component`, or why it cannot.
    fn with_file(
        &self,
        file: &Path,
        component: Arc<ComponentVersion>,
        bytes: Arc<[u8]>,
        origin: Origin,
        since_ms: u64,
    ) -> Result<Plugins, String> {
        if let Some((name, other)) = component.types.iter().find_map(|t| {
            self.types
                .get(&t.name)
                .filter(|e| e.file != file)
                .map(|e| (&t.name, &e.file))
        }) {
            return Err(format!(
                "workflow type `{name}` is already provided by `{}`",
                other.display()
            ));
        }
        let mut next = self.without_file(file);
        for t in &component.types {
            next.types.insert(
                t.name.clone(),
                TypeEntry {
                    spec: t.clone(),
                    component: component.clone(),
                    file: file.to_owned(),
                },
            );
        }
        next.files.insert(
            file.to_owned(),
            Loaded {
                component,
                bytes,
                origin,
                since_ms,
            },
        );
        Ok(next)
    }

    /// This snapshot without `file` (its types and any rejection).
    fn without_file(&self, file: &Path) -> Plugins {
        let mut next = self.clone();
        next.files.remove(file);
        next.types.retain(|_, e| e.file != file);
        next.rejected.remove(file);
        next
    }
}

/// When a file last changed, as far as a scan can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// What a scan did, for the log and the caller.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Files loaded (new or changed), with their component.
    pub loaded: Vec<(PathBuf, Arc<ComponentVersion>, Arc<[u8]>)>,
    /// Files removed.
    pub removed: Vec<PathBuf>,
    /// Files rejected (each content once).
    pub rejected: Vec<PathBuf>,
}

/// One plugins directory and its current snapshot.
pub struct PluginDir {
    dir: PathBuf,
    /// Memory caps by file name.
    memory: HashMap<String, usize>,
    current: ArcSwap<Plugins>,
    scan: Mutex<ScanState>,
    /// The files in the snapshot that another host deployed (they are not
    /// in this directory); held while the snapshot is replaced, so that
    /// scans and deployments take turns.
    fleet: Mutex<HashSet<PathBuf>>,
    /// Scans and deployments over the API take turns: a deployment checks,
    /// writes and publishes its file while no scan looks.
    turn: tokio::sync::Mutex<()>,
    /// The files deployed over the API: file name → (version, when), as
    /// kept in [`DEPLOYED_MANIFEST`].
    deployed: Mutex<HashMap<String, (String, u64)>>,
}

/// The file beside the plugins that remembers which were deployed over the
/// API, and when (not a `*.wasm`: scans do not look at it).
pub const DEPLOYED_MANIFEST: &str = ".deployed.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct ManifestEntry {
    version: String,
    at_ms: u64,
}

#[derive(Default)]
struct ScanState {
    /// Each file's stamp at the previous scan.
    last: HashMap<PathBuf, Stamp>,
    /// The stamp each file was last loaded (or rejected) at.
    handled: HashMap<PathBuf, Stamp>,
    /// Contents already reported as rejected, per file.
    reported: HashSet<(PathBuf, String)>,
}

impl PluginDir {
    pub fn new(dir: PathBuf, memory: HashMap<String, usize>) -> Self {
        let deployed = read_manifest(&dir);
        PluginDir {
            dir,
            memory,
            current: ArcSwap::from_pointee(Plugins::default()),
            scan: Mutex::new(ScanState::default()),
            fleet: Mutex::new(HashSet::new()),
            turn: tokio::sync::Mutex::new(()),
            deployed: Mutex::new(deployed),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Plugins> {
        self.current.load_full()
    }

    /// Look at the directory once and apply what changed. `eager`: load
    /// changed files at once (the first scan) instead of waiting for them to
    /// hold still for one scan. Only an unreadable directory is an error.
    pub async fn scan(&self, sandbox: &dyn Sandbox, eager: bool) -> Result<ScanReport, Error> {
        let _turn = self.turn.lock().await;
        let stamps = self.stamps()?;
        let (to_load, removed) = {
            let mut state = self.scan.lock().map_err(|_| poisoned())?;
            let mut to_load = Vec::new();
            for (path, stamp) in &stamps {
                let stable = eager || state.last.get(path) == Some(stamp);
                if stable && state.handled.get(path) != Some(stamp) {
                    to_load.push((path.clone(), *stamp));
                }
            }
            let removed: Vec<PathBuf> = state
                .handled
                .keys()
                .filter(|p| !stamps.contains_key(*p))
                .cloned()
                .collect();
            for path in &removed {
                state.handled.remove(path);
                state.reported.retain(|(p, _)| p != path);
            }
            state.last = stamps;
            // Name order: which of two files claiming a type wins is
            // deterministic.
            to_load.sort_by(|a, b| a.0.cmp(&b.0));
            (to_load, removed)
        };

        let mut report = ScanReport::default();
        for path in removed {
            let mut fleet = self.fleet.lock().map_err(|_| poisoned())?;
            fleet.remove(&path);
            let next = self.snapshot().without_file(&path);
            self.current.store(Arc::new(next));
            drop(fleet);
            tracing::info!(file = %path.display(), "plugin removed; its types are no longer startable");
            report.removed.push(path);
        }
        for (path, stamp) in to_load {
            match self.load_file(sandbox, &path, stamp).await? {
                Load::Loaded(loaded) => report.loaded.push(loaded),
                Load::Rejected { first: true } => report.rejected.push(path),
                Load::Rejected { first: false } | Load::Unchanged => {}
            }
        }
        Ok(report)
    }

    fn stamps(&self) -> Result<HashMap<PathBuf, Stamp>, Error> {
        let dir_error = |source| Error::PluginsDir {
            path: self.dir.clone(),
            source,
        };
        let mut stamps = HashMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "wasm") {
                continue;
            }
            // A file that vanished between listing and stat is simply gone.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                stamps.insert(
                    path,
                    Stamp {
                        len: meta.len(),
                        modified: meta.modified().ok(),
                    },
                );
            }
        }
        Ok(stamps)
    }

    /// Load one file and publish it, or record why not.
    async fn load_file(
        &self,
        sandbox: &dyn Sandbox,
        path: &Path,
        stamp: Stamp,
    ) -> Result<Load, Error> {
        let started = Instant::now();
        let bytes: Arc<[u8]> = match std::fs::read(path) {
            Ok(bytes) => bytes.into(),
            // Gone again: the next scan notices.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Load::Unchanged),
            Err(e) => return self.reject(path, stamp, "", format!("cannot be read: {e}")),
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        let current = self.snapshot();
        if current
            .files
            .get(path)
            .is_some_and(|l| l.component.hash == hash)
        {
            self.mark_handled(path, stamp)?;
            return Ok(Load::Unchanged);
        }
        let component = match self.check(sandbox, path, bytes.clone()).await {
            Ok(component) => component,
            Err(reason) => return self.reject(path, stamp, &hash, reason),
        };
        let (origin, since_ms) = self.origin_of(path, &hash);
        if let Err(reason) = self.publish(path, &component, &bytes, origin, since_ms, false) {
            return self.reject(path, stamp, &hash, reason);
        }
        self.mark_handled(path, stamp)?;
        log_loaded(path, &component, started);
        Ok(Load::Loaded((path.to_owned(), component, bytes)))
    }

    /// Another host deployed plugin file `file` (a file name) at
    /// `component`: start new runs of its types from it here too, in place
    /// of this directory's file of that name, if any (the newest deployment
    /// wins). `Ok(false)`: this host has that version already. `Err`: why
    /// it cannot (a type another file here provides).
    pub fn adopt(
        &self,
        file: &str,
        component: Arc<ComponentVersion>,
        bytes: Arc<[u8]>,
    ) -> Result<bool, String> {
        let path = self.fleet_path(file)?;
        let mut fleet = self
            .fleet
            .lock()
            .map_err(|_| "a plugins lock was poisoned")?;
        let current = self.snapshot();
        if current
            .files
            .get(&path)
            .is_some_and(|l| l.component.hash == component.hash)
        {
            return Ok(false);
        }
        let next = current.with_file(&path, component.clone(), bytes, Origin::Fleet, now_ms())?;
        let previous = current.files.get(&path).map(|l| l.component.hash.clone());
        fleet.insert(path.clone());
        self.current.store(Arc::new(next));
        drop(fleet);
        log_live(&path, &component, previous.as_deref());
        for t in &component.types {
            tracing::info!(
                %file,
                workflow_type = %t.name,
                version = %short_version(&component.hash),
                "workflow type deployed by another host"
            );
        }
        Ok(true)
    }

    /// The one check of a plugin file's content, wherever it comes from (the
    /// directory, the API): it loads as a workflow component (the sandbox's
    /// checks: wasm, a component, the world, imports, `describe`), with the
    /// memory cap of its file name. `Err`: the reason, as the log, `types`
    /// and the API show it.
    pub async fn check(
        &self,
        sandbox: &dyn Sandbox,
        path: &Path,
        bytes: Arc<[u8]>,
    ) -> Result<Arc<ComponentVersion>, String> {
        let cap = path
            .file_name()
            .and_then(|n| self.memory.get(n.to_string_lossy().as_ref()).copied());
        sandbox
            .load(bytes, cap)
            .await
            .map(Arc::new)
            .map_err(|e| e.0)
    }

    /// Make `component` the version of `path` in the snapshot, unless a
    /// type of it is another file's (`Err`: why). `dry_run`: only check.
    fn publish(
        &self,
        path: &Path,
        component: &Arc<ComponentVersion>,
        bytes: &Arc<[u8]>,
        origin: Origin,
        since_ms: u64,
        dry_run: bool,
    ) -> Result<(), String> {
        let mut fleet = self
            .fleet
            .lock()
            .map_err(|_| "a plugins lock was poisoned".to_owned())?;
        let current = self.snapshot();
        let next = current.with_file(path, component.clone(), bytes.clone(), origin, since_ms)?;
        if dry_run {
            return Ok(());
        }
        let previous = current.files.get(path).map(|l| l.component.hash.clone());
        // This directory's file now, whoever deployed the name before.
        fleet.remove(path);
        self.current.store(Arc::new(next));
        drop(fleet);
        log_live(path, component, previous.as_deref());
        Ok(())
    }

    /// Where the file at `path` with content `hash` came from: the API if
    /// the manifest says it deployed exactly this, else the directory.
    fn origin_of(&self, path: &Path, hash: &str) -> (Origin, u64) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let deployed = name.and_then(|name| {
            let deployed = self.deployed.lock().ok()?;
            deployed
                .get(&name)
                .filter(|(version, _)| version == hash)
                .map(|(_, at_ms)| *at_ms)
        });
        match deployed {
            Some(at_ms) => (Origin::Api, at_ms),
            None => (Origin::Directory, now_ms()),
        }
    }

    /// Deploy plugin file `file` (a bare `*.wasm` file name) with content
    /// `bytes`, as over the API: checked exactly as a file of the directory
    /// (the same checks, the same reasons), and only then written into the
    /// directory (atomically: a temporary file renamed into place) and
    /// published; its types are startable when this returns. A rejected
    /// content writes nothing and changes nothing. Replacing a file keeps
    /// the runs pinned to its old version on it.
    pub async fn deploy(
        &self,
        sandbox: &dyn Sandbox,
        file: &str,
        bytes: Arc<[u8]>,
    ) -> Result<Deployed, Error> {
        let started = Instant::now();
        let rejected = |reason: String| {
            tracing::warn!(%file, %reason, "plugin upload rejected; nothing changed");
            Error::PluginRejected {
                file: file.to_owned(),
                reason,
            }
        };
        if file.starts_with('.') {
            return Err(rejected(format!(
                "`{file}` is not a plugin file name: it must not begin with `.`"
            )));
        }
        let path = self.fleet_path(file).map_err(rejected)?;
        let _turn = self.turn.lock().await;
        let hash = hex::encode(Sha256::digest(&bytes));
        if let Some(l) = self.snapshot().files.get(&path)
            && l.component.hash == hash
        {
            return Ok(Deployed {
                file: path,
                component: l.component.clone(),
                bytes: l.bytes.clone(),
                previous: None,
                changed: false,
                origin: l.origin,
                since_ms: l.since_ms,
            });
        }
        let component = self
            .check(sandbox, &path, bytes.clone())
            .await
            .map_err(rejected)?;
        let at_ms = now_ms();
        // The type conflict check before anything is written.
        self.publish(&path, &component, &bytes, Origin::Api, at_ms, true)
            .map_err(rejected)?;
        let previous = self
            .snapshot()
            .files
            .get(&path)
            .map(|l| l.component.hash.clone());
        let tmp = self.dir.join(format!(".{file}.upload"));
        let written = write_synced(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::PluginWrite { path, source });
        }
        sync_dir(&self.dir);
        if let Err(reason) = self.publish(&path, &component, &bytes, Origin::Api, at_ms, false) {
            // Only another host's deployment can have come in between.
            let _ = std::fs::remove_file(&path);
            return Err(rejected(reason));
        }
        // The scans take the file as loaded.
        if let Ok(meta) = std::fs::metadata(&path) {
            let stamp = Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            let mut state = self.scan.lock().map_err(|_| poisoned())?;
            state.handled.insert(path.clone(), stamp);
            state.last.insert(path.clone(), stamp);
        }
        self.remember(file, &hash, at_ms);
        log_loaded(&path, &component, started);
        Ok(Deployed {
            file: path,
            component,
            bytes,
            previous,
            changed: true,
            origin: Origin::Api,
            since_ms: at_ms,
        })
    }

    /// Note in the manifest that `file` was deployed at `hash`.
    fn remember(&self, file: &str, hash: &str, at_ms: u64) {
        let Ok(mut deployed) = self.deployed.lock() else {
            return;
        };
        deployed.insert(file.to_owned(), (hash.to_owned(), at_ms));
        let manifest: BTreeMap<&str, ManifestEntry> = deployed
            .iter()
            .map(|(f, (v, at))| {
                (
                    f.as_str(),
                    ManifestEntry {
                        version: v.clone(),
                        at_ms: *at,
                    },
                )
            })
            .collect();
        let written = serde_json::to_vec_pretty(&manifest)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                let tmp = self.dir.join(format!("{DEPLOYED_MANIFEST}.tmp"));
                write_synced(&tmp, &text)?;
                std::fs::rename(&tmp, self.dir.join(DEPLOYED_MANIFEST))
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot note a deployed plugin in {DEPLOYED_MANIFEST}; after a restart it shows as from the directory");
        }
    }

    /// Another host's directory lost plugin file `file`: if it is here only
    /// because another host deployed it, its types are startable no more.
    pub fn retire(&self, file: &str) -> Result<bool, String> {
        let path = self.fleet_path(file)?;
        let mut fleet = self
            .fleet
            .lock()
            .map_err(|_| "a plugins lock was poisoned")?;
        if !fleet.remove(&path) {
            return Ok(false);
        }
        let next = self.snapshot().without_file(&path);
        self.current.store(Arc::new(next));
        tracing::info!(%file, "plugin retired by another host; its types are no longer startable");
        Ok(true)
    }

    /// Whether this directory provides plugin file `file` itself (rather
    /// than another host's deployment of it).
    pub fn has_own(&self, file: &str) -> bool {
        let Ok(path) = self.fleet_path(file) else {
            return false;
        };
        let deployed = self.fleet.lock().is_ok_and(|f| f.contains(&path));
        !deployed && self.snapshot().files.contains_key(&path)
    }

    /// Where a deployed file of this name would be: a bare file name only.
    fn fleet_path(&self, file: &str) -> Result<PathBuf, String> {
        let name = Path::new(file);
        match name.file_name() {
            Some(n) if n == name.as_os_str() && file.ends_with(".wasm") => Ok(self.dir.join(name)),
            _ => Err(format!("`{file}` is not a plugin file name")),
        }
    }

    fn mark_handled(&self, path: &Path, stamp: Stamp) -> Result<(), Error> {
        let mut state = self.scan.lock().map_err(|_| poisoned())?;
        state.handled.insert(path.to_owned(), stamp);
        Ok(())
    }

    /// Record a rejection; the previous version of the file stays active.
    fn reject(&self, path: &Path, stamp: Stamp, hash: &str, reason: String) -> Result<Load, Error> {
        let first = {
            let mut state = self.scan.lock().map_err(|_| poisoned())?;
            state.handled.insert(path.to_owned(), stamp);
            state.reported.insert((path.to_owned(), hash.to_owned()))
        };
        let mut next = self.snapshot().as_ref().clone();
        next.rejected.insert(path.to_owned(), reason.clone());
        self.current.store(Arc::new(next));
        if first {
            tracing::warn!(file = %path.display(), %reason, "plugin rejected; its previous version, if any, stays active");
        }
        Ok(Load::Rejected { first })
    }
}

/// What loading one file did.
enum Load {
    Loaded((PathBuf, Arc<ComponentVersion>, Arc<[u8]>)),
    /// `first`: this content was not reported before.
    Rejected {
        first: bool,
    },
    Unchanged,
}

/// The log lines of a file that was loaded: one per type.
fn log_loaded(path: &Path, component: &ComponentVersion, started: Instant) {
    for t in &component.types {
        tracing::info!(
            file = %path.display(),
            workflow_type = %t.name,
            version = %short_version(&component.hash),
            load_ms = started.elapsed().as_millis() as u64,
            "workflow type loaded"
        );
    }
}

/// The log line of a file whose version new runs now get; `previous`: the
/// version it replaced.
fn log_live(path: &Path, component: &ComponentVersion, previous: Option<&str>) {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let types: Vec<&str> = component.types.iter().map(|t| t.name.as_str()).collect();
    let version = short_version(&component.hash);
    let types = types.join(", ");
    match previous {
        Some(previous) => tracing::info!(
            %file, %version, previous = %short_version(previous), %types,
            "plugin {file} version {version} is live for types {types} (replacing version {})",
            short_version(previous)
        ),
        None => tracing::info!(
            %file, %version, %types,
            "plugin {file} version {version} is live for types {types}"
        ),
    }
}

/// Write `bytes` to `path` and flush them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Flush a directory's entries (a rename) to disk, where the platform can.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The files deployed over the API, from the manifest; none if it is
/// missing or unreadable (then they show as from the directory).
fn read_manifest(dir: &Path) -> HashMap<String, (String, u64)> {
    let path = dir.join(DEPLOYED_MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(_) => return HashMap::new(),
    };
    match serde_json::from_slice::<BTreeMap<String, ManifestEntry>>(&text) {
        Ok(entries) => entries
            .into_iter()
            .map(|(f, e)| (f, (e.version, e.at_ms)))
            .collect(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the deployed plugins' manifest; they show as from the directory");
            HashMap::new()
        }
    }
}

fn poisoned() -> Error {
    Error::Poisoned {
        what: "the plugin registry",
    }
}

/// The first 12 hex digits of a version hash, for display.
pub fn short_version(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
