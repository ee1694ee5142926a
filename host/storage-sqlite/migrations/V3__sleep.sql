-- A durable sleep (`ctx.next.sleep`): a waiting run whose timer is a sleep
-- takes no event from its inbox until the timer fires. A timed wait without
-- a timeout step keeps `timer_at` with a NULL `timer_step`.
ALTER TABLE runs ADD COLUMN timer_sleep INTEGER NOT NULL DEFAULT 0;
