//! Task outcomes and HTTP responses given by the test instead of running
//! the tasks and sending the requests.

use std::collections::HashMap;
use std::sync::Mutex;

use wasmflow_host::activation::{StubRequest, StubResponse};
use wasmflow_host::journal::TaskResult;
use wasmflow_host::{ErrorKind, WorkflowError};

/// What a stubbed task returns: its value, or an error of a kind.
pub type StubOutcome = Result<serde_json::Value, (ErrorKind, String)>;

/// A response a stubbed URL answers with ([`crate::Harness::stub_http`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with `status` and `value` as its JSON body
    /// (`content-type: application/json`).
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        HttpResponse::status(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// A response with `status` and a plain-text body.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        HttpResponse::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into())
    }

    /// The response with a header added.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The response with `body` as its body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// Which requests an HTTP stub answers: `[METHOD ]URL[*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlPattern {
    method: Option<String>,
    url: String,
    prefix: bool,
}

impl UrlPattern {
    fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim();
        let (method, url) = match pattern.split_once(' ') {
            Some((method, url)) => (Some(method.to_ascii_uppercase()), url.trim()),
            None => (None, pattern),
        };
        let (url, prefix) = match url.strip_suffix('*') {
            Some(url) => (url, true),
            None => (url, false),
        };
        UrlPattern {
            method,
            url: url.to_owned(),
            prefix,
        }
    }

    fn matches(&self, request: &StubRequest) -> bool {
        let method = self
            .method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&request.method));
        let url = if self.prefix {
            request.url.starts_with(&self.url)
        } else {
            request.url == self.url
        };
        method && url
    }

    /// Longer patterns are more specific; a method more than none; an exact
    /// URL more than a prefix.
    fn specificity(&self) -> (usize, bool, bool) {
        (self.url.len(), !self.prefix, self.method.is_some())
    }
}

/// The responses of one URL pattern: given in order, the last repeated.
#[derive(Debug)]
struct HttpStub {
    pattern: UrlPattern,
    responses: Vec<HttpResponse>,
    served: usize,
}

/// The stubs of a harness: tasks by task name (any workflow type) or by
/// workflow type and task name; HTTP responses by URL pattern.
#[derive(Debug, Default)]
pub(crate) struct Stubs {
    tasks: Mutex<HashMap<(Option<String>, String), StubOutcome>>,
    http: Mutex<Vec<HttpStub>>,
}

impl Stubs {
    pub(crate) fn set(&self, workflow_type: Option<&str>, task: &str, outcome: StubOutcome) {
        let mut stubs = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        stubs.insert((workflow_type.map(str::to_owned), task.to_owned()), outcome);
    }

    pub(crate) fn clear(&self, task: &str) {
        let mut stubs = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        stubs.retain(|(_, name), _| name != task);
    }

    /// Answer requests matching `pattern` with `responses` in order, the
    /// last one repeated; replaces an earlier stub of the same pattern.
    /// No responses: the pattern is no longer stubbed.
    pub(crate) fn set_http(&self, pattern: &str, responses: Vec<HttpResponse>) {
        let pattern = UrlPattern::parse(pattern);
        let mut stubs = self.http.lock().unwrap_or_else(|p| p.into_inner());
        stubs.retain(|s| s.pattern != pattern);
        if !responses.is_empty() {
            stubs.push(HttpStub {
                pattern,
                responses,
                served: 0,
            });
        }
    }

    /// How many requests the stub of `pattern` answered.
    pub(crate) fn served(&self, pattern: &str) -> usize {
        let pattern = UrlPattern::parse(pattern);
        let stubs = self.http.lock().unwrap_or_else(|p| p.into_inner());
        stubs
            .iter()
            .find(|s| s.pattern == pattern)
            .map_or(0, |s| s.served)
    }
}

impl wasmflow_host::activation::Stubs for Stubs {
    fn task(&self, workflow_type: &str, task: &str) -> Option<TaskResult> {
        let stubs = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = stubs
            .get(&(Some(workflow_type.to_owned()), task.to_owned()))
            .or_else(|| stubs.get(&(None, task.to_owned())))?;
        Some(match outcome {
            Ok(value) => TaskResult::Value(value.clone()),
            Err((kind, message)) => TaskResult::Error(WorkflowError::new(*kind, message.clone())),
        })
    }

    fn http(&self, _workflow_type: &str, request: &StubRequest) -> Option<StubResponse> {
        let mut stubs = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let stub = stubs
            .iter_mut()
            .filter(|s| s.pattern.matches(request))
            .max_by_key(|s| s.pattern.specificity())?;
        let index = stub.served.min(stub.responses.len().saturating_sub(1));
        stub.served += 1;
        let response = stub.responses.get(index)?.clone();
        Some(StubResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflow_host::activation::Stubs as _;

    fn request(method: &str, url: &str) -> StubRequest {
        StubRequest {
            method: method.to_owned(),
            url: url.to_owned(),
        }
    }

    #[test]
    fn the_most_specific_pattern_answers_and_the_last_response_repeats() {
        let stubs = Stubs::default();
        stubs.set_http("https://api.test/*", vec![HttpResponse::status(404)]);
        stubs.set_http(
            "POST https://api.test/charges",
            vec![
                HttpResponse::status(503),
                HttpResponse::json(201, serde_json::json!({})),
            ],
        );
        let status = |m, u| stubs.http("T", &request(m, u)).map(|r| r.status);
        assert_eq!(status("POST", "https://api.test/charges"), Some(503));
        assert_eq!(status("POST", "https://api.test/charges"), Some(201));
        assert_eq!(status("POST", "https://api.test/charges"), Some(201));
        assert_eq!(status("GET", "https://api.test/charges"), Some(404));
        assert_eq!(status("GET", "https://other.test/"), None);
        assert_eq!(stubs.served("POST https://api.test/charges"), 3);
        stubs.set_http("POST https://api.test/charges", Vec::new());
        assert_eq!(status("POST", "https://api.test/charges"), Some(404));
    }
}
