-- durable schema v16: the group commit's updates find their runs by primary key.
--
-- 0008's updates joined the batch to `runs` on `r.id = f.id AND r.fence = f.fence AND
-- r.status = 'running'`. That status condition is the predicate of the partial index
-- runs_leased (the running rows), and the cached generic plan (force_generic_plan:
-- unnest estimated at 10 rows, runs_leased at one) read every running run and, for each,
-- rescanned the batch's arrays: with 750 runs in flight, a batch finishing 50 of them
-- discarded 37,450 joined rows, 13.7 ms of a commit whose other statements took 2. The
-- cost grew with the runs in flight, times the batch.
--
-- The status is now compared with a PL/pgSQL constant. The generic plan sees a
-- parameter, from which the planner cannot prove the partial index's predicate, so the
-- only index left for `r.id = f.id` is the primary key: one probe per row of the batch.
-- `enable_seqscan = off` for the function's statements keeps a small or never-analyzed
-- table from being read whole instead (every statement here has an index to use; a
-- sequential scan of `runs` is never the right plan inside a commit).
-- Same rows written, rejected or woken as 0008's function; only the plans change
-- (tests/store/test_commit_plan.py checks them).

CREATE OR REPLACE FUNCTION durable_commit_packed(
    p_now timestamptz,
    p_lease_s float8,
    p_channel text,
    p_ev_run text, ev_fence bigint[], ev_seq int[], ev_pos int[], p_ev_kind text,
    p_ev_name text, ev_payload bytea[], ev_created timestamptz[],
    f_run text[], f_fence bigint[], f_status text[], f_output bytea[], f_error text[],
    s_run text[], s_fence bigint[], s_ready timestamptz[], s_waiting text[],
    s_pending bytea[], s_seen bigint[],
    x_run text[], x_fence bigint[]
) RETURNS TABLE (run_id text, outcome text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    ev_run text[] := durable_split(p_ev_run, cardinality(ev_fence));
    ev_kind text[] := durable_split(p_ev_kind, cardinality(ev_fence));
    ev_name text[] := durable_split(p_ev_name, cardinality(ev_fence));
    done text[];
    parents text[];
    children text[];
    i int;
    l_id text[];
    l_fence bigint[];
    l_status text[];
    -- The running status as a variable, not a literal: see the header.
    v_running CONSTANT text := 'running';
BEGIN
    -- Lock the batch's runs once, in id order, and keep what the lock read: every check
    -- below works on these arrays instead of visiting the table again. One primary-key
    -- probe per distinct id (the LATERAL subquery with its row lock cannot be flattened
    -- into a join, so no plan can turn it into a scan of the table).
    SELECT coalesce(array_agg(x.id), '{}'), coalesce(array_agg(x.fence), '{}'),
           coalesce(array_agg(x.status), '{}')
      INTO l_id, l_fence, l_status
      FROM (SELECT k.id, r.fence, r.status
              FROM (SELECT DISTINCT u.id FROM unnest(ev_run || f_run || s_run || x_run) AS u(id)
                     ORDER BY u.id) k,
                   LATERAL (SELECT r.fence, r.status FROM runs r
                             WHERE r.id = k.id FOR NO KEY UPDATE) r
             ORDER BY k.id) x;

    -- Which (run, fence) pairs may not write: reported back, their rows skipped below.
    RETURN QUERY
    SELECT DISTINCT u.id, CASE WHEN l.status IN ('completed', 'failed', 'cancelled')
                               THEN 'closed' ELSE 'rejected' END
      FROM unnest(ev_run || f_run || s_run || x_run, ev_fence || f_fence || s_fence || x_fence)
           AS u(id, fence)
      LEFT JOIN unnest(l_id, l_fence, l_status) AS l(id, fence, status) ON l.id = u.id
     WHERE l.id IS NULL OR l.fence <> u.fence OR l.status <> 'running';

    IF cardinality(ev_run) > 0 THEN
        INSERT INTO events (run_id, seq, pos, kind, name, payload, created_at)
        SELECT e.run_id, e.seq, e.pos, e.kind, e.name, e.payload, coalesce(e.created_at, p_now)
          FROM unnest(ev_run, ev_fence, ev_seq, ev_pos, ev_kind, ev_name, ev_payload, ev_created)
               AS e(run_id, fence, seq, pos, kind, name, payload, created_at)
          JOIN unnest(l_id, l_fence, l_status) AS l(id, fence, status)
            ON l.id = e.run_id AND l.fence = e.fence AND l.status = 'running';
    END IF;

    IF cardinality(f_run) > 0 THEN
        WITH fin AS (
            UPDATE runs r SET status = f.status, output = f.output, error = f.error,
                   finished_at = p_now, updated_at = p_now, lease_owner = NULL,
                   lease_until = NULL, ready_at = NULL, waiting_on = '{}', pending = NULL
              FROM unnest(f_run, f_fence, f_status, f_output, f_error)
                   AS f(id, fence, status, output, error)
             WHERE r.id = f.id AND r.fence = f.fence AND r.status = v_running
            RETURNING r.id, r.parent_run_id)
        SELECT coalesce(array_agg(fin.id), '{}'),
               coalesce(array_agg(fin.parent_run_id) FILTER (WHERE fin.parent_run_id IS NOT NULL), '{}'),
               coalesce(array_agg(fin.id) FILTER (WHERE fin.parent_run_id IS NOT NULL), '{}')
          INTO done, parents, children
          FROM fin;
        PERFORM durable_wake_parents(parents, children, p_now, p_channel);
        -- One notice per 100 finished runs (ids joined by chr(31)), not one per run.
        IF cardinality(done) > 0 THEN
            FOR i IN 0 .. (cardinality(done) - 1) / 100 LOOP
                PERFORM pg_notify(p_channel, 'd:' || array_to_string(done[i * 100 + 1 : i * 100 + 100], chr(31)));
            END LOOP;
        END IF;
    END IF;

    IF cardinality(s_run) > 0 THEN
    RETURN QUERY
    UPDATE runs r SET status = 'suspended', lease_owner = NULL, lease_until = NULL,
           ready_at = CASE WHEN r.wakeups <> s.seen THEN p_now ELSE s.ready_at END,
           waiting_on = string_to_array(s.waiting, chr(31)), pending = s.pending,
           updated_at = p_now
      FROM unnest(s_run, s_fence, s_ready, s_waiting, s_pending, s_seen)
           AS s(id, fence, ready_at, waiting, pending, seen)
     WHERE r.id = s.id AND r.fence = s.fence AND r.status = v_running
       AND r.wakeups <> s.seen
    RETURNING r.id, 'woken'::text;

    UPDATE runs r SET status = 'suspended', lease_owner = NULL, lease_until = NULL,
           ready_at = s.ready_at, waiting_on = string_to_array(s.waiting, chr(31)),
           pending = s.pending, updated_at = p_now
      FROM unnest(s_run, s_fence, s_ready, s_waiting, s_pending, s_seen)
           AS s(id, fence, ready_at, waiting, pending, seen)
     WHERE r.id = s.id AND r.fence = s.fence AND r.status = v_running;
    END IF;

    IF cardinality(x_run) > 0 THEN
    UPDATE runs r SET lease_until = p_now + make_interval(secs => p_lease_s)
      FROM unnest(x_run, x_fence) AS x(id, fence)
     WHERE r.id = x.id AND r.fence = x.fence AND r.status = v_running;
    END IF;
END;
$$;
