package job

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// AsyncPublisher queues live notifications without waiting for them to be
// sent (an *events.Bus).
type AsyncPublisher interface {
	PublishAsync(ctx context.Context, topic string, payload []byte)
}

// Announcer publishes the job events the SQL store commits (it is the
// store's sqlstore.Announcer): on the topic of the job's ID, as the JSON
// of the event, which is what the API's event streams read. The store
// announces each commit's events together, once they are durable, so that
// a worker finishing dozens of jobs at once sends them in one Redis
// message instead of one round trip per event.
type Announcer struct {
	pub AsyncPublisher
	log *slog.Logger
}

// NewAnnouncer returns an Announcer publishing on pub. log may be nil.
func NewAnnouncer(pub AsyncPublisher, log *slog.Logger) *Announcer {
	return &Announcer{pub: pub, log: cmp.Or(log, slog.New(slog.DiscardHandler))}
}

// Announce queues one publication per event, in order.
func (a *Announcer) Announce(ctx context.Context, evs []tokenlysis.JobEvent) {
	for _, ev := range evs {
		payload, err := json.Marshal(ev)
		if err != nil {
			// Streams resynchronise from SQL; a lost notification only delays them.
			a.log.Error("job: encode event", "job_id", ev.JobID, "seq", ev.Seq, "err", err)
			continue
		}
		a.pub.PublishAsync(ctx, ev.JobID, payload)
	}
}
