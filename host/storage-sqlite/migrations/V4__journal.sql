-- Tasks (SPEC 8). `journal`: the entries (task attempts, recorded values)
-- of the activation each run is executing, failed in, or waits to retry,
-- read back when that activation is executed again; dropped when the run
-- moves on. `timer_retry`: a waiting run whose timer is a task's retry
-- delay keeps its pending activation and executes it again when due.
CREATE TABLE journal (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    entry  TEXT NOT NULL
);
CREATE INDEX journal_by_run ON journal (run_id, id);
ALTER TABLE runs ADD COLUMN timer_retry INTEGER NOT NULL DEFAULT 0;
