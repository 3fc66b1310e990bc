package job_test

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// A registry with a queue prefix names every asynq queue with it: the
// queue a job records, the queues the worker serves, and the queue of a
// job recorded before the prefix (moved to the prefixed one).
func TestRegistryQueuePrefix(t *testing.T) {
	valid := func(p json.RawMessage) (json.RawMessage, error) { return p, nil }
	base, err := job.NewRegistry(
		job.Spec{Type: "a:run", Permission: authz.JobsSubmit, Validate: valid},
		job.Spec{Type: "b:run", Queue: job.QueueLow, Permission: authz.JobsSubmit, Validate: valid})
	if err != nil {
		t.Fatal(err)
	}
	reg := base.WithQueuePrefix("dep1:")
	a, _ := reg.Lookup("a:run")
	b, _ := reg.Lookup("b:run")
	if reg.Queue(a) != "dep1:default" || reg.Queue(b) != "dep1:low" || base.Queue(a) != "default" {
		t.Fatalf("queues %q %q, unprefixed %q", reg.Queue(a), reg.Queue(b), base.Queue(a))
	}
	want := map[string]int{"dep1:critical": 6, "dep1:default": 3, "dep1:low": 1}
	if got := reg.QueueWeights(); !maps.Equal(got, want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
	for _, tc := range []struct {
		j    tokenlysis.Job
		want string
	}{
		{tokenlysis.Job{Type: "b:run", Queue: "dep1:low"}, "dep1:low"},
		{tokenlysis.Job{Type: "b:run", Queue: "low"}, "dep1:low"},       // queued before the prefix
		{tokenlysis.Job{Type: "gone:run", Queue: "default"}, "default"}, // a type no longer registered
	} {
		if got := reg.TaskQueue(tc.j); got != tc.want {
			t.Errorf("TaskQueue(%s on %q) = %q, want %q", tc.j.Type, tc.j.Queue, got, tc.want)
		}
	}
}
