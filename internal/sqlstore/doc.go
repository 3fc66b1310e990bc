// Package sqlstore keeps the durable records (users, jobs and their event
// logs) in SQL through sqlx, on SQLite and PostgreSQL alike. Queries are
// hand-written next to the method that runs them with `?` placeholders,
// rebound for the engine. Exported methods own their transaction.
//
// Every job transition is one transaction that updates the job row and
// appends one event whose sequence number is taken from jobs.last_seq, so a
// job's events are numbered 1, 2, 3… with no gaps and no duplicates even
// when the API and a worker write at the same time.
package sqlstore
