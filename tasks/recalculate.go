package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// TypeRecalculate recomputes indicators and scores.
const TypeRecalculate = "scores:recalculate"

// RecalculatePayload are the recalculation's params: the coins (none = the
// whole universe) and the first day to rewrite (none = full history).
type RecalculatePayload struct {
	Coins []string `json:"coins,omitempty"`
	Since string   `json:"since,omitempty"` // YYYY-MM-DD
}

func (p RecalculatePayload) scope() (recalc.Scope, error) {
	s := recalc.Scope{CoinIDs: p.Coins}
	if p.Since != "" {
		d, err := time.Parse(time.DateOnly, p.Since)
		if err != nil {
			return s, tokenlysis.FieldErrorf("params.since", "Must be a date YYYY-MM-DD.")
		}
		s.Since = d
	}
	return s, nil
}

// RecalculateSpec is the job type of the recalculation. Two
// recalculations of the same scope are never queued or running at once.
func RecalculateSpec() job.Spec {
	return job.Spec{
		Type: TypeRecalculate, Queue: job.QueueDefault, Permission: authz.AnalyticsSubmit, MaxRetry: 3,
		Timeout: time.Hour, Validate: validateRecalculate,
		DedupeKey: func(params json.RawMessage) string {
			var p RecalculatePayload
			json.Unmarshal(params, &p)
			s, _ := p.scope()
			return TypeRecalculate + ":" + s.Key()
		},
	}
}

func validateRecalculate(raw json.RawMessage) (json.RawMessage, error) {
	var p RecalculatePayload
	if err := job.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Coins != nil && len(p.Coins) == 0 {
		return nil, tokenlysis.FieldErrorf("params.coins", "Give at least one coin ID, or leave coins out for the whole universe.")
	}
	for i, c := range p.Coins {
		if c == "" || len(c) > 200 {
			return nil, tokenlysis.FieldErrorf(fmt.Sprintf("params.coins[%d]", i), "Must be a coin ID.")
		}
	}
	if _, err := p.scope(); err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// Notifier announces changes to live clients (an *events.Bus).
type Notifier interface {
	Publish(ctx context.Context, topic string, payload []byte) error
}

// RecalculateHandler runs the recalculation engine.
type RecalculateHandler struct {
	Engine   *recalc.Engine
	Notifier Notifier
}

// ProcessTask recomputes the scope, reporting progress per chunk of assets,
// and announces the new scores on tokenlysis.TopicScores.
func (h RecalculateHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p RecalculatePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("recalculate payload: %v: %w", err, asynq.SkipRetry)
	}
	scope, err := p.scope()
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	scope.JobID, _ = asynq.GetTaskID(ctx)
	var reportErr error
	res, err := h.Engine.Run(ctx, scope, func(done, total int, msg string) {
		if reportErr == nil && total > 0 {
			reportErr = job.Report(ctx, done*100/total, msg, map[string]int{"done": done, "total": total})
		}
	})
	if err != nil {
		if tokenlysis.ErrorCode(err) == tokenlysis.EINVALID || tokenlysis.ErrorCode(err) == tokenlysis.ENOTFOUND {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	if reportErr != nil {
		return reportErr
	}
	if h.Notifier != nil {
		msg, _ := json.Marshal(map[string]any{"run_id": res.RunID, "scope": res.Scope, "to": res.To.Format(time.DateOnly)})
		h.Notifier.Publish(context.WithoutCancel(ctx), tokenlysis.TopicScores, msg) // best effort: streams also poll
	}
	return job.SetResult(ctx, res)
}
