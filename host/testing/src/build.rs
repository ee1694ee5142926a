//! [`build_component`]: the workflow crate under test, built for
//! `wasm32-wasip2` from a host-side test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{HarnessError, Result};

/// The target components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Build the workflow crate whose `Cargo.toml` is in `manifest_dir` as a
/// component — `cargo build --release --target wasm32-wasip2`, what you
/// would type — and return the `.wasm` file's path. A test passes its own
/// crate: `build_component(env!("CARGO_MANIFEST_DIR"))`.
///
/// Built once per test binary (later calls return the same path at once);
/// cargo itself skips the build when nothing changed. A compile error, or a
/// missing `wasm32-wasip2` target, is a [`HarnessError::Build`] with
/// cargo's message.
pub fn build_component(manifest_dir: impl AsRef<Path>) -> Result<PathBuf> {
    static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let manifest = manifest_dir.as_ref().join("Cargo.toml");
    // Held while building: tests of one binary calling at once build once.
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get_or_insert_default().get(&manifest) {
        return Ok(path.clone());
    }
    let path = build(&manifest)?;
    built.get_or_insert_default().insert(manifest, path.clone());
    Ok(path)
}

fn build(manifest: &Path) -> Result<PathBuf> {
    let failed = |message: String| HarnessError::Build {
        manifest: manifest.to_owned(),
        message,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", WASM_TARGET])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(manifest)
        // The test's own build may run under clippy's driver: not this one.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .output()
        .map_err(|e| failed(format!("cannot run cargo: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let hint = if stderr.contains(WASM_TARGET) && stderr.contains("target may not be installed")
        {
            format!("\n(install the target: `rustup target add {WASM_TARGET}`)")
        } else {
            String::new()
        };
        return Err(failed(format!("{}{hint}", stderr.trim_end())));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let manifest_text = manifest.to_string_lossy();
    let mut wasm = None;
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<Artifact>(line) else {
            continue;
        };
        if message.reason != "compiler-artifact"
            || message.manifest_path.as_deref() != Some(manifest_text.as_ref())
        {
            continue;
        }
        wasm = message
            .filenames
            .into_iter()
            .find(|f| f.extension().is_some_and(|e| e == "wasm"))
            .or(wasm);
    }
    wasm.ok_or_else(|| {
        failed(
            "cargo built no `.wasm` file: is the crate a library with \
             `crate-type = [\"cdylib\"]`?"
                .to_owned(),
        )
    })
}

/// The part of cargo's JSON messages read here.
#[derive(serde::Deserialize)]
struct Artifact {
    reason: String,
    #[serde(default)]
    manifest_path: Option<String>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}
