//! `cargo xtask layers`: the architecture's rules, checked.
//!
//! ARCHITECTURE.md states what each host crate must not depend on; this
//! module checks it from `cargo metadata`'s resolved dependency graph (normal
//! dependencies, as `cargo tree -e normal` shows them) and from the crates'
//! own `use crate::...` lines:
//!
//! - only `wasmflow-sandbox` depends on wasmtime directly, and only
//!   `wasmflow-storage-sqlite` on SQLite (`rusqlite`, `libsqlite3-sys`),
//!   only `wasmflow-storage-postgres` on PostgreSQL's client (`postgres`,
//!   `r2d2_postgres`; and xtask, for the tests' server), only the two
//!   backends on `refinery`;
//! - the inner crates reach neither, transitively: building one of them (or
//!   `cargo build -p wasmflow-engine`) never compiles wasmtime or SQLite;
//! - the engine and the model crates know no HTTP (`axum`, `hyper`, `ureq`);
//! - within each host crate, the modules import each other without cycles.
//!
//! `cargo xtask test` runs it first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Packages that are part of wasmtime (matched by prefix).
const WASMTIME: &[&str] = &["wasmtime", "cranelift"];
/// Packages that are SQLite.
const SQLITE: &[&str] = &["rusqlite", "libsqlite3-sys"];
/// Packages that are PostgreSQL's client.
const POSTGRES: &[&str] = &["postgres", "tokio-postgres", "r2d2_postgres"];
/// Schema migrations (both backends').
const MIGRATIONS: &[&str] = &["refinery"];
/// HTTP servers and clients.
const HTTP: &[&str] = &["axum", "hyper", "ureq"];
/// The host's own crates (the UI reaches them only through the API).
const HOST: &[&str] = &[
    "wasmflow-engine",
    "wasmflow-host",
    "wasmflow-storage",
    "wasmflow-sandbox",
];
/// The async runtime.
const TOKIO: &[&str] = &["tokio"];
/// The host's domain model (the protocol's vocabulary is wire names, and
/// allowed everywhere).
const MODEL: &[&str] = &["wasmflow-core"];

/// One rule: `krate` must not reach any package of the `forbidden` groups
/// (`direct`: as its own dependency; otherwise transitively too).
struct Rule {
    krate: &'static str,
    forbidden: &'static [&'static [&'static str]],
    direct: bool,
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        krate: "wasmflow-protocol",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP, TOKIO],
        direct: false,
        why: "the vocabulary builds for guests too: serde only",
    },
    Rule {
        krate: "wasmflow-core",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP, TOKIO],
        direct: false,
        why: "the model is pure: no I/O",
    },
    Rule {
        krate: "wasmflow-storage",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP],
        direct: false,
        why: "the storage interface knows no backend and no sandbox",
    },
    Rule {
        krate: "wasmflow-engine",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP],
        direct: false,
        why: "the engine works over the storage and sandbox interfaces",
    },
    Rule {
        krate: "wasmflow-api",
        forbidden: &[MODEL, WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP, TOKIO],
        direct: false,
        why: "the wire model is serde types and the protocol's names",
    },
    Rule {
        krate: "wasmflow-ui",
        forbidden: &[MODEL, HOST, WASMTIME, SQLITE, POSTGRES, MIGRATIONS],
        direct: false,
        why: "the UI is a client of the API: it knows the wire model, not the host",
    },
    Rule {
        krate: "wasmflow-sandbox",
        forbidden: &[SQLITE, POSTGRES, MIGRATIONS],
        direct: false,
        why: "the sandbox knows no database",
    },
    Rule {
        krate: "wasmflow-storage-sqlite",
        forbidden: &[WASMTIME],
        direct: false,
        why: "the database knows no sandbox",
    },
    Rule {
        krate: "wasmflow-storage-postgres",
        forbidden: &[WASMTIME],
        direct: false,
        why: "the database knows no sandbox",
    },
    Rule {
        krate: "wasmflow-server",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS],
        direct: true,
        why: "the server talks to a Host, not to its parts",
    },
    Rule {
        krate: "wasmflow-testing",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, HTTP],
        direct: true,
        why: "the test harness drives a Host (wasmflow-host), not its parts",
    },
    Rule {
        krate: "wasmflow-cli",
        forbidden: &[WASMTIME, SQLITE, POSTGRES, MIGRATIONS, &["axum"]],
        direct: true,
        why: "the binary talks to a Host and the server, not to their parts",
    },
];

/// The only workspace crates that may depend directly on these.
const OWNERS: &[(&[&str], &[&str])] = &[
    (WASMTIME, &["wasmflow-sandbox"]),
    (SQLITE, &["wasmflow-storage-sqlite"]),
    // xtask: the tests' throw-away server and their fresh schemas.
    (POSTGRES, &["wasmflow-storage-postgres", "xtask"]),
    (
        MIGRATIONS,
        &["wasmflow-storage-sqlite", "wasmflow-storage-postgres"],
    ),
];

/// The crates whose module imports are checked for cycles.
const MODULE_CRATES: &[&str] = &[
    "host/protocol",
    "host/core",
    "host/storage",
    "host/storage-sqlite",
    "host/storage-postgres",
    "host/sandbox",
    "host/engine",
    "host/host",
    "host/testing",
    "host/api",
    "host/server",
    "host/cli",
];

fn matches(name: &str, patterns: &[&str]) -> bool {
    patterns
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}-")))
}

/// The resolved graph: package name → names of its normal dependencies.
struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

impl Graph {
    fn load(root: &Path) -> Result<Graph> {
        Graph::from_metadata(&crate::metadata(root, &["--locked"])?)
    }

    fn from_metadata(meta: &Value) -> Result<Graph> {
        let names: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .context("metadata without packages")?
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let name = |id: &str| -> Result<String> {
            names
                .get(id)
                .map(|n| (*n).to_owned())
                .with_context(|| format!("metadata names no package `{id}`"))
        };
        let members = meta["workspace_members"]
            .as_array()
            .context("metadata without workspace members")?
            .iter()
            .filter_map(Value::as_str)
            .map(name)
            .collect::<Result<_>>()?;
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in meta["resolve"]["nodes"]
            .as_array()
            .context("metadata without a resolved graph")?
        {
            let id = node["id"].as_str().context("a node without id")?;
            let entry = deps.entry(name(id)?).or_default();
            for dep in node["deps"].as_array().into_iter().flatten() {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null());
                if normal && let Some(pkg) = dep["pkg"].as_str() {
                    entry.insert(name(pkg)?);
                }
            }
        }
        Ok(Graph { deps, members })
    }

    /// Every package `krate` reaches through normal dependencies.
    fn closure(&self, krate: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in self.deps.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for rule in RULES {
            if !self.members.contains(rule.krate) {
                found.push(format!("`{}` is not a workspace member", rule.krate));
                continue;
            }
            let reached = if rule.direct {
                self.deps.get(rule.krate).cloned().unwrap_or_default()
            } else {
                self.closure(rule.krate)
            };
            let forbidden = |d: &&String| rule.forbidden.iter().any(|group| matches(d, group));
            for dep in reached.iter().filter(forbidden) {
                found.push(format!(
                    "`{}` depends on `{dep}`{}: {}",
                    rule.krate,
                    if rule.direct {
                        ""
                    } else {
                        " (directly or not)"
                    },
                    rule.why
                ));
            }
        }
        for member in &self.members {
            for dep in self.deps.get(member).into_iter().flatten() {
                for (patterns, owner) in OWNERS {
                    if matches(dep, patterns)
                        && !owner.contains(&member.as_str())
                        && !matches(member, patterns)
                    {
                        found.push(format!(
                            "`{member}` depends on `{dep}` directly; only `{}` may",
                            owner.join("`, `")
                        ));
                    }
                }
            }
        }
        found
    }
}

/// The `use crate::a::...` edges between the top-level modules of the crate
/// in `dir` (`src/a.rs` or `src/a/`), and any cycle among them.
pub fn module_cycle(dir: &Path) -> Result<Option<Vec<String>>> {
    let src = dir.join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect_rs(&src, &mut files)?;
    for file in files {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let module = match relative.components().next() {
            Some(c) => c
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned(),
            None => continue,
        };
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // Test modules may use anything.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for target in crate_references(text) {
            if target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    Ok(find_cycle(&edges))
}

/// The first path segment after each `crate::` in `text`, including the
/// members of `use crate::{a, b::c}` groups.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Check every rule; the error lists each violation.
pub fn check(root: &Path) -> Result<()> {
    let graph = Graph::load(root)?;
    let mut found = graph.violations();
    for krate in MODULE_CRATES {
        if let Some(cycle) = module_cycle(&root.join(krate))? {
            found.push(format!(
                "`{krate}` has an import cycle between its modules: {}",
                cycle.join(" → ")
            ));
        }
    }
    if !found.is_empty() {
        bail!(
            "the layering rules of ARCHITECTURE.md are broken:\n  - {}",
            found.join("\n  - ")
        );
    }
    println!(
        "layers: {} rules and {} crates' module graphs hold",
        RULES.len() + OWNERS.len(),
        MODULE_CRATES.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let members: Vec<&str> = RULES.iter().map(|r| r.krate).collect();
        let packages: Vec<Value> = edges
            .iter()
            .flat_map(|(p, ds)| std::iter::once(*p).chain(ds.iter().copied()))
            .chain(members.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|n| json!({"id": n, "name": n}))
            .collect();
        let nodes: Vec<Value> = edges
            .iter()
            .map(|(p, ds)| {
                json!({"id": p, "deps": ds.iter().map(|d| json!({
                    "pkg": d, "dep_kinds": [{"kind": null}]
                })).collect::<Vec<_>>()})
            })
            .collect();
        Graph::from_metadata(&json!({
            "packages": packages,
            "workspace_members": members,
            "resolve": {"nodes": nodes},
        }))
        .unwrap()
    }

    #[test]
    fn wasmtime_reached_through_the_engine_is_named() {
        let g = graph(&[
            ("wasmflow-engine", &["wasmflow-core", "helper"]),
            ("helper", &["wasmtime-environ"]),
        ]);
        let v = g.violations();
        assert!(
            v.iter()
                .any(|v| v.starts_with("`wasmflow-engine` depends on `wasmtime-environ`")),
            "{v:?}"
        );
    }

    #[test]
    fn rusqlite_outside_its_backend_is_named() {
        let g = graph(&[
            ("wasmflow-storage-sqlite", &["rusqlite"]),
            ("wasmflow-server", &["rusqlite"]),
        ]);
        let v = g.violations();
        assert!(
            v.iter()
                .any(|v| v == "`wasmflow-server` depends on `rusqlite` directly; only `wasmflow-storage-sqlite` may"),
            "{v:?}"
        );
        assert!(
            !v.iter().any(|v| v.starts_with("`wasmflow-storage-sqlite`")),
            "{v:?}"
        );
    }

    #[test]
    fn module_cycles_are_found_and_acyclic_graphs_pass() {
        let refs =
            crate_references("use crate::{engine::Engine, error};\nlet x = crate::plugins::X;");
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["engine", "error", "plugins"]
        );
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        edges
            .entry("host".into())
            .or_default()
            .insert("engine".into());
        edges
            .entry("engine".into())
            .or_default()
            .insert("error".into());
        assert_eq!(find_cycle(&edges), None);
        edges
            .entry("engine".into())
            .or_default()
            .insert("host".into());
        assert_eq!(
            find_cycle(&edges),
            Some(vec!["engine".into(), "host".into(), "engine".into()])
        );
    }
}
