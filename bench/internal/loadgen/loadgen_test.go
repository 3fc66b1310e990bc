package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRunClosedAndOpen(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "nope", http.StatusTeapot)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer ts.Close()
	do := func(path string) Do {
		return func(ctx context.Context, at time.Time) Sample {
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
			return Send(ts.Client(), req, at, http.StatusOK)
		}
	}
	ctx := context.Background()

	closed, elapsed := Run(ctx, 3, 200*time.Millisecond, 0, do("/"))
	if len(closed) < 3 || elapsed < 200*time.Millisecond {
		t.Fatalf("closed loop: %d samples in %v", len(closed), elapsed)
	}
	for _, s := range closed {
		if s.Err != nil || s.Status != 200 || s.Took <= 0 || s.Lag < 0 {
			t.Fatalf("closed sample %+v", s)
		}
	}

	open, _ := Run(ctx, 2, 500*time.Millisecond, 40, do("/bad"))
	if len(open) != 20 {
		t.Fatalf("open loop at 40/s for 0.5 s sent %d requests, want 20", len(open))
	}
	for _, s := range open {
		if s.Status != http.StatusTeapot || s.Body == "" || s.Took < s.Lag {
			t.Fatalf("open sample %+v", s)
		}
	}
}
