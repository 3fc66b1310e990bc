package e2e

import (
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Two deployments on one Redis database (a Redis Cluster has only one),
// told apart by TOKENLYSIS_REDIS_PREFIX, keep to their own jobs: their
// queues are named with the prefix. With asynq's fixed queue names each
// deployment's worker took the other's tasks and dropped them (their jobs
// are not in its database), so jobs stayed queued.
func TestTwoDeploymentsShareARedis(t *testing.T) {
	t.Parallel()
	r := startOwnRedis(t)
	a := newStack(t, stackConfig{RedisURL: r.url(), Env: map[string]string{"TOKENLYSIS_REDIS_PREFIX": "deploy-a:"}})
	b := newStack(t, stackConfig{RedisURL: r.url(), Env: map[string]string{"TOKENLYSIS_REDIS_PREFIX": "deploy-b:"}})
	var jobs [2][]tokenlysis.Job
	for i := 0; i < 10; i++ {
		jobs[0] = append(jobs[0], a.submitProbe(probe{Steps: 1, StepMS: 20}, nil))
		jobs[1] = append(jobs[1], b.submitProbe(probe{Steps: 1, StepMS: 20}, nil))
	}
	for i, s := range []*stack{a, b} {
		for _, j := range jobs[i] {
			if j.Queue != []string{"deploy-a:", "deploy-b:"}[i]+"default" {
				t.Fatalf("job %s is on queue %q", j.ID, j.Queue)
			}
			if done := s.waitFinished(j.ID, 30*time.Second); done.Status != tokenlysis.JobSucceeded || done.Attempts != 1 {
				t.Fatalf("deployment %d, job %s: %s after %d attempts", i, j.ID, done.Status, done.Attempts)
			}
		}
	}
}
