//! The operator's config file (`wasmflow serve --config wasmflow.toml`):
//! the database, grants and secrets (SPEC 13) and the limits of outbound
//! requests. TOML, read with `toml` + serde; an unknown key, a malformed
//! target or a secret that cannot be read is refused with the key named.
//!
//! ```toml
//! [database]
//! url = "postgres://wasmflow@db.internal/wasmflow"  # or a SQLite file (default wasmflow.db)
//! lease_timeout_ms = 30000        # PostgreSQL: a dead host's runs move after this
//! pool_size = 16                  # PostgreSQL: connections of this host
//! retention_days = 30             # finished runs older are deleted (0: kept for ever)
//!
//! [outbound]
//! timeout_ms = 10000              # a request's whole time (default 10 s)
//! max_response_bytes = 1048576    # largest response body (default 1 MiB)
//!
//! [secrets]
//! payments_token = { env = "PAYMENTS_TOKEN" }       # from the environment
//! signing_key = { file = "/run/secrets/signing" }   # from a file (trailing newline dropped)
//!
//! [[grants]]
//! plugin = "order-payment.wasm"   # a plugin file name ... or `workflow_type = "Payment"`
//! [[grants.http]]
//! url = "http://127.0.0.1:9100"   # scheme://host:port (no path)
//! methods = ["POST"]              # default: every method
//! secrets = ["payments_token"]    # usable as {{secret:payments_token}} in header values
//! allow_private = false           # a host *name* may resolve to a private address
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wasmflow_core::grant::{GrantTable, Grantee, HttpGrant, OutboundLimits, Secret};

use crate::Database;

/// Why the config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file `{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config file `{}`: {key}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    outbound: Outbound,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    grants: Vec<Grant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<String>,
    lease_timeout_ms: Option<u64>,
    pool_size: Option<u32>,
    retention_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outbound {
    timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    env: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    plugin: Option<String>,
    workflow_type: Option<String>,
    #[serde(default)]
    http: Vec<Http>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Http {
    url: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    allow_private: bool,
}

/// The settings a config file gives the host.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub grants: GrantTable,
}

/// The `[database]` section: each setting the file leaves out is the
/// command line's (or the default).
#[derive(Debug, Clone, Default)]
pub struct DatabaseConfig {
    /// The database to open, for the command line to use when it names
    /// none ([`crate::HostBuilder::config`] leaves the builder's alone).
    pub url: Option<Database>,
    pub lease_timeout: Option<Duration>,
    pub pool_size: Option<u32>,
    /// `retention_days`: `Some(None)` for 0 (finished runs are kept).
    pub retention: Option<Option<Duration>>,
}

impl Config {
    /// Read and check `path`; secrets are read from the environment `env`
    /// gives (the process's, in `wasmflow serve`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::parse(&text, path, &env)
    }

    /// Check the text of a config file (`path` names it in errors).
    pub fn parse(
        text: &str,
        path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        };
        let database = DatabaseConfig {
            url: match file.database.url.as_deref() {
                Some("") => {
                    return Err(invalid("database.url".into(), "the URL is empty".into()));
                }
                Some(url) => Some(Database::parse(url)),
                None => None,
            },
            lease_timeout: match file.database.lease_timeout_ms {
                Some(ms) if !(100..=86_400_000).contains(&ms) => {
                    return Err(invalid(
                        "database.lease_timeout_ms".into(),
                        format!("{ms} is not between 100 and 86400000"),
                    ));
                }
                ms => ms.map(Duration::from_millis),
            },
            pool_size: match file.database.pool_size {
                Some(n) if !(1..=1000).contains(&n) => {
                    return Err(invalid(
                        "database.pool_size".into(),
                        format!("{n} is not between 1 and 1000"),
                    ));
                }
                n => n,
            },
            retention: match file.database.retention_days {
                Some(days) if days > 36_500 => {
                    return Err(invalid(
                        "database.retention_days".into(),
                        format!("{days} is not between 0 and 36500 (0: keep finished runs)"),
                    ));
                }
                Some(0) => Some(None),
                Some(days) => Some(Some(Duration::from_secs(days * 86_400))),
                None => None,
            },
        };
        let mut limits = OutboundLimits::default();
        if let Some(ms) = file.outbound.timeout_ms {
            if !(1..=600_000).contains(&ms) {
                return Err(invalid(
                    "outbound.timeout_ms".into(),
                    format!("{ms} is not between 1 and 600000"),
                ));
            }
            limits.timeout = Duration::from_millis(ms);
        }
        if let Some(bytes) = file.outbound.max_response_bytes {
            if !(1..=1 << 30).contains(&bytes) {
                return Err(invalid(
                    "outbound.max_response_bytes".into(),
                    format!("{bytes} is not between 1 and 1073741824"),
                ));
            }
            limits.max_response_bytes = bytes;
        }
        let mut secrets = BTreeMap::new();
        for (name, source) in &file.secrets {
            let key = format!("secrets.{name}");
            let value = match (&source.env, &source.file) {
                (Some(var), None) => env.get(var).cloned().ok_or_else(|| {
                    invalid(
                        key.clone(),
                        format!("environment variable `{var}` is not set"),
                    )
                })?,
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map(|v| v.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| {
                        invalid(
                            key.clone(),
                            format!("cannot read `{}`: {e}", file.display()),
                        )
                    })?,
                _ => {
                    return Err(invalid(key, "give exactly one of `env` or `file`".into()));
                }
            };
            if value.is_empty() {
                return Err(invalid(key, "the secret is empty".into()));
            }
            secrets.insert(name.clone(), Secret::new(value));
        }
        let mut grants = Vec::new();
        for (i, grant) in file.grants.iter().enumerate() {
            let key = format!("grants[{i}]");
            let grantee = match (&grant.plugin, &grant.workflow_type) {
                (Some(file), None) => Grantee::Plugin(file.clone()),
                (None, Some(t)) => Grantee::WorkflowType(t.clone()),
                _ => {
                    return Err(invalid(
                        key,
                        "name exactly one of `plugin` (a file name) or `workflow_type`".into(),
                    ));
                }
            };
            for (j, http) in grant.http.iter().enumerate() {
                let key = format!("{key}.http[{j}]");
                let mut target =
                    parse_target(&http.url).map_err(|r| invalid(format!("{key}.url"), r))?;
                for method in &http.methods {
                    let name = method.to_ascii_uppercase();
                    if method.is_empty() || ::http::Method::from_bytes(name.as_bytes()).is_err() {
                        return Err(invalid(
                            format!("{key}.methods"),
                            format!("`{method}` is not an HTTP method (GET, POST, ...)"),
                        ));
                    }
                    target.methods.push(name);
                }
                for name in &http.secrets {
                    let secret = secrets.get(name).ok_or_else(|| {
                        invalid(
                            format!("{key}.secrets"),
                            format!("secret `{name}` is not defined under [secrets]"),
                        )
                    })?;
                    target.secrets.insert(name.clone(), secret.clone());
                }
                target.allow_private = http.allow_private;
                grants.push((grantee.clone(), target));
            }
        }
        Ok(Config {
            database,
            grants: GrantTable { grants, limits },
        })
    }
}

/// `scheme://host:port` as a grant (no path, query or user info).
fn parse_target(url: &str) -> Result<HttpGrant, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not scheme://host:port"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("scheme `{scheme}` is not http or https")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{url}` must be scheme://host:port, without a path, query or user"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("port `{port}` of `{url}` is not a number from 1 to 65535"))?;
            (host, port)
        }
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("`{url}` has no host or port"));
    }
    Ok(HttpGrant {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        methods: Vec::new(),
        secrets: BTreeMap::new(),
        allow_private: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let env = HashMap::from([("TOKEN".to_owned(), "s3cr3t".to_owned())]);
        Config::parse(text, Path::new("wasmflow.toml"), &env)
    }

    #[test]
    fn a_grant_method_must_be_an_http_method() {
        // Found by the `config` fuzz target: `methods = [""]` was accepted.
        for method in ["", "P OST", "GET\n"] {
            let text = format!(
                "[[grants]]\nplugin = \"p.wasm\"\n[[grants.http]]\nurl = \"http://h:80\"\nmethods = [{method:?}]\n"
            );
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("grants[0].http[0].methods") && err.contains("is not an HTTP method"),
                "{method:?}: {err}"
            );
        }
    }

    #[test]
    fn a_complete_file_reads_back() {
        let config = parse(
            r#"
            [outbound]
            timeout_ms = 2500
            max_response_bytes = 4096
            [secrets]
            token = { env = "TOKEN" }
            [[grants]]
            plugin = "order-payment.wasm"
            [[grants.http]]
            url = "http://127.0.0.1:9100"
            methods = ["post"]
            secrets = ["token"]
            [[grants]]
            workflow_type = "Report"
            [[grants.http]]
            url = "https://[::1]"
            "#,
        )
        .unwrap();
        let table = config.grants;
        assert_eq!(table.limits.timeout, Duration::from_millis(2500));
        assert_eq!(table.limits.max_response_bytes, 4096);
        let g = &table.grants[0].1;
        assert_eq!(
            (g.scheme.as_str(), g.host.as_str(), g.port),
            ("http", "127.0.0.1", 9100)
        );
        assert_eq!(g.methods, ["POST"]);
        assert_eq!(g.secrets["token"].expose(), "s3cr3t");
        let g = &table.grants[1].1;
        assert_eq!((g.host.as_str(), g.port), ("::1", 443));
        assert_eq!(table.grants[1].0, Grantee::WorkflowType("Report".into()));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[outbund]\n").contains("unknown field `outbund`"));
        let e = err("[[grants]]\nplugin = \"a.wasm\"\n[[grants.http]]\nurl = \"ftp://x:1\"\n");
        assert!(
            e.contains("grants[0].http[0].url") && e.contains("ftp"),
            "{e}"
        );
        let e =
            err("[[grants]]\nplugin = \"a.wasm\"\n[[grants.http]]\nurl = \"http://x:1/path\"\n");
        assert!(e.contains("without a path"), "{e}");
        let e = err("[[grants]]\n[[grants.http]]\nurl = \"http://x:1\"\n");
        assert!(e.contains("exactly one of `plugin`"), "{e}");
        let e = err("[secrets]\nmissing = { env = \"NOPE\" }\n");
        assert!(e.contains("secrets.missing") && e.contains("NOPE"), "{e}");
        let e = err(
            "[[grants]]\nplugin = \"a\"\n[[grants.http]]\nurl = \"http://x:1\"\nsecrets = [\"t\"]\n",
        );
        assert!(e.contains("secret `t` is not defined"), "{e}");
        let e = err("[outbound]\ntimeout_ms = 0\n");
        assert!(e.contains("outbound.timeout_ms"), "{e}");
        let e = err("[database]\npool_size = 0\n");
        assert!(
            e.contains("database.pool_size") && e.contains("0 is not"),
            "{e}"
        );
        let e = err("[database]\nlease_timeout_ms = 5\n");
        assert!(e.contains("database.lease_timeout_ms"), "{e}");
        let e = err("[database]\nurl = \"\"\n");
        assert!(e.contains("database.url"), "{e}");
        let e = err("[database]\nlease_timeout = \"30s\"\n");
        assert!(e.contains("unknown field `lease_timeout`"), "{e}");
    }

    #[test]
    fn the_database_section_reads_back() {
        let config = parse(
            "[database]\nurl = \"postgres://w:pw@db/w\"\nlease_timeout_ms = 2000\npool_size = 4\n",
        )
        .unwrap();
        assert_eq!(
            config.database.url,
            Some(Database::Postgres("postgres://w:pw@db/w".into()))
        );
        assert_eq!(config.database.lease_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.database.pool_size, Some(4));
        assert!(!format!("{config:?}").contains("pw"), "{config:?}");
        let config = parse("[database]\nurl = \"runs/wasmflow.db\"\n").unwrap();
        assert_eq!(
            config.database.url,
            Some(Database::Sqlite("runs/wasmflow.db".into()))
        );
        assert_eq!(parse("").unwrap().database.pool_size, None);
    }

    #[test]
    fn retention_days_reads_back_and_zero_keeps_every_run() {
        let retention = |text: &str| parse(text).unwrap().database.retention;
        assert_eq!(
            retention("[database]\nretention_days = 7\n"),
            Some(Some(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(retention("[database]\nretention_days = 0\n"), Some(None));
        assert_eq!(retention(""), None, "absent: the builder's default");
        let e = parse("[database]\nretention_days = 36501\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.retention_days"), "{e}");
        let e = parse("[database]\nretention_days = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention_days"), "{e}");
    }

    #[test]
    fn secret_values_never_print() {
        let config = parse("[secrets]\ntoken = { env = \"TOKEN\" }\n[[grants]]\nplugin = \"a\"\n[[grants.http]]\nurl = \"http://x:1\"\nsecrets = [\"token\"]\n").unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
