-- Retention: finished runs by the time they ended (their last update), for
-- the background deletion of those older than the retention.
CREATE INDEX runs_ended ON runs (updated_at)
    WHERE status IN ('completed', 'failed', 'cancelled', 'terminated');
