// Package batch runs concurrent calls in groups: the calls that arrive
// while a group is running make up the next one, which one of their
// callers runs for all of them (group commit, as databases do it for their
// log). Under load, a few large groups replace many single calls; alone, a
// call runs at once as a group of one. There is no background goroutine.
package batch

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Group combines the calls of Do. Its zero value is not usable: use New.
type Group[T any] struct {
	run    func(ctx context.Context, items []T)
	limit  int
	max    int
	linger time.Duration
	idle   time.Duration

	mu       sync.Mutex
	pending  []*entry[T]
	inFlight int
	groups   int64
	calls    int64
}

type entry[T any] struct {
	item  T
	wake  chan bool     // Do: true, lead group; false, done
	done  chan struct{} // Go: closed when its group has run
	then  func()        // GoThen: called once its group has run
	ctx   context.Context
	group []*entry[T] // the group to run, when handed the lead
}

// Config configures a Group.
type Config struct {
	// Concurrent is how many groups may run at once (default 1).
	Concurrent int
	// Max caps the items of one group (default 256).
	Max int
	// Linger is how long a group led by a Go call waits at most, before
	// it runs, for more calls to join it (default none). Nobody waits on a
	// Go call, so a little latency buys larger groups: fewer commits for
	// the same work. A group led by Do runs at once, its caller waiting.
	Linger time.Duration
	// LingerIdle ends the linger early: the group runs as soon as a step
	// of LingerIdle has brought no new call, or has brought one that
	// waits (Do). Under load calls keep coming and a group lingers up to
	// Linger; a lone call waits one step. Default (or ≥ Linger): one
	// step of Linger.
	LingerIdle time.Duration
}

// New returns a Group whose groups run is called with. run must set each
// item's outcome (items are typically pointers) and must not panic: every
// caller of its group waits for it. The context it gets is the leading
// caller's.
func New[T any](run func(ctx context.Context, items []T), cfg Config) *Group[T] {
	linger := max(cfg.Linger, 0)
	idle := cfg.LingerIdle
	if idle <= 0 || idle > linger {
		idle = linger
	}
	return &Group[T]{run: run, limit: max(cfg.Concurrent, 1), max: max(cmp.Or(cfg.Max, 256), 1), linger: linger, idle: idle}
}

// Do runs item in a group and returns when that group has run.
func (g *Group[T]) Do(ctx context.Context, item T) {
	e := &entry[T]{item: item, wake: make(chan bool, 1)}
	if g.enqueue(e) || <-e.wake {
		g.lead(ctx, e)
	}
}

// Go queues item without waiting: wait returns when its group has run.
// With Concurrent 1, the items one goroutine queues (with Go or Do) run in
// the order it queued them, so a later Do sees what an earlier Go did.
func (g *Group[T]) Go(ctx context.Context, item T) (wait func()) {
	return g.GoThen(ctx, item, nil)
}

// GoThen is Go, and then (when not nil) is called once item's group has
// run, after every caller of the group has been told (wait returns at
// once there). It runs in the goroutine that ran the group, before the
// next group starts, in the order the calls were queued: it must be quick
// and must not block. Where a caller would only start a goroutine to wait
// for its call and note how it ended, then does it without the goroutine.
func (g *Group[T]) GoThen(ctx context.Context, item T, then func()) (wait func()) {
	e := &entry[T]{item: item, done: make(chan struct{}), then: then, ctx: context.WithoutCancel(ctx)}
	if g.enqueue(e) {
		go g.lead(e.ctx, e)
	}
	return func() { <-e.done }
}

// enqueue adds e to pending. It reports whether e leads at once, with its
// group taken; otherwise a finishing leader hands the lead on.
func (g *Group[T]) enqueue(e *entry[T]) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	g.pending = append(g.pending, e)
	if g.inFlight >= g.limit {
		return false
	}
	g.inFlight++
	e.group = g.take()
	return true
}

// lead runs e's group, tells its callers, and hands the lead to the first
// pending call with the next group (taken under the lock, so that no other
// finishing leader hands the same one), or gives up its place.
func (g *Group[T]) lead(ctx context.Context, e *entry[T]) {
	group := e.group
	e.group = nil
	if e.done != nil && g.linger > 0 {
		group = g.gather(group)
	}
	items := make([]T, len(group))
	for i, o := range group {
		items[i] = o.item
	}
	g.run(ctx, items)
	for _, o := range group {
		switch {
		case o.done != nil:
			close(o.done)
		case o != e:
			o.wake <- false
		}
	}
	for _, o := range group {
		if o.then != nil {
			o.then()
		}
	}

	g.mu.Lock()
	if len(g.pending) == 0 {
		g.inFlight--
		g.mu.Unlock()
		return
	}
	next := g.pending[0]
	next.group = g.take()
	g.mu.Unlock()
	if next.done != nil {
		go g.lead(next.ctx, next) // a Go call: nobody waits to lead
	} else {
		next.wake <- true
	}
}

// gather lingers for calls to join a Go-led group, in steps of g.idle, for
// g.linger at most: it stops after a step that brought no call or brought
// one whose caller waits, or once the group is full.
func (g *Group[T]) gather(group []*entry[T]) []*entry[T] {
	deadline := time.Now().Add(g.linger)
	for len(group) < g.max {
		step := min(g.idle, time.Until(deadline))
		if step <= 0 {
			break
		}
		time.Sleep(step)
		g.mu.Lock()
		joined := g.takeUpTo(g.max - len(group))
		g.mu.Unlock()
		group = append(group, joined...)
		if len(joined) == 0 || slices.ContainsFunc(joined, func(o *entry[T]) bool { return o.done == nil }) {
			break
		}
	}
	return group
}

// take removes the next group from pending. g.mu must be held.
func (g *Group[T]) take() []*entry[T] {
	g.groups++
	return g.takeUpTo(g.max)
}

// takeUpTo removes up to n entries from pending. g.mu must be held.
func (g *Group[T]) takeUpTo(n int) []*entry[T] {
	n = min(len(g.pending), n)
	group := g.pending[:n:n]
	g.pending = append([]*entry[T](nil), g.pending[n:]...)
	return group
}

// Stats returns how many calls Do took and in how many groups they ran.
func (g *Group[T]) Stats() (calls, groups int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.groups
}
