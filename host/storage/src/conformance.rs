//! The storage conformance suite: one set of checks of the behaviour every
//! [`Storage`] backend must show (SPEC 3, 6 and 7 as [`rules`](crate::rules)
//! applies them), run through the [`Storage`] trait alone: no SQL, no wasm.
//!
//! Each check is a `pub async fn` that takes a fresh, empty database opened
//! with [`QUOTAS`] and panics, saying what went wrong, when the backend
//! misbehaves. A backend's test crate runs them all with
//! [`conformance_tests!`](crate::conformance_tests), naming an `async fn`
//! (or closure) that returns a guard to keep alive for the test (a temporary
//! directory, say) and the backend; the test crate needs `tokio` with the
//! `macros` feature.
//!
//! ```ignore
//! async fn open() -> (tempfile::TempDir, SqliteStorage) {
//!     let dir = tempfile::tempdir().expect("a temporary directory");
//!     let db = SqliteStorage::open(&dir.path().join("w.db"), Access::Host, conformance::QUOTAS);
//!     (dir, db.expect("a fresh database"))
//! }
//! wasmflow_storage::conformance_tests!(open);
//! ```
//!
//! A new check is a `pub async fn` here plus its name in the list of
//! [`conformance_tests!`](crate::conformance_tests).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use wasmflow_core::model::{HistoryEvent, Json, Pending, RunId};
use wasmflow_core::plan::{Delivery, InboxKind, NewRun, NextState, ParentLink, Timer};
use wasmflow_core::{
    ChildOutcome, ChildStatus, ClosePolicy, ErrorKind, HandlerKind, RunStatus, WorkflowError,
};

use wasmflow_core::journal::{JournalEntry, RecordedValue, TaskAttempt, TaskResult};

use crate::{
    AlreadyActive, CommitOutcome, Effects, Finished, HistoryRecord, ListPosition, LiveVersion,
    NotRetryable, Quotas, Resume, RunFilter, RunGone, RunRecord, StateCommit, Storage,
    StorageError,
};

/// A stored document as a value; the suite fails if it does not read back.
fn json_value(json: &Json) -> serde_json::Value {
    wasmflow_core::model::json_value(json)
        .unwrap_or_else(|e| panic!("stored JSON must read back: {e}"))
}

/// The quotas a backend under test must be opened with.
pub const QUOTAS: Quotas = Quotas { max_inbox_len: 5 };

/// Runs one `#[tokio::test]` per conformance check against a backend.
///
/// `$open` is an `async fn` (or a closure returning a future) that returns
/// `(guard, storage)`: a fresh, empty backend opened with
/// [`conformance::QUOTAS`](crate::conformance::QUOTAS), and whatever must
/// live as long as it (dropped after it). The invoking crate needs `tokio`
/// with the `macros` feature.
#[macro_export]
macro_rules! conformance_tests {
    (@each $open:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, storage) = ($open)().await;
                $crate::conformance::$check(&storage).await;
            }
        )+
    };
    ($open:expr) => {
        $crate::conformance_tests!(@each $open;
            a_created_run_is_running_at_seq_zero_with_its_start_activation,
            retention_deletes_old_finished_runs_in_batches_and_keeps_families_with_live_runs,
            a_workflow_id_has_at_most_one_active_run,
            a_commit_is_guarded_by_the_sequence_number,
            a_run_that_ends_keeps_its_result_and_takes_no_more_commits,
            a_run_that_waits_on_an_empty_inbox_parks_until_an_event_arrives,
            a_timer_fires_only_while_the_run_still_waits_at_its_seq,
            a_timed_wait_without_a_step_keeps_its_timer_until_it_fails_the_run,
            a_sleeping_run_keeps_events_in_its_inbox_until_it_next_waits,
            events_delivered_while_running_are_dispatched_oldest_first_exactly_once,
            deliveries_beyond_the_inbox_quota_or_to_gone_runs_are_refused,
            children_are_created_with_their_parents_commit,
            a_taken_child_workflow_id_undoes_the_whole_commit,
            a_child_that_ends_sends_a_completion_notice_to_its_parent,
            a_child_notice_says_how_the_child_ended,
            a_parent_that_ends_applies_its_childrens_close_policies,
            a_cancel_during_an_activation_takes_effect_when_it_commits,
            terminate_ends_a_live_run_at_once,
            events_to_the_parent_land_with_the_childs_commit,
            expire_fails_a_run_only_once_its_deadline_has_passed,
            upgrade_moves_a_waiting_run_only_at_the_given_seq_and_version,
            component_versions_are_kept_once_and_pruned_when_no_live_run_needs_them,
            live_versions_count_live_runs_per_type_and_version,
            list_runs_is_newest_first_with_filters_and_limit,
            list_runs_pages_visit_every_run_once_newest_first,
            history_reads_back_oldest_first_as_written,
            concurrent_writes_each_land_once_and_alone,
            a_journal_is_recorded_only_at_the_current_seq_and_dropped_when_the_run_moves_on,
            a_retrying_run_keeps_its_activation_and_journal_until_the_retry_is_due,
            a_failed_run_is_retried_on_its_kept_activation_once,
        );
    };
}

/// The base of the timestamps the checks write.
const T0: u64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------
// The checks.

fn attempt(name: &str, n: u32, ok: bool, retry_at_ms: Option<u64>) -> JournalEntry {
    JournalEntry::Task(TaskAttempt {
        name: name.into(),
        occurrence: 0,
        attempt: n,
        key: format!("k-{name}"),
        started_ms: T0,
        duration_us: 3,
        result: if ok {
            TaskResult::Value(json!(n))
        } else {
            TaskResult::Error(WorkflowError::new(ErrorKind::Application, "down"))
        },
        retry_at_ms,
        requests: vec![],
    })
}

/// Task attempts and values land in the journal of the running activation,
/// with the attempts in the history, only while the run runs at the given
/// sequence number; a commit that moves the run on drops the journal, a
/// failure keeps it.
pub async fn a_journal_is_recorded_only_at_the_current_seq_and_dropped_when_the_run_moves_on(
    s: &dyn Storage,
) {
    let db = Db(s);
    let run = db.create(new_run("T", "j1", T0)).await;
    let entries = vec![
        JournalEntry::Value(RecordedValue::Now(T0)),
        attempt("charge", 1, true, None),
    ];
    assert!(ok(
        "record",
        s.record(run, 0, entries.clone(), T0 + 1).await
    ));
    assert!(
        !ok("record", s.record(run, 1, entries.clone(), T0 + 1).await),
        "a record at a sequence number the run is not at is refused"
    );
    let journal = ok("journal", s.journal(run).await);
    assert_eq!(
        journal.entries, entries,
        "the journal reads back as recorded"
    );
    let kinds: Vec<_> = db
        .history(run)
        .await
        .iter()
        .map(|h| h.event.kind())
        .collect();
    assert_eq!(
        kinds,
        ["run_started", "task_attempted"],
        "attempts are in the history"
    );
    db.applied(commit(run, 0, NextState::Running(step("next"))))
        .await;
    assert!(
        ok("journal", s.journal(run).await).is_empty(),
        "the next activation starts with an empty journal"
    );
    assert!(ok(
        "record",
        s.record(run, 1, vec![attempt("b", 1, false, None)], T0 + 2)
            .await
    ));
    let error = WorkflowError::new(ErrorKind::Trap, "bug");
    db.applied(commit(run, 1, NextState::Failed(error))).await;
    assert_eq!(
        ok("journal", s.journal(run).await).entries.len(),
        1,
        "a failed activation keeps its journal for `retry`"
    );
    assert!(
        !ok(
            "record",
            s.record(run, 2, vec![attempt("c", 1, true, None)], T0 + 3)
                .await
        ),
        "a failed run takes no records"
    );
}

/// A retry delay parks the run (waiting, sleeping: events stay in the
/// inbox) with its activation and journal; when due, the same activation is
/// current again, once.
pub async fn a_retrying_run_keeps_its_activation_and_journal_until_the_retry_is_due(
    s: &dyn Storage,
) {
    let db = Db(s);
    let run = db.create(new_run("T", "j2", T0)).await;
    assert!(ok(
        "record",
        s.record(
            run,
            0,
            vec![attempt("charge", 1, false, Some(T0 + 500))],
            T0
        )
        .await
    ));
    let start = db
        .record(run)
        .await
        .pending
        .expect("a running run has a pending activation");
    let next = NextState::Retrying {
        due_ms: T0 + 500,
        pending: start.clone(),
    };
    let parked = db.applied(commit(run, 0, next)).await;
    assert!(
        parked.next.is_none(),
        "a retrying run has no activation to execute now"
    );
    let record = db.record(run).await;
    assert_eq!(record.status, RunStatus::Waiting);
    let timer = record.timer.expect("a retry timer");
    assert!(
        timer.retry && timer.sleep && timer.on_timeout.is_none(),
        "{timer:?}"
    );
    assert_eq!(timer.due_ms, T0 + 500);
    db.delivered(run, "ping", json!(null)).await;
    assert_eq!(
        db.record(run).await.status,
        RunStatus::Waiting,
        "events wait in the inbox"
    );
    assert_eq!(ok("journal", s.journal(run).await).entries.len(), 1);

    let stale = ok(
        "reexecute",
        s.reexecute(run, Resume::RetryDue { seq: 0 }, T0 + 500)
            .await,
    );
    assert_eq!(
        stale.err(),
        Some(NotRetryable::Stale(run)),
        "a timer at another seq is stale"
    );
    let (pending, seq) = ok(
        "reexecute",
        s.reexecute(run, Resume::RetryDue { seq: parked.seq }, T0 + 500)
            .await,
    )
    .expect("the retry is due");
    assert_eq!(
        (pending.handler.as_str(), seq),
        (start.handler.as_str(), parked.seq + 1)
    );
    let record = db.record(run).await;
    assert_eq!(record.status, RunStatus::Running);
    assert_eq!(
        ok("journal", s.journal(run).await).entries.len(),
        1,
        "the journal stays"
    );
    let again = ok(
        "reexecute",
        s.reexecute(run, Resume::RetryDue { seq: parked.seq }, T0 + 501)
            .await,
    );
    assert!(again.is_err(), "a retry fires once");
}

/// `retry` of a failed run makes its failed activation current again, with a
/// `Retried` mark in its journal; a run that has not failed, one that failed
/// without an activation, or one whose workflow id is taken is refused.
pub async fn a_failed_run_is_retried_on_its_kept_activation_once(s: &dyn Storage) {
    let db = Db(s);
    let run = db.create(new_run("T", "j3", T0)).await;
    let not_failed = ok(
        "reexecute",
        s.reexecute(run, Resume::Failed { to_version: None }, T0)
            .await,
    );
    assert!(
        matches!(
            not_failed,
            Err(NotRetryable::NotFailed {
                status: RunStatus::Running,
                ..
            })
        ),
        "{not_failed:?}"
    );
    assert!(ok(
        "record",
        s.record(run, 0, vec![attempt("reserve", 1, true, None)], T0)
            .await
    ));
    let error = WorkflowError::new(ErrorKind::Trap, "bug");
    db.applied(commit(run, 0, NextState::Failed(error))).await;
    let failed = db.record(run).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(
        failed.pending.as_ref().map(|p| p.handler.as_str()),
        Some("start"),
        "a failed run keeps the activation it failed in"
    );

    // Its workflow id taken by a new run meanwhile: refused until that ends.
    let other = db.create(new_run("T", "j3", T0 + 1)).await;
    let taken = ok(
        "reexecute",
        s.reexecute(run, Resume::Failed { to_version: None }, T0 + 2)
            .await,
    );
    assert_eq!(
        taken.err(),
        Some(NotRetryable::WorkflowIdTaken {
            workflow_id: "j3".into(),
            holder: other
        })
    );
    db.terminate_ok(other, "make room").await;

    let resume = Resume::Failed {
        to_version: Some("v2".into()),
    };
    let (pending, _) = ok("reexecute", s.reexecute(run, resume.clone(), T0 + 3).await)
        .expect("a failed run is retried");
    assert_eq!(pending.handler, "start");
    let record = db.record(run).await;
    assert_eq!(
        (record.status, record.version.as_str()),
        (RunStatus::Running, "v2")
    );
    assert!(record.error.is_none(), "the error is cleared");
    let journal = ok("journal", s.journal(run).await);
    assert_eq!(journal.entries.last(), Some(&JournalEntry::Retried));
    assert_eq!(journal.entries.len(), 2, "completed tasks stay recorded");
    assert!(
        db.history(run).await.iter().any(|h| matches!(
            &h.event,
            HistoryEvent::RunRetried { handler, to_version: Some(v) } if handler == "start" && v == "v2"
        )),
        "the history records the retry"
    );
    let twice = ok("reexecute", s.reexecute(run, resume, T0 + 4).await);
    assert!(
        matches!(twice, Err(NotRetryable::NotFailed { .. })),
        "{twice:?}"
    );

    // A run that failed waiting (no activation) cannot be retried.
    let waiter = db.create(new_run("T", "j4", T0)).await;
    db.applied(commit(waiter, 0, NextState::Waiting(None)))
        .await;
    let error = Timer::wait_timeout(waiter);
    db.applied(commit(waiter, 1, NextState::Failed(error)))
        .await;
    let none = ok(
        "reexecute",
        s.reexecute(waiter, Resume::Failed { to_version: None }, T0 + 5)
            .await,
    );
    assert_eq!(none.err(), Some(NotRetryable::NoActivation(waiter)));
}

/// Paging `list_runs` by the position of each page's last run visits every
/// run exactly once, newest first, in the order of one unpaged listing:
/// runs created in the same millisecond included (ordered by run id), with
/// filters, and whatever the page size.
pub async fn list_runs_pages_visit_every_run_once_newest_first(s: &dyn Storage) {
    let db = Db(s);
    // Seven runs over four milliseconds: ties at T0 + 1 and T0 + 3.
    let at = [T0, T0 + 1, T0 + 1, T0 + 1, T0 + 2, T0 + 3, T0 + 3];
    for (i, at_ms) in at.into_iter().enumerate() {
        let ty = if i % 2 == 0 { "Order" } else { "Payment" };
        db.create(new_run(ty, &format!("p{i}"), at_ms)).await;
    }
    let all = db.list(None, None).await;
    assert_eq!(all.len(), at.len(), "one unpaged listing has every run");
    for pair in all.windows(2) {
        assert!(
            (pair[0].created_ms, pair[0].run_id.to_string())
                > (pair[1].created_ms, pair[1].run_id.to_string()),
            "newest first, then by run id descending: {} before {}",
            pair[0].run_id,
            pair[1].run_id
        );
    }
    for filter in [None, Some("Order")] {
        let expected: Vec<RunId> = all
            .iter()
            .filter(|r| filter.is_none_or(|ty| r.workflow_type == ty))
            .map(|r| r.run_id)
            .collect();
        for limit in [1, 2, 3, expected.len(), expected.len() + 1] {
            let mut seen: Vec<RunId> = Vec::new();
            let mut after: Option<ListPosition> = None;
            for _page in 0..=expected.len() {
                let page = ok(
                    "list_runs",
                    s.list_runs(of_type(filter), after, limit).await,
                );
                assert!(page.len() <= limit, "a page has at most `limit` runs");
                let Some(last) = page.last() else { break };
                after = Some(ListPosition::of(last));
                seen.extend(ids(&page));
            }
            assert_eq!(
                seen, expected,
                "pages of {limit} (type {filter:?}) visit every run once, newest first"
            );
        }
    }
    let oldest = all.last().map(ListPosition::of);
    assert!(
        ok(
            "list_runs",
            s.list_runs(RunFilter::default(), oldest, 10).await
        )
        .is_empty(),
        "nothing comes after the oldest run"
    );
}

/// A created run reads back `running` at sequence number 0 with its start
/// activation and a `run_started` entry, and is found by its workflow id.
pub async fn a_created_run_is_running_at_seq_zero_with_its_start_activation(s: &dyn Storage) {
    let db = Db(s);
    let mut run = new_run("Order", "order-1", T0);
    run.version = "v7".into();
    let id = db.create(run).await;

    let r = db.record(id).await;
    assert_eq!(r.run_id, id, "run({id}) returned another run");
    assert_eq!(
        (
            r.workflow_id.as_str(),
            r.workflow_type.as_str(),
            r.version.as_str()
        ),
        ("order-1", "Order", "v7"),
        "a created run reads back its workflow id, type and version"
    );
    assert_eq!(r.status, RunStatus::Running, "a created run is running");
    assert_eq!(r.seq, 0, "a created run is at sequence number 0");
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Start,
        "start",
        &input_of("order-1"),
        "a created run's pending activation",
    );
    assert_eq!(
        json_value(&r.input),
        input_of("order-1"),
        "a created run's input"
    );
    assert_eq!(
        (r.parent_run_id, r.on_completed.as_deref(), r.close_policy),
        (None, None, ClosePolicy::Abandon),
        "a run without a parent has no parent link and the default close policy"
    );
    assert!(
        r.result.is_none()
            && r.error.is_none()
            && r.timer.is_none()
            && r.deadline_ms.is_none()
            && r.cancel_requested.is_none(),
        "a created run has no result, error, timer, deadline or cancel request: {r:?}"
    );
    assert_eq!(r.created_ms, T0, "a created run's creation time");

    let history = db.history(id).await;
    assert_eq!(
        events(&history),
        [HistoryEvent::RunStarted {
            workflow_type: "Order".into(),
            workflow_id: "order-1".into(),
            version: "v7".into(),
            input: input_of("order-1"),
            parent_run_id: None,
        }],
        "a created run's history is its `run_started`"
    );
    assert_eq!(
        history[0].at_ms, T0,
        "`run_started` is recorded at creation"
    );
    assert_eq!(
        ok("history_len", s.history_len(id).await),
        1,
        "history_len counts `run_started`"
    );

    let latest = ok("latest_run", s.latest_run("order-1").await).map(|r| r.run_id);
    assert_eq!(latest, Some(id), "latest_run finds the created run");
    let active = ok("active_run", s.active_run("order-1").await).map(|r| r.run_id);
    assert_eq!(active, Some(id), "active_run finds the created run");
    assert!(
        ok("latest_run", s.latest_run("order-2").await).is_none(),
        "latest_run of an unused workflow id is None"
    );
    assert!(
        ok("active_run", s.active_run("order-2").await).is_none(),
        "active_run of an unused workflow id is None"
    );
    assert!(
        ok("run", s.run(RunId::new()).await).is_none(),
        "run() of an unknown id is None"
    );
    assert_eq!(ids(&db.live().await), [id], "live_runs lists the new run");
    assert!(
        ok("store", s.store(id).await).is_empty(),
        "a created run's store is empty"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "a new database's inboxes are empty"
    );
}

/// A second run with an active run's workflow id is refused, naming the
/// holder, and writes nothing; once the holder ends, the id is free again.
pub async fn a_workflow_id_has_at_most_one_active_run(s: &dyn Storage) {
    let db = Db(s);
    let first = db.create(new_run("Order", "order-1", T0)).await;

    let second = new_run("Order", "order-1", T0 + 1);
    let second_id = second.run_id;
    let refused = ok("create_run", s.create_run(second).await);
    assert_eq!(
        refused,
        Err(AlreadyActive {
            workflow_id: "order-1".into(),
            run_id: first,
        }),
        "a second run of an active workflow id is AlreadyActive, naming the holder"
    );
    assert!(
        ok("run", s.run(second_id).await).is_none(),
        "a refused run is not stored"
    );
    assert!(
        db.history(second_id).await.is_empty(),
        "a refused run has no history"
    );
    assert_eq!(
        ids(&db.list(None, None).await),
        [first],
        "a refused run is not listed"
    );
    assert_eq!(db.history(first).await.len(), 1, "the holder is untouched");

    // Another workflow id is independent.
    db.create(new_run("Order", "order-2", T0 + 2)).await;

    // Once the holder ended, the id takes a new run.
    db.terminate_ok(first, "done").await;
    let third = db.create(new_run("Order", "order-1", T0 + 3)).await;
    let active = ok("active_run", s.active_run("order-1").await).map(|r| r.run_id);
    assert_eq!(active, Some(third), "active_run finds the new holder");
    let latest = ok("latest_run", s.latest_run("order-1").await).map(|r| r.run_id);
    assert_eq!(latest, Some(third), "latest_run finds the newest run");
}

/// A commit applies only at the run's current sequence number: a stale one
/// writes nothing; a current one applies its store writes, deletes and
/// history, and bumps the sequence number.
pub async fn a_commit_is_guarded_by_the_sequence_number(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;

    let mut c = commit(id, 0, NextState::Running(step("charge")));
    c.writes.insert("a".into(), Some(json(json!(1))));
    c.writes
        .insert("b".into(), Some(json(json!({"x": [1, 2]}))));
    c.history.push(activation_completed(0, "start"));
    let applied = db.applied(c).await;
    assert_eq!(applied.seq, 1, "a current commit bumps the sequence number");
    assert_pending(
        applied.next.as_ref(),
        HandlerKind::Step,
        "charge",
        &Value::Null,
        "the commit outcome's next activation",
    );
    assert_eq!(
        applied.effects,
        Effects::default(),
        "a plain commit has no effects"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 1),
        "after a step commit"
    );
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Step,
        "charge",
        &Value::Null,
        "the stored pending activation",
    );
    let store = json!({"a": 1, "b": {"x": [1, 2]}});
    assert_eq!(db.store(id).await, store, "a commit's store writes");
    assert_eq!(db.history(id).await.len(), 2, "a commit's history");

    // Stale: the sequence number moved on (and one from the future).
    for stale_seq in [0, 5] {
        let mut stale = commit(id, stale_seq, NextState::Completed(json(json!("late"))));
        stale.writes.insert("a".into(), Some(json(json!(99))));
        stale.writes.insert("b".into(), None);
        stale.writes.insert("c".into(), Some(json(json!(3))));
        stale.history.push(activation_completed(stale_seq, "start"));
        stale.children.push(child_of(
            id,
            "Payment",
            "stale-child",
            None,
            ClosePolicy::Abandon,
        ));
        let outcome = db.commit(stale).await;
        assert!(
            matches!(outcome, CommitOutcome::Stale),
            "a commit expecting seq {stale_seq} of a run at seq 1 is Stale, got {outcome:?}"
        );
        let r = db.record(id).await;
        assert_eq!(
            (r.status, r.seq),
            (RunStatus::Running, 1),
            "a stale commit leaves the run as it was"
        );
        assert_eq!(
            db.store(id).await,
            store,
            "a stale commit writes no store key"
        );
        assert_eq!(
            db.history(id).await.len(),
            2,
            "a stale commit writes no history"
        );
        assert_eq!(
            ok("history_len", s.history_len(id).await),
            2,
            "a stale commit writes no history (history_len)"
        );
        assert!(
            ok("active_run", s.active_run("stale-child").await).is_none(),
            "a stale commit creates no child"
        );
    }

    // A commit for a run that does not exist is Stale too.
    let outcome = db
        .commit(commit(RunId::new(), 0, NextState::Waiting(None)))
        .await;
    assert!(
        matches!(outcome, CommitOutcome::Stale),
        "a commit for an unknown run is Stale, got {outcome:?}"
    );

    // The current commit deletes and overwrites.
    let mut c = commit(id, 1, NextState::Running(step("ship")));
    c.writes.insert("a".into(), Some(json(json!(10))));
    c.writes.insert("b".into(), None);
    c.writes.insert("never-written".into(), None);
    let applied = db.applied(c).await;
    assert_eq!(
        applied.seq, 2,
        "the second commit bumps the sequence number"
    );
    assert_eq!(
        db.store(id).await,
        json!({"a": 10}),
        "a commit overwrites and deletes store keys"
    );
    assert_eq!(db.record(id).await.seq, 2, "the stored sequence number");
}

/// A run that completes reads back `completed` with its result and its
/// `run_completed` entry, and takes no further commit.
pub async fn a_run_that_ends_keeps_its_result_and_takes_no_more_commits(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let applied = db
        .applied(commit(
            id,
            0,
            NextState::Completed(json(json!({"total": 42}))),
        ))
        .await;
    assert!(
        applied.next.is_none(),
        "a completed run has no next activation"
    );
    assert_eq!(
        applied.effects.finished,
        [finished(id, "Order", RunStatus::Completed)],
        "the commit's effects list the run that ended"
    );
    let r = db.record(id).await;
    assert_eq!(r.status, RunStatus::Completed, "a completed run's status");
    assert_eq!(r.seq, applied.seq, "the outcome's seq is the stored seq");
    assert_eq!(
        r.result.as_ref().map(json_value),
        Some(json!({"total": 42})),
        "a completed run keeps its result"
    );
    assert!(
        r.error.is_none() && r.pending.is_none() && r.timer.is_none(),
        "a completed run has no error, pending activation or timer: {r:?}"
    );
    assert_eq!(
        db.history(id).await.last().map(|h| h.event.clone()),
        Some(HistoryEvent::RunCompleted {
            result: json!({"total": 42})
        }),
        "a completed run's last history entry"
    );
    assert!(
        ok("active_run", s.active_run("order-1").await).is_none(),
        "a completed run is not active"
    );
    assert!(db.live().await.is_empty(), "a completed run is not live");

    let len = db.history(id).await.len();
    let outcome = db
        .commit(commit(id, r.seq, NextState::Running(step("again"))))
        .await;
    assert!(
        matches!(outcome, CommitOutcome::Stale),
        "a commit of an ended run, even at its current seq, is Stale, got {outcome:?}"
    );
    let after = db.record(id).await;
    assert_eq!(
        (after.status, after.seq),
        (RunStatus::Completed, r.seq),
        "an ended run stays ended"
    );
    assert_eq!(
        db.history(id).await.len(),
        len,
        "no history for a stale commit"
    );
}

/// A run that waits with an empty inbox parks with its timer; an event
/// delivered to it is dispatched at once.
pub async fn a_run_that_waits_on_an_empty_inbox_parks_until_an_event_arrives(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let timer = Timer {
        due_ms: T0 + 5_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    let applied = db
        .applied(commit(id, 0, NextState::Waiting(Some(timer.clone()))))
        .await;
    assert_eq!(applied.seq, 1, "parking bumps the sequence number");
    assert!(
        applied.next.is_none(),
        "a run parking on an empty inbox has no next activation, got {:?}",
        applied.next
    );
    let r = db.record(id).await;
    assert_eq!((r.status, r.seq), (RunStatus::Waiting, 1), "a parked run");
    assert_eq!(r.timer, Some(timer), "a parked run keeps its timer");
    assert!(
        r.pending.is_none(),
        "a parked run has no pending activation"
    );

    let before = db.history(id).await.len();
    let effects = db.delivered(id, "approve", json!({"by": "ann"})).await;
    assert_eq!(
        effects.woken,
        [id],
        "an event for a parked run wakes it at once"
    );
    assert!(effects.finished.is_empty(), "a delivery ends no run");
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 2),
        "a woken run is running at the next seq"
    );
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Event,
        "approve",
        &json!({"by": "ann"}),
        "a woken run's pending activation",
    );
    assert!(
        r.timer.is_none(),
        "dispatching an event cancels the wait timer"
    );
    let history = db.history(id).await;
    assert_eq!(
        events(&history[before..]),
        [
            HistoryEvent::EventReceived {
                name: "approve".into(),
                payload: json!({"by": "ann"}),
                source: "client".into(),
            },
            HistoryEvent::EventDispatched {
                name: "approve".into(),
                kind: HandlerKind::Event,
            },
        ],
        "a delivery to a parked run records its receipt and dispatch"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "a dispatched event leaves the inbox"
    );
}

/// A timer's commit, computed from the seq the run parked at, applies while
/// the run still waits there; once an event was dispatched it is stale.
pub async fn a_timer_fires_only_while_the_run_still_waits_at_its_seq(s: &dyn Storage) {
    let db = Db(s);
    let timer = Timer {
        due_ms: T0 + 1_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    let fired = |run: RunId, seq: u64| {
        let mut c = commit(run, seq, NextState::Running(step("late")));
        c.history.push(HistoryEvent::TimerFired {
            on_timeout: Some("late".into()),
        });
        c
    };

    let quiet = db.create(new_run("Order", "order-1", T0)).await;
    let parked = db
        .applied(commit(quiet, 0, NextState::Waiting(Some(timer.clone()))))
        .await;
    let applied = db.applied(fired(quiet, parked.seq)).await;
    assert_pending(
        applied.next.as_ref(),
        HandlerKind::Step,
        "late",
        &Value::Null,
        "a due timer runs its step",
    );
    let r = db.record(quiet).await;
    assert_eq!(
        (r.status, r.seq, r.timer.clone()),
        (RunStatus::Running, parked.seq + 1, None),
        "a fired timer leaves the run running its step, without the timer"
    );

    let busy = db.create(new_run("Order", "order-2", T0)).await;
    let parked = db
        .applied(commit(busy, 0, NextState::Waiting(Some(timer))))
        .await;
    db.delivered(busy, "approve", json!(true)).await;
    let len = db.history(busy).await.len();
    let outcome = db.commit(fired(busy, parked.seq)).await;
    assert!(
        matches!(outcome, CommitOutcome::Stale),
        "a timer whose run was woken by an event first is Stale, got {outcome:?}"
    );
    let r = db.record(busy).await;
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Event,
        "approve",
        &json!(true),
        "the event, not the timer, is the run's activation",
    );
    assert_eq!(
        db.history(busy).await.len(),
        len,
        "the stale timer records nothing"
    );
}

/// A timed wait without a timeout step parks with a timer that has no step;
/// it reads back as such (and survives a restart), and its firing commit
/// ends the run `failed` with `WaitTimeout`.
pub async fn a_timed_wait_without_a_step_keeps_its_timer_until_it_fails_the_run(s: &dyn Storage) {
    let db = Db(s);
    let timer = Timer {
        due_ms: T0 + 1_000,
        on_timeout: None,
        sleep: false,
        retry: false,
    };
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let parked = db
        .applied(commit(id, 0, NextState::Waiting(Some(timer.clone()))))
        .await;
    assert!(parked.next.is_none(), "the run parks");
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.timer.as_ref()),
        (RunStatus::Waiting, Some(&timer)),
        "a timer without a step reads back"
    );
    assert!(
        db.live()
            .await
            .iter()
            .any(|r| r.timer.as_ref() == Some(&timer)),
        "the live runs a host resumes carry the timer"
    );
    let error = WorkflowError::new(ErrorKind::WaitTimeout, "no event in time");
    let mut fired = commit(id, parked.seq, NextState::Failed(error.clone()));
    fired
        .history
        .push(HistoryEvent::TimerFired { on_timeout: None });
    let applied = db.applied(fired).await;
    assert_eq!(
        applied.effects.finished,
        [finished(id, "Order", RunStatus::Failed)],
        "the timer fails the run"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.error.as_ref(), r.timer),
        (RunStatus::Failed, Some(&error), None),
        "the run failed with `WaitTimeout`"
    );
}

/// A durable sleep parks the run with a sleeping timer: events delivered
/// meanwhile (or waiting when it parks) stay in the inbox; when the timer
/// fires, its step runs, and the run's next `wait` dispatches them oldest
/// first.
pub async fn a_sleeping_run_keeps_events_in_its_inbox_until_it_next_waits(s: &dyn Storage) {
    let db = Db(s);
    let sleep = Timer {
        due_ms: T0 + 1_000,
        on_timeout: Some("late".into()),
        sleep: true,
        retry: false,
    };
    let id = db.create(new_run("Order", "order-1", T0)).await;
    db.delivered(id, "first", json!(1)).await;
    let parked = db
        .applied(commit(id, 0, NextState::Waiting(Some(sleep.clone()))))
        .await;
    assert!(
        parked.next.is_none(),
        "a sleep does not take the waiting event, got {:?}",
        parked.next
    );
    let effects = db.delivered(id, "second", json!(2)).await;
    assert!(
        effects.woken.is_empty(),
        "an event does not wake a sleeping run"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq, r.timer.as_ref(), r.pending.is_none()),
        (RunStatus::Waiting, parked.seq, Some(&sleep), true),
        "the run sleeps on, its timer a sleep"
    );
    assert_eq!(
        db.anchors_inbox(id).await,
        [("first".to_owned(), false), ("second".to_owned(), false)],
        "both events wait in the inbox"
    );
    let inbox = ok("inbox", s.inbox(id).await);
    assert_eq!(
        inbox
            .iter()
            .map(|e| (e.name.as_str(), e.payload.get(), e.kind))
            .collect::<Vec<_>>(),
        [
            ("first", "1", InboxKind::Event),
            ("second", "2", InboxKind::Event)
        ],
        "the inbox reads back oldest first with its payloads"
    );

    let mut fired = commit(id, parked.seq, NextState::Running(step("late")));
    fired.history.push(HistoryEvent::TimerFired {
        on_timeout: Some("late".into()),
    });
    let applied = db.applied(fired).await;
    assert_pending(
        applied.next.as_ref(),
        HandlerKind::Step,
        "late",
        &Value::Null,
        "the sleep's step runs when it is due",
    );
    let applied = db
        .applied(commit(id, applied.seq, NextState::Waiting(None)))
        .await;
    assert_pending(
        applied.next.as_ref(),
        HandlerKind::Event,
        "first",
        &json!(1),
        "the next wait dispatches the oldest event",
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.timer),
        (RunStatus::Running, None),
        "no sleep is left"
    );

    // A sleeping run is cancelled at once, like a waiting one.
    let other = db.create(new_run("Order", "order-2", T0)).await;
    db.applied(commit(other, 0, NextState::Waiting(Some(sleep))))
        .await;
    let effects = db.cancel_ok(other, "enough").await;
    assert_eq!(
        effects.finished,
        [finished(other, "Order", RunStatus::Cancelled)],
        "a sleeping run is cancelled at once"
    );
}

/// Events delivered while a run runs wait in its inbox in arrival order;
/// each `wait` dispatches the oldest; none is lost or handled twice.
pub async fn events_delivered_while_running_are_dispatched_oldest_first_exactly_once(
    s: &dyn Storage,
) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    for n in 1..=3 {
        let effects = db.delivered(id, &format!("e{n}"), json!({"n": n})).await;
        assert_eq!(
            effects,
            Effects::default(),
            "an event for a running run wakes nothing"
        );
    }
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 0),
        "events do not disturb a running run"
    );
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Start,
        "start",
        &input_of("order-1"),
        "a running run keeps its activation while events arrive",
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        3,
        "three events wait"
    );
    assert_eq!(
        db.anchors_inbox(id).await,
        [
            ("e1".into(), false),
            ("e2".into(), false),
            ("e3".into(), false)
        ],
        "the inbox holds the events in arrival order"
    );

    // The first wait (with a timer) dispatches e1 at once.
    let mut seq = 0;
    let mut handled = Vec::new();
    let timer = Timer {
        due_ms: T0 + 60_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    let applied = db
        .applied(commit(id, seq, NextState::Waiting(Some(timer))))
        .await;
    assert_eq!(
        applied.seq,
        seq + 2,
        "parking and dispatching each bump the sequence number"
    );
    let next = applied
        .next
        .unwrap_or_else(|| panic!("a wait with events in the inbox must dispatch the oldest"));
    assert_eq!(
        (next.kind, next.handler.as_str(), json_value(&next.input)),
        (HandlerKind::Event, "e1", json!({"n": 1})),
        "the oldest event is dispatched first"
    );
    handled.push(next.handler);
    seq = applied.seq;
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq, r.timer.clone()),
        (RunStatus::Running, seq, None),
        "a run that got an event as it parked is running, without its timer"
    );
    assert_eq!(
        r.pending.as_ref().map(|p| p.handler.as_str()),
        Some("e1"),
        "the stored pending activation is the dispatched event"
    );
    assert_eq!(
        db.anchors_inbox(id).await,
        [("e2".into(), false), ("e3".into(), false)],
        "the other events stay in the inbox"
    );

    // Another event arrives mid-way; rounds continue until the inbox is empty.
    let effects = db.delivered(id, "e4", json!({"n": 4})).await;
    assert!(effects.woken.is_empty(), "a running run is not woken");
    loop {
        let applied = db.applied(commit(id, seq, NextState::Waiting(None))).await;
        match applied.next {
            Some(next) => {
                assert_eq!(applied.seq, seq + 2, "park + dispatch bump the seq twice");
                assert_eq!(
                    next.kind,
                    HandlerKind::Event,
                    "an event is dispatched as an event"
                );
                handled.push(next.handler);
                seq = applied.seq;
            }
            None => {
                assert_eq!(applied.seq, seq + 1, "parking bumps the seq once");
                seq = applied.seq;
                break;
            }
        }
        assert!(
            handled.len() <= 4,
            "more events dispatched than delivered: {handled:?}"
        );
    }
    assert_eq!(
        handled,
        ["e1", "e2", "e3", "e4"],
        "every event is dispatched once, in arrival order"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Waiting, seq),
        "with the inbox empty, the run parks"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "the inbox is empty"
    );
    let history = db.history(id).await;
    let dispatched: Vec<&str> = history
        .iter()
        .filter_map(|h| match &h.event {
            HistoryEvent::EventDispatched { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        dispatched,
        ["e1", "e2", "e3", "e4"],
        "history records each dispatch once, in order"
    );
    assert_eq!(
        count(&history, "event_received"),
        4,
        "history records each receipt once"
    );
}

/// A delivery beyond `max_inbox_len` is refused `InboxFull`; one to an
/// unknown run `NotFound`; one to an ended run `Terminal`. An ending run
/// drops what its inbox held.
pub async fn deliveries_beyond_the_inbox_quota_or_to_gone_runs_are_refused(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let max = QUOTAS.max_inbox_len;
    for n in 0..max {
        db.delivered(id, &format!("q{n}"), json!(n)).await;
    }
    let refused = db.deliver(id, "one-too-many", json!(null)).await;
    assert_eq!(
        refused,
        Err(RunGone::InboxFull {
            run_id: id,
            len: max,
        }),
        "a delivery to a full inbox is InboxFull"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        max,
        "a refused event is not queued"
    );
    let history = db.history(id).await;
    assert_eq!(
        count(&history, "event_received"),
        max as usize,
        "a refused event is not recorded as received"
    );

    // Dispatching one makes room again.
    let applied = db.applied(commit(id, 0, NextState::Waiting(None))).await;
    assert_eq!(
        applied.next.map(|p| p.handler),
        Some("q0".to_owned()),
        "the oldest queued event is dispatched"
    );
    db.delivered(id, &format!("q{max}"), json!(max)).await;

    // An ending run drops its inbox, recording each dropped event.
    db.terminate_ok(id, "stop").await;
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "an ended run's inbox is emptied"
    );
    let dropped: Vec<String> = db
        .history(id)
        .await
        .into_iter()
        .filter_map(|h| match h.event {
            HistoryEvent::EventDropped { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (1..=max).map(|n| format!("q{n}")).collect();
    assert_eq!(
        dropped, expected,
        "an ended run records each event it never handled as dropped, oldest first"
    );

    assert_eq!(
        db.deliver(id, "late", json!(null)).await,
        Err(RunGone::Terminal {
            run_id: id,
            status: RunStatus::Terminated,
        }),
        "a delivery to an ended run is Terminal"
    );
    let unknown = RunId::new();
    assert_eq!(
        db.deliver(unknown, "lost", json!(null)).await,
        Err(RunGone::NotFound(unknown)),
        "a delivery to an unknown run is NotFound"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "refused deliveries queue nothing"
    );
}

/// A commit's children are created with it, linked to their parent.
pub async fn children_are_created_with_their_parents_commit(s: &dyn Storage) {
    let db = Db(s);
    let parent = db.create(new_run("Order", "order-1", T0)).await;
    let (mut first, mut second) = (
        child_of(
            parent,
            "Payment",
            "payment-1",
            Some("paid"),
            ClosePolicy::Cancel,
        ),
        child_of(parent, "Shipping", "ship-1", None, ClosePolicy::Terminate),
    );
    // Created in one commit, at one time: oldest first means by run id.
    let mut run_ids = [first.run_id, second.run_id];
    run_ids.sort();
    (first.run_id, second.run_id) = (run_ids[0], run_ids[1]);
    second.deadline_ms = Some(T0 + 9_000);

    let mut c = commit(parent, 0, NextState::Waiting(None));
    c.children = vec![first.clone(), second.clone()];
    let applied = db.applied(c).await;
    assert_eq!(applied.seq, 1, "the parent's commit applied");

    let children = ok("children", s.children(parent).await);
    assert_eq!(
        ids(&children),
        [first.run_id, second.run_id],
        "children() lists the children oldest first"
    );
    let c1 = db.record(first.run_id).await;
    assert_eq!(
        (c1.status, c1.seq, c1.parent_run_id),
        (RunStatus::Running, 0, Some(parent)),
        "a child starts running at seq 0, linked to its parent"
    );
    assert_eq!(
        (c1.on_completed.as_deref(), c1.close_policy),
        (Some("paid"), ClosePolicy::Cancel),
        "a child keeps its completion step and close policy"
    );
    assert_eq!(
        (c1.workflow_id.as_str(), c1.workflow_type.as_str()),
        ("payment-1", "Payment"),
        "a child's workflow id and type"
    );
    assert_pending(
        c1.pending.as_ref(),
        HandlerKind::Start,
        "start",
        &input_of("payment-1"),
        "a child's start activation",
    );
    let c2 = db.record(second.run_id).await;
    assert_eq!(
        (c2.on_completed.as_deref(), c2.close_policy, c2.deadline_ms),
        (None, ClosePolicy::Terminate, Some(T0 + 9_000)),
        "a child without a completion step, with a deadline"
    );
    assert_eq!(
        events(&db.history(first.run_id).await),
        [HistoryEvent::RunStarted {
            workflow_type: "Payment".into(),
            workflow_id: "payment-1".into(),
            version: "v1".into(),
            input: input_of("payment-1"),
            parent_run_id: Some(parent),
        }],
        "a child's `run_started` names its parent"
    );
    let child_steps = ok("anchors", s.anchors(parent).await).child_steps;
    assert_eq!(
        child_steps,
        ["paid"],
        "anchors list the completion steps of live children"
    );
    assert!(
        ok("children", s.children(first.run_id).await).is_empty(),
        "a new child has no children"
    );
}

/// A child whose workflow id another active run holds makes the commit a
/// `Conflict` and undoes all of it: no other child, no store write, no
/// history, no state change.
pub async fn a_taken_child_workflow_id_undoes_the_whole_commit(s: &dyn Storage) {
    let db = Db(s);
    let holder = db.create(new_run("Payment", "taken", T0)).await;
    let parent = db.create(new_run("Order", "order-1", T0 + 1)).await;

    let free = child_of(parent, "Payment", "free-1", None, ClosePolicy::Abandon);
    let clash = child_of(parent, "Payment", "taken", None, ClosePolicy::Abandon);
    let mut c = commit(parent, 0, NextState::Running(step("next")));
    c.writes.insert("k".into(), Some(json(json!(1))));
    c.history.push(activation_completed(0, "start"));
    c.children = vec![free.clone(), clash.clone()];
    let outcome = db.commit(c.clone()).await;
    match outcome {
        CommitOutcome::Conflict {
            workflow_id,
            run_id,
        } => assert_eq!(
            (workflow_id.as_str(), run_id),
            ("taken", holder),
            "Conflict names the taken workflow id and its holder"
        ),
        other => panic!("a commit with a taken child workflow id must be Conflict, got {other:?}"),
    }
    for child in [&free, &clash] {
        assert!(
            ok("run", s.run(child.run_id).await).is_none(),
            "no child of a conflicting commit is created ({})",
            child.workflow_id
        );
    }
    assert!(
        ok("active_run", s.active_run("free-1").await).is_none(),
        "the child created before the clash is undone"
    );
    assert!(
        ok("children", s.children(parent).await).is_empty(),
        "a conflicting commit leaves the parent without children"
    );
    assert!(
        ok("store", s.store(parent).await).is_empty(),
        "a conflicting commit writes no store key"
    );
    assert_eq!(
        db.history(parent).await.len(),
        1,
        "a conflicting commit writes no history"
    );
    let r = db.record(parent).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 0),
        "a conflicting commit leaves the parent's state"
    );
    assert_pending(
        r.pending.as_ref(),
        HandlerKind::Start,
        "start",
        &input_of("order-1"),
        "a conflicting commit leaves the parent's activation",
    );
    let h = db.record(holder).await;
    assert_eq!(
        (h.status, h.parent_run_id),
        (RunStatus::Running, None),
        "the holder is untouched"
    );

    // The database takes the same commit without the clash.
    c.children = vec![free.clone()];
    let applied = db.applied(c).await;
    assert_eq!(applied.seq, 1, "the commit applies without the clash");
    assert_eq!(
        ids(&ok("children", s.children(parent).await)),
        [free.run_id],
        "the free child"
    );
    assert_eq!(db.store(parent).await, json!({"k": 1}), "the store write");
}

/// A child with a completion step that ends sends its parent a notice,
/// dispatched at once to a waiting parent, queued for a running one.
pub async fn a_child_that_ends_sends_a_completion_notice_to_its_parent(s: &dyn Storage) {
    let db = Db(s);
    let parent = db.create(new_run("Order", "order-1", T0)).await;
    let c1 = child_of(
        parent,
        "Payment",
        "pay-1",
        Some("paid"),
        ClosePolicy::Abandon,
    );
    let c2 = child_of(
        parent,
        "Payment",
        "pay-2",
        Some("paid"),
        ClosePolicy::Abandon,
    );
    let quiet = child_of(parent, "Audit", "audit-1", None, ClosePolicy::Abandon);
    let mut c = commit(parent, 0, NextState::Waiting(None));
    c.children = vec![c1.clone(), c2.clone(), quiet.clone()];
    let (c1, c2, quiet) = (c1.run_id, c2.run_id, quiet.run_id);
    db.applied(c).await;

    // A child without a completion step ends silently.
    let history_len = db.history(parent).await.len();
    let applied = db
        .applied(commit(quiet, 0, NextState::Completed(json(json!(1)))))
        .await;
    assert_eq!(
        applied.effects,
        Effects {
            woken: vec![],
            finished: vec![finished(quiet, "Audit", RunStatus::Completed)],
        },
        "a child without a completion step wakes nobody"
    );
    let p = db.record(parent).await;
    assert_eq!(
        (p.status, p.seq),
        (RunStatus::Waiting, 1),
        "the parent still waits"
    );
    assert_eq!(
        db.history(parent).await.len(),
        history_len,
        "nothing reached the parent"
    );

    // The first child completes: the waiting parent is woken with the notice.
    let applied = db
        .applied(commit(
            c1,
            0,
            NextState::Completed(json(json!({"paid": 10}))),
        ))
        .await;
    assert_eq!(
        applied.effects,
        Effects {
            woken: vec![parent],
            finished: vec![finished(c1, "Payment", RunStatus::Completed)],
        },
        "a child's end wakes its waiting parent"
    );
    let p = db.record(parent).await;
    assert_eq!(
        (p.status, p.seq),
        (RunStatus::Running, 2),
        "the woken parent runs"
    );
    let outcome = notice_of(p.pending.as_ref(), "paid", "the woken parent's activation");
    assert_eq!(
        outcome,
        ChildOutcome {
            workflow_id: "pay-1".into(),
            run_id: c1.to_string(),
            status: ChildStatus::Completed,
            result: Some(json!({"paid": 10})),
            error: None,
        },
        "a completed child's notice"
    );
    let history = db.history(parent).await;
    let tail: Vec<HistoryEvent> = history[history.len().saturating_sub(2)..]
        .iter()
        .map(|h| h.event.clone())
        .collect();
    assert!(
        matches!(
            tail.as_slice(),
            [
                HistoryEvent::EventReceived { name, source, .. },
                HistoryEvent::EventDispatched { name: dispatched, kind: HandlerKind::Step },
            ] if name == "paid" && *source == c1.to_string() && dispatched == "paid"
        ),
        "the parent records the notice's receipt (from the child) and its dispatch to a step: {tail:?}"
    );

    // The second child completes while the parent runs: the notice waits.
    let applied = db
        .applied(commit(
            c2,
            0,
            NextState::Completed(json(json!({"paid": 20}))),
        ))
        .await;
    assert!(
        applied.effects.woken.is_empty(),
        "a running parent is not woken"
    );
    assert_eq!(
        db.anchors_inbox(parent).await,
        [("paid".into(), true)],
        "the notice waits in the parent's inbox, marked as a notice"
    );
    let applied = db
        .applied(commit(parent, 2, NextState::Waiting(None)))
        .await;
    let outcome = notice_of(applied.next.as_ref(), "paid", "the queued notice");
    assert_eq!(
        (outcome.run_id, outcome.status, outcome.result),
        (
            c2.to_string(),
            ChildStatus::Completed,
            Some(json!({"paid": 20}))
        ),
        "the queued notice is dispatched as the parent waits"
    );
    assert!(
        ok("anchors", s.anchors(parent).await)
            .child_steps
            .is_empty(),
        "no live child is left to send a notice"
    );
}

/// A completion notice's status says how the child ended: `failed`,
/// `timed_out` (a `WorkflowTimeout` failure, by expiry or by commit),
/// `terminated`, `cancelled`.
pub async fn a_child_notice_says_how_the_child_ended(s: &dyn Storage) {
    let db = Db(s);
    let parent = db.create(new_run("Order", "order-1", T0)).await;
    let names = ["failed", "expired", "timeout", "terminated", "cancelled"];
    let kids: Vec<NewRun> = names
        .iter()
        .map(|name| {
            let mut kid = child_of(
                parent,
                "Payment",
                &format!("pay-{name}"),
                Some(&format!("{name}_done")),
                ClosePolicy::Abandon,
            );
            kid.deadline_ms = Some(T0 + 1_000);
            kid
        })
        .collect();
    let [failed, expired, timeout, terminated, cancelled] = [0, 1, 2, 3, 4].map(|i| kids[i].run_id);
    let mut c = commit(parent, 0, NextState::Waiting(None));
    c.children = kids;
    let mut seq = db.applied(c).await.seq;

    // Failed with an application error.
    let error = WorkflowError::new(ErrorKind::Application, "card declined");
    let applied = db
        .applied(commit(failed, 0, NextState::Failed(error)))
        .await;
    assert_eq!(
        applied.effects.woken,
        [parent],
        "the failure wakes the parent"
    );
    assert_eq!(
        applied.effects.finished,
        [finished(failed, "Payment", RunStatus::Failed)],
        "the failed child is listed as finished"
    );
    seq = expect_notice(
        &db,
        parent,
        seq,
        "failed_done",
        failed,
        ChildStatus::Failed,
        ErrorKind::Application,
    )
    .await;

    // Expired: failed with WorkflowTimeout.
    let effects = ok("expire", s.expire(expired, T0 + 1_000).await);
    assert_eq!(effects.woken, [parent], "the expiry wakes the parent");
    seq = expect_notice(
        &db,
        parent,
        seq,
        "expired_done",
        expired,
        ChildStatus::TimedOut,
        ErrorKind::WorkflowTimeout,
    )
    .await;

    // Failed by its own commit with WorkflowTimeout.
    let error = WorkflowError::new(ErrorKind::WorkflowTimeout, "too slow");
    db.applied(commit(timeout, 0, NextState::Failed(error)))
        .await;
    seq = expect_notice(
        &db,
        parent,
        seq,
        "timeout_done",
        timeout,
        ChildStatus::TimedOut,
        ErrorKind::WorkflowTimeout,
    )
    .await;

    // Terminated.
    let effects = db.terminate_ok(terminated, "ops").await;
    assert_eq!(effects.woken, [parent], "the termination wakes the parent");
    seq = expect_notice(
        &db,
        parent,
        seq,
        "terminated_done",
        terminated,
        ChildStatus::Terminated,
        ErrorKind::Terminated,
    )
    .await;

    // Cancelled while waiting.
    db.applied(commit(cancelled, 0, NextState::Waiting(None)))
        .await;
    let effects = match ok(
        "cancel",
        s.cancel(cancelled, "no longer needed".into(), T0 + 50)
            .await,
    ) {
        Ok(effects) => effects,
        Err(gone) => panic!("cancelling a waiting child failed: {gone}"),
    };
    assert_eq!(effects.woken, [parent], "the cancel wakes the parent");
    expect_notice(
        &db,
        parent,
        seq,
        "cancelled_done",
        cancelled,
        ChildStatus::Cancelled,
        ErrorKind::Cancelled,
    )
    .await;
}

/// When a parent ends, its live children's close policies apply in the same
/// write: `terminate` ends them (and theirs), `cancel` cancels a waiting
/// child at once and a running one at its next commit, `abandon` leaves them.
pub async fn a_parent_that_ends_applies_its_childrens_close_policies(s: &dyn Storage) {
    let db = Db(s);
    let parent = db.create(new_run("Order", "order-1", T0)).await;
    let kids = [
        child_of(parent, "Kid", "term", None, ClosePolicy::Terminate),
        child_of(parent, "Kid", "cancel-waiting", None, ClosePolicy::Cancel),
        child_of(parent, "Kid", "cancel-running", None, ClosePolicy::Cancel),
        child_of(parent, "Kid", "abandon", None, ClosePolicy::Abandon),
    ];
    let [term, cancel_waiting, cancel_running, abandon] = kids.each_ref().map(|k| k.run_id);
    let mut c = commit(parent, 0, NextState::Running(step("work")));
    c.children = kids.to_vec();
    db.applied(c).await;
    // A grandchild under the terminated child, itself with `terminate`.
    let grandchild = child_of(term, "Kid", "grandchild", None, ClosePolicy::Terminate);
    let grandchild_id = grandchild.run_id;
    let mut c = commit(term, 0, NextState::Running(step("work")));
    c.children = vec![grandchild];
    db.applied(c).await;
    db.applied(commit(cancel_waiting, 0, NextState::Waiting(None)))
        .await;

    let applied = db
        .applied(commit(parent, 1, NextState::Completed(json(json!("done")))))
        .await;
    let ended: BTreeSet<(RunId, RunStatus)> = applied
        .effects
        .finished
        .iter()
        .map(|f| (f.run_id, f.status))
        .collect();
    let expected: BTreeSet<(RunId, RunStatus)> = [
        (parent, RunStatus::Completed),
        (term, RunStatus::Terminated),
        (grandchild_id, RunStatus::Terminated),
        (cancel_waiting, RunStatus::Cancelled),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        ended, expected,
        "the parent's end finishes it, its `terminate` children (and theirs) and its waiting `cancel` child"
    );

    for (id, status, kind) in [
        (term, RunStatus::Terminated, ErrorKind::Terminated),
        (grandchild_id, RunStatus::Terminated, ErrorKind::Terminated),
        (cancel_waiting, RunStatus::Cancelled, ErrorKind::Cancelled),
    ] {
        let r = db.record(id).await;
        assert_eq!(
            r.status, status,
            "child {} after its parent ended",
            r.workflow_id
        );
        assert_eq!(
            r.error.as_ref().map(|e| e.kind),
            Some(kind),
            "child {} ends with a typed error",
            r.workflow_id
        );
    }

    // The running `cancel` child gets a request, honoured at its commit.
    let r = db.record(cancel_running).await;
    assert_eq!(
        r.status,
        RunStatus::Running,
        "a running `cancel` child keeps running"
    );
    let reason = r
        .cancel_requested
        .unwrap_or_else(|| panic!("a running `cancel` child must get a cancel request"));
    assert!(
        reason.contains(&parent.to_string()),
        "the cancel request names the parent: {reason}"
    );
    assert_eq!(
        db.history(cancel_running)
            .await
            .last()
            .map(|h| h.event.kind()),
        Some("cancel_requested"),
        "the cancel request is recorded"
    );
    let applied = db
        .applied(commit(cancel_running, 0, NextState::Running(step("more"))))
        .await;
    assert!(
        applied.next.is_none(),
        "a commit of a run with a cancel request has no next activation, got {:?}",
        applied.next
    );
    assert_eq!(
        applied.effects.finished,
        [finished(cancel_running, "Kid", RunStatus::Cancelled)],
        "the commit cancels the run"
    );
    let r = db.record(cancel_running).await;
    assert_eq!(
        (r.status, r.pending.is_none()),
        (RunStatus::Cancelled, true),
        "the `cancel` child is cancelled at its commit"
    );

    // The `abandon` child runs on.
    let r = db.record(abandon).await;
    assert_eq!(
        (r.status, r.cancel_requested),
        (RunStatus::Running, None),
        "an `abandon` child runs on untouched"
    );
    let applied = db
        .applied(commit(abandon, 0, NextState::Waiting(None)))
        .await;
    assert!(
        applied.effects.finished.is_empty(),
        "the `abandon` child parks normally"
    );
    assert_eq!(
        db.record(abandon).await.status,
        RunStatus::Waiting,
        "the `abandon` child parks"
    );
    assert_eq!(
        ids(&db.live().await),
        [abandon],
        "only the `abandon` child is live"
    );
}

/// `cancel` of a running run records a request (a second request keeps the
/// first reason); its next commit ends it `cancelled` whatever it directs,
/// unless the activation failed: then it ends `failed` with its error. A
/// waiting run is cancelled at once.
pub async fn a_cancel_during_an_activation_takes_effect_when_it_commits(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let effects = db.cancel_ok(id, "user asked").await;
    assert_eq!(
        effects,
        Effects::default(),
        "a cancel request ends nothing yet"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq, r.cancel_requested.as_deref()),
        (RunStatus::Running, 0, Some("user asked")),
        "a cancelled running run keeps running, with the request recorded"
    );
    assert_eq!(
        (r.updated_ms, r.pending.map(|p| p.handler)),
        (T0, Some("start".to_owned())),
        "a cancel request leaves the current activation and since when it is current"
    );
    assert_eq!(
        db.history(id).await.last().map(|h| h.event.clone()),
        Some(HistoryEvent::CancelRequested {
            reason: "user asked".into()
        }),
        "the request is in the history"
    );
    db.cancel_ok(id, "again").await;
    let history = db.history(id).await;
    assert_eq!(
        count(&history, "cancel_requested"),
        1,
        "a second request is not recorded again"
    );
    assert_eq!(
        db.record(id).await.cancel_requested.as_deref(),
        Some("user asked"),
        "the first request's reason stands"
    );

    let applied = db
        .applied(commit(id, 0, NextState::Completed(json(json!("ok")))))
        .await;
    assert!(
        applied.next.is_none(),
        "a cancelled run has no next activation"
    );
    assert_eq!(
        applied.effects.finished,
        [finished(id, "Order", RunStatus::Cancelled)],
        "the commit ends the run cancelled"
    );
    let r = db.record(id).await;
    assert_eq!(
        r.status,
        RunStatus::Cancelled,
        "a cancel request wins over the activation's directive"
    );
    assert_eq!(r.seq, applied.seq, "the outcome's seq is the stored seq");
    assert!(r.result.is_none(), "a cancelled run has no result");
    assert_eq!(
        r.error.as_ref().map(|e| (e.kind, e.message.as_str())),
        Some((ErrorKind::Cancelled, "user asked")),
        "a cancelled run's error carries the reason"
    );
    assert!(
        r.cancel_requested.is_none(),
        "the honoured request is cleared"
    );
    let history = db.history(id).await;
    assert_eq!(
        history.last().map(|h| h.event.clone()),
        Some(HistoryEvent::RunCancelled {
            reason: "user asked".into()
        }),
        "the run's last entry is `run_cancelled`"
    );
    assert_eq!(
        count(&history, "run_completed"),
        0,
        "the directive was not applied"
    );

    // An activation that fails while a cancel is pending ends the run
    // `failed` with its error; the request stays in the history.
    let failing = db.create(new_run("Order", "order-3", T0)).await;
    db.cancel_ok(failing, "user asked").await;
    let error = WorkflowError::new(ErrorKind::Trap, "boom");
    let applied = db
        .applied(commit(failing, 0, NextState::Failed(error.clone())))
        .await;
    assert!(
        applied.next.is_none(),
        "a failed run has no next activation"
    );
    assert_eq!(
        applied.effects.finished,
        [finished(failing, "Order", RunStatus::Failed)],
        "a failure wins over a pending cancel"
    );
    let r = db.record(failing).await;
    assert_eq!(
        (r.status, r.error.as_ref(), r.cancel_requested.as_deref()),
        (RunStatus::Failed, Some(&error), None),
        "the run keeps the activation's error"
    );
    let history = db.history(failing).await;
    assert_eq!(
        (
            count(&history, "cancel_requested"),
            count(&history, "run_failed"),
            count(&history, "run_cancelled"),
        ),
        (1, 1, 0),
        "the cancel request stays in the history; the run ends failed"
    );

    // A waiting run is cancelled at once.
    let waiting = db.create(new_run("Order", "order-2", T0)).await;
    db.applied(commit(waiting, 0, NextState::Waiting(None)))
        .await;
    let effects = db.cancel_ok(waiting, "now").await;
    assert_eq!(
        effects.finished,
        [finished(waiting, "Order", RunStatus::Cancelled)],
        "a waiting run is cancelled at once"
    );
    assert_eq!(
        db.record(waiting).await.status,
        RunStatus::Cancelled,
        "the waiting run's status"
    );

    // Ended and unknown runs.
    for target in [id, waiting] {
        let gone = Err(RunGone::Terminal {
            run_id: target,
            status: RunStatus::Cancelled,
        });
        let cancel = ok("cancel", s.cancel(target, "x".into(), T0).await);
        assert_eq!(cancel, gone, "cancel of an ended run is Terminal");
        let terminate = ok("terminate", s.terminate(target, "x".into(), T0).await);
        assert_eq!(terminate, gone, "terminate of an ended run is Terminal");
    }
    let unknown = RunId::new();
    assert_eq!(
        ok("cancel", s.cancel(unknown, "x".into(), T0).await),
        Err(RunGone::NotFound(unknown)),
        "cancel of an unknown run is NotFound"
    );
}

/// `terminate` ends a running or waiting run at once; the late commit of
/// its activation is stale.
pub async fn terminate_ends_a_live_run_at_once(s: &dyn Storage) {
    let db = Db(s);
    let running = db.create(new_run("Order", "order-1", T0)).await;
    let waiting = db.create(new_run("Order", "order-2", T0)).await;
    let timer = Timer {
        due_ms: T0 + 1_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    db.applied(commit(waiting, 0, NextState::Waiting(Some(timer))))
        .await;

    for (id, what) in [(running, "running"), (waiting, "waiting")] {
        let effects = db.terminate_ok(id, "ops").await;
        assert_eq!(
            effects.finished,
            [finished(id, "Order", RunStatus::Terminated)],
            "terminate ends a {what} run at once"
        );
        let r = db.record(id).await;
        assert_eq!(
            r.status,
            RunStatus::Terminated,
            "a terminated {what} run's status"
        );
        assert_eq!(
            r.error.as_ref().map(|e| (e.kind, e.message.as_str())),
            Some((ErrorKind::Terminated, "ops")),
            "a terminated {what} run's error carries the reason"
        );
        assert!(
            r.pending.is_none() && r.timer.is_none(),
            "a terminated {what} run has no activation or timer: {r:?}"
        );
        assert_eq!(
            db.history(id).await.last().map(|h| h.event.clone()),
            Some(HistoryEvent::RunTerminated {
                reason: "ops".into()
            }),
            "a terminated {what} run's last entry"
        );
        let gone = Err(RunGone::Terminal {
            run_id: id,
            status: RunStatus::Terminated,
        });
        assert_eq!(
            ok("terminate", s.terminate(id, "again".into(), T0).await),
            gone,
            "terminating an ended run is Terminal"
        );
        assert_eq!(
            ok("cancel", s.cancel(id, "again".into(), T0).await),
            gone,
            "cancelling an ended run is Terminal"
        );
    }

    // The activation that was running when the run was terminated commits late.
    let len = db.history(running).await.len();
    let outcome = db
        .commit(commit(running, 0, NextState::Running(step("next"))))
        .await;
    assert!(
        matches!(outcome, CommitOutcome::Stale),
        "the late commit of a terminated run is Stale, got {outcome:?}"
    );
    assert_eq!(
        db.history(running).await.len(),
        len,
        "the late commit writes nothing"
    );
    let unknown = RunId::new();
    assert_eq!(
        ok("terminate", s.terminate(unknown, "x".into(), T0).await),
        Err(RunGone::NotFound(unknown)),
        "terminating an unknown run is NotFound"
    );
}

/// A commit's events for the parent land in the parent's inbox with it
/// (waking a waiting parent); for an ended parent they are dropped and
/// recorded on the sender.
pub async fn events_to_the_parent_land_with_the_childs_commit(s: &dyn Storage) {
    let db = Db(s);
    let parent = db.create(new_run("Order", "order-1", T0)).await;
    let kid = child_of(parent, "Payment", "pay-1", None, ClosePolicy::Abandon);
    let kid_id = kid.run_id;
    let mut c = commit(parent, 0, NextState::Waiting(None));
    c.children = vec![kid];
    db.applied(c).await;

    let mut c = commit(kid_id, 0, NextState::Running(step("more")));
    c.to_parent = vec![
        to_parent(parent, kid_id, "progress", json!({"pct": 50})),
        to_parent(parent, kid_id, "progress", json!({"pct": 100})),
    ];
    let applied = db.applied(c).await;
    assert_eq!(
        applied.effects.woken,
        [parent],
        "an event to a waiting parent wakes it"
    );
    assert_pending(
        applied.next.as_ref(),
        HandlerKind::Step,
        "more",
        &Value::Null,
        "the child's own next activation",
    );
    let p = db.record(parent).await;
    assert_eq!(p.status, RunStatus::Running, "the woken parent runs");
    assert_pending(
        p.pending.as_ref(),
        HandlerKind::Event,
        "progress",
        &json!({"pct": 50}),
        "the parent handles the child's first event",
    );
    let parent_seq = p.seq;
    assert_eq!(
        db.anchors_inbox(parent).await,
        [("progress".into(), false)],
        "the child's second event waits in the parent's inbox"
    );
    let sources: Vec<String> = db
        .history(parent)
        .await
        .into_iter()
        .filter_map(|h| match h.event {
            HistoryEvent::EventReceived { source, .. } => Some(source),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        [kid_id.to_string(), kid_id.to_string()],
        "the parent records both events as coming from the child"
    );

    // The parent ends; the `abandon` child runs on and sends another event.
    db.applied(commit(
        parent,
        parent_seq,
        NextState::Completed(json(json!(null))),
    ))
    .await;
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "the ended parent's inbox is dropped"
    );
    let kid_len = db.history(kid_id).await.len();
    let mut c = commit(kid_id, 1, NextState::Waiting(None));
    c.to_parent = vec![to_parent(parent, kid_id, "late", json!(1))];
    let applied = db.applied(c).await;
    assert!(
        applied.effects.woken.is_empty(),
        "an event to an ended parent wakes nobody"
    );
    assert_eq!(
        db.record(kid_id).await.status,
        RunStatus::Waiting,
        "the sender's commit applies"
    );
    assert_eq!(
        ok("inbox_depth", s.inbox_depth().await),
        0,
        "an event to an ended parent is not queued"
    );
    let new_entries = db.history(kid_id).await.split_off(kid_len);
    assert!(
        new_entries
            .iter()
            .any(|h| matches!(&h.event, HistoryEvent::EventDropped { name, .. } if name == "late")),
        "the sender records the dropped event: {new_entries:?}"
    );
    assert_eq!(
        count(&db.history(parent).await, "event_received"),
        2,
        "the ended parent receives nothing more"
    );
}

/// `expire` before a run's deadline does nothing; at or after it, it fails a
/// live run with `WorkflowTimeout`.
pub async fn expire_fails_a_run_only_once_its_deadline_has_passed(s: &dyn Storage) {
    let db = Db(s);
    let deadline = T0 + 1_000;
    let mut run = new_run("Order", "order-1", T0);
    run.deadline_ms = Some(deadline);
    let id = db.create(run).await;
    assert_eq!(
        db.record(id).await.deadline_ms,
        Some(deadline),
        "the stored deadline"
    );

    let effects = ok("expire", s.expire(id, deadline - 1).await);
    assert_eq!(
        effects,
        Effects::default(),
        "expire before the deadline does nothing"
    );
    let r = db.record(id).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 0),
        "the run is untouched"
    );
    assert_eq!(
        db.history(id).await.len(),
        1,
        "no history before the deadline"
    );

    let effects = ok("expire", s.expire(id, deadline).await);
    assert_eq!(
        effects.finished,
        [finished(id, "Order", RunStatus::Failed)],
        "expire at the deadline fails the run"
    );
    let r = db.record(id).await;
    assert_eq!(r.status, RunStatus::Failed, "an expired run's status");
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::WorkflowTimeout),
        "an expired run fails with WorkflowTimeout"
    );
    assert!(
        matches!(
            db.history(id).await.last().map(|h| &h.event),
            Some(HistoryEvent::RunFailed { error }) if error.kind == ErrorKind::WorkflowTimeout
        ),
        "an expired run's last entry is its `run_failed`"
    );
    let len = db.history(id).await.len();
    let effects = ok("expire", s.expire(id, deadline + 1).await);
    assert_eq!(
        effects,
        Effects::default(),
        "an ended run does not expire again"
    );
    assert_eq!(db.history(id).await.len(), len, "nor records anything");

    // A waiting run expires too, after its deadline.
    let mut run = new_run("Order", "order-2", T0);
    run.deadline_ms = Some(deadline);
    let waiting = db.create(run).await;
    db.applied(commit(waiting, 0, NextState::Waiting(None)))
        .await;
    let effects = ok("expire", s.expire(waiting, deadline + 500).await);
    assert_eq!(
        effects.finished,
        [finished(waiting, "Order", RunStatus::Failed)],
        "a waiting run past its deadline fails"
    );

    // Without a deadline a run never expires; an unknown run is no error.
    let forever = db.create(new_run("Order", "order-3", T0)).await;
    let effects = ok("expire", s.expire(forever, u64::MAX).await);
    assert_eq!(
        effects,
        Effects::default(),
        "a run without a deadline does not expire"
    );
    assert_eq!(
        db.record(forever).await.status,
        RunStatus::Running,
        "it runs on"
    );
    let effects = ok("expire", s.expire(RunId::new(), u64::MAX).await);
    assert_eq!(
        effects,
        Effects::default(),
        "expiring an unknown run does nothing"
    );
}

/// `upgrade_run` moves a waiting run from version `from` to `to` only if it
/// still waits at `seq` on `from`; it keeps the seq and timer and records
/// `run_upgraded`.
pub async fn upgrade_moves_a_waiting_run_only_at_the_given_seq_and_version(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let up = |seq: u64, from: &str| s.upgrade_run(id, seq, from.into(), "v2".into(), T0 + 9);

    assert!(
        !ok("upgrade_run", up(0, "v1").await),
        "a running run is not upgraded"
    );
    let timer = Timer {
        due_ms: T0 + 5_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    db.applied(commit(id, 0, NextState::Waiting(Some(timer.clone()))))
        .await;
    let len = db.history(id).await.len();
    assert!(
        !ok("upgrade_run", up(0, "v1").await),
        "an upgrade at a stale seq does not apply"
    );
    assert!(
        !ok("upgrade_run", up(1, "v0").await),
        "an upgrade from another version does not apply"
    );
    let r = db.record(id).await;
    assert_eq!(r.version, "v1", "a refused upgrade leaves the version");
    assert_eq!(
        db.history(id).await.len(),
        len,
        "a refused upgrade records nothing"
    );

    assert!(
        ok("upgrade_run", up(1, "v1").await),
        "a waiting run at the given seq and version is upgraded"
    );
    let r = db.record(id).await;
    assert_eq!(r.version, "v2", "the upgraded run's version");
    assert_eq!(
        (r.status, r.seq, r.timer),
        (RunStatus::Waiting, 1, Some(timer)),
        "an upgrade keeps the run waiting at its seq, with its timer"
    );
    assert_eq!(
        db.history(id).await.last().map(|h| h.event.clone()),
        Some(HistoryEvent::RunUpgraded {
            from_version: "v1".into(),
            to_version: "v2".into(),
        }),
        "the upgrade is recorded"
    );
    assert!(
        !ok("upgrade_run", up(1, "v1").await),
        "a second upgrade from the old version does not apply"
    );
    assert!(
        !ok(
            "upgrade_run",
            s.upgrade_run(RunId::new(), 0, "v1".into(), "v2".into(), T0)
                .await
        ),
        "an unknown run is not upgraded"
    );
}

/// Component bytes are kept once per version and read back with their file
/// name; pruning forgets only versions no live run is pinned to and not
/// kept.
pub async fn component_versions_are_kept_once_and_pruned_when_no_live_run_needs_them(
    s: &dyn Storage,
) {
    let save = |version: &'static str, file: Option<&str>, bytes: &[u8]| {
        s.save_component(version, file.map(str::to_owned), bytes.into(), T0)
    };
    let read = |version: &'static str| s.component(version);

    ok(
        "save_component",
        save("v1", Some("order-v1.wasm"), b"\0asm-one").await,
    );
    ok(
        "save_component",
        save("v1", Some("other.wasm"), b"\0asm-other").await,
    );
    assert_eq!(
        ok("component", read("v1").await),
        Some((b"\0asm-one".to_vec(), Some("order-v1.wasm".to_owned()))),
        "a version's bytes and file name are kept once: saving it again changes nothing"
    );
    assert!(
        ok("component", read("v9").await).is_none(),
        "an unknown version reads back None"
    );
    for version in ["v2", "v3", "v4"] {
        ok(
            "save_component",
            save(version, None, version.as_bytes()).await,
        );
    }
    assert_eq!(
        ok("component", read("v3").await),
        Some((b"v3".to_vec(), None)),
        "a version saved without a file name"
    );

    let db = Db(s);
    let mut pinned = new_run("Order", "order-1", T0);
    pinned.version = "v1".into();
    db.create(pinned).await;
    let mut ended = new_run("Order", "order-2", T0);
    ended.version = "v2".into();
    let ended = db.create(ended).await;
    db.terminate_ok(ended, "done").await;

    let pruned = ok(
        "prune_components",
        s.prune_components(vec!["v3".into()]).await,
    );
    assert_eq!(
        pruned, 2,
        "pruning forgets v2 (only an ended run) and v4 (no run)"
    );
    for (version, kept) in [("v1", true), ("v2", false), ("v3", true), ("v4", false)] {
        assert_eq!(
            ok("component", read(version).await).is_some(),
            kept,
            "after pruning, version {version} is {}",
            if kept { "kept" } else { "gone" }
        );
    }
    assert_eq!(
        ok("prune_components", s.prune_components(vec![]).await),
        1,
        "without `keep`, the unpinned v3 goes too"
    );
    assert!(
        ok("component", read("v1").await).is_some(),
        "a version a live run is pinned to is never pruned"
    );
}

/// `live_versions` counts the running and waiting runs per workflow type
/// and version.
pub async fn live_versions_count_live_runs_per_type_and_version(s: &dyn Storage) {
    let db = Db(s);
    assert!(
        ok("live_versions", s.live_versions().await).is_empty(),
        "an empty database pins no version"
    );
    let make = |ty: &str, wid: &str, version: &str| {
        let mut run = new_run(ty, wid, T0);
        run.version = version.into();
        run
    };
    db.create(make("Order", "o1", "v1")).await;
    let waiting = db.create(make("Order", "o2", "v1")).await;
    db.applied(commit(waiting, 0, NextState::Waiting(None)))
        .await;
    db.create(make("Order", "o3", "v2")).await;
    db.create(make("Payment", "p1", "v1")).await;
    let ended = db.create(make("Payment", "p2", "v3")).await;
    db.terminate_ok(ended, "done").await;

    let mut live = ok("live_versions", s.live_versions().await);
    live.sort_by(|a, b| (&a.workflow_type, &a.version).cmp(&(&b.workflow_type, &b.version)));
    let lv = |ty: &str, version: &str, runs| LiveVersion {
        workflow_type: ty.into(),
        version: version.into(),
        runs,
    };
    assert_eq!(
        live,
        [
            lv("Order", "v1", 2),
            lv("Order", "v2", 1),
            lv("Payment", "v1", 1)
        ],
        "live_versions counts running and waiting runs, not ended ones"
    );
}

/// `list_runs` is newest first, filtered by type and status, at most
/// `limit`; `live_runs_of_type` is oldest first.
pub async fn list_runs_is_newest_first_with_filters_and_limit(s: &dyn Storage) {
    let db = Db(s);
    let a = db.create(new_run("Order", "a", T0 + 1)).await;
    let b = db.create(new_run("Payment", "b", T0 + 2)).await;
    let c = db.create(new_run("Order", "c", T0 + 3)).await;
    let d = db.create(new_run("Order", "d", T0 + 4)).await;
    db.terminate_ok(c, "done").await;

    assert_eq!(
        ids(&db.list(None, None).await),
        [d, c, b, a],
        "all runs, newest first"
    );
    assert_eq!(
        ids(&ok(
            "list_runs",
            s.list_runs(RunFilter::default(), None, 2).await
        )),
        [d, c],
        "`limit` keeps the newest"
    );
    assert_eq!(
        ids(&db.list(Some("Order"), None).await),
        [d, c, a],
        "filtered by type"
    );
    assert_eq!(
        ids(&db.list(None, Some(RunStatus::Terminated)).await),
        [c],
        "filtered by status"
    );
    assert_eq!(
        ids(&db.list(Some("Order"), Some(RunStatus::Running)).await),
        [d, a],
        "filtered by type and status"
    );
    assert!(
        db.list(Some("Nope"), None).await.is_empty(),
        "an unknown type lists nothing"
    );
    let e = db.create(new_run("Order", "a%_", T0 + 5)).await;
    let f = db.create(new_run("Order", "ab", T0 + 6)).await;
    assert_eq!(
        ids(&db.with_prefix("a").await),
        [f, e, a],
        "filtered by workflow id prefix"
    );
    assert_eq!(
        ids(&db.with_prefix("a%").await),
        [e],
        "a prefix is literal: `%` and `_` are no wildcards"
    );
    assert!(
        db.with_prefix("abc").await.is_empty(),
        "a prefix longer than every id lists nothing"
    );
    db.terminate_ok(e, "done").await;
    db.terminate_ok(f, "done").await;
    assert_eq!(
        ids(&ok("live_runs_of_type", s.live_runs_of_type("Order").await)),
        [a, d],
        "live_runs_of_type lists live runs of the type, oldest first"
    );
    let live: BTreeSet<RunId> = ids(&db.live().await).into_iter().collect();
    assert_eq!(
        live,
        [a, b, d].into_iter().collect(),
        "live_runs lists every running or waiting run"
    );
}

/// `history` reads a run's entries back oldest first, as written, with their
/// times; runs' histories do not mix.
pub async fn history_reads_back_oldest_first_as_written(s: &dyn Storage) {
    let db = Db(s);
    let id = db.create(new_run("Order", "order-1", T0)).await;
    let other = db.create(new_run("Order", "order-2", T0)).await;
    let timer = Timer {
        due_ms: T0 + 5_000,
        on_timeout: Some("late".into()),
        sleep: false,
        retry: false,
    };
    let mut c = StateCommit::new(id, 0, NextState::Waiting(Some(timer.clone())), T0 + 10);
    c.history = vec![
        activation_completed(0, "start"),
        HistoryEvent::TimerSet {
            due_ms: timer.due_ms,
            on_timeout: timer.on_timeout.clone(),
        },
    ];
    db.applied(c).await;
    db.applied(commit(other, 0, NextState::Running(step("x"))))
        .await;
    db.delivered(id, "ping", json!({"x": 1})).await;
    let mut c = StateCommit::new(id, 2, NextState::Running(step("late")), T0 + 20);
    c.history = vec![activation_completed(2, "ping")];
    db.applied(c).await;

    let history = db.history(id).await;
    assert_eq!(
        events(&history),
        [
            HistoryEvent::RunStarted {
                workflow_type: "Order".into(),
                workflow_id: "order-1".into(),
                version: "v1".into(),
                input: input_of("order-1"),
                parent_run_id: None,
            },
            activation_completed(0, "start"),
            HistoryEvent::TimerSet {
                due_ms: timer.due_ms,
                on_timeout: timer.on_timeout,
            },
            HistoryEvent::EventReceived {
                name: "ping".into(),
                payload: json!({"x": 1}),
                source: "client".into(),
            },
            HistoryEvent::EventDispatched {
                name: "ping".into(),
                kind: HandlerKind::Event,
            },
            activation_completed(2, "ping"),
        ],
        "history reads back every entry, oldest first, as written"
    );
    assert!(
        history.windows(2).all(|w| w[0].id < w[1].id),
        "history ids increase along a run: {:?}",
        history.iter().map(|h| h.id).collect::<Vec<_>>()
    );
    let times: Vec<u64> = [0, 1, 2, 5].map(|i| history[i].at_ms).to_vec();
    assert_eq!(
        times,
        [T0, T0 + 10, T0 + 10, T0 + 20],
        "entries carry the time of the write that made them"
    );
    assert_eq!(
        ok("history_len", s.history_len(id).await),
        6,
        "history_len counts every entry"
    );
    assert_eq!(
        events(&db.history(other).await).len(),
        1,
        "another run's history holds only its own entries"
    );
}

/// Writes issued at once (which a backend may group into one transaction)
/// each land exactly once, and a refused one (a conflict, a taken workflow
/// id) undoes only itself.
pub async fn concurrent_writes_each_land_once_and_alone(s: &dyn Storage) {
    let db = Db(s);
    let waiting = db.create(new_run("Order", "order-1", T0)).await;
    db.applied(commit(waiting, 0, NextState::Waiting(None)))
        .await;
    let busy = db.create(new_run("Order", "order-2", T0)).await;
    let holder = db.create(new_run("Payment", "taken", T0)).await;
    let mut clash = commit(busy, 0, NextState::Running(step("next")));
    clash.writes.insert("k".into(), Some(json(json!(1))));
    clash.children = vec![
        child_of(busy, "Payment", "free", None, ClosePolicy::Abandon),
        child_of(busy, "Payment", "taken", None, ClosePolicy::Abandon),
    ];
    let newcomer = new_run("Order", "order-3", T0 + 1);
    let newcomer_id = newcomer.run_id;
    let mut storer = commit(holder, 0, NextState::Running(step("pay")));
    storer.writes.insert("paid".into(), Some(json(json!(true))));

    let (e1, e2, e3, e4, clashed, created, duplicate, stored) = tokio::join!(
        db.deliver(waiting, "e1", json!(1)),
        db.deliver(waiting, "e2", json!(2)),
        db.deliver(waiting, "e3", json!(3)),
        db.deliver(waiting, "e4", json!(4)),
        db.commit(clash),
        s.create_run(newcomer),
        s.create_run(new_run("Order", "order-1", T0 + 2)),
        db.commit(storer),
    );

    let deliveries = [e1, e2, e3, e4];
    let woken = deliveries
        .iter()
        .map(|d| match d {
            Ok(effects) => effects.woken.clone(),
            Err(gone) => panic!("a concurrent delivery was refused: {gone}"),
        })
        .filter(|woken| !woken.is_empty())
        .collect::<Vec<_>>();
    assert_eq!(
        woken,
        [vec![waiting]],
        "exactly one of the concurrent deliveries wakes the waiting run"
    );
    assert!(
        matches!(
            &clashed,
            CommitOutcome::Conflict { workflow_id, run_id } if workflow_id == "taken" && *run_id == holder
        ),
        "the commit with a taken child id is a Conflict, got {clashed:?}"
    );
    let r = db.record(busy).await;
    assert_eq!(
        (r.status, r.seq),
        (RunStatus::Running, 0),
        "the conflicting commit left its run as it was"
    );
    assert!(
        ok("store", s.store(busy).await).is_empty()
            && ok("active_run", s.active_run("free").await).is_none(),
        "the conflicting commit kept no store write and no child"
    );
    assert!(
        matches!(created, Ok(Ok(()))),
        "the concurrent create applied: {created:?}"
    );
    assert_eq!(
        db.record(newcomer_id).await.seq,
        0,
        "the created run reads back"
    );
    assert!(
        matches!(
            &duplicate,
            Ok(Err(AlreadyActive { workflow_id, run_id })) if workflow_id == "order-1" && *run_id == waiting
        ),
        "the concurrent duplicate create is AlreadyActive: {duplicate:?}"
    );
    assert!(
        matches!(stored, CommitOutcome::Applied { seq: 1, .. }),
        "the concurrent commit applied: {stored:?}"
    );
    assert_eq!(
        db.store(holder).await,
        json!({"paid": true}),
        "the concurrent commit's store write landed"
    );

    // Every event is handled once.
    let r = db.record(waiting).await;
    let mut handled: Vec<String> = r.pending.into_iter().map(|p| p.handler).collect();
    let mut seq = r.seq;
    while handled.len() <= 4 {
        let applied = db
            .applied(commit(waiting, seq, NextState::Waiting(None)))
            .await;
        seq = applied.seq;
        match applied.next {
            Some(next) => handled.push(next.handler),
            None => break,
        }
    }
    handled.sort();
    assert_eq!(
        handled,
        ["e1", "e2", "e3", "e4"],
        "each concurrently delivered event is dispatched exactly once"
    );
    let history = db.history(waiting).await;
    assert_eq!(
        (
            count(&history, "event_received"),
            count(&history, "event_dispatched")
        ),
        (4, 4),
        "each event is received and dispatched once"
    );
}

// ---------------------------------------------------------------------------
// Scaffolding.

/// A storage result, or a panic naming the call.
/// Retention (`delete_finished`): finished runs that ended before the cut,
/// oldest first, at most `limit` a call, with everything they stored; live
/// runs, runs that ended later, a finished parent with a live child and a
/// finished child with a live parent stay.
pub async fn retention_deletes_old_finished_runs_in_batches_and_keeps_families_with_live_runs(
    s: &dyn Storage,
) {
    let db = Db(s);
    let cut = T0 + 1_000;
    // Three old finished runs, each with a store key and a history; ended
    // at T0+100, +200, +300 (completed, failed, cancelled).
    let mut old = Vec::new();
    for (i, next) in [
        NextState::Completed(json(json!(1))),
        NextState::Failed(WorkflowError::new(ErrorKind::Application, "no")),
    ]
    .into_iter()
    .enumerate()
    {
        let id = db.create(new_run("Order", &format!("old-{i}"), T0)).await;
        let mut c = StateCommit::new(id, 0, next, T0 + 100 * (i as u64 + 1));
        c.writes.insert("k".into(), Some(json(json!("v"))));
        db.applied(c).await;
        old.push(id);
    }
    let cancelled = db.create(new_run("Order", "old-2", T0)).await;
    db.applied(StateCommit::new(
        cancelled,
        0,
        NextState::Waiting(None),
        T0 + 50,
    ))
    .await;
    ok(
        "cancel",
        s.cancel(cancelled, "enough".into(), T0 + 300).await,
    )
    .unwrap_or_else(|e| panic!("cancel a waiting run: {e:?}"));
    old.push(cancelled);
    // Finished after the cut; live; a finished parent with a live child; a
    // live parent with a finished child.
    let recent = db.create(new_run("Order", "recent", T0)).await;
    db.applied(StateCommit::new(
        recent,
        0,
        NextState::Completed(json(json!(2))),
        cut + 1,
    ))
    .await;
    let live = db.create(new_run("Order", "live", T0)).await;
    let parent = db.create(new_run("Order", "parent", T0)).await;
    let child = child_of(parent, "Payment", "child", None, ClosePolicy::Abandon);
    let child_id = child.run_id;
    let mut c = StateCommit::new(parent, 0, NextState::Completed(json(json!(3))), T0 + 100);
    c.children = vec![child];
    db.applied(c).await;
    let live_parent = db.create(new_run("Order", "live-parent", T0)).await;
    let done_child = child_of(
        live_parent,
        "Payment",
        "done-child",
        None,
        ClosePolicy::Abandon,
    );
    let done_child_id = done_child.run_id;
    let mut c = StateCommit::new(live_parent, 0, NextState::Waiting(None), T0 + 10);
    c.children = vec![done_child];
    db.applied(c).await;
    ok("claim", s.claim(done_child_id, u64::MAX / 2).await);
    db.applied(StateCommit::new(
        done_child_id,
        0,
        NextState::Completed(json(json!(4))),
        T0 + 100,
    ))
    .await;

    assert_eq!(
        ok("delete_finished", s.delete_finished(cut, 2).await),
        2,
        "at most `limit` runs a call"
    );
    assert!(
        ok("run", s.run(old[0]).await).is_none() && ok("run", s.run(old[1]).await).is_none(),
        "the two that ended first went first"
    );
    assert!(ok("run", s.run(old[2]).await).is_some(), "the third waits");
    assert_eq!(
        ok("delete_finished", s.delete_finished(cut, 2).await),
        1,
        "then the third"
    );
    assert_eq!(
        ok("delete_finished", s.delete_finished(cut, 2).await),
        0,
        "and nothing else is old, finished and free of live family"
    );
    for id in &old {
        assert!(ok("run", s.run(*id).await).is_none(), "{id} deleted");
        assert!(
            db.history(*id).await.is_empty(),
            "{id}: its history went too"
        );
        assert!(
            ok("store", s.store(*id).await).is_empty(),
            "{id}: its store went too"
        );
        assert!(
            ok("inbox", s.inbox(*id).await).is_empty(),
            "{id}: its inbox went too"
        );
    }
    for (id, what) in [
        (recent, "a run that ended after the cut"),
        (live, "a live run"),
        (parent, "a finished parent with a live child"),
        (child_id, "a live child"),
        (live_parent, "a live parent"),
        (done_child_id, "a finished child of a live parent"),
    ] {
        assert!(ok("run", s.run(id).await).is_some(), "{what} is kept");
        assert!(!db.history(id).await.is_empty(), "{what} keeps its history");
    }
}

fn ok<T>(what: &str, result: Result<T, StorageError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("storage error in `{what}`: {e} ({e:?})"),
    }
}

/// JSON for a fixture.
fn json(value: Value) -> Json {
    match serde_json::value::to_raw_value(&value) {
        Ok(json) => json,
        Err(e) => panic!("fixture {value} does not serialize: {e}"),
    }
}

fn input_of(workflow_id: &str) -> Value {
    json!({"id": workflow_id})
}

/// A top-level run of `workflow_type`, version `v1`, start handler `start`.
fn new_run(workflow_type: &str, workflow_id: &str, at_ms: u64) -> NewRun {
    NewRun {
        run_id: RunId::new(),
        workflow_id: workflow_id.into(),
        workflow_type: workflow_type.into(),
        version: "v1".into(),
        parent: None,
        input: json(input_of(workflow_id)),
        pending: Pending {
            kind: HandlerKind::Start,
            handler: "start".into(),
            input: json(input_of(workflow_id)),
        },
        deadline_ms: None,
        at_ms,
    }
}

/// A child of `parent`.
fn child_of(
    parent: RunId,
    workflow_type: &str,
    workflow_id: &str,
    on_completed: Option<&str>,
    close_policy: ClosePolicy,
) -> NewRun {
    NewRun {
        parent: Some(ParentLink {
            run_id: parent,
            on_completed: on_completed.map(str::to_owned),
            close_policy,
        }),
        ..new_run(workflow_type, workflow_id, T0 + 100)
    }
}

fn step(name: &str) -> Pending {
    Pending {
        kind: HandlerKind::Step,
        handler: name.into(),
        input: json(Value::Null),
    }
}

/// A commit of `run` computed at `seq`.
fn commit(run: RunId, seq: u64, next: NextState) -> StateCommit {
    StateCommit::new(run, seq, next, T0 + 10 + seq)
}

fn activation_completed(sequence: u64, handler: &str) -> HistoryEvent {
    HistoryEvent::ActivationCompleted {
        sequence,
        kind: HandlerKind::Step,
        handler: handler.into(),
        started_ms: T0,
        duration_us: 7,
        directive: json!({"step": "next"}),
        keys_changed: vec!["a".into()],
    }
}

fn to_parent(parent: RunId, child: RunId, name: &str, payload: Value) -> Delivery {
    Delivery {
        run_id: parent,
        name: name.into(),
        payload: json(payload),
        kind: InboxKind::Event,
        source: child.to_string(),
    }
}

fn finished(run_id: RunId, workflow_type: &str, status: RunStatus) -> Finished {
    Finished {
        run_id,
        workflow_type: workflow_type.into(),
        status,
    }
}

fn ids(runs: &[RunRecord]) -> Vec<RunId> {
    runs.iter().map(|r| r.run_id).collect()
}

fn events(history: &[HistoryRecord]) -> Vec<HistoryEvent> {
    history.iter().map(|h| h.event.clone()).collect()
}

fn count(history: &[HistoryRecord], kind: &str) -> usize {
    history.iter().filter(|h| h.event.kind() == kind).count()
}

fn assert_pending(
    pending: Option<&Pending>,
    kind: HandlerKind,
    handler: &str,
    input: &Value,
    what: &str,
) {
    let Some(p) = pending else {
        panic!("{what}: expected {kind} `{handler}`, found none");
    };
    assert_eq!(
        (p.kind, p.handler.as_str(), json_value(&p.input)),
        (kind, handler, input.clone()),
        "{what}"
    );
}

/// A completion notice for step `step`, parsed.
fn notice_of(pending: Option<&Pending>, step: &str, what: &str) -> ChildOutcome {
    let Some(p) = pending else {
        panic!("{what}: expected the completion notice for step `{step}`, found none");
    };
    assert_eq!(
        (p.kind, p.handler.as_str()),
        (HandlerKind::Step, step),
        "{what}: a completion notice runs its step"
    );
    match serde_json::from_str(p.input.get()) {
        Ok(outcome) => outcome,
        Err(e) => panic!(
            "{what}: the notice payload {} is not a child outcome: {e}",
            p.input.get()
        ),
    }
}

/// The waiting `parent` (at `seq`) was woken with `child`'s notice for
/// `step`, saying `status` and `kind`; park it again and return its seq.
async fn expect_notice(
    db: &Db<'_>,
    parent: RunId,
    seq: u64,
    step: &str,
    child: RunId,
    status: ChildStatus,
    kind: ErrorKind,
) -> u64 {
    let p = db.record(parent).await;
    assert_eq!(
        (p.status, p.seq),
        (RunStatus::Running, seq + 1),
        "the parent is woken by the notice for `{step}`"
    );
    let outcome = notice_of(p.pending.as_ref(), step, "the parent's activation");
    assert_eq!(
        (
            outcome.run_id.as_str(),
            outcome.status,
            outcome.result.as_ref()
        ),
        (child.to_string().as_str(), status, None),
        "the notice for `{step}` names the child and its status, with no result"
    );
    let error_kind = outcome
        .error
        .as_ref()
        .and_then(|e| e.get("kind"))
        .and_then(Value::as_str);
    assert_eq!(
        error_kind,
        Some(kind.as_str()),
        "the notice for `{step}` carries the child's error: {:?}",
        outcome.error
    );
    let applied = db
        .applied(commit(parent, p.seq, NextState::Waiting(None)))
        .await;
    assert!(applied.next.is_none(), "the parent parks again");
    applied.seq
}

/// What an applied commit reported.
struct Applied {
    seq: u64,
    next: Option<Pending>,
    effects: Effects,
}

/// The storage under test, with calls that panic on a storage error.
struct Db<'a>(&'a dyn Storage);

impl Db<'_> {
    /// Create a run and claim it, as the host that starts a run drives it
    /// (a task is recorded only under the claim).
    async fn create(&self, run: NewRun) -> RunId {
        let id = run.run_id;
        let what = format!("run {id} ({})", run.workflow_id);
        match ok("create_run", self.0.create_run(run).await) {
            Ok(()) => {
                assert!(
                    ok("claim", self.0.claim(id, u64::MAX / 2).await),
                    "claiming {what}"
                );
                id
            }
            Err(taken) => panic!("creating {what}: {taken}"),
        }
    }

    async fn record(&self, id: RunId) -> RunRecord {
        match ok("run", self.0.run(id).await) {
            Some(record) => record,
            None => panic!("run {id} does not read back"),
        }
    }

    async fn commit(&self, commit: StateCommit) -> CommitOutcome {
        ok("commit", self.0.commit(commit).await)
    }

    /// Commit; panic unless it applied.
    async fn applied(&self, commit: StateCommit) -> Applied {
        let what = format!(
            "commit of run {} at seq {}",
            commit.run_id, commit.expected_seq
        );
        match self.commit(commit).await {
            CommitOutcome::Applied { seq, next, effects } => Applied { seq, next, effects },
            other => panic!("{what} must apply, got {other:?}"),
        }
    }

    async fn deliver(&self, to: RunId, name: &str, payload: Value) -> Result<Effects, RunGone> {
        let delivery = Delivery {
            run_id: to,
            name: name.into(),
            payload: json(payload),
            kind: InboxKind::Event,
            source: "client".into(),
        };
        ok("deliver", self.0.deliver(delivery).await)
    }

    /// Deliver; panic unless it was accepted.
    async fn delivered(&self, to: RunId, name: &str, payload: Value) -> Effects {
        match self.deliver(to, name, payload).await {
            Ok(effects) => effects,
            Err(gone) => panic!("delivering `{name}` to run {to} was refused: {gone}"),
        }
    }

    async fn cancel_ok(&self, id: RunId, reason: &str) -> Effects {
        match ok("cancel", self.0.cancel(id, reason.into(), T0 + 50).await) {
            Ok(effects) => effects,
            Err(gone) => panic!("cancelling run {id} was refused: {gone}"),
        }
    }

    async fn terminate_ok(&self, id: RunId, reason: &str) -> Effects {
        match ok(
            "terminate",
            self.0.terminate(id, reason.into(), T0 + 50).await,
        ) {
            Ok(effects) => effects,
            Err(gone) => panic!("terminating run {id} was refused: {gone}"),
        }
    }

    async fn history(&self, id: RunId) -> Vec<HistoryRecord> {
        ok("history", self.0.history(id).await)
    }

    /// The store as one JSON object.
    async fn store(&self, id: RunId) -> Value {
        let store = ok("store", self.0.store(id).await);
        Value::Object(
            store
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        )
    }

    async fn anchors_inbox(&self, id: RunId) -> Vec<(String, bool)> {
        ok("anchors", self.0.anchors(id).await).inbox
    }

    async fn live(&self) -> Vec<RunRecord> {
        ok("live_runs", self.0.live_runs().await)
    }

    async fn list(&self, workflow_type: Option<&str>, status: Option<RunStatus>) -> Vec<RunRecord> {
        let filter = RunFilter {
            status,
            ..of_type(workflow_type)
        };
        ok("list_runs", self.0.list_runs(filter, None, 100).await)
    }

    async fn with_prefix(&self, prefix: &str) -> Vec<RunRecord> {
        let filter = RunFilter {
            id_prefix: Some(prefix.to_owned()),
            ..RunFilter::default()
        };
        ok("list_runs", self.0.list_runs(filter, None, 100).await)
    }
}

/// A filter of one workflow type (or none).
fn of_type(workflow_type: Option<&str>) -> RunFilter {
    RunFilter {
        workflow_type: workflow_type.map(str::to_owned),
        ..RunFilter::default()
    }
}
