// Package events carries live notifications between processes over one
// Redis pub/sub channel and fans them out, inside each API process, to the
// streams that asked for a topic (a job's ID, or "scores").
//
// Redis pub/sub delivers at most once, so a notification is a hint that
// carries data for speed, never the record: SQL keeps every job event, and
// a subscriber that may have missed something (its buffer was full, or the
// connection to Redis dropped and came back) is told to resynchronise from
// SQL through Subscription.Resync.
package events

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenlysis/tokenlysis/internal/batch"
)

// Config configures a Bus. Zero fields take the documented defaults.
type Config struct {
	// Channel is the Redis pub/sub channel. Pub/sub channels are shared by
	// every database index of a Redis server, so the prefix isolates
	// deployments and test runs. Default "tokenlysis:events".
	Channel string
	// Buffer is the number of messages a subscriber may lag behind before
	// it is told to resynchronise (and reads SQL). Default 16: thousands of
	// idle streams each hold one.
	Buffer int
	// Linger is how long asynchronous publications wait for company: after
	// a Redis message that carried only PublishAsync publications, the
	// next message goes out no sooner than Linger later (or as soon as a
	// Publish or Flush comes), with whatever was queued meanwhile. A
	// notification is a hint that streams deliver within milliseconds
	// anyway, and a worker finishing thousands of jobs a second then sends
	// a few messages where it would send one per commit. Default 1 ms;
	// negative: none.
	Linger time.Duration
	Logger *slog.Logger
}

// Bus publishes notifications and fans received ones out to subscribers.
//
// Publications made at the same time travel together: the ones that
// arrive while a Redis message is being published go out as the next
// message (a batch.Group), so a worker reporting on dozens of jobs at once
// makes a few round trips instead of one each. A message is a sequence of
// records, each "topic\n<payload length>\n<payload>".
type Bus struct {
	rdb     redis.UniversalClient
	channel string
	buffer  int
	linger  time.Duration
	hurry   chan struct{} // a Publish or Flush is waiting: end a linger
	log     *slog.Logger
	out     *batch.Group[*publication]

	publications, messages atomic.Int64

	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{}
}

// NewBus returns a Bus on rdb. Call Run to receive.
func NewBus(rdb redis.UniversalClient, cfg Config) *Bus {
	b := &Bus{
		rdb:     rdb,
		channel: cmp.Or(cfg.Channel, "tokenlysis:events"),
		buffer:  cmp.Or(cfg.Buffer, 16),
		linger:  max(cmp.Or(cfg.Linger, time.Millisecond), 0),
		hurry:   make(chan struct{}, 1),
		log:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		subs:    map[string]map[*Subscription]struct{}{},
	}
	b.out = batch.New(b.send, batch.Config{})
	return b
}

// publication is one Publish or PublishAsync call waiting for its message
// (or a Flush: no topic).
type publication struct {
	topic   string
	payload []byte
	async   bool // nobody waits for err: send logs it
	err     error
}

// Publish sends payload to every subscriber of topic in every process,
// and returns once Redis has taken it. A topic must not contain a newline.
func (b *Bus) Publish(ctx context.Context, topic string, payload []byte) error {
	if strings.ContainsRune(topic, '\n') {
		return fmt.Errorf("publish: topic %q holds a newline", topic)
	}
	p := &publication{topic: topic, payload: payload}
	b.publications.Add(1)
	b.hasten()
	b.out.Do(ctx, p)
	if p.err != nil {
		return fmt.Errorf("publish %s: %w", topic, p.err)
	}
	return nil
}

// PublishAsync is Publish without waiting: it queues the publication and
// returns at once. The publications one goroutine queues go out in the
// order it queued them, after its earlier Publish calls; a failure is
// logged, since a notification is only a hint (subscribers resync from
// the durable store).
func (b *Bus) PublishAsync(ctx context.Context, topic string, payload []byte) {
	if strings.ContainsRune(topic, '\n') {
		b.log.Error("events: publication refused: topic holds a newline", "topic", topic)
		return
	}
	b.publications.Add(1)
	b.out.Go(ctx, &publication{topic: topic, payload: payload, async: true})
}

// Flush waits until every publication queued before it has been sent (or
// has failed), as a process does before it exits.
func (b *Bus) Flush(ctx context.Context) error {
	p := &publication{}
	b.hasten()
	b.out.Do(ctx, p)
	return p.err
}

// hasten ends the linger of the message being sent, if any.
func (b *Bus) hasten() {
	select {
	case b.hurry <- struct{}{}:
	default:
	}
}

// send publishes ps as one Redis message.
func (b *Bus) send(ctx context.Context, ps []*publication) {
	n, async := 0, 0
	for _, p := range ps {
		if p.topic != "" {
			n += len(p.topic) + len(p.payload) + 12
		}
		if p.async {
			async++
		}
	}
	if n == 0 {
		return // only Flush calls
	}
	msg := make([]byte, 0, n)
	for _, p := range ps {
		if p.topic == "" {
			continue
		}
		msg = append(msg, p.topic...)
		msg = append(msg, '\n')
		msg = strconv.AppendInt(msg, int64(len(p.payload)), 10)
		msg = append(msg, '\n')
		msg = append(msg, p.payload...)
	}
	b.messages.Add(1)
	err := b.rdb.Publish(ctx, b.channel, msg).Err()
	if err != nil && async > 0 {
		b.log.Warn("events: publish failed", "channel", b.channel, "publications", async, "err", err)
	}
	for _, p := range ps {
		p.err = err
	}
	if b.linger > 0 && async == len(ps) {
		// Holding the lead keeps the next message back while publications
		// gather; nobody waits for this one. A Publish or Flush cuts it
		// short.
		t := time.NewTimer(b.linger)
		select {
		case <-t.C:
		case <-b.hurry:
			t.Stop()
		}
	}
}

// Stats counts what a Bus published.
type Stats struct {
	Publications int64 // Publish and PublishAsync calls
	Messages     int64 // Redis messages that carried them
}

// Stats returns what this Bus published so far.
func (b *Bus) Stats() Stats {
	return Stats{Publications: b.publications.Load(), Messages: b.messages.Load()}
}

// Subscription receives the payloads published on one topic.
type Subscription struct {
	// C delivers payloads in publication order.
	C <-chan []byte
	// Resync is signalled when messages may have been missed; the reader
	// should reload what it shows from the durable store.
	Resync <-chan struct{}

	c      chan []byte
	resync chan struct{}
	topic  string
	bus    *Bus
	once   sync.Once
}

// Subscribe starts delivering the payloads published on topic. Close the
// subscription when done.
func (b *Bus) Subscribe(topic string) *Subscription {
	s := &Subscription{c: make(chan []byte, b.buffer), resync: make(chan struct{}, 1), topic: topic, bus: b}
	s.C, s.Resync = s.c, s.resync
	b.mu.Lock()
	set := b.subs[topic]
	if set == nil {
		set = map[*Subscription]struct{}{}
		b.subs[topic] = set
	}
	set[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Close stops delivery. It is safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		b := s.bus
		b.mu.Lock()
		if set := b.subs[s.topic]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(b.subs, s.topic)
			}
		}
		b.mu.Unlock()
	})
}

func (s *Subscription) signalResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// Subscribers returns how many subscriptions are open, for metrics.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, set := range b.subs {
		n += len(set)
	}
	return n
}

// dispatch hands each record of msg to the subscribers of its topic. A
// malformed record ends the message (and is logged): what it held is lost,
// as a dropped notification would be.
func (b *Bus) dispatch(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for msg != "" {
		i := strings.IndexByte(msg, '\n')
		j := strings.IndexByte(msg[i+1:], '\n') + i + 1
		if i < 0 || j <= i {
			b.log.Warn("events: malformed message", "channel", b.channel)
			return
		}
		n, err := strconv.Atoi(msg[i+1 : j])
		if err != nil || n < 0 || n > len(msg)-j-1 {
			b.log.Warn("events: malformed message", "channel", b.channel)
			return
		}
		topic, payload := msg[:i], msg[j+1:j+1+n]
		msg = msg[j+1+n:]
		set := b.subs[topic]
		if len(set) == 0 {
			continue
		}
		p := []byte(payload)
		for s := range set {
			select {
			case s.c <- p:
			default:
				s.signalResync()
			}
		}
	}
}

func (b *Bus) resyncAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, set := range b.subs {
		for s := range set {
			s.signalResync()
		}
	}
}

// Run receives from Redis until ctx ends, reconnecting with a capped
// backoff. After every reconnection all subscribers are told to resync,
// since messages published while disconnected are gone.
func (b *Bus) Run(ctx context.Context) error {
	ps := b.rdb.Subscribe(ctx, b.channel)
	// Receive does not watch ctx while it blocks on the socket: closing
	// the subscription is what unblocks it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	defer ps.Close()
	subscribed, backoff := false, 50*time.Millisecond
	for {
		m, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			b.log.Warn("events: receive failed, reconnecting", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if subscribed {
					b.resyncAll()
				}
				subscribed, backoff = true, 50*time.Millisecond
			}
		case *redis.Message:
			b.dispatch(m.Payload)
		}
	}
}
