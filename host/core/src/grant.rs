//! Grants (SPEC 13): what an operator allows a plugin to reach. Pure data
//! and the checks over it; the sandbox applies them to each outbound
//! request, the host's config file builds them.
//!
//! A grant names a target by scheme, host and port, the methods allowed,
//! and the secrets the host may substitute into requests to it. The target
//! of a request is taken from its URL, never a header. Loopback, private,
//! link-local and other non-public addresses are refused unless the grant
//! names that address literally (`127.0.0.1:9100`) or says
//! `allow_private`; the address a host name resolves to is checked too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// A secret's value. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that substitutes it into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One target a plugin may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower case: a name, an IPv4 address, or an IPv6 address without
    /// brackets.
    pub host: String,
    pub port: u16,
    /// Upper case; empty means every method.
    pub methods: Vec<String>,
    /// The secrets the host substitutes into requests to this target.
    pub secrets: BTreeMap<String, Secret>,
    /// A host name of this grant may resolve to a loopback, private or
    /// link-local address.
    pub allow_private: bool,
}

impl HttpGrant {
    /// `scheme://host:port`, as messages name it.
    pub fn target(&self) -> String {
        format!("{}://{}", self.scheme, authority(&self.host, self.port))
    }

    /// Whether this grant names `ip` itself.
    fn names(&self, ip: IpAddr) -> bool {
        self.host.parse::<IpAddr>().is_ok_and(|h| h == ip)
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Everything one run may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Who they are for, as messages name it: ``plugin `a.wasm` (workflow
    /// type `Payment`)``.
    pub who: String,
    pub http: Vec<HttpGrant>,
}

impl Grants {
    /// The grant for a request, or why there is none. `who` names the
    /// plugin in the message.
    pub fn find(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        method: &str,
    ) -> Result<&HttpGrant, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let target = format!("{scheme}://{}", authority(&host, port));
        let who = &self.who;
        let Some(grant) = self
            .http
            .iter()
            .find(|g| g.scheme == scheme && g.host == host && g.port == port)
        else {
            return Err(format!("{who} has no grant for {target}"));
        };
        if !grant.methods.is_empty() && !grant.methods.iter().any(|m| m == method) {
            return Err(format!(
                "{who} may not send {method} to {target} (granted: {})",
                grant.methods.join(", ")
            ));
        }
        Ok(grant)
    }
}

/// Why `ip` may not be reached: it is loopback, private, link-local or
/// otherwise not a public address. `None` for a public address.
pub fn restricted_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || v4.is_broadcast() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_multicast() || o[0] >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_range(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private")
            } else if v6.is_multicast() {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// Check an address a request would connect to against its grant.
pub fn check_address(grant: &HttpGrant, ip: IpAddr) -> Result<(), String> {
    match restricted_range(ip) {
        Some(range) if !grant.allow_private && !grant.names(ip) => Err(format!(
            "{} resolves to {ip}, a {range} address; a grant reaches such an address only \
             when it names it or sets allow_private",
            grant.target()
        )),
        _ => Ok(()),
    }
}

/// The placeholder a guest writes in a header value for a granted secret.
pub const SECRET_OPEN: &str = "{{secret:";
const SECRET_CLOSE: &str = "}}";

/// `value` with every `{{secret:NAME}}` replaced by the secret's value, if
/// the grant has every secret named; the error names the first that it has
/// not. `None`: the value has no placeholder.
pub fn substitute_secrets(
    value: &str,
    grant: &HttpGrant,
    who: &str,
) -> Result<Option<String>, String> {
    if !value.contains(SECRET_OPEN) {
        return Ok(None);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + SECRET_OPEN.len()..];
        let Some(end) = after.find(SECRET_CLOSE) else {
            return Err("a secret placeholder is not closed with `}}`".into());
        };
        let name = &after[..end];
        let Some(secret) = grant.secrets.get(name) else {
            return Err(format!(
                "{who} may not use secret `{}` in requests to {}",
                crate::model::shorten(name),
                grant.target()
            ));
        };
        out.push_str(secret.expose());
        rest = &after[end + SECRET_CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Limits of outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// A request's whole time: connect, send, the response and its body.
    pub timeout: Duration,
    /// The largest response body a task may read.
    pub max_response_bytes: u64,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            timeout: crate::limits::OUTBOUND_TIMEOUT,
            max_response_bytes: crate::limits::MAX_RESPONSE_BYTES,
        }
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A plugin, by file name (`order-payment.wasm`).
    Plugin(String),
    /// A workflow type, whatever plugin provides it.
    WorkflowType(String),
}

/// Every grant of the operator's config.
#[derive(Debug, Clone, Default)]
pub struct GrantTable {
    pub grants: Vec<(Grantee, HttpGrant)>,
    pub limits: OutboundLimits,
}

impl GrantTable {
    /// What a run of `workflow_type` from plugin file `plugin` may reach.
    pub fn for_run(&self, plugin: Option<&str>, workflow_type: &str) -> Arc<Grants> {
        let http = self
            .grants
            .iter()
            .filter(|(who, _)| match who {
                Grantee::Plugin(file) => plugin == Some(file.as_str()),
                Grantee::WorkflowType(t) => t == workflow_type,
            })
            .map(|(_, g)| g.clone())
            .collect();
        let who = match plugin {
            Some(file) => format!("plugin `{file}` (workflow type `{workflow_type}`)"),
            None => format!("workflow type `{workflow_type}`"),
        };
        Arc::new(Grants { who, http })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(host: &str, port: u16) -> HttpGrant {
        HttpGrant {
            scheme: "http".into(),
            host: host.into(),
            port,
            methods: vec!["POST".into()],
            secrets: BTreeMap::from([("token".to_owned(), Secret::new("s3cr3t"))]),
            allow_private: false,
        }
    }

    #[test]
    fn a_grant_is_found_by_scheme_host_port_and_method() {
        let grants = Grants {
            who: "p".into(),
            http: vec![grant("127.0.0.1", 9100), grant("pay.example", 80)],
        };
        assert!(grants.find("http", "127.0.0.1", 9100, "POST").is_ok());
        assert!(grants.find("http", "PAY.example", 80, "POST").is_ok());
        let port = grants.find("http", "127.0.0.1", 9101, "POST").unwrap_err();
        assert_eq!(port, "p has no grant for http://127.0.0.1:9101");
        let scheme = grants.find("https", "127.0.0.1", 9100, "POST").unwrap_err();
        assert!(scheme.contains("https://127.0.0.1:9100"), "{scheme}");
        let method = grants.find("http", "127.0.0.1", 9100, "GET").unwrap_err();
        assert!(method.contains("may not send GET"), "{method}");
        assert!(Grants::default().find("http", "a", 1, "GET").is_err());
    }

    #[test]
    fn restricted_ranges_need_a_literal_grant_or_allow_private() {
        let literal = grant("127.0.0.1", 9100);
        assert!(check_address(&literal, "127.0.0.1".parse().unwrap()).is_ok());
        let named = grant("localhost", 9100);
        let err = check_address(&named, "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(
                check_address(&named, ip.parse().unwrap()).is_err(),
                "{ip} must be refused"
            );
        }
        assert!(check_address(&named, "93.184.216.34".parse().unwrap()).is_ok());
        let open = HttpGrant {
            allow_private: true,
            ..named
        };
        assert!(check_address(&open, "10.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn secrets_are_substituted_only_when_granted() {
        let g = grant("127.0.0.1", 9100);
        assert_eq!(substitute_secrets("Bearer x", &g, "p").unwrap(), None);
        assert_eq!(
            substitute_secrets("Bearer {{secret:token}}!", &g, "p").unwrap(),
            Some("Bearer s3cr3t!".into())
        );
        let err = substitute_secrets("{{secret:other}}", &g, "p").unwrap_err();
        assert!(
            err.contains("secret `other`") && !err.contains("s3cr3t"),
            "{err}"
        );
        assert!(substitute_secrets("{{secret:token", &g, "p").is_err());
        assert_eq!(format!("{:?}", Secret::new("s3cr3t")), "Secret(***)");
    }

    #[test]
    fn a_run_gets_the_grants_of_its_plugin_and_its_type() {
        let table = GrantTable {
            grants: vec![
                (Grantee::Plugin("a.wasm".into()), grant("1.1.1.1", 80)),
                (
                    Grantee::WorkflowType("Payment".into()),
                    grant("2.2.2.2", 80),
                ),
            ],
            limits: OutboundLimits::default(),
        };
        assert_eq!(table.for_run(Some("a.wasm"), "Payment").http.len(), 2);
        assert_eq!(table.for_run(Some("b.wasm"), "Payment").http.len(), 1);
        assert_eq!(table.for_run(None, "Order").http.len(), 0);
    }
}
