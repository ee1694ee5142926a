//! Build chores shared by `cargo xtask` and the integration tests: compiling
//! every guest component once.
//!
//! Guests are the workspace packages under `examples/` and `tests/guests/`.
//! They are built for `wasm32-wasip2` with the workspace's `guest` profile
//! into a target directory of their own (`target/guests`), so building them
//! from inside a running `cargo test` never waits on the test build's lock,
//! and a second build is a no-op. The `.wasm` files are then copied to
//! `target/plugins/` (examples: the demo's plugins directory) and
//! `target/test-plugins/` (test guests).

pub mod fuzz;
pub mod layers;
pub mod postgres;
pub mod readme;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Where the built guests are.
#[derive(Debug, Clone)]
pub struct Guests {
    /// The example workflows (`examples/*`), one `.wasm` each.
    pub examples: PathBuf,
    /// The test guests (`tests/guests/*`), one `.wasm` each.
    pub tests: PathBuf,
}

impl Guests {
    /// The built example `name` (a package name, e.g. `hello`).
    pub fn example(&self, name: &str) -> PathBuf {
        self.examples.join(format!("{name}.wasm"))
    }

    /// The built test guest `name`.
    pub fn test_guest(&self, name: &str) -> PathBuf {
        self.tests.join(format!("{name}.wasm"))
    }
}

/// The workspace root (where the top-level `Cargo.toml` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Run `cmd`, failing with its name if it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Install the `wasm32-wasip2` target with rustup if it is missing.
pub fn ensure_wasm_target() -> Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout);
            if installed.lines().any(|l| l.trim() == WASM_TARGET) {
                return Ok(());
            }
            eprintln!("xtask: installing the {WASM_TARGET} target");
            run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        // Without rustup the toolchain must already have the target; the
        // build below says so if it does not.
        _ => Ok(()),
    }
}

/// A guest package: its name and whether it is an example.
struct GuestPackage {
    name: String,
    example: bool,
}

/// `cargo metadata --format-version 1 <args>` of the workspace at `root`.
pub(crate) fn metadata(root: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let output = cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .output()
        .context("cannot run `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("`cargo metadata` printed invalid JSON")
}

fn guest_packages(root: &Path) -> Result<Vec<GuestPackage>> {
    let metadata = metadata(root, &["--no-deps"])?;
    let examples = root.join("examples");
    let tests = root.join("tests").join("guests");
    let mut guests = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let (Some(name), Some(manifest)) =
            (package["name"].as_str(), package["manifest_path"].as_str())
        else {
            continue;
        };
        let manifest = Path::new(manifest);
        let example = manifest.starts_with(&examples);
        // A guest is a component: a `cdylib` (the examples directory also
        // holds the demo's payments service, a host program).
        let component = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["crate_types"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == "cdylib"))
            });
        if component && (example || manifest.starts_with(&tests)) {
            guests.push(GuestPackage {
                name: name.to_owned(),
                example,
            });
        }
    }
    if guests.is_empty() {
        bail!("no guest packages found under examples/ or tests/guests/");
    }
    Ok(guests)
}

/// Build every guest once (a no-op when nothing changed) and copy the
/// components to their plugin directories.
pub fn build_guests() -> Result<Guests> {
    let root = workspace_root();
    ensure_wasm_target()?;
    let packages = guest_packages(&root)?;
    let target_dir = root.join("target").join("guests");
    let mut build = cargo();
    build
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--target",
            WASM_TARGET,
            "--profile",
            "guest",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Built the same way whoever asks (`cargo xtask test` lints the
        // host's crates with clippy's driver as the compiler's wrapper), so
        // a second build is a no-op.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    for p in &packages {
        build.args(["--package", &p.name]);
    }
    run(&mut build)?;

    let built = target_dir.join(WASM_TARGET).join("guest");
    let guests = Guests {
        examples: root.join("target").join("plugins"),
        tests: root.join("target").join("test-plugins"),
    };
    for dir in [&guests.examples, &guests.tests] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for p in &packages {
        let file = format!("{}.wasm", p.name.replace('-', "_"));
        let from = built.join(&file);
        let dir = if p.example {
            &guests.examples
        } else {
            &guests.tests
        };
        copy_atomically(&from, &dir.join(format!("{}.wasm", p.name)))?;
    }
    Ok(guests)
}

/// `cargo clippy` of every guest for `wasm32-wasip2`, warnings as errors.
pub fn lint_guests() -> Result<()> {
    let root = workspace_root();
    ensure_wasm_target()?;
    let mut clippy = cargo();
    clippy
        .current_dir(&root)
        .args([
            "clippy",
            "--quiet",
            "--all-targets",
            "--target",
            WASM_TARGET,
        ])
        .arg("--target-dir")
        .arg(root.join("target").join("guests"));
    for p in guest_packages(&root)? {
        clippy.args(["--package", &p.name]);
    }
    clippy.args(["--", "-D", "warnings"]);
    run(&mut clippy)
}

/// Copy through a temporary file and a rename, so a reader (or a concurrent
/// build) never sees half a file.
fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension(format!("wasm.tmp{}", std::process::id()));
    std::fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Install Debian `packages` with apt (through `sudo` when not root).
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    let apt = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// The browser the UI's test drives: Debian's `chromium` and
/// `chromium-driver`, installed when missing.
pub fn ensure_browser() -> Result<()> {
    let missing =
        !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists();
    if missing {
        eprintln!("xtask: installing Debian's `chromium` and `chromium-driver` for the UI's test");
        apt_install(&["chromium", "chromium-driver"])?;
    }
    Ok(())
}
