// Package tasks holds the job types the worker runs: their type names
// ("noun:verb"), payloads, validation (the job.Spec the API uses) and
// handlers. Handlers report progress with job.Report and never touch job
// status themselves: the worker's job.Runner middleware does.
package tasks
