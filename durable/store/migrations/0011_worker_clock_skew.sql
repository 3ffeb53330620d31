-- durable schema v11: each worker's measured clock skew (issue 16, item 3).
--
-- Leases, claims and timers follow the database's clock; a worker measures how far
-- its host's clock is from it and records the figure with its heartbeat, so a
-- skewed host shows up in `durable runs show` (and in this table).
ALTER TABLE workers ADD COLUMN IF NOT EXISTS clock_skew_s double precision;
