-- The schema of wasmflow 0.1: runs, their stores, inboxes and histories,
-- and the component versions runs are pinned to. `IF NOT EXISTS` throughout,
-- so a database created before migrations were versioned opens unchanged.
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    workflow_id   TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    version       TEXT NOT NULL,
    status        TEXT NOT NULL,
    parent_run_id TEXT,
    on_completed  TEXT,
    close_policy  TEXT NOT NULL,
    input         TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    seq           INTEGER NOT NULL,
    pending       TEXT,
    timer_at      INTEGER,
    timer_step    TEXT,
    deadline_at   INTEGER,
    cancel_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_active_per_workflow_id
    ON runs (workflow_id) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_by_workflow_id ON runs (workflow_id, created_at);
CREATE INDEX IF NOT EXISTS runs_live ON runs (status) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS store (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL,
    name    TEXT NOT NULL,
    payload TEXT NOT NULL,
    notice  INTEGER NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_run ON inbox (run_id, id);
CREATE TABLE IF NOT EXISTS history (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_run ON history (run_id, id);
CREATE TABLE IF NOT EXISTS components (
    version  TEXT PRIMARY KEY,
    bytes    BLOB NOT NULL,
    file     TEXT,
    added_at INTEGER NOT NULL
);
