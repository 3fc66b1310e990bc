package job

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/strictjson"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Queues, by priority.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// Spec describes a job type.
type Spec struct {
	Type       string           // "noun:verb", also the asynq task type
	Queue      string           // default QueueDefault
	Permission authz.Permission // needed to submit it
	MaxRetry   int              // default 3
	Timeout    time.Duration    // per attempt; default 30m
	// Validate decodes and checks params and returns their canonical JSON.
	// It returns *tokenlysis.Error values naming the field ("params.x").
	Validate func(params json.RawMessage) (json.RawMessage, error)
	// DedupeKey, when set, names the scope of a job: two jobs with the same
	// key are never queued or running at the same time.
	DedupeKey func(params json.RawMessage) string
}

// Registry is the set of job types the API accepts and the worker runs.
type Registry struct {
	specs       map[string]Spec
	queuePrefix string
}

// queueWeights are the worker's priorities: of ten dequeues, six look at
// critical first, three at default, one at low.
var queueWeights = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// WithQueuePrefix returns the registry with its asynq queues named prefix
// + name ("tokenlysis:default"): asynq's own keys cannot be prefixed, and
// two deployments on one Redis database (a Redis Cluster has only one)
// whose queues had the same names would take each other's tasks.
func (r *Registry) WithQueuePrefix(prefix string) *Registry {
	return &Registry{specs: r.specs, queuePrefix: prefix}
}

// Queue returns the asynq queue of spec s: its Queue, prefixed. A job
// records it as its queue.
func (r *Registry) Queue(s Spec) string { return r.queuePrefix + s.Queue }

// TaskQueue returns the asynq queue of job j's task: its type's queue
// under this registry's prefix (which a job of an earlier version, queued
// without a prefix, is moved to by the reconciler), or for a type the
// registry does not know the queue j records.
func (r *Registry) TaskQueue(j tokenlysis.Job) string {
	if s, ok := r.specs[j.Type]; ok {
		return r.Queue(s)
	}
	return j.Queue
}

// QueueWeights returns the asynq queues the worker serves, with their
// priorities (asynq.Config.Queues).
func (r *Registry) QueueWeights() map[string]int {
	w := make(map[string]int, len(queueWeights))
	for q, n := range queueWeights {
		w[r.queuePrefix+q] = n
	}
	return w
}

// NewRegistry returns a registry of specs, with defaults filled in.
func NewRegistry(specs ...Spec) (*Registry, error) {
	r := &Registry{specs: map[string]Spec{}}
	for _, s := range specs {
		if s.Type == "" || s.Validate == nil || s.Permission.Object == "" {
			return nil, fmt.Errorf("job registry: spec %q needs a type, a permission and a validator", s.Type)
		}
		if _, dup := r.specs[s.Type]; dup {
			return nil, fmt.Errorf("job registry: type %q registered twice", s.Type)
		}
		s.Queue = cmp.Or(s.Queue, QueueDefault)
		if s.MaxRetry == 0 {
			s.MaxRetry = 3
		}
		s.Timeout = cmp.Or(s.Timeout, 30*time.Minute)
		r.specs[s.Type] = s
	}
	return r, nil
}

// Lookup returns the spec of typ.
// Errors: EINVALID (field "type") for an unknown type.
func (r *Registry) Lookup(typ string) (Spec, error) {
	s, ok := r.specs[typ]
	if !ok {
		return s, tokenlysis.FieldErrorf("type", "Unknown job type %q; known types: %s.", typ, strings.Join(r.Types(), ", "))
	}
	return s, nil
}

// Types returns the registered types, sorted.
func (r *Registry) Types() []string {
	types := make([]string, 0, len(r.specs))
	for t := range r.specs {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// DecodeParams strictly decodes params into v: unknown fields, trailing
// data and wrong types are EINVALID errors naming the field as
// "params.<name>". Empty params decode as {}.
func DecodeParams(params json.RawMessage, v any) error {
	if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		params = json.RawMessage("{}")
	}
	err := strictjson.Decode(bytes.NewReader(params), v)
	var decErr *strictjson.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &decErr):
		field := "params"
		if decErr.Field != "" {
			field += "." + decErr.Field
		}
		return tokenlysis.FieldErrorf(field, "%s", decErr.Message)
	default:
		return tokenlysis.FieldErrorf("params", "Must be a JSON object: %s.", err.Error())
	}
}
