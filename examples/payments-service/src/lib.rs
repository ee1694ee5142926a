//! A card-payments service for the Order/Payment demo and the tests: the
//! "real service" the seed's `charge_card` calls.
//!
//! - `POST /charges` with an `Idempotency-Key` header and `{"amount": 42.5}`
//!   charges once per key: a repeated key answers the first charge's
//!   transaction id again (`"replayed": true`) and charges nothing.
//!   With a token configured, `Authorization: Bearer <token>` is required.
//! - `GET /stats`: `{"charges": distinct keys charged, "requests": POSTs
//!   received, "replayed": repeated keys}`.
//!
//! [`Options::fail_first`] makes the first N charge requests answer 503, to
//! exercise retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// How the service behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Answer the first N charge requests with 503.
    pub fail_first: u64,
}

/// What the service saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Distinct idempotency keys charged.
    pub charges: u64,
    /// Charge requests received (failed, replayed and unauthorised ones too).
    pub requests: u64,
    /// Requests whose key was charged before.
    pub replayed: u64,
}

#[derive(Default)]
struct Ledger {
    by_key: HashMap<String, String>,
    stats: Stats,
}

struct Shared {
    options: Options,
    ledger: Mutex<Ledger>,
}

/// A running service.
pub struct Running {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn stats(&self) -> Stats {
        self.shared
            .ledger
            .lock()
            .map(|l| l.stats)
            .unwrap_or_default()
    }

    /// The transaction id charged for `key`, if any.
    pub fn charge(&self, key: &str) -> Option<String> {
        self.shared
            .ledger
            .lock()
            .ok()
            .and_then(|l| l.by_key.get(key).cloned())
    }

    /// Every key charged, with its transaction id.
    pub fn charges(&self) -> HashMap<String, String> {
        self.shared
            .ledger
            .lock()
            .map(|l| l.by_key.clone())
            .unwrap_or_default()
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve on `listener` until the returned handle is dropped.
pub fn spawn(listener: tokio::net::TcpListener, options: Options) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        options,
        ledger: Mutex::default(),
    });
    let app = Router::new()
        .route("/charges", post(charge))
        .route("/stats", get(stats))
        .with_state(shared.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("payments service stopped: {e}");
        }
    });
    Ok(Running { addr, shared, task })
}

fn refuse(status: StatusCode, message: &str) -> axum::response::Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn charge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> axum::response::Response {
    let Ok(mut ledger) = shared.ledger.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "ledger unusable");
    };
    ledger.stats.requests += 1;
    if let Some(token) = &shared.options.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    if ledger.stats.requests <= shared.options.fail_first {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an Idempotency-Key header is required",
        );
    };
    let amount = body
        .as_ref()
        .and_then(|Json(b)| b.get("amount"))
        .and_then(Value::as_f64);
    if !amount.is_some_and(|a| a > 0.0 && a.is_finite()) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be a positive number",
        );
    }
    if let Some(txn) = ledger.by_key.get(key).cloned() {
        ledger.stats.replayed += 1;
        return Json(json!({ "txn_id": txn, "replayed": true })).into_response();
    }
    let txn = format!("txn-{}", uuid::Uuid::new_v4());
    ledger.by_key.insert(key.to_owned(), txn.clone());
    ledger.stats.charges += 1;
    Json(json!({ "txn_id": txn, "replayed": false })).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(shared.ledger.lock().map(|l| l.stats).unwrap_or_default())
}
