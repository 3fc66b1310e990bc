// Package batch runs concurrent calls in groups: the calls that arrive
// while a group is running make up the next one, which one of their
// callers runs for all of them (group commit, as databases do it for their
// log). Under load, a few large groups replace many single calls; alone, a
// call runs at once as a group of one. There is no background goroutine.
package batch

import (
	"cmp"
	"context"
	"sync"
)

// Group combines the calls of Do. Its zero value is not usable: use New.
type Group[T any] struct {
	run   func(ctx context.Context, items []T)
	limit int
	max   int

	mu       sync.Mutex
	pending  []*entry[T]
	inFlight int
	groups   int64
	calls    int64
}

type entry[T any] struct {
	item  T
	wake  chan bool   // true: lead group; false: done
	group []*entry[T] // the group to run, when handed the lead
}

// Config configures a Group.
type Config struct {
	// Concurrent is how many groups may run at once (default 1).
	Concurrent int
	// Max caps the items of one group (default 256).
	Max int
}

// New returns a Group whose groups run is called with. run must set each
// item's outcome (items are typically pointers) and must not panic: every
// caller of its group waits for it. The context it gets is the leading
// caller's.
func New[T any](run func(ctx context.Context, items []T), cfg Config) *Group[T] {
	return &Group[T]{run: run, limit: max(cfg.Concurrent, 1), max: max(cmp.Or(cfg.Max, 256), 1)}
}

// Do runs item in a group and returns when that group has run.
func (g *Group[T]) Do(ctx context.Context, item T) {
	e := &entry[T]{item: item, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.calls++
	g.pending = append(g.pending, e)
	if g.inFlight >= g.limit {
		g.mu.Unlock()
		if lead := <-e.wake; !lead {
			return
		}
		// Handed the lead together with its group (taken under the lock,
		// so that no other finishing leader hands the same one).
	} else {
		g.inFlight++
		e.group = g.take()
		g.mu.Unlock()
	}

	group := e.group
	e.group = nil
	items := make([]T, len(group))
	for i, o := range group {
		items[i] = o.item
	}
	g.run(ctx, items)
	for _, o := range group {
		if o != e {
			o.wake <- false
		}
	}

	g.mu.Lock()
	if len(g.pending) > 0 {
		next := g.pending[0]
		next.group = g.take()
		g.mu.Unlock()
		next.wake <- true
		return
	}
	g.inFlight--
	g.mu.Unlock()
}

// take removes the next group from pending. g.mu must be held.
func (g *Group[T]) take() []*entry[T] {
	n := min(len(g.pending), g.max)
	group := g.pending[:n:n]
	g.pending = append([]*entry[T](nil), g.pending[n:]...)
	g.groups++
	return group
}

// Stats returns how many calls Do took and in how many groups they ran.
func (g *Group[T]) Stats() (calls, groups int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.groups
}
