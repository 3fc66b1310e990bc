-- 003_hot_jobs: no index of jobs uses status, and job_events has no
-- foreign key to jobs (SQLite). See postgres/003_hot_jobs.sql for why:
-- there it makes the update of a job row a HOT update; both engines keep
-- the same schema and the same store code.
--
-- The dedupe rule (at most one unfinished job per dedupe key) moves from a
-- unique index on dedupe_key WHERE status IN (unfinished) to a unique index
-- on active_dedupe_key, which equals dedupe_key while the job is unfinished
-- and is NULL once it is finished (the store keeps it so).
--
-- SQLite cannot drop a foreign key: job_events is rebuilt. The old table is
-- renamed aside, the new one is created under the final name, the rows are
-- copied and the old table dropped. (SQLite's documented order creates the
-- new table under another name and renames it last, which stores the name
-- quoted in the schema, CREATE TABLE "job_events": then Down could not give
-- back 001's schema text exactly. Renaming aside first is safe here because
-- no view, trigger or other table refers to job_events.) The primary key
-- (job_id, seq) is declared in the new table, as in 001.
--
-- sql-migrate runs each migration in a transaction, where PRAGMA
-- foreign_keys cannot be changed; it need not be: dropping the child table
-- of a foreign key checks nothing, and Down copies only the events whose
-- job still exists (the others could not satisfy the restored key).

-- +migrate Up
DROP INDEX jobs_status_id_idx;

ALTER TABLE jobs ADD COLUMN active_dedupe_key TEXT NULL;
UPDATE jobs SET active_dedupe_key = dedupe_key
 WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');
DROP INDEX jobs_dedupe_key_active_idx;
CREATE UNIQUE INDEX jobs_active_dedupe_key_idx ON jobs (active_dedupe_key) WHERE active_dedupe_key IS NOT NULL;

ALTER TABLE job_events RENAME TO job_events_old;
CREATE TABLE job_events (
    job_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    percent    INTEGER NOT NULL DEFAULT 0,
    message    TEXT NOT NULL DEFAULT '',
    data       TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
SELECT job_id, seq, kind, percent, message, data, created_at FROM job_events_old;
DROP TABLE job_events_old;

-- +migrate Down
ALTER TABLE job_events RENAME TO job_events_old;
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
INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
SELECT job_id, seq, kind, percent, message, data, created_at FROM job_events_old e
 WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id);
DROP TABLE job_events_old;

DROP INDEX jobs_active_dedupe_key_idx;
ALTER TABLE jobs DROP COLUMN active_dedupe_key;
CREATE UNIQUE INDEX jobs_dedupe_key_active_idx ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

CREATE INDEX jobs_status_id_idx ON jobs (status, id);
