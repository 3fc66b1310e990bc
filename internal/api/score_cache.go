package api

import (
	"context"
	"sync"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// scoreCache keeps encoded GET /api/scores answers by query string. The
// latest scores change only when a recalculation finishes, which every API
// process hears on the events bus (Server.Run): then the cache is emptied.
// A TTL bounds staleness should a notification be lost.
type scoreCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]cachedBody
}

type cachedBody struct {
	body []byte
	at   time.Time
}

func (c *scoreCache) get(key string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Sub(e.at) > c.ttl {
		return nil, false
	}
	return e.body, true
}

func (c *scoreCache) put(key string, body []byte, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= c.max {
		c.entries = map[string]cachedBody{}
	}
	c.entries[key] = cachedBody{body: body, at: at}
}

func (c *scoreCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = nil
}

// Run empties the score cache whenever a recalculation finishes (or live
// notifications may have been missed), until ctx ends.
func (s *Server) Run(ctx context.Context) {
	sub := s.bus.Subscribe(tokenlysis.TopicScores)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.C:
			s.scores.clear()
		case <-sub.Resync:
			s.scores.clear()
		}
	}
}
