-- 001_core: users, jobs and job events (SQLite).
-- Times are TIMESTAMP columns holding text written by modernc.org/sqlite
-- with _time_format=sqlite; JSON is TEXT.

-- +migrate Up
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT NOT NULL UNIQUE,
    full_name  TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE jobs (
    id              TEXT NOT NULL PRIMARY KEY,
    type            TEXT NOT NULL,
    queue           TEXT NOT NULL,
    params          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled')),
    percent         INTEGER NOT NULL DEFAULT 0,
    message         TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_retry       INTEGER NOT NULL DEFAULT 0,
    result          TEXT NULL,
    error           TEXT NOT NULL DEFAULT '',
    submitted_by    TEXT NOT NULL,
    idempotency_key TEXT NULL,
    dedupe_key      TEXT NULL,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    started_at      TIMESTAMP NULL,
    finished_at     TIMESTAMP NULL
);

CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (submitted_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX jobs_dedupe_key_active_idx ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');
CREATE INDEX jobs_submitted_by_id_idx ON jobs (submitted_by, id);
CREATE INDEX jobs_status_id_idx ON jobs (status, id);
CREATE INDEX jobs_type_id_idx ON jobs (type, id);

CREATE TABLE job_events (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    percent    INTEGER NOT NULL DEFAULT 0,
    message    TEXT NOT NULL DEFAULT '',
    data       TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- +migrate Down
DROP TABLE job_events;
DROP TABLE jobs;
DROP TABLE users;
