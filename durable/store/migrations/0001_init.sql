-- durable schema v1: runs, their append-only history, the inbox, hooks and schedules.
CREATE TABLE IF NOT EXISTS runs (
    id              text PRIMARY KEY,
    workflow        text NOT NULL,
    version         text NOT NULL,
    status          text NOT NULL,
    input           bytea,
    output          bytea,
    error           text,
    parent_run_id   text,
    idempotency_key text UNIQUE,
    ready_at        timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    fence           bigint NOT NULL DEFAULT 0,
    wakeups         bigint NOT NULL DEFAULT 0,
    waiting_on      text[] NOT NULL DEFAULT '{}',
    pending         bytea,
    deadline        timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz
);

-- The claim query only ever looks at runnable or leased rows; partial indexes keep it
-- fast however many finished runs the table holds.
CREATE INDEX IF NOT EXISTS runs_ready ON runs (ready_at) WHERE status IN ('pending', 'suspended');
CREATE INDEX IF NOT EXISTS runs_leased ON runs (lease_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at DESC, id);
CREATE INDEX IF NOT EXISTS runs_workflow_created ON runs (workflow, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS events (
    run_id     text NOT NULL,
    seq        integer NOT NULL,
    pos        integer NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    payload    bytea,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE IF NOT EXISTS inbox (
    id         bigserial PRIMARY KEY,
    run_id     text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    payload    bytea,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_lookup ON inbox (run_id, kind, name, id);

CREATE TABLE IF NOT EXISTS hooks (
    token      text PRIMARY KEY,
    run_id     text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE TABLE IF NOT EXISTS schedules (
    name         text PRIMARY KEY,
    workflow     text NOT NULL,
    expression   text NOT NULL,
    timezone     text NOT NULL,
    next_fire_at timestamptz NOT NULL,
    paused       boolean NOT NULL DEFAULT false,
    active       boolean NOT NULL DEFAULT true,
    last_fired_at timestamptz,
    updated_at   timestamptz NOT NULL
);
