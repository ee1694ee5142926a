//! Who may use the UI, and that a form was sent by the UI itself.
//!
//! With a token set, the UI asks for it once: the login form compares it
//! (in constant time) and sets a session cookie (`HttpOnly`,
//! `SameSite=Strict`, path `/ui`) whose value is a digest of the token, so
//! the cookie never holds the token itself and stops working when the token
//! changes. Every form carries a CSRF token: a digest of a key drawn when
//! the host starts and of the session, checked on every `POST`, with the
//! browser's `Sec-Fetch-Site` and `Origin` when it sends them. A form
//! rendered before the host restarted is refused with a page that says to
//! reload it.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use cookie::Cookie;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "wasmflow_session";

/// The UI's token, session and CSRF key.
#[derive(Clone)]
pub struct Auth {
    token: Option<Arc<str>>,
    /// The session cookie's value, with a token set.
    session: Option<String>,
    /// Drawn when the host starts.
    csrf_key: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not signed in (with a token set).
    SignedOut,
    /// A `POST` without the UI's CSRF token, or from another site.
    CrossSite(String),
}

impl Auth {
    pub fn new(token: Option<Arc<str>>) -> Self {
        let session = token
            .as_deref()
            .map(|t| digest(&["wasmflow-ui-session", t]));
        let csrf_key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Auth {
            token,
            session,
            csrf_key,
        }
    }

    /// Whether the UI asks for a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `presented` is the token.
    pub fn is_token(&self, presented: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Whether the request may see the UI: no token is set, or it carries
    /// the session cookie.
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        match &self.session {
            None => true,
            Some(session) => {
                cookie(headers).is_some_and(|c| bool::from(c.as_bytes().ct_eq(session.as_bytes())))
            }
        }
    }

    /// The `Set-Cookie` of a signed-in browser.
    pub fn session_cookie(&self) -> Option<String> {
        let session = self.session.as_deref()?;
        Some(
            Cookie::build((COOKIE, session))
                .http_only(true)
                .same_site(cookie::SameSite::Strict)
                .path("/ui")
                .build()
                .to_string(),
        )
    }

    /// The `Set-Cookie` that signs a browser out.
    pub fn expired_cookie() -> String {
        let mut gone = Cookie::build((COOKIE, ""))
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .path("/ui")
            .build();
        gone.make_removal();
        gone.to_string()
    }

    /// The CSRF token of the forms rendered for this request's session.
    pub fn csrf(&self, headers: &HeaderMap) -> String {
        let session = cookie(headers).unwrap_or_default();
        digest(&["wasmflow-ui-csrf", &self.csrf_key, &session])
    }

    /// Refuse a form not sent by the UI's own page: another site's (by
    /// `Sec-Fetch-Site`, or an `Origin` that is not this host), or one
    /// without this session's CSRF token.
    pub fn check_form(&self, headers: &HeaderMap, presented: &str) -> Result<(), Refused> {
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if matches!(fetch_site, Some("cross-site" | "same-site")) {
            return Err(Refused::CrossSite(
                "the form was sent from another site".into(),
            ));
        }
        if let (Some(origin), Some(host)) = (
            headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin != "null" && origin_host != host {
                return Err(Refused::CrossSite(format!(
                    "the form was sent from {origin}, not from this host ({host})"
                )));
            }
        }
        let expected = self.csrf(headers);
        if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(Refused::CrossSite(
                "the form is out of date (the host restarted, or you signed in again since it \
                 was shown): reload the page and send it again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The session cookie's value in a request.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// The hex SHA-256 of `parts`, each ended by a NUL.
fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let cookie = format!("other=1; {COOKIE}={value}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        headers
    }

    #[test]
    fn the_session_cookie_signs_in_and_holds_no_token() {
        let auth = Auth::new(Some("s3cret".into()));
        assert!(auth.is_token("s3cret") && !auth.is_token("s3cre") && !auth.is_token(""));
        assert!(!auth.signed_in(&HeaderMap::new()), "no cookie");
        assert!(
            !auth.signed_in(&with_cookie("s3cret")),
            "the token is no session"
        );
        let set = auth.session_cookie().unwrap();
        assert!(!set.contains("s3cret"), "{set}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
        let value = Cookie::parse(set).unwrap().value().to_owned();
        assert!(auth.signed_in(&with_cookie(&value)));
        let other = Auth::new(Some("another".into()));
        assert!(
            !other.signed_in(&with_cookie(&value)),
            "another token's session"
        );
        assert!(
            Auth::new(None).signed_in(&HeaderMap::new()),
            "no token, no login"
        );
    }

    #[test]
    fn forms_need_this_hosts_csrf_token_and_no_other_site() {
        let auth = Auth::new(None);
        let headers = HeaderMap::new();
        let token = auth.csrf(&headers);
        assert_eq!(auth.check_form(&headers, &token), Ok(()));
        assert!(matches!(
            auth.check_form(&headers, "forged"),
            Err(Refused::CrossSite(m)) if m.contains("reload")
        ));
        let restarted = Auth::new(None);
        assert!(restarted.check_form(&headers, &token).is_err(), "a new key");

        let mut cross = HeaderMap::new();
        cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(auth.check_form(&cross, &auth.csrf(&cross)).is_err());

        let mut origin = HeaderMap::new();
        origin.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7420"));
        origin.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(auth.check_form(&origin, &auth.csrf(&origin)).is_err());
        origin.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7420"),
        );
        assert_eq!(auth.check_form(&origin, &auth.csrf(&origin)), Ok(()));
    }
}
