package tokenlysis

import (
	"encoding/json"
	"time"
)

// JobStatus is the state of a job as users see it.
type JobStatus string

// Job statuses. Succeeded, failed and canceled are terminal.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobRetrying  JobStatus = "retrying"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobCanceled  JobStatus = "canceled"
)

// Terminal reports whether no further transition can happen from s.
func (s JobStatus) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCanceled
}

// Valid reports whether s is one of the known statuses.
func (s JobStatus) Valid() bool {
	switch s {
	case JobQueued, JobRunning, JobRetrying, JobSucceeded, JobFailed, JobCanceled:
		return true
	}
	return false
}

// Job is the durable record of a unit of background work. Its ID is also
// the ID of the asynq task that executes it.
type Job struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Queue          string          `json:"queue"`
	Params         json.RawMessage `json:"params"`
	Status         JobStatus       `json:"status"`
	Percent        int             `json:"percent"`
	Message        string          `json:"message"`
	Attempts       int             `json:"attempts"`
	MaxRetry       int             `json:"max_retry"`
	Result         json.RawMessage `json:"result"`
	Error          string          `json:"error"`
	SubmittedBy    string          `json:"submitted_by"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	DedupeKey      string          `json:"-"`
	LastSeq        int64           `json:"last_event_id"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	StartedAt      *time.Time      `json:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
}

// JobFilter selects jobs for listing. Nil fields do not filter. Jobs are
// listed newest first; After is the cursor (the ID of the last job of the
// previous page).
type JobFilter struct {
	SubmittedBy *string
	Status      *JobStatus
	Type        *string
	After       string
	Limit       int
}

// EventKind names what a job event reports.
type EventKind string

// Event kinds. The terminal kinds close a job's event stream.
const (
	EventQueued    EventKind = "queued"
	EventStarted   EventKind = "started"
	EventProgress  EventKind = "progress"
	EventArtifact  EventKind = "artifact"
	EventRetrying  EventKind = "retrying"
	EventSucceeded EventKind = "succeeded"
	EventFailed    EventKind = "failed"
	EventCanceled  EventKind = "canceled"
)

// Terminal reports whether k ends a job's event stream.
func (k EventKind) Terminal() bool {
	return k == EventSucceeded || k == EventFailed || k == EventCanceled
}

// JobEvent is one entry of a job's event log. Seq starts at 1 and grows by
// one per event of the same job, with no gaps; it is the SSE event ID.
type JobEvent struct {
	JobID     string          `json:"job_id"`
	Seq       int64           `json:"seq"`
	Kind      EventKind       `json:"kind"`
	Percent   int             `json:"percent"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// User is a person known to the system. Authentication is delegated to the
// OIDC issuer; this record holds profile data administrators manage.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	CreatedAt time.Time `json:"created_at"`
}
