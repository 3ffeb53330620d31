-- durable schema v7: run lineage (continue-as-new, fork) and cleanup of cancelled runs.
--
-- continued_as / continued_from link the runs of a continue-as-new chain (the old run
-- ends `completed` with continued_as set, in the same transaction that inserts the new
-- one); forked_from names the run a fork copied its history from. cleanup_until is set
-- on a cancelled run that had started: until then a worker may claim it (status stays
-- `cancelled`), replay it to where it stopped and run its cleanup code, recorded into
-- its history; it is cleared when the cleanup ends. ADD COLUMN without a default
-- rewrites nothing.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS continued_as text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS continued_from text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS forked_from text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS cleanup_until timestamptz;

-- The cleanup claim looks only at cancelled runs whose cleanup is still owed.
CREATE INDEX IF NOT EXISTS runs_cleanup ON runs (cleanup_until) WHERE cleanup_until IS NOT NULL;
