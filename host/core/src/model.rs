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

/// A JSON document kept as text: the host stores and forwards values without
/// re-parsing them.
pub type Json = Box<RawValue>;

/// Parse JSON text that came from outside (a user, a guest, a file).
pub fn parse_json(text: &str, what: &str) -> Result<Json, WorkflowError> {
    serde_json::from_str::<Json>(text).map_err(|e| {
        WorkflowError::new(
            ErrorKind::InvalidPayload,
            format!("{what} is not valid JSON: {e}"),
        )
    })
}

/// A [`Json`] document as a parsed value.
pub fn json_value(json: &Json) -> serde_json::Value {
    serde_json::from_str(json.get()).unwrap_or(serde_json::Value::Null)
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
    /// Check `payload` against the parameters (SPEC 4), naming what is wrong.
    pub fn check_payload(&self, payload: &serde_json::Value) -> Result<(), WorkflowError> {
        let params: Vec<Param<'_>> = self
            .params
            .iter()
            .map(|p| Param {
                name: &p.name,
                optional: p.optional,
            })
            .collect();
        payload::bind(&params, Binding::of(self.kind), payload)
            .map(drop)
            .map_err(|e| {
                WorkflowError::new(
                    ErrorKind::InvalidPayload,
                    format!("{} `{}`: {e}", self.kind, self.name),
                )
            })
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
        if self.name.is_empty() || self.name.len() > 200 || self.name.contains(char::is_whitespace)
        {
            return Err(format!(
                "workflow type name `{}` must be 1-200 characters without whitespace",
                self.name
            ));
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
                })
                .collect(),
            timeout: None,
        }
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
