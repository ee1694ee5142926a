//! What `wasmflow` logs and exports: the tracing subscriber (text or JSON
//! lines on stderr, colours only on a terminal) and, for `serve
//! --otlp-endpoint`, the OpenTelemetry span sink the host's spans go to: a
//! batch span processor over the OTLP/HTTP (protobuf) exporter, which posts
//! with `ureq` from the processor's own thread. Nothing of OpenTelemetry is
//! set up without an endpoint.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanExporter, SpanProcessor};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `time LEVEL target: message key=value ...`, for people.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `target`, `message`
    /// and the fields at the top level), for log shippers.
    Json,
}

/// Install the subscriber: `filter` unless `RUST_LOG` says otherwise.
pub fn init_logs(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        // No span objects: a line names a run through its own fields, once
        // (the lifecycle lines are root events, which the JSON formatter
        // would still give the current span).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// The URL traces are posted to, from an OTLP endpoint: the base URL (as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` has it) plus `/v1/traces`, unless it
/// already ends so.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!(
            "the OTLP endpoint `{endpoint}` must be an `http://` URL (OTLP over HTTP, e.g. \
             http://127.0.0.1:4318; for TLS, run a collector beside the host)"
        )
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        anyhow::bail!("the OTLP endpoint `{endpoint}` has no host (e.g. http://127.0.0.1:4318)");
    }
    if endpoint.ends_with("/v1/traces") {
        Ok(endpoint.to_owned())
    } else {
        Ok(format!("{endpoint}/v1/traces"))
    }
}

/// The OTLP export of a `serve`: hand [`Otlp::sink`] to the host, and
/// [`Otlp::shutdown`] once it has stopped.
pub struct Otlp {
    processor: Arc<BatchSpanProcessor>,
    url: String,
}

impl Otlp {
    /// Export to `endpoint` (see [`traces_url`]). Nothing is sent yet: a
    /// collector that is not up is logged at the first export, not here.
    pub fn new(endpoint: &str) -> anyhow::Result<Otlp> {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(UreqClient::new(EXPORT_TIMEOUT))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("cannot set up the OTLP exporter")?;
        let mut processor = BatchSpanProcessor::builder(Logged {
            inner: exporter,
            url: url.clone(),
        })
        .build();
        // `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are read here.
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("wasmflow");
        }
        processor.set_resource(&resource.build());
        Ok(Otlp {
            processor: Arc::new(processor),
            url,
        })
    }

    /// Where the host's spans go.
    pub fn sink(&self) -> Arc<dyn SpanProcessor> {
        self.processor.clone()
    }

    /// Where the spans are posted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Export what is still queued and stop the export thread (blocking,
    /// at most a few seconds).
    pub fn shutdown(self) {
        if let Err(e) = self.processor.shutdown_with_timeout(EXPORT_TIMEOUT) {
            tracing::warn!(url = %self.url, error = %e, "the last spans could not be exported");
        }
    }
}

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter, with its failures logged: a collector that is down loses
/// spans, never a run.
#[derive(Debug)]
struct Logged<E> {
    inner: E,
    url: String,
}

impl<E: SpanExporter> SpanExporter for Logged<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            tracing::warn!(url = %self.url, spans, error = %e, "cannot export spans");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter's HTTP client: `ureq`, blocking, which suits the batch
/// processor's own thread (no async runtime there).
#[derive(Debug)]
struct UreqClient {
    agent: ureq::Agent,
}

impl UreqClient {
    fn new(timeout: Duration) -> UreqClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        UreqClient { agent }
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let mut response = self.agent.run(request)?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

/// A collector's answer is a small protobuf message; more is not read.
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_is_the_endpoint_and_v1_traces() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert!(traces_url("https://collector:4318").is_err());
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("http://").is_err());
    }
}
