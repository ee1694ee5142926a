//! [`Admin`]: look at and change a database and a plugins directory without
//! running anything — what `wasmflow types` and `wasmflow upgrade` use, also
//! while a `wasmflow serve` works on the same database.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmflow_core::activation::Sandbox;
use wasmflow_core::model::WorkflowTypeSpec;
use wasmflow_storage::{LiveVersion, Storage};

use crate::error::{Error, Result};
use crate::plugins::{PluginDir, Plugins};
use crate::upgrade::{self, UpgradeReport};

/// A database and a plugins directory, opened for inspection and upgrades.
/// It drives no runs.
pub struct Admin {
    sandbox: Arc<dyn Sandbox>,
    storage: Arc<dyn Storage>,
    plugins: Arc<Plugins>,
}

impl Admin {
    /// Look at `storage` and load the plugins of `plugins` once.
    pub async fn new(
        storage: Arc<dyn Storage>,
        sandbox: Arc<dyn Sandbox>,
        plugins: &Path,
    ) -> Result<Admin> {
        let dir = PluginDir::new(plugins.to_owned(), HashMap::new());
        dir.scan(sandbox.as_ref(), true).await?;
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
        upgrade::upgrade(
            self.storage.as_ref(),
            &self.plugins,
            workflow_type,
            |version| self.spec(version, workflow_type),
        )
        .await
    }

    async fn spec(&self, version: String, workflow_type: &str) -> Result<Arc<WorkflowTypeSpec>> {
        let component = match self.plugins.version(&version) {
            Some(c) => c.clone(),
            None => {
                let (bytes, _) = self.storage.component(&version).await?.ok_or_else(|| {
                    Error::VersionMissing {
                        version: version.clone(),
                    }
                })?;
                Arc::new(
                    self.sandbox
                        .load(bytes.into(), None)
                        .await
                        .map_err(|source| Error::VersionInvalid {
                            version: version.clone(),
                            source,
                        })?,
                )
            }
        };
        component
            .workflow_type(workflow_type)
            .cloned()
            .ok_or_else(|| Error::TypeMissing {
                version,
                workflow_type: workflow_type.to_owned(),
            })
    }
}
