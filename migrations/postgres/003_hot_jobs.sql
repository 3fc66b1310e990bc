-- 003_hot_jobs: make the update of a job row a HOT update (heap-only tuple)
-- and drop the per-event foreign key check (PostgreSQL).
--
-- Every transition rewrites the job row. PostgreSQL updates a row in place
-- on its page, without a new entry in every index (HOT), only when no column
-- that an index uses changes, counting the columns of a partial index's
-- WHERE. status changes on every transition, so no index of jobs may use
-- it:
--   - jobs_status_id_idx goes. The job list filtered by status and the
--     reconciler's query scan instead (see ListJobs and StaleJobs).
--   - The dedupe rule (at most one unfinished job per dedupe key) was a
--     unique index on dedupe_key WHERE status IN (unfinished). It is now a
--     unique index on active_dedupe_key, which equals dedupe_key while the
--     job is unfinished and is NULL once it is finished: the store writes it
--     on creation, clears it in every final transition and sets it again on
--     requeue. A job without a dedupe key keeps NULL there, so its updates
--     stay HOT. dedupe_key stays as the job's record, unindexed.
--
-- job_events loses its foreign key to jobs: it cost a check of jobs per
-- event inserted. Events are only inserted by the statement or transaction
-- that creates or updates their job, and whatever deletes jobs deletes
-- their events in the same transaction (sqlstore DeleteJob, PurgeFinished).
--
-- fillfactor 80 leaves a fifth of each new page of jobs free, so that the
-- updated row finds room on its page (HOT needs that too). It applies to
-- pages written from now on; a VACUUM FULL would apply it to the old ones.
--
-- Down restores the 001 schema: the events of jobs that no longer exist are
-- deleted before the foreign key comes back.

-- +migrate Up
DROP INDEX jobs_status_id_idx;

ALTER TABLE jobs ADD COLUMN active_dedupe_key TEXT NULL;
UPDATE jobs SET active_dedupe_key = dedupe_key
 WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');
DROP INDEX jobs_dedupe_key_active_idx;
CREATE UNIQUE INDEX jobs_active_dedupe_key_idx ON jobs (active_dedupe_key) WHERE active_dedupe_key IS NOT NULL;

ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;

ALTER TABLE jobs SET (fillfactor = 80);

-- +migrate Down
ALTER TABLE jobs RESET (fillfactor);

DELETE FROM job_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id);
ALTER TABLE job_events ADD CONSTRAINT job_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;

DROP INDEX jobs_active_dedupe_key_idx;
ALTER TABLE jobs DROP COLUMN active_dedupe_key;
CREATE UNIQUE INDEX jobs_dedupe_key_active_idx ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

CREATE INDEX jobs_status_id_idx ON jobs (status, id);
