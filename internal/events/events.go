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
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	Logger *slog.Logger
}

// Bus publishes notifications and fans received ones out to subscribers.
type Bus struct {
	rdb     redis.UniversalClient
	channel string
	buffer  int
	log     *slog.Logger

	mu   sync.Mutex
	subs map[string]map[*Subscription]struct{}
}

// NewBus returns a Bus on rdb. Call Run to receive.
func NewBus(rdb redis.UniversalClient, cfg Config) *Bus {
	return &Bus{
		rdb:     rdb,
		channel: cmp.Or(cfg.Channel, "tokenlysis:events"),
		buffer:  cmp.Or(cfg.Buffer, 16),
		log:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		subs:    map[string]map[*Subscription]struct{}{},
	}
}

// Publish sends payload to every subscriber of topic in every process.
func (b *Bus) Publish(ctx context.Context, topic string, payload []byte) error {
	msg := make([]byte, 0, len(topic)+1+len(payload))
	msg = append(append(append(msg, topic...), '\n'), payload...)
	if err := b.rdb.Publish(ctx, b.channel, msg).Err(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
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

func (b *Bus) dispatch(msg string) {
	i := strings.IndexByte(msg, '\n')
	if i < 0 {
		return
	}
	topic, payload := msg[:i], []byte(msg[i+1:])
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[topic] {
		select {
		case s.c <- payload:
		default:
			s.signalResync()
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
