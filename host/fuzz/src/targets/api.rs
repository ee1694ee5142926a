//! Target `api`: requests to the HTTP API through the real router
//! in-process (no socket), on a real host with the seed example and the
//! greeter loaded: each input is a few requests to the API's routes (or
//! any path), with the natural method or another, query strings from the
//! routes' parameters or anything, bodies shaped like the route's or any
//! bytes, the token right or wrong. Properties: no 5xx; every error answer
//! is `{"kind","message"}` with a typed kind; a refused start stores
//! nothing; nothing hangs but a long poll that asked to.

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use wasmflow_server::ServerConfig;

use crate::harness::{self, Harness};
use crate::json::{self, one, pick};

const TOKEN: &str = "fuzz-token";

struct Api {
    harness: Harness,
    router: axum::Router,
}

fn api_host() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let harness = Harness::start(&["order-payment", "hello"], |b| b);
        let mut config = ServerConfig::new();
        config.token = Some(TOKEN.into());
        config.max_request_bytes = 64 << 10;
        let router =
            wasmflow_server::router(harness.host.clone(), &config, CancellationToken::new());
        Api { harness, router }
    })
}

const IDS: &[&str] = &[
    "fz-order",
    "fz-greet",
    "fz-missing",
    "",
    "a%2Fb",
    "%00",
    "..",
    "%E9",
    "a b",
    "fz-order%3F",
];
const TYPES: &[&str] = &["Order", "Payment", "Greeter", "Nope", ""];
const NAMES: &[&str] = &["start_payment", "payment_done", "status", "nope", ""];

/// The routes, with the method each answers.
const ROUTES: &[(&str, Method)] = &[
    ("/v1/workflows", Method::POST),
    ("/v1/workflows", Method::GET),
    ("/v1/workflows/{id}", Method::GET),
    ("/v1/workflows/{id}/result", Method::GET),
    ("/v1/workflows/{id}/events", Method::POST),
    ("/v1/workflows/{id}/history", Method::GET),
    ("/v1/workflows/{id}/tree", Method::GET),
    ("/v1/workflows/{id}/cancel", Method::POST),
    ("/v1/workflows/{id}/retry", Method::POST),
    ("/v1/workflows/{id}/terminate", Method::POST),
    ("/v1/workflows/{id}/queries/{name}", Method::POST),
    ("/v1/types", Method::GET),
    ("/v1/types/{type}/upgrade", Method::POST),
    ("/v1/openapi.json", Method::GET),
    ("/metrics", Method::GET),
    ("/healthz", Method::GET),
];

const METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
];

/// A value for a field: usually of the right type, sometimes any JSON.
fn field(u: &mut Unstructured, fitting: Value) -> Result<Value> {
    Ok(if u.ratio(1, 5)? {
        json::value(u, 2)?
    } else {
        fitting
    })
}

/// A body shaped like the route's request: each known field present or
/// not, and sometimes an unknown one.
fn body(u: &mut Unstructured, path: &str) -> Result<Vec<u8>> {
    if u.ratio(1, 8)? {
        return Ok(if u.arbitrary()? {
            json::text(u)?.into_bytes()
        } else {
            u.arbitrary::<Vec<u8>>()?
        });
    }
    let fields: Vec<(&str, Value)> = if path == "/v1/workflows" {
        let input = json!({ "order_id": pick(u, IDS)?, "amount": json::number(u)?, "name": json::string(u)? });
        vec![
            ("type", pick(u, TYPES)?.into()),
            ("id", pick(u, IDS)?.into()),
            ("input", input),
            ("timeout_ms", one(u, &[0u64, 1, 60_000, u64::MAX])?.into()),
            (
                "on_conflict",
                one(u, &["error", "return_existing", "nope"])?.into(),
            ),
        ]
    } else if path.ends_with("/events") {
        vec![
            ("name", pick(u, NAMES)?.into()),
            (
                "payload",
                json!({ "amount": json::number(u)?, "ok": u.arbitrary::<bool>()? }),
            ),
        ]
    } else if path.ends_with("/cancel") || path.ends_with("/terminate") {
        vec![("reason", json::string(u)?.into())]
    } else if path.ends_with("/retry") {
        vec![("upgrade", u.arbitrary::<bool>()?.into())]
    } else if path.contains("/queries/") {
        vec![
            ("args", json::value(u, 2)?),
            ("run_id", json::string(u)?.into()),
        ]
    } else if u.arbitrary()? {
        return Ok(Vec::new());
    } else {
        Vec::new()
    };
    let mut object = Map::new();
    for (key, value) in fields {
        if u.ratio(3, 4)? {
            object.insert(key.to_owned(), field(u, value)?);
        }
    }
    if u.ratio(1, 10)? {
        object.insert(json::string(u)?, json::value(u, 1)?);
    }
    Ok(Value::Object(object).to_string().into_bytes())
}

fn query(u: &mut Unstructured) -> Result<String> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for _ in 0..u.int_in_range(0..=3)? {
        let (key, value) = match u.int_in_range(0..=7)? {
            0 => (
                "status",
                pick(u, &["running", "waiting", "completed", "failed", "nope"])?,
            ),
            1 => ("type", pick(u, TYPES)?),
            2 => ("limit", pick(u, &["0", "1", "100", "1000000", "-1", "x"])?),
            3 => (
                "cursor",
                pick(u, &["", "abc", "1-00000000-0000-0000-0000-000000000000"])?,
            ),
            4 => (
                "run_id",
                pick(u, &["", "00000000-0000-0000-0000-000000000000", "nope"])?,
            ),
            // Long polls stay short: a wait the fuzzer made long is allowed
            // to take its time (see `check`).
            5 => (
                "wait_ms",
                pick(u, &["0", "1", "20", "x", "-5", "99999999999999999999"])?,
            ),
            6 => ("prefix", pick(u, IDS)?),
            _ => {
                let key = json::string(u)?;
                query.append_pair(&key, &json::string(u)?);
                continue;
            }
        };
        query.append_pair(key, &value);
    }
    Ok(query.finish())
}

struct Call {
    method: Method,
    uri: String,
    body: Vec<u8>,
    auth: Option<String>,
    json: bool,
}

fn call(u: &mut Unstructured) -> Result<Call> {
    let (template, method) = &ROUTES[u.choose_index(ROUTES.len())?];
    let path = if u.ratio(1, 12)? {
        format!("/{}", json::string(u)?)
    } else {
        template
            .replace("{id}", &pick(u, IDS)?)
            .replace("{name}", &pick(u, NAMES)?)
            .replace("{type}", &pick(u, TYPES)?)
    };
    let method = if u.ratio(1, 8)? {
        METHODS[u.choose_index(METHODS.len())?].clone()
    } else {
        method.clone()
    };
    let query = query(u)?;
    let body = body(u, template)?;
    let auth = match u.int_in_range(0..=9)? {
        0 => None,
        1 => Some(format!("Bearer {}", json::string(u)?)),
        2 => Some(TOKEN.to_owned()),
        _ => Some(format!("Bearer {TOKEN}")),
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    Ok(Call {
        method,
        uri,
        body,
        auth,
        json: !u.ratio(1, 8)?,
    })
}

/// A kind a client can match on: a name like `InvalidPayload` or
/// `RunNotFound` (a wasmflow error kind, the engine's or the API's own),
/// never the catch-all `Internal`.
fn typed(kind: &str) -> bool {
    kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphabetic())
        && kind != "Internal"
}

/// Whether a run with workflow id `id` exists.
async fn exists(api: &Api, id: &str) -> bool {
    api.harness.host.latest_run(id).await.is_ok()
}

async fn check(api: &Api, call: Call) {
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(&call.uri);
    if let Some(auth) = &call.auth {
        request = request.header("authorization", auth);
    }
    if call.json {
        request = request.header("content-type", "application/json");
    }
    let Ok(request) = request.body(Full::new(Bytes::from(call.body.clone()))) else {
        // Not a request hyper would read (an invalid URI or header value).
        return;
    };
    let start = call.method == Method::POST && call.uri.split('?').next() == Some("/v1/workflows");
    let start_id = start
        .then(|| serde_json::from_slice::<Value>(&call.body).ok())
        .flatten()
        .and_then(|b| b.get("id").and_then(Value::as_str).map(str::to_owned));
    let existed = match &start_id {
        Some(id) => exists(api, id).await,
        None => false,
    };
    let long_poll = call.uri.contains("wait");
    let answer =
        tokio::time::timeout(Duration::from_secs(10), api.router.clone().oneshot(request)).await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) if long_poll => return,
        Err(_) => panic!("{} {} did not answer within 10 s", call.method, call.uri),
    };
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_else(|e| panic!("{} {}: the body fails: {e}", call.method, call.uri));
    let shown = String::from_utf8_lossy(&bytes);
    assert!(
        !status.is_server_error(),
        "{} {} {:?} answered {status}: {shown}",
        call.method,
        call.uri,
        String::from_utf8_lossy(&call.body)
    );
    if status.is_client_error() && call.method != Method::HEAD {
        let error: wasmflow_api::ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{} {} answered {status} with {shown:?}, not an error body: {e}",
                call.method, call.uri
            )
        });
        assert!(
            typed(&error.kind) && !error.message.is_empty(),
            "{} {}: {status} {shown}",
            call.method,
            call.uri
        );
        if let Some(id) = &start_id
            && !existed
        {
            assert!(
                !exists(api, id).await,
                "a refused start ({status} {shown}) stored run `{id}`"
            );
        }
    }
    if status == StatusCode::CREATED && start {
        let started: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert!(
            started.get("run_id").is_some_and(Value::is_string),
            "{shown}"
        );
    }
}

pub fn api(data: &[u8]) {
    let api = api_host();
    let mut u = Unstructured::new(data);
    for _ in 0..4 {
        let Ok(call) = call(&mut u) else { break };
        api.harness.runtime.block_on(check(api, call));
    }
    assert_eq!(harness::panics(), 0, "the host panicked");
}
