package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/testbed"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// rssResult is the memory part.
type rssResult struct {
	Engine        database.Dialect
	Streams       int
	Subscriptions int   // subscriptions the streams opened, as the API counts them (its metric, less its own)
	BeforeKB      int64 // VmRSS with the jobs submitted, before any stream
	AfterKB       int64 // VmRSS with every stream open
	PeakKB        int64 // VmHWM at the end
	PerStreamKB   float64
	OpenTime      time.Duration
	MetricsBefore apiMetrics // the Go runtime's view, before the streams
	Metrics       apiMetrics // and with them open
	Pass          bool
	Load          string
}

func measureRSS(ctx context.Context, cfg config, stdout io.Writer) (_ rssResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := raiseFileLimit(uint64(cfg.streams) + 1024); err != nil {
		return rssResult{}, err
	}
	bed, err := testbed.New(ctx, testbed.Config{Dialect: cfg.rssEngine, PostgresURL: cfg.postgresURL, RedisURL: cfg.redisURL})
	if err != nil {
		return rssResult{}, err
	}
	defer func() { err = errors.Join(err, bed.Close(context.WithoutCancel(ctx))) }()

	bin := cfg.apiBin
	if bin == "" {
		if bin, err = buildAPI(ctx, bed.Dir); err != nil {
			return rssResult{}, err
		}
	}
	proc, err := startAPIProcess(ctx, bin, bed, cfg.apiEnv)
	if err != nil {
		return rssResult{}, err
	}
	defer func() { err = errors.Join(err, proc.stop()) }()
	fmt.Fprintf(stdout, "api pid %d at %s %s\n", proc.pid, proc.url, strings.Join(cfg.apiEnv, " "))

	key, err := auth.LoadOrCreateDevKey(filepath.Join(proc.dataDir, "dev-signing-key.pem"))
	if err != nil {
		return rssResult{}, err
	}
	issuer := auth.NewDevIssuer(key, proc.url, testbed.Audience)
	userToken, err := issuer.Mint(auth.TokenRequest{Subject: "bench", Roles: []string{authz.RoleUser}, TTL: time.Hour})
	if err != nil {
		return rssResult{}, err
	}
	adminToken, err := issuer.Mint(auth.TokenRequest{Subject: "bench-admin", Roles: []string{authz.RoleAdmin}, TTL: time.Hour})
	if err != nil {
		return rssResult{}, err
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ids, err := submitJobs(ctx, client, proc.url, "Bearer "+userToken, cfg.streams)
	if err != nil {
		return rssResult{}, err
	}

	r := rssResult{Engine: cfg.rssEngine, Streams: cfg.streams}
	time.Sleep(cfg.settle)
	if r.BeforeKB, _, err = readRSS(proc.pid); err != nil {
		return r, err
	}
	if r.MetricsBefore, err = readMetrics(ctx, client, proc.url, "Bearer "+adminToken); err != nil {
		return r, err
	}

	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	start := time.Now()
	var opened, failed atomic.Int64
	var firstErr atomic.Value
	allOpen := make(chan struct{})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100) // at most 100 connections being opened at once
	for _, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return r, ctx.Err()
		}
		wg.Go(func() {
			released := false
			release := func() {
				if !released {
					released = true
					<-sem
				}
			}
			defer release()
			err := readEvents(streamCtx, client, proc.url+"/api/jobs/"+id+"/events", "Bearer "+userToken, func(tokenlysis.JobEvent) bool {
				if !released {
					release()
					if opened.Add(1) == int64(len(ids)) {
						close(allOpen)
					}
				}
				return true // stay open: the job stays queued
			})
			if err != nil && streamCtx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				stopStreams()
			}
		})
	}
	select {
	case <-allOpen:
	case <-streamCtx.Done():
		stopStreams()
		wg.Wait()
		return r, fmt.Errorf("%d of %d streams open, %d failed (first: %v): %w", opened.Load(), len(ids), failed.Load(), firstErr.Load(), context.Cause(streamCtx))
	}
	r.OpenTime = time.Since(start)
	time.Sleep(cfg.settle)
	if r.AfterKB, r.PeakKB, err = readRSS(proc.pid); err != nil {
		return r, err
	}
	if r.Metrics, err = readMetrics(ctx, client, proc.url, "Bearer "+adminToken); err != nil {
		return r, err
	}
	// The API keeps subscriptions of its own (the score cache listens for
	// recalculations): count only what the streams added.
	r.Subscriptions = r.Metrics.Subscriptions - r.MetricsBefore.Subscriptions
	stopStreams()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return r, fmt.Errorf("%d streams failed (first: %v)", n, firstErr.Load())
	}
	r.PerStreamKB = float64(r.AfterKB-r.BeforeKB) / float64(r.Streams)
	r.Pass = r.AfterKB*1024 < targetRSS && r.Subscriptions == r.Streams
	r.Load = testbed.Load()
	if r.Subscriptions != r.Streams {
		return r, fmt.Errorf("the api counts %d open subscriptions, want %d", r.Subscriptions, r.Streams)
	}
	return r, nil
}

// raiseFileLimit makes sure this process may hold n descriptors.
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		lim.Max = n // needs privileges; fails clearly otherwise
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d (hard limit %d): %w", n, lim.Max, err)
	}
	return nil
}

// buildAPI builds cmd/api into dir.
func buildAPI(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bin", "api")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tokenlysis/tokenlysis/cmd/api")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/api: %w\n%s", err, out)
	}
	return bin, nil
}

// apiProcess is the api binary running.
type apiProcess struct {
	cmd     *exec.Cmd
	pid     int
	url     string
	dataDir string
	stderr  *tailBuffer
}

// startAPIProcess runs bin on the bed and waits for its "listening" line.
func startAPIProcess(ctx context.Context, bin string, bed *testbed.Bed, extraEnv []string) (*apiProcess, error) {
	p := &apiProcess{dataDir: filepath.Join(bed.Dir, "api"), stderr: &tailBuffer{max: 4096}}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENLYSIS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"TOKENLYSIS_DATA_DIR="+p.dataDir,
		"TOKENLYSIS_DATABASE_URL="+bed.DatabaseURL,
		"TOKENLYSIS_REDIS_URL="+bed.RedisURL,
		"TOKENLYSIS_REDIS_PREFIX="+bed.Prefix,
		"TOKENLYSIS_HTTP_ADDR=127.0.0.1:0",
		"TOKENLYSIS_LOG_LEVEL=warn",
		"TOKENLYSIS_SHUTDOWN_TIMEOUT=5s",
	)
	env = append(env, extraEnv...)
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.pid = p.cmd.Process.Pid
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		const prefix = "tokenlysis api listening on "
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				urlc <- strings.TrimSpace(u)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.url = <-urlc:
		return p, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("the api did not say where it listens; stderr: %s", p.stderr)
}

// stop ends the api with SIGTERM (SIGKILL after 10 s).
func (p *apiProcess) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("api exited: %w; stderr: %s", err, p.stderr)
		}
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("api did not stop on SIGTERM within 10 s")
	}
}

// submitJobs submits n no-op probes over HTTP, 16 at a time.
func submitJobs(ctx context.Context, client *http.Client, baseURL, authHeader string, n int) ([]string, error) {
	ids := make([]string, n)
	var next atomic.Int64
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				id, err := submitOne(ctx, client, baseURL, authHeader)
				if err != nil {
					errc <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return ids, nil
}

func submitOne(ctx context.Context, client *http.Client, baseURL, authHeader string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/jobs",
		strings.NewReader(`{"type":"system:probe","params":{"steps":1,"step_ms":0}}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", authHeader)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /api/jobs: status %d: %s", resp.StatusCode, b)
	}
	id := jsonField(b, "id")
	if id == "" {
		return "", fmt.Errorf("POST /api/jobs: no id in %s", b)
	}
	return id, nil
}

// jsonField returns the string field name of a JSON object, or "".
func jsonField(b []byte, name string) string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}

// apiMetrics are the figures read from the API's /metrics.
type apiMetrics struct {
	Subscriptions int   // tokenlysis_event_subscriptions
	Goroutines    int   // go_goroutines
	HeapInuseKB   int64 // go_memstats_heap_inuse_bytes
	StackInuseKB  int64 // go_memstats_stack_inuse_bytes
	SysKB         int64 // go_memstats_sys_bytes
}

// readMetrics reads the API's gauges of interest from /metrics.
func readMetrics(ctx context.Context, client *http.Client, baseURL, authHeader string) (apiMetrics, error) {
	var m apiMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return m, err
	}
	req.Header.Set("Authorization", authHeader)
	resp, err := client.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "tokenlysis_event_subscriptions":
			m.Subscriptions, found = int(f), found+1
		case "go_goroutines":
			m.Goroutines = int(f)
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuseKB = int64(f) >> 10
		case "go_memstats_stack_inuse_bytes":
			m.StackInuseKB = int64(f) >> 10
		case "go_memstats_sys_bytes":
			m.SysKB = int64(f) >> 10
		}
	}
	if found == 0 {
		return m, fmt.Errorf("GET /metrics: no tokenlysis_event_subscriptions (%v)", sc.Err())
	}
	return m, nil
}

// readRSS returns VmRSS and VmHWM of process pid, in KiB.
func readRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, err = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			hwm, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, f[0], err)
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return rss, hwm, nil
}

func printRSS(w io.Writer, r rssResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tstreams\tRSS before MB\tRSS after MB\tpeak MB\tper stream KB\topen time\ttarget\tresult\tload")
	fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t< %d MB\t%s\t%s\n", r.Engine, r.Streams,
		float64(r.BeforeKB)/1024, float64(r.AfterKB)/1024, float64(r.PeakKB)/1024, r.PerStreamKB,
		r.OpenTime.Round(time.Millisecond), targetRSS>>20, verdict(r.Pass), r.Load)
	tw.Flush()
	b, a := r.MetricsBefore, r.Metrics
	fmt.Fprintf(w, "api runtime before → after: goroutines %d → %d, heap in use %.1f → %.1f MB, stacks %.1f → %.1f MB, Go sys %.1f → %.1f MB\n",
		b.Goroutines, a.Goroutines, float64(b.HeapInuseKB)/1024, float64(a.HeapInuseKB)/1024,
		float64(b.StackInuseKB)/1024, float64(a.StackInuseKB)/1024, float64(b.SysKB)/1024, float64(a.SysKB)/1024)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
