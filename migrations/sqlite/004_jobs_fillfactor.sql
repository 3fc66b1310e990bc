-- 004_jobs_fillfactor: nothing to do on SQLite, which has no fillfactor
-- (see postgres/004_jobs_fillfactor.sql); the file keeps both engines'
-- migrations numbered alike.
-- No schema change on this engine.

-- +migrate Up
SELECT 1;

-- +migrate Down
SELECT 1;
