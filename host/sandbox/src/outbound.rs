//! Outbound HTTP (`wasi:http/outgoing-handler`) under the operator's grants
//! (SPEC 13), linked through `wasmtime-wasi-http`.
//!
//! Every request a guest sends passes [`Outbound::send_request`] first: it is
//! refused outside a task (its outcome would not be recorded) and unless a
//! grant names its scheme, host, port and method; the address it connects to
//! is resolved and checked here (loopback, private and link-local need the
//! grant to name them), and plain-HTTP requests go to that checked address,
//! so a second lookup cannot rebind the name. Secret placeholders in header
//! values are replaced only on requests to a grant that lists the secret.
//! Each request has a timeout, the response body a size cap; each is
//! recorded for the task attempt (method, scheme, host and port, path,
//! status, duration; never headers, query strings or secrets).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmflow_core::activation::{HostServices, RunIdentity, StubRequest, StubResponse};
use wasmflow_core::grant::{Grants, HttpGrant, OutboundLimits, check_address, substitute_secrets};
use wasmflow_core::journal::OutboundRequest;
use wasmflow_core::limits::MAX_REQUESTS_PER_ATTEMPT;
use wasmflow_core::{ErrorKind, WorkflowError};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// What the requests of the open task attempt did; shared between the
/// activation's state and the requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    /// The task whose attempt is open; `None`: requests are refused.
    pub task: Option<String>,
    pub requests: Vec<OutboundRequest>,
    /// Why a request of this attempt was refused or cut: the attempt's
    /// error, if it fails.
    pub refusal: Option<WorkflowError>,
    /// A request outside any task: the activation fails with it.
    pub violation: Option<WorkflowError>,
}

/// The `wasi:http` hooks of one activation.
pub(crate) struct Outbound {
    pub scope: Arc<Mutex<Scope>>,
    grants: Arc<Grants>,
    limits: OutboundLimits,
    /// Where stubbed responses come from (a test harness), and the run
    /// (its workflow type) they are looked up by.
    stubs: Option<(Arc<dyn HostServices>, Arc<RunIdentity>)>,
}

impl Outbound {
    pub fn new(
        grants: Arc<Grants>,
        limits: OutboundLimits,
        stubs: Option<(Arc<dyn HostServices>, Arc<RunIdentity>)>,
    ) -> Self {
        Outbound {
            scope: Arc::default(),
            grants,
            limits,
            stubs,
        }
    }

    /// The stubbed response to a request to `target`, if a test gave one.
    fn stubbed(&self, target: &Target) -> Option<StubResponse> {
        let (services, run) = self.stubs.as_ref()?;
        let request = StubRequest {
            method: target.method.clone(),
            url: target.url(),
        };
        services.stubbed_http(&run.workflow_type, &request)
    }

    /// Allow requests for `task`'s attempt.
    pub fn open(&self, task: &str) {
        if let Ok(mut scope) = self.scope.lock() {
            scope.task = Some(task.to_owned());
            scope.requests.clear();
            scope.refusal = None;
        }
    }

    /// Close the attempt: its requests and why one was refused, if one was.
    pub fn close(&self) -> (Vec<OutboundRequest>, Option<WorkflowError>) {
        match self.scope.lock() {
            Ok(mut scope) => {
                scope.task = None;
                (std::mem::take(&mut scope.requests), scope.refusal.take())
            }
            Err(_) => (Vec::new(), None),
        }
    }

    /// A request made outside any task, if one was.
    pub fn violation(&self) -> Option<WorkflowError> {
        self.scope.lock().ok().and_then(|s| s.violation.clone())
    }
}

/// A response and the future that drives its connection.
type Answer = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

type Sent = Result<Answer, HttpError>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        drop(fut);
        let target = Target::of(&request);
        let scope = self.scope.clone();
        let grants = self.grants.clone();
        let limits = self.limits;
        // Decided now, as the guest sends: whether a task is open.
        let open = {
            let mut s = match scope.lock() {
                Ok(s) => s,
                Err(_) => return Box::new(async { Err(HttpError::HttpRequestDenied) }),
            };
            match &s.task {
                None => {
                    let error = WorkflowError::new(
                        ErrorKind::CapabilityDenied,
                        format!(
                            "outbound HTTP outside a task is refused ({} {}): run it inside \
                             `ctx.task` so that its outcome is recorded",
                            target.method,
                            target.display()
                        ),
                    );
                    s.violation.get_or_insert(error);
                    false
                }
                Some(_) if s.requests.len() >= MAX_REQUESTS_PER_ATTEMPT => {
                    let error = WorkflowError::quota(
                        "max_requests_per_attempt",
                        s.requests.len() as u64 + 1,
                        MAX_REQUESTS_PER_ATTEMPT as u64,
                    );
                    s.refusal.get_or_insert(error);
                    false
                }
                Some(_) => true,
            }
        };
        let stubbed = if open { self.stubbed(&target) } else { None };
        Box::new(async move {
            if !open {
                return Err(HttpError::HttpRequestDenied);
            }
            let started = Instant::now();
            let result = match stubbed {
                Some(stub) => stub_response(stub, request.into_body()),
                None => send(request, options, &target, &grants, limits, &scope).await,
            };
            let (status, error) = match &result {
                Ok((response, _)) => (Some(response.status().as_u16()), None),
                Err(Refused::Denied(e)) | Err(Refused::Failed(e, _)) => {
                    (None, Some(e.message.clone()))
                }
                Err(Refused::Http(e)) => (None, Some(format!("{e:?}"))),
            };
            if let Ok(mut s) = scope.lock() {
                s.requests.push(OutboundRequest {
                    method: target.method.clone(),
                    scheme: target.scheme.clone(),
                    authority: wasmflow_core::grant::authority(&target.host, target.port),
                    path: target.path.clone(),
                    status,
                    duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    error,
                });
                if let Err(Refused::Denied(e) | Refused::Failed(e, _)) = &result {
                    s.refusal.get_or_insert(e.clone());
                }
            }
            match result {
                Ok(sent) => Ok(sent),
                Err(Refused::Denied(_)) => Err(HttpError::HttpRequestDenied),
                Err(Refused::Failed(_, code)) => Err(code),
                Err(Refused::Http(e)) => Err(e),
            }
        })
    }
}

/// Why a request did not get a response.
enum Refused {
    /// No grant allows it.
    Denied(WorkflowError),
    /// It ran out of time, or its response is over the cap: the attempt's
    /// error, and what the guest's client is told.
    Failed(WorkflowError, HttpError),
    /// The connection or the protocol failed.
    Http(HttpError),
}

/// Where a request goes, from its URL.
struct Target {
    method: String,
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn of(request: &http::Request<WasiBody>) -> Self {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        Target {
            method: request.method().as_str().to_owned(),
            scheme,
            host,
            port,
            path: uri.path().to_owned(),
        }
    }

    /// `scheme://host[:port]/path`, the port only when it is not the
    /// scheme's default: how a test names a URL it stubs.
    fn url(&self) -> String {
        let default_port = if self.scheme == "http" { 80 } else { 443 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            format!("{}://{host}{}", self.scheme, self.path)
        } else {
            format!("{}://{host}:{}{}", self.scheme, self.port, self.path)
        }
    }

    fn display(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            wasmflow_core::grant::authority(&self.host, self.port),
            self.path
        )
    }
}

fn denied(message: String) -> Refused {
    Refused::Denied(WorkflowError::new(ErrorKind::CapabilityDenied, message))
}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: &Target,
    grants: &Grants,
    limits: OutboundLimits,
    scope: &Arc<Mutex<Scope>>,
) -> Result<Answer, Refused> {
    let grant = grants
        .find(&target.scheme, &target.host, target.port, &target.method)
        .map_err(denied)?;
    for value in request.headers_mut().values_mut() {
        let Ok(text) = value.to_str() else { continue };
        if let Some(replaced) = substitute_secrets(text, grant, &grants.who).map_err(denied)? {
            *value = http::HeaderValue::from_str(&replaced)
                .map_err(|_| denied("a secret's value is not a valid header value".into()))?;
            value.set_sensitive(true);
        }
    }
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let address = resolve(grant, target, deadline).await?;
    if target.scheme == "http" {
        // Connect to the address that was checked, not to a name that could
        // resolve elsewhere the second time (the Host header keeps the name).
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(address.to_string())
            .path_and_query(path)
            .build()
            .map_err(|e| denied(format!("the request URL cannot be rebuilt: {e}")))?;
        *request.uri_mut() = uri;
    }
    let options = RequestOptions {
        connect_timeout: Some(shorter(options.and_then(|o| o.connect_timeout), limits)),
        first_byte_timeout: Some(shorter(options.and_then(|o| o.first_byte_timeout), limits)),
        between_bytes_timeout: Some(shorter(
            options.and_then(|o| o.between_bytes_timeout),
            limits,
        )),
    };
    let timed_out = || {
        let error = WorkflowError::new(
            ErrorKind::Application,
            format!(
                "{} {} timed out after {} ms (outbound timeout_ms)",
                target.method,
                target.display(),
                limits.timeout.as_millis()
            ),
        );
        Refused::Failed(error, HttpError::ConnectionTimeout)
    };
    let (response, io) = tokio::time::timeout_at(deadline, async {
        let request = without_empty_body(request).await?;
        wasmtime_wasi_http::default_send_request(request, Some(options)).await
    })
    .await
    .map_err(|_| timed_out())?
    .map_err(Refused::Http)?;
    let cap = limits.max_response_bytes;
    let url = target.display();
    let too_big = move |n: u64| {
        WorkflowError::quota("max_response_bytes", n, cap).with_details(serde_json::json!({
            "limit": "max_response_bytes",
            "value": n,
            "max": cap,
            "url": url,
        }))
    };
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > cap
    {
        return Err(Refused::Failed(
            too_big(length),
            HttpError::HttpResponseBodySize(Some(cap)),
        ));
    }
    let scope = scope.clone();
    let over = move |n: u64| {
        if let Ok(mut s) = scope.lock() {
            s.refusal.get_or_insert(too_big(n));
        }
    };
    let response = response.map(|body| {
        Capped {
            inner: body,
            read: 0,
            cap,
            deadline,
            over: Box::new(over),
        }
        .boxed_unsync()
    });
    Ok((response, Box::new(io)))
}

/// A stubbed response as the guest's client receives a real one. Its
/// connection reads the request body to its end, as a server does: a body
/// dropped unread would fail the guest's writes still under way.
fn stub_response(stub: StubResponse, mut request: WasiBody) -> Result<Answer, Refused> {
    let bad = |what: String| {
        Refused::Denied(WorkflowError::new(
            ErrorKind::Application,
            format!("the test's stubbed response is not valid HTTP: {what}"),
        ))
    };
    let mut response = http::Response::builder().status(stub.status);
    for (name, value) in &stub.headers {
        response = response.header(name, value);
    }
    let body = http_body_util::Full::new(Bytes::from(stub.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let response = response.body(body).map_err(|e| bad(e.to_string()))?;
    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async move {
        while let Some(frame) = request.frame().await {
            frame?;
        }
        Ok(())
    });
    Ok((response, io))
}

/// The guest's timeout, if shorter than the outbound timeout.
fn shorter(guest: Option<std::time::Duration>, limits: OutboundLimits) -> std::time::Duration {
    guest.map_or(limits.timeout, |g| g.min(limits.timeout))
}

/// The address to connect to: the URL's IP, or what its name resolves to,
/// checked against the grant.
async fn resolve(
    grant: &HttpGrant,
    target: &Target,
    deadline: tokio::time::Instant,
) -> Result<SocketAddr, Refused> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        check_address(grant, ip).map_err(denied)?;
        return Ok(SocketAddr::new(ip, target.port));
    }
    let found = tokio::time::timeout_at(
        deadline,
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| denied(format!("resolving {} timed out", target.host)))?
    .map_err(|e| denied(format!("cannot resolve {}: {e}", target.host)))?;
    let addresses: Vec<SocketAddr> = found.collect();
    // Every address the name has must be allowed: the connection could go
    // to any of them.
    for address in &addresses {
        check_address(grant, address.ip()).map_err(denied)?;
    }
    addresses
        .into_iter()
        .next()
        .ok_or_else(|| denied(format!("{} resolves to no address", target.host)))
}

/// `request`, sent without a body when its body turns out to be empty.
///
/// A guest's body has no length until it is finished, so the client would
/// frame even an empty one as chunked — and a server that answers a GET
/// without reading that empty body may reset the connection. A request with
/// a `Content-Length` is framed by it and left alone.
async fn without_empty_body(
    request: http::Request<WasiBody>,
) -> Result<http::Request<WasiBody>, HttpError> {
    if request.headers().contains_key(http::header::CONTENT_LENGTH) {
        return Ok(request);
    }
    let (parts, mut body) = request.into_parts();
    let body = match body.frame().await.transpose()? {
        None => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
        Some(first) => Prepended {
            first: Some(first),
            rest: body,
        }
        .boxed_unsync(),
    };
    Ok(http::Request::from_parts(parts, body))
}

/// A body whose first frame was read already.
struct Prepended {
    first: Option<Frame<Bytes>>,
    rest: WasiBody,
}

impl Body for Prepended {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(Ok(first))),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

/// A response body that fails once more than `cap` bytes were read, or the
/// request's deadline passed.
struct Capped<B> {
    inner: B,
    read: u64,
    cap: u64,
    deadline: tokio::time::Instant,
    over: Box<dyn Fn(u64) + Send>,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if tokio::time::Instant::now() >= self.deadline {
            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            self.read += data.len() as u64;
            if self.read > self.cap {
                let read = self.read;
                (self.over)(read);
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.cap)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &'static str) -> WasiBody {
        http_body_util::Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// Like a guest's outgoing body: no length, and its end is known only
    /// once polled.
    struct Unsized;

    impl Body for Unsized {
        type Data = Bytes;
        type Error = HttpError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
            Poll::Ready(None)
        }
    }

    async fn sent(body: WasiBody, length: Option<&str>) -> (bool, Bytes) {
        let mut request = http::Request::get("http://127.0.0.1:1/")
            .body(body)
            .unwrap();
        if let Some(length) = length {
            request.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_str(length).unwrap(),
            );
        }
        let body = without_empty_body(request).await.unwrap().into_body();
        let end = body.is_end_stream();
        (end, body.collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn an_empty_body_is_sent_as_none_and_a_full_one_whole() {
        let unsized_body = Unsized.boxed_unsync();
        assert!(
            !unsized_body.is_end_stream(),
            "its end is not known up front"
        );
        let (end, bytes) = sent(unsized_body, None).await;
        assert!(end, "an empty body is no body: nothing to frame as chunked");
        assert!(bytes.is_empty());
        let (end, bytes) = sent(full("abc"), None).await;
        assert!(!end);
        assert_eq!(&bytes[..], b"abc", "the first frame is kept");
        let (_, bytes) = sent(full("xy"), Some("2")).await;
        assert_eq!(&bytes[..], b"xy", "a body with a length is left alone");
    }
}
