// Package cpuacct measures the CPU time a benchmark run costs: this
// process's own (getrusage) and that of the server processes it drives,
// read from /proc: the Redis server and the PostgreSQL backends of the
// run's own database. On a shared, saturated machine, CPU time per task is
// a steadier figure than tasks per second: it does not depend on how much
// of the machine others leave.
//
// Backends that exit between two samples lose their last few milliseconds
// of CPU, so the PostgreSQL figure is a lower bound when a pool churns
// connections.
package cpuacct

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Groups of processes.
const (
	Self     = "self"     // this process
	Redis    = "redis"    // redis-server on the given address
	Postgres = "postgres" // backends of the given database
)

// clockTick is the unit of /proc/PID/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// Config says which server processes to account.
type Config struct {
	RedisAddr        string        // e.g. "127.0.0.1:6379"; empty: no Redis
	PostgresDatabase string        // database name; empty: no PostgreSQL
	Interval         time.Duration // sampling period; default 100 ms
}

// Meter accounts CPU time from Start to Stop.
type Meter struct {
	cfg       Config
	selfStart time.Duration
	base      map[int]time.Duration // CPU of each process when first seen at Start
	last      map[int]sample
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex

	// groups is the group of each process seen so far ("": not
	// accounted), so that each command line is read once: reading every
	// process's command line at each sample cost this process about 4 ms
	// a sample while a busy run went on (5% of the CPU of a P1 full-path
	// run), and competed with what it measured. Only the loop's goroutine
	// (and Start and Stop, before and after it) use it.
	groups      map[int]string
	readCmdline func(dir string) ([]byte, error)
}

type sample struct {
	group string
	cpu   time.Duration
}

// Start begins accounting.
func Start(cfg Config) *Meter {
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	m := newMeter(cfg, func(dir string) ([]byte, error) { return os.ReadFile(dir + "/cmdline") })
	for pid, s := range m.scan() {
		m.base[pid] = s.cpu
		m.last[pid] = s
	}
	go m.loop()
	return m
}

func newMeter(cfg Config, readCmdline func(dir string) ([]byte, error)) *Meter {
	return &Meter{cfg: cfg, selfStart: selfCPU(), base: map[int]time.Duration{}, last: map[int]sample{},
		stop: make(chan struct{}), done: make(chan struct{}), groups: map[int]string{}, readCmdline: readCmdline}
}

func (m *Meter) loop() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.record()
		}
	}
}

func (m *Meter) record() {
	seen := m.scan()
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, s := range seen {
		m.last[pid] = s
	}
}

// Stop ends accounting and returns the CPU time of each group.
func (m *Meter) Stop() map[string]time.Duration {
	close(m.stop)
	<-m.done
	m.record()
	out := map[string]time.Duration{Self: selfCPU() - m.selfStart}
	for pid, s := range m.last {
		out[s.group] += s.cpu - m.base[pid]
	}
	return out
}

// scan returns the accounted processes and their CPU time so far. A
// process is classified by its command line when first seen (a PID
// reused later keeps its first group, which a run's few minutes make
// unlikely); PostgreSQL's other processes are looked at each time.
func (m *Meter) scan() map[int]sample {
	out := map[int]sample{}
	if m.cfg.RedisAddr == "" && m.cfg.PostgresDatabase == "" {
		return out
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	alive := make(map[int]bool, len(dirs))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		alive[pid] = true
		group, seen := m.groups[pid]
		if !seen {
			cmd, err := m.readCmdline(dir)
			if err != nil || len(cmd) == 0 {
				// Gone, a kernel thread, or a process not yet showing its
				// command: look again next time.
				continue
			}
			line := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " ")
			group = m.classify(line)
			if group != "" || !strings.Contains(line, "postgres") {
				// A PostgreSQL process is classified only once it shows
				// what it is: a new backend starts with the postmaster's
				// command line and names its database after it has
				// authenticated.
				m.groups[pid] = group
			}
		}
		if group == "" {
			continue
		}
		if cpu, ok := procCPU(dir); ok {
			out[pid] = sample{group: group, cpu: cpu}
		}
	}
	for pid := range m.groups {
		if !alive[pid] {
			delete(m.groups, pid)
		}
	}
	return out
}

// classify is the group of a process with command line line, "" if none.
func (m *Meter) classify(line string) string {
	switch {
	case m.cfg.RedisAddr != "" && strings.HasPrefix(line, "redis-server") && strings.Contains(line, m.cfg.RedisAddr):
		return Redis
	case m.cfg.PostgresDatabase != "" && strings.HasPrefix(line, "postgres:") && containsField(line, m.cfg.PostgresDatabase):
		return Postgres
	}
	return ""
}

func containsField(line, field string) bool {
	for _, f := range strings.Fields(line) {
		if f == field {
			return true
		}
	}
	return false
}

// procCPU reads utime + stime from /proc/PID/stat.
func procCPU(dir string) (time.Duration, bool) {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces: fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * clockTick, true
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Profile starts a CPU profile written to base.name (name: the engine, say)
// and returns the function that stops it and closes the file (once: later
// calls do nothing). An empty base profiles nothing.
func Profile(base, name string) (stop func(), err error) {
	if base == "" {
		return func() {}, nil
	}
	f, err := os.Create(base + "." + name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}
