-- durable schema v17: `runs_archive`, where finished runs go to be purged by whole day.
--
-- `runs` stays one unpartitioned table (claims, leases and the group commit read it by
-- status and readiness, and a partitioned `runs` made every such statement several times
-- dearer: docs/benchmarks.md, "Retention on partitioned history"). A finished run is
-- moved, some days after it was created, into this table, which is range-partitioned
-- by run id per UTC day exactly like `events` and `run_events` (durable/store/
-- pg_partitions.py creates and drops the three tables' day partitions together), so
-- retention drops a day of runs with its history instead of deleting rows.
-- durable/store/pg_archive.py says which runs move, when, and how readers see them.
--
-- The columns are those of `runs` in the same order (the move is `INSERT ... SELECT *`
-- of the deleted rows): a migration that adds a column to `runs` adds it here too
-- (tests/store/test_pg_archive.py checks that the two tables agree).
CREATE TABLE runs_archive (LIKE runs INCLUDING DEFAULTS) PARTITION BY RANGE (id);
ALTER TABLE runs_archive ADD CONSTRAINT runs_archive_pkey PRIMARY KEY (id);
-- Readers of finished runs: the runs list (newest first) and a parent's children.
CREATE INDEX runs_archive_created_id ON runs_archive (created_at, id);
CREATE INDEX runs_archive_parent ON runs_archive (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE TABLE runs_archive_default PARTITION OF runs_archive DEFAULT;
