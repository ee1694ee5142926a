//! From code to running over the API: `wasmflow deploy` / `POST /v1/plugins`
//! (the plugins directory's checks and reasons, nothing stored when
//! rejected, startable at once, kept across a restart, on every host of a
//! shared database), `wasmflow plugins`, `start --version` pinning a run,
//! and the version a pinned parent's children get. Against the real
//! `wasmflow serve` with real components.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::testbed::{Backend, TestBed, backend, component};

const LIMIT: Duration = Duration::from_secs(60);

/// A `wasmflow serve` on a test bed, its log kept; killed when dropped.
struct Serve {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(bed: &TestBed, flags: &[&str]) -> Serve {
        Self::start_on(bed, &bed.plugins(), flags)
    }

    /// A host on `bed`'s database with the plugins directory `plugins`.
    fn start_on(bed: &TestBed, plugins: &Path, flags: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(plugins)
            .args(bed.host_db_args())
            .args(flags)
            .current_dir(bed.path())
            .env_remove("RUST_LOG")
            .env_remove("WASMFLOW_TOKEN")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmflow serve");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let addr = loop {
            let found = log.lock().unwrap().iter().find_map(|l| {
                l.split("serving on ")
                    .nth(1)
                    .map(|rest| rest.split(';').next().unwrap_or(rest).trim().to_owned())
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                started.elapsed() < LIMIT,
                "serve never served: {:#?}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Serve { child, addr, log }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wasmflow"))
            .args(args)
            .args(["--addr", &self.addr])
            .env_remove("WASMFLOW_TOKEN")
            .env_remove("WASMFLOW_PLUGINS")
            .output()
            .expect("run the client")
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut response = response.expect("the host answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        Self::answer(Self::agent().get(format!("{}{path}", self.addr)).call())
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::answer(
            Self::agent()
                .post(format!("{}{path}", self.addr))
                .send_json(body),
        )
    }

    /// `POST /v1/plugins?name=NAME` with `bytes` as `content_type`.
    fn upload(&self, name: &str, bytes: &[u8], content_type: &str) -> (u16, Value) {
        Self::answer(
            Self::agent()
                .post(format!("{}/v1/plugins?name={name}", self.addr))
                .header("Content-Type", content_type)
                .send(bytes),
        )
    }

    fn deploy(&self, name: &str, bytes: &[u8]) -> (u16, Value) {
        self.upload(name, bytes, "application/wasm")
    }

    /// Start `workflow_type` (optionally pinned) and wait for its result.
    fn run(&self, body: Value) -> Value {
        let (status, started) = self.post("/v1/workflows", body.clone());
        assert_eq!(status, 201, "{body}: {started}");
        let id = started["workflow_id"].as_str().unwrap().to_owned();
        let (status, result) = self.get(&format!("/v1/workflows/{id}/result?wait_ms=30000"));
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["status"], "completed", "{result}");
        let (_, run) = self.get(&format!("/v1/workflows/{id}"));
        json!({"result": result["result"], "version": run["version"], "id": id})
    }

    /// Wait for a log line containing every one of `needles`.
    fn logged(&self, needles: &[&str]) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < LIMIT,
                "{needles:?} never logged: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(component(name)).expect("a built component")
}

/// The same component with a custom section appended: another version (a
/// different hash) that behaves exactly like it.
fn variant(name: &str, tag: &str) -> Vec<u8> {
    let mut wasm = bytes(name);
    let section_name = b"wasmflow-test";
    let payload = tag.as_bytes();
    let mut content = vec![section_name.len() as u8];
    content.extend_from_slice(section_name);
    content.extend_from_slice(payload);
    wasm.push(0); // a custom section
    let mut len = content.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            wasm.push(byte);
            break;
        }
        wasm.push(byte | 0x80);
    }
    wasm.extend_from_slice(&content);
    wasm
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    files
}

fn plugin<'a>(listing: &'a Value, file: &str) -> &'a Value {
    listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == file)
        .unwrap_or_else(|| panic!("no {file} in {listing}"))
}

#[test]
fn a_deployed_component_is_startable_at_once_and_survives_a_restart() {
    let bed = TestBed::new(&["counter"]);
    let host = Serve::start(&bed, &[]);
    let (status, types) = host.get("/v1/types");
    assert_eq!(status, 200);
    assert!(!types.to_string().contains("Greeter"), "{types}");

    let hello = component("hello");
    let out = host.cli(&["deploy", hello.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("deployed hello.wasm version ") && said.contains("new runs of Greeter"),
        "{said}"
    );
    // Startable as soon as the deploy answered: no waiting for a scan.
    let done = host.run(json!({"type": "Greeter", "input": {"name": "API"}}));
    assert_eq!(done["result"], "Hello, API");
    assert!(bed.plugins().join("hello.wasm").exists());

    let out = host.cli(&["plugins", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deployed = plugin(&listing, "hello.wasm").clone();
    assert_eq!(deployed["origin"], "api");
    assert_eq!(deployed["types"], json!(["Greeter"]));
    assert_eq!(deployed["version"], done["version"]);
    assert_eq!(plugin(&listing, "counter.wasm")["origin"], "directory");
    let table = text(&host.cli(&["plugins"]).stdout);
    assert!(
        table.contains("hello.wasm") && table.contains(" api ") && table.contains("directory"),
        "{table}"
    );

    // The same bytes again change nothing.
    let (status, again) = host.deploy("hello.wasm", &bytes("hello"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["changed"], false);

    host.stop();
    let host = Serve::start(&bed, &[]);
    let (_, listing) = host.get("/v1/plugins");
    let after = plugin(&listing, "hello.wasm");
    assert_eq!(after["origin"], "api", "{listing}");
    assert_eq!(after["since_ms"], deployed["since_ms"]);
    assert_eq!(after["version"], deployed["version"]);
    let done = host.run(json!({"type": "Greeter", "input": {"name": "again"}}));
    assert_eq!(done["result"], "Hello, again");
}

#[test]
fn a_rejected_upload_stores_nothing_and_says_what_the_directory_says() {
    let bed = TestBed::new(&[]);
    std::fs::copy(
        component("versioned-a"),
        bed.plugins().join("versioned.wasm"),
    )
    .unwrap();
    let host = Serve::start(&bed, &[]);
    let before = files(&bed.plugins());

    // Not a component at all.
    let junk = b"this is not a component".to_vec();
    let (status, refused) = host.deploy("junk.wasm", &junk);
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["kind"], "PluginRejected");
    let upload_reason = refused["message"].as_str().unwrap().to_owned();
    assert!(upload_reason.contains("`junk.wasm`"), "{upload_reason}");
    // A type another file provides.
    let (status, refused) = host.deploy("other.wasm", &bytes("versioned-b"));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["kind"], "PluginRejected");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("workflow type `Versioned` is already provided by"),
        "{message}"
    );
    // Not a plugin file name.
    for name in ["..%2Fescape.wasm", "notes.txt", ".hidden.wasm"] {
        let (status, refused) = host.deploy(name, &bytes("hello"));
        assert_eq!(status, 400, "{name}: {refused}");
        assert_eq!(refused["kind"], "PluginRejected", "{name}");
    }
    // Not sent as a component, or without a name.
    let (status, refused) = host.upload("hello.wasm", &bytes("hello"), "application/json");
    assert_eq!(status, 415, "{refused}");
    assert_eq!(refused["kind"], "UnsupportedMediaType");
    let (status, refused) = host.post("/v1/plugins", json!({}));
    assert_eq!(status, 415, "{refused}");

    // Nothing was written, nothing changed.
    assert_eq!(files(&bed.plugins()), before);
    let (_, listing) = host.get("/v1/plugins");
    assert_eq!(listing["plugins"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["rejected"], json!([]), "{listing}");

    // The same content dropped into the directory: the same reason.
    std::fs::write(bed.plugins().join("junk.wasm"), &junk).unwrap();
    let started = Instant::now();
    let dir_reason = loop {
        let (_, types) = host.get("/v1/types");
        if let Some(r) = types["rejected"].as_array().unwrap().first() {
            break r["reason"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        upload_reason,
        format!("plugin file `junk.wasm` was rejected: {dir_reason}")
    );
}

#[test]
fn a_component_over_the_plugin_limit_is_refused() {
    let bed = TestBed::new(&[]);
    let host = Serve::start(&bed, &["--max-plugin-bytes", "4096"]);
    // Refused from the declared length, before the body is read (so the
    // head alone is sent: a client still sending would see the connection
    // close under it).
    let mut stream = std::net::TcpStream::connect(host.addr.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let size = bytes("hello").len();
    write!(
        stream,
        "POST /v1/plugins?name=hello.wasm HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/wasm\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("PayloadTooLarge") && answer.contains("`max_plugin_bytes`"),
        "{answer}"
    );
    assert!(files(&bed.plugins()).is_empty());
    host.stop();
    // The default takes a component larger than the JSON routes' limit.
    let host = Serve::start(&bed, &["--max-request-bytes", "4096"]);
    let (status, deployed) = host.deploy("hello.wasm", &bytes("hello"));
    assert_eq!(status, 201, "{deployed}");
}

#[test]
fn start_version_pins_a_run_and_types_says_what_new_runs_get() {
    let bed = TestBed::new(&["hello"]);
    let host = Serve::start(&bed, &[]);
    let (status, a) = host.deploy("versioned.wasm", &bytes("versioned-a"));
    assert_eq!(status, 201, "{a}");
    let v1 = a["version"].as_str().unwrap().to_owned();
    let (status, b) = host.deploy("versioned.wasm", &bytes("versioned-b"));
    assert_eq!(status, 201, "{b}");
    let v2 = b["version"].as_str().unwrap().to_owned();
    assert_eq!(b["previous_version"], v1.as_str());
    host.logged(&[
        &format!(
            "plugin versioned.wasm version {} is live for types Versioned",
            &v2[..12]
        ),
        &format!("replacing version {}", &v1[..12]),
    ]);

    // New runs get the new version; `types` says so.
    let (_, types) = host.get("/v1/types");
    let versioned = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Versioned")
        .unwrap();
    assert_eq!(versioned["version"], v2.as_str());
    let listing = text(&host.cli(&["types"]).stdout);
    assert!(
        listing.contains("new runs get") && listing.contains(&v2[..12]),
        "{listing}"
    );
    let new = host.run(json!({"type": "Versioned", "input": {"wait_ms": 1}}));
    assert_eq!(
        (new["result"].as_str(), new["version"].as_str()),
        (Some("b->b"), Some(v2.as_str()))
    );

    // Pinned by a prefix (the CLI) and by the full hash (the API).
    let out = host.cli(&[
        "start",
        "Versioned",
        "--id",
        "pinned",
        "--input",
        r#"{"wait_ms": 1}"#,
        "--version",
        &v1[..8],
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("a->a"), "{}", text(&out.stdout));
    let (_, run) = host.get("/v1/workflows/pinned");
    assert_eq!(run["version"], v1.as_str());
    let full = host.run(json!({"type": "Versioned", "input": {"wait_ms": 1}, "version": v1}));
    assert_eq!(full["result"], "a->a");

    // What cannot be pinned is named.
    let hello_version = {
        let (_, listing) = host.get("/v1/plugins");
        plugin(&listing, "hello.wasm")["version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (version, status, kind) in [
        ("0000000000", 404, "UnknownVersion"),
        ("xyz1", 400, "InvalidPayload"),
        ("ab", 400, "InvalidPayload"),
        (hello_version.as_str(), 400, "VersionWithoutType"),
    ] {
        let (got, refused) = host.post(
            "/v1/workflows",
            json!({"type": "Versioned", "input": {"wait_ms": 1}, "version": version}),
        );
        assert_eq!(
            (got, refused["kind"].as_str()),
            (status, Some(kind)),
            "{version}: {refused}"
        );
    }
    let out = host.cli(&["start", "Versioned", "--version", "0000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("UnknownVersion"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_pinned_parent_starts_its_own_components_children_on_its_version() {
    let bed = TestBed::new(&["hello"]);
    let host = Serve::start(&bed, &[]);
    let (status, old) = host.deploy("family.wasm", &variant("family", "old"));
    assert_eq!(status, 201, "{old}");
    let (status, new) = host.deploy("family.wasm", &variant("family", "new"));
    assert_eq!(status, 201, "{new}");
    let (old, new) = (
        old["version"].as_str().unwrap().to_owned(),
        new["version"].as_str().unwrap().to_owned(),
    );
    assert_ne!(old, new);
    let (_, listing) = host.get("/v1/plugins");
    let greeter = plugin(&listing, "hello.wasm")["version"].clone();

    let spawner = |id: &str, version: Option<&str>| {
        let mut body = json!({"type": "Spawner", "id": id, "input": {
            "children": [
                {"type": "Echo", "id": format!("{id}-echo"), "input": {"x": 1}},
                {"type": "Greeter", "id": format!("{id}-greeter"), "input": {"name": "kid"}},
            ],
            "then": "complete",
        }});
        if let Some(v) = version {
            body["version"] = v.into();
        }
        host.run(body)
    };
    let child_version = |id: &str| {
        let (status, run) = host.get(&format!("/v1/workflows/{id}"));
        assert_eq!(status, 200, "{run}");
        run["version"].clone()
    };

    // Pinned to the old version: the child of its own component's type
    // runs on it too; a type of another file gets its current version.
    let pinned = spawner("pinned", Some(&old));
    assert_eq!(pinned["version"], old.as_str());
    assert_eq!(child_version("pinned-echo"), old.as_str());
    assert_eq!(child_version("pinned-greeter"), greeter);

    let current = spawner("current", None);
    assert_eq!(current["version"], new.as_str());
    assert_eq!(child_version("current-echo"), new.as_str());
    assert_eq!(child_version("current-greeter"), greeter);
}

/// On a shared database, a component deployed to one host is startable on
/// the others (the directory's deployment notice, reused).
#[test]
fn a_deployment_reaches_every_host_of_a_shared_database() {
    if backend() != Backend::Postgres {
        return;
    }
    let bed = TestBed::new(&[]);
    let other_dir = bed.path().join("plugins-b");
    std::fs::create_dir(&other_dir).unwrap();
    let a = Serve::start(&bed, &[]);
    let b = Serve::start_on(&bed, &other_dir, &[]);
    let (status, deployed) = a.deploy("hello.wasm", &bytes("hello"));
    assert_eq!(status, 201, "{deployed}");
    let started = Instant::now();
    loop {
        let (_, listing) = b.get("/v1/plugins");
        if let Some(p) = listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["file"] == "hello.wasm")
        {
            assert_eq!(p["origin"], "fleet", "{listing}");
            assert_eq!(p["version"], deployed["version"]);
            break;
        }
        assert!(started.elapsed() < LIMIT, "never reached host B");
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = b.run(json!({"type": "Greeter", "input": {"name": "B"}}));
    assert_eq!(done["result"], "Hello, B");
}
