//! The client subcommands: requests to a `wasmflow serve` over its HTTP API,
//! answers as tables (or the API's JSON with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::{Value, json};

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
    /// Runs, newest first.
    List {
        #[arg(long = "type")]
        workflow_type: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
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
    /// Run a query handler of the latest run of a workflow id.
    Query {
        id: String,
        name: String,
        /// The query's arguments, JSON.
        #[arg(long)]
        args: Option<String>,
    },
}

/// An API answer: the status and the JSON body.
struct Answer {
    status: u16,
    body: Value,
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

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
        let url = self.url(path);
        let auth = self.conn.token.as_ref().map(|t| format!("Bearer {t}"));
        let response = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.call()
            }
            (_, body) => {
                let mut req = self.agent.post(&url);
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.send_json(body.unwrap_or_else(|| json!({})))
            }
        };
        let mut response =
            response.with_context(|| format!("cannot reach the host at {}", self.conn.addr))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .context("reading the host's answer")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
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

fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

/// Print an API error and choose the exit code (1).
fn failed(answer: &Answer) -> ExitCode {
    let kind = answer.body["kind"].as_str().unwrap_or("Error");
    let message = answer.body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| answer.body.to_string());
    eprintln!("error: {kind}: {message} (HTTP {})", answer.status);
    ExitCode::from(1)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    t
}

fn print_run(run: &Value) {
    let mut t = table(&["field", "value"]);
    for key in [
        "workflow_id",
        "run_id",
        "type",
        "status",
        "version",
        "parent",
        "result",
        "error",
        "cancel_requested",
    ] {
        let value = &run[key];
        if !value.is_null() {
            t.add_row(vec![key.to_owned(), text(value)]);
        }
    }
    println!("{t}");
}

fn tree_lines(node: &Value, depth: usize, out: &mut Vec<String>) {
    out.push(format!(
        "{}{} {} (run {}) {}{}",
        "  ".repeat(depth),
        text(&node["type"]),
        text(&node["workflow_id"]),
        text(&node["run_id"]),
        text(&node["status"]),
        match &node["result"] {
            Value::Null => String::new(),
            r => format!(": {r}"),
        }
    ));
    for child in node["children"].as_array().into_iter().flatten() {
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
    let print_json =
        |v: &Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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
            let mut body = json!({"type": workflow_type, "input": input});
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(t) = timeout {
                body["timeout_ms"] = json!(t.as_millis() as u64);
            }
            if return_existing {
                body["on_conflict"] = json!("return_existing");
            }
            let answer = client.call("POST", "/v1/workflows", Some(body))?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if !wait {
                if json_out {
                    print_json(&answer.body);
                } else {
                    let existing = if answer.body["existing"] == json!(true) {
                        " (already running)"
                    } else {
                        ""
                    };
                    println!(
                        "{} {}{existing}",
                        text(&answer.body["workflow_id"]),
                        text(&answer.body["run_id"])
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let id = text(&answer.body["workflow_id"]);
            let run = text(&answer.body["run_id"]);
            result(&client, &id, Some(&run), Some(long_poll), json_out)
        }
        Request::Send { id, event, payload } => {
            let mut body = json!({"name": event});
            if let Some(p) = payload {
                body["payload"] = json_arg(&p, "--payload")?;
            }
            let answer = client.call(
                "POST",
                &format!("/v1/workflows/{}/events", encode(&id)),
                Some(body),
            )?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
            } else {
                println!("sent to run {}", text(&answer.body["run_id"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Status { id, run } => {
            let mut path = format!("/v1/workflows/{}", encode(&id));
            if let Some(run) = run {
                path.push_str(&format!("?run_id={}", encode(&run)));
            }
            let answer = client.call("GET", &path, None)?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
            } else {
                print_run(&answer.body);
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
            let mut path = format!("/v1/workflows/{}/history", encode(&id));
            if let Some(run) = run {
                path.push_str(&format!("?run_id={}", encode(&run)));
            }
            let answer = client.call("GET", &path, None)?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["#", "at (ms)", "event", "details"]);
            for event in answer.body["events"].as_array().into_iter().flatten() {
                let mut details = event.clone();
                if let Some(map) = details.as_object_mut() {
                    for key in ["id", "at_ms", "type"] {
                        map.remove(key);
                    }
                }
                t.add_row(vec![
                    text(&event["id"]),
                    text(&event["at_ms"]),
                    text(&event["type"]),
                    details.to_string(),
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Request::List {
            workflow_type,
            status,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(t) = workflow_type {
                query.push(format!("type={}", encode(&t)));
            }
            if let Some(s) = status {
                query.push(format!("status={}", encode(&s)));
            }
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            let path = if query.is_empty() {
                "/v1/workflows".to_owned()
            } else {
                format!("/v1/workflows?{}", query.join("&"))
            };
            let answer = client.call("GET", &path, None)?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["workflow id", "run id", "type", "status", "result / error"]);
            for run in answer.body["runs"].as_array().into_iter().flatten() {
                let outcome = if run["error"].is_null() {
                    text(&run["result"])
                } else {
                    format!(
                        "{}: {}",
                        text(&run["error"]["kind"]),
                        text(&run["error"]["message"])
                    )
                };
                t.add_row(vec![
                    text(&run["workflow_id"]),
                    text(&run["run_id"]),
                    text(&run["type"]),
                    text(&run["status"]),
                    outcome,
                ]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Request::Tree { id } => {
            let answer =
                client.call("GET", &format!("/v1/workflows/{}/tree", encode(&id)), None)?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
            } else {
                let mut lines = Vec::new();
                tree_lines(&answer.body, 0, &mut lines);
                println!("{}", lines.join("\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Cancel { id, reason } => end(&client, "cancel", &id, reason, json_out),
        Request::Terminate { id, reason } => end(&client, "terminate", &id, reason, json_out),
        Request::Query { id, name, args } => {
            let mut body = json!({});
            if let Some(a) = args {
                body["args"] = json_arg(&a, "--args")?;
            }
            let path = format!("/v1/workflows/{}/queries/{}", encode(&id), encode(&name));
            let answer = client.call("POST", &path, Some(body))?;
            if answer.status >= 300 {
                return Ok(failed(&answer));
            }
            if json_out {
                print_json(&answer.body);
            } else {
                println!("{}", answer.body["result"]);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn end(
    client: &Client,
    what: &str,
    id: &str,
    reason: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let body = reason.map_or_else(|| json!({}), |r| json!({"reason": r}));
    let answer = client.call(
        "POST",
        &format!("/v1/workflows/{}/{what}", encode(id)),
        Some(body),
    )?;
    if answer.status >= 300 {
        return Ok(failed(&answer));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    } else {
        let pending = if answer.body["cancel_requested"].is_null() {
            String::new()
        } else {
            " (cancel requested: it ends when its activation does)".to_owned()
        };
        println!(
            "run {} {}{pending}",
            text(&answer.body["run_id"]),
            text(&answer.body["status"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a run's result; exit 1 if it failed, 3 if it has not ended.
fn result(
    client: &Client,
    id: &str,
    run: Option<&str>,
    wait: Option<Duration>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(run) = run {
        query.push(format!("run_id={}", encode(run)));
    }
    if let Some(w) = wait {
        query.push(format!("wait_ms={}", w.as_millis()));
    }
    let path = format!("/v1/workflows/{}/result?{}", encode(id), query.join("&"));
    let answer = client.call("GET", &path, None)?;
    if answer.status >= 300 {
        return Ok(failed(&answer));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    }
    let status = text(&answer.body["status"]);
    match status.as_str() {
        "completed" => {
            if !json_out {
                println!("{}", answer.body["result"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        "failed" | "cancelled" | "terminated" => {
            if !json_out {
                eprintln!(
                    "error: run {} {status}: {}: {}",
                    text(&answer.body["run_id"]),
                    text(&answer.body["error"]["kind"]),
                    text(&answer.body["error"]["message"])
                );
            }
            Ok(ExitCode::from(1))
        }
        _ => {
            if !json_out {
                eprintln!("run {} is still {status}", text(&answer.body["run_id"]));
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
    let answer = client.call("GET", "/v1/types", None)?;
    if answer.status >= 300 {
        return Ok(failed(&answer));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    } else {
        let mut t = table(&["type", "version", "file", "handlers", "in flight"]);
        for ty in answer.body["types"].as_array().into_iter().flatten() {
            let handlers: Vec<String> = ty["handlers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| format!("{} {}", text(&h["kind"]), text(&h["name"])))
                .collect();
            let in_flight: Vec<String> = ty["in_flight"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| format!("{} on {}", l["runs"], short(&text(&l["version"]))))
                .collect();
            t.add_row(vec![
                text(&ty["name"]),
                short(&text(&ty["version"])),
                text(&ty["file"]),
                handlers.join(", "),
                in_flight.join(", "),
            ]);
        }
        println!("{t}");
        for r in answer.body["rejected"].as_array().into_iter().flatten() {
            println!("rejected  {}: {}", text(&r["file"]), text(&r["reason"]));
        }
    }
    if answer.body["rejected"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn short(version: &str) -> String {
    version.get(..12).unwrap_or(version).to_owned()
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
