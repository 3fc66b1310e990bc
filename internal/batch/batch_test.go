package batch_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/batch"
)

type call struct {
	n    int
	done bool // set by the group that ran it
}

func TestGroupRunsEveryCallOnceInBoundedGroups(t *testing.T) {
	for _, tc := range []struct{ concurrent, max int }{{1, 256}, {3, 256}, {2, 4}} {
		var running, peak atomic.Int32
		var mu sync.Mutex
		seen := map[int]int{}
		largest := 0
		g := batch.New(func(_ context.Context, items []*call) {
			r := running.Add(1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			defer running.Add(-1)
			time.Sleep(200 * time.Microsecond) // let the next group gather
			mu.Lock()
			defer mu.Unlock()
			largest = max(largest, len(items))
			for _, c := range items {
				seen[c.n]++
				c.done = true
			}
		}, batch.Config{Concurrent: tc.concurrent, Max: tc.max})

		const n = 400
		calls := make([]*call, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range calls {
			calls[i] = &call{n: i}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				g.Do(context.Background(), calls[i])
				if !calls[i].done {
					t.Errorf("Do(%d) returned before its group ran", i)
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if seen[i] != 1 {
				t.Fatalf("concurrent=%d: call %d ran %d times", tc.concurrent, i, seen[i])
			}
		}
		gotCalls, groups := g.Stats()
		if gotCalls != n || groups >= n {
			t.Fatalf("concurrent=%d: %d calls in %d groups: no grouping", tc.concurrent, gotCalls, groups)
		}
		if int(peak.Load()) > tc.concurrent {
			t.Fatalf("%d groups ran at once, limit %d", peak.Load(), tc.concurrent)
		}
		if largest > tc.max {
			t.Fatalf("a group of %d items, max %d", largest, tc.max)
		}
		t.Logf("concurrent=%d max=%d: %d calls in %d groups, at most %d at once", tc.concurrent, tc.max, gotCalls, groups, peak.Load())
	}
}

// recorder is a Group that records the items it ran, in order.
type recorder struct {
	g     *batch.Group[int]
	mu    sync.Mutex
	order []int
}

func newRecorder(pause time.Duration) *recorder {
	r := &recorder{}
	r.g = batch.New(func(_ context.Context, items []int) {
		time.Sleep(pause)
		r.mu.Lock()
		r.order = append(r.order, items...)
		r.mu.Unlock()
	}, batch.Config{})
	return r
}

// ran reports whether item v has run.
func (r *recorder) ran(v int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.order, v)
}

// noise keeps other callers queueing item -1 (with Go when async, else
// Do) so that groups keep forming, until the returned stop is called.
func (r *recorder) noise(async bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
					if async {
						r.g.Go(context.Background(), -1)()
					} else {
						r.g.Do(context.Background(), -1)
					}
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// checkOrder fails unless items 0..n-1 ran once each, in order.
func (r *recorder) checkOrder(t *testing.T, n int) {
	t.Helper()
	next := 0
	for _, v := range r.order {
		if v < 0 {
			continue
		}
		if v != next {
			t.Fatalf("item %d ran where %d was due", v, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d of %d items ran", next, n)
	}
}

func TestGroupKeepsOneCallersOrder(t *testing.T) {
	// Other callers keep groups forming while one caller makes calls in
	// sequence: its calls run in the order it made them.
	r := newRecorder(0)
	stop := r.noise(false)
	for i := range 200 {
		r.g.Do(context.Background(), i)
	}
	stop()
	r.checkOrder(t, 200)
}

func TestGoQueuesWithoutWaitingAndKeepsOrder(t *testing.T) {
	r := newRecorder(50 * time.Microsecond)
	stop := r.noise(true)
	// One goroutine queues two items without waiting, then one with Do:
	// when Do returns, all three have run, in order.
	for i := 0; i < 300; i += 3 {
		w1 := r.g.Go(context.Background(), i)
		w2 := r.g.Go(context.Background(), i+1)
		r.g.Do(context.Background(), i+2)
		if !r.ran(i) || !r.ran(i+1) || !r.ran(i+2) {
			t.Fatalf("Do(%d) returned before its group, or the earlier Go calls, ran", i+2)
		}
		w1()
		w2()
	}
	stop()
	r.checkOrder(t, 300)
	// A lone Go with nothing else queued still runs.
	ran := make(chan struct{})
	batch.New(func(_ context.Context, items []int) { close(ran) }, batch.Config{}).Go(context.Background(), 1)()
	select {
	case <-ran:
	default:
		t.Fatal("wait returned before the group ran")
	}
}

// GoThen's then runs once its group has run, in the goroutine that ran
// the group, after every caller of the group has been told: there, wait
// returns at once, and the thens of one group run in the order queued.
func TestGoThenRunsAfterItsGroup(t *testing.T) {
	var ranGroups atomic.Int32
	g := batch.New(func(_ context.Context, items []int) {
		time.Sleep(time.Millisecond)
		ranGroups.Add(1)
	}, batch.Config{Linger: 20 * time.Millisecond})
	ctx := context.Background()

	var mu sync.Mutex
	var order []int
	thens := make(chan struct{}, 3)
	waits := make([]func(), 3)
	for i := range 3 {
		waits[i] = g.GoThen(ctx, i, func() {
			if ranGroups.Load() == 0 {
				t.Errorf("then %d ran before its group", i)
			}
			returned := make(chan struct{})
			go func() { waits[i](); close(returned) }()
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Errorf("wait %d blocks inside its then: the then ran before its caller was told", i)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			thens <- struct{}{}
		})
	}
	for range 3 {
		select {
		case <-thens:
		case <-time.After(10 * time.Second):
			t.Fatal("a then never ran")
		}
	}
	if !slices.Equal(order, []int{0, 1, 2}) {
		t.Fatalf("thens ran in order %v, want [0 1 2]", order)
	}
	if n := ranGroups.Load(); n != 1 {
		t.Fatalf("%d groups ran, want 1 (the three calls linger into one)", n)
	}
	// A nil then is a plain Go.
	g.GoThen(ctx, 9, nil)()
}

// A group led by a Go call lingers: the calls queued meanwhile, with Go or
// Do, join it. A group led by Do does not wait.
func TestLingerGathersQueuedCalls(t *testing.T) {
	g, groups := recordingGroup(batch.Config{Linger: time.Second})

	calls := []*call{{n: 0}, {n: 1}, {n: 2}}
	var waits []func()
	for _, c := range calls[:2] {
		waits = append(waits, g.Go(context.Background(), c))
	}
	g.Do(context.Background(), calls[2]) // joins the lingering group
	for _, w := range waits {
		w()
	}
	for _, c := range calls {
		if !c.done {
			t.Fatalf("call %d did not run", c.n)
		}
	}
	if got := groups(); !slices.Equal(got, []int{3}) {
		t.Fatalf("group sizes %v, want [3]: the Go-led group should have gathered every call", got)
	}

	// Do alone runs at once, however long the linger.
	start := time.Now()
	g.Do(context.Background(), &call{n: 3})
	if d := time.Since(start); d >= time.Second {
		t.Fatalf("a Do-led group waited %v: only groups led by Go linger", d)
	}
}

// With LingerIdle, a Go-led group lingers only while calls keep joining
// it: it runs once a step of LingerIdle brings none, or once a call that
// waits (Do) has joined, and after Linger at the latest.
func TestLingerEndsWhenCallsStopJoining(t *testing.T) {
	g, groups := recordingGroup(batch.Config{Linger: 2 * time.Second, LingerIdle: 100 * time.Millisecond})
	ctx := context.Background()

	t.Run("a lone queued call waits one idle step", func(t *testing.T) {
		start := time.Now()
		g.Go(ctx, &call{})()
		if d := time.Since(start); d < 100*time.Millisecond || d >= time.Second {
			t.Fatalf("a lone Go call ran after %v, want one idle step (100 ms), not the whole linger (2 s)", d)
		}
		groups()
	})

	t.Run("calls that keep coming keep the group open", func(t *testing.T) {
		// A call every 20 ms for 600 ms: every idle step brings some, so
		// the first group gathers well over one step's worth.
		var waits []func()
		start := time.Now()
		for time.Since(start) < 600*time.Millisecond {
			waits = append(waits, g.Go(ctx, &call{}))
			time.Sleep(20 * time.Millisecond)
		}
		for _, w := range waits {
			w()
		}
		sizes := groups()
		if len(sizes) == 0 || sizes[0] < 15 {
			t.Fatalf("group sizes %v (of %d calls), want a first group of at least 15: it should linger while calls join", sizes, len(waits))
		}
	})

	t.Run("a waiting call ends the linger", func(t *testing.T) {
		start := time.Now()
		wait := g.Go(ctx, &call{})
		time.Sleep(20 * time.Millisecond)
		g.Do(ctx, &call{})
		wait()
		sizes := groups()
		if d := time.Since(start); d >= time.Second || !slices.Equal(sizes, []int{2}) {
			t.Fatalf("groups %v after %v, want one group of 2 run within an idle step of the Do", sizes, d)
		}
	})
}

// recordingGroup returns a group that marks its calls done, and groups,
// which returns the sizes of the groups run since its last call.
func recordingGroup(cfg batch.Config) (*batch.Group[*call], func() []int) {
	var mu sync.Mutex
	var sizes []int
	g := batch.New(func(_ context.Context, items []*call) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(items))
		for _, c := range items {
			c.done = true
		}
	}, cfg)
	return g, func() []int {
		mu.Lock()
		defer mu.Unlock()
		s := sizes
		sizes = nil
		return s
	}
}
