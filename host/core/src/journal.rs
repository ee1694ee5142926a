//! The journal of an activation (SPEC 8): what it recorded so that an
//! execution of it again — after a crash, an abandoned activation, a retry
//! delay, or `retry` of a failed run — gets the same answers.
//!
//! A run has one journal: that of the activation it is executing (or failed
//! in, or waits to retry). Entries are appended durably while the activation
//! runs: each attempt of a task as it ends, and the recorded values
//! (`now`, `random`, `uuid4`) it had asked for by then. When the activation
//! commits and the run moves on, its journal is dropped.
//!
//! On re-execution, the `n`-th value call gets the `n`-th recorded value
//! (of the same kind, or the activation fails with `NonDeterminism`), and a
//! task whose final attempt is recorded returns that outcome without running.

use serde::{Deserialize, Serialize};

use crate::error::WorkflowError;

/// One entry of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum JournalEntry {
    /// One attempt of a task, as it ended.
    Task(TaskAttempt),
    /// A value the activation asked the host for.
    Value(RecordedValue),
    /// The failed run was resumed (`retry`): tasks whose last attempt
    /// failed before this point are attempted again; completed ones keep
    /// their outcome.
    Retried,
}

/// A non-deterministic value, in the order the activation asked for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RecordedValue {
    /// `now`: milliseconds since the Unix epoch.
    Now(u64),
    Random(u64),
    Uuid4(String),
}

impl RecordedValue {
    /// The host call it answers.
    pub fn call(&self) -> &'static str {
        match self {
            RecordedValue::Now(_) => "now",
            RecordedValue::Random(_) => "random",
            RecordedValue::Uuid4(_) => "uuid4",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskResult {
    /// The task's value. Parsed, not raw: journal and history entries are
    /// tagged, and serde reads raw JSON only untagged.
    Value(serde_json::Value),
    Error(WorkflowError),
}

impl TaskResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, TaskResult::Value(_))
    }

    /// The value, or the error.
    /// (`model` depends on this module, so the raw JSON type is named here.)
    pub fn to_result(&self) -> Result<Box<serde_json::value::RawValue>, WorkflowError> {
        match self {
            TaskResult::Value(v) => serde_json::value::to_raw_value(v).map_err(|e| {
                WorkflowError::new(
                    crate::ErrorKind::InvalidPayload,
                    format!("a recorded task value does not encode: {e}"),
                )
            }),
            TaskResult::Error(e) => Err(e.clone()),
        }
    }
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAttempt {
    pub name: String,
    /// Which call of `name` in the activation: 0 for the first.
    pub occurrence: u32,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The idempotency key, the same for every attempt of the task.
    pub key: String,
    pub started_ms: u64,
    pub duration_us: u64,
    pub result: TaskResult,
    /// When the next attempt is due, if one follows; `None` with an error:
    /// the task failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
    /// The outbound requests the attempt made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<OutboundRequest>,
}

impl TaskAttempt {
    /// The attempt is the task's outcome: it succeeded, or no retry follows.
    pub fn is_final(&self) -> bool {
        self.result.is_ok() || self.retry_at_ms.is_none()
    }
}

/// An outbound HTTP request a task made (SPEC 13): no headers, no query, no
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    pub method: String,
    pub scheme: String,
    /// `host:port`.
    pub authority: String,
    /// The path, without the query string.
    pub path: String,
    /// The response status, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub duration_us: u64,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An activation's journal as read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journal {
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The recorded values, in call order.
    pub fn values(&self) -> Vec<RecordedValue> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                JournalEntry::Value(v) => Some(v.clone()),
                JournalEntry::Task(_) | JournalEntry::Retried => None,
            })
            .collect()
    }

    /// The recorded attempts of occurrence `occurrence` of task `name`,
    /// oldest first.
    pub fn attempts<'a>(
        &'a self,
        name: &'a str,
        occurrence: u32,
    ) -> impl Iterator<Item = &'a TaskAttempt> + 'a {
        self.entries.iter().filter_map(move |e| match e {
            JournalEntry::Task(t) if t.name == name && t.occurrence == occurrence => Some(t),
            _ => None,
        })
    }

    /// The last recorded attempt of that occurrence, and whether it is the
    /// task's outcome: a success, or a failure with no retry to follow and
    /// no `retry` of the run since.
    pub fn last_attempt(&self, name: &str, occurrence: u32) -> Option<(&TaskAttempt, bool)> {
        let mut retried = false;
        for entry in self.entries.iter().rev() {
            match entry {
                JournalEntry::Retried => retried = true,
                JournalEntry::Task(t) if t.name == name && t.occurrence == occurrence => {
                    let outcome = t.result.is_ok() || (t.retry_at_ms.is_none() && !retried);
                    return Some((t, outcome));
                }
                _ => {}
            }
        }
        None
    }
}

/// The idempotency key of occurrence `occurrence` of task `name` first
/// attempted in the activation at sequence number `sequence` of `run_id`.
pub fn idempotency_key(run_id: &str, sequence: u64, name: &str, occurrence: u32) -> String {
    format!("{run_id}/{sequence}/{name}/{occurrence}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn attempt(name: &str, occurrence: u32, n: u32, ok: bool, retry: Option<u64>) -> JournalEntry {
        JournalEntry::Task(TaskAttempt {
            name: name.into(),
            occurrence,
            attempt: n,
            key: idempotency_key("r", 3, name, occurrence),
            started_ms: 1,
            duration_us: 2,
            result: if ok {
                TaskResult::Value(serde_json::json!(n))
            } else {
                TaskResult::Error(WorkflowError::new(ErrorKind::Application, "no"))
            },
            retry_at_ms: retry,
            requests: vec![],
        })
    }

    #[test]
    fn attempts_are_found_by_name_and_occurrence() {
        let journal = Journal {
            entries: vec![
                JournalEntry::Value(RecordedValue::Now(5)),
                attempt("charge", 0, 1, false, Some(10)),
                attempt("charge", 0, 2, true, None),
                attempt("charge", 1, 1, false, None),
                JournalEntry::Value(RecordedValue::Uuid4("u".into())),
            ],
        };
        assert_eq!(journal.attempts("charge", 0).count(), 2);
        assert!(journal.last_attempt("charge", 0).unwrap().1);
        assert!(journal.last_attempt("charge", 1).unwrap().1);
        assert!(journal.last_attempt("refund", 0).is_none());
        assert_eq!(
            journal.values(),
            vec![RecordedValue::Now(5), RecordedValue::Uuid4("u".into())]
        );
    }

    #[test]
    fn a_retry_of_the_run_reopens_failed_tasks_but_not_completed_ones() {
        let mut journal = Journal {
            entries: vec![
                attempt("reserve", 0, 1, true, None),
                attempt("charge", 0, 1, false, None),
            ],
        };
        assert!(!journal.last_attempt("charge", 0).unwrap().0.result.is_ok());
        assert!(journal.last_attempt("charge", 0).unwrap().1);
        journal.entries.push(JournalEntry::Retried);
        assert!(
            !journal.last_attempt("charge", 0).unwrap().1,
            "attempted again"
        );
        assert!(journal.last_attempt("reserve", 0).unwrap().1, "kept");
        journal.entries.push(attempt("charge", 0, 2, false, None));
        assert!(
            journal.last_attempt("charge", 0).unwrap().1,
            "failed again, for good"
        );
    }

    #[test]
    fn entries_read_back_as_written() {
        for entry in [
            attempt("a", 0, 1, true, None),
            attempt("a", 0, 1, false, Some(7)),
            JournalEntry::Value(RecordedValue::Random(u64::MAX)),
            JournalEntry::Retried,
        ] {
            let json = serde_json::to_string(&entry).unwrap();
            assert_eq!(serde_json::from_str::<JournalEntry>(&json).unwrap(), entry);
        }
        assert!(serde_json::from_str::<JournalEntry>(r#"{"entry":"task"}"#).is_err());
    }

    #[test]
    fn an_attempt_with_a_retry_is_not_final() {
        let JournalEntry::Task(t) = attempt("a", 0, 1, false, Some(7)) else {
            unreachable!()
        };
        assert!(!t.is_final());
    }
}
