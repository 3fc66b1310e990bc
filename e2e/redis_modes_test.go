package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// The same binaries run on a Redis watched by Sentinel and on a Redis
// Cluster, chosen by TOKENLYSIS_REDIS_MODE (DESIGN.md: production runs on
// "Redis (Sentinel or Cluster) by setting environment variables"). Each
// test runs a probe through the whole path, its events followed live over
// SSE, on real servers of its own.

// TestStackOnRedisSentinel: the URL names only the sentinel, which tells
// the programs where the master is.
func TestStackOnRedisSentinel(t *testing.T) {
	t.Parallel()
	master := startOwnRedis(t)
	sentinel := startOwnSentinel(t, "tokenlysis-master", master.port)
	s := newStack(t, stackConfig{
		RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=tokenlysis-master", sentinel),
		Env:      map[string]string{"TOKENLYSIS_REDIS_MODE": "sentinel"},
	})
	runProbeLive(t, s)
	// The queues are on the master the sentinel named.
	rdb := redis.NewClient(&redis.Options{Addr: master.addr()})
	defer rdb.Close()
	if n, err := rdb.Exists(context.Background(), "asynq:queues").Result(); err != nil || n != 1 {
		t.Fatalf("asynq's queue set on the master: %d, %v", n, err)
	}
}

// TestStackFollowsASentinelFailover: the master dies in the middle of a
// job; the sentinel promotes its replica, and the programs, which know
// only the sentinel, carry on with it: the job ends succeeded, once.
func TestStackFollowsASentinelFailover(t *testing.T) {
	t.Parallel()
	master := startOwnRedis(t)
	replica := startOwnRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: replica.addr()})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.SlaveOf(ctx, "127.0.0.1", strconv.Itoa(master.port)).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(50 * time.Millisecond) {
		info, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never synced:\n%s", info)
		}
	}
	sentinel := startOwnSentinel(t, "failover-master", master.port, "sentinel down-after-milliseconds failover-master 1000", "sentinel failover-timeout failover-master 5000")
	s := newStack(t, stackConfig{
		RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=failover-master", sentinel),
		Env:      map[string]string{"TOKENLYSIS_REDIS_MODE": "sentinel", "TOKENLYSIS_RECONCILE_INTERVAL": "1s", "TOKENLYSIS_RECONCILE_GRACE": "2s"},
	})
	j := s.submitProbe(probe{Steps: 30, StepMS: 300}, nil)
	s.waitJob(j.ID, "running", 30*time.Second, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
	master.kill()
	done := s.waitFinished(j.ID, 90*time.Second)
	if done.Status != tokenlysis.JobSucceeded {
		t.Fatalf("job %s ended %s after the failover: %s", j.ID, done.Status, done.Error)
	}
	if info, _ := rc.Info(ctx, "replication").Result(); !strings.Contains(info, "role:master") {
		t.Fatalf("the replica was not promoted:\n%s", info)
	}
	evs := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
	if got := count(evs, tokenlysis.EventSucceeded); got != 1 {
		t.Fatalf("%d succeeded events: %s", got, kinds(evs))
	}
	t.Logf("events across the failover: %s", kinds(evs))
}

// TestStackOnRedisCluster: three masters sharing the 16384 slots; asynq's
// keys, Tokenlysis' own keys and the events channel spread over them.
func TestStackOnRedisCluster(t *testing.T) {
	t.Parallel()
	ports := startOwnCluster(t, 3)
	url := fmt.Sprintf("redis://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d", ports[0], ports[1], ports[2])
	s := newStack(t, stackConfig{RedisURL: url, Env: map[string]string{"TOKENLYSIS_REDIS_MODE": "cluster",
		"TOKENLYSIS_RECONCILE_INTERVAL": "200ms", "TOKENLYSIS_RECONCILE_GRACE": "100ms"}})
	runProbeLive(t, s)
	// A command over keys of several slots fails on a cluster: none was
	// logged (the reconciler, asynq's heartbeats and its forwarder ran
	// meanwhile).
	time.Sleep(2 * time.Second)
	for _, p := range []*proc{s.api, s.worker} {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"CROSSSLOT", "MOVED", "ASK ", "level=ERROR"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s logged %q:\n%s", p.logPath, bad, tail(p.logPath, 30))
			}
		}
	}
}

// runProbeLive submits a 3-step probe and follows it over SSE to its end.
func runProbeLive(t *testing.T, s *stack) {
	t.Helper()
	j := s.submitProbe(probe{Steps: 3, StepMS: 100}, nil)
	evs := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
	wantContiguous(t, "the probe's events", evs, 1, tokenlysis.EventSucceeded)
	if got := count(evs, tokenlysis.EventProgress); got != 3 {
		t.Fatalf("%d progress events, want 3: %s", got, kinds(evs))
	}
	if done := s.job(j.ID); done.Status != tokenlysis.JobSucceeded || done.Attempts != 1 {
		t.Fatalf("job %s after its stream: %s, %d attempts", j.ID, done.Status, done.Attempts)
	}
}

// startOwnSentinel starts a Redis Sentinel (redis-server in sentinel mode)
// that watches the master at masterPort under name, and returns its port
// once it knows the master.
func startOwnSentinel(t *testing.T, name string, masterPort int, extra ...string) int {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf") // sentinel rewrites it: it must be its own
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n", port, filepath.Dir(conf), name, masterPort)
	if len(extra) == 0 {
		extra = []string{"sentinel down-after-milliseconds " + name + " 5000"}
	}
	text += strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, "sentinel", path, os.Environ(), nil, conf, "--sentinel")
	waitTCP(t, "127.0.0.1:"+strconv.Itoa(port), startTimeout)
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer sc.Close()
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(50 * time.Millisecond) {
		addr, err := sc.GetMasterAddrByName(context.Background(), name).Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(masterPort) {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel does not know master %s: %v %v", name, addr, err)
		}
	}
}

// startOwnCluster starts n Redis servers in cluster mode, splits the
// slots between them, joins them and returns their ports once the cluster
// is up.
func startOwnCluster(t *testing.T, n int) []int {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	dir := t.TempDir()
	ports := make([]int, n)
	clients := make([]*redis.Client, n)
	for i := range ports {
		ports[i] = freePort(t)
		startProc(t, fmt.Sprintf("cluster-node-%d", i), path, os.Environ(), nil,
			"--port", strconv.Itoa(ports[i]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--cluster-node-timeout", "5000", "--dir", dir)
		waitTCP(t, "127.0.0.1:"+strconv.Itoa(ports[i]), startTimeout)
		clients[i] = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(ports[i])})
		defer clients[i].Close()
	}
	ctx := context.Background()
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("node %d: CLUSTER ADDSLOTSRANGE %d %d: %v", i, lo, hi, err)
		}
		if i > 0 {
			if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(ports[i])).Err(); err != nil {
				t.Fatalf("CLUSTER MEET node %d: %v", i, err)
			}
		}
	}
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(100 * time.Millisecond) {
		up := 0
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				up++
			}
		}
		if up == n {
			return ports
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not up after %v", startTimeout)
		}
	}
}
