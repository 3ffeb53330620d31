-- durable schema v2: a claimed-but-not-yet-triggered tick survives a crash.
--
-- A scheduler claims a tick by advancing next_fire_at and recording the tick in
-- pending_fire_at in one compare-and-set UPDATE; it then starts the run (idempotency
-- key derived from the tick) and clears pending_fire_at. A claim left behind by a
-- crashed process is re-triggered by any scheduler after a grace period: the
-- idempotency key makes that re-trigger start nothing if the run already exists.
ALTER TABLE schedules ADD COLUMN IF NOT EXISTS pending_fire_at timestamptz;
ALTER TABLE schedules ADD COLUMN IF NOT EXISTS claimed_at timestamptz;

CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_fire_at) WHERE active AND NOT paused;
