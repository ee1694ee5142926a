//! The client subcommands: requests to a `wasmflow serve` over its HTTP API,
//! answers as tables for people (local times, durations in words, 100
//! columns at most; `output.rs`) or the API's JSON with `--json`. Requests
//! and answers are the `wasmflow-api` types the server uses.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use comfy_table::Table;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wasmflow_api::{
    CancelRequest, DeployedView, ErrorBody, EventAccepted, HistoryEntry, HistoryView, MAX_WAIT_MS,
    OnConflict, PluginsView, QueryAnswer, QueryRequest, ResultView, RetryRequest, RunError,
    RunList, RunStatus, RunView, SendEvent, StartRequest, Started, TreeView, TypesView,
};

use crate::output::{self, Style};

/// Where `--addr` points without it: `wasmflow serve`'s default `--listen`.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7420";

/// How often `history --follow` and `status --watch` ask again.
const POLL: Duration = Duration::from_millis(300);

/// Where the host is and how to talk to it: the options of the
/// subcommands that ask its HTTP API.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// The address of the host's HTTP API (what `wasmflow serve --listen`
    /// serves on).
    #[arg(long, env = "WASMFLOW_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// The bearer token, when the host was started with one (`wasmflow serve
    /// --token`).
    #[arg(long, env = "WASMFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The options of every subcommand that asks the API: where it is, and
/// how to print the answer.
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Print the API's JSON, whole, instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The statuses `list --status` takes, for its error message.
fn status_names() -> PossibleValuesParser {
    PossibleValuesParser::new(RunStatus::ALL.iter().map(|s| s.as_str()))
}

/// A duration such as `30s`, `5m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}): write e.g. `30s`, `5m`, `1h 30m`"))
}

#[derive(Subcommand)]
pub enum Request {
    /// Start a run; print its workflow id and run id (with `--wait`, its
    /// result).
    Start {
        /// The workflow type, e.g. `Order` (`wasmflow types` lists them).
        workflow_type: String,
        /// The workflow id (default: the run id).
        #[arg(long)]
        id: Option<String>,
        /// The input, a JSON object whose keys bind to the start handler's
        /// parameters (default `{}`).
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// A file holding the input.
        #[arg(long)]
        input_file: Option<PathBuf>,
        /// The workflow timeout, e.g. `5m`: the run fails with
        /// `WorkflowTimeout` if it has not ended by then.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// If the id has an active run, answer with it instead of an error.
        #[arg(long)]
        return_existing: bool,
        /// Pin the run to this component version instead of the one new
        /// runs get: a full hash or a prefix of at least 4 hex digits
        /// (`wasmflow plugins` and `wasmflow types` show them).
        #[arg(long, value_name = "HASH")]
        version: Option<String>,
        /// Wait for the run to end (a minute at most) and print its result.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Send an event to the latest run of a workflow id.
    Send {
        /// The workflow id.
        id: String,
        /// The event's name: one of the type's event handlers.
        event: String,
        /// The payload, JSON.
        #[arg(long)]
        payload: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A run's status, times and outcome; with `--watch`, again whenever it
    /// changes until the run ends.
    Status {
        /// The workflow id.
        id: String,
        /// A run of the id (default: the latest).
        #[arg(long)]
        run: Option<String>,
        /// Print the status again whenever it changes, until the run ends
        /// (exit code as for `result`); Ctrl-C stops.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A run's result: exit 0 if it completed, 1 if it failed, was
    /// cancelled or terminated, 3 if it has not ended.
    Result {
        /// The workflow id.
        id: String,
        /// A run of the id (default: the latest).
        #[arg(long)]
        run: Option<String>,
        /// Wait for the run to end.
        #[arg(long)]
        wait: bool,
        /// How long to wait at most (default 60s).
        #[arg(long, value_parser = parse_duration, requires = "wait")]
        timeout: Option<Duration>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A run's history, oldest first; with `--follow`, new entries as they
    /// come until the run ends.
    History {
        /// The workflow id.
        id: String,
        /// A run of the id (default: the latest).
        #[arg(long)]
        run: Option<String>,
        /// Keep printing new entries as the run appends them, until it ends
        /// (exit code as for `result`); Ctrl-C stops. With `--json`, one
        /// entry per line.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Runs, newest first, a page at a time: a further page is named on
    /// stderr (`--cursor`), or `--all` follows every page.
    List {
        /// Only runs of this workflow type.
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Only runs with this status.
        #[arg(long, value_parser = status_names())]
        status: Option<String>,
        /// Runs per page, 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Continue a listing: the `next` cursor of the previous page.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow every page to the oldest run.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A run with its children, and theirs.
    Tree {
        /// The workflow id (its latest run).
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel the latest run of a workflow id: it ends `cancelled` when its
    /// current activation does.
    Cancel {
        /// The workflow id.
        id: String,
        /// Why: recorded as the run's error message.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Terminate the latest run of a workflow id, at once.
    Terminate {
        /// The workflow id.
        id: String,
        /// Why: recorded as the run's error message.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resume a failed run: execute its failed activation again (tasks it
    /// completed keep their outcomes), on its pinned version or, with
    /// `--upgrade`, on the newest version that passes the upgrade check.
    /// `--all-failed --type T` retries every failed run of type T.
    Retry {
        /// The workflow id (omit with `--all-failed`).
        #[arg(required_unless_present = "all_failed")]
        id: Option<String>,
        /// Execute it on the newest version of its type, if the run passes
        /// the upgrade check there.
        #[arg(long)]
        upgrade: bool,
        /// Every failed run of `--type`.
        #[arg(long, requires = "workflow_type", conflicts_with = "id")]
        all_failed: bool,
        /// With `--all-failed`: the workflow type whose failed runs to retry.
        #[arg(long = "type")]
        workflow_type: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deploy a workflow component to the host: checked as a file of its
    /// plugins directory is, written into it, and its types startable at
    /// once (on every host of a shared database). A file of the same name
    /// is replaced; runs on its old version finish on it.
    Deploy {
        /// The component, e.g. `target/wasm32-wasip2/release/orders.wasm`.
        file: PathBuf,
        /// The plugin file's name on the host (default: FILE's name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The plugin files the host starts new runs from: version, types,
    /// where each came from (`directory`, `api`, `fleet`) and since when;
    /// rejected files (exit 1 if any).
    Plugins {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run a query handler of the latest run of a workflow id and print
    /// what it returns.
    Query {
        /// The workflow id.
        id: String,
        /// The query handler's name.
        name: String,
        /// The query's arguments, JSON.
        #[arg(long)]
        args: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

impl Request {
    /// The API options every client subcommand has.
    fn api(&self) -> &ApiArgs {
        match self {
            Request::Start { api, .. }
            | Request::Send { api, .. }
            | Request::Status { api, .. }
            | Request::Result { api, .. }
            | Request::History { api, .. }
            | Request::List { api, .. }
            | Request::Tree { api, .. }
            | Request::Cancel { api, .. }
            | Request::Terminate { api, .. }
            | Request::Retry { api, .. }
            | Request::Deploy { api, .. }
            | Request::Plugins { api, .. }
            | Request::Query { api, .. } => api,
        }
    }
}

/// An error answer of the API: the HTTP status and its `{kind, message}`.
struct Refused {
    status: u16,
    error: ErrorBody,
    /// Whether the request carried a token (for what a 401 says).
    token_sent: bool,
}

impl Refused {
    /// Print the error, with what to do about it where that is known, and
    /// choose the exit code (1).
    fn report(&self) -> ExitCode {
        match self.hint() {
            Some(hint) => eprintln!("error: {} (HTTP {}); {hint}", self.error, self.status),
            None => eprintln!("error: {} (HTTP {})", self.error, self.status),
        }
        ExitCode::from(1)
    }

    /// What to do next, for the errors where the CLI can say.
    fn hint(&self) -> Option<&'static str> {
        if self.status == 401 {
            return Some(if self.token_sent {
                "the token (--token or WASMFLOW_TOKEN) is not the one the host was started with"
            } else {
                "the host requires a token: set WASMFLOW_TOKEN or --token"
            });
        }
        Some(match self.error.kind.as_str() {
            "RunNotFound" => "`wasmflow list` lists the runs there are",
            "UnknownWorkflowType" => "`wasmflow types` lists the workflow types the host has",
            "UnknownEvent" | "UnknownQuery" => "`wasmflow types` lists each type's handlers",
            "InvalidPayload" => "`wasmflow types` shows each handler's parameters and their types",
            "WorkflowAlreadyRunning" => {
                "choose another --id, or pass --return-existing to get the active run"
            }
            "UnknownVersion" | "AmbiguousVersion" | "VersionWithoutType" => {
                "`wasmflow plugins` lists the versions the host has, with their types"
            }
            "DatabaseUnavailable" | "ShuttingDown" => "try again in a moment",
            _ => return None,
        })
    }
}

/// Unwrap an answer, or print the API's error and return exit code 1.
macro_rules! accepted {
    ($answer:expr) => {
        match $answer? {
            Ok(body) => body,
            Err(refused) => return Ok(refused.report()),
        }
    };
}

struct Client {
    agent: ureq::Agent,
    conn: Connection,
    /// How long one request may take, for what a timeout says.
    timeout: Duration,
}

impl Client {
    /// A client of the host at `conn.addr`, which must be an `http://` URL,
    /// with a valid token if there is one.
    fn new(conn: Connection, timeout: Duration) -> anyhow::Result<Self> {
        check_token(conn.token.as_deref())?;
        check_addr(&conn.addr)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(Client {
            agent,
            conn,
            timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.conn.addr.trim_end_matches('/'))
    }

    fn auth(&self) -> Option<String> {
        self.conn.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// `GET path`, its answer as a `T`.
    fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Result<T, Refused>> {
        let mut req = self.agent.get(self.url(path));
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(path, req.call())
    }

    /// `POST path` with `body`, its answer as a `T`.
    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Result<T, Refused>> {
        let mut req = self.agent.post(self.url(path));
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(path, req.send_json(body))
    }

    /// `POST path` with a component's bytes, its answer as a `T`.
    fn post_wasm<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Result<T, Refused>> {
        let mut req = self
            .agent
            .post(self.url(path))
            .header("Content-Type", "application/wasm");
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(path, req.send(bytes))
    }

    /// Why the host could not be asked, and what to do about it.
    fn unreachable(&self, error: ureq::Error) -> anyhow::Error {
        let addr = &self.conn.addr;
        match error {
            ureq::Error::Timeout(_) => anyhow!(
                "the host at {addr} did not answer within {}; is it overloaded, or is \
                 {addr} not a `wasmflow serve`?",
                output::duration(self.timeout)
            ),
            other => anyhow!(
                "cannot reach the host at {addr}: {other}; is `wasmflow serve` running? \
                 set WASMFLOW_ADDR or --addr to the address it serves on"
            ),
        }
    }

    fn answer<T: DeserializeOwned>(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Result<T, Refused>> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .context("reading the host's answer")?;
        if status >= 300 {
            // Not the API's `{kind, message}`: something else answered.
            let error = serde_json::from_str(&text).unwrap_or_else(|_| ErrorBody {
                kind: "Error".to_owned(),
                message: if text.trim().is_empty() {
                    "(no body)".to_owned()
                } else {
                    text
                },
            });
            return Ok(Err(Refused {
                status,
                error,
                token_sent: self.conn.token.is_some(),
            }));
        }
        let body = serde_json::from_str(&text).with_context(|| {
            format!("the host's answer to {path} (HTTP {status}) is not the API's: {text}")
        })?;
        Ok(Ok(body))
    }
}

/// `--addr` must be an `http://` URL naming a host.
fn check_addr(addr: &str) -> anyhow::Result<()> {
    let uri: Result<ureq::http::Uri, _> = addr.parse();
    match uri {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => Ok(()),
        Ok(uri) if uri.scheme_str() == Some("https") => bail!(
            "invalid --addr `{addr}`: this client speaks plain HTTP; `wasmflow serve` serves \
             http:// (put TLS in front of it for clients elsewhere)"
        ),
        _ => bail!(
            "invalid --addr `{addr}`: it must be the URL of the host's API, e.g. {DEFAULT_ADDR}"
        ),
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?key=value&...`, the values percent-encoded; `path` alone without
/// any.
fn with_query(path: String, pairs: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

fn print_json(body: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(body)?);
    Ok(())
}

/// One JSON value on one line, flushed: what `--follow` and `--watch`
/// stream with `--json`.
fn print_json_line(body: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(body)?)?;
    out.flush()?;
    Ok(())
}

/// A JSON value as a cell shows it: a string as itself, the rest as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A run error on one line: `Kind: message`, and its details as JSON.
fn error_line(error: &RunError) -> String {
    match &error.details {
        Some(details) => format!("{error} (details: {details})"),
        None => error.to_string(),
    }
}

/// The first characters of a version hash, as tables show it.
fn short(version: &str) -> String {
    version.get(..12).unwrap_or(version).to_owned()
}

/// How long a run took, or has been going.
fn took(run: &RunView, now_ms: u64) -> String {
    if run.status.is_terminal() {
        output::between(run.created_ms, run.updated_ms)
    } else {
        output::between(run.created_ms, now_ms)
    }
}

/// The status table of a run: its fields, times as local timestamps.
fn run_table(run: &RunView, now_ms: u64) -> Table {
    let mut t = output::table(&[], Style::Framed);
    let at = |ms: u64| {
        format!(
            "{} ({})",
            output::local_time(ms),
            output::relative(ms, now_ms)
        )
    };
    let updated = if run.status.is_terminal() {
        (
            "ended",
            format!(
                "{} (after {})",
                output::local_time(run.updated_ms),
                took(run, now_ms)
            ),
        )
    } else {
        ("updated", at(run.updated_ms))
    };
    let rows = [
        ("workflow id", Some(run.workflow_id.clone())),
        ("run id", Some(run.run_id.clone())),
        ("type", Some(run.workflow_type.clone())),
        ("status", Some(run.status.to_string())),
        ("version", Some(short(&run.version))),
        ("parent", run.parent.clone()),
        ("started", Some(at(run.created_ms))),
        (updated.0, Some(updated.1)),
        ("result", run.result.as_ref().map(|r| r.to_string())),
        ("error", run.error.as_ref().map(error_line)),
        ("timer due", run.timer_due_ms.map(at)),
        ("deadline", run.deadline_ms.map(at)),
        ("cancel requested", run.cancel_requested.clone()),
        (
            "current",
            run.current.as_ref().map(|c| {
                format!(
                    "{} `{}` for {} (since {})",
                    c.kind,
                    c.handler,
                    output::between(c.since_ms, now_ms),
                    output::local_time(c.since_ms)
                )
            }),
        ),
    ];
    for (key, value) in rows {
        if let Some(value) = value {
            output::add_row(&mut t, vec![key.to_owned(), value]);
        }
    }
    output::keep_whole(&mut t, 0);
    t
}

/// The history entries as rows: id, local time, time since the run's
/// first entry, type, details. The columns have fixed widths (but the
/// last), so that the rows of several tables line up (`--follow`);
/// `id_digits` is the width of the id column.
fn history_table(
    entries: &[&HistoryEntry],
    started_ms: u64,
    id_digits: u16,
    header: bool,
    style: Style,
) -> Table {
    let header: &[&str] = if header {
        &["#", "at", "after", "event", "details"]
    } else {
        &[]
    };
    let mut t = output::table(header, style);
    for entry in entries {
        let details = details_line(&entry.details);
        output::add_row(
            &mut t,
            vec![
                entry.id.to_string(),
                output::local_time(entry.at_ms),
                format!("+{}", output::between(started_ms, entry.at_ms)),
                entry.event_type.clone(),
                details,
            ],
        );
    }
    output::fixed(&mut t, 0, id_digits.max(1));
    output::fixed(&mut t, 1, 19);
    // `+59 min 59 s`, `+23 h 59 min`.
    output::fixed(&mut t, 2, 12);
    // The longest entry type, `activation_completed`.
    output::fixed(&mut t, 3, 20);
    t
}

/// A history entry's fields on one line, `key: value, ...`: the host's
/// times (`started_ms`, `due_ms`, `retry_at_ms`) as local timestamps, its
/// durations (`duration_us`, other `_ms`) in words, the rest (user JSON
/// among it) as JSON.
fn details_line(details: &serde_json::Map<String, Value>) -> String {
    /// Unix milliseconds from here on are times, not durations (1973).
    const EPOCH_LIKE: u64 = 100_000_000_000;
    let fields: Vec<String> = details
        .iter()
        .map(|(key, value)| match (value.as_u64(), key.as_str()) {
            (Some(us), k) if k.ends_with("_us") => format!(
                "{}: {}",
                &k[..k.len() - 3],
                output::duration(Duration::from_micros(us))
            ),
            (Some(ms), k) if k.ends_with("_ms") && ms >= EPOCH_LIKE => {
                format!("{}: {}", &k[..k.len() - 3], output::local_time(ms))
            }
            (Some(ms), k) if k.ends_with("_ms") => {
                format!("{}: {}", &k[..k.len() - 3], output::duration_ms(ms))
            }
            (_, k) => format!("{k}: {value}"),
        })
        .collect();
    fields.join(", ")
}

/// The digits of the widest id among `entries`.
fn id_digits(entries: &[HistoryEntry]) -> u16 {
    let widest = entries.iter().map(|e| e.id.to_string().len()).max();
    u16::try_from(widest.unwrap_or(1)).unwrap_or(u16::MAX)
}

fn tree_lines(node: &TreeView, depth: usize, now_ms: u64, out: &mut Vec<String>) {
    let run = &node.run;
    let outcome = match (&run.result, &run.error) {
        (Some(r), _) => format!(": {r}"),
        (None, Some(e)) => format!(": {e}"),
        (None, None) => String::new(),
    };
    let when = if run.status.is_terminal() {
        format!("after {}", took(run, now_ms))
    } else {
        format!("for {}", took(run, now_ms))
    };
    out.push(output::fit(&format!(
        "{}{} {} (run {}) {} {when}{outcome}",
        "  ".repeat(depth),
        run.workflow_type,
        run.workflow_id,
        run.run_id,
        run.status,
    )));
    for child in &node.children {
        tree_lines(child, depth + 1, now_ms, out);
    }
}

/// Run one client request.
pub fn run(request: Request) -> anyhow::Result<ExitCode> {
    let api = request.api().clone();
    let json_out = api.json;
    let long_poll = match &request {
        Request::Result {
            wait: true,
            timeout,
            ..
        } => timeout.unwrap_or(Duration::from_secs(60)),
        Request::Start { wait: true, .. } => Duration::from_secs(60),
        // Uploading and compiling a large component.
        Request::Deploy { .. } => Duration::from_secs(300),
        _ => Duration::ZERO,
    };
    let client = Client::new(api.conn, long_poll + Duration::from_secs(30))?;
    match request {
        Request::Start {
            workflow_type,
            id,
            input,
            input_file,
            timeout,
            return_existing,
            version,
            wait,
            api: _,
        } => {
            let input = match (input, input_file) {
                (Some(text), _) => json_arg(&text, "--input")?,
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    json_arg(&text, &file.display().to_string())?
                }
                (None, None) => json!({}),
            };
            let body = StartRequest {
                workflow_type,
                id,
                input: Some(input),
                timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                on_conflict: return_existing.then_some(OnConflict::ReturnExisting),
                version,
                // One request: the start answers with the outcome once the
                // run ends within the wait (longer waits go on below).
                wait_ms: wait.then(|| long_poll_ms(long_poll)),
            };
            let started: Started = accepted!(client.post("/v1/workflows", &body));
            if !wait {
                if json_out {
                    print_json(&started)?;
                } else {
                    let existing = if started.existing {
                        " (already running)"
                    } else {
                        ""
                    };
                    println!("{} {}{existing}", started.workflow_id, started.run_id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            match started.outcome {
                Some(outcome) if outcome.status.is_terminal() => {
                    print_outcome(outcome, Some(long_poll), json_out)
                }
                _ => result(
                    &client,
                    &started.workflow_id,
                    Some(&started.run_id),
                    Some(long_poll),
                    json_out,
                ),
            }
        }
        Request::Send {
            id,
            event,
            payload,
            api: _,
        } => {
            let body = SendEvent {
                name: event,
                payload: payload.map(|p| json_arg(&p, "--payload")).transpose()?,
            };
            let path = format!("/v1/workflows/{}/events", encode(&id));
            let accepted: EventAccepted = accepted!(client.post(&path, &body));
            if json_out {
                print_json(&accepted)?;
            } else {
                println!("sent to run {}", accepted.run_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Status {
            id,
            run,
            watch: true,
            api: _,
        } => watch_status(&client, &id, run, json_out),
        Request::Status { id, run, .. } => {
            let path = with_query(format!("/v1/workflows/{}", encode(&id)), &[("run_id", run)]);
            let run: RunView = accepted!(client.get(&path));
            if json_out {
                print_json(&run)?;
            } else {
                println!("{}", run_table(&run, now_ms()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Result {
            id,
            run,
            wait,
            timeout,
            api: _,
        } => {
            let wait = wait.then(|| timeout.unwrap_or(Duration::from_secs(60)));
            result(&client, &id, run.as_deref(), wait, json_out)
        }
        Request::History {
            id,
            run,
            follow: true,
            api: _,
        } => follow_history(&client, &id, run, json_out),
        Request::History { id, run, .. } => {
            let path = with_query(
                format!("/v1/workflows/{}/history", encode(&id)),
                &[("run_id", run)],
            );
            let history: HistoryView = accepted!(client.get(&path));
            if json_out {
                print_json(&history)?;
                return Ok(ExitCode::SUCCESS);
            }
            let started = history.events.first().map_or(0, |e| e.at_ms);
            let entries: Vec<&HistoryEntry> = history.events.iter().collect();
            let digits = id_digits(&history.events);
            println!(
                "{}",
                history_table(&entries, started, digits, true, Style::Framed)
            );
            Ok(ExitCode::SUCCESS)
        }
        Request::List {
            workflow_type,
            status,
            limit,
            cursor,
            all,
            api: _,
        } => {
            let mut cursor = cursor;
            let mut runs: Vec<RunView> = Vec::new();
            let next = loop {
                let path = with_query(
                    "/v1/workflows".to_owned(),
                    &[
                        ("type", workflow_type.clone()),
                        ("status", status.clone()),
                        ("limit", limit.map(|l| l.to_string())),
                        ("cursor", cursor.clone()),
                    ],
                );
                let page: RunList = accepted!(client.get(&path));
                runs.extend(page.runs);
                match page.next {
                    Some(next) if all => cursor = Some(next),
                    next => break next,
                }
            };
            if json_out {
                print_json(&RunList { runs, next })?;
                return Ok(ExitCode::SUCCESS);
            }
            let now = now_ms();
            let mut t = output::table(
                &[
                    "workflow id",
                    "run id",
                    "type",
                    "status",
                    "started",
                    "took",
                    "outcome",
                ],
                Style::Framed,
            );
            for run in runs {
                let outcome = match &run.error {
                    Some(error) => error.to_string(),
                    None => run.result.as_ref().map(text).unwrap_or_default(),
                };
                let took = took(&run, now);
                output::add_row(
                    &mut t,
                    vec![
                        run.workflow_id,
                        run.run_id,
                        run.workflow_type,
                        run.status.to_string(),
                        output::local_time(run.created_ms),
                        took,
                        outcome,
                    ],
                );
            }
            output::keep_whole(&mut t, 3);
            output::keep_whole(&mut t, 4);
            println!("{t}");
            if let Some(next) = next {
                eprintln!("more runs: --cursor {next} (or --all)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Tree { id, api: _ } => {
            let tree: TreeView =
                accepted!(client.get(&format!("/v1/workflows/{}/tree", encode(&id))));
            if json_out {
                print_json(&tree)?;
            } else {
                let mut lines = Vec::new();
                tree_lines(&tree, 0, now_ms(), &mut lines);
                println!("{}", lines.join("\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Cancel { id, reason, .. } => end(&client, "cancel", &id, reason, json_out),
        Request::Terminate { id, reason, .. } => end(&client, "terminate", &id, reason, json_out),
        Request::Retry {
            id,
            upgrade,
            all_failed,
            workflow_type,
            api: _,
        } => retry(
            &client,
            id,
            upgrade,
            all_failed.then_some(workflow_type).flatten(),
            json_out,
        ),
        Request::Deploy { file, name, api: _ } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| anyhow!("`{}` names no file", file.display()))?,
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let path = with_query("/v1/plugins".to_owned(), &[("name", Some(name))]);
            let deployed: DeployedView = accepted!(client.post_wasm(&path, &bytes));
            if json_out {
                print_json(&deployed)?;
            } else {
                let p = &deployed.plugin;
                let what = match (&deployed.previous_version, deployed.changed) {
                    (_, false) => " (unchanged: the host had exactly this)".to_owned(),
                    (Some(old), true) => format!(", replacing version {}", short(old)),
                    (None, true) => String::new(),
                };
                println!(
                    "deployed {} version {}{what}; new runs of {} get it",
                    p.file,
                    short(&p.version),
                    p.types.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Plugins { api: _ } => {
            let listing: PluginsView = accepted!(client.get("/v1/plugins"));
            if json_out {
                print_json(&listing)?;
            } else {
                let mut t = output::table(
                    &["file", "version", "types", "origin", "since"],
                    Style::Framed,
                );
                for p in &listing.plugins {
                    output::add_row(
                        &mut t,
                        vec![
                            p.file.clone(),
                            short(&p.version),
                            p.types.join(", "),
                            p.origin.as_str().to_owned(),
                            output::local_time(p.since_ms),
                        ],
                    );
                }
                if listing.plugins.is_empty() {
                    println!("no plugin files");
                } else {
                    println!("{t}");
                }
                for r in &listing.rejected {
                    println!(
                        "{}",
                        output::fit(&format!("rejected  {}: {}", r.file, r.reason))
                    );
                }
            }
            Ok(if listing.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Request::Query {
            id,
            name,
            args,
            api: _,
        } => {
            let body = QueryRequest {
                args: args.map(|a| json_arg(&a, "--args")).transpose()?,
                run_id: None,
            };
            let path = format!("/v1/workflows/{}/queries/{}", encode(&id), encode(&name));
            let answer: QueryAnswer = accepted!(client.post(&path, &body));
            if json_out {
                print_json(&answer)?;
            } else {
                println!("{}", answer.result);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The exit code of a run that ended: 0 if it completed, 1 otherwise.
fn ended_code(status: RunStatus) -> ExitCode {
    if status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The line `--follow` and `--watch` end with: how the run ended.
fn ended_line(run: &RunView) -> String {
    let why = match &run.error {
        Some(error) => format!(": {error}"),
        None => String::new(),
    };
    output::fit(&format!(
        "run {} {} after {}{why}",
        run.run_id,
        run.status,
        output::between(run.created_ms, run.updated_ms)
    ))
}

/// `history --follow`: the history so far, then each entry the run
/// appends, until it ends. One run: the latest (or `--run`) when it starts.
fn follow_history(
    client: &Client,
    id: &str,
    run: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut run_id = run;
    let mut last: Option<i64> = None;
    // The first entry's time and the id column's width, from the first
    // answer: later rows line up under it.
    let mut layout: Option<(u64, u16)> = None;
    loop {
        // The run, then its history: once the run has ended, the history
        // read after it holds every entry.
        let path = with_query(
            format!("/v1/workflows/{}", encode(id)),
            &[("run_id", run_id.clone())],
        );
        let view: RunView = accepted!(client.get(&path));
        run_id = Some(view.run_id.clone());
        let path = with_query(
            format!("/v1/workflows/{}/history", encode(id)),
            &[("run_id", run_id.clone())],
        );
        let history: HistoryView = accepted!(client.get(&path));
        let new: Vec<&HistoryEntry> = history
            .events
            .iter()
            .filter(|e| last.is_none_or(|l| e.id > l))
            .collect();
        if let Some(newest) = new.iter().map(|e| e.id).max() {
            last = Some(newest);
        }
        if json_out {
            for entry in &new {
                print_json_line(entry)?;
            }
        } else if !new.is_empty() || layout.is_none() {
            let header = layout.is_none();
            let (started, digits) = *layout.get_or_insert_with(|| {
                (
                    history.events.first().map_or(view.created_ms, |e| e.at_ms),
                    // Room for ids a few times larger.
                    id_digits(&history.events) + 1,
                )
            });
            let t = history_table(&new, started, digits, header, Style::Bare);
            let mut out = std::io::stdout().lock();
            writeln!(out, "{t}")?;
            out.flush()?;
        }
        if view.status.is_terminal() {
            if !json_out {
                println!("{}", ended_line(&view));
            }
            return Ok(ended_code(view.status));
        }
        std::thread::sleep(POLL);
    }
}

/// `status --watch`: the status, and again whenever it changes, until the
/// run ends.
fn watch_status(
    client: &Client,
    id: &str,
    run: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut run_id = run;
    let mut shown: Option<RunView> = None;
    loop {
        let path = with_query(
            format!("/v1/workflows/{}", encode(id)),
            &[("run_id", run_id.clone())],
        );
        let view: RunView = accepted!(client.get(&path));
        run_id = Some(view.run_id.clone());
        if shown.as_ref() != Some(&view) {
            if json_out {
                print_json_line(&view)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", run_table(&view, now_ms()))?;
                out.flush()?;
            }
        }
        if view.status.is_terminal() {
            if !json_out {
                println!("{}", ended_line(&view));
            }
            return Ok(ended_code(view.status));
        }
        shown = Some(view);
        std::thread::sleep(POLL);
    }
}

/// Retry one failed run, or every failed run of a type.
fn retry(
    client: &Client,
    id: Option<String>,
    upgrade: bool,
    all_of_type: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let body = RetryRequest { upgrade };
    let ids = match (id, all_of_type) {
        (Some(id), _) => vec![id],
        (None, Some(workflow_type)) => {
            // Every failed run of the type, page by page, before any moves.
            let mut ids = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!(
                    "/v1/workflows?type={}&status=failed&limit=1000",
                    encode(&workflow_type)
                );
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={}", encode(c)));
                }
                let page: RunList = accepted!(client.get(&path));
                ids.extend(page.runs.into_iter().map(|r| r.workflow_id));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            ids
        }
        (None, None) => anyhow::bail!("name a workflow id, or --all-failed --type T"),
    };
    let mut failed = 0;
    for id in &ids {
        let path = format!("/v1/workflows/{}/retry", encode(id));
        match client.post::<RunView>(&path, &body)? {
            Ok(run) if json_out => print_json(&run)?,
            Ok(run) => println!(
                "{} retried: run {} is {} on version {}",
                run.workflow_id,
                run.run_id,
                run.status,
                short(&run.version)
            ),
            Err(refused) => {
                failed += 1;
                eprintln!("{id}: {} (HTTP {})", refused.error, refused.status);
            }
        }
    }
    if ids.is_empty() {
        eprintln!("no failed runs to retry");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn end(
    client: &Client,
    what: &str,
    id: &str,
    reason: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    // Cancel and terminate take the same body.
    let body = CancelRequest { reason };
    let path = format!("/v1/workflows/{}/{what}", encode(id));
    let run: RunView = accepted!(client.post(&path, &body));
    if json_out {
        print_json(&run)?;
    } else {
        let pending = if run.cancel_requested.is_none() {
            ""
        } else {
            " (cancel requested: it ends when its activation does)"
        };
        println!("run {} {}{pending}", run.run_id, run.status);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a run's result; exit 1 if it failed, 3 if it has not ended.
/// Waiting longer than one request may (`wait_ms` is at most a minute)
/// asks again until the run ends or `wait` is over.
fn result(
    client: &Client,
    id: &str,
    run: Option<&str>,
    wait: Option<Duration>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let until = wait.map(|w| std::time::Instant::now() + w);
    let answer: ResultView = loop {
        let left = until.map(|u| u.saturating_duration_since(std::time::Instant::now()));
        let wait_ms = left.map(long_poll_ms).filter(|&ms| ms > 0);
        let path = with_query(
            format!("/v1/workflows/{}/result", encode(id)),
            &[
                ("run_id", run.map(str::to_owned)),
                ("wait_ms", wait_ms.map(|ms| ms.to_string())),
            ],
        );
        let answer: ResultView = accepted!(client.get(&path));
        let waiting = matches!(answer.status, RunStatus::Running | RunStatus::Waiting);
        let more = until.is_some_and(|u| std::time::Instant::now() < u);
        if !(waiting && more && wait_ms.is_some()) {
            break answer;
        }
    };
    print_outcome(answer, wait, json_out)
}

/// `wait` as a request's `wait_ms`: at most [`MAX_WAIT_MS`].
fn long_poll_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).map_or(MAX_WAIT_MS, |ms| ms.min(MAX_WAIT_MS))
}

/// Print a run's outcome (`result`, `start --wait`); the exit code says it.
fn print_outcome(
    answer: ResultView,
    wait: Option<Duration>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    if json_out {
        print_json(&answer)?;
    }
    let status = answer.status;
    match status {
        RunStatus::Completed => {
            if !json_out {
                println!("{}", answer.result.unwrap_or(Value::Null));
            }
            Ok(ExitCode::SUCCESS)
        }
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Terminated => {
            if !json_out {
                let (kind, message) = answer
                    .error
                    .map(|e| (e.kind, e.message))
                    .unwrap_or_default();
                eprintln!("error: run {} {status}: {kind}: {message}", answer.run_id);
            }
            Ok(ExitCode::from(1))
        }
        RunStatus::Running | RunStatus::Waiting => {
            if !json_out {
                let hint = if wait.is_some() {
                    ""
                } else {
                    " (--wait waits for it to end)"
                };
                eprintln!("run {} is still {status}{hint}", answer.run_id);
            }
            Ok(ExitCode::from(3))
        }
    }
}

/// `types` against a host: its types, versions, in-flight versions and
/// rejected files; one row per handler.
pub fn types(api: ApiArgs) -> anyhow::Result<ExitCode> {
    let json_out = api.json;
    let client = Client::new(api.conn, Duration::from_secs(30))?;
    let listing: TypesView = accepted!(client.get("/v1/types"));
    if json_out {
        print_json(&listing)?;
    } else {
        let mut t = output::table(
            &["type", "new runs get", "file", "handler", "in flight"],
            Style::Framed,
        );
        for ty in &listing.types {
            let in_flight: Vec<String> = ty
                .in_flight
                .iter()
                .map(|l| format!("{} on {}", l.runs, short(&l.version)))
                .collect();
            let file = Path::new(&ty.file)
                .file_name()
                .map_or_else(|| ty.file.clone(), |f| f.to_string_lossy().into_owned());
            let mut first = vec![
                ty.name.clone(),
                short(&ty.version),
                file,
                String::new(),
                in_flight.join(", "),
            ];
            if ty.handlers.is_empty() {
                output::add_row(&mut t, first);
                continue;
            }
            for (i, h) in ty.handlers.iter().enumerate() {
                // Each parameter with its type: `approver: a string`.
                let params: Vec<String> = h
                    .params
                    .iter()
                    .map(|p| {
                        let mark = if p.optional { "?" } else { "" };
                        format!("{}{mark}: {}", p.name, p.type_)
                    })
                    .collect();
                let timeout = h
                    .timeout
                    .map(|ms| format!(", timeout {}", output::duration_ms(ms)))
                    .unwrap_or_default();
                let handler = format!("{} {}({}){timeout}", h.kind, h.name, params.join(", "));
                if i == 0 {
                    first[3] = handler;
                    output::add_row(&mut t, std::mem::take(&mut first));
                } else {
                    output::add_row(
                        &mut t,
                        vec![String::new(), String::new(), String::new(), handler],
                    );
                }
            }
        }
        println!("{t}");
        for r in &listing.rejected {
            println!(
                "{}",
                output::fit(&format!("rejected  {}: {}", r.file, r.reason))
            );
        }
    }
    if !listing.rejected.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A token is a secret: empty (`--token ''`, `WASMFLOW_TOKEN=`) or with
/// whitespace or control characters (no header carries them) it is an
/// invalid setting, refused before anything runs.
pub fn check_token(token: Option<&str>) -> anyhow::Result<()> {
    let env_empty = std::env::var_os("WASMFLOW_TOKEN").is_some_and(|v| v.is_empty());
    match token {
        Some("") => bail!("invalid setting `token`: it is empty; set a secret, or leave it unset"),
        None if env_empty => bail!(
            "invalid setting `token`: WASMFLOW_TOKEN is set but empty; set a secret, or unset it"
        ),
        Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            bail!("invalid setting `token`: it contains whitespace or a control character")
        }
        _ => Ok(()),
    }
}

/// `--listen` must be loopback unless a token protects the API.
pub fn check_listen(addr: &std::net::SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "invalid setting `listen`: {addr} is not a loopback address; set a token (`--token` or WASMFLOW_TOKEN) to serve on it"
        );
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, on this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_http_urls() {
        assert!(check_addr("http://127.0.0.1:7420").is_ok());
        assert!(check_addr("http://host.example/base/").is_ok());
        for bad in ["127.0.0.1:7420", "localhost", "", "ftp://x", "http://"] {
            let e = check_addr(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("invalid --addr `{bad}`")), "{bad}: {e}");
        }
        let e = check_addr("https://h:1").unwrap_err().to_string();
        assert!(e.contains("plain HTTP"), "{e}");
    }

    #[test]
    fn refusals_say_what_to_do() {
        let refused = |status, kind: &str, token_sent| Refused {
            status,
            error: ErrorBody {
                kind: kind.to_owned(),
                message: "m".to_owned(),
            },
            token_sent,
        };
        let hint = |r: Refused| r.hint().unwrap_or_default();
        assert!(
            hint(refused(401, "Unauthorized", false)).contains("set WASMFLOW_TOKEN or --token")
        );
        assert!(hint(refused(401, "Unauthorized", true)).contains("is not the one"));
        assert!(hint(refused(404, "RunNotFound", false)).contains("wasmflow list"));
        assert!(hint(refused(400, "UnknownWorkflowType", false)).contains("wasmflow types"));
        assert_eq!(refused(500, "Internal", false).hint(), None);
    }

    #[test]
    fn durations_that_do_not_parse_show_examples() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        let e = parse_duration("soon").unwrap_err();
        assert!(
            e.contains("`soon` is not a duration") && e.contains("`30s`"),
            "{e}"
        );
    }

    fn entry(id: i64, at_ms: u64, kind: &str) -> HistoryEntry {
        let details = json!({"input": {"text": "y".repeat(300)}});
        HistoryEntry {
            id,
            at_ms,
            event_type: kind.to_owned(),
            details: details.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn history_details_show_times_and_durations_in_words() {
        let details = json!({
            "sequence": 3,
            "started_ms": 1_796_650_265_123u64,
            "duration_us": 1500,
            "delay_ms": 2000,
            "input": {"wait_ms": 1_796_650_265_123u64},
        });
        let line = details_line(details.as_object().unwrap());
        assert!(
            line.contains("sequence: 3") && line.contains("started: 2026-12-0"),
            "{line}"
        );
        assert!(line.contains("duration: 1 ms"), "{line}");
        assert!(line.contains("delay: 2.0 s"), "{line}");
        // User JSON is shown as it is.
        assert!(
            line.contains(r#"input: {"wait_ms":1796650265123}"#),
            "{line}"
        );
    }

    #[test]
    fn history_rows_line_up_across_tables_and_fit() {
        let a = entry(7, 1_000, "run_started");
        let b = entry(12, 2_500, "activation_completed");
        let first = history_table(&[&a], 1_000, 3, true, Style::Bare).to_string();
        let second = history_table(&[&b], 1_000, 3, false, Style::Bare).to_string();
        let col = |text: &str, needle: &str| {
            text.lines()
                .find_map(|l| l.find(needle).map(|i| l[..i].chars().count()))
        };
        assert_eq!(
            col(&first, "run_started"),
            col(&second, "activation_completed")
        );
        assert!(second.contains("+1.5 s"), "{second}");
        for line in first.lines().chain(second.lines()) {
            assert!(line.chars().count() <= 100, "{line}");
        }
        assert!(first.contains(output::MARKER), "{first}");
    }
}
