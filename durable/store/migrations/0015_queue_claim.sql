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
-- * durable_claim_queue: the same function as 0006's except the per-key ranking,
--   which counts a key's active runs per candidate instead of joining the waiting runs
--   to every key's count (see the comment there).
-- None of this changes what a claim takes or what protects a limit (see 0006).

CREATE INDEX IF NOT EXISTS runs_queue_resume ON runs (queue, ready_at)
    WHERE status IN ('pending', 'suspended') AND queue IS NOT NULL
      AND started_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_queue_waiting ON runs (queue, priority, created_at, id)
    WHERE status = 'pending' AND started_at IS NULL AND queue IS NOT NULL;

CREATE OR REPLACE FUNCTION durable_claim_queue(
    p_queue text, p_concurrency int, p_per_key int, p_rate_n int, p_rate_s float8,
    p_owner text, p_workflows text[], p_versions text[], p_limit int,
    p_now timestamptz, p_lease_s float8, p_exclude text[]
) RETURNS TABLE (id text, workflow text, version text, input bytea, fence bigint,
                 wakeups bigint, parent_run_id text, started_at timestamptz,
                 deadline timestamptz, fresh boolean)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_lease timestamptz := p_now + make_interval(secs => p_lease_s);
    v_taken int := 0;
    v_free int;
    v_count int;
    v_ids text[];
    v_full text[];
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;

    -- 1. Runs already active: woken suspended runs, runs released at shutdown, runs
    --    whose worker's lease expired. They hold their slot (and were counted in the
    --    rate window when they started), so taking them over changes no count.
    --    Two statements, one per partial index (runs_queue_ready, runs_leased).
    RETURN QUERY
    WITH c AS (
        SELECT r.id FROM runs r
         WHERE r.queue = p_queue AND r.status IN ('pending', 'suspended')
           AND r.ready_at <= p_now AND r.started_at IS NOT NULL
           AND (r.workflow, r.version) IN (SELECT * FROM unnest(p_workflows, p_versions))
           AND NOT (r.id = ANY(p_exclude))
         ORDER BY r.ready_at LIMIT p_limit FOR UPDATE SKIP LOCKED)
    UPDATE runs r SET status = 'running', lease_owner = p_owner, lease_until = v_lease,
           fence = r.fence + 1, updated_at = p_now
      FROM c WHERE r.id = c.id
    RETURNING r.id, r.workflow, r.version, r.input, r.fence, r.wakeups, r.parent_run_id,
              r.started_at, r.deadline, false;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_taken := v_count;
    IF v_taken < p_limit THEN
        RETURN QUERY
        WITH c AS (
            SELECT r.id FROM runs r
             WHERE r.status = 'running' AND r.lease_until < p_now AND r.queue = p_queue
               AND (r.workflow, r.version) IN (SELECT * FROM unnest(p_workflows, p_versions))
               AND NOT (r.id = ANY(p_exclude))
             ORDER BY r.lease_until LIMIT p_limit - v_taken FOR UPDATE SKIP LOCKED)
        UPDATE runs r SET status = 'running', lease_owner = p_owner, lease_until = v_lease,
               fence = r.fence + 1, updated_at = p_now
          FROM c WHERE r.id = c.id
        RETURNING r.id, r.workflow, r.version, r.input, r.fence, r.wakeups,
                  r.parent_run_id, r.started_at, r.deadline, false;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_taken := v_taken + v_count;
    END IF;
    v_free := p_limit - v_taken;
    IF v_free <= 0 THEN
        RETURN;
    END IF;

    -- 2. New starts, under the queue row's lock (taken here, held to commit). The upsert
    --    locks the row even when its WHERE leaves the limits unchanged.
    INSERT INTO queues AS q (name, concurrency, per_key_concurrency, rate_limit,
                             rate_period_s, updated_at)
    VALUES (p_queue, p_concurrency, p_per_key, p_rate_n, p_rate_s, p_now)
    ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
           per_key_concurrency = EXCLUDED.per_key_concurrency,
           rate_limit = EXCLUDED.rate_limit, rate_period_s = EXCLUDED.rate_period_s,
           updated_at = EXCLUDED.updated_at
     WHERE (q.concurrency, q.per_key_concurrency, q.rate_limit, q.rate_period_s)
           IS DISTINCT FROM (EXCLUDED.concurrency, EXCLUDED.per_key_concurrency,
                             EXCLUDED.rate_limit, EXCLUDED.rate_period_s);

    -- From here on every statement takes a fresh snapshot, so it sees all starts
    -- committed by earlier holders of the lock.

    IF p_concurrency IS NOT NULL THEN
        SELECT count(*) INTO v_count FROM runs r
         WHERE r.queue = p_queue AND r.started_at IS NOT NULL
           AND r.status IN ('pending', 'running', 'suspended');
        v_free := least(v_free, p_concurrency - v_count);
    END IF;
    IF p_rate_n IS NOT NULL THEN
        -- Every start after p_now - period counts, even one stamped later than p_now
        -- (this start is stamped >= p_now, see below): then no sliding window that
        -- contains this start can hold n + 1 starts.
        SELECT count(*) INTO v_count FROM runs r
         WHERE r.queue = p_queue
           AND r.started_at > p_now - make_interval(secs => p_rate_s);
        v_free := least(v_free, p_rate_n - v_count);
    END IF;
    IF v_free <= 0 THEN
        RETURN;
    END IF;

    IF p_per_key IS NULL THEN
        SELECT coalesce(array_agg(x.id), '{}') INTO v_ids FROM (
            SELECT r.id FROM runs r
             WHERE r.queue = p_queue AND r.status = 'pending' AND r.started_at IS NULL
               AND r.ready_at <= p_now
               AND (r.workflow, r.version) IN (SELECT * FROM unnest(p_workflows, p_versions))
               AND NOT (r.id = ANY(p_exclude))
             ORDER BY r.priority, r.created_at, r.id
             LIMIT v_free FOR UPDATE SKIP LOCKED) x;
    ELSE
        -- Keys at their limit first: none of their waiting runs is even ranked.
        SELECT coalesce(array_agg(b.queue_key), '{}') INTO v_full FROM (
            SELECT r.queue_key FROM runs r
             WHERE r.queue = p_queue AND r.started_at IS NOT NULL
               AND r.status IN ('pending', 'running', 'suspended')
               AND r.queue_key IS NOT NULL
             GROUP BY r.queue_key HAVING count(*) >= p_per_key) b;
        -- Per key, the k-th waiting run may start only if k <= the key's free slots.
        -- Within a priority, keys take turns: k-th runs before (k+1)-th ones, and among
        -- equal k the key whose last start is oldest (or that never started) goes first.
        -- The key's active runs are counted only for the runs with k <= p_per_key (the
        -- cheaper condition is evaluated first), never joined: 0006's join of waiting
        -- runs to per-key counts was planned as a nested loop when the table had no
        -- statistics yet, recounting every key for every waiting run.
        SELECT coalesce(array_agg(x.id), '{}') INTO v_ids FROM (
            SELECT c.id FROM (
                SELECT r.id, r.queue_key, r.priority, r.created_at,
                       row_number() OVER (PARTITION BY r.queue_key COLLATE "C"
                                          ORDER BY r.priority, r.created_at, r.id) AS rn
                  FROM runs r
                 WHERE r.queue = p_queue AND r.status = 'pending' AND r.started_at IS NULL
                   AND r.ready_at <= p_now
                   AND (r.queue_key IS NULL OR NOT (r.queue_key = ANY(v_full)))
                   AND (r.workflow, r.version) IN (SELECT * FROM unnest(p_workflows, p_versions))
                   AND NOT (r.id = ANY(p_exclude))) c
             WHERE c.queue_key IS NULL
                OR (c.rn <= p_per_key
                    AND c.rn <= p_per_key - (
                        SELECT count(*) FROM runs a
                         WHERE a.queue = p_queue AND a.queue_key = c.queue_key
                           AND a.started_at IS NOT NULL
                           AND a.status IN ('pending', 'running', 'suspended')))
             ORDER BY c.priority, CASE WHEN c.queue_key IS NULL THEN 1 ELSE c.rn END,
                      (SELECT max(s.started_at) FROM runs s
                        WHERE s.queue = p_queue AND s.queue_key = c.queue_key
                          AND s.started_at IS NOT NULL) NULLS FIRST,
                      c.created_at, c.id
             LIMIT v_free) x;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;

    -- A start is stamped no earlier than any finish of the queue already committed, so
    -- a finish that freed the slot lies before the start in the recorded times too,
    -- even when the finisher's clock ran a little ahead of ours. It is read by this
    -- statement, after every count: a finish this statement cannot see was invisible
    -- to the counts as well, which then counted its run as active.
    -- The lock re-reads each row as committed now; re-checking ready_at keeps a run
    -- whose debounce window a trigger just extended from starting early.
    RETURN QUERY
    WITH c AS (
        SELECT r.id FROM runs r
         WHERE r.id = ANY(v_ids) AND r.status = 'pending' AND r.started_at IS NULL
           AND r.ready_at <= p_now
         FOR UPDATE SKIP LOCKED)
    UPDATE runs r SET status = 'running', lease_owner = p_owner, lease_until = v_lease,
           fence = r.fence + 1, updated_at = p_now,
           started_at = (SELECT greatest(p_now, max(s.finished_at)) FROM runs s
                          WHERE s.queue = p_queue AND s.finished_at IS NOT NULL)
      FROM c WHERE r.id = c.id
    RETURNING r.id, r.workflow, r.version, r.input, r.fence, r.wakeups, r.parent_run_id,
              r.started_at, r.deadline, true;
END;
$$;
