//! Plugins: the `*.wasm` files of the plugins directory, loaded into
//! component versions, and the workflow types they provide.
//!
//! A file that cannot be loaded (not wasm, not a component, the wrong world,
//! a `describe` that traps or lies, a type another file already provides) is
//! rejected with its name and the reason and changes nothing else. Files load
//! in name order, so which of two files claiming the same type wins is
//! deterministic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, WorkflowError};
use crate::model::WorkflowTypeSpec;
use crate::sandbox::{ComponentVersion, Sandbox};

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

/// What a plugins directory provides.
#[derive(Debug, Default)]
pub struct Plugins {
    types: HashMap<String, TypeEntry>,
    rejected: Vec<Rejected>,
    /// Loaded files with their component's bytes, in load order.
    files: Vec<(PathBuf, Arc<ComponentVersion>, Arc<[u8]>)>,
}

impl Plugins {
    /// Load every `*.wasm` file of `dir`, with the memory cap `memory` names
    /// for its file (the sandbox's own otherwise). Only an unreadable
    /// directory is an error; bad files are recorded in
    /// [`Plugins::rejected`].
    pub async fn load_dir(
        sandbox: &Sandbox,
        dir: &Path,
        memory: &HashMap<String, usize>,
    ) -> Result<Plugins, Error> {
        let dir_error = |source| Error::PluginsDir {
            path: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let path = entry.map_err(dir_error)?.path();
            if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        let mut plugins = Plugins::default();
        for path in paths {
            let bytes: Arc<[u8]> = match std::fs::read(&path) {
                Ok(bytes) => bytes.into(),
                Err(e) => {
                    plugins.reject(path, format!("cannot be read: {e}"));
                    continue;
                }
            };
            let cap = path
                .file_name()
                .and_then(|n| memory.get(n.to_string_lossy().as_ref()).copied());
            match sandbox.load(bytes.clone(), cap).await {
                Ok(component) => plugins.add(path, Arc::new(component), bytes),
                Err(e) => plugins.reject(path, e.0),
            }
        }
        Ok(plugins)
    }

    /// Load `dir` in a sandbox of its own, to see what it provides (for
    /// listings and checks; a [`Host`](crate::Host) loads its own).
    pub async fn inspect(dir: &Path) -> Result<Plugins, Error> {
        let sandbox =
            Sandbox::new(crate::sandbox::SandboxConfig::default()).map_err(Error::Engine)?;
        Plugins::load_dir(&sandbox, dir, &HashMap::new()).await
    }

    fn reject(&mut self, file: PathBuf, reason: String) {
        tracing::warn!(file = %file.display(), %reason, "plugin rejected");
        self.rejected.push(Rejected { file, reason });
    }

    fn add(&mut self, file: PathBuf, component: Arc<ComponentVersion>, bytes: Arc<[u8]>) {
        if let Some((name, other)) = component
            .types
            .iter()
            .find_map(|t| self.types.get(&t.name).map(|e| (&t.name, &e.file)))
        {
            let reason = format!(
                "workflow type `{name}` is already provided by `{}`",
                other.display()
            );
            self.reject(file, reason);
            return;
        }
        for t in &component.types {
            tracing::info!(
                file = %file.display(),
                workflow_type = %t.name,
                version = %short_version(&component.hash),
                "workflow type loaded"
            );
            self.types.insert(
                t.name.clone(),
                TypeEntry {
                    spec: t.clone(),
                    component: component.clone(),
                    file: file.clone(),
                },
            );
        }
        self.files.push((file, component, bytes));
    }

    /// The component that provides `workflow_type`.
    pub fn get(&self, workflow_type: &str) -> Result<&TypeEntry, WorkflowError> {
        self.types.get(workflow_type).ok_or_else(|| {
            let mut message = format!("no plugin provides workflow type `{workflow_type}`");
            if !self.rejected.is_empty() {
                let files: Vec<String> = self
                    .rejected
                    .iter()
                    .map(|r| format!("`{}`", r.file.display()))
                    .collect();
                message.push_str(&format!(" (rejected plugin files: {})", files.join(", ")));
            }
            WorkflowError::new(ErrorKind::UnknownWorkflowType, message)
        })
    }

    /// The loaded component with this version, if a file provides it.
    pub fn version(&self, hash: &str) -> Option<&Arc<ComponentVersion>> {
        self.files
            .iter()
            .map(|(_, c, _)| c)
            .find(|c| c.hash == hash)
    }

    /// Every loaded file with its component and bytes, in load order.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &Arc<ComponentVersion>, &Arc<[u8]>)> {
        self.files.iter().map(|(p, c, b)| (p.as_path(), c, b))
    }

    /// Workflow types by name, sorted.
    pub fn types(&self) -> Vec<(&str, &TypeEntry)> {
        let mut types: Vec<_> = self.types.iter().map(|(n, e)| (n.as_str(), e)).collect();
        types.sort_by_key(|(n, _)| *n);
        types
    }

    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }
}

/// The first 12 hex digits of a version hash, for display.
pub fn short_version(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
