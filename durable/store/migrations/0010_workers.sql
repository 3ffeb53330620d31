-- durable schema v10: worker heartbeats (issue 14).
--
-- Each worker process refreshes its row from its heartbeat loop, saying what it
-- serves: `durable runs show` and `handle.result()` timeouts use it to tell a pending
-- run nobody serves from one that waits its turn. A row counts while `expires_at` is
-- in the future; rows expired for over an hour are deleted by any worker's heartbeat.
CREATE TABLE IF NOT EXISTS workers (
    id         text PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    workflows  jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS workers_expires ON workers (expires_at);
