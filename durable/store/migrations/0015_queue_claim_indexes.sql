-- durable schema v15: indexes for the queued claim (durable_claim_queue, migration
-- 0006), so that what a claim reads follows what it takes, not how many runs wait.
--
-- * runs_queue_resume: queued runs that hold their slot and are ready again (woken,
--   released at shutdown). Every claim of a queue looks for them first; through
--   runs_queue_ready, which also holds every run still waiting for a slot, that look
--   read the queue's whole backlog on each claim.
-- * runs_queue_waiting: runs waiting for a slot, in start order (priority, then first
--   come): a claim without per-key limits reads the first few instead of sorting the
--   backlog.
-- Neither changes what a claim takes or what protects a limit (see 0006).

CREATE INDEX IF NOT EXISTS runs_queue_resume ON runs (queue, ready_at)
    WHERE status IN ('pending', 'suspended') AND queue IS NOT NULL
      AND started_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_queue_waiting ON runs (queue, priority, created_at, id)
    WHERE status = 'pending' AND started_at IS NULL AND queue IS NOT NULL;
