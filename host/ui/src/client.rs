//! The API, called in-process: the UI is a client of the same routes
//! `wasmflow` and every other client use, so it gets the same checks and
//! the same errors; it never reaches the host itself.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;
use wasmflow_api::ErrorBody;

/// The most of an answer the UI reads (a listing of 100 runs with large
/// results fits).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// What a path segment may hold unescaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` as one path segment (or query value).
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// An API call that did not succeed: the API's `{kind, message}`, or what
/// kept the UI from reading an answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl Failure {
    fn unreadable(what: &str, e: impl std::fmt::Display) -> Self {
        Failure {
            status: 500,
            kind: "Internal".into(),
            message: format!("the UI cannot read the API's answer to {what}: {e}"),
        }
    }
}

/// The API router and the token it requires.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: Option<std::sync::Arc<str>>,
}

impl Api {
    pub fn new(router: Router, token: Option<std::sync::Arc<str>>) -> Self {
        Api { router, token }
    }

    /// `GET path` (with its query).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Failure> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Failure> {
        let what = format!("{method} {path}");
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|e| Failure::unreadable(&what, e))?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Failure::unreadable(&what, e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Failure::unreadable(&what, e));
        }
        let error: ErrorBody =
            serde_json::from_slice(&bytes).map_err(|e| Failure::unreadable(&what, e))?;
        Err(Failure {
            status: status.as_u16(),
            kind: error.kind,
            message: error.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn ids_are_escaped_as_one_segment() {
        assert_eq!(segment("order-1"), "order-1");
        assert_eq!(segment("a/b c?d#e"), "a%2Fb%20c%3Fd%23e");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
