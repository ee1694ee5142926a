//! `wasmflow`: the command-line face of the host: `serve` (the host and its
//! HTTP API), `run` (one run in-process), `types` and `upgrade`, and the
//! client subcommands in `client.rs`.
//!
//! Exit codes: 0 success; 1 the run failed or the API refused the request
//! (or a plugin file was rejected, for `types`); 2 the request was rejected
//! before anything was stored, or the command could not run; 3 `result`:
//! the run has not ended; 4 `run`: the run waits for an event and nothing
//! is left to send one (no timer, no live child that could).

mod client;
mod new;
mod output;
mod telemetry;

/// mimalloc: many threads (tokio workers, the storage writer, blocking
/// reads) allocate and free small objects at once; glibc's allocator spends
/// a tenth of the host's time on that, mimalloc a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::sync::Arc;

use wasmflow_host::{
    Database, HostBuilder, LiveVersion, RunStatus, StartOptions, inspect_plugins, open_admin,
    short_version,
};

#[derive(Parser)]
#[command(
    name = "wasmflow",
    version,
    about = "Durable workflows compiled to WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host and its HTTP API: drive every run in the database and
    /// pick up plugins added, replaced or removed while it runs. Ctrl-C or
    /// SIGTERM stops it.
    Serve(Box<ServeCommand>),
    /// Run one workflow in-process on the embedded store and print its result.
    Run(Box<RunArgs>),
    /// List the workflow types, with their handlers, versions, the versions
    /// live runs are pinned to and rejected files: the host's at `--addr`,
    /// or with `--plugins` those of a plugins directory here.
    Types(TypesArgs),
    /// Move the waiting runs of a workflow type to the newest version of its
    /// plugin, where every handler they can still reach exists in it.
    Upgrade(UpgradeArgs),
    /// Write a new workflow crate (Cargo.toml, a workflow with start, step,
    /// event and query handlers, its harness tests) and print how to build,
    /// test and deploy it.
    New(new::NewArgs),
    #[command(flatten)]
    Client(client::Request),
}

/// `serve`'s options: the host's and the API's ([`ServeArgs`]), and the
/// token clients must send.
#[derive(Args)]
struct ServeCommand {
    #[command(flatten)]
    args: ServeArgs,
    /// The bearer token clients must send (`Authorization: Bearer T`);
    /// required to listen off loopback. Unset: no token is asked for.
    #[arg(long, env = "WASMFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl std::ops::Deref for ServeCommand {
    type Target = ServeArgs;
    fn deref(&self) -> &ServeArgs {
        &self.args
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Where the HTTP API listens. Off loopback it requires a token.
    #[arg(long, env = "WASMFLOW_LISTEN", default_value = "127.0.0.1:7420")]
    listen: std::net::SocketAddr,
    /// How long a client has to send a request's head (line and headers),
    /// on a new or an idle kept-alive connection, before it is closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    header_timeout: Duration,
    /// How long a client has to send a request's body once its head is
    /// read; then it gets a 408 and the connection is closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    body_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = wasmflow_server::ServerConfig::MAX_CONNECTIONS)]
    max_connections: usize,
    /// The largest request body, in bytes; larger is a 413.
    #[arg(long, default_value_t = wasmflow_server::ServerConfig::MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// The largest component `POST /v1/plugins` (`wasmflow deploy`) takes,
    /// in bytes; larger is a 413.
    #[arg(long, default_value_t = wasmflow_server::ServerConfig::MAX_PLUGIN_BYTES)]
    max_plugin_bytes: usize,
    /// Export OpenTelemetry spans (one per run, activation and task
    /// attempt) over OTLP/HTTP to this collector, e.g.
    /// `http://127.0.0.1:4318`; they are posted to `/v1/traces`. Unset:
    /// nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// How log lines are written on stderr: `text` for people, `json` (one
    /// object a line) for log shippers.
    #[arg(long, value_enum, env = "WASMFLOW_LOG_FORMAT", default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
}

impl ServeArgs {
    /// The server's settings, checked: a value out of range is refused
    /// before anything is opened.
    fn server_config(
        &self,
        token: Option<String>,
    ) -> anyhow::Result<wasmflow_server::ServerConfig> {
        let config = wasmflow_server::ServerConfig {
            token,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
            max_request_bytes: self.max_request_bytes,
            max_plugin_bytes: self.max_plugin_bytes,
        };
        config.check()?;
        Ok(config)
    }
}

#[derive(Args)]
struct PluginsArg {
    /// Directory of workflow components (`*.wasm`).
    #[arg(long, env = "WASMFLOW_PLUGINS", default_value = "plugins")]
    plugins: PathBuf,
}

#[derive(Args)]
struct HostArgs {
    #[command(flatten)]
    plugins: PluginsArg,
    /// The database: a SQLite file (created if missing), or a
    /// `postgres://user@host/db` URL that several hosts share. Default: the
    /// config file's `[database] url`, else `wasmflow.db`.
    #[arg(long, env = "WASMFLOW_DB", value_parser = parse_database)]
    db: Option<Database>,
    /// With PostgreSQL: how long this host's claim on a run lasts without
    /// renewal, e.g. `30s`; other hosts take a dead host's runs over after it
    /// (default: the config file's, else 30 s).
    #[arg(long, value_parser = humantime::parse_duration)]
    lease_timeout: Option<Duration>,
    /// How long finished runs are kept, e.g. `30d` (the default, or the
    /// config file's `[database] retention_days`); older ones are deleted
    /// in the background. `0s`: kept for ever.
    #[arg(long, value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    /// With PostgreSQL: connections in the pool (default: the config
    /// file's, else 16).
    #[arg(long)]
    pool_size: Option<u32>,
    /// Activation deadline of handlers without their own, e.g. `10s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    step_timeout: Option<Duration>,
    /// Memory cap per instance in MiB (default 64).
    #[arg(long)]
    memory_limit_mib: Option<usize>,
    /// A lower memory cap for one plugin file, `FILE=MIB`; repeatable.
    #[arg(long, value_name = "FILE=MIB", value_parser = parse_plugin_memory)]
    plugin_memory_limit: Vec<(String, usize)>,
    /// Instances at once (default 256); activations beyond wait.
    #[arg(long)]
    instance_slots: Option<u32>,
    /// Largest value a guest may store, return or send, in bytes (default 1 MiB).
    #[arg(long)]
    max_value_bytes: Option<usize>,
    /// Largest total store of a run, in bytes (default 16 MiB).
    #[arg(long)]
    max_store_bytes: Option<usize>,
    /// Children one activation may start (default 10000).
    #[arg(long)]
    max_children: Option<usize>,
    /// Events one activation may send to its parent (default 10000).
    #[arg(long)]
    max_events: Option<usize>,
    /// Events a run's inbox may hold (default 10000).
    #[arg(long)]
    max_inbox: Option<u64>,
    /// History entries a run may have (default 1000000).
    #[arg(long)]
    max_history: Option<u64>,
    /// Deadline of a plugin's `describe` when it loads, e.g. `5s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    describe_timeout: Option<Duration>,
    /// The operator's config file (TOML): what plugins may reach (outbound
    /// HTTP grants), the secrets the host substitutes, outbound limits.
    #[arg(long, env = "WASMFLOW_CONFIG")]
    config: Option<PathBuf>,
}

/// The database when neither `--db` nor the config file names one.
const DEFAULT_DB: &str = "wasmflow.db";

fn parse_database(text: &str) -> Result<Database, String> {
    Ok(Database::parse(text))
}

fn parse_plugin_memory(text: &str) -> Result<(String, usize), String> {
    let (file, mib) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not FILE=MIB"))?;
    let mib: usize = mib
        .parse()
        .map_err(|e| format!("`{mib}` in `{text}` is not a number of MiB: {e}"))?;
    Ok((file.to_owned(), mib.saturating_mul(1 << 20)))
}

impl HostArgs {
    /// The host these options describe, and the database it opens: `--db`
    /// (or `WASMFLOW_DB`), else the config file's, else `wasmflow.db`. A
    /// flag wins over the config file.
    fn builder(&self) -> anyhow::Result<(HostBuilder, Database)> {
        let config = self
            .config
            .as_deref()
            .map(wasmflow_host::Config::load)
            .transpose()?;
        let db = self
            .db
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.database.url.clone()))
            .unwrap_or_else(|| Database::parse(DEFAULT_DB));
        let mut b = HostBuilder::new(db.clone()).plugins(&self.plugins.plugins);
        if let Some(config) = config {
            b = b.config(config);
        }
        if let Some(t) = self.step_timeout {
            b = b.step_timeout(t);
        }
        if let Some(r) = self.retention {
            b = b.retention(Some(r));
        }
        if let Some(t) = self.lease_timeout {
            b = b.lease_timeout(t);
        }
        if let Some(n) = self.pool_size {
            b = b.pool_size(n);
        }
        if let Some(mib) = self.memory_limit_mib {
            b = b.memory_limit(mib.saturating_mul(1 << 20));
        }
        for (file, bytes) in &self.plugin_memory_limit {
            b = b.plugin_memory_limit(file.clone(), *bytes);
        }
        if let Some(n) = self.instance_slots {
            b = b.instance_slots(n);
        }
        if let Some(n) = self.max_value_bytes {
            b = b.max_value_bytes(n);
        }
        if let Some(n) = self.max_store_bytes {
            b = b.max_store_bytes(n);
        }
        if let Some(n) = self.max_children {
            b = b.max_children_per_activation(n);
        }
        if let Some(n) = self.max_events {
            b = b.max_events_per_activation(n);
        }
        if let Some(n) = self.max_inbox {
            b = b.max_inbox_len(n);
        }
        if let Some(n) = self.max_history {
            b = b.max_history_len(n);
        }
        if let Some(t) = self.describe_timeout {
            b = b.describe_timeout(t);
        }
        Ok((b, db))
    }
}

#[derive(Args)]
struct RunArgs {
    /// The workflow type to start, e.g. `Greeter`.
    workflow_type: String,
    /// The workflow input: a JSON object whose keys bind to the start
    /// handler's parameters.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The workflow id (default: the run id).
    #[arg(long)]
    id: Option<String>,
    /// The workflow timeout, e.g. `5m`: the run fails with `WorkflowTimeout`
    /// if it has not ended by then.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// An event to send to the run, `NAME` or `NAME=JSON`; repeat it to send
    /// several, in order. Each is checked before the run starts.
    #[arg(long = "event", value_name = "NAME[=JSON]")]
    events: Vec<String>,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Args)]
struct TypesArgs {
    /// A plugins directory to look at here; without it, ask the host at
    /// `--addr`.
    #[arg(long, env = "WASMFLOW_PLUGINS")]
    plugins: Option<PathBuf>,
    /// With `--plugins`: the database whose live runs' versions to show
    /// (a SQLite file is skipped if it does not exist).
    #[arg(long, env = "WASMFLOW_DB", default_value = "wasmflow.db", value_parser = parse_database)]
    db: Database,
    // Without `--plugins`: the host to ask; and the output (both ways).
    #[command(flatten)]
    api: client::ApiArgs,
}

/// `types` either asks a host (`--addr`, `--token`) or reads a plugins
/// directory here (`--plugins`, `--db`): options of the one given on the
/// command line with the other are a usage error.
fn check_types_usage(matches: &clap::ArgMatches) -> Result<(), clap::Error> {
    let Some(("types", types)) = matches.subcommand() else {
        return Ok(());
    };
    let given = |id: &str| types.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    // `--plugins` from WASMFLOW_PLUGINS reads the directory too.
    let local = types.get_one::<PathBuf>("plugins").is_some();
    let conflict = if local {
        ["addr", "token"].into_iter().find(|id| given(id))
    } else {
        ["db"].into_iter().find(|id| given(id))
    };
    match conflict {
        None => Ok(()),
        Some(id) => {
            let message = if local {
                format!(
                    "`--{id}` is for asking a host; with `--plugins` (or WASMFLOW_PLUGINS), \
                     `types` reads the plugins directory here"
                )
            } else {
                format!(
                    "`--{id}` goes with `--plugins DIR`; without it `types` asks the host at --addr"
                )
            };
            let mut cli = Cli::command();
            cli.build();
            let kind = clap::error::ErrorKind::ArgumentConflict;
            Err(match cli.find_subcommand_mut("types") {
                Some(types) => types.error(kind, message),
                None => cli.error(kind, message),
            })
        }
    }
}

#[derive(Args)]
struct UpgradeArgs {
    /// The workflow type whose waiting runs to move.
    workflow_type: String,
    #[command(flatten)]
    plugins: PluginsArg,
    /// The database: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "WASMFLOW_DB", default_value = "wasmflow.db", value_parser = parse_database)]
    db: Database,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches).and_then(|cli| {
        check_types_usage(&matches)?;
        Ok(cli)
    }) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `serve` logs what it does; the other commands print what matters
    // themselves and log the guests' own lines. `RUST_LOG` overrides.
    let (default_filter, log_format) = match &cli.command {
        Command::Serve(serve) => ("info", serve.log_format),
        _ => ("error,wasmflow::guest=info", telemetry::LogFormat::Text),
    };
    telemetry::init_logs(log_format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Client(request) => client::run(request),
        Command::New(args) => new::run(args),
        Command::Types(TypesArgs {
            plugins: None, api, ..
        }) => client::types(api),
        command => runtime.block_on(async {
            match command {
                Command::Serve(command) => {
                    let ServeCommand { args, token } = *command;
                    match client::check_token(token.as_deref()) {
                        Ok(()) => serve(args, token).await,
                        Err(e) => Err(e),
                    }
                }
                Command::Run(args) => run(*args).await,
                Command::Types(args) => {
                    let json = args.api.json;
                    types(args, json).await
                }
                Command::Upgrade(args) => upgrade(args).await,
                Command::Client(_) | Command::New(_) => unreachable!("handled above"),
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: ServeArgs, token: Option<String>) -> anyhow::Result<ExitCode> {
    let config = args.server_config(token)?;
    client::check_listen(&args.listen, config.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (mut builder, db) = args.host.builder()?;
    let otlp = match args.otlp_endpoint.as_deref().map(str::trim) {
        Some(endpoint) if !endpoint.is_empty() => Some(telemetry::Otlp::new(endpoint)?),
        _ => None,
    };
    if let Some(otlp) = &otlp {
        builder = builder.spans(otlp.sink());
        tracing::info!(url = %otlp.url(), "exporting OpenTelemetry spans");
    }
    let host = Arc::new(builder.start().await?);
    let plugins = host.plugins();
    tracing::info!(
        plugins = %args.host.plugins.plugins.display(),
        db = %db,
        types = plugins.types().len(),
        rejected = plugins.rejected().len(),
        "serving on http://{addr}; Ctrl-C or SIGTERM stops"
    );
    let stopping = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.cancel();
        }
    });
    wasmflow_server::serve_with(listener, host.clone(), config, stopping)
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopping: activations in progress will run again on the next start");
    match Arc::try_unwrap(host) {
        Ok(host) => host.shutdown().await,
        // A request still holds the host; dropping it stops the drivers.
        Err(host) => drop(host),
    }
    if let Some(otlp) = otlp {
        // The spans of what ended before the stop are flushed now.
        if tokio::task::spawn_blocking(move || otlp.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the span export did not stop cleanly");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn upgrade(args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    if !args.db.exists() {
        anyhow::bail!("database `{}` does not exist", args.db);
    }
    let admin = open_admin(&args.db, &args.plugins.plugins).await?;
    let report = admin.upgrade(&args.workflow_type).await?;
    println!(
        "{}: {} run(s) moved to version {}, {} left pinned",
        report.workflow_type,
        report.upgraded.len(),
        short_version(&report.version),
        report.pinned.len()
    );
    for run in &report.upgraded {
        println!("  upgraded  {run}");
    }
    for pinned in &report.pinned {
        println!(
            "  pinned    {} (version {}): {}",
            pinned.run_id,
            short_version(&pinned.version),
            pinned.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (builder, db) = args.host.builder()?;
    let host = builder.start().await?;
    for rejected in host.plugins().rejected() {
        eprintln!(
            "warning: plugin `{}` rejected: {}",
            rejected.file.display(),
            rejected.reason
        );
    }
    let events: Vec<(&str, &str)> = args
        .events
        .iter()
        .map(|e| e.split_once('=').unwrap_or((e.as_str(), "")))
        .collect();
    for (name, payload) in &events {
        host.check_event(&args.workflow_type, name, payload)?;
    }
    let mut options = StartOptions::new();
    if let Some(id) = args.id {
        options = options.workflow_id(id);
    }
    if let Some(timeout) = args.timeout {
        options = options.timeout(timeout);
    }
    let started = host
        .start(&args.workflow_type, &args.input, options)
        .await?;
    for (name, payload) in events {
        host.send_to_run(started.run_id, name, payload).await?;
    }
    let waited = wait_or_park(&host, started.run_id).await?;
    const SHOWN: usize = 10;
    let children = host.children(started.run_id).await?;
    for child in children.iter().take(SHOWN) {
        let outcome = match (&child.result, &child.error) {
            (Some(result), _) => format!(": {}", result.get()),
            (None, Some(error)) => format!(": {error}"),
            (None, None) => String::new(),
        };
        eprintln!(
            "child {} {} (run {}) {}{outcome}",
            child.workflow_type, child.workflow_id, child.run_id, child.status
        );
    }
    if children.len() > SHOWN {
        eprintln!("... and {} more children", children.len() - SHOWN);
    }
    host.shutdown().await;
    let record = match waited {
        Waited::Ended(record) => *record,
        Waited::Parked(parked) => {
            eprintln!(
                "error: run {} is waiting {} and nothing is left to send one \
                 (no timer; no live child run that could); it stays waiting in `{}`",
                started.run_id, parked, db
            );
            return Ok(ExitCode::from(PARKED));
        }
    };
    match (record.status, record.result, record.error) {
        (RunStatus::Completed, Some(result), _) => {
            println!("{}", result.get());
            Ok(ExitCode::SUCCESS)
        }
        (status, _, Some(error)) => {
            eprintln!("error: run {} {status}: {error}", started.run_id);
            Ok(ExitCode::from(1))
        }
        (status, _, None) => {
            eprintln!("error: run {} ended {status}", started.run_id);
            Ok(ExitCode::from(1))
        }
    }
}

/// `run`'s exit code when the run waits for an event nothing will send.
const PARKED: u8 = 4;

/// How `run`'s wait for its run ended.
enum Waited {
    /// The run ended.
    Ended(Box<wasmflow_host::RunRecord>),
    /// The run and every live run below it wait for an event with no timer:
    /// what it waits for.
    Parked(String),
}

/// Wait for the run to end, or until it and its live descendants are all
/// parked without a timer (seen twice, at the same sequence numbers, so
/// that nothing moved in between): nothing in this process can wake them.
/// A run that waits with a timer is waited for, saying so once.
async fn wait_or_park(
    host: &wasmflow_host::Host,
    run_id: wasmflow_host::RunId,
) -> anyhow::Result<Waited> {
    const POLL: Duration = Duration::from_millis(100);
    // The live runs' (id, seq) when last seen all waiting, and when last
    // reported as waiting for a timer.
    let mut last: Option<Vec<(wasmflow_host::RunId, u64)>> = None;
    let mut reported: Option<Vec<(wasmflow_host::RunId, u64)>> = None;
    loop {
        let record = host.wait_for(run_id, POLL).await?;
        if record.status.is_terminal() {
            return Ok(Waited::Ended(Box::new(record)));
        }
        let tree = host.tree(run_id).await?;
        let mut live = Vec::new();
        let mut stack = vec![&tree];
        while let Some(node) = stack.pop() {
            if !node.run.status.is_terminal() {
                live.push(&node.run);
            }
            stack.extend(node.children.iter());
        }
        if !live.iter().all(|r| r.status == RunStatus::Waiting) {
            last = None;
            continue;
        }
        let marks: Vec<_> = live.iter().map(|r| (r.run_id, r.seq)).collect();
        if last.as_ref() != Some(&marks) {
            last = Some(marks);
            continue;
        }
        let events = waits_for(host, &tree.run);
        let now = now_ms();
        let next_timer = live
            .iter()
            .filter_map(|r| {
                let timer = r.timer.as_ref().map(|t| t.due_ms);
                let due = timer.into_iter().chain(r.deadline_ms).min()?;
                Some((due, r.run_id))
            })
            .min();
        let Some((due, timer_run)) = next_timer else {
            let below = match live.len() - 1 {
                0 => String::new(),
                n => format!(", like the {n} live run(s) it started"),
            };
            return Ok(Waited::Parked(format!("for {events}{below}")));
        };
        if reported != last {
            eprintln!(
                "run {run_id} waits for {events}; next timer: run {timer_run} in {}",
                output::between(now, due)
            );
            reported = last.clone();
        }
    }
}

/// Milliseconds since the Unix epoch (the clock timers are set by).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The events the root run has handlers for, as a phrase.
fn waits_for(host: &wasmflow_host::Host, run: &wasmflow_host::RunRecord) -> String {
    let plugins = host.plugins();
    let names: Vec<String> = match plugins.get(&run.workflow_type) {
        Ok(entry) => entry
            .spec
            .handlers
            .iter()
            .filter(|h| h.kind == wasmflow_host::HandlerKind::Event)
            .map(|h| format!("`{}`", h.name))
            .collect(),
        Err(_) => Vec::new(),
    };
    match names.as_slice() {
        [] => "an event (its type has no event handler)".to_owned(),
        [one] => format!("event {one}"),
        many => format!("one of the events {}", many.join(", ")),
    }
}

async fn types(args: TypesArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = args.plugins.unwrap_or_default();
    // With a database, the versions live runs hold; a missing one is not
    // created just to be empty.
    let (plugins, live): (Arc<wasmflow_host::Plugins>, Vec<LiveVersion>) = if args.db.exists() {
        let admin = open_admin(&args.db, &dir).await?;
        let live = admin.live_versions().await?;
        (Arc::new(admin.plugins().clone()), live)
    } else {
        (Arc::new(inspect_plugins(&dir).await?), Vec::new())
    };
    let held = |name: &str| -> Vec<&LiveVersion> {
        live.iter().filter(|l| l.workflow_type == name).collect()
    };
    if json {
        let listing = wasmflow_server::types_view(&plugins, &live);
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        if plugins.types().is_empty() {
            println!("no workflow types in `{}`", dir.display());
        }
        for (name, entry) in plugins.types() {
            let file = entry.file.file_name().map_or_else(
                || entry.file.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            );
            println!(
                "{name}  ({file}, version {}: new runs get it)",
                short_version(&entry.component.hash)
            );
            for h in &entry.spec.handlers {
                let params: Vec<String> = h
                    .params
                    .iter()
                    .map(|p| {
                        let mark = if p.optional { "?" } else { "" };
                        format!("{}{mark}: {}", p.name, p.type_summary())
                    })
                    .collect();
                let timeout = h
                    .timeout
                    .map(|t| format!("  timeout {}", output::duration(t)))
                    .unwrap_or_default();
                println!(
                    "  {:<6} {}({}){timeout}",
                    h.kind.as_str(),
                    h.name,
                    params.join(", ")
                );
            }
            for l in held(name) {
                let current = if l.version == entry.component.hash {
                    " (current)"
                } else {
                    ""
                };
                println!(
                    "  in flight: {} run(s) on version {}{current}",
                    l.runs,
                    short_version(&l.version)
                );
            }
        }
        // Types no plugin provides any more, still held by live runs.
        for l in &live {
            if plugins.get(&l.workflow_type).is_err() {
                println!(
                    "{}  (no plugin provides it now)\n  in flight: {} run(s) on version {}",
                    l.workflow_type,
                    l.runs,
                    short_version(&l.version)
                );
            }
        }
        for r in plugins.rejected() {
            println!("rejected  {}: {}", r.file.display(), r.reason);
        }
    }
    Ok(if !plugins.rejected().is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument and option of every subcommand says what it is for
    /// (`--help`), but clap's own `--help` and `--version`.
    #[test]
    fn every_argument_has_a_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub
                    .get_about()
                    .is_none_or(|a| a.to_string().trim().is_empty())
                {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "wasmflow", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        // The walk saw the client subcommands' options.
        let status = command.find_subcommand("status").expect("status");
        assert!(status.get_arguments().any(|a| a.get_id() == "watch"));
    }

    /// `--addr`, `--token` and `--json` are options of the subcommands that
    /// use them, and only those.
    #[test]
    fn client_options_belong_to_the_subcommands_that_use_them() {
        let command = Cli::command();
        let has = |sub: &str, id: &str| {
            command
                .find_subcommand(sub)
                .is_some_and(|s| s.get_arguments().any(|a| a.get_id() == id))
        };
        for sub in [
            "start", "status", "history", "list", "types", "retry", "query",
        ] {
            for id in ["addr", "token", "json"] {
                assert!(has(sub, id), "{sub} takes --{id}");
            }
        }
        assert!(has("serve", "token"));
        for id in ["addr", "json"] {
            assert!(!has("serve", id), "serve takes no --{id}");
        }
        for sub in ["run", "upgrade"] {
            for id in ["addr", "token", "json"] {
                assert!(!has(sub, id), "{sub} takes no --{id}");
            }
        }
        assert!(
            command
                .get_arguments()
                .all(|a| a.get_id() == "help" || a.get_id() == "version")
        );
    }
}
