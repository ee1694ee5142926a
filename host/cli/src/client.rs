//! The client subcommands: requests to a `wasmflow serve` over its HTTP API,
//! answers as tables (or the API's JSON with `--json`). Requests and answers
//! are the `wasmflow-api` types the server uses.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wasmflow_api::{
    CancelRequest, ErrorBody, EventAccepted, HistoryView, MAX_WAIT_MS, OnConflict, QueryAnswer,
    QueryRequest, ResultView, RetryRequest, RunError, RunList, RunStatus, RunView, SendEvent,
    StartRequest, Started, TreeView, TypesView,
};

/// Where the host is and how to talk to it.
#[derive(Args, Clone)]
pub struct Connection {
    /// The host's API address.
    #[arg(
        long,
        env = "WASMFLOW_ADDR",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    pub addr: String,
    /// The bearer token, when the host requires one.
    #[arg(long, env = "WASMFLOW_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Request {
    /// Start a run.
    Start {
        /// The workflow type.
        workflow_type: String,
        /// The workflow id (default: the run id).
        #[arg(long)]
        id: Option<String>,
        /// The input, a JSON object.
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// A file holding the input.
        #[arg(long)]
        input_file: Option<PathBuf>,
        /// The workflow timeout, e.g. `5m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// If the id has an active run, answer with it instead of an error.
        #[arg(long)]
        return_existing: bool,
        /// Wait for the run to end and print its result.
        #[arg(long)]
        wait: bool,
    },
    /// Send an event to the latest run of a workflow id.
    Send {
        id: String,
        event: String,
        /// The payload, JSON.
        #[arg(long)]
        payload: Option<String>,
    },
    /// A run's status.
    Status {
        id: String,
        /// A run of the id (default: the latest).
        #[arg(long)]
        run: Option<String>,
    },
    /// A run's result.
    Result {
        id: String,
        #[arg(long)]
        run: Option<String>,
        /// Wait for the run to end.
        #[arg(long)]
        wait: bool,
        /// How long to wait at most (default 60s).
        #[arg(long, value_parser = humantime::parse_duration, requires = "wait")]
        timeout: Option<Duration>,
    },
    /// A run's history.
    History {
        id: String,
        #[arg(long)]
        run: Option<String>,
    },
    /// Runs, newest first, a page at a time: a further page is named on
    /// stderr (`--cursor`), or `--all` follows every page.
    List {
        #[arg(long = "type")]
        workflow_type: Option<String>,
        #[arg(long)]
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
    },
    /// A run with its children, and theirs.
    Tree { id: String },
    /// Cancel the latest run of a workflow id.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Terminate the latest run of a workflow id.
    Terminate {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a failed run: execute its failed activation again (tasks it
    /// completed keep their outcomes), on its pinned version or, with
    /// `--upgrade`, on the newest version that passes the upgrade check.
    /// `--all-failed --type T` retries every failed run of type T.
    Retry {
        /// The workflow id (omit with `--all-failed`).
        #[arg(required_unless_present = "all_failed")]
        id: Option<String>,
        #[arg(long)]
        upgrade: bool,
        /// Every failed run of `--type`.
        #[arg(long, requires = "workflow_type", conflicts_with = "id")]
        all_failed: bool,
        #[arg(long = "type")]
        workflow_type: Option<String>,
    },
    /// Run a query handler of the latest run of a workflow id.
    Query {
        id: String,
        name: String,
        /// The query's arguments, JSON.
        #[arg(long)]
        args: Option<String>,
    },
}

/// An error answer of the API: the HTTP status and its `{kind, message}`.
struct Refused {
    status: u16,
    error: ErrorBody,
}

impl Refused {
    /// Print the error and choose the exit code (1).
    fn report(&self) -> ExitCode {
        eprintln!("error: {} (HTTP {})", self.error, self.status);
        ExitCode::from(1)
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
}

impl Client {
    fn new(conn: Connection, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client { agent, conn }
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

    fn answer<T: DeserializeOwned>(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Result<T, Refused>> {
        let mut response =
            response.with_context(|| format!("cannot reach the host at {}", self.conn.addr))?;
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
            return Ok(Err(Refused { status, error }));
        }
        let body = serde_json::from_str(&text).with_context(|| {
            format!("the host's answer to {path} (HTTP {status}) is not the API's: {text}")
        })?;
        Ok(Ok(body))
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

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A run error as one line of JSON, as the status table shows it.
fn error_json(error: &RunError) -> String {
    serde_json::to_value(error).map_or_else(|_| error.to_string(), |v| v.to_string())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    t
}

fn print_run(run: &RunView) {
    let mut t = table(&["field", "value"]);
    let rows = [
        ("workflow_id", Some(run.workflow_id.clone())),
        ("run_id", Some(run.run_id.clone())),
        ("type", Some(run.workflow_type.clone())),
        ("status", Some(run.status.to_string())),
        ("version", Some(run.version.clone())),
        ("parent", run.parent.clone()),
        ("result", run.result.as_ref().map(text)),
        ("error", run.error.as_ref().map(error_json)),
        ("cancel_requested", run.cancel_requested.clone()),
        (
            "current",
            run.current.as_ref().map(|c| {
                let for_ms = now_ms().saturating_sub(c.since_ms);
                format!(
                    "{} `{}` for {:.1} s (since {})",
                    c.kind,
                    c.handler,
                    for_ms as f64 / 1000.0,
                    c.since_ms
                )
            }),
        ),
    ];
    for (key, value) in rows {
        if let Some(value) = value {
            t.add_row(vec![key.to_owned(), value]);
        }
    }
    println!("{t}");
}

fn tree_lines(node: &TreeView, depth: usize, out: &mut Vec<String>) {
    let run = &node.run;
    out.push(format!(
        "{}{} {} (run {}) {}{}",
        "  ".repeat(depth),
        run.workflow_type,
        run.workflow_id,
        run.run_id,
        run.status,
        match &run.result {
            None => String::new(),
            Some(r) => format!(": {r}"),
        }
    ));
    for child in &node.children {
        tree_lines(child, depth + 1, out);
    }
}

/// Run one client request.
pub fn run(conn: Connection, request: Request) -> anyhow::Result<ExitCode> {
    let json_out = conn.json;
    let long_poll = match &request {
        Request::Result {
            wait: true,
            timeout,
            ..
        } => timeout.unwrap_or(Duration::from_secs(60)),
        Request::Start { wait: true, .. } => Duration::from_secs(60),
        _ => Duration::ZERO,
    };
    let client = Client::new(conn, long_poll + Duration::from_secs(30));
    match request {
        Request::Start {
            workflow_type,
            id,
            input,
            input_file,
            timeout,
            return_existing,
            wait,
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
            result(
                &client,
                &started.workflow_id,
                Some(&started.run_id),
                Some(long_poll),
                json_out,
            )
        }
        Request::Send { id, event, payload } => {
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
        Request::Status { id, run } => {
            let path = with_query(format!("/v1/workflows/{}", encode(&id)), &[("run_id", run)]);
            let run: RunView = accepted!(client.get(&path));
            if json_out {
                print_json(&run)?;
            } else {
                print_run(&run);
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Result {
            id,
            run,
            wait,
            timeout,
        } => {
            let wait = wait.then(|| timeout.unwrap_or(Duration::from_secs(60)));
            result(&client, &id, run.as_deref(), wait, json_out)
        }
        Request::History { id, run } => {
            let path = with_query(
                format!("/v1/workflows/{}/history", encode(&id)),
                &[("run_id", run)],
            );
            let history: HistoryView = accepted!(client.get(&path));
            if json_out {
                print_json(&history)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["#", "at (ms)", "event", "details"]);
            for event in &history.events {
                t.add_row(vec![
                    event.id.to_string(),
                    event.at_ms.to_string(),
                    event.event_type.clone(),
                    Value::Object(event.details.clone()).to_string(),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Request::List {
            workflow_type,
            status,
            limit,
            cursor,
            all,
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
            let mut t = table(&["workflow id", "run id", "type", "status", "result / error"]);
            for run in runs {
                let outcome = match &run.error {
                    Some(error) => format!("{}: {}", error.kind, error.message),
                    None => run.result.as_ref().map(text).unwrap_or_default(),
                };
                t.add_row(vec![
                    run.workflow_id,
                    run.run_id,
                    run.workflow_type,
                    run.status.to_string(),
                    outcome,
                ]);
            }
            println!("{t}");
            if let Some(next) = next {
                eprintln!("more runs: --cursor {next} (or --all)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Tree { id } => {
            let tree: TreeView =
                accepted!(client.get(&format!("/v1/workflows/{}/tree", encode(&id))));
            if json_out {
                print_json(&tree)?;
            } else {
                let mut lines = Vec::new();
                tree_lines(&tree, 0, &mut lines);
                println!("{}", lines.join("\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Cancel { id, reason } => end(&client, "cancel", &id, reason, json_out),
        Request::Terminate { id, reason } => end(&client, "terminate", &id, reason, json_out),
        Request::Retry {
            id,
            upgrade,
            all_failed,
            workflow_type,
        } => retry(
            &client,
            id,
            upgrade,
            all_failed.then_some(workflow_type).flatten(),
            json_out,
        ),
        Request::Query { id, name, args } => {
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
                wasmflow_host::short_version(&run.version)
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
        let wait_ms = left
            .map(|l| u64::try_from(l.as_millis()).map_or(MAX_WAIT_MS, |ms| ms.min(MAX_WAIT_MS)))
            .filter(|&ms| ms > 0);
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
                eprintln!("run {} is still {status}", answer.run_id);
            }
            Ok(ExitCode::from(3))
        }
    }
}

/// `types` against a host: its types, versions, in-flight versions and
/// rejected files.
pub fn types(conn: Connection) -> anyhow::Result<ExitCode> {
    let json_out = conn.json;
    let client = Client::new(conn, Duration::from_secs(30));
    let listing: TypesView = accepted!(client.get("/v1/types"));
    if json_out {
        print_json(&listing)?;
    } else {
        let mut t = table(&["type", "version", "file", "handlers", "in flight"]);
        for ty in &listing.types {
            let handlers: Vec<String> = ty
                .handlers
                .iter()
                .map(|h| {
                    // Each parameter with its type: `approver: a string`.
                    let params: Vec<String> = h
                        .params
                        .iter()
                        .map(|p| {
                            let mark = if p.optional { "?" } else { "" };
                            format!("{}{mark}: {}", p.name, p.type_)
                        })
                        .collect();
                    format!("{} {}({})", h.kind, h.name, params.join(", "))
                })
                .collect();
            let in_flight: Vec<String> = ty
                .in_flight
                .iter()
                .map(|l| format!("{} on {}", l.runs, short(&l.version)))
                .collect();
            t.add_row(vec![
                ty.name.clone(),
                short(&ty.version),
                ty.file.clone(),
                handlers.join(", "),
                in_flight.join(", "),
            ]);
        }
        println!("{t}");
        for r in &listing.rejected {
            println!("rejected  {}: {}", r.file, r.reason);
        }
    }
    if !listing.rejected.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn short(version: &str) -> String {
    version.get(..12).unwrap_or(version).to_owned()
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
