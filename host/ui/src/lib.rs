//! The web UI of `wasmflow serve`, at `/ui` on the API's port: pages
//! rendered on the server from templates (askama, compiled in), readable
//! without JavaScript; one small script of ours (`assets/live.js`, served
//! from the binary) adds live refresh of a run's page by server-sent events
//! and shows times in the reader's time zone.
//!
//! The UI is a client of the HTTP API: [`router`] takes the API's router
//! and calls it in-process for every read and action, with the API's token,
//! so a page shows exactly what the API answers, and an action's error is
//! the API's `{kind, message}`. It knows the wire model (`wasmflow-api`),
//! never the host; see [`auth`] for the login cookie and the CSRF checks.
//!
//! | page | what |
//! |---|---|
//! | `GET /ui/runs` | runs, newest first; filter by type, status, id prefix; paged |
//! | `GET /ui/runs/{id}` | a run: status, result, store, inbox, tree, timeline, tasks; live |
//! | `GET /ui/types` | types and plugins, start form, upgrade, rejected files |
//! | `GET /ui/login` | the token form (with a token set) |

pub mod auth;
mod client;
pub mod format;
mod pages;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::client::Api;

/// What the UI needs besides the API.
pub struct UiConfig {
    /// The API's token (none: the UI asks for none).
    pub token: Option<String>,
    /// Live pages end when this is cancelled (the host stops).
    pub stopping: CancellationToken,
}

#[derive(Clone)]
struct Ui {
    api: Api,
    auth: Auth,
    stopping: CancellationToken,
}

/// The UI's routes, under `/ui`, calling `api` in-process.
pub fn router(api: Router, config: UiConfig) -> Router {
    let token: Option<Arc<str>> = config.token.as_deref().map(Arc::from);
    let ui = Ui {
        api: Api::new(api, token.clone()),
        auth: Auth::new(token),
        stopping: config.stopping,
    };
    let signed_in = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/by-run/{run_id}", get(pages::by_run_id))
        .route("/ui/runs/{id}", get(pages::run))
        .route("/ui/runs/{id}/live", get(pages::live))
        .route("/ui/runs/{id}/events", post(pages::send))
        .route("/ui/runs/{id}/cancel", post(pages::cancel))
        .route("/ui/runs/{id}/terminate", post(pages::terminate))
        .route("/ui/runs/{id}/retry", post(pages::retry))
        .route("/ui/types", get(pages::types))
        .route("/ui/start", post(pages::start))
        .route("/ui/types/{type}/upgrade", post(pages::upgrade))
        .route("/ui/logout", post(pages::logout))
        .route_layer(middleware::from_fn_with_state(ui.clone(), require_login));
    Router::new()
        .merge(signed_in)
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/assets/live.js", get(script))
        .route("/ui/assets/style.css", get(style))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(middleware::from_fn(secure_headers))
        .with_state(ui)
}

/// With a token set, a browser without the session cookie is sent to the
/// login form (a `GET`), or refused (anything else).
async fn require_login(State(ui): State<Ui>, request: Request, next: Next) -> Response {
    if ui.auth.signed_in(request.headers()) {
        return next.run(request).await;
    }
    if request.method() == Method::GET {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/ui/runs", |pq| pq.as_str());
        let to = format!("/ui/login?next={}", client::segment(target));
        return Redirect::to(&to).into_response();
    }
    pages::refused(
        &ui,
        request.headers(),
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "sign in first: this host requires its token",
    )
}

/// Pages load only this host's script and style, in no frame.
async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    )
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
