-- 005_run_token: the run token of a job's current attempt.
--
-- An attempt's start sets run_id to a token of its own, and its later
-- writes (progress, retrying, success, failure) apply only while run_id is
-- still that token. Before, they only checked that the job was running: an
-- attempt that went on after its job was canceled and retried (asynq
-- forgets a canceled task's handler at once), or after its lease expired
-- and the task was delivered again, wrote over the new attempt, and could
-- end the new run with its own result. '' is no attempt's (a write that
-- no attempt owns, such as the reconciler's, passes); run_id is not
-- indexed, so a job's updates stay HOT on PostgreSQL.

-- +migrate Up
ALTER TABLE jobs ADD COLUMN run_id TEXT NOT NULL DEFAULT '';

-- +migrate Down
ALTER TABLE jobs DROP COLUMN run_id;
