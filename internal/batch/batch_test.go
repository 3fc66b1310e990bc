package batch_test

import (
	"context"
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

func TestGroupKeepsOneCallersOrder(t *testing.T) {
	var mu sync.Mutex
	var order []int
	g := batch.New(func(_ context.Context, items []int) {
		mu.Lock()
		order = append(order, items...)
		mu.Unlock()
	}, batch.Config{})
	// Other callers keep groups forming while one caller makes calls in
	// sequence: its calls run in the order it made them.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					g.Do(context.Background(), -1)
				}
			}
		}()
	}
	for i := range 200 {
		g.Do(context.Background(), i)
	}
	close(stop)
	wg.Wait()
	next := 0
	for _, v := range order {
		if v < 0 {
			continue
		}
		if v != next {
			t.Fatalf("call %d ran where %d was due", v, next)
		}
		next++
	}
	if next != 200 {
		t.Fatalf("%d of 200 calls ran", next)
	}
}

func TestGoQueuesWithoutWaitingAndKeepsOrder(t *testing.T) {
	var mu sync.Mutex
	var order []int
	g := batch.New(func(_ context.Context, items []int) {
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		order = append(order, items...)
		mu.Unlock()
	}, batch.Config{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					g.Go(context.Background(), -1)()
				}
			}
		}()
	}
	// One goroutine queues two items without waiting, then one with Do:
	// when Do returns, all three have run, in order.
	for i := 0; i < 300; i += 3 {
		w1 := g.Go(context.Background(), i)
		w2 := g.Go(context.Background(), i+1)
		g.Do(context.Background(), i+2)
		w1()
		w2()
		mu.Lock()
		last := order[len(order)-1]
		mu.Unlock()
		if last < i+2 && last != -1 {
			t.Fatalf("Do(%d) returned before it ran (last ran: %d)", i+2, last)
		}
	}
	close(stop)
	wg.Wait()
	next := 0
	for _, v := range order {
		if v < 0 {
			continue
		}
		if v != next {
			t.Fatalf("item %d ran where %d was due", v, next)
		}
		next++
	}
	if next != 300 {
		t.Fatalf("%d of 300 items ran", next)
	}
	// A lone Go with nothing else queued still runs.
	ran := make(chan struct{})
	batch.New(func(_ context.Context, items []int) { close(ran) }, batch.Config{}).Go(context.Background(), 1)()
	select {
	case <-ran:
	default:
		t.Fatal("wait returned before the group ran")
	}
}
