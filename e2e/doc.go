// Package e2e holds end-to-end tests that run the real binaries (migrate,
// api, worker) as separate processes against real Redis and real SQLite or
// PostgreSQL, and prove the job path's promises from the outside: a worker
// killed mid-job does not lose or duplicate the job, Redis or the database
// going away gives 503s (never 500s or hangs) and the system recovers by
// itself, SSE streams resume exactly, canceled jobs stay canceled, and
// failing jobs end failed after their retries.
//
// The tests build the three binaries once (TestMain), give every test its
// own data directory, fresh database, Redis database index (6–9 on the
// shared Redis, or a Redis server of the test's own) and event channel
// prefix, and kill every process they start.
package e2e
