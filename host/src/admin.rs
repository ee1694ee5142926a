//! [`Admin`]: look at and change a database and a plugins directory without
//! running anything — what `wasmflow types` and `wasmflow upgrade` use, also
//! while a `wasmflow serve` works on the same database.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::WorkflowTypeSpec;
use crate::plugins::{PluginDir, Plugins};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::storage::{LiveVersion, Storage};
use crate::upgrade::{self, UpgradeReport};

/// A database and a plugins directory, opened for inspection and upgrades.
/// It drives no runs.
pub struct Admin {
    sandbox: Sandbox,
    storage: Storage,
    plugins: Arc<Plugins>,
}

impl Admin {
    /// Open the database at `db` and load the plugins of `plugins` once.
    pub async fn open(db: &Path, plugins: &Path) -> Result<Admin> {
        let mut cache = db.to_owned().into_os_string();
        cache.push(".cache");
        let config = SandboxConfig {
            cache_dir: Some(cache.into()),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::new(config).map_err(Error::Engine)?;
        let storage = Storage::open(db, crate::defaults::MAX_INBOX_LEN)?;
        let dir = PluginDir::new(plugins.to_owned(), HashMap::new());
        dir.scan(&sandbox, true).await?;
        Ok(Admin {
            sandbox,
            storage,
            plugins: dir.snapshot(),
        })
    }

    /// What the plugins directory provides.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// The versions live runs are pinned to, by workflow type.
    pub async fn live_versions(&self) -> Result<Vec<LiveVersion>> {
        Ok(self.storage.live_versions().await?)
    }

    /// Move the waiting runs of `workflow_type` to the version the plugins
    /// directory provides now, where every handler they can still reach
    /// exists in it (see [`crate::upgrade`]).
    pub async fn upgrade(&self, workflow_type: &str) -> Result<UpgradeReport> {
        upgrade::upgrade(&self.storage, &self.plugins, workflow_type, |version| {
            self.spec(version, workflow_type)
        })
        .await
    }

    async fn spec(&self, version: String, workflow_type: &str) -> Result<Arc<WorkflowTypeSpec>> {
        let component =
            match self.plugins.version(&version) {
                Some(c) => c.clone(),
                None => {
                    let (bytes, _) = self.storage.component(&version).await?.ok_or_else(|| {
                        Error::Engine(format!(
                            "component version `{version}` is not in the database"
                        ))
                    })?;
                    Arc::new(self.sandbox.load(bytes.into(), None).await.map_err(|e| {
                        Error::Engine(format!("component version `{version}`: {e}"))
                    })?)
                }
            };
        component
            .workflow_type(workflow_type)
            .cloned()
            .ok_or_else(|| {
                Error::Engine(format!(
                    "component version `{version}` does not provide `{workflow_type}`"
                ))
            })
    }
}
