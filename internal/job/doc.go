// Package job owns the life of a job across its two records: the SQL row
// users query and the asynq task that executes it (same ID).
//
//   - Registry holds the job types: queue, permission, retries, timeout,
//     parameter validation and an optional dedupe key.
//   - Service submits, cancels and retries jobs for the API: it validates,
//     writes the row, enqueues the task, and undoes the row when the task
//     cannot be enqueued, so nothing is half-written.
//   - Runner is the one asynq middleware of the worker: it moves the row
//     through running / retrying / succeeded / failed, appends events,
//     captures panics and records the final failure after the last retry.
//     A success is committed after asynq hears of it (Runner.Wait waits for
//     those still going); a failure before. Handlers only call Report and
//     SetResult.
//   - Announcer publishes the events the SQL store commits, each commit's
//     together, on the events bus that the API's streams follow.
package job
