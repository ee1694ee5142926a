-- The PostgreSQL schema of wasmflow: the same tables as the SQLite backend's
-- (runs, their stores, inboxes, histories and journals, the component
-- versions runs are pinned to), plus each run's claim: which host drives it
-- (`lease_owner`) and until when (`lease_until`, epoch ms).
-- Payloads, results and history entries are kept as the JSON text the host
-- wrote (TEXT, not JSONB: JSONB would reorder keys and round numbers).
CREATE TABLE runs (
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
    seq           BIGINT NOT NULL,
    pending       TEXT,
    timer_at      BIGINT,
    timer_step    TEXT,
    timer_sleep   BOOLEAN NOT NULL DEFAULT FALSE,
    timer_retry   BOOLEAN NOT NULL DEFAULT FALSE,
    deadline_at   BIGINT,
    cancel_reason TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT
);
CREATE UNIQUE INDEX runs_one_active_per_workflow_id
    ON runs (workflow_id) WHERE status IN ('running', 'waiting');
CREATE INDEX runs_by_workflow_id ON runs (workflow_id, created_at);
CREATE INDEX runs_live ON runs (status) WHERE status IN ('running', 'waiting');
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_by_created ON runs (created_at, run_id);
CREATE TABLE store (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE inbox (
    id      BIGSERIAL PRIMARY KEY,
    run_id  TEXT NOT NULL,
    name    TEXT NOT NULL,
    payload TEXT NOT NULL,
    notice  BOOLEAN NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX inbox_by_run ON inbox (run_id, id);
CREATE TABLE history (
    id     BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    at     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX history_by_run ON history (run_id, id);
CREATE TABLE journal (
    id     BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    entry  TEXT NOT NULL
);
CREATE INDEX journal_by_run ON journal (run_id, id);
CREATE TABLE components (
    version  TEXT PRIMARY KEY,
    bytes    BYTEA NOT NULL,
    file     TEXT,
    added_at BIGINT NOT NULL
);
