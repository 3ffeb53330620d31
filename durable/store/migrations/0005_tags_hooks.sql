-- durable schema v5: run tags, hook metadata, outside hooks and outside custom events.
--
-- Tags are a jsonb object of string values; a GIN index (jsonb_path_ops: containment
-- only, smaller than the default) keeps `tags @> '{"k": "v"}'` fast over millions of
-- runs. ADD COLUMN with a constant default rewrites nothing (PostgreSQL >= 11).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS tags jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS runs_tags ON runs USING gin (tags jsonb_path_ops);

-- Keyset pages walk (created_at DESC, id DESC): a plain (created_at, id) btree scanned
-- backwards serves that order and the row comparison `(created_at, id) < ($1, $2)`;
-- it replaces runs_created, whose mixed order served neither.
CREATE INDEX IF NOT EXISTS runs_created_id ON runs (created_at, id);
DROP INDEX IF EXISTS runs_created;

-- `as_signal`: a hook created from outside the run (Runtime.create_hook) delivers its
-- payload as the signal `name` instead of to a ctx hook.
ALTER TABLE hooks ADD COLUMN IF NOT EXISTS metadata bytea;
ALTER TABLE hooks ADD COLUMN IF NOT EXISTS as_signal boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS hooks_run ON hooks (run_id);

-- Custom events emitted from outside a run (Runtime.emit_event). Kept apart from the
-- history so they never take a sequence number a worker holding the run is about to
-- use, and replay never meets an event the code did not produce.
CREATE TABLE IF NOT EXISTS run_events (
    id         bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    type       text NOT NULL,
    payload    bytea,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS run_events_run ON run_events (run_id, id);
