package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// TypeProbe is the operators' canary: it walks the whole job path and
// reports progress at each step.
const TypeProbe = "system:probe"

// ProbePayload are the probe's params. FailAt, when set (1-based), makes
// that step fail on every attempt.
type ProbePayload struct {
	Steps  int  `json:"steps"`
	StepMS int  `json:"step_ms"`
	FailAt *int `json:"fail_at,omitempty"`
}

// Probe limits.
const (
	maxProbeSteps  = 10_000
	maxProbeStepMS = 60_000
	probeTimeout   = 2 * time.Hour
	maxProbeSleep  = probeTimeout - time.Minute // what the steps may sleep in all
)

// ProbeSpec is the job type of the probe.
func ProbeSpec() job.Spec {
	return job.Spec{
		Type: TypeProbe, Queue: job.QueueDefault, Permission: authz.JobsSubmit, MaxRetry: 3,
		Timeout: probeTimeout, Validate: validateProbe,
	}
}

func validateProbe(raw json.RawMessage) (json.RawMessage, error) {
	var p ProbePayload
	if err := job.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	switch {
	case p.Steps < 1 || p.Steps > maxProbeSteps:
		return nil, tokenlysis.FieldErrorf("params.steps", "Must be from 1 to %d.", maxProbeSteps)
	case p.StepMS < 0 || p.StepMS > maxProbeStepMS:
		return nil, tokenlysis.FieldErrorf("params.step_ms", "Must be from 0 to %d.", maxProbeStepMS)
	case p.FailAt != nil && (*p.FailAt < 1 || *p.FailAt > p.Steps):
		return nil, tokenlysis.FieldErrorf("params.fail_at", "Must be a step from 1 to steps (%d).", p.Steps)
	case time.Duration(p.Steps)*time.Duration(p.StepMS)*time.Millisecond > maxProbeSleep:
		return nil, tokenlysis.FieldErrorf("params.step_ms", "steps × step_ms must be at most %d ms (1 h 59 min: the probe's timeout is 2 h, and its reports take time too); it is %d ms.",
			maxProbeSleep.Milliseconds(), p.Steps*p.StepMS)
	}
	return json.Marshal(p)
}

// NewProbeTask returns a probe task, for callers that enqueue directly.
func NewProbeTask(p ProbePayload) (*asynq.Task, error) {
	b, err := validateProbe(mustJSON(p))
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeProbe, b), nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// ProbeHandler runs probes.
type ProbeHandler struct{}

// ProcessTask sleeps step_ms per step and reports each step.
func (ProbeHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ProbePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("probe payload: %v: %w", err, asynq.SkipRetry)
	}
	for step := 1; step <= p.Steps; step++ {
		if p.StepMS > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(p.StepMS) * time.Millisecond):
			}
		}
		if p.FailAt != nil && step == *p.FailAt {
			return fmt.Errorf("probe failed at step %d as asked", step)
		}
		if err := job.Report(ctx, step*100/p.Steps, fmt.Sprintf("step %d of %d", step, p.Steps), map[string]int{"step": step}); err != nil {
			return err
		}
	}
	return job.SetResult(ctx, map[string]int{"steps": p.Steps})
}
