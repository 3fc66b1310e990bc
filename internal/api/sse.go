package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

const eventPage = 500

// jobEvents streams a job's events over SSE: first those after
// Last-Event-ID (all of them without it), then live ones as they happen,
// each with its sequence number as the SSE id, in order, with no gaps and
// no duplicates. The stream ends after a terminal event; a client that
// already has the terminal event gets 204 No Content (SSE's "do not
// reconnect"), and an id past the job's last event is refused.
//
// Live notifications come over the events bus; SQL is the record. Any
// notification out of order (a gap), a resync signal (missed messages) or
// the heartbeat tick makes the handler read SQL for what follows the last
// event it sent, so a lost notification only delays an event.
func (s *Server) jobEvents(c *gin.Context) {
	ctx := c.Request.Context()
	j, err := s.jobs.Find(ctx, principal(c), c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	last, field, err := lastEventID(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	switch {
	case last > j.LastSeq:
		// Not an id of this job's (the id of another job's event, or of a
		// database restored from an older backup): resuming from it would
		// skip events the client never had.
		s.writeError(c, &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: field,
			Message: fmt.Sprintf("Must not be after the job's last event (%d).", j.LastSeq)})
		return
	case last == j.LastSeq && j.Status.Terminal():
		// The client has it all, the terminal event included: a browser's
		// EventSource reconnects by itself when a stream ends, and 204 is
		// how SSE tells it to stop.
		c.Status(http.StatusNoContent)
		return
	}
	// Subscribe before reading SQL so nothing falls between the two.
	sub := s.bus.Subscribe(j.ID)
	defer sub.Close()

	w := startSSE(c)

	done := false
	var lastKind tokenlysis.EventKind // of the last event sent
	send := func(ev tokenlysis.JobEvent) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Kind, b); err != nil {
			return err
		}
		last, lastKind = ev.Seq, ev.Kind
		return nil
	}
	// catchUp sends what SQL has after last. The stream ends at a terminal
	// event that is the job's latest (a retried job goes on after one).
	catchUp := func() error {
		for {
			evs, err := s.jobs.Events(ctx, j.ID, last, eventPage)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if err := send(ev); err != nil {
					return err
				}
			}
			w.Flush()
			if len(evs) < eventPage {
				// SQL has nothing after the last event sent, which may
				// have ended the previous (full) page.
				done = lastKind.Terminal()
				return nil
			}
		}
	}
	if err := catchUp(); err != nil || done {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	expired, stop := tokenExpiry(c)
	defer stop()
	for !done {
		select {
		case <-ctx.Done():
			return
		case <-expired:
			sseTokenExpired(w)
			return
		case payload := <-sub.C:
			var ev tokenlysis.JobEvent
			if json.Unmarshal(payload, &ev) != nil || ev.Seq <= last {
				continue
			}
			if ev.Seq != last+1 {
				if catchUp() != nil {
					return
				}
				continue
			}
			if send(ev) != nil {
				return
			}
			w.Flush()
			done = ev.Kind.Terminal()
		case <-sub.Resync:
			if catchUp() != nil {
				return
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			w.Flush()
			if catchUp() != nil {
				return
			}
		}
	}
}

// lastEventID reads the SSE resume point, and where it came from: the
// Last-Event-ID header that browsers send on reconnect, or the
// last_event_id query parameter.
func lastEventID(c *gin.Context) (id int64, field string, err error) {
	v := c.GetHeader("Last-Event-ID")
	field = "Last-Event-ID"
	if v == "" {
		v, field = c.Query("last_event_id"), "last_event_id"
	}
	if v == "" {
		return 0, field, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, field, &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: field, Message: "Must be a non-negative event id."}
	}
	return n, field, nil
}

// startSSE answers 200 with the headers of an event stream (no caching, no
// proxy buffering) and the client's reconnection delay, flushed at once.
func startSSE(c *gin.Context) gin.ResponseWriter {
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	w.Flush()
	return w
}
