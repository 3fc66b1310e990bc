package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/bench/internal/cpuacct"
	"github.com/tokenlysis/tokenlysis/bench/internal/testbed"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/tasks"
)

// The worker side of a run is the asynq server that processes its n
// tasks: a no-op handler (bare), or the full path's Runner around the
// probe handler, with cmd/worker's server configuration either way. By
// default it runs in a process of its own for each run, as cmd/worker
// runs beside cmd/api, so that the producers' goroutines (the API side's
// submissions, on the full path) do not queue on the same Go scheduler
// as asynq's serial dequeue loop. -worker inprocess runs it in this
// process instead, as the benchmark did first.

const (
	workerProcess   = "process"
	workerInProcess = "inprocess"
	// serveEnv in a process's environment holds a workerSpec (JSON): the
	// program is then a worker process (serve), not the benchmark.
	serveEnv = "TOKENLYSIS_JOBPATH_WORKER"

	kindBare = "bare"
	kindFull = "full"
)

// workerSpec is what a worker side runs.
type workerSpec struct {
	Kind        string         // kindBare or kindFull
	Bed         testbed.Shared // the run's database and Redis
	N           int            // tasks to process
	Concurrency int
	// CPUProfile, if set, is the base name of a CPU profile of a worker
	// process (written to CPUProfile.worker).
	CPUProfile string
}

// workerReport is what a worker side tells once its tasks are done.
type workerReport struct {
	// CPU is a worker process's CPU time from the start of processing to
	// the end; 0 in process, where it is part of this process's own.
	CPU       time.Duration
	Ops       map[string][]time.Duration // the worker side's timed operations
	Writes    sqlstore.JobWriteStats     // the full path's worker store
	Published int64                      // notifications published on the bus
	Messages  int64                      // Redis messages that carried them
}

// worker is a worker side, in this process or in its own.
type worker interface {
	start() error
	// wait returns once the n tasks have been processed and, on the full
	// path, their successes committed.
	wait(ctx context.Context) error
	// report, after wait, returns what the worker side did.
	report(ctx context.Context) (workerReport, error)
	close() error
}

// startWorker makes the worker side of one run, ready to start.
func startWorker(ctx context.Context, where string, spec workerSpec) (worker, error) {
	if where == workerInProcess {
		return newWorkerSide(ctx, spec)
	}
	return startWorkerProcess(ctx, spec)
}

// workerSide is a worker side in this process.
type workerSide struct {
	spec         workerSpec
	srv          *asynq.Server
	mux          *asynq.ServeMux
	ops          *opTimes
	finished     chan struct{}
	done, failed atomic.Int64

	// The full path's worker: its own pool, Redis client, store and bus.
	closers   []func() error
	store     *sqlstore.Store
	runner    *job.Runner
	bus       *events.Bus
	published atomic.Int64
}

var _ worker = (*workerSide)(nil)

func newWorkerSide(ctx context.Context, spec workerSpec) (_ *workerSide, err error) {
	w := &workerSide{spec: spec, ops: &opTimes{}, finished: make(chan struct{})}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	bed := testbed.Join(spec.Bed)
	w.mux = asynq.NewServeMux()
	w.mux.Use(w.count)
	switch spec.Kind {
	case kindBare:
		w.mux.HandleFunc(bareType, func(context.Context, *asynq.Task) error { return nil })
	case kindFull:
		db, err := bed.OpenDB(ctx)
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, db.Close)
		rdb, err := bed.Redis(ctx)
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, rdb.Close)
		w.bus = events.NewBus(rdb, events.Config{Channel: bed.Channel})
		pub := &countingPublisher{bus: w.bus, n: &w.published}
		w.store = sqlstore.New(db, sqlstore.Config{Announcer: job.NewAnnouncer(pub, nil)})
		w.runner = job.NewRunner(&timedStore{Store: w.store, ops: w.ops}, job.RunnerConfig{Observer: newAttemptMetrics()})
		w.mux.Use(w.ops.middleware(opAttempt), w.runner.Middleware)
		w.mux.Handle(tasks.TypeProbe, tasks.ProbeHandler{}) // the only type the benchmark submits
	default:
		return nil, fmt.Errorf("worker kind %q: want %s or %s", spec.Kind, kindBare, kindFull)
	}
	w.srv = newServer(bed, spec.Concurrency)
	return w, nil
}

// count counts the attempts that end, and closes finished at the n-th
// success.
func (w *workerSide) count(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err != nil {
			w.failed.Add(1)
		} else if w.done.Add(1) == int64(w.spec.N) {
			close(w.finished)
		}
		return err
	})
}

func (w *workerSide) start() error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	return nil
}

func (w *workerSide) wait(ctx context.Context) error {
	select {
	case <-w.finished:
	case <-ctx.Done():
		return fmt.Errorf("%d of %d processed (%d failed attempts): %w", w.done.Load(), w.spec.N, w.failed.Load(), ctx.Err())
	}
	if w.runner != nil {
		w.runner.Wait() // a job counts once its success is committed
	}
	if n := w.failed.Load(); n > 0 {
		return fmt.Errorf("%d attempts failed", n)
	}
	return nil
}

func (w *workerSide) report(ctx context.Context) (workerReport, error) {
	r := workerReport{Ops: w.ops.all(), Published: w.published.Load()}
	if w.store != nil {
		r.Writes = w.store.JobWriteStats()
	}
	if w.bus != nil {
		if err := w.bus.Flush(ctx); err != nil {
			return r, fmt.Errorf("publish events: %w", err)
		}
		r.Messages = w.bus.Stats().Messages
	}
	return r, nil
}

func (w *workerSide) close() error {
	if w.srv != nil {
		w.srv.Shutdown()
	}
	var errs []error
	for _, c := range slices.Backward(w.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// The lines a worker process writes on its standard output, in order:
// lineReady once it can start, lineDone once its tasks are done, then its
// report as one line of JSON. It starts processing when it reads
// lineStart on its standard input.
const (
	lineReady = "ready"
	lineStart = "start"
	lineDone  = "done"
)

// serve is the program of a worker process: one run's worker side, told
// by spec (JSON).
func serve(ctx context.Context, spec string, stdin io.Reader, stdout io.Writer) (err error) {
	var s workerSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("%s: %w", serveEnv, err)
	}
	w, err := newWorkerSide(ctx, s)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, w.close()) }()
	if _, err := fmt.Fprintln(stdout, lineReady); err != nil {
		return err
	}
	in := bufio.NewScanner(stdin)
	if !in.Scan() || in.Text() != lineStart {
		return errors.Join(errors.New("no start line"), in.Err())
	}
	stopProfile, err := cpuacct.Profile(s.CPUProfile, "worker")
	if err != nil {
		return err
	}
	meter := cpuacct.Start(cpuacct.Config{})
	if err := w.start(); err != nil {
		return err
	}
	if err := w.wait(ctx); err != nil {
		return err
	}
	cpu := meter.Stop()[cpuacct.Self]
	stopProfile()
	if _, err := fmt.Fprintln(stdout, lineDone); err != nil {
		return err
	}
	r, err := w.report(ctx)
	if err != nil {
		return err
	}
	r.CPU = cpu
	return json.NewEncoder(stdout).Encode(r)
}

// workerProc is a worker side in a process of its own: this program again,
// with serveEnv set.
type workerProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	lines    chan string // the process's output lines; closed at its end
	reported bool        // its report was read: it is exiting by itself
}

var _ worker = (*workerProc)(nil)

func startWorkerProcess(ctx context.Context, spec workerSpec) (_ *workerProc, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	p := &workerProc{cmd: cmd, lines: make(chan string, 4)}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker process: %w", err)
	}
	go func() {
		defer close(p.lines)
		out := bufio.NewScanner(stdout)
		out.Buffer(nil, 64<<20) // the report holds every operation's time
		for out.Scan() {
			p.lines <- out.Text()
		}
	}()
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if err := p.expect(ctx, lineReady); err != nil {
		return nil, err
	}
	return p, nil
}

// next returns the process's next output line.
func (p *workerProc) next(ctx context.Context) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", errors.New("worker process ended early (its error is above)")
		}
		return line, nil
	case <-ctx.Done():
		return "", fmt.Errorf("worker process: %w", ctx.Err())
	}
}

func (p *workerProc) expect(ctx context.Context, want string) error {
	line, err := p.next(ctx)
	if err == nil && line != want {
		err = fmt.Errorf("worker process said %q, want %q", line, want)
	}
	return err
}

func (p *workerProc) start() error {
	_, err := io.WriteString(p.stdin, lineStart+"\n")
	return err
}

func (p *workerProc) wait(ctx context.Context) error { return p.expect(ctx, lineDone) }

func (p *workerProc) report(ctx context.Context) (workerReport, error) {
	var r workerReport
	line, err := p.next(ctx)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, fmt.Errorf("worker process report: %w", err)
	}
	p.reported = true
	return r, nil
}

// close ends the process: it exits by itself after its report, and is
// killed otherwise (a run that failed), or if it has not exited after 10 s.
func (p *workerProc) close() error {
	p.stdin.Close()
	if !p.reported {
		p.cmd.Process.Kill()
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if !p.reported {
			return nil // killed above: the run's own error says why
		}
		return err
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		return errors.Join(errors.New("worker process killed: it did not exit"), <-exited)
	}
}
