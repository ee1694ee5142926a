//! What the pages show, built from the API's views: plain strings and
//! rows, so the templates only lay them out.

use serde_json::Value;
use wasmflow_api::{
    HistoryEntry, InboxEntryKind, InboxView, RunStatus, RunView, StoreView, TreeView, TypesView,
};

use crate::client::segment;
use crate::format::{compact, duration, duration_us, pretty, rfc3339, short_version, timestamp};

/// Values in tables are cut to this many characters (whole in `<details>`).
const CELL: usize = 120;

/// A time as the pages show it: UTC text, and RFC 3339 for the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Time {
    pub text: String,
    pub iso: String,
}

impl Time {
    pub fn at(ms: u64) -> Self {
        Time {
            text: timestamp(ms),
            iso: rfc3339(ms),
        }
    }
}

/// The link to a run's page.
pub fn run_link(workflow_id: &str, run_id: &str) -> String {
    format!(
        "/ui/runs/{}?run_id={}",
        segment(workflow_id),
        segment(run_id)
    )
}

/// A run in a listing or at the top of its page.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub workflow_id: String,
    pub run_id: String,
    pub link: String,
    pub workflow_type: String,
    pub status: &'static str,
    pub terminal: bool,
    pub version: String,
    pub created: Time,
    pub updated: Time,
    /// How long it ran; empty while it runs (the page would change every
    /// moment otherwise).
    pub age: String,
}

impl RunRow {
    pub fn of(run: &RunView) -> Self {
        let terminal = run.status.is_terminal();
        RunRow {
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.clone(),
            link: run_link(&run.workflow_id, &run.run_id),
            workflow_type: run.workflow_type.clone(),
            status: run.status.as_str(),
            terminal,
            version: short_version(&run.version).to_owned(),
            created: Time::at(run.created_ms),
            updated: Time::at(run.updated_ms),
            age: if terminal {
                duration(run.updated_ms.saturating_sub(run.created_ms))
            } else {
                String::new()
            },
        }
    }
}

/// A key and value of a store, or the payload of an inbox entry.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub short: String,
    pub full: String,
    pub cut: bool,
    pub note: &'static str,
}

impl Item {
    fn of(name: &str, value: &Value, note: &'static str) -> Self {
        let short = compact(value, CELL);
        let full = pretty(value);
        Item {
            name: name.to_owned(),
            cut: short.ends_with(crate::format::MORE) && short != full,
            short,
            full,
            note,
        }
    }
}

/// A run in the tree of a run and its children.
#[derive(Debug, Clone)]
pub struct TreeRow {
    /// Tree drawing before the name (`│  └─ `).
    pub indent: String,
    pub row: RunRow,
    /// The run the page shows.
    pub here: bool,
}

/// One history entry on the timeline.
#[derive(Debug, Clone)]
pub struct Moment {
    pub id: i64,
    pub at: Time,
    /// Since the run started.
    pub offset: String,
    /// Since the entry before.
    pub delta: String,
    pub event_type: String,
    /// One line of what happened.
    pub summary: String,
    pub details: String,
    pub failed: bool,
}

/// One attempt of a task.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub name: String,
    pub attempt: u64,
    pub started: Time,
    pub took: String,
    pub outcome: String,
    pub ok: bool,
    /// When the next attempt is due, if one follows.
    pub retry_at: Option<Time>,
    pub requests: usize,
}

/// What runs now: the activation in progress.
#[derive(Debug, Clone)]
pub struct Current {
    pub kind: &'static str,
    pub handler: String,
    pub since: Time,
}

/// Everything on a run's page that changes while it runs.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: RunRow,
    pub version_full: String,
    pub parent: Option<(String, String)>,
    pub input: Option<Item>,
    pub result: Option<Item>,
    pub error: Option<(String, String, Option<String>)>,
    pub current: Option<Current>,
    pub timer_due: Option<Time>,
    pub deadline: Option<Time>,
    pub cancel_requested: Option<String>,
    pub store: Vec<Item>,
    pub inbox: Vec<Item>,
    pub tree: Vec<TreeRow>,
    pub timeline: Vec<Moment>,
    pub tasks: Vec<Attempt>,
}

impl RunDetail {
    pub fn of(
        run: &RunView,
        history: &[HistoryEntry],
        tree: Option<&TreeView>,
        store: &StoreView,
        inbox: &InboxView,
    ) -> Self {
        let input = history
            .iter()
            .find(|e| e.event_type == "run_started")
            .and_then(|e| e.details.get("input"))
            .map(|v| Item::of("input", v, ""));
        let mut rows = Vec::new();
        if let Some(tree) = tree {
            flatten(tree, &run.run_id, "", "", &mut rows);
        }
        RunDetail {
            run: RunRow::of(run),
            version_full: run.version.clone(),
            parent: run
                .parent
                .as_ref()
                .map(|p| (p.clone(), format!("/ui/runs/by-run/{}", segment(p)))),
            input,
            result: run.result.as_ref().map(|v| Item::of("result", v, "")),
            error: run.error.as_ref().map(|e| {
                (
                    e.kind.clone(),
                    e.message.clone(),
                    e.details.as_ref().map(pretty),
                )
            }),
            current: run.current.as_ref().map(|c| Current {
                kind: c.kind.as_str(),
                handler: c.handler.clone(),
                since: Time::at(c.since_ms),
            }),
            timer_due: run.timer_due_ms.map(Time::at),
            deadline: run.deadline_ms.map(Time::at),
            cancel_requested: run.cancel_requested.clone(),
            store: store
                .store
                .iter()
                .map(|(k, v)| Item::of(k, v, ""))
                .collect(),
            inbox: inbox
                .entries
                .iter()
                .map(|e| {
                    let note = match e.kind {
                        InboxEntryKind::Event => "event",
                        InboxEntryKind::Notice => "child notice",
                    };
                    Item::of(&e.name, &e.payload, note)
                })
                .collect(),
            tree: rows,
            timeline: timeline(history, run.created_ms),
            tasks: history
                .iter()
                .filter(|e| e.event_type == "task_attempted")
                .map(attempt)
                .collect(),
        }
    }
}

/// The tree, depth first, with its drawing.
fn flatten(tree: &TreeView, here: &str, lead: &str, branch: &str, rows: &mut Vec<TreeRow>) {
    rows.push(TreeRow {
        indent: format!("{lead}{branch}"),
        row: RunRow::of(&tree.run),
        here: tree.run.run_id == here,
    });
    let below = match branch {
        "" => String::new(),
        "└─ " => format!("{lead}   "),
        _ => format!("{lead}│  "),
    };
    let last = tree.children.len().saturating_sub(1);
    for (i, child) in tree.children.iter().enumerate() {
        let branch = if i == last { "└─ " } else { "├─ " };
        flatten(child, here, &below, branch, rows);
    }
}

fn timeline(history: &[HistoryEntry], created_ms: u64) -> Vec<Moment> {
    let mut before = created_ms;
    history
        .iter()
        .map(|e| {
            let moment = Moment {
                id: e.id,
                at: Time::at(e.at_ms),
                offset: format!("+{}", duration(e.at_ms.saturating_sub(created_ms))),
                delta: duration(e.at_ms.saturating_sub(before)),
                event_type: e.event_type.clone(),
                summary: summary(e),
                details: pretty(&Value::Object(e.details.clone())),
                failed: e.event_type.ends_with("_failed")
                    || e.details
                        .get("result")
                        .and_then(|r| r.get("error"))
                        .is_some(),
            };
            before = e.at_ms;
            moment
        })
        .collect()
}

fn text<'a>(e: &'a HistoryEntry, key: &str) -> &'a str {
    e.details.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number(e: &HistoryEntry, key: &str) -> u64 {
    e.details.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn error_line(error: Option<&Value>) -> String {
    let kind = error.and_then(|e| e.get("kind")).and_then(Value::as_str);
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    format!("{}: {}", kind.unwrap_or("?"), message.unwrap_or(""))
}

/// One line for an entry: what happened, in words.
fn summary(e: &HistoryEntry) -> String {
    let line = match e.event_type.as_str() {
        "run_started" => format!(
            "{} started (version {})",
            text(e, "workflow_type"),
            short_version(text(e, "version"))
        ),
        "activation_completed" => format!(
            "{} `{}` ran {} → {}",
            text(e, "kind"),
            text(e, "handler"),
            duration_us(number(e, "duration_us")),
            e.details
                .get("directive")
                .map(|d| compact(d, 60))
                .unwrap_or_default()
        ),
        "activation_failed" => format!(
            "{} `{}` failed after {}: {}",
            text(e, "kind"),
            text(e, "handler"),
            duration_us(number(e, "duration_us")),
            error_line(e.details.get("error"))
        ),
        "timer_set" => format!("timer due {}", timestamp(number(e, "due_ms"))),
        "timer_fired" => "timer fired".to_owned(),
        "task_attempted" => format!(
            "task `{}` attempt {}",
            text(e, "name"),
            number(e, "attempt")
        ),
        "retry_scheduled" => format!(
            "`{}` retried at {}",
            text(e, "handler"),
            timestamp(number(e, "due_ms"))
        ),
        "event_received" => format!(
            "event `{}` received from {}",
            text(e, "name"),
            text(e, "source")
        ),
        "event_dispatched" => format!("event `{}` dispatched", text(e, "name")),
        "event_dropped" => format!("event `{}` dropped: {}", text(e, "name"), text(e, "reason")),
        "child_started" => format!(
            "child {} `{}` started",
            text(e, "workflow_type"),
            text(e, "workflow_id")
        ),
        "event_sent_to_parent" => format!("event `{}` sent to the parent", text(e, "name")),
        "run_completed" => "completed".to_owned(),
        "run_failed" => format!("failed: {}", error_line(e.details.get("error"))),
        "run_cancelled" | "run_terminated" | "cancel_requested" => text(e, "reason").to_owned(),
        "run_upgraded" => format!(
            "upgraded {} → {}",
            short_version(text(e, "from_version")),
            short_version(text(e, "to_version"))
        ),
        _ => compact(&Value::Object(e.details.clone()), 100),
    };
    crate::format::shorten(&line, 160)
}

fn attempt(e: &HistoryEntry) -> Attempt {
    let result = e.details.get("result");
    let value = result.and_then(|r| r.get("value"));
    let error = result.and_then(|r| r.get("error"));
    Attempt {
        name: text(e, "name").to_owned(),
        attempt: number(e, "attempt"),
        started: Time::at(number(e, "started_ms")),
        took: duration_us(number(e, "duration_us")),
        ok: value.is_some(),
        outcome: match (value, error) {
            (Some(v), _) => compact(v, 80),
            (None, Some(_)) => error_line(error),
            (None, None) => String::new(),
        },
        retry_at: e
            .details
            .get("retry_at_ms")
            .and_then(Value::as_u64)
            .map(Time::at),
        requests: e
            .details
            .get("requests")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    }
}

/// A workflow type on the types page.
#[derive(Debug, Clone)]
pub struct TypeCard {
    pub name: String,
    pub version: String,
    pub version_full: String,
    pub file: String,
    pub handlers: Vec<(&'static str, String, String, String)>,
    pub pinned: Vec<(String, u64)>,
    pub events: Vec<String>,
    /// An input for the start form to fill in: each parameter of the
    /// start handler with a value of its type.
    pub skeleton: String,
}

/// A value of the type a parameter's summary names (`a string`, ...).
fn placeholder(type_summary: &str) -> Value {
    let first = type_summary
        .split(" or ")
        .next()
        .unwrap_or(type_summary)
        .trim_start_matches("an ")
        .trim_start_matches("a ");
    match first.split_whitespace().next().unwrap_or("") {
        "string" => Value::String(String::new()),
        "number" | "integer" => Value::from(0),
        "boolean" => Value::Bool(false),
        "array" | "list" => Value::Array(Vec::new()),
        "object" | "map" => Value::Object(serde_json::Map::new()),
        _ => Value::Null,
    }
}

pub fn type_cards(types: &TypesView) -> Vec<TypeCard> {
    types
        .types
        .iter()
        .map(|t| TypeCard {
            name: t.name.clone(),
            version: short_version(&t.version).to_owned(),
            version_full: t.version.clone(),
            file: t.file.clone(),
            handlers: t
                .handlers
                .iter()
                .map(|h| {
                    let params = h
                        .params
                        .iter()
                        .map(|p| {
                            let optional = if p.optional { "?" } else { "" };
                            format!("{}{optional}: {}", p.name, p.type_)
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let timeout = h.timeout.map(duration).unwrap_or_default();
                    (h.kind.as_str(), h.name.clone(), params, timeout)
                })
                .collect(),
            pinned: t
                .in_flight
                .iter()
                .map(|f| (short_version(&f.version).to_owned(), f.runs))
                .collect(),
            events: t
                .handlers
                .iter()
                .filter(|h| h.kind == wasmflow_api::HandlerKind::Event)
                .map(|h| h.name.clone())
                .collect(),
            skeleton: {
                let params = t
                    .handlers
                    .iter()
                    .find(|h| h.kind == wasmflow_api::HandlerKind::Start)
                    .map(|h| {
                        h.params
                            .iter()
                            .filter(|p| !p.optional)
                            .map(|p| (p.name.clone(), placeholder(&p.type_)))
                            .collect::<serde_json::Map<_, _>>()
                    })
                    .unwrap_or_default();
                Value::Object(params).to_string()
            },
        })
        .collect()
}

/// Every status, for the listing's filter.
pub fn statuses() -> Vec<&'static str> {
    RunStatus::ALL.iter().map(|s| s.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, status: RunStatus, children: Vec<TreeView>) -> TreeView {
        let view: RunView = serde_json::from_value(json!({
            "workflow_id": id, "run_id": format!("r-{id}"), "type": "Order",
            "status": status.as_str(), "version": "0123456789abcdef",
            "created_ms": 1_000, "updated_ms": 2_500,
        }))
        .unwrap();
        TreeView {
            run: view,
            children,
        }
    }

    #[test]
    fn a_start_form_is_filled_with_the_parameters_types() {
        let types: TypesView = serde_json::from_value(json!({
            "types": [{"name": "Order", "version": "v1", "file": "o.wasm", "in_flight": [],
                "handlers": [{"name": "start", "kind": "start", "params": [
                    {"name": "order_id", "optional": false, "type": "a string"},
                    {"name": "amount", "optional": false, "type": "a number"},
                    {"name": "rush", "optional": false, "type": "a boolean or null"},
                    {"name": "note", "optional": true, "type": "a string"}]},
                    {"name": "paid", "kind": "event", "params": []}]}],
            "rejected": []
        }))
        .unwrap();
        let card = &type_cards(&types)[0];
        assert_eq!(
            serde_json::from_str::<Value>(&card.skeleton).unwrap(),
            json!({"order_id": "", "amount": 0, "rush": false}),
            "required parameters only"
        );
        assert_eq!(card.events, ["paid"]);
        assert_eq!(
            card.handlers[0].2,
            "order_id: a string, amount: a number, rush: a boolean or null, note?: a string"
        );
    }

    #[test]
    fn a_tree_is_drawn_depth_first() {
        let tree = run(
            "root",
            RunStatus::Running,
            vec![
                run(
                    "a",
                    RunStatus::Completed,
                    vec![run("a1", RunStatus::Completed, vec![])],
                ),
                run("b", RunStatus::Waiting, vec![]),
            ],
        );
        let mut rows = Vec::new();
        flatten(&tree, "r-a", "", "", &mut rows);
        let drawn: Vec<_> = rows
            .iter()
            .map(|r| format!("{}{} {}", r.indent, r.row.workflow_id, r.row.status))
            .collect();
        assert_eq!(
            drawn,
            [
                "root running",
                "├─ a completed",
                "│  └─ a1 completed",
                "└─ b waiting"
            ]
        );
        assert!(rows[1].here && !rows[0].here);
        assert_eq!(rows[0].row.age, "", "a live run shows no age");
        assert_eq!(
            rows[1].row.age, "1.5 s",
            "an ended run's age is its run time"
        );
        assert_eq!(rows[0].row.version, "0123456789ab");
    }

    #[test]
    fn the_timeline_says_what_happened_and_when() {
        let entries: Vec<HistoryEntry> = serde_json::from_value(json!([
            {"id": 1, "at_ms": 1_000, "type": "run_started", "workflow_type": "Order",
             "workflow_id": "o", "version": "0123456789abcdef", "input": {"item": "book"}},
            {"id": 2, "at_ms": 1_004, "type": "activation_completed", "sequence": 0,
             "kind": "start", "handler": "start", "started_ms": 1_001, "duration_us": 2_345,
             "directive": {"wait": {}}, "keys_changed": []},
            {"id": 3, "at_ms": 4_000, "type": "task_attempted", "name": "charge",
             "occurrence": 0, "attempt": 2, "key": "k", "started_ms": 3_000,
             "duration_us": 640, "result": {"error": {"kind": "TaskFailed", "message": "no"}},
             "retry_at_ms": 9_000},
            {"id": 4, "at_ms": 5_000, "type": "run_failed",
             "error": {"kind": "TaskFailed", "message": "no"}},
        ]))
        .unwrap();
        let moments = timeline(&entries, 1_000);
        let lines: Vec<_> = moments
            .iter()
            .map(|m| format!("{} {} {}", m.offset, m.delta, m.summary))
            .collect();
        assert_eq!(
            lines,
            [
                "+0 ms 0 ms Order started (version 0123456789ab)",
                r#"+4 ms 4 ms start `start` ran 2.3 ms → {"wait":{}}"#,
                "+3.0 s 2.9 s task `charge` attempt 2",
                "+4.0 s 1.0 s failed: TaskFailed: no",
            ]
        );
        assert!(moments[3].failed && !moments[1].failed);
        let task = attempt(&entries[2]);
        assert_eq!(
            (
                task.name.as_str(),
                task.attempt,
                task.ok,
                task.outcome.as_str()
            ),
            ("charge", 2, false, "TaskFailed: no")
        );
        assert_eq!(task.retry_at, Some(Time::at(9_000)));
    }
}
