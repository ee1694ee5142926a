//! The web UI at `/ui` of a real `wasmflow serve` running the seed example:
//! over plain HTTP (pages read without a script, the login cookie, the CSRF
//! checks, the API's errors shown), and in a real browser (headless
//! Chromium through chromedriver): start an Order from the form, send
//! `start_payment`, watch the Order and its Payment child complete on the
//! page without a reload, and keep a screenshot.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::testbed::TestBed;

const TOKEN: &str = "ui-test-token";

/// A `wasmflow serve` of the seed example with a token, stopped when
/// dropped.
struct Served {
    _bed: TestBed,
    child: Child,
    addr: String,
}

impl Served {
    fn start() -> Served {
        let bed = TestBed::new(&["order-payment"]);
        let mut serve = Command::new(env!("CARGO_BIN_EXE_wasmflow"));
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN])
            .arg("--plugins")
            .arg(bed.plugins())
            .args(bed.host_db_args())
            .current_dir(bed.path())
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let (child, addr) = crate::testbed::spawn_serve(serve);
        Served {
            _bed: bed,
            child,
            addr,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser without a script: no redirects followed, statuses as they
/// come.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

struct Answer {
    status: u16,
    location: String,
    set_cookie: String,
    body: String,
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("the host answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (location, set_cookie) = (header("location"), header("set-cookie"));
    Answer {
        status: response.status().as_u16(),
        location,
        set_cookie,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn get(url: &str, cookie: &str) -> Answer {
    answer(agent().get(url).header("Cookie", cookie).call())
}

fn post(url: &str, cookie: &str, extra: &[(&str, &str)], form: &[(&str, &str)]) -> Answer {
    let mut request = agent().post(url).header("Cookie", cookie);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    answer(request.send_form(form.iter().copied()))
}

/// The CSRF token of the first form on a page.
fn csrf(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("the page has a form") + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The API's answer (with the bearer token).
fn api(addr: &str, path: &str) -> Value {
    let mut response = agent()
        .get(format!("{addr}{path}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .expect("the API answers");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// Sign in through the form; the session cookie (`name=value`).
fn sign_in(addr: &str) -> String {
    let login = get(&format!("{addr}/ui/login?next=/ui/types"), "");
    assert_eq!(login.status, 200, "{}", login.body);
    let token = csrf(&login.body);
    let wrong = post(
        &format!("{addr}/ui/login"),
        "",
        &[],
        &[("csrf", &token), ("token", "not-it"), ("next", "/ui/types")],
    );
    assert_eq!(wrong.status, 401, "a wrong token: {}", wrong.body);
    assert!(wrong.body.contains("not this host"), "{}", wrong.body);
    let right = post(
        &format!("{addr}/ui/login"),
        "",
        &[],
        &[("csrf", &token), ("token", TOKEN), ("next", "/ui/types")],
    );
    assert_eq!((right.status, right.location.as_str()), (303, "/ui/types"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(
            right.set_cookie.contains(attribute),
            "{} lacks {attribute}",
            right.set_cookie
        );
    }
    assert!(
        !right.set_cookie.contains(TOKEN),
        "the cookie holds no token: {}",
        right.set_cookie
    );
    right
        .set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ui_pages_read_without_a_script_and_actions_are_protected() {
    let served = Served::start();
    let addr = served.addr.as_str();

    // Signed out: pages send to the login form, actions are refused.
    let page = get(&format!("{addr}/ui/runs?status=waiting"), "");
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location,
        "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dwaiting"
    );
    let refused = post(
        &format!("{addr}/ui/start"),
        "",
        &[],
        &[("workflow_type", "Order")],
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let cookie = sign_in(addr);
    let with_cookie_only = get(&format!("{addr}/v1/types"), &cookie);
    assert_eq!(
        with_cookie_only.status, 401,
        "the API still wants its token"
    );

    // Cross-site and stale forms change nothing.
    let types = get(&format!("{addr}/ui/types"), &cookie);
    assert_eq!(types.status, 200);
    assert!(types.body.contains("Order") && types.body.contains("start_payment"));
    assert!(
        types.body.contains("order_id: a string"),
        "handlers with parameter types"
    );
    let token = csrf(&types.body);
    let order = [
        ("workflow_type", "Order"),
        ("id", "plain-1"),
        ("input", r#"{"order_id": "plain-1", "amount": 12.5}"#),
        ("timeout", ""),
    ];
    let forged = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[&[("csrf", "forged")], &order[..]].concat(),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("reload the page"), "{}", forged.body);
    let cross = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[("Sec-Fetch-Site", "cross-site")],
        &[&[("csrf", token.as_str())], &order[..]].concat(),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    let foreign = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[("Origin", "http://evil.example")],
        &[&[("csrf", token.as_str())], &order[..]].concat(),
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert_eq!(
        api(addr, "/v1/workflows")["runs"],
        json!([]),
        "nothing started"
    );

    // Bad input: the form's own check, and the API's error with its kind.
    let not_json = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[
            ("csrf", token.as_str()),
            ("workflow_type", "Order"),
            ("input", "{oops"),
        ],
    );
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.body.contains("the input is not JSON"),
        "{}",
        not_json.body
    );
    assert!(
        not_json.body.contains("{oops"),
        "the form keeps what was typed"
    );
    let missing = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[
            ("csrf", token.as_str()),
            ("workflow_type", "Order"),
            ("input", "{}"),
        ],
    );
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(missing.body.contains("InvalidPayload"), "{}", missing.body);
    assert!(missing.body.contains("order_id"), "{}", missing.body);
    let unknown = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[
            ("csrf", token.as_str()),
            ("workflow_type", "Ordr"),
            ("input", "{}"),
        ],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("Ordr"), "{}", unknown.body);
    assert_eq!(
        api(addr, "/v1/workflows")["runs"],
        json!([]),
        "still nothing started"
    );

    // A start, then the run's page as plain HTML.
    let started = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[&[("csrf", token.as_str())], &order[..]].concat(),
    );
    assert_eq!(started.status, 303, "{}", started.body);
    assert!(
        started.location.starts_with("/ui/runs/plain-1?run_id="),
        "{}",
        started.location
    );
    let page = format!("{addr}{}", started.location);
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let run = get(&page, &cookie);
        assert_eq!(run.status, 200);
        if run.body.contains(r#"id="status">waiting<"#) || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for shown in [
        r#"id="status">waiting<"#,
        "started Order `plain-1`",
        "&#34;amount&#34;: 12.5",
        "order_id",
        "run_started",
        "activation_completed",
        "data-live=\"/ui/runs/plain-1/live?run_id=",
    ] {
        assert!(
            run.body.contains(shown),
            "the run page shows {shown}:\n{}",
            run.body
        );
    }
    let event = post(
        &format!("{addr}/ui/runs/plain-1/events"),
        &cookie,
        &[],
        &[
            ("csrf", token.as_str()),
            ("name", "no_such_event"),
            ("payload", ""),
        ],
    );
    assert_eq!(event.status, 400, "{}", event.body);
    assert!(
        event.body.contains("UnknownEvent"),
        "the API's kind: {}",
        event.body
    );
    assert!(event.body.contains("no_such_event"), "{}", event.body);

    // The listing, filtered by status and id prefix.
    let listed = get(
        &format!("{addr}/ui/runs?status=waiting&prefix=plain"),
        &cookie,
    );
    assert!(listed.body.contains("plain-1"), "{}", listed.body);
    let none = get(&format!("{addr}/ui/runs?prefix=other"), &cookie);
    assert!(
        none.body.contains("No runs match these filters"),
        "{}",
        none.body
    );
    let second = post(
        &format!("{addr}/ui/start"),
        &cookie,
        &[],
        &[
            ("csrf", token.as_str()),
            ("workflow_type", "Order"),
            ("id", "plain-2"),
            ("input", r#"{"order_id": "plain-2", "amount": 1}"#),
        ],
    );
    assert_eq!(second.status, 303, "{}", second.body);
    let first_page = get(&format!("{addr}/ui/runs?limit=1"), &cookie);
    assert!(first_page.body.contains("plain-2") && !first_page.body.contains(">plain-1<"));
    let marker = r#"<a href=""#;
    let older = first_page
        .body
        .split(marker)
        .find(|a| a.contains("id=\"next-page\""))
        .and_then(|a| a.split('"').next())
        .expect("a link to the older runs")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let second_page = get(&format!("{addr}{older}"), &cookie);
    assert!(
        second_page.body.contains(">plain-1<") && !second_page.body.contains("plain-2"),
        "the next page by the API's cursor: {}",
        second_page.body
    );
    let bad = get(&format!("{addr}/ui/runs?status=sleeping"), &cookie);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("sleeping"), "{}", bad.body);
}

/// Where chromium and chromedriver are (`cargo xtask test` installs them).
fn browser() -> (PathBuf, PathBuf) {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "none of {names:?} is installed: `cargo xtask test` installs Debian's \
                     `chromium` and `chromium-driver` (or run `apt-get install chromium \
                     chromium-driver`)"
                )
            })
    };
    (
        find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]),
        find(&["/usr/bin/chromedriver"]),
    )
}

/// A chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(chromedriver: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the test keeps its screenshot.
fn screenshot_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir.join("run-page.png")
}

#[test]
fn ui_in_a_browser_runs_the_seed_example_live() {
    let (chromium, chromedriver) = browser();
    let served = Served::start();
    let driver = Driver::start(&chromedriver);
    let profile = tempfile::tempdir().expect("a browser profile");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,1500",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        let result = drive(&client, &served.addr).await;
        let _ = client.close().await;
        result
    });
}

/// What the browser test does, in the browser `c`.
async fn drive(c: &fantoccini::Client, addr: &str) {
    let wait = Duration::from_secs(30);
    // Signed out: the login form, then the types page.
    c.goto(&format!("{addr}/ui/types"))
        .await
        .expect("open the UI");
    let token = c
        .find(Locator::Css("input[name=token]"))
        .await
        .expect("the login form");
    token.send_keys(TOKEN).await.expect("type the token");
    c.find(Locator::Css("form.login button"))
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("sign in");
    // The Order's start form.
    let form = c
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#type-Order form.start"))
        .await
        .expect("the Order's start form");
    form.find(Locator::Css("input[name=id]"))
        .await
        .expect("the id field")
        .send_keys("browser-order-1")
        .await
        .expect("type the id");
    let input = form
        .find(Locator::Css("textarea[name=input]"))
        .await
        .expect("the input field");
    input.clear().await.expect("clear the input");
    input
        .send_keys(r#"{"order_id": "browser-order-1", "amount": 42.5}"#)
        .await
        .expect("type the input");
    form.find(Locator::Css("button"))
        .await
        .expect("the start button")
        .click()
        .await
        .expect("start the Order");
    // The run's page: waiting for `start_payment`.
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#status"))
        .await
        .expect("the run page");
    wait_for_text(c, "#status", "waiting").await;
    // The live region is connected; a marker shows the page is not reloaded.
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#live[data-state=live]"))
        .await
        .expect("live updates start");
    c.execute("window.__not_reloaded = true;", vec![])
        .await
        .expect("set the marker");
    let send = c
        .find(Locator::Css("#send-event"))
        .await
        .expect("the event form");
    send.find(Locator::Css("input[name=name]"))
        .await
        .expect("the event name")
        .send_keys("start_payment")
        .await
        .expect("type the event");
    // Sent with fetch so that this page stays: what changes next comes
    // by the live updates alone.
    c.execute(
        "const f = document.getElementById('send-event');
         fetch(f.action, {method: 'POST', body: new URLSearchParams(new FormData(f))});",
        vec![],
    )
    .await
    .expect("send the event");
    // The Order and its Payment child complete on the page.
    let deadline = Instant::now() + wait;
    loop {
        let status = c.find(Locator::Css("#status")).await.expect("the status");
        let tree = c.find(Locator::Css("#tree")).await.expect("the tree");
        let (status, tree) = (
            status.text().await.unwrap_or_default(),
            tree.text().await.unwrap_or_default(),
        );
        if status == "completed"
            && tree.contains("Payment")
            && tree.matches("completed").count() >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Order and its Payment complete on the page: status {status:?}, tree {tree:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let marker = c
        .execute("return window.__not_reloaded === true;", vec![])
        .await
        .expect("read the marker");
    assert_eq!(marker, json!(true), "the page updated without a reload");
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#live[data-state=ended]"))
        .await
        .expect("live updates end with the run");
    let timeline = c
        .find(Locator::Css("#timeline"))
        .await
        .expect("the timeline")
        .text()
        .await
        .expect("its text");
    for entry in [
        "run_started",
        "event_received",
        "child_started",
        "run_completed",
    ] {
        assert!(
            timeline.contains(entry),
            "the timeline has {entry}: {timeline}"
        );
    }
    assert!(
        !timeline.contains("UTC"),
        "the script shows times in the reader's zone: {timeline}"
    );
    let result = c.find(Locator::Css("#result")).await.expect("the result");
    let result = result.text().await.expect("its text");
    assert!(
        result.contains("txn-"),
        "the Order's result is the payment's txn id: {result}"
    );
    let tree = c.find(Locator::Css("#tree")).await.expect("the tree");
    assert!(
        tree.text()
            .await
            .unwrap_or_default()
            .contains("payment-browser-order-1"),
        "the child by its workflow id"
    );
    let png = c.screenshot().await.expect("a screenshot");
    let path = screenshot_path();
    std::fs::write(&path, &png).expect("keep the screenshot");
    eprintln!("ui: screenshot of the run page in {}", path.display());
    // The child's page links back to its parent.
    c.find(Locator::LinkText("Payment payment-browser-order-1"))
        .await
        .expect("the child's link")
        .click()
        .await
        .expect("open the child");
    let parent = c
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#parent"))
        .await
        .expect("the child's parent link");
    let tasks = c
        .find(Locator::Css("#tasks"))
        .await
        .expect("the child's task attempts")
        .text()
        .await
        .expect("their text");
    assert!(tasks.contains("charge_card"), "the Payment's task: {tasks}");
    parent.click().await.expect("open the parent");
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("h1 code"))
        .await
        .expect("the parent's page");
    let heading = c.find(Locator::Css("h1")).await.expect("the heading");
    assert!(
        heading
            .text()
            .await
            .unwrap_or_default()
            .contains("browser-order-1")
    );
}

/// Wait until the element at `css` reads `want` (the live updates bring
/// it).
async fn wait_for_text(c: &fantoccini::Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} reads {want:?}, not {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
