package feargreed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

type testBundle struct {
	client *Client
	hits   *atomic.Int64
	// queries holds the raw query of each request, in order.
	queries chan string
}

// setup starts a server answering the n-th /fng/ request with steps[n]
// (repeating the last) and a client pointed at it.
func setup(t *testing.T, cfg Config, steps ...http.HandlerFunc) *testBundle {
	t.Helper()
	b := &testBundle{hits: new(atomic.Int64), queries: make(chan string, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fng/" {
			http.Error(w, "unexpected path "+r.URL.Path, http.StatusTeapot)
			return
		}
		b.queries <- r.URL.RawQuery
		n := int(b.hits.Add(1)) - 1
		steps[min(n, len(steps)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL
	cfg.RetryBaseDelay = time.Millisecond
	cfg.RetryMaxDelay = 10 * time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.client = c
	return b
}

func body(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(s))
	}
}

func status(code int, contentType, s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		_, _ = w.Write([]byte(s))
	}
}

type apiPoint struct {
	Value          string `json:"value"`
	Classification string `json:"value_classification"`
	Timestamp      string `json:"timestamp"`
}

// history renders a response in the API's shape, newest first as
// alternative.me sends it.
func history(points ...apiPoint) string {
	b, err := json.Marshal(map[string]any{
		"name":     "Fear and Greed Index",
		"data":     points,
		"metadata": map[string]any{"error": nil},
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func unix(s string) string { return fmt.Sprint(day(s).Unix()) }

func TestHistorySample(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile("testdata/fng-limit-1.json")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, Config{}, body(string(sample)))
	got, err := b.client.History(t.Context(), 1)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	want := []Point{{Date: time.Unix(1777248000, 0).UTC(), Value: 47, Classification: "Neutral"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("History = %+v, want %+v", got, want)
	}
	if got[0].Date.Location() != time.UTC || !got[0].Date.Equal(day("2026-04-27")) {
		t.Errorf("Date = %v, want 2026-04-27 UTC", got[0].Date)
	}
	if q := <-b.queries; q != "limit=1" {
		t.Errorf("query = %q, want limit=1", q)
	}
}

func TestHistoryOrdersAndDedupes(t *testing.T) {
	t.Parallel()
	// Newest first, as the API sends it, with a second point on 2026-04-26
	// (an intraday refresh published after midnight) and a gap on 04-24.
	resp := history(
		apiPoint{"47", "Neutral", unix("2026-04-27")},
		apiPoint{"40", "Fear", fmt.Sprint(day("2026-04-26").Add(9 * time.Hour).Unix())},
		apiPoint{"38", "Fear", unix("2026-04-26")},
		apiPoint{"22", "Extreme Fear", unix("2026-04-25")},
		apiPoint{"80", "Extreme Greed", unix("2026-04-23")},
	)
	b := setup(t, Config{}, body(resp))
	got, err := b.client.History(t.Context(), 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	want := []Point{
		{day("2026-04-23"), 80, "Extreme Greed"},
		{day("2026-04-25"), 22, "Extreme Fear"},
		{day("2026-04-26"), 40, "Fear"},
		{day("2026-04-27"), 47, "Neutral"},
	}
	if len(got) != len(want) {
		t.Fatalf("History = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if q := <-b.queries; q != "limit=0" {
		t.Errorf("query = %q, want limit=0 (all)", q)
	}
}

func TestHistoryRetries(t *testing.T) {
	t.Parallel()
	ok := body(history(apiPoint{"47", "Neutral", "1777248000"}))
	tests := []struct {
		name     string
		steps    []http.HandlerFunc
		wantHits int64
	}{
		{"500 then success", []http.HandlerFunc{status(500, "text/plain", "oops"), ok}, 2},
		{"429 html then success", []http.HandlerFunc{status(429, "text/html", "<html>slow down</html>"), ok}, 2},
		{"truncated json then success", []http.HandlerFunc{body(`{"name":"Fear and Greed Index","data":[{"value":"4`), ok}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{}, tt.steps...)
			got, err := b.client.History(t.Context(), 1)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if len(got) != 1 || got[0].Value != 47 {
				t.Errorf("History = %+v, want one point of value 47", got)
			}
			if n := b.hits.Load(); n != tt.wantHits {
				t.Errorf("server hits = %d, want %d", n, tt.wantHits)
			}
		})
	}
}

func TestHistoryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      Config
		limit    int
		step     http.HandlerFunc
		wantCode string
		wantMsg  string
		wantHits int64
	}{
		{"metadata error", Config{}, 5, body(`{"name":"Fear and Greed Index","data":[],"metadata":{"error":"Limit must be a number"}}`), tokenlysis.EUNAVAILABLE, "Limit must be a number", 1},
		{"value not a number", Config{}, 1, body(history(apiPoint{"high", "Greed", "1777248000"})), tokenlysis.EUNAVAILABLE, `value "high"`, 1},
		{"value out of range", Config{}, 1, body(history(apiPoint{"101", "Greed", "1777248000"})), tokenlysis.EUNAVAILABLE, "out of range", 1},
		{"timestamp not a number", Config{}, 1, body(history(apiPoint{"47", "Neutral", "2026-04-27"})), tokenlysis.EUNAVAILABLE, `timestamp "2026-04-27"`, 1},
		{"404 with metadata error", Config{}, 1, status(404, "application/json", `{"metadata":{"error":"no such endpoint"}}`), tokenlysis.ENOTFOUND, "no such endpoint", 1},
		{"503 until retries run out", Config{MaxRetries: 2}, 1, status(503, "text/plain", "maintenance"), tokenlysis.EUNAVAILABLE, "3 attempts", 3},
		{"negative limit", Config{}, -1, body("{}"), tokenlysis.EINVALID, "limit", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.cfg, tt.step)
			_, err := b.client.History(t.Context(), tt.limit)
			if code := tokenlysis.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("code = %q, want %q (err: %v)", code, tt.wantCode, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if n := b.hits.Load(); n != tt.wantHits {
				t.Errorf("server hits = %d, want %d", n, tt.wantHits)
			}
		})
	}
}

func TestHistoryDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := b.client.History(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.baseURL != "https://api.alternative.me" {
		t.Errorf("default BaseURL = %q", c.baseURL)
	}
	if _, err := New(Config{BaseURL: "::not a url"}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("New with a bad BaseURL: err = %v, want invalid", err)
	}
}
