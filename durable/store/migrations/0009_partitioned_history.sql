-- durable schema v9: the history (`events`, `run_events`) partitioned by run-id range.
--
-- Run ids start with 12 hex digits of the run's creation time in milliseconds
-- (durable/ids.py), so a range of run ids is a range of creation times: one partition
-- per UTC day holds the whole history of the runs created that day. Partitioning by
-- run id rather than by the event's created_at keeps every run's history in ONE
-- partition, so
--   * the primary keys stay (run_id, seq) and (run_id, id): the partition key is in them;
--   * `WHERE run_id = $1` (replay loads) reads one partition, not one per day;
--   * retention drops a day's partition once every run in that id range has finished
--     before the cutoff (a run-id range is checked on `runs` exactly, whatever the ids).
-- Ids given by the caller that fall in no day's range (e.g. 'order-42') land in the
-- DEFAULT partition, purged row by row. Day partitions are created ahead of time by
-- durable/store/pg_partitions.py (on migrate and by workers); this file converts the
-- tables in place. Every INSERT and SELECT of the history is unchanged: a partitioned
-- table takes the same statements (durable_commit is not touched here).
--
-- In place: the existing table is renamed `<table>_legacy` and attached as the range
-- partition (MINVALUE, start of tomorrow UTC), after moving out the few rows of ids
-- above that bound; attaching reuses its primary-key index and only scans it once (no
-- copy). On a new database it is empty, and is dropped by the first purge.
-- Top-level statements only (no DO block): Citus places a table created inside a
-- plpgsql block on the coordinator instead of with the schema. Every statement runs in
-- the migration's transaction, so now() (the bound below) is the same in all of them. `inbox` (rows deleted as
-- they are consumed), `hooks` (looked up by token) and `runs` (global unique id and
-- idempotency key) stay unpartitioned: see docs/operations.md.
ALTER TABLE events RENAME TO events_legacy;
CREATE TABLE events (
    run_id     text NOT NULL,
    seq        integer NOT NULL,
    pos        integer NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    payload    bytea,
    created_at timestamptz NOT NULL,
    CONSTRAINT events_run_seq PRIMARY KEY (run_id, seq)
) PARTITION BY RANGE (run_id);
CREATE TABLE events_default PARTITION OF events DEFAULT;
WITH moved AS (
    DELETE FROM events_legacy
     WHERE run_id >= lpad(to_hex((extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
                                  + interval '1 day') * 1000)::bigint), 12, '0')
    RETURNING *)
INSERT INTO events SELECT * FROM moved;
ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE)
    TO (lpad(to_hex((extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
                     + interval '1 day') * 1000)::bigint), 12, '0'));

ALTER TABLE run_events RENAME TO run_events_legacy;
CREATE TABLE run_events (
    id         bigserial NOT NULL,
    run_id     text NOT NULL,
    type       text NOT NULL,
    payload    bytea,
    created_at timestamptz NOT NULL,
    CONSTRAINT run_events_run_id PRIMARY KEY (run_id, id)
) PARTITION BY RANGE (run_id);
-- The new table's own sequence continues the old one (which the old table keeps: Citus
-- cannot move a sequence's owner). No table is read here, so Citus runs it locally.
SELECT setval(pg_get_serial_sequence('run_events', 'id'),
              nextval(pg_get_serial_sequence('run_events_legacy', 'id')), false);
CREATE TABLE run_events_default PARTITION OF run_events DEFAULT;
WITH moved AS (
    DELETE FROM run_events_legacy
     WHERE run_id >= lpad(to_hex((extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
                                  + interval '1 day') * 1000)::bigint), 12, '0')
    RETURNING *)
INSERT INTO run_events (id, run_id, type, payload, created_at)
SELECT id, run_id, type, payload, created_at FROM moved;
-- A partition's primary key must be the parent's (run_id, id), which also serves what
-- run_events_run did.
ALTER TABLE run_events_legacy DROP CONSTRAINT run_events_pkey;
DROP INDEX IF EXISTS run_events_run;
ALTER TABLE run_events ATTACH PARTITION run_events_legacy FOR VALUES FROM (MINVALUE)
    TO (lpad(to_hex((extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
                     + interval '1 day') * 1000)::bigint), 12, '0'));
