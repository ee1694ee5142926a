//! The benchmark: `cargo xtask bench` (which builds the guests first).
//!
//! Prints, for the `counter` example on the embedded SQLite store:
//! - durable activations per second: many `Counter` runs looping at once,
//!   every activation committed durably (group commit shares the fsyncs);
//! - the same for one run at a time (every activation waits for its fsync);
//! - the cost of one instantiate + call + drop of the `tick` step, in µs;
//! - the seed's Order/Payment: N Orders started at once, each driven to
//!   completion (start, `start_payment` event, the Payment child, its reply):
//!   workflows/s and end-to-end latency; then one Order at a time.
//!
//! Options (after `--`): `--runs R --steps N` for the concurrent figure;
//! `--orders N` for Order/Payment; `--only
//! instantiate|concurrent|sequential|order-payment|http|hosts|limits|plugins|tasks`
//! for one figure. `plugins` prints how soon a new plugin file is startable and how
//! long a host takes to start with 50 plugins, compiling and from the cache;
//! `http` runs Order/Payment through the HTTP API of a separate `wasmflow
//! serve` process, one request per Order (a start that waits for the
//! outcome), 256 in flight from an async driver: three rounds for the noise,
//! then the server pinned to one CPU and to two, each with the server's and
//! the driver's CPU per Order.
//! `limits` prints what memory caps, deadlines and epoch time-slicing cost:
//! activations/s with them on and off, in the sandbox alone and durable.
//! `hosts` runs Order/Payment (at most 3,000 at once) with one, two and
//! three hosts on one PostgreSQL database (a durable throw-away cluster,
//! started and stopped by the benchmark) beside one host on SQLite, and
//! prints per Order the database's statements, commits, WAL fsyncs and CPU.
//! `tasks` prints the cost of one recorded task (one activation running
//! many, each recorded durably before the next; alone and with a loopback
//! HTTP call) and Order/Payment with `charge_card` POSTing to the loopback
//! payments service, next to the same workload charging locally.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmflow_host::activation::{
    ActivationRequest, BoxFuture, ChildRequest, ChildResolution, HostServices, ParentIdentity,
    RunIdentity, ServiceError, StoreMap,
};
use wasmflow_host::sandbox::{SandboxConfig, WasmtimeSandbox};
use wasmflow_host::{ErrorKind, HandlerKind, Host, HostBuilder, StartOptions, WorkflowError};

/// The allocator the `wasmflow` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `tick` never calls out; these answers are never used.
struct NoServices;

impl HostServices for NoServices {
    fn resolve_child<'a>(
        &'a self,
        _parent: wasmflow_host::RunId,
        _request: &'a ChildRequest,
    ) -> BoxFuture<'a, Result<ChildResolution, ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Guest(WorkflowError::new(
                ErrorKind::NotSupported,
                "benchmark",
            )))
        })
    }

    fn check_parent_event<'a>(
        &'a self,
        _parent: &'a ParentIdentity,
        _event: &'a str,
        _payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Guest(WorkflowError::new(
                ErrorKind::NotSupported,
                "benchmark",
            )))
        })
    }

    fn record(
        &self,
        _run_id: wasmflow_host::RunId,
        _sequence: u64,
        _entries: Vec<wasmflow_host::journal::JournalEntry>,
    ) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async {
            Err(ServiceError::Guest(WorkflowError::new(
                ErrorKind::NotSupported,
                "benchmark",
            )))
        })
    }
}

fn main() -> anyhow::Result<()> {
    let mut runs = 400u64;
    let mut steps = 250u64;
    let mut only: Option<String> = None;
    let mut orders = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--steps" => steps = args.next().and_then(|v| v.parse().ok()).unwrap_or(steps),
            "--only" => only = args.next(),
            "--orders" => orders = args.next().and_then(|v| v.parse().ok()).unwrap_or(orders),
            _ => {} // cargo bench passes `--bench`
        }
    }
    let plugins = std::env::var_os("WASMFLOW_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../target/plugins"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("wasmflow benchmark (counter example, {} cores)", num_cpus());
        let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
        if wanted("instantiate") {
            instantiate_call_drop(&plugins, true).await?;
        }
        if wanted("concurrent") {
            durable_activations(&plugins, runs, steps, true).await?;
        }
        if wanted("sequential") {
            durable_activations(&plugins, 1, 2000, true).await?;
        }
        if wanted("limits") {
            // Rounds alternate so drift on a noisy machine hits both alike.
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                on.push(instantiate_call_drop(&plugins, true).await?);
                off.push(instantiate_call_drop(&plugins, false).await?);
            }
            let (on, off) = (median(on), median(off));
            println!(
                "limits overhead, sandbox only (median of 3 rounds): {:.0} activations/s with limits vs {:.0} without = {:.1}%",
                on,
                off,
                (off / on - 1.0) * 100.0
            );
            let on = durable_activations(&plugins, runs, steps, true).await?;
            let off = durable_activations(&plugins, runs, steps, false).await?;
            println!(
                "limits overhead, durable: {:.0} activations/s with limits vs {:.0} without = {:.1}%",
                on,
                off,
                (off / on - 1.0) * 100.0
            );
        }
        if wanted("order-payment") {
            order_payment(&plugins, orders).await?;
        }
        if wanted("http") {
            // Noise: three rounds, then the server pinned to one and to two
            // CPUs (the driver shares them: see its CPU per Order).
            let mut rounds = Vec::new();
            for _ in 0..3 {
                rounds.push(order_payment_http(orders, 256, None).await?);
            }
            let spread = rounds.iter().cloned().fold(f64::MIN, f64::max)
                - rounds.iter().cloned().fold(f64::MAX, f64::min);
            println!(
                "order/payment over HTTP: median {:.0} workflows/s of 3 rounds, spread {spread:.0} ({:.0}%)",
                median(rounds.clone()),
                spread / median(rounds) * 100.0
            );
            if num_cpus() >= 2 {
                order_payment_http(orders, 256, Some("0")).await?;
                order_payment_http(orders, 256, Some("0,1")).await?;
            }
        }
        if wanted("hosts") {
            several_hosts(&plugins, orders.min(3_000)).await?;
        }
        if wanted("plugins") {
            new_plugin_latency(&plugins).await?;
            startup_with_plugins(&plugins, 50).await?;
        }
        if wanted("tasks") {
            let test_plugins = std::env::var_os("WASMFLOW_TEST_PLUGINS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("../target/test-plugins"));
            recorded_tasks(&test_plugins).await?;
            order_payment_with_http_task(&plugins, orders.min(2_000)).await?;
        }
        Ok(())
    })
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One activation of `tick` on a warm pool, sequentially, timed one by one;
/// returns activations per second. `limits`: memory caps, deadlines and
/// epoch time-slicing on or off.
async fn instantiate_call_drop(plugins: &std::path::Path, limits: bool) -> anyhow::Result<f64> {
    let config = SandboxConfig {
        enforce_limits: limits,
        ..SandboxConfig::default()
    };
    let sandbox = WasmtimeSandbox::new(config)?;
    let bytes: Arc<[u8]> = std::fs::read(plugins.join("counter.wasm"))?.into();
    let component = sandbox.load(bytes, None).await?;
    let mut store = StoreMap::new();
    store.insert("n".into(), serde_json::from_str("1000000000")?);
    store.insert("count".into(), serde_json::from_str("41")?);
    let store = Arc::new(store);
    let run = Arc::new(RunIdentity {
        workflow_type: "Counter".into(),
        workflow_id: "bench".into(),
        run_id: wasmflow_host::RunId::new(),
        version: component.hash.clone(),
        parent: None,
    });
    let spec = component
        .workflow_type("Counter")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("counter.wasm does not provide Counter"))?;
    let services: Arc<dyn HostServices> = Arc::new(NoServices);
    let request = || ActivationRequest {
        run: run.clone(),
        spec: spec.clone(),
        services: services.clone(),
        kind: HandlerKind::Step,
        handler: "tick".into(),
        input: serde_json::from_str("null").expect("null"),
        sequence: 1,
        store: store.clone(),
        store_bytes: 0,
        timeout: Duration::from_secs(10),
        journal: Arc::default(),
        grants: Arc::default(),
    };
    for _ in 0..2_000 {
        let outcome = component.activate(request()).await;
        outcome.result.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let n: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut samples = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let start = Instant::now();
        let outcome = component.activate(request()).await;
        samples.push(start.elapsed());
        drop(outcome);
    }
    let rate = n as f64 / all.elapsed().as_secs_f64();
    samples.sort();
    let median = samples[n / 2];
    let p99 = samples[n * 99 / 100];
    let mean = samples.iter().sum::<Duration>() / n as u32;
    println!(
        "instantiate+call+drop (tick: 2 store reads, 1 write), limits {}: median {:.1} µs, p99 {:.1} µs, mean {:.1} µs (n={n})",
        if limits { "on" } else { "off" },
        micros(median),
        micros(p99),
        micros(mean)
    );
    Ok(rate)
}

/// `runs` Counter runs of `steps` steps each, all started at once; returns
/// activations per second.
async fn durable_activations(
    plugins: &std::path::Path,
    runs: u64,
    steps: u64,
    limits: bool,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut builder = HostBuilder::new(dir.path().join("bench.db")).plugins(plugins);
    if !limits {
        builder = builder.without_limits_for_benchmarks();
    }
    let host = builder.start().await?;
    let input = serde_json::json!({ "n": steps }).to_string();
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..runs {
        ids.push(
            host.start("Counter", &input, StartOptions::new())
                .await?
                .run_id,
        );
    }
    for id in ids {
        let done = host.wait(id).await?;
        anyhow::ensure!(done.result.is_some(), "run {id} failed: {:?}", done.error);
    }
    let elapsed = start.elapsed();
    // start + steps + 1 ticks (the last sees count == n and completes).
    let activations = runs * (steps + 2);
    let rate = activations as f64 / elapsed.as_secs_f64();
    println!(
        "durable activations, limits {}: {runs} run(s) x {steps} steps = {activations} activations in {:.2} s = {rate:.0} activations/s ({:.1} µs each)",
        if limits { "on" } else { "off" },
        elapsed.as_secs_f64(),
        micros(elapsed) / activations as f64,
    );
    host.shutdown().await;
    Ok(rate)
}

/// The seed's example, `orders` at once against the durable store, then 200
/// one at a time.
async fn order_payment(plugins: &std::path::Path, orders: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Arc::new(
        HostBuilder::new(dir.path().join("orders.db"))
            .plugins(plugins)
            .start()
            .await?,
    );
    orders_at_once(&host, orders, None, "order/payment").await?;

    let sequential = 200;
    let mut latencies = Vec::with_capacity(sequential);
    for i in 0..sequential {
        latencies.push(one_order(&host, orders + i).await?);
    }
    latencies.sort();
    println!(
        "order/payment, one at a time (n={sequential}): latency p50 {:.2} ms, p99 {:.2} ms",
        millis(latencies[sequential / 2]),
        millis(latencies[sequential * 99 / 100]),
    );
    if let Ok(host) = Arc::try_unwrap(host) {
        host.shutdown().await;
    }
    Ok(())
}

/// Order/Payment through the HTTP API of a `wasmflow serve` process of its
/// own (this build's binary, on a fresh SQLite file, fsync on), one request
/// per Order: a start of `InstantOrder` (tests/guests/instant-order: the
/// parent starts its child from its start handler) that waits for the
/// outcome. The driver is async (hyper, one connection per request in
/// flight) in this process; it prints its own CPU beside the server's so a
/// reader sees who was the limit. `cpus`: the server pinned to those CPUs
/// with `taskset` (`None`: not pinned).
async fn order_payment_http(
    orders: usize,
    in_flight: usize,
    cpus: Option<&str>,
) -> anyhow::Result<f64> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;

    let test_plugins = std::env::var_os("WASMFLOW_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../target/test-plugins"));
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::copy(
        test_plugins.join("instant-order.wasm"),
        plugins.join("instant-order.wasm"),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", cpus]).arg(env!("CARGO_BIN_EXE_wasmflow"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_wasmflow")),
    };
    command
        .args(["serve", "--listen", &addr, "--plugins"])
        .arg(&plugins)
        .arg("--db")
        .arg(dir.path().join("serve.db"))
        .arg("--max-inbox")
        .arg("100000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut serve = KillOnDrop(command.spawn()?);
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(in_flight)
            .build_http();
    let types_url: hyper::Uri = format!("http://{addr}/v1/types").parse()?;
    let ready = Instant::now();
    loop {
        let request = hyper::Request::get(types_url.clone()).body(Full::default())?;
        if let Ok(response) = client.request(request).await {
            let body = response.into_body().collect().await?.to_bytes();
            if String::from_utf8_lossy(&body).contains("InstantOrder") {
                break;
            }
        }
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(60),
            "wasmflow serve did not start"
        );
        if let Some(status) = serve.0.try_wait()? {
            anyhow::bail!("wasmflow serve exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_url: hyper::Uri = format!("http://{addr}/v1/workflows").parse()?;
    let one = move |i: usize| {
        let client = client.clone();
        let url = start_url.clone();
        async move {
            let id = format!("o{i}");
            let body = serde_json::json!({"type": "InstantOrder", "id": id,
                "input": {"order_id": id, "amount": 10.0}, "wait_ms": 60000});
            let request = hyper::Request::post(url)
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body.to_string())))?;
            let began = Instant::now();
            let response = client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            anyhow::ensure!(
                status == 201 && answer["outcome"]["status"] == "completed",
                "order {id}: {status} {answer}"
            );
            anyhow::Ok(began.elapsed())
        }
    };
    // Warm up: the component's instances, the connections.
    for i in 0..in_flight.min(orders) {
        one(orders + i).await?;
    }
    let server_cpu = || process_cpu(&format!("/proc/{}/stat", serve.0.id()));
    let (server_before, driver_before) = (server_cpu()?, process_cpu("/proc/self/stat")?);
    let began = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let next = next.clone();
        let one = one.clone();
        lanes.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= orders {
                    return anyhow::Ok(latencies);
                }
                latencies.push(one(i).await?);
            }
        });
    }
    let mut latencies = Vec::with_capacity(orders);
    while let Some(lane) = lanes.join_next().await {
        latencies.extend(lane??);
    }
    let elapsed = began.elapsed();
    let (server_cpu, driver_cpu) = (
        server_cpu()? - server_before,
        process_cpu("/proc/self/stat")? - driver_before,
    );
    latencies.sort();
    let rate = orders as f64 / elapsed.as_secs_f64();
    let pinned = cpus.map_or_else(
        || "not pinned".to_owned(),
        |c| format!("server on CPUs {c}"),
    );
    println!(
        "order/payment over HTTP to a separate `wasmflow serve` ({pinned}), one request per Order, \
         {orders} with {in_flight} in flight: {rate:.0} workflows/s ({:.2} s); latency p50 {:.1} ms, \
         p99 {:.1} ms; CPU per Order: server {:.0} µs, driver {:.0} µs",
        elapsed.as_secs_f64(),
        millis(latencies[latencies.len() / 2]),
        millis(latencies[latencies.len() * 99 / 100]),
        server_cpu.as_secs_f64() * 1e6 / orders as f64,
        driver_cpu.as_secs_f64() * 1e6 / orders as f64,
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status();
    let _ = serve.0.wait();
    Ok(rate)
}

/// A child process killed when dropped (a failed benchmark leaves no
/// server behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The user + system CPU time of a process, from its `/proc/PID/stat`.
fn process_cpu(stat: &str) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(stat)?;
    // After the command name in parentheses: state is field 3, utime 14,
    // stime 15 (1-based).
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("{stat}: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("{stat}: too few fields"))?
            .parse()?)
    };
    // Fields from state (3) on: utime is the 12th of them, stime the 13th.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, as `getconf` reports it (100 on Linux).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100)
}

/// `orders` Orders started at once on `host` (charging at `payments_url`
/// when given), each driven to completion; prints workflows/s and latency
/// under `label`, returns workflows/s.
async fn orders_at_once(
    host: &Arc<Host>,
    orders: usize,
    payments_url: Option<&str>,
    label: &str,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(orders);
    for i in 0..orders {
        let host = host.clone();
        let url = payments_url.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            one_order_at(&host, i, url.as_deref()).await
        }));
    }
    let mut latencies = Vec::with_capacity(orders);
    for task in tasks {
        latencies.push(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let rate = orders as f64 / elapsed.as_secs_f64();
    println!(
        "{label}, {orders} at once: {rate:.0} workflows/s ({:.2} s); end-to-end latency p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        millis(latencies[orders / 2]),
        millis(latencies[orders * 99 / 100]),
    );
    Ok(rate)
}

/// Order/Payment on PostgreSQL with one, two and three hosts sharing the
/// database (in this process, each with its own pool, claims and instance
/// pool; orders spread over them), beside one host on SQLite: workflows/s,
/// latency, and per Order the database's statements (round trips),
/// commits, WAL flushes and CPU. The server is a durable throw-away
/// cluster (every commit flushed to disk), like a production one.
async fn several_hosts(plugins: &std::path::Path, orders: usize) -> anyhow::Result<()> {
    println!(
        "several hosts ({orders} Order/Payment at once, {} cores):",
        num_cpus()
    );
    let dir = tempfile::tempdir()?;
    let sqlite = HostBuilder::new(dir.path().join("hosts.db"))
        .plugins(plugins)
        .start()
        .await?;
    let sqlite = vec![Arc::new(sqlite)];
    let (rate, p50, p99) = spread_orders(&sqlite, orders).await?;
    println!(
        "  sqlite,     1 host:  {rate:>5.0} workflows/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    for host in sqlite {
        if let Ok(host) = Arc::try_unwrap(host) {
            host.shutdown().await;
        }
    }

    let cluster = tokio::task::spawn_blocking(xtask::postgres::Cluster::start_durable).await??;
    for n in 1..=3 {
        let url = {
            let base = cluster.url().to_owned();
            tokio::task::spawn_blocking(move || xtask::postgres::schema_in(&base)).await??
        };
        let mut hosts = Vec::new();
        for i in 0..n {
            let host = HostBuilder::new(url.as_str())
                .plugins(plugins)
                .cache_dir(dir.path().join(format!("cache-{i}")))
                .start()
                .await?;
            hosts.push(Arc::new(host));
        }
        let stats = || {
            let cluster = &cluster;
            move || cluster.stats()
        };
        let before = tokio::task::block_in_place(stats())?;
        let own_before = own_cpu_seconds();
        let wall = Instant::now();
        let (rate, p50, p99) = spread_orders(&hosts, orders).await?;
        let wall = wall.elapsed().as_secs_f64();
        let own = own_cpu_seconds() - own_before;
        let after = tokio::task::block_in_place(stats())?;
        let per = |a: u64, b: u64| (a - b) as f64 / orders as f64;
        println!(
            "  postgres,   {n} host{}: {rate:>5.0} workflows/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms; \
             per Order {:.0} statements (round trips), {:.1} commits, {:.2} WAL fsyncs; \
             CPU over {wall:.1} s: hosts {own:.1} s, database {:.1} s",
            if n == 1 { " " } else { "s" },
            per(after.statements, before.statements),
            per(after.commits, before.commits),
            per(after.wal_syncs, before.wal_syncs),
            after.cpu_seconds - before.cpu_seconds,
        );
        for host in hosts {
            if let Ok(host) = Arc::try_unwrap(host) {
                host.shutdown().await;
            }
        }
    }
    Ok(())
}

/// `orders` Orders at once, the i-th started, sent its event and awaited
/// on host `i % hosts.len()`: workflows/s and p50/p99 latency in ms.
async fn spread_orders(hosts: &[Arc<Host>], orders: usize) -> anyhow::Result<(f64, f64, f64)> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(orders);
    for i in 0..orders {
        let host = hosts[i % hosts.len()].clone();
        tasks.push(tokio::spawn(async move { one_order(&host, i).await }));
    }
    let mut latencies = Vec::with_capacity(orders);
    for task in tasks {
        latencies.push(task.await??);
    }
    let rate = orders as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    Ok((
        rate,
        millis(latencies[orders / 2]),
        millis(latencies[orders * 99 / 100]),
    ))
}

/// CPU seconds this process used so far (`/proc/self/stat`).
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) as f64 / 100.0
}

/// The loopback payments service, on the benchmark's runtime.
async fn payments_service() -> anyhow::Result<payments_service::Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    payments_service::spawn(
        listener,
        payments_service::Options {
            token: Some("bench".into()),
            fail_first: 0,
        },
    )
}

/// A host config granting `plugin` the payments service at `url`, with its
/// token as the `payments_token` secret.
fn payments_grant(plugin: &str, url: &str) -> anyhow::Result<wasmflow_host::Config> {
    let text = format!(
        "[secrets]\npayments_token = {{ env = \"T\" }}\n\
         [[grants]]\nplugin = \"{plugin}\"\n\
         [[grants.http]]\nurl = \"{url}\"\nsecrets = [\"payments_token\"]\n"
    );
    let env = std::collections::HashMap::from([("T".to_owned(), "bench".to_owned())]);
    Ok(wasmflow_host::Config::parse(
        &text,
        std::path::Path::new("bench.toml"),
        &env,
    )?)
}

/// The cost of one recorded task: `TaskLoop` runs (the `tasks` test guest)
/// with `n` tasks in their start activation against runs with none, one
/// run at a time (each record waits for its own fsync) and many at once
/// (group commit shares the fsyncs); then with a loopback HTTP POST (a
/// charge to the payments service) in each task.
async fn recorded_tasks(test_plugins: &std::path::Path) -> anyhow::Result<()> {
    let payments = payments_service().await?;
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::copy(test_plugins.join("tasks.wasm"), plugins.join("tasks.wasm"))?;
    let host = Arc::new(
        HostBuilder::new(dir.path().join("tasks.db"))
            .plugins(&plugins)
            .config(payments_grant("tasks.wasm", &payments.url())?)
            .start()
            .await?,
    );
    let run = |n: u32, url: Option<String>| {
        let host = host.clone();
        async move {
            let input = serde_json::json!({"n": n, "url": url});
            let began = Instant::now();
            let started = host
                .start("TaskLoop", &input.to_string(), StartOptions::new())
                .await?;
            let done = host.wait(started.run_id).await?;
            anyhow::ensure!(done.result.is_some(), "TaskLoop failed: {:?}", done.error);
            anyhow::Ok(began.elapsed())
        }
    };
    let charges_url = payments.url();
    let per_task = |with: Vec<Duration>, without: Vec<Duration>, n: u32| {
        let with = median(with.iter().map(|d| micros(*d)).collect());
        let without = median(without.iter().map(|d| micros(*d)).collect());
        (with - without) / f64::from(n)
    };
    for _ in 0..3 {
        run(0, None).await?; // warm up
    }
    let n = 200;
    let (mut with, mut without, mut http) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        without.push(run(0, None).await?);
        with.push(run(n, None).await?);
        http.push(run(n, Some(charges_url.clone())).await?);
    }
    let recorded = per_task(with, without.clone(), n);
    let over_http = per_task(http, without, n);
    println!(
        "recorded task, one run at a time ({n} tasks per activation, median of 5): {recorded:.0} µs per task; \
         with a loopback HTTP POST (a charge) in the task: {over_http:.0} µs per task"
    );
    let runs = 100;
    let began = Instant::now();
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        all.push(tokio::spawn(run(n, None)));
    }
    for r in all {
        r.await??;
    }
    let elapsed = began.elapsed();
    let tasks = (runs as u32 * n) as f64;
    println!(
        "recorded tasks, {runs} runs at once x {n} tasks: {:.0} tasks/s = {:.1} µs per task (group commit)",
        tasks / elapsed.as_secs_f64(),
        micros(elapsed) / tasks,
    );
    if let Ok(host) = Arc::try_unwrap(host) {
        host.shutdown().await;
    }
    Ok(())
}

/// Order/Payment with `charge_card` charging locally and with it POSTing to
/// the loopback payments service, on fresh databases, side by side.
async fn order_payment_with_http_task(
    plugins: &std::path::Path,
    orders: usize,
) -> anyhow::Result<()> {
    let payments = payments_service().await?;
    let url = payments.url();
    let mut rates = Vec::new();
    for (label, payments_url) in [
        ("order/payment, charge_card local", None),
        ("order/payment, charge_card over HTTP", Some(url.as_str())),
    ] {
        let dir = tempfile::tempdir()?;
        let host = Arc::new(
            HostBuilder::new(dir.path().join("orders.db"))
                .plugins(plugins)
                .config(payments_grant("order-payment.wasm", &url)?)
                .start()
                .await?,
        );
        rates.push(orders_at_once(&host, orders, payments_url, label).await?);
        if let Ok(host) = Arc::try_unwrap(host) {
            host.shutdown().await;
        }
    }
    let stats = payments.stats();
    println!(
        "  the payments service applied {} charges for {} requests; HTTP costs {:.0}% of the throughput",
        stats.charges,
        stats.requests,
        (1.0 - rates[1] / rates[0]) * 100.0
    );
    Ok(())
}

/// Start an Order, send `start_payment`, wait for it to complete.
async fn one_order(host: &Host, i: usize) -> anyhow::Result<Duration> {
    one_order_at(host, i, None).await
}

/// [`one_order`], charging at `payments_url` when given.
async fn one_order_at(
    host: &Host,
    i: usize,
    payments_url: Option<&str>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let input = serde_json::json!({"order_id": format!("o{i}"), "amount": 10.0 + i as f64,
        "payments_url": payments_url});
    let run = host
        .start("Order", &input.to_string(), StartOptions::new())
        .await?;
    host.send_to_run(run.run_id, "start_payment", "").await?;
    let done = host.wait(run.run_id).await?;
    anyhow::ensure!(done.result.is_some(), "order {i} failed: {:?}", done.error);
    Ok(start.elapsed())
}

/// From a new `.wasm` landing in a watched directory to its type being
/// startable: not yet compiled, and compiled before (cached).
async fn new_plugin_latency(plugins: &std::path::Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let watched = dir.path().join("plugins");
    std::fs::create_dir(&watched)?;
    let host = HostBuilder::new(dir.path().join("p.db"))
        .plugins(&watched)
        .start()
        .await?;
    let mut figures = Vec::new();
    for (round, file) in ["hello.wasm", "hello-again.wasm"].into_iter().enumerate() {
        if round == 1 {
            std::fs::remove_file(watched.join("hello.wasm"))?;
            while host.plugins().get("Greeter").is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let tmp = dir.path().join("incoming.wasm");
        std::fs::copy(plugins.join("hello.wasm"), &tmp)?;
        let landed = Instant::now();
        std::fs::rename(&tmp, watched.join(file))?;
        while host.plugins().get("Greeter").is_err() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        figures.push(landed.elapsed());
    }
    println!(
        "new plugin file to startable type: {:.0} ms when compiled anew, {:.0} ms from the cache",
        millis(figures[0]),
        millis(figures[1])
    );
    host.shutdown().await;
    Ok(())
}

/// Host start-up with `count` plugins: the first start compiles them, the
/// second finds them in the compilation cache. The plugins are copies of
/// `hello.wasm` whose workflow type is renamed in place (`Greeter` ->
/// `G000001`, ...), so each is a distinct component with a type of its own.
async fn startup_with_plugins(plugins: &std::path::Path, count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let watched = dir.path().join("plugins");
    std::fs::create_dir(&watched)?;
    let original = std::fs::read(plugins.join("hello.wasm"))?;
    for i in 0..count {
        let name = format!("G{i:06}");
        let mut bytes = original.clone();
        let mut at = 0;
        while let Some(pos) = bytes[at..].windows(7).position(|w| w == b"Greeter") {
            bytes[at + pos..at + pos + 7].copy_from_slice(name.as_bytes());
            at += pos + 7;
        }
        std::fs::write(watched.join(format!("{name}.wasm")), bytes)?;
    }
    let mut figures = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let host = HostBuilder::new(dir.path().join("s.db"))
            .plugins(&watched)
            .start()
            .await?;
        figures.push(started.elapsed());
        anyhow::ensure!(
            host.plugins().types().len() == count,
            "{} of {count} plugins loaded: {:?}",
            host.plugins().types().len(),
            host.plugins().rejected()
        );
        host.shutdown().await;
    }
    println!(
        "host start-up with {count} plugins: {:.0} ms compiling them, {:.0} ms from the cache",
        millis(figures[0]),
        millis(figures[1])
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
