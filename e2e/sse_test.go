package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	ID    string // the id field as sent
	Event string
	Data  string
}

// sseStream reads a text/event-stream response.
type sseStream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openEvents opens GET /api/jobs/{id}/events, with Last-Event-ID when
// lastEventID is not empty. The whole stream must end within timeout.
func (s *stack) openEvents(id, lastEventID string, timeout time.Duration) *sseStream {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	req, err := http.NewRequestWithContext(ctx, "GET", s.baseURL+"/api/jobs/"+id+"/events", nil)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	// No client timeout: the context bounds the stream.
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET /api/jobs/%s/events: %v", id, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		s.t.Fatalf("GET /api/jobs/%s/events: status %d, Content-Type %q; body: %s", id, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	st := &sseStream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	s.t.Cleanup(st.close)
	return st
}

// next returns the next event; io.EOF when the server ended the stream
// cleanly between events.
func (st *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	fields := 0
	for {
		line, err := st.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" && fields == 0 {
				return ev, io.EOF
			}
			if line == "" && fields == 0 {
				return ev, fmt.Errorf("stream did not end by itself: %w", err)
			}
			return ev, fmt.Errorf("stream cut inside an event (line %q): %w", line, err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if fields > 0 && (data != nil || ev.Event != "" || ev.ID != "") {
				ev.Data = strings.Join(data, "\n")
				return ev, nil
			}
			fields = 0 // a block with only retry: or comments dispatches nothing
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment (heartbeat)
		}
		fields++
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		case "retry":
		default:
			return ev, fmt.Errorf("unknown SSE field in %q", line)
		}
	}
}

// close drops the connection.
func (st *sseStream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// jobEvent is a received event with its JobEvent payload decoded.
type jobEvent struct {
	tokenlysis.JobEvent
	Raw sseEvent // as received
}

// decode checks that an SSE event is well formed for job id: a numeric
// id equal to data.seq, an event name equal to data.kind.
func decodeEvent(t *testing.T, jobID string, ev sseEvent) jobEvent {
	t.Helper()
	var je tokenlysis.JobEvent
	if err := json.Unmarshal([]byte(ev.Data), &je); err != nil {
		t.Fatalf("SSE event %+v: data is not a JobEvent: %v", ev, err)
	}
	id, err := strconv.ParseInt(ev.ID, 10, 64)
	if err != nil || id != je.Seq || ev.Event != string(je.Kind) || je.JobID != jobID {
		t.Fatalf("SSE event %+v: id/event disagree with data (seq %d, kind %q, job %q; want job %q)", ev, je.Seq, je.Kind, je.JobID, jobID)
	}
	return jobEvent{JobEvent: je, Raw: ev}
}

// readUntil reads events until stop says so (the last event is included)
// or the server ends the stream (ended is then true).
func (st *sseStream) readUntil(t *testing.T, jobID string, stop func(jobEvent) bool) (evs []jobEvent, ended bool) {
	t.Helper()
	for {
		ev, err := st.next()
		if errors.Is(err, io.EOF) {
			return evs, true
		}
		if err != nil {
			t.Fatalf("SSE stream of job %s after %d events (%s): %v", jobID, len(evs), kinds(evs), err)
		}
		je := decodeEvent(t, jobID, ev)
		evs = append(evs, je)
		if stop != nil && stop(je) {
			return evs, false
		}
	}
}

// readAll reads a stream to its end, which the server must reach by itself.
func (st *sseStream) readAll(t *testing.T, jobID string) []jobEvent {
	t.Helper()
	evs, _ := st.readUntil(t, jobID, nil)
	return evs
}

// wantContiguous checks that evs are numbered from, from+1, … with no gap
// or duplicate, and that the last one is terminal with kind last.
func wantContiguous(t *testing.T, what string, evs []jobEvent, from int64, last tokenlysis.EventKind) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatalf("%s: no events", what)
	}
	for i, ev := range evs {
		if ev.Seq != from+int64(i) {
			t.Fatalf("%s: event %d has id %d, want %d (ids %s)", what, i, ev.Seq, from+int64(i), ids(evs))
		}
	}
	if got := evs[len(evs)-1].Kind; got != last {
		t.Fatalf("%s: last event is %q, want %q (%s)", what, got, last, kinds(evs))
	}
}

func kinds(evs []jobEvent) string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = string(ev.Kind)
	}
	return strings.Join(s, ",")
}

func ids(evs []jobEvent) string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = ev.Raw.ID
	}
	return strings.Join(s, ",")
}

// count returns how many events are of kind k.
func count(evs []jobEvent, k tokenlysis.EventKind) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}
