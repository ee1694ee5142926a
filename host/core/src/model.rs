//! The host's model (SPEC 2): run ids, workflow types and their handlers as
//! `describe` reports them, directives, pending activations, child starts
//! and history events. Pure data; no I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use wasmflow_protocol::payload::{self, Binding, Param};
use wasmflow_protocol::{ClosePolicy, ErrorKind, HandlerKind};

use crate::error::WorkflowError;
use crate::schema::ParamSchema;

/// A JSON document kept as text: the host stores and forwards values without
/// re-parsing them.
pub type Json = Box<RawValue>;

/// Parse JSON text that came from outside (a user, a guest, a file, a
/// database row): valid, nested at most [`MAX_JSON_DEPTH`] deep, and with
/// every number representable, so that [`json_value`] can always read it.
/// The one check of JSON at every entry; [`guest_json`] adds the size bound.
///
/// [`MAX_JSON_DEPTH`]: crate::limits::MAX_JSON_DEPTH
pub fn parse_json(text: &str, what: &str) -> Result<Json, WorkflowError> {
    let json = serde_json::from_str::<Json>(text).map_err(|e| {
        WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!("{what} is not valid JSON: {e}"),
        )
    })?;
    check_readable(json.get(), crate::limits::MAX_JSON_DEPTH)
        .map_err(|e| WorkflowError::new(ErrorKind::InvalidPayload, format!("{what} {e}")))?;
    Ok(json)
}

/// JSON a guest hands the host (a result, a store value, an event payload, a
/// child input, a query answer): at most `max_bytes` long
/// (`QuotaExceeded`, naming `max_value_bytes`), then [`parse_json`].
pub fn guest_json(text: &str, what: &str, max_bytes: usize) -> Result<Json, WorkflowError> {
    if text.len() > max_bytes {
        return Err(WorkflowError::quota(
            "max_value_bytes",
            text.len() as u64,
            max_bytes as u64,
        ));
    }
    parse_json(text, what)
}

/// Why valid JSON text could not be read back as a value: it nests deeper
/// than `max_depth`, or has a number out of range (`1e400`). One pass, no
/// recursion: the text is already known to be valid JSON.
fn check_readable(text: &str, max_depth: usize) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(format!(
                        "nests arrays and objects deeper than {max_depth} levels (max_json_depth)"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let number = &text[start..i];
                let plain = number.len() <= 18 && !number.contains(['.', 'e', 'E']);
                if !plain && !number.parse::<f64>().is_ok_and(f64::is_finite) {
                    let shown: String = number.chars().take(40).collect();
                    return Err(format!("has a number out of range: {shown}"));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// A [`Json`] document as a parsed value. Never fails for a document that
/// came through [`parse_json`] (every `Json` the host stores or reads back
/// does); for another one it says why it cannot be read (`InvalidPayload`),
/// never a default.
pub fn json_value(json: &Json) -> Result<serde_json::Value, WorkflowError> {
    serde_json::from_str(json.get()).map_err(|e| {
        WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!("stored JSON cannot be read: {e}"),
        )
    })
}

/// `null` as a [`Json`].
pub fn json_null() -> Json {
    RawValue::from_string("null".to_owned()).expect("`null` is valid JSON")
}

/// The id of one run: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(uuid::Uuid);

impl RunId {
    pub fn new() -> Self {
        RunId(uuid::Uuid::now_v7())
    }

    /// The id's 128 bits.
    pub fn as_u128(self) -> u128 {
        self.0.as_u128()
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(RunId)
    }
}

impl Serialize for RunId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'_, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One parameter of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub optional: bool,
    /// The JSON Schema its values must fit (checked at the door); `None`:
    /// any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<ParamSchema>,
}

impl ParamSpec {
    /// What the parameter accepts, in JSON terms ("a string", "any value").
    pub fn type_summary(&self) -> &str {
        self.schema
            .as_ref()
            .map_or("any value", ParamSchema::summary)
    }
}

/// One handler of a workflow type, as `describe` reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerSpec {
    pub name: String,
    pub kind: HandlerKind,
    pub params: Vec<ParamSpec>,
    #[serde(with = "opt_ms", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl HandlerSpec {
    /// Check `payload` against the parameters (SPEC 4): the keys, then each
    /// value against its parameter's schema, naming what is wrong.
    pub fn check_payload(&self, payload: &serde_json::Value) -> Result<(), WorkflowError> {
        let params: Vec<Param<'_>> = self
            .params
            .iter()
            .map(|p| Param {
                name: &p.name,
                optional: p.optional,
            })
            .collect();
        let values = payload::bind(&params, Binding::of(self.kind), payload).map_err(|e| {
            WorkflowError::new(
                ErrorKind::InvalidPayload,
                format!("{} `{}`: {e}", self.kind, self.name),
            )
        })?;
        for (param, value) in self.params.iter().zip(values) {
            let (Some(schema), Some(value)) = (&param.schema, value) else {
                continue;
            };
            schema.check(value).map_err(|e| {
                WorkflowError::new(
                    ErrorKind::InvalidPayload,
                    format!(
                        "{} `{}`: parameter `{}` {e}",
                        self.kind, self.name, param.name
                    ),
                )
                .with_details(serde_json::json!({
                    "parameter": param.name,
                    "expected": schema.summary(),
                    "found": payload::json_type(value),
                }))
            })?;
        }
        Ok(())
    }
}

/// A workflow type and its handlers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTypeSpec {
    pub name: String,
    pub handlers: Vec<HandlerSpec>,
}

impl WorkflowTypeSpec {
    /// The start handler (a validated spec has exactly one).
    pub fn start(&self) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.kind == HandlerKind::Start)
    }

    pub fn handler(&self, kind: HandlerKind, name: &str) -> Option<&HandlerSpec> {
        self.handlers
            .iter()
            .find(|h| h.kind == kind && h.name == name)
    }

    /// The rules `describe` output must follow; the message names the
    /// offending handler.
    pub fn validate(&self) -> Result<(), String> {
        use crate::limits::{MAX_HANDLERS_PER_TYPE, MAX_NAME_BYTES, MAX_PARAMS_PER_HANDLER};
        if self.name.is_empty()
            || self.name.len() > MAX_NAME_BYTES
            || self
                .name
                .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "workflow type name `{}` must be 1-{MAX_NAME_BYTES} bytes without whitespace \
                 (max_name_bytes)",
                shorten(&self.name)
            ));
        }
        if self.handlers.len() > MAX_HANDLERS_PER_TYPE {
            return Err(format!(
                "workflow type `{}` declares {} handlers; at most {MAX_HANDLERS_PER_TYPE} \
                 (max_handlers_per_type)",
                self.name,
                self.handlers.len()
            ));
        }
        for h in &self.handlers {
            if h.name.len() > MAX_NAME_BYTES || h.name.contains(char::is_control) {
                return Err(format!(
                    "workflow type `{}` has a {} handler named `{}`: names are at most \
                     {MAX_NAME_BYTES} bytes without control characters (max_name_bytes)",
                    self.name,
                    h.kind,
                    shorten(&h.name)
                ));
            }
            if h.params.len() > MAX_PARAMS_PER_HANDLER {
                return Err(format!(
                    "{} `{}` of workflow type `{}` declares {} parameters; at most \
                     {MAX_PARAMS_PER_HANDLER} (max_params_per_handler)",
                    h.kind,
                    h.name,
                    self.name,
                    h.params.len()
                ));
            }
            if let Some(p) = h.params.iter().find(|p| {
                p.name.is_empty()
                    || p.name.len() > MAX_NAME_BYTES
                    || p.name.contains(char::is_control)
            }) {
                return Err(format!(
                    "{} `{}` of workflow type `{}` has parameter `{}`: names are 1-{MAX_NAME_BYTES} \
                     bytes without control characters (max_name_bytes)",
                    h.kind,
                    h.name,
                    self.name,
                    shorten(&p.name)
                ));
            }
        }
        let starts = self
            .handlers
            .iter()
            .filter(|h| h.kind == HandlerKind::Start)
            .count();
        if starts != 1 {
            return Err(format!(
                "workflow type `{}` has {starts} start handlers; it needs exactly one",
                self.name
            ));
        }
        for (i, h) in self.handlers.iter().enumerate() {
            if h.name.is_empty() {
                return Err(format!(
                    "workflow type `{}` has a {} handler without a name",
                    self.name, h.kind
                ));
            }
            if self.handlers[..i]
                .iter()
                .any(|p| p.kind == h.kind && p.name == h.name)
            {
                return Err(format!(
                    "workflow type `{}` declares {} `{}` twice",
                    self.name, h.kind, h.name
                ));
            }
            if let Some(timeout) = h.timeout
                && (timeout.is_zero() || timeout > crate::limits::MAX_STEP_TIMEOUT)
            {
                return Err(format!(
                    "{} `{}` of workflow type `{}` has a timeout of {} ms; handler timeouts are 1 ms to {} ms",
                    h.kind,
                    h.name,
                    self.name,
                    timeout.as_millis(),
                    crate::limits::MAX_STEP_TIMEOUT.as_millis()
                ));
            }
            if h.kind == HandlerKind::Step && h.params.len() > 1 {
                return Err(format!(
                    "step `{}` of workflow type `{}` takes {} parameters; steps take at most one",
                    h.name,
                    self.name,
                    h.params.len()
                ));
            }
            for (j, p) in h.params.iter().enumerate() {
                if h.params[..j].iter().any(|q| q.name == p.name) {
                    return Err(format!(
                        "{} `{}` of workflow type `{}` has parameter `{}` twice",
                        h.kind, h.name, self.name, p.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// At most the first 64 characters of a guest-given name, for messages.
pub fn shorten(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
    .escape_debug()
    .to_string()
}

/// What a handler returned (SPEC 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Directive {
    Step(String),
    Wait {
        #[serde(with = "opt_ms", default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_timeout: Option<String>,
    },
    /// Park for `duration`, then run `step`; events stay in the inbox
    /// meanwhile.
    Sleep {
        #[serde(with = "ms")]
        duration: Duration,
        step: String,
    },
    Complete(Json),
    Fail(WorkflowError),
}

/// The activation a running run executes next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub kind: HandlerKind,
    pub handler: String,
    /// The start input or event payload; `null` for plain steps.
    pub input: Json,
}

/// A child run an activation registered with `start-child`; it is created
/// when the activation commits.
#[derive(Debug, Clone)]
pub struct ChildStart {
    pub run_id: RunId,
    pub workflow_id: String,
    pub workflow_type: String,
    /// The component version the child is pinned to.
    pub version: String,
    pub input: Json,
    /// The start handler's name.
    pub start_handler: String,
    pub timeout: Option<Duration>,
    /// The parent step told of the child's end.
    pub on_completed: Option<String>,
    pub close_policy: ClosePolicy,
}

/// An event an activation sent to its parent with `send-to-parent`; it is
/// delivered when the activation commits.
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub name: String,
    pub payload: Json,
}

/// One entry of a run's history (SPEC 9). JSON values are parsed
/// (`serde_json::Value`) so entries read back from storage as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HistoryEvent {
    RunStarted {
        workflow_type: String,
        workflow_id: String,
        version: String,
        input: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_run_id: Option<RunId>,
    },
    /// An activation ran and returned a directive. It is recorded when the
    /// activation commits, with when it started and how long it took.
    ActivationCompleted {
        sequence: u64,
        kind: HandlerKind,
        handler: String,
        started_ms: u64,
        duration_us: u64,
        /// The directive as JSON, e.g. `{"step": "greet"}`.
        directive: serde_json::Value,
        keys_changed: Vec<String>,
    },
    /// An activation failed (trap, limit, handler error).
    ActivationFailed {
        sequence: u64,
        kind: HandlerKind,
        handler: String,
        started_ms: u64,
        duration_us: u64,
        error: WorkflowError,
    },
    TimerSet {
        due_ms: u64,
        on_timeout: Option<String>,
    },
    /// One attempt of a task ended and was recorded, before the activation
    /// went on (SPEC 8).
    TaskAttempted(crate::journal::TaskAttempt),
    /// A task's retry delay did not fit the step timeout: the activation
    /// stopped, and it is executed again at `due_ms`.
    RetryScheduled {
        sequence: u64,
        kind: HandlerKind,
        handler: String,
        started_ms: u64,
        duration_us: u64,
        due_ms: u64,
    },
    /// A task's retry delay passed: the activation is executed again.
    RetryTimerFired {
        handler: String,
    },
    /// A failed run was resumed: its failed activation is executed again,
    /// on `to_version` when it was upgraded.
    RunRetried {
        handler: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_version: Option<String>,
    },
    TimerFired {
        on_timeout: Option<String>,
    },
    /// An event entered the run's inbox.
    EventReceived {
        name: String,
        payload: serde_json::Value,
        /// `client`, or the run id of the child that sent it.
        source: String,
    },
    /// The oldest inbox event was handed to its handler.
    EventDispatched {
        name: String,
        /// `event` for an event handler, `step` for a completion notice.
        kind: HandlerKind,
    },
    /// An event was not delivered (its run had ended).
    EventDropped {
        name: String,
        reason: String,
    },
    /// This run started a child.
    ChildStarted {
        workflow_type: String,
        workflow_id: String,
        run_id: RunId,
    },
    /// This run sent an event to its parent's inbox.
    EventSentToParent {
        name: String,
        payload: serde_json::Value,
        parent_run_id: RunId,
    },
    /// A cancel arrived while an activation was running; the run is
    /// cancelled when the activation ends.
    CancelRequested {
        reason: String,
    },
    RunCompleted {
        result: serde_json::Value,
    },
    RunFailed {
        error: WorkflowError,
    },
    RunCancelled {
        reason: String,
    },
    RunTerminated {
        reason: String,
    },
    /// The run was moved to a newer version of its component; its next
    /// activation runs the new code.
    RunUpgraded {
        from_version: String,
        to_version: String,
    },
}

impl HistoryEvent {
    /// The `type` tag, e.g. `activation_completed`.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryEvent::RunStarted { .. } => "run_started",
            HistoryEvent::ActivationCompleted { .. } => "activation_completed",
            HistoryEvent::ActivationFailed { .. } => "activation_failed",
            HistoryEvent::TimerSet { .. } => "timer_set",
            HistoryEvent::TaskAttempted(_) => "task_attempted",
            HistoryEvent::RetryScheduled { .. } => "retry_scheduled",
            HistoryEvent::RetryTimerFired { .. } => "retry_timer_fired",
            HistoryEvent::RunRetried { .. } => "run_retried",
            HistoryEvent::TimerFired { .. } => "timer_fired",
            HistoryEvent::EventReceived { .. } => "event_received",
            HistoryEvent::EventDispatched { .. } => "event_dispatched",
            HistoryEvent::EventDropped { .. } => "event_dropped",
            HistoryEvent::ChildStarted { .. } => "child_started",
            HistoryEvent::EventSentToParent { .. } => "event_sent_to_parent",
            HistoryEvent::CancelRequested { .. } => "cancel_requested",
            HistoryEvent::RunCompleted { .. } => "run_completed",
            HistoryEvent::RunFailed { .. } => "run_failed",
            HistoryEvent::RunCancelled { .. } => "run_cancelled",
            HistoryEvent::RunTerminated { .. } => "run_terminated",
            HistoryEvent::RunUpgraded { .. } => "run_upgraded",
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `Option<Duration>` as integer milliseconds in JSON.
mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// A duration as whole milliseconds.
mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Check a workflow id or an event name that comes from outside (`field`
/// names it in the error, e.g. "workflow id"): 1 to [`MAX_NAME_BYTES`](crate::limits::MAX_NAME_BYTES) bytes of
/// UTF-8 with no control character (C0 including NUL, DEL, C1) and no
/// bidirectional formatting character (U+061C, U+200E, U+200F, U+202A to
/// U+202E, U+2066 to U+2069), so that it prints as what it is in logs,
/// tables and URLs. Anything else is allowed. `InvalidPayload` otherwise.
pub fn check_id(field: &str, value: &str) -> Result<(), WorkflowError> {
    use crate::limits::MAX_NAME_BYTES;
    let invalid = |why: String| {
        let shown: String = value.chars().take(64).collect();
        let more = if shown.len() < value.len() { "..." } else { "" };
        Err(WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!("invalid {field} {shown:?}{more}: {why}"),
        ))
    };
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return invalid(format!(
            "a {field} is 1 to {MAX_NAME_BYTES} bytes long, not {}",
            value.len()
        ));
    }
    let bidi = |c: char| {
        ['\u{061C}', '\u{200E}', '\u{200F}'].contains(&c)
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if let Some(c) = value.chars().find(|&c| c.is_control() || bidi(c)) {
        let what = if c.is_control() {
            "a control character"
        } else {
            "a bidirectional formatting character"
        };
        return invalid(format!("it contains {what} (U+{:04X})", u32::from(c)));
    }
    Ok(())
}

/// A duration a guest or a client asks for, in milliseconds (`field` names
/// it): 1 ms to `max`. Zero and absurd values (`u64::MAX`) are refused with
/// `InvalidPayload`, so a due time is never stored overflowed or negative.
pub fn check_duration(field: &str, ms: u64, max: Duration) -> Result<Duration, WorkflowError> {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 || ms > max_ms {
        return Err(WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!("`{field}` must be 1 to {max_ms} ms, not {ms}"),
        )
        .with_details(serde_json::json!({"field": field, "value": ms, "max": max_ms})));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(kind: HandlerKind, name: &str, params: &[&str]) -> HandlerSpec {
        HandlerSpec {
            name: name.into(),
            kind,
            params: params
                .iter()
                .map(|p| ParamSpec {
                    name: (*p).into(),
                    optional: false,
                    schema: None,
                })
                .collect(),
            timeout: None,
        }
    }

    #[test]
    fn durations_are_one_ms_to_their_bound() {
        let max = Duration::from_secs(10);
        assert_eq!(
            check_duration("timeout_ms", 250, max),
            Ok(Duration::from_millis(250))
        );
        for bad in [0, 10_001, u64::MAX] {
            let err = check_duration("timeout_ms", bad, max).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidPayload);
            assert!(
                err.message.contains("`timeout_ms` must be 1 to 10000 ms"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_handler_timeout_in_describe_is_bounded() {
        let mut spec = WorkflowTypeSpec {
            name: "Slow".into(),
            handlers: vec![handler(HandlerKind::Start, "s", &[])],
        };
        spec.handlers[0].timeout = Some(Duration::from_secs(25 * 3600));
        assert!(spec.validate().unwrap_err().contains("timeout"));
        spec.handlers[0].timeout = Some(Duration::ZERO);
        assert!(spec.validate().unwrap_err().contains("timeout"));
        spec.handlers[0].timeout = Some(Duration::from_secs(30));
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn a_type_needs_exactly_one_start() {
        let mut spec = WorkflowTypeSpec {
            name: "Order".into(),
            handlers: vec![handler(HandlerKind::Step, "a", &[])],
        };
        assert!(spec.validate().unwrap_err().contains("0 start handlers"));
        spec.handlers.push(handler(HandlerKind::Start, "s", &[]));
        assert_eq!(spec.validate(), Ok(()));
        spec.handlers.push(handler(HandlerKind::Start, "t", &[]));
        assert!(spec.validate().unwrap_err().contains("2 start handlers"));
    }

    #[test]
    fn duplicate_handlers_and_params_are_named() {
        let spec = WorkflowTypeSpec {
            name: "Order".into(),
            handlers: vec![
                handler(HandlerKind::Start, "s", &["a", "a"]),
                handler(HandlerKind::Step, "x", &[]),
            ],
        };
        assert!(spec.validate().unwrap_err().contains("parameter `a` twice"));
        let spec = WorkflowTypeSpec {
            name: "Order".into(),
            handlers: vec![
                handler(HandlerKind::Start, "s", &[]),
                handler(HandlerKind::Step, "x", &[]),
                handler(HandlerKind::Step, "x", &[]),
            ],
        };
        assert!(spec.validate().unwrap_err().contains("step `x` twice"));
        // A step and an event may share a name.
        let spec = WorkflowTypeSpec {
            name: "Order".into(),
            handlers: vec![
                handler(HandlerKind::Start, "s", &[]),
                handler(HandlerKind::Step, "x", &[]),
                handler(HandlerKind::Event, "x", &[]),
            ],
        };
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn payload_errors_name_the_handler_and_key() {
        let h = handler(HandlerKind::Start, "order_start", &["order_id", "amount"]);
        let err = h
            .check_payload(&serde_json::json!({"order_id": "a"}))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidPayload);
        assert_eq!(err.message, "start `order_start`: missing key `amount`");
    }

    #[test]
    fn payload_values_are_checked_against_their_schemas() {
        let schema = |text: &str| Some(ParamSchema::parse(text).unwrap());
        let mut h = handler(HandlerKind::Start, "start", &["approver", "amount"]);
        h.params[0].schema = schema(r#"{"type": "string"}"#);
        h.params[1].schema = schema(r#"{"type": "integer", "minimum": 0}"#);
        h.params.push(ParamSpec {
            name: "note".into(),
            optional: true,
            schema: schema(r#"{"type": ["string", "null"]}"#),
        });
        assert!(
            h.check_payload(&serde_json::json!({"approver": "ada", "amount": 3}))
                .is_ok()
        );
        let err = h
            .check_payload(&serde_json::json!({"approver": 42, "amount": 3}))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidPayload);
        assert_eq!(
            err.message,
            "start `start`: parameter `approver` expects a string, got a number: 42"
        );
        assert_eq!(
            err.details,
            Some(serde_json::json!({
                "parameter": "approver", "expected": "a string", "found": "a number"
            }))
        );
        let err = h
            .check_payload(&serde_json::json!({"approver": "ada", "amount": -1}))
            .unwrap_err();
        assert!(
            err.message
                .contains("`amount` expects an integer ≥ 0, got a number: -1")
        );
        // An absent optional is not checked; a present one is.
        let err = h
            .check_payload(&serde_json::json!({"approver": "a", "amount": 1, "note": 5}))
            .unwrap_err();
        assert!(
            err.message.contains("`note` expects a string or null"),
            "{}",
            err.message
        );
        // A single parameter takes a scalar payload whole, checked the same way.
        let mut one = handler(HandlerKind::Event, "approve", &["by"]);
        one.params[0].schema = schema(r#"{"type": "string"}"#);
        assert!(one.check_payload(&serde_json::json!("ada")).is_ok());
        assert!(one.check_payload(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn json_deeper_than_the_bound_is_refused_and_everything_accepted_reads_back() {
        let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
        let max = crate::limits::MAX_JSON_DEPTH;
        let ok = parse_json(&nested(max), "the result").unwrap();
        assert_eq!(json_value(&ok).unwrap().to_string(), nested(max));
        let err = parse_json(&nested(max + 1), "the result").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidPayload);
        assert!(err.message.contains("max_json_depth"), "{}", err.message);
        // Brackets inside strings (with escaped quotes) do not count.
        let text = format!(r#"{{"a": "\"{}"}}"#, "[".repeat(500));
        assert!(parse_json(&text, "x").is_ok());
        let deep_objects = r#"{"a":"#.repeat(200) + "1" + &"}".repeat(200);
        assert!(parse_json(&deep_objects, "x").is_err());
    }

    #[test]
    fn numbers_that_cannot_be_read_back_are_refused() {
        for bad in ["1e400", "[-1E+999]", &"9".repeat(400)] {
            let err = parse_json(bad, "x").unwrap_err();
            assert!(
                err.message.contains("out of range"),
                "{bad}: {}",
                err.message
            );
        }
        for good in [
            "1e300",
            "-0.5",
            "123456789012345678901234",
            "1e-400",
            "[1,2.5e3]",
        ] {
            let json = parse_json(good, "x").unwrap();
            assert!(json_value(&json).is_ok(), "{good}");
        }
    }

    #[test]
    fn guest_json_checks_size_before_parsing() {
        let err = guest_json("\"0123456789\"", "v", 8).unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExceeded);
        assert!(err.message.contains("max_value_bytes"));
        assert!(guest_json("\"01234\"", "v", 8).is_ok());
        assert_eq!(
            guest_json("{", "v", 8).unwrap_err().kind,
            ErrorKind::InvalidPayload
        );
    }

    #[test]
    fn describe_answers_are_bounded() {
        use crate::limits::{MAX_HANDLERS_PER_TYPE, MAX_NAME_BYTES, MAX_PARAMS_PER_HANDLER};
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let spec = |name: &str, handlers| WorkflowTypeSpec {
            name: name.into(),
            handlers,
        };
        let err = spec(&long, vec![handler(HandlerKind::Start, "s", &[])])
            .validate()
            .unwrap_err();
        assert!(err.contains("max_name_bytes") && err.len() < 300, "{err}");
        let err = spec("T", vec![handler(HandlerKind::Start, &long, &[])])
            .validate()
            .unwrap_err();
        assert!(err.contains("max_name_bytes"), "{err}");
        let err = spec(
            "T",
            vec![handler(HandlerKind::Start, "s", &[long.as_str()])],
        )
        .validate()
        .unwrap_err();
        assert!(err.contains("max_name_bytes"), "{err}");
        let names: Vec<String> = (0..=MAX_PARAMS_PER_HANDLER)
            .map(|i| format!("p{i}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let err = spec("T", vec![handler(HandlerKind::Start, "s", &names)])
            .validate()
            .unwrap_err();
        assert!(err.contains("max_params_per_handler"), "{err}");
        let mut handlers = vec![handler(HandlerKind::Start, "s", &[])];
        handlers.extend(
            (0..MAX_HANDLERS_PER_TYPE).map(|i| handler(HandlerKind::Step, &format!("s{i}"), &[])),
        );
        let err = spec("T", handlers).validate().unwrap_err();
        assert!(err.contains("max_handlers_per_type"), "{err}");
    }

    #[test]
    fn directives_serialize_compactly() {
        let d = Directive::Wait {
            timeout: Some(Duration::from_secs(2)),
            on_timeout: Some("late".into()),
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"wait":{"timeout":2000,"on_timeout":"late"}}"#
        );
        let d = Directive::Complete(parse_json("[1,2]", "x").unwrap());
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"complete":[1,2]}"#);
    }
}
