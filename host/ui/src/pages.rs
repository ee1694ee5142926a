//! The pages and the actions: each reads or acts through the API and
//! renders a template; an action that succeeds redirects to the page it
//! changed (so a reload does not send it again), one that fails shows the
//! page again with the API's error.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wasmflow_api::{
    EventAccepted, HistoryView, InboxView, RejectedPlugin, RunList, RunView, Started, StoreView,
    TreeView, TypesView, UpgradeView,
};

use crate::Ui;
use crate::auth::Refused;
use crate::client::{Failure, segment};
use crate::views::{RunDetail, RunRow, TypeCard, run_link, statuses, type_cards};

/// Runs on one page of the listing.
const PAGE: usize = 50;
/// How often a live page looks for changes.
const POLL: Duration = Duration::from_millis(250);

/// What every page's frame shows.
struct Base {
    title: String,
    csrf: String,
    logout: bool,
    notice: Option<String>,
    error: Option<Failure>,
}

impl Base {
    fn new(ui: &Ui, headers: &HeaderMap, title: impl Into<String>) -> Self {
        Base {
            title: title.into(),
            csrf: ui.auth.csrf(headers),
            logout: ui.auth.has_token() && ui.auth.signed_in(headers),
            notice: None,
            error: None,
        }
    }
}

/// A rendered page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page cannot be rendered: {e}"),
        )
            .into_response(),
    }
}

fn status_of(failure: &Failure) -> StatusCode {
    StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    base: Base,
}

/// A page that only says why the request was refused.
pub(crate) fn refused(
    ui: &Ui,
    headers: &HeaderMap,
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response {
    let mut base = Base::new(ui, headers, status.canonical_reason().unwrap_or("Refused"));
    base.error = Some(Failure {
        status: status.as_u16(),
        kind: kind.to_owned(),
        message: message.to_owned(),
    });
    page(status, &MessagePage { base })
}

fn cross_site(ui: &Ui, headers: &HeaderMap, refusal: Refused) -> Response {
    let message = match refusal {
        Refused::CrossSite(m) => m,
        Refused::SignedOut => "sign in first".to_owned(),
    };
    refused(
        ui,
        headers,
        StatusCode::FORBIDDEN,
        "CrossSiteRequest",
        &message,
    )
}

pub(crate) async fn not_found(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    refused(
        &ui,
        &headers,
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such page",
    )
}

// ---- the runs -------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct RunsQuery {
    #[serde(rename = "type", default)]
    workflow_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    /// Runs a page (default [`PAGE`]).
    limit: Option<usize>,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    base: Base,
    rows: Vec<RunRow>,
    types: Vec<String>,
    statuses: Vec<&'static str>,
    filter: RunsQuery,
    filtered: bool,
    first_page: bool,
    first_link: String,
    next: Option<String>,
}

fn runs_link(q: &RunsQuery, cursor: Option<&str>) -> String {
    let mut link = format!(
        "/ui/runs?type={}&status={}&prefix={}",
        segment(&q.workflow_type),
        segment(&q.status),
        segment(&q.prefix)
    );
    if let Some(limit) = q.limit {
        link.push_str(&format!("&limit={limit}"));
    }
    if let Some(cursor) = cursor {
        link.push_str("&cursor=");
        link.push_str(&segment(cursor));
    }
    link
}

pub(crate) async fn runs(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Response {
    let mut path = format!("/v1/workflows?limit={}", q.limit.unwrap_or(PAGE));
    for (name, value) in [
        ("type", &q.workflow_type),
        ("status", &q.status),
        ("id_prefix", &q.prefix),
    ] {
        if !value.is_empty() {
            path.push_str(&format!("&{name}={}", segment(value)));
        }
    }
    if let Some(cursor) = &q.cursor {
        path.push_str(&format!("&cursor={}", segment(cursor)));
    }
    let mut base = Base::new(&ui, &headers, "Runs");
    let (rows, next, status) = match ui.api.get::<RunList>(&path).await {
        Ok(list) => (
            list.runs.iter().map(RunRow::of).collect(),
            list.next.map(|c| runs_link(&q, Some(&c))),
            StatusCode::OK,
        ),
        Err(failure) => {
            let status = status_of(&failure);
            base.error = Some(failure);
            (Vec::new(), None, status)
        }
    };
    let types = match ui.api.get::<TypesView>("/v1/types").await {
        Ok(types) => types.types.into_iter().map(|t| t.name).collect(),
        Err(_) => Vec::new(),
    };
    let template = RunsPage {
        base,
        rows,
        types,
        statuses: statuses(),
        filtered: !(q.workflow_type.is_empty() && q.status.is_empty() && q.prefix.is_empty()),
        first_page: q.cursor.is_none(),
        first_link: runs_link(&q, None),
        filter: q,
        next,
    };
    page(status, &template)
}

pub(crate) async fn by_run_id(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Response {
    match ui
        .api
        .get::<RunView>(&format!("/v1/runs/{}", segment(&run_id)))
        .await
    {
        Ok(run) => Redirect::to(&run_link(&run.workflow_id, &run.run_id)).into_response(),
        Err(f) => refused(&ui, &headers, status_of(&f), &f.kind, &f.message),
    }
}

// ---- a run ----------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct RunPageQuery {
    run_id: Option<String>,
    notice: Option<String>,
    /// The live region's [`fingerprint`] the page has (not sent again).
    seen: Option<u64>,
}

/// A live region's fingerprint: whether it changed since it was sent.
fn fingerprint(html: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    base: Base,
    d: RunDetail,
    live_html: String,
    live_url: String,
    id_seg: String,
    events: Vec<String>,
    event_name: String,
    event_payload: String,
}

#[derive(Template)]
#[template(path = "run_live.html")]
struct RunLive<'a> {
    d: &'a RunDetail,
}

/// Everything a run's page shows that changes, read through the API.
async fn detail(ui: &Ui, id: &str, run_id: Option<&str>) -> Result<RunDetail, Failure> {
    let id_seg = segment(id);
    let query = run_id.map_or(String::new(), |r| format!("?run_id={}", segment(r)));
    let run: RunView = ui
        .api
        .get(&format!("/v1/workflows/{id_seg}{query}"))
        .await?;
    // The rest of the same run, whatever starts meanwhile.
    let query = format!("?run_id={}", segment(&run.run_id));
    let paths = ["history", "tree", "store", "inbox"]
        .map(|part| format!("/v1/workflows/{id_seg}/{part}{query}"));
    let (history, tree, store, inbox) = tokio::join!(
        ui.api.get::<HistoryView>(&paths[0]),
        ui.api.get::<TreeView>(&paths[1]),
        ui.api.get::<StoreView>(&paths[2]),
        ui.api.get::<InboxView>(&paths[3]),
    );
    Ok(RunDetail::of(
        &run,
        &history?.events,
        Some(&tree?),
        &store?,
        &inbox?,
    ))
}

fn render_live(d: &RunDetail) -> Result<String, Failure> {
    RunLive { d }.render().map_err(|e| Failure {
        status: 500,
        kind: "Internal".into(),
        message: format!("the page cannot be rendered: {e}"),
    })
}

/// What a failed action leaves in its form, to show again.
#[derive(Default)]
struct EventForm {
    name: String,
    payload: String,
}

async fn run_page(
    ui: &Ui,
    headers: &HeaderMap,
    id: &str,
    run_id: Option<&str>,
    notice: Option<String>,
    error: Option<Failure>,
    form: EventForm,
) -> Response {
    let d = match detail(ui, id, run_id).await {
        Ok(d) => d,
        Err(f) => return refused(ui, headers, status_of(&f), &f.kind, &f.message),
    };
    let live_html = match render_live(&d) {
        Ok(html) => html,
        Err(f) => return refused(ui, headers, status_of(&f), &f.kind, &f.message),
    };
    let events = match ui.api.get::<TypesView>("/v1/types").await {
        Ok(types) => type_cards(&types)
            .into_iter()
            .find(|t| t.name == d.run.workflow_type)
            .map(|t: TypeCard| t.events)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let status = error.as_ref().map_or(StatusCode::OK, status_of);
    let mut base = Base::new(ui, headers, format!("{} {}", d.run.workflow_type, id));
    base.notice = notice;
    base.error = error;
    let template = RunPage {
        base,
        live_url: format!(
            "/ui/runs/{}/live?run_id={}&seen={}",
            segment(id),
            segment(&d.run.run_id),
            fingerprint(&live_html)
        ),
        id_seg: segment(id),
        live_html,
        d,
        events,
        event_name: form.name,
        event_payload: form.payload,
    };
    page(status, &template)
}

pub(crate) async fn run(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RunPageQuery>,
) -> Response {
    run_page(
        &ui,
        &headers,
        &id,
        q.run_id.as_deref(),
        q.notice,
        None,
        EventForm::default(),
    )
    .await
}

/// Where the live region of a run's page is at.
struct Live {
    ui: Ui,
    id: String,
    run_id: Option<String>,
    last: Option<u64>,
    polled: bool,
    phase: Phase,
}

#[derive(PartialEq)]
enum Phase {
    Polling,
    Ending,
    Done,
}

/// `GET /ui/runs/{id}/live`: server-sent events, `update` with the live
/// region's new HTML whenever it changes, then `end` once the run ended
/// (or the host stops).
pub(crate) async fn live(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<RunPageQuery>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let start = Live {
        ui,
        id,
        run_id: q.run_id,
        last: q.seen,
        polled: false,
        phase: Phase::Polling,
    };
    let stream = futures_util::stream::unfold(start, |mut live| async move {
        loop {
            match live.phase {
                Phase::Done => return None,
                Phase::Ending => {
                    live.phase = Phase::Done;
                    return Some((Ok(Event::default().event("end").data("ended")), live));
                }
                Phase::Polling => {}
            }
            if live.polled {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = live.ui.stopping.cancelled() => {
                        live.phase = Phase::Ending;
                        continue;
                    }
                }
            }
            live.polled = true;
            let html = match detail(&live.ui, &live.id, live.run_id.as_deref()).await {
                Ok(d) => {
                    if d.run.terminal {
                        live.phase = Phase::Ending;
                    }
                    live.run_id = Some(d.run.run_id.clone());
                    render_live(&d)
                }
                Err(f) => Err(f),
            };
            match html {
                Ok(html) if live.last != Some(fingerprint(&html)) => {
                    live.last = Some(fingerprint(&html));
                    return Some((Ok(Event::default().event("update").data(html)), live));
                }
                Ok(_) => {}
                Err(f) => {
                    live.phase = Phase::Ending;
                    let message = format!("{}: {}", f.kind, f.message);
                    return Some((Ok(Event::default().event("failure").data(message)), live));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---- actions on a run -----------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct SendForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    payload: String,
}

fn bad_input(message: String) -> Failure {
    Failure {
        status: 400,
        kind: "InvalidPayload".into(),
        message,
    }
}

/// JSON typed into a form; empty is `None`.
fn typed_json(field: &str, text: &str) -> Result<Option<Value>, Failure> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| bad_input(format!("the {field} is not JSON: {e}")))
}

fn back_to(id: &str, notice: &str) -> Response {
    Redirect::to(&format!(
        "/ui/runs/{}?notice={}",
        segment(id),
        segment(notice)
    ))
    .into_response()
}

pub(crate) async fn send(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<SendForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let sent = match typed_json("payload", &form.payload) {
        Ok(payload) => {
            let body = json!({ "name": form.name, "payload": payload });
            ui.api
                .post::<EventAccepted>(&format!("/v1/workflows/{}/events", segment(&id)), &body)
                .await
        }
        Err(f) => Err(f),
    };
    match sent {
        Ok(_) => back_to(&id, &format!("event `{}` sent", form.name)),
        Err(f) => {
            let form = EventForm {
                name: form.name,
                payload: form.payload,
            };
            run_page(&ui, &headers, &id, None, None, Some(f), form).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn end_run(ui: Ui, headers: HeaderMap, id: String, form: ReasonForm, verb: &str) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let reason = if form.reason.trim().is_empty() {
        format!("{verb} from the web UI")
    } else {
        form.reason
    };
    let path = format!("/v1/workflows/{}/{}", segment(&id), verb_route(verb));
    match ui
        .api
        .post::<RunView>(&path, &json!({ "reason": reason }))
        .await
    {
        Ok(run) => back_to(&id, &format!("{verb}: the run is {}", run.status.as_str())),
        Err(f) => {
            run_page(
                &ui,
                &headers,
                &id,
                None,
                None,
                Some(f),
                EventForm::default(),
            )
            .await
        }
    }
}

fn verb_route(verb: &str) -> &'static str {
    if verb == "cancelled" {
        "cancel"
    } else {
        "terminate"
    }
}

pub(crate) async fn cancel(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    end_run(ui, headers, id, form, "cancelled").await
}

pub(crate) async fn terminate(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    end_run(ui, headers, id, form, "terminated").await
}

#[derive(Deserialize)]
pub(crate) struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    upgrade: Option<String>,
}

pub(crate) async fn retry(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RetryForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let body = json!({ "upgrade": form.upgrade.is_some() });
    let path = format!("/v1/workflows/{}/retry", segment(&id));
    match ui.api.post::<RunView>(&path, &body).await {
        Ok(run) => back_to(&id, &format!("retried: the run is {}", run.status.as_str())),
        Err(f) => {
            run_page(
                &ui,
                &headers,
                &id,
                None,
                None,
                Some(f),
                EventForm::default(),
            )
            .await
        }
    }
}

// ---- types and plugins ----------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    workflow_type: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    timeout: String,
}

#[derive(Template)]
#[template(path = "types.html")]
struct TypesPage {
    base: Base,
    cards: Vec<TypeCard>,
    rejected: Vec<RejectedPlugin>,
    form: StartForm,
}

async fn types_page(
    ui: &Ui,
    headers: &HeaderMap,
    notice: Option<String>,
    error: Option<Failure>,
    form: StartForm,
) -> Response {
    let mut base = Base::new(ui, headers, "Types & plugins");
    let mut status = error.as_ref().map_or(StatusCode::OK, status_of);
    base.notice = notice;
    base.error = error;
    let (cards, rejected) = match ui.api.get::<TypesView>("/v1/types").await {
        Ok(types) => (type_cards(&types), types.rejected),
        Err(f) => {
            status = status_of(&f);
            base.error = Some(f);
            (Vec::new(), Vec::new())
        }
    };
    let template = TypesPage {
        base,
        cards,
        rejected,
        form,
    };
    page(status, &template)
}

#[derive(Deserialize, Default)]
pub(crate) struct NoticeQuery {
    notice: Option<String>,
}

pub(crate) async fn types(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    types_page(&ui, &headers, q.notice, None, StartForm::default()).await
}

/// The start request a form describes.
fn start_request(form: &StartForm) -> Result<Value, Failure> {
    let mut body = json!({ "type": form.workflow_type });
    body["input"] = typed_json("input", &form.input)?.unwrap_or_else(|| json!({}));
    let id = form.id.trim();
    if !id.is_empty() {
        body["id"] = json!(id);
    }
    let timeout = form.timeout.trim();
    if !timeout.is_empty() {
        let d = humantime::parse_duration(timeout).map_err(|e| {
            bad_input(format!(
                "the workflow timeout `{timeout}` is not a duration (e.g. `30s`, `2h`): {e}"
            ))
        })?;
        body["timeout_ms"] = json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    Ok(body)
}

pub(crate) async fn start(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let started = match start_request(&form) {
        Ok(body) => ui.api.post::<Started>("/v1/workflows", &body).await,
        Err(f) => Err(f),
    };
    match started {
        Ok(s) => {
            let notice = format!("started {} `{}`", form.workflow_type, s.workflow_id);
            let link = format!(
                "{}&notice={}",
                run_link(&s.workflow_id, &s.run_id),
                segment(&notice)
            );
            Redirect::to(&link).into_response()
        }
        Err(f) => types_page(&ui, &headers, None, Some(f), form).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn upgrade(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(workflow_type): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let path = format!("/v1/types/{}/upgrade", segment(&workflow_type));
    match ui.api.post::<UpgradeView>(&path, &json!({})).await {
        Ok(report) => {
            let mut notice = format!(
                "{}: {} waiting run(s) moved to version {}",
                report.workflow_type,
                report.upgraded.len(),
                crate::format::short_version(&report.version)
            );
            for pinned in &report.pinned {
                notice.push_str(&format!(
                    "; run {} stays on {}: {}",
                    pinned.run_id,
                    crate::format::short_version(&pinned.version),
                    pinned.reason
                ));
            }
            let link = format!("/ui/types?notice={}", segment(&notice));
            Redirect::to(&link).into_response()
        }
        Err(f) => types_page(&ui, &headers, None, Some(f), StartForm::default()).await,
    }
}

// ---- signing in and out ---------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    base: Base,
    next: String,
}

/// Where to go after signing in: a page of the UI, nowhere else.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/ui/runs".to_owned(),
    }
}

pub(crate) async fn login_form(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = next_page(q.next.as_deref());
    if !ui.auth.has_token() || ui.auth.signed_in(&headers) {
        return Redirect::to(&next).into_response();
    }
    let template = LoginPage {
        base: Base::new(&ui, &headers, "Sign in"),
        next,
    };
    page(StatusCode::OK, &template)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

pub(crate) async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let next = next_page(form.next.as_deref());
    if ui.auth.is_token(&form.token) {
        let mut response = Redirect::to(&next).into_response();
        if let Some(cookie) = ui.auth.session_cookie()
            && let Ok(value) = cookie.parse()
        {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    if !ui.auth.has_token() {
        return Redirect::to(&next).into_response();
    }
    let mut base = Base::new(&ui, &headers, "Sign in");
    base.error = Some(Failure {
        status: 401,
        kind: "Unauthorized".into(),
        message: "that is not this host's token".into(),
    });
    page(StatusCode::UNAUTHORIZED, &LoginPage { base, next })
}

pub(crate) async fn logout(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = ui.auth.check_form(&headers, &form.csrf) {
        return cross_site(&ui, &headers, r);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(value) = crate::auth::Auth::expired_cookie().parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_signing_in_only_pages_of_the_ui() {
        assert_eq!(
            next_page(Some("/ui/runs/x?run_id=1")),
            "/ui/runs/x?run_id=1"
        );
        for elsewhere in [
            None,
            Some("https://evil.example"),
            Some("//evil"),
            Some("/v1/types"),
        ] {
            assert_eq!(next_page(elsewhere), "/ui/runs", "{elsewhere:?}");
        }
    }

    #[test]
    fn a_start_form_becomes_the_apis_request() {
        let form = StartForm {
            workflow_type: "Order".into(),
            id: " o-1 ".into(),
            input: r#"{"item": "book"}"#.into(),
            timeout: "2m".into(),
            ..StartForm::default()
        };
        assert_eq!(
            start_request(&form).unwrap(),
            json!({"type": "Order", "id": "o-1", "input": {"item": "book"}, "timeout_ms": 120000})
        );
        let bare = StartForm {
            workflow_type: "Order".into(),
            ..StartForm::default()
        };
        assert_eq!(
            start_request(&bare).unwrap(),
            json!({"type": "Order", "input": {}})
        );
        let bad = StartForm {
            input: "{oops".into(),
            ..StartForm::default()
        };
        assert!(
            start_request(&bad)
                .unwrap_err()
                .message
                .contains("input is not JSON")
        );
        let bad = StartForm {
            timeout: "soon".into(),
            ..StartForm::default()
        };
        assert!(start_request(&bad).unwrap_err().message.contains("`soon`"));
    }
}
