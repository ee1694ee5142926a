-- Listing runs newest first, page by page: the order of `list_runs` and
-- the position a page continues after.
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at, run_id);
