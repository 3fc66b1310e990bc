package events_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
)

const redisDB = 2

type testBundle struct {
	bus *events.Bus
	ctx context.Context
}

func setup(t *testing.T, cfg events.Config) testBundle {
	t.Helper()
	name := "evtest" + strings.ReplaceAll(redistest.Prefix(), ":", "")
	rdb := redistest.Client(t, redisDB, name)
	cfg.Channel = redistest.Prefix() + "events"
	bus := events.NewBus(rdb, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bus.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Wait until the subscription is live: publish probes until one arrives.
	probe := bus.Subscribe("probe")
	defer probe.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := bus.Publish(ctx, "probe", []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-probe.C:
			return testBundle{bus: bus, ctx: ctx}
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("bus never received its own publication")
		}
	}
}

func recv(t *testing.T, s *events.Subscription) string {
	t.Helper()
	select {
	case p := <-s.C:
		return string(p)
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return ""
	}
}

func TestPublishReachesOnlyTopicSubscribersInOrder(t *testing.T) {
	t.Parallel()
	tb := setup(t, events.Config{})
	a1, a2, b := tb.bus.Subscribe("a"), tb.bus.Subscribe("a"), tb.bus.Subscribe("b")
	defer a1.Close()
	defer a2.Close()
	defer b.Close()
	for _, p := range []string{"1", "2", "3\nwith newline"} {
		if err := tb.bus.Publish(tb.ctx, "a", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*events.Subscription{a1, a2} {
		for _, want := range []string{"1", "2", "3\nwith newline"} {
			if got := recv(t, s); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	if err := tb.bus.Publish(tb.ctx, "b", []byte("for b")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b); got != "for b" {
		t.Fatalf("b got %q", got)
	}
	select {
	case p := <-a1.C:
		t.Fatalf("a1 received %q published on b", p)
	default:
	}
}

func TestSlowSubscriberIsToldToResync(t *testing.T) {
	t.Parallel()
	tb := setup(t, events.Config{Buffer: 2})
	s := tb.bus.Subscribe("slow")
	defer s.Close()
	for i := 0; i < 5; i++ {
		if err := tb.bus.Publish(tb.ctx, "slow", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.Resync:
	case <-time.After(5 * time.Second):
		t.Fatal("no resync signal after overflowing the buffer")
	}
	if got := recv(t, s); got != "0" {
		t.Fatalf("first buffered message = %q, want 0", got)
	}
}

func TestClosedSubscriptionReceivesNothing(t *testing.T) {
	t.Parallel()
	tb := setup(t, events.Config{})
	s := tb.bus.Subscribe("c")
	s.Close()
	s.Close()
	if n := tb.bus.Subscribers(); n != 0 {
		t.Fatalf("Subscribers() = %d after Close, want 0", n)
	}
	other := tb.bus.Subscribe("c")
	defer other.Close()
	tb.bus.Publish(tb.ctx, "c", []byte("x"))
	recv(t, other)
	select {
	case p := <-s.C:
		t.Fatalf("closed subscription received %q", p)
	default:
	}
}

func TestReconnectSignalsResync(t *testing.T) {
	t.Parallel()
	name := "evkill" + strings.ReplaceAll(redistest.Prefix(), ":", "")
	rdb := redistest.Client(t, redisDB, name)
	bus := events.NewBus(rdb, events.Config{Channel: redistest.Prefix() + "events"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go bus.Run(ctx)
	s := bus.Subscribe("r")
	defer s.Close()
	admin := redistest.Client(t, redisDB, "evadmin")
	// Kill the bus's pub/sub connection (found by its client name) until
	// the bus has reconnected and said so.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, "name="+name+" ") && strings.Contains(line, " sub=1 ") {
				id := strings.Fields(line)[0] // id=N
				admin.Do(ctx, "CLIENT", "KILL", "ID", strings.TrimPrefix(id, "id="))
			}
		}
		select {
		case <-s.Resync:
			if err := bus.Publish(ctx, "r", []byte("after")); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, s); got != "after" {
				t.Fatalf("after reconnect got %q", got)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no resync signal after the pub/sub connection was killed")
}

func TestConcurrentPublicationsShareRedisMessages(t *testing.T) {
	tb := setup(t, events.Config{Buffer: 1024})
	const publishers, each = 16, 40
	subs := make([]*events.Subscription, publishers)
	for p := range subs {
		subs[p] = tb.bus.Subscribe(fmt.Sprintf("topic-%d", p))
		defer subs[p].Close()
	}
	before := tb.bus.Stats()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Payloads may hold anything, newlines included.
				payload := fmt.Sprintf("%d\n%d\nline", p, i)
				if err := tb.bus.Publish(tb.ctx, fmt.Sprintf("topic-%d", p), []byte(payload)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for p, s := range subs {
		for i := range each {
			if got, want := recv(t, s), fmt.Sprintf("%d\n%d\nline", p, i); got != want {
				t.Fatalf("topic-%d message %d = %q, want %q", p, i, got, want)
			}
		}
		select {
		case extra := <-s.C:
			t.Fatalf("topic-%d got an extra message %q", p, extra)
		default:
		}
	}
	after := tb.bus.Stats()
	pubs, msgs := after.Publications-before.Publications, after.Messages-before.Messages
	if pubs != publishers*each || msgs >= pubs {
		t.Fatalf("%d publications in %d Redis messages: not grouped", pubs, msgs)
	}
	t.Logf("%d publications in %d Redis messages", pubs, msgs)
}

func TestPublishAsyncKeepsOrderAndShareMessages(t *testing.T) {
	tb := setup(t, events.Config{Buffer: 1024})
	const topics, each = 4, 100
	subs := make([]*events.Subscription, topics)
	for p := range subs {
		subs[p] = tb.bus.Subscribe(fmt.Sprintf("async-%d", p))
		defer subs[p].Close()
	}
	before := tb.bus.Stats()
	for i := range each {
		for p := range topics {
			tb.bus.PublishAsync(tb.ctx, fmt.Sprintf("async-%d", p), []byte(fmt.Sprintf("%d\n%d", p, i)))
		}
	}
	// A topic with a newline is refused, and refusing it loses nothing else.
	tb.bus.PublishAsync(tb.ctx, "bad\ntopic", []byte("x"))
	tb.bus.PublishAsync(tb.ctx, "async-0", []byte("last"))
	if err := tb.bus.Flush(tb.ctx); err != nil {
		t.Fatal(err)
	}
	after := tb.bus.Stats()
	for p, s := range subs {
		for i := range each {
			if got, want := recv(t, s), fmt.Sprintf("%d\n%d", p, i); got != want {
				t.Fatalf("async-%d message %d = %q, want %q", p, i, got, want)
			}
		}
	}
	if got := recv(t, subs[0]); got != "last" {
		t.Fatalf("async-0 last message = %q, want %q", got, "last")
	}
	pubs, msgs := after.Publications-before.Publications, after.Messages-before.Messages
	if pubs != topics*each+1 || msgs >= pubs/10 {
		t.Fatalf("%d publications in %d Redis messages: want %d in fewer than a tenth as many messages", pubs, msgs, topics*each+1)
	}
	t.Logf("%d publications in %d Redis messages", pubs, msgs)
}

func TestAsyncPublicationsLingerToTravelTogether(t *testing.T) {
	tb := setup(t, events.Config{Buffer: 1024, Linger: 200 * time.Millisecond})
	sub := tb.bus.Subscribe("linger")
	defer sub.Close()
	before := tb.bus.Stats()
	const n = 30
	for i := range n {
		tb.bus.PublishAsync(tb.ctx, "linger", []byte(fmt.Sprint(i)))
		time.Sleep(2 * time.Millisecond) // spread over 60 ms: without a linger, one message each
	}
	for i := range n {
		if got := recv(t, sub); got != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, got)
		}
	}
	if msgs := tb.bus.Stats().Messages - before.Messages; msgs > 3 {
		t.Fatalf("%d publications spread over 60 ms went in %d Redis messages, want at most 3 with a 200 ms linger", n, msgs)
	}
	// A synchronous Publish cuts a linger short.
	start := time.Now()
	if err := tb.bus.Publish(tb.ctx, "linger", []byte("sync")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 150*time.Millisecond {
		t.Fatalf("Publish took %s", took)
	}
}
