//! [`WorkflowError`]: the typed error runs fail with, door rejections are,
//! and guests match on (SPEC 10).

use serde::{Deserialize, Serialize};
pub use wasmflow_protocol::ErrorKind;

/// A typed error: why a run failed, or why a request was rejected at the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WorkflowError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl WorkflowError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WorkflowError {
            kind,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A per-run or per-activation quota was exceeded.
    pub fn quota(limit: &str, value: u64, max: u64) -> Self {
        WorkflowError::new(
            ErrorKind::QuotaExceeded,
            format!("quota `{limit}` exceeded: {value} > {max}"),
        )
        .with_details(serde_json::json!({"limit": limit, "value": value, "max": max}))
    }
}
