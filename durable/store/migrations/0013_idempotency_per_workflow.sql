-- durable schema v13: idempotency keys are scoped per workflow (issue 16).
--
-- Until now one key was unique across the whole schema, so the same key given with a
-- different workflow silently returned the other workflow's run. A key now names one
-- start of one workflow (by name, all versions alike): the same key with another
-- workflow starts that workflow's run. Run ids stay unique across workflows.
--
-- Partial: runs without a key (most of them) are not indexed. The new index is built
-- before the old constraint goes, so a key is never unguarded. Both statements are
-- plain DDL, propagated by Citus to a distributed schema's single shard.
CREATE UNIQUE INDEX IF NOT EXISTS runs_workflow_idempotency_key
    ON runs (workflow, idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_idempotency_key_key;
