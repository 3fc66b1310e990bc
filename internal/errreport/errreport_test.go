package errreport_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/errreport"
)

func TestDisabledReporterDoesNothing(t *testing.T) {
	r, err := errreport.New("", "test", "")
	if err != nil || r.Enabled() {
		t.Fatalf("New(\"\") = %v, %v", r, err)
	}
	r.Capture(errors.New("x"), nil) // must not panic
	var nilR *errreport.Reporter
	nilR.Report(httptest.NewRequest("GET", "/", nil), errors.New("x"))
}

// TestReportsReachSentry runs a local endpoint speaking Sentry's envelope
// protocol and checks that a captured error arrives with its tags.
func TestReportsReachSentry(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		bodies = append(bodies, req.URL.Path+"\n"+string(b))
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer ts.Close()
	dsn := strings.Replace(ts.URL, "http://", "http://publickey@", 1) + "/42"
	r, err := errreport.New(dsn, "test", "v0")
	if err != nil || !r.Enabled() {
		t.Fatalf("New: %v", err)
	}
	r.Capture(errors.New("recalculation exploded"), map[string]string{"job_id": "j-1"})
	r.Flush(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 0 {
		t.Fatal("no report reached the Sentry endpoint")
	}
	all := strings.Join(bodies, "\n")
	if !strings.Contains(all, "/api/42/") || !strings.Contains(all, "recalculation exploded") || !strings.Contains(all, "j-1") {
		t.Fatalf("report does not carry the error and its tags:\n%s", all)
	}
}
