package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/job"
)

// TypeRecalculate recomputes indicators and scores. Until the analytics
// engine is wired in, its handler fails honestly with "not implemented".
const TypeRecalculate = "scores:recalculate"

// RecalculatePayload are the recalculation's params.
type RecalculatePayload struct {
	Coins []string `json:"coins,omitempty"`
	Since string   `json:"since,omitempty"` // YYYY-MM-DD
}

// RecalculateSpec is the job type of the recalculation.
func RecalculateSpec() job.Spec {
	return job.Spec{
		Type: TypeRecalculate, Queue: job.QueueDefault, Permission: authz.AnalyticsSubmit, MaxRetry: 3,
		Timeout: time.Hour, Validate: validateRecalculate,
	}
}

func validateRecalculate(raw json.RawMessage) (json.RawMessage, error) {
	var p RecalculatePayload
	if err := job.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// NotImplementedHandler is the placeholder handler of job types whose
// engine is not wired in yet. It fails without retrying.
type NotImplementedHandler struct{}

// ProcessTask fails with "not implemented".
func (NotImplementedHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	return fmt.Errorf("%s: not implemented: %w", t.Type(), asynq.SkipRetry)
}
