//! `cargo xtask readme`: README's "Writing a workflow" section, copy-pasted
//! on a fresh machine.
//!
//! The section's shell commands and the files it shows are extracted and run
//! in order in an empty temp directory (one per checkout, emptied first)
//! against the freshly built `wasmflow` (`target/debug`, first on the
//! `PATH`), so the docs cannot drift from what works. The conventions the section follows (it states them too):
//!
//! - A ` ```sh ` block is run line by line (a line ending in `\` goes on on
//!   the next; `#` lines are comments) by `sh`, in one working directory
//!   that carries over from command to command (`cd` works).
//! - A block whose first line is `# file: PATH` or `// file: PATH` is a file:
//!   written, whole (the marker is a comment of its language), to `PATH` in
//!   the working directory of that point.
//! - A ` ```text ` block next after a ` ```sh ` block (prose between, no
//!   other code block) is what the sh block's last command prints (stdout and stderr). It may start with `$ COMMAND`,
//!   which must be that command. Each of its lines must come out, in order
//!   (other lines may come between: logs); ids, hashes, timestamps and
//!   durations are compared by shape, and a `...` line stands for any lines.
//! - A command ending in ` &` (a server) runs in the background until the
//!   section's end (or a failure), when the check stops it; the next
//!   command runs once it has printed its first line.
//! - `/path/to/wasmflow` stands for the checkout of this repository, in
//!   commands and files.
//! - `cargo install --path /path/to/wasmflow/host/cli` is not run (a release
//!   build into `~/.cargo/bin`): the check makes sure that path is the package
//!   of the `wasmflow` binary and puts `target/debug` first on the `PATH`
//!   instead.
//!
//! A crate the commands make builds into `target/readme-check` (its
//! `target/` is a link there, made before its first command, so the paths
//! the README shows hold; the section's crates share it) with the
//! workspace's `Cargo.lock` as its lock file (the versions the workspace
//! builds with: no download, and a second run reuses the build), and its
//! test builds with line tables only for debug info
//! (`CARGO_PROFILE_DEV_DEBUG`: the host-side build of a harness test is the
//! check's longest step).
//!
//! Every command has a timeout; a failure names the
//! README line of the command and shows its output, and keeps the temp
//! directory for a look.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The section checked, to the next `## ` heading.
const SECTION: &str = "## Writing a workflow";
/// What the README writes for the checkout of this repository.
const CHECKOUT: &str = "/path/to/wasmflow";
/// A `cargo` or `rustup` command (the first build of the crate compiles
/// the SDK and its dependencies on a busy machine).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// Any other command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One thing the section asks for, with the README line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A shell command (continuation lines joined).
    Run { line: usize, command: String },
    /// A file written to `path`, relative to the working directory.
    File {
        line: usize,
        path: String,
        contents: String,
    },
    /// What the previous command prints: `lines` in order.
    Expect {
        line: usize,
        command: Option<String>,
        lines: Vec<String>,
    },
}

/// The steps of README's "Writing a workflow" section (with its
/// subsections), `/path/to/wasmflow` replaced by `checkout`.
pub fn extract(readme: &str, checkout: &str) -> Result<Vec<Step>> {
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == SECTION)
        .with_context(|| format!("README.md has no `{SECTION}` section"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let substitute = |s: &str| s.replace(CHECKOUT, checkout);

    let mut steps = Vec::new();
    // Whether the last code block was a sh block (prose may come between).
    let mut after_sh = false;
    let mut i = start + 1;
    while i < end {
        let text = lines[i].trim_start();
        let Some(info) = text.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - text.len();
        let info = info.trim().to_owned();
        // The README line (1-based) of the block's first line.
        let first = i + 2;
        let mut body = Vec::new();
        i += 1;
        loop {
            if i >= end {
                bail!("README.md:{}: a code block is not closed", first - 1);
            }
            let l = lines[i];
            if l.trim_start().starts_with("```") {
                break;
            }
            // The block's indentation (a block inside a list item) is not
            // part of its text.
            let cut = l.len() - l.trim_start().len();
            body.push(&l[cut.min(indent)..]);
            i += 1;
        }
        i += 1; // the closing fence

        let marker = body.first().and_then(|l| {
            let l = l.trim();
            l.strip_prefix("# file:")
                .or_else(|| l.strip_prefix("// file:"))
                .map(|p| p.trim().to_owned())
        });
        if let Some(path) = marker {
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == "..") {
                bail!("README.md:{first}: `file:` wants a path inside the working directory");
            }
            let mut contents = substitute(&body.join("\n"));
            contents.push('\n');
            steps.push(Step::File {
                line: first,
                path,
                contents,
            });
            after_sh = false;
        } else if info == "sh" {
            let mut n = 0;
            while n < body.len() {
                let line = first + n;
                let mut command = String::new();
                loop {
                    let l = body[n];
                    n += 1;
                    match l.trim_end().strip_suffix('\\') {
                        Some(part) if n < body.len() => {
                            command.push_str(part);
                            command.push(' ');
                        }
                        _ => {
                            command.push_str(l);
                            break;
                        }
                    }
                }
                let command = command.trim();
                if !command.is_empty() && !command.starts_with('#') {
                    steps.push(Step::Run {
                        line,
                        command: substitute(command),
                    });
                }
            }
            after_sh = true;
        } else if info == "text" && after_sh {
            let mut lines: Vec<String> = body.iter().map(|l| substitute(l)).collect();
            let command = match lines.first().and_then(|l| l.strip_prefix("$ ")) {
                Some(c) => {
                    let c = c.trim().to_owned();
                    lines.remove(0);
                    Some(c)
                }
                None => None,
            };
            steps.push(Step::Expect {
                line: first,
                command,
                lines,
            });
            after_sh = false;
        } else {
            after_sh = false;
        }
    }
    if !steps.iter().any(|s| matches!(s, Step::Run { .. })) {
        bail!("README.md's `{SECTION}` section has no ```sh commands");
    }
    Ok(steps)
}

/// `command` without a trailing `# comment` (outside quotes).
fn strip_comment(command: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in command.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return command[..i].trim_end(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    command.trim_end()
}

/// A line of output compared by shape: ids (runs of hex digits and dashes
/// with a digit, 8 characters or more), timestamps and clock times, and
/// durations (`340 ms`, `1.2 s`, `3 min`, `0.21s`) become placeholders.
pub fn normalize(line: &str) -> String {
    let chars: Vec<char> = line.trim_end().chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let starts = i == 0 || !word(chars[i - 1]);
        if starts && c.is_ascii_hexdigit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_hexdigit() || chars[j] == '-') {
                j += 1;
            }
            let run: String = chars[i..j].iter().collect();
            let ends = j == chars.len() || !word(chars[j]);
            if ends && run.len() >= 8 && run.chars().any(|c| c.is_ascii_digit()) {
                out.push_str("<id>");
                i = j;
                continue;
            }
        }
        if starts && c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || ".:-".contains(chars[j])) {
                j += 1;
            }
            // A date or a clock time: digits with `:` or two `-`.
            let run: String = chars[i..j].iter().collect();
            if run.contains(':') || run.matches('-').count() >= 2 {
                out.push_str("<time>");
                i = j;
                continue;
            }
            // A number followed by a unit of time.
            let mut k = i;
            while k < chars.len() && (chars[k].is_ascii_digit() || chars[k] == '.') {
                k += 1;
            }
            let rest: String = chars[k..].iter().collect();
            for unit in [" ms", " µs", " us", " s", " min", " h", "ms", "s"] {
                if let Some(after) = rest.strip_prefix(unit)
                    && !after.starts_with(word)
                {
                    out.push_str("<duration>");
                    i = k + unit.chars().count();
                    break;
                }
            }
            if i > k {
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `expected` comes out in `output`: each line in order, other
/// lines between allowed, `...` for any lines; compared by shape.
pub fn matches(expected: &[String], output: &str) -> std::result::Result<(), String> {
    let actual: Vec<String> = output.lines().map(normalize).collect();
    let mut at = 0;
    for want in expected {
        if want.trim() == "..." || want.trim().is_empty() {
            continue;
        }
        let want_n = normalize(want);
        match actual[at..].iter().position(|a| a.trim() == want_n.trim()) {
            Some(p) => at += p + 1,
            None => return Err(want.clone()),
        }
    }
    Ok(())
}

/// Extract the section's steps and run them against the `wasmflow` of
/// `target/debug` (built by the caller).
pub fn check() -> Result<()> {
    let began = Instant::now();
    let root = workspace_root();
    let bin_dir = root.join("target").join("debug");
    if !bin_dir.join("wasmflow").is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p wasmflow-cli`",
            bin_dir.join("wasmflow").display()
        );
    }
    let readme =
        std::fs::read_to_string(root.join("README.md")).context("cannot read README.md")?;
    let checkout = root
        .to_str()
        .context("the checkout's path is not UTF-8")?
        .to_owned();
    let steps = extract(&readme, &checkout)?;

    // One place per checkout, emptied first: a crate's test binary has its
    // directory built in (`env!("CARGO_MANIFEST_DIR")`), and cargo would
    // reuse one built for another directory from the shared build. Outside
    // the checkout: a crate inside it would belong to its workspace.
    let checkout_id = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        root.hash(&mut hasher);
        hasher.finish()
    };
    let temp = std::env::temp_dir().join(format!("wasmflow-readme-{checkout_id:016x}"));
    if temp.exists() {
        std::fs::remove_dir_all(&temp)
            .with_context(|| format!("cannot empty {}", temp.display()))?;
    }
    let work = temp.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let build_dir = root.join("target").join("readme-check");
    std::fs::create_dir_all(&build_dir)
        .with_context(|| format!("cannot create {}", build_dir.display()))?;

    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin_dir.clone()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).context("PATH")?
        }
        None => bin_dir.clone().into_os_string(),
    };
    let mut runner = Runner {
        root: root.clone(),
        temp: temp.clone(),
        cwd: work.clone(),
        build_dir,
        path,
        last: None,
        commands: 0,
        background: Vec::new(),
    };
    eprintln!(
        "xtask: README.md `{SECTION}`: {} steps in {}",
        steps.len(),
        work.display()
    );
    for step in &steps {
        if let Err(e) = runner.step(step) {
            eprintln!("xtask: the temp directory is kept: {}", temp.display());
            return Err(e);
        }
    }
    let commands = runner.commands;
    // Stops what runs in the background before its directory goes.
    drop(runner);
    let _ = std::fs::remove_dir_all(&temp);
    let count = |f: fn(&Step) -> bool| steps.iter().filter(|s| f(s)).count();
    eprintln!(
        "xtask: README.md `{SECTION}`: {} commands, {} files, {} outputs as shown: ok in {:.1} s",
        commands,
        count(|s| matches!(s, Step::File { .. })),
        count(|s| matches!(s, Step::Expect { .. })),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Runner {
    root: PathBuf,
    temp: PathBuf,
    cwd: PathBuf,
    build_dir: PathBuf,
    path: std::ffi::OsString,
    /// The last command run: its README line, text and output.
    last: Option<(usize, String, String)>,
    commands: usize,
    /// Commands running in the background (` &`), stopped on drop.
    background: Vec<std::process::Child>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        for child in &mut self.background {
            // The whole process group: the command and what it started.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let began = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && began.elapsed() < COMMAND_TIMEOUT / 10 {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.wait();
        }
    }
}

impl Runner {
    fn step(&mut self, step: &Step) -> Result<()> {
        match step {
            Step::File {
                line,
                path,
                contents,
            } => {
                let to = self.cwd.join(path);
                eprintln!("README.md:{line}: file {path}");
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("README.md:{line}: cannot create {}", dir.display())
                    })?;
                }
                std::fs::write(&to, contents)
                    .with_context(|| format!("README.md:{line}: cannot write {}", to.display()))?;
                self.last = None;
            }
            Step::Run { line, command } => self.run(*line, command)?,
            Step::Expect {
                line,
                command,
                lines,
            } => {
                let Some((at, last, output)) = &self.last else {
                    bail!("README.md:{line}: expected output, but no command came right before");
                };
                let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                if let Some(c) = command
                    && words(c) != words(strip_comment(last))
                {
                    bail!(
                        "README.md:{line}: the output shown is of `{c}`, but the command before it \
                         (README.md:{at}) is `{}`",
                        strip_comment(last)
                    );
                }
                if let Err(missing) = matches(lines, output) {
                    bail!(
                        "README.md:{line}: `{}` (README.md:{at}) did not print `{missing}`; it printed:\n{}",
                        strip_comment(last),
                        output.trim_end()
                    );
                }
                eprintln!("README.md:{line}: output as shown");
            }
        }
        Ok(())
    }

    fn run(&mut self, line: usize, command: &str) -> Result<()> {
        self.commands += 1;
        let words: Vec<&str> = strip_comment(command).split_whitespace().collect();
        if words.starts_with(&["cargo", "install"]) {
            return self.install(line, &words);
        }
        self.prepare_crate()?;
        eprintln!("README.md:{line}: $ {command}");
        let began = Instant::now();
        let timeout = match words.first() {
            Some(&"cargo" | &"rustup") => BUILD_TIMEOUT,
            _ => COMMAND_TIMEOUT,
        };
        let state = self.temp.join("cwd");
        let background = strip_comment(command)
            .strip_suffix('&')
            .filter(|c| !c.ends_with('&'))
            .map(str::trim_end);
        let log = match background {
            Some(_) => self.temp.join(format!("background-{line}.log")),
            None => self.temp.join("output"),
        };
        let script = match background {
            Some(command) => format!("cd {} || exit 97\nexec {command}\n", quote(&self.cwd)),
            None => format!(
                "cd {} || exit 97\n{command}\nstatus=$?\npwd > {}\nexit $status\n",
                quote(&self.cwd),
                quote(&state)
            ),
        };
        let file = std::fs::File::create(&log).context("cannot create the output file")?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&script)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .env("PATH", &self.path)
            .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
        // The command as a user runs it: not inside this cargo's build, with
        // none of the test suite's settings.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let drop = [
                "CARGO_PKG_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_MANIFEST_",
                "WASMFLOW_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || [
                    "CARGO_TARGET_DIR",
                    "CARGO_BUILD_TARGET_DIR",
                    "CARGO_PRIMARY_PACKAGE",
                    "RUSTC_WORKSPACE_WRAPPER",
                    "CLIPPY_ARGS",
                    "RUST_LOG",
                ]
                .contains(&key.as_ref());
            if drop {
                cmd.env_remove(key.as_ref());
            }
        }
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("README.md:{line}: cannot run sh"))?;
        if background.is_some() {
            return self.background(line, command, child, &log, began);
        }
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if began.elapsed() > timeout {
                // The whole process group: the command and what it started.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if let Ok(cwd) = std::fs::read_to_string(&state) {
            self.cwd = PathBuf::from(cwd.trim_end_matches('\n'));
        }
        let _ = std::fs::remove_file(&state);
        let tail = || {
            let lines: Vec<&str> = output.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        match status {
            None => bail!(
                "README.md:{line}: `{command}` did not finish in {} s; its output:\n{}",
                timeout.as_secs(),
                tail()
            ),
            Some(s) if !s.success() => bail!(
                "README.md:{line}: `{command}` failed ({s}); its output:\n{}",
                tail()
            ),
            Some(_) => {}
        }
        eprintln!(
            "README.md:{line}: ok ({:.1} s)",
            began.elapsed().as_secs_f64()
        );
        self.last = Some((line, command.to_owned(), output));
        Ok(())
    }

    /// Keep `child` (a ` &` command) running; go on once it printed a line.
    fn background(
        &mut self,
        line: usize,
        command: &str,
        mut child: std::process::Child,
        log: &Path,
        began: Instant,
    ) -> Result<()> {
        loop {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(status) = child.try_wait()? {
                bail!(
                    "README.md:{line}: `{command}` exited ({status}) instead of running in the \
                     background; its output:\n{}",
                    output.trim_end()
                );
            }
            if output.contains('\n') {
                break;
            }
            if began.elapsed() > COMMAND_TIMEOUT {
                self.background.push(child);
                bail!(
                    "README.md:{line}: `{command}` printed nothing in {} s",
                    COMMAND_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "README.md:{line}: running in the background ({:.1} s)",
            began.elapsed().as_secs_f64()
        );
        self.background.push(child);
        self.last = None;
        Ok(())
    }

    /// `cargo install --path DIR ...`: not run; DIR must be the package of
    /// the `wasmflow` binary, which is `target/debug/wasmflow` here.
    fn install(&mut self, line: usize, words: &[&str]) -> Result<()> {
        let dir = words
            .iter()
            .position(|w| *w == "--path")
            .and_then(|i| words.get(i + 1))
            .with_context(|| {
                format!("README.md:{line}: `cargo install` without `--path DIR` is not checked")
            })?;
        let dir = self.cwd.join(dir);
        let manifest = dir.join("Cargo.toml");
        let metadata = crate::metadata(&self.root, &["--no-deps"])?;
        let has_bin = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| same_file(Path::new(m), &manifest))
            })
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .any(|t| {
                t["name"] == "wasmflow"
                    && t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
            });
        if !has_bin {
            bail!(
                "README.md:{line}: {} is not the workspace package of the `wasmflow` binary",
                dir.display()
            );
        }
        eprintln!(
            "README.md:{line}: `{}` not run: it builds the `wasmflow` binary of {}; \
             target/debug/wasmflow is first on the PATH",
            words.join(" "),
            dir.display()
        );
        self.last = None;
        Ok(())
    }

    /// In a crate directory of the temp dir without a `target/` yet: link
    /// it to `target/readme-check` and start from the workspace's lock file.
    fn prepare_crate(&self) -> Result<()> {
        if !self.cwd.starts_with(&self.temp) || !self.cwd.join("Cargo.toml").is_file() {
            return Ok(());
        }
        let target = self.cwd.join("target");
        if target.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(&self.build_dir, &target).with_context(|| {
                format!("cannot link {} to target/readme-check", target.display())
            })?;
        }
        let lock = self.cwd.join("Cargo.lock");
        if !lock.exists() {
            std::fs::copy(self.root.join("Cargo.lock"), &lock)
                .with_context(|| format!("cannot copy Cargo.lock to {}", lock.display()))?;
        }
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `path` quoted for `sh`.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# x\n\n## Writing a workflow\n\n\
        ```sh\n# a comment\nrustup target add wasm32-wasip2\ncargo new --lib greeter && cd greeter\n```\n\n\
        ```toml\n# file: Cargo.toml\n[dependencies]\nwasmflow = { path = \"/path/to/wasmflow/guest-sdk\" }\n```\n\n\
        ```rust\nlet not_a_file = 1;\n```\n\n\
        ```sh\nwasmflow run --plugins plugins \\\n  Greeter --input '{}'   # prints it\n```\n\n\
        ```text\n$ wasmflow run --plugins plugins Greeter --input '{}'\n\"Hello, Ada\"\n```\n\n\
        ### Sub\n\n  ```rust\n  // file: src/lib.rs\n  fn f() {}\n  ```\n\n## Next\n\n```sh\nnot this\n```\n";

    #[test]
    fn extracts_commands_files_and_outputs() {
        let steps = extract(README, "/co").unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Run {
                    line: 7,
                    command: "rustup target add wasm32-wasip2".into()
                },
                Step::Run {
                    line: 8,
                    command: "cargo new --lib greeter && cd greeter".into()
                },
                Step::File {
                    line: 12,
                    path: "Cargo.toml".into(),
                    contents: "# file: Cargo.toml\n[dependencies]\nwasmflow = { path = \"/co/guest-sdk\" }\n".into()
                },
                Step::Run {
                    line: 22,
                    command: "wasmflow run --plugins plugins    Greeter --input '{}'   # prints it"
                        .into()
                },
                Step::Expect {
                    line: 27,
                    command: Some("wasmflow run --plugins plugins Greeter --input '{}'".into()),
                    lines: vec!["\"Hello, Ada\"".into()]
                },
                Step::File {
                    line: 34,
                    path: "src/lib.rs".into(),
                    contents: "// file: src/lib.rs\nfn f() {}\n".into()
                },
            ]
        );
    }

    #[test]
    fn comments_are_cut_outside_quotes() {
        assert_eq!(strip_comment("a '#b' c  # d"), "a '#b' c");
        assert_eq!(strip_comment("a#b"), "a#b");
    }

    #[test]
    fn output_is_compared_by_shape() {
        let out = "log line\nchild Payment payment-abc (run 01a21cba-3934-7050-b3a4-2a1072fd6570) completed: 42\n\
                   started 2026-12-07 14:55:32 (2.2 s ago)\nversion f4707e1032a0\n";
        let want = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            matches(
                &want(&[
                    "child Payment payment-abc (run 01a25100-bc82-74f2-9f8c-ec1cc696e456) completed: 42",
                    "...",
                    "version 0123456789ab",
                ]),
                out
            )
            .is_ok()
        );
        assert!(matches(&want(&["started 2025-01-01 00:00:00 (340 ms ago)"]), out).is_ok());
        assert_eq!(
            normalize("ok; finished in 0.21s"),
            "ok; finished in <duration>"
        );
        assert_eq!(normalize("2 tests, 3 passed"), "2 tests, 3 passed");
        assert!(matches(&want(&["version f4707e1032a0", "log line"]), out).is_err());
        assert_eq!(
            matches(
                &want(&["child Payment payment-abc (run x) completed: 43"]),
                out
            ),
            Err("child Payment payment-abc (run x) completed: 43".into())
        );
    }
}
