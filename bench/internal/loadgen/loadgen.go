// Package loadgen drives HTTP load for the benchmark programs: a closed
// loop (clients sending back to back) or an open loop (requests scheduled
// at a rate, latency counted from the scheduled time so that waiting for a
// free sender is not hidden).
package loadgen

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Sample is one request.
type Sample struct {
	Took   time.Duration // scheduled (or sent, in a closed loop) → body read
	Lag    time.Duration // scheduled → sent; 0 in a closed loop
	Status int
	Err    error
	Body   string // of an answer with an unexpected status, truncated
}

// Do sends one request scheduled at at.
type Do func(ctx context.Context, at time.Time) Sample

// Run sends requests for d over senders goroutines and returns every
// request and the time until the last one ended. With rate 0 each sender
// sends back to back (a closed loop); otherwise rate requests per second
// are scheduled whatever the answers (an open loop).
func Run(ctx context.Context, senders int, d time.Duration, rate float64, do Do) ([]Sample, time.Duration) {
	start := time.Now()
	next := func() (time.Time, bool) {
		if ctx.Err() != nil || !time.Now().Before(start.Add(d)) {
			return time.Time{}, false
		}
		return time.Now(), true
	}
	if rate > 0 {
		slots := schedule(ctx, start, d, rate)
		next = func() (time.Time, bool) { at, ok := <-slots; return at, ok }
	}
	per := make([][]Sample, senders)
	var wg sync.WaitGroup
	for c := range senders {
		wg.Go(func() {
			for at, ok := next(); ok; at, ok = next() {
				per[c] = append(per[c], do(ctx, at))
			}
		})
	}
	wg.Wait()
	return slices.Concat(per...), time.Since(start)
}

// schedule emits rate·d send times from start on, each at its time.
func schedule(ctx context.Context, start time.Time, d time.Duration, rate float64) <-chan time.Time {
	n := int(rate * d.Seconds())
	slots := make(chan time.Time, n)
	go func() {
		defer close(slots)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := range n {
			at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(at); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			slots <- at
		}
	}()
	return slots
}

// Send sends req, scheduled at at, reads the whole answer and times it. An
// answer whose status is not want keeps the start of its body.
func Send(client *http.Client, req *http.Request, at time.Time, want int) Sample {
	s := Sample{Lag: time.Since(at)}
	resp, err := client.Do(req)
	if err != nil {
		s.Took, s.Err = time.Since(at), err
		return s
	}
	if resp.StatusCode == want {
		_, s.Err = io.Copy(io.Discard, resp.Body)
	} else {
		b, _ := io.ReadAll(resp.Body)
		s.Body = string(b[:min(len(b), 300)])
	}
	resp.Body.Close()
	s.Took, s.Status = time.Since(at), resp.StatusCode
	return s
}
