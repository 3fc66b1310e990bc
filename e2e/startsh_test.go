package e2e

import (
	"bufio"
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestStartScriptStopsWhatItStarted runs ./start.sh as a user does, in a
// process group of its own as a terminal's foreground job, and ends it the
// ways a terminal session ends: Ctrl-C (SIGINT to the group); Ctrl-C once
// the reader of its output has gone (./start.sh | tee run.log, where
// Ctrl-C ends tee first); the terminal closing (SIGHUP, nobody reading).
// Each time the script must stop the API and the worker it started (they
// run in sessions of their own, so nothing else stops them) and exit.
func TestStartScriptStopsWhatItStarted(t *testing.T) {
	t.Parallel()
	redis := startOwnRedis(t) // the cases run one after the other on it
	cases := []struct {
		name       string
		sig        syscall.Signal
		dropOutput bool
	}{
		{"ctrl-c", syscall.SIGINT, false},
		{"ctrl-c with its output reader gone", syscall.SIGINT, true},
		{"terminal closed", syscall.SIGHUP, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := startScript(t, redis.url())
			if c.dropOutput {
				run.dropOutput()
			}
			if err := syscall.Kill(-run.cmd.Process.Pid, c.sig); err != nil {
				t.Fatalf("%v to the script's process group: %v", c.sig, err)
			}
			select {
			case <-run.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("start.sh still running 60s after %v", c.sig)
			}
			// The API, the worker and anything else it started (its
			// supervising loop's sleep 1 may outlive it by a second).
			names := map[int]string{}
			for name, pid := range run.pids() {
				names[pid] = name
			}
			for _, pid := range processesWithEnv(run.dataEnv) {
				if !waitGone(pid, 10*time.Second) {
					t.Errorf("%s (pid %d), started by start.sh, still runs after it ended on %v", cmp.Or(names[pid], "a process"), pid, c.sig)
				}
			}
			if conn, err := net.DialTimeout("tcp", run.addr, time.Second); err == nil {
				conn.Close()
				t.Errorf("something still listens on %s after start.sh ended", run.addr)
			}
			if !c.dropOutput && !strings.Contains(run.output(), "[start] stopped") {
				t.Errorf("start.sh did not say it stopped; its output:\n%s", run.output())
			}
		})
	}
}

// scriptRun is a ./start.sh that answered /readyz.
type scriptRun struct {
	cmd      *exec.Cmd
	addr     string
	done     chan struct{} // closed when the script has exited
	children map[string]int
	reader   *os.File
	dataEnv  string // TOKENLYSIS_DATA_DIR=…, in the environment of all it starts

	mu  sync.Mutex
	out strings.Builder
}

var startedPID = regexp.MustCompile(`\[start\] (api|worker) started \(pid (\d+)`)

// startScript starts ../start.sh on a data directory and HTTP port of its
// own and the given Redis, and waits until it says the system is running.
func startScript(t *testing.T, redisURL string) *scriptRun {
	t.Helper()
	r := &scriptRun{addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), done: make(chan struct{}), children: map[string]int{}}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENLYSIS_") {
			env = append(env, kv)
		}
	}
	r.dataEnv = "TOKENLYSIS_DATA_DIR=" + t.TempDir()
	env = append(env, r.dataEnv, "TOKENLYSIS_HTTP_ADDR="+r.addr,
		"TOKENLYSIS_REDIS_URL="+redisURL, "TOKENLYSIS_WORKER_METRICS_ADDR=off", "TOKENLYSIS_SHUTDOWN_TIMEOUT=5s")
	reader, writer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.reader = reader
	r.cmd = exec.Command("bash", "./start.sh")
	r.cmd.Dir = ".." // the module root, where a user runs it
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = writer, writer
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start ./start.sh: %v", err)
	}
	writer.Close()
	go func() {
		r.cmd.Wait()
		close(r.done)
	}()
	running := make(chan struct{})
	go r.read(running)
	t.Cleanup(func() {
		// The API and the worker run in sessions of their own: a script
		// killed before it stopped them leaves them running. Whatever the
		// script said, they are found by the data directory in their
		// environment.
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		for _, pid := range processesWithEnv(r.dataEnv) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("--- output of start.sh ---\n%s", r.output())
		}
	})

	select {
	case <-running:
	case <-r.done:
		t.Fatalf("start.sh exited before the system was running; its output:\n%s", r.output())
	case <-time.After(4 * time.Minute): // it builds the binaries first
		t.Fatalf("start.sh did not report the system running within 4 minutes; its output:\n%s", r.output())
	}
	if pids := r.pids(); len(pids) != 2 {
		t.Fatalf("start.sh reported the pids of %v, want api and worker; its output:\n%s", pids, r.output())
	}
	res, err := http.Get("http://" + r.addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz of the system start.sh runs: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz: %d, want 200", res.StatusCode)
	}
	return r
}

// read collects the script's output, notes the pids it reports and closes
// running once it says the system runs; it stops when the output ends or
// is dropped.
func (r *scriptRun) read(running chan<- struct{}) {
	sc := bufio.NewScanner(r.reader)
	said := false
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		fmt.Fprintln(&r.out, line)
		if m := startedPID.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[2])
			r.children[m[1]] = pid
		}
		r.mu.Unlock()
		if !said && strings.HasPrefix(line, "Tokenlysis is running at") {
			said = true
			close(running)
		}
	}
}

// dropOutput closes the read end of the script's output, as a tee that
// Ctrl-C ended or a closed terminal does: its next write fails (EPIPE).
func (r *scriptRun) dropOutput() { r.reader.Close() }

// pids are the API's and the worker's, as the script reported them.
func (r *scriptRun) pids() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.children)
}

func (r *scriptRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitGone waits until pid no longer runs (gone, or a zombie nobody reaped).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// processesWithEnv returns the processes whose environment holds kv.
func processesWithEnv(kv string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, dir := range dirs {
		env, err := os.ReadFile(dir + "/environ")
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(env), "\x00"), kv) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			pids = append(pids, pid)
		}
	}
	return pids
}
