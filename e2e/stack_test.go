package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Timeouts shared by the tests. The machine is small and shared, so they
// are generous; each is an upper bound, never a wait.
const (
	startTimeout   = 60 * time.Second // a process is up and answering
	requestTimeout = 10 * time.Second // one HTTP request, outage or not
	pollEvery      = 50 * time.Millisecond
)

// proc is a process a test started. It is killed when the test ends; when
// the test failed, the tail of its output is logged.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's error, set before done is closed
}

// startProc starts bin with args and env, its output going to a log file
// (and, for stdout, also to extraStdout when not nil).
func startProc(t *testing.T, name, path string, env []string, extraStdout io.Writer, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if extraStdout != nil {
		cmd.Stdout = io.MultiWriter(logFile, extraStdout)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("%s: start %s: %v", name, path, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("--- last lines of %s (%s) ---\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("%s: SIGKILL: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// signal sends sig to the process (SIGSTOP and SIGCONT to stall it).
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stackConfig says what a stack runs on. Zero fields mean SQLite and the
// shared Redis at index RedisDB.
type stackConfig struct {
	Dialect     database.Dialect  // default SQLite; ignored when DatabaseURL is set
	DatabaseURL string            // an empty database to migrate (a test's own PostgreSQL)
	RedisDB     int               // index on the shared Redis, flushed first (6–9 are ours)
	RedisURL    string            // a test's own Redis, instead of RedisDB
	Env         map[string]string // more TOKENLYSIS_* variables
}

// redisIndexLocks holds one token per Redis index of the e2e tests.
var redisIndexLocks = map[int]chan struct{}{
	6: make(chan struct{}, 1), 7: make(chan struct{}, 1), 8: make(chan struct{}, 1), 9: make(chan struct{}, 1),
}

// stack is a migrated database with an api and workers running on it.
type stack struct {
	t        *testing.T
	env      []string
	dbURL    string
	redisURL string
	api      *proc
	worker   *proc
	workers  int
	baseURL  string
	token    string
	client   *http.Client
}

// newStack migrates a fresh database and starts an api and one worker.
func newStack(t *testing.T, cfg stackConfig) *stack {
	t.Helper()
	s := &stack{t: t, client: &http.Client{Timeout: requestTimeout}}
	s.dbURL = cfg.DatabaseURL
	if s.dbURL == "" {
		s.dbURL = databasetest.NewURL(t, cmpDialect(cfg.Dialect))
	}
	s.redisURL = cfg.RedisURL
	if s.redisURL == "" {
		if cfg.RedisDB < 6 || cfg.RedisDB > 9 {
			t.Fatalf("newStack: Redis index %d is not one of the e2e indexes 6–9", cfg.RedisDB)
		}
		// Tests on the same index take turns: asynq's keys cannot be
		// prefixed, so they would share queues.
		lock := redisIndexLocks[cfg.RedisDB]
		lock <- struct{}{}
		t.Cleanup(func() { <-lock }) // registered first: runs after every process is killed
		rdb := redistest.Client(t, cfg.RedisDB, "e2e-setup")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// asynq's keys cannot be prefixed: leftovers of an earlier run
		// (a killed worker's active task) would be picked up otherwise.
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatalf("flush Redis index %d: %v", cfg.RedisDB, err)
		}
		s.redisURL = redistest.URL(t, cfg.RedisDB)
	}
	vars := map[string]string{
		"TOKENLYSIS_DATA_DIR":            t.TempDir(),
		"TOKENLYSIS_DATABASE_URL":        s.dbURL,
		"TOKENLYSIS_REDIS_URL":           s.redisURL,
		"TOKENLYSIS_REDIS_PREFIX":        redistest.Prefix(),
		"TOKENLYSIS_HTTP_ADDR":           "127.0.0.1:0",
		"TOKENLYSIS_WORKER_METRICS_ADDR": "off",
		"TOKENLYSIS_WORKER_CONCURRENCY":  "4",
		"TOKENLYSIS_RETRY_BASE_DELAY":    "100ms",
		"TOKENLYSIS_SHUTDOWN_TIMEOUT":    "2s",
	}
	for k, v := range cfg.Env {
		vars[k] = v
	}
	// Nothing TOKENLYSIS_* from the developer's shell leaks in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENLYSIS_") {
			s.env = append(s.env, kv)
		}
	}
	for k, v := range vars {
		s.env = append(s.env, k+"="+v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	migrate := exec.CommandContext(ctx, bin("migrate"), "up")
	migrate.Env = append(s.env, "TOKENLYSIS_MIGRATE_DATABASE_URL="+s.dbURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate up on %s: %v\n%s", database.MaskURL(s.dbURL), err, out)
	}

	s.startAPI()
	s.startWorker()
	s.waitReady(http.StatusOK, startTimeout)
	return s
}

func cmpDialect(d database.Dialect) database.Dialect {
	if d == "" {
		return database.SQLite
	}
	return d
}

var listeningRE = regexp.MustCompile(`tokenlysis api listening on (http://127\.0\.0\.1:\d+)`)

// startAPI starts the api on a free port, reads the port from its first
// line and mints an admin token with the same issuer address.
func (s *stack) startAPI() {
	t := s.t
	t.Helper()
	sniff := &lineSniffer{re: listeningRE, found: make(chan string, 1)}
	s.api = startProc(t, "api", bin("api"), s.env, sniff)
	select {
	case s.baseURL = <-sniff.found:
	case <-s.api.done:
		t.Fatalf("api exited before listening (%v):\n%s", s.api.err, tail(s.api.logPath, 40))
	case <-time.After(startTimeout):
		t.Fatalf("api did not print its address within %v:\n%s", startTimeout, tail(s.api.logPath, 40))
	}
	addr := strings.TrimPrefix(s.baseURL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	mint := exec.CommandContext(ctx, bin("api"), "token", "--role", "admin", "--subject", "e2e", "--ttl", "2h")
	mint.Env = append(append([]string(nil), s.env...), "TOKENLYSIS_HTTP_ADDR="+addr)
	var stderr bytes.Buffer
	mint.Stderr = &stderr
	out, err := mint.Output()
	if err != nil {
		t.Fatalf("api token: %v\n%s", err, stderr.String())
	}
	s.token = strings.TrimSpace(string(out))
}

// startWorker starts a worker (again, after kill).
func (s *stack) startWorker() *proc {
	s.t.Helper()
	s.workers++
	s.worker = startProc(s.t, fmt.Sprintf("worker-%d", s.workers), bin("worker"), s.env, nil)
	return s.worker
}

// lineSniffer sends the first submatch of re found in what is written.
type lineSniffer struct {
	mu    sync.Mutex
	buf   []byte
	re    *regexp.Regexp
	found chan string
	done  bool
}

func (l *lineSniffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	if m := l.re.FindSubmatch(l.buf); m != nil {
		l.done = true
		l.found <- string(m[1])
		l.buf = nil
	}
	return len(p), nil
}

// response is an HTTP answer, read whole.
type response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// do sends one request with the admin token; body, when not nil, is sent
// as JSON (a string or []byte as is). A transport error or a request that
// takes longer than requestTimeout fails the test.
func (s *stack) do(method, path string, body any) response {
	s.t.Helper()
	r, err := s.try(method, path, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is do returning the transport error instead of failing.
func (s *stack) try(method, path string, body any) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, s.baseURL+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return response{Elapsed: time.Since(start)}, fmt.Errorf("after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b, Elapsed: time.Since(start)}, nil
}

// problem is the part of an RFC 9457 problem body the tests check.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// wantProblem checks that r is a problem+json answer with this status and
// error code, and returns it.
func wantProblem(t *testing.T, what string, r response, status int, code string) problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body: %s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: Content-Type %q, want application/problem+json; body: %s", what, ct, r.Body)
	}
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("%s: problem body is not JSON (%v): %s", what, err, r.Body)
	}
	if p.Status != status || p.Code != code || p.Type == "" || p.Title == "" {
		t.Fatalf("%s: problem %+v, want status %d, code %q, a type and a title", what, p, status, code)
	}
	return p
}

// probe are a system:probe job's params.
type probe struct {
	Steps  int  `json:"steps"`
	StepMS int  `json:"step_ms"`
	FailAt *int `json:"fail_at,omitempty"`
}

type submitBody struct {
	Type     string `json:"type"`
	Params   probe  `json:"params"`
	MaxRetry *int   `json:"max_retry,omitempty"`
}

// submitProbe submits a probe and checks the 202 answer.
func (s *stack) submitProbe(p probe, maxRetry *int) tokenlysis.Job {
	s.t.Helper()
	r := s.do("POST", "/api/jobs", submitBody{Type: "system:probe", Params: p, MaxRetry: maxRetry})
	if r.Status != http.StatusAccepted {
		s.t.Fatalf("POST /api/jobs: status %d, want 202; body: %s", r.Status, r.Body)
	}
	j := decodeJob(s.t, "POST /api/jobs", r.Body)
	if j.ID == "" || r.Header.Get("Location") != "/api/jobs/"+j.ID {
		s.t.Fatalf("POST /api/jobs: id %q, Location %q", j.ID, r.Header.Get("Location"))
	}
	return j
}

func decodeJob(t *testing.T, what string, b []byte) tokenlysis.Job {
	t.Helper()
	var j tokenlysis.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: job JSON: %v: %s", what, err, b)
	}
	return j
}

// job reads a job.
func (s *stack) job(id string) tokenlysis.Job {
	s.t.Helper()
	r := s.do("GET", "/api/jobs/"+id, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET /api/jobs/%s: status %d; body: %s", id, r.Status, r.Body)
	}
	return decodeJob(s.t, "GET /api/jobs/"+id, r.Body)
}

// waitJob polls the job until cond holds, failing after timeout with the
// last state seen.
func (s *stack) waitJob(id, what string, timeout time.Duration, cond func(tokenlysis.Job) bool) tokenlysis.Job {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := s.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s: not %s within %v; last seen: status %s, percent %d, attempts %d, error %q, last event %d",
				id, what, timeout, j.Status, j.Percent, j.Attempts, j.Error, j.LastSeq)
		}
		s.wantRunning()
		time.Sleep(pollEvery)
	}
}

// waitFinished waits for a job to end and returns it.
func (s *stack) waitFinished(id string, timeout time.Duration) tokenlysis.Job {
	s.t.Helper()
	return s.waitJob(id, "finished", timeout, func(j tokenlysis.Job) bool { return j.Status.Terminal() })
}

// listJobIDs returns the IDs GET /api/jobs lists (one page of 200).
func (s *stack) listJobIDs(query string) []string {
	s.t.Helper()
	r := s.do("GET", "/api/jobs?limit=200"+query, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET /api/jobs: status %d; body: %s", r.Status, r.Body)
	}
	var list struct {
		Items []tokenlysis.Job `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil {
		s.t.Fatalf("GET /api/jobs: %v: %s", err, r.Body)
	}
	ids := make([]string, len(list.Items))
	for i, j := range list.Items {
		ids[i] = j.ID
	}
	return ids
}

// readyz answers GET /readyz (no token needed; sent anyway).
func (s *stack) readyz() (response, error) { return s.try("GET", "/readyz", nil) }

// waitReady polls /readyz until it answers status, failing after timeout.
func (s *stack) waitReady(status int, timeout time.Duration) response {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := s.readyz()
		if err == nil && r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("/readyz: not %d within %v; last: status %d, err %v, body %s", status, timeout, r.Status, err, r.Body)
		}
		if s.api.exited() {
			s.t.Fatalf("api exited (%v) while waiting for /readyz %d", s.api.err, status)
		}
		time.Sleep(pollEvery)
	}
}

// wantRunning fails the test when the api or the current worker has
// exited (which none does by itself).
func (s *stack) wantRunning() {
	s.t.Helper()
	for _, p := range []*proc{s.api, s.worker} {
		if p != nil && p.exited() {
			s.t.Fatalf("%s exited (%v):\n%s", p.name, p.err, tail(p.logPath, 40))
		}
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until something accepts connections on addr.
func waitTCP(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(pollEvery)
	}
}

func ptr[T any](v T) *T { return &v }
