package httpretry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// testBundle holds what each test needs: a client pointed at a local server
// whose responses are a script, and the number of requests it received.
type testBundle struct {
	client *Client
	url    string
	hits   *atomic.Int64
}

// script answers the n-th request (0-based) with steps[n], repeating the
// last step once the script is exhausted.
func script(hits *atomic.Int64, steps ...http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1)) - 1
		steps[min(n, len(steps)-1)](w, r)
	}
}

func setup(t *testing.T, cfg Config, steps ...http.HandlerFunc) *testBundle {
	t.Helper()
	hits := new(atomic.Int64)
	srv := httptest.NewServer(script(hits, steps...))
	t.Cleanup(srv.Close)
	cfg.Service = "Example"
	cfg.BaseDelay = cmpDur(cfg.BaseDelay, time.Millisecond)
	cfg.MaxDelay = cmpDur(cfg.MaxDelay, 20*time.Millisecond)
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testBundle{client: c, url: srv.URL + "/thing", hits: hits}
}

func cmpDur(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func status(code int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func okJSON(body string) http.HandlerFunc { return status(200, "application/json", body) }

// hangUp closes the connection without answering: a network error.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// shortBody promises more bytes than it sends, then hangs up: the client
// sees a truncated body (unexpected EOF), as when a proxy cuts a response.
func shortBody(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"value\":")
	_ = buf.Flush()
	conn.Close()
}

type payload struct {
	Value int `json:"value"`
}

func TestGetJSONRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		steps    []http.HandlerFunc
		wantHits int64
	}{
		{"first try", []http.HandlerFunc{okJSON(`{"value":7}`)}, 1},
		{"500 then success", []http.HandlerFunc{status(500, "text/plain", "boom"), okJSON(`{"value":7}`)}, 2},
		{"502 503 then success", []http.HandlerFunc{status(502, "text/html", "<html>bad gateway</html>"), status(503, "text/plain", ""), okJSON(`{"value":7}`)}, 3},
		{"429 json then success", []http.HandlerFunc{status(429, "application/json", `{"status":{"error_code":429,"error_message":"slow down"}}`, "Retry-After", "0"), okJSON(`{"value":7}`)}, 2},
		{"429 html then success", []http.HandlerFunc{status(429, "text/html", "<html><body>Too Many Requests</body></html>"), okJSON(`{"value":7}`)}, 2},
		{"connection closed then success", []http.HandlerFunc{hangUp, okJSON(`{"value":7}`)}, 2},
		{"truncated body then success", []http.HandlerFunc{shortBody, okJSON(`{"value":7}`)}, 2},
		{"invalid json then success", []http.HandlerFunc{okJSON(`{"value":`), okJSON(`{"value":7}`)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{}, tt.steps...)
			var got payload
			if err := b.client.GetJSON(t.Context(), b.url, nil, &got); err != nil {
				t.Fatalf("GetJSON: %v", err)
			}
			if got.Value != 7 {
				t.Errorf("value = %d, want 7", got.Value)
			}
			if n := b.hits.Load(); n != tt.wantHits {
				t.Errorf("server hits = %d, want %d", n, tt.wantHits)
			}
		})
	}
}

func TestGetJSONErrors(t *testing.T) {
	t.Parallel()
	message := func(body []byte) string {
		if strings.HasPrefix(string(body), "msg:") {
			return strings.TrimPrefix(string(body), "msg:")
		}
		return ""
	}
	tests := []struct {
		name       string
		cfg        Config
		step       http.HandlerFunc
		wantHits   int64
		wantCode   string
		wantInMsg  []string
		wantNotMsg string
	}{
		{"404 is not retried", Config{}, status(404, "text/plain", "msg:coin not found"), 1, tokenlysis.ENOTFOUND, []string{"HTTP 404", "coin not found", "Example"}, ""},
		{"400 is not retried", Config{}, status(400, "text/plain", "msg:bad days"), 1, tokenlysis.EINVALID, []string{"HTTP 400", "bad days"}, ""},
		{"401 is not retried", Config{}, status(401, "text/plain", "msg:API Key Missing"), 1, tokenlysis.EUNAVAILABLE, []string{"HTTP 401", "API Key Missing"}, ""},
		{"429 until retries run out", Config{MaxRetries: 3}, status(429, "text/html", "<html>"+strings.Repeat("x", 5000)+"</html>"), 4, tokenlysis.EUNAVAILABLE, []string{"HTTP 429", "4 attempts"}, strings.Repeat("x", 500)},
		{"500 with retries disabled", Config{MaxRetries: -1}, status(500, "text/plain", "msg:oops"), 1, tokenlysis.EUNAVAILABLE, []string{"HTTP 500", "oops", "1 attempt"}, ""},
		{"network error until retries run out", Config{MaxRetries: 2}, hangUp, 3, tokenlysis.EUNAVAILABLE, []string{"3 attempts", "Example"}, ""},
		{"invalid json twice", Config{}, okJSON(`[{"id":"bitcoin","sym`), 2, tokenlysis.EUNAVAILABLE, []string{"invalid JSON", `[{"id":"bitcoin","sym`}, ""},
		{"html page with status 200", Config{}, status(200, "text/html", "<html>maintenance</html>"), 2, tokenlysis.EUNAVAILABLE, []string{"invalid JSON", "text/html"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.ErrorMessage = message
			b := setup(t, tt.cfg, tt.step)
			var got payload
			err := b.client.GetJSON(t.Context(), b.url, nil, &got)
			if err == nil {
				t.Fatal("GetJSON: no error")
			}
			if code := tokenlysis.ErrorCode(err); code != tt.wantCode {
				t.Errorf("code = %q, want %q (err: %v)", code, tt.wantCode, err)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tt.wantNotMsg != "" && strings.Contains(err.Error(), tt.wantNotMsg) {
				t.Errorf("error quotes the whole body: %.200q", err)
			}
			if n := b.hits.Load(); n != tt.wantHits {
				t.Errorf("server hits = %d, want %d", n, tt.wantHits)
			}
		})
	}
}

func TestGetJSONHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxDelay: 5 * time.Second},
		status(429, "application/json", `{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}`, "Retry-After", "1"),
		okJSON(`{"value":7}`))
	start := time.Now()
	var got payload
	if err := b.client.GetJSON(t.Context(), b.url, nil, &got); err != nil {
		t.Fatalf("GetJSON: %v", err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, want at least the 1s Retry-After", elapsed)
	}
	if got.Value != 7 || b.hits.Load() != 2 {
		t.Errorf("value = %d, hits = %d; want 7, 2", got.Value, b.hits.Load())
	}
}

func TestGetJSONCapsRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxDelay: 30 * time.Millisecond},
		status(429, "text/html", "<html>rate limited</html>", "Retry-After", "3600"),
		okJSON(`{"value":7}`))
	start := time.Now()
	var got payload
	if err := b.client.GetJSON(t.Context(), b.url, nil, &got); err != nil {
		t.Fatalf("GetJSON: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("waited %v, want the 30ms cap", elapsed)
	}
}

func TestGetJSONContext(t *testing.T) {
	t.Parallel()
	t.Run("cancel during retry wait", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{MaxDelay: time.Minute},
			status(429, "application/json", `{}`, "Retry-After", "30"))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := b.client.GetJSON(ctx, b.url, nil, new(payload))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("returned after %v, want soon after the deadline", elapsed)
		}
		if n := b.hits.Load(); n != 1 {
			t.Errorf("server hits = %d, want 1", n)
		}
	})
	t.Run("slow response past the deadline", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		b := setup(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := b.client.GetJSON(ctx, b.url, nil, new(payload))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("returned after %v, want soon after the deadline", elapsed)
		}
		if n := b.hits.Load(); n != 1 {
			t.Errorf("server hits = %d, want 1 (no retry once the context is done)", n)
		}
	})
}

func TestGetJSONBeforeAttempt(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	refusal := tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "budget exhausted")
	b := setup(t, Config{BeforeAttempt: func(ctx context.Context) error {
		if calls.Add(1) > 2 {
			return refusal
		}
		return nil
	}}, status(500, "text/plain", "boom"))
	err := b.client.GetJSON(t.Context(), b.url, nil, new(payload))
	if !errors.Is(err, refusal) {
		t.Fatalf("err = %v, want the hook's error", err)
	}
	if n := b.hits.Load(); n != 2 {
		t.Errorf("server hits = %d, want 2 (the third attempt was refused by the hook)", n)
	}
}

func TestGetJSONSendsHeaders(t *testing.T) {
	t.Parallel()
	var got http.Header
	b := setup(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		okJSON(`{"value":1}`)(w, r)
	})
	h := http.Header{"X-Api-Key": {"secret"}}
	if err := b.client.GetJSON(t.Context(), b.url, h, new(payload)); err != nil {
		t.Fatalf("GetJSON: %v", err)
	}
	if got.Get("X-Api-Key") != "secret" {
		t.Errorf("X-Api-Key = %q, want secret", got.Get("X-Api-Key"))
	}
	if got.Get("Accept") != "application/json" {
		t.Errorf("Accept = %q, want application/json", got.Get("Accept"))
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 12 ", 12 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		got, ok := retryAfter(h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Service: "Example", BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		retry    int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := c.backoff(tt.retry)
			if d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.retry, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter: always %v", tt.retry, seen)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("New without Service: err = %v, want invalid", err)
	}
	if _, err := New(Config{Service: "x", BaseDelay: time.Minute, MaxDelay: time.Second}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("New with BaseDelay > MaxDelay: err = %v, want invalid", err)
	}
}

func TestGetJSONBodyTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxBodyBytes: 10}, okJSON(`{"value":1234567890}`))
	err := b.client.GetJSON(t.Context(), b.url, nil, new(payload))
	if tokenlysis.ErrorCode(err) != tokenlysis.EUNAVAILABLE || !strings.Contains(err.Error(), "over 10 bytes") {
		t.Fatalf("err = %v, want unavailable: body over 10 bytes", err)
	}
	if n := b.hits.Load(); n != 1 {
		t.Errorf("server hits = %d, want 1 (a body too large is not retried)", n)
	}
}

// TestGetJSONUnresolvableHostFailsFast: a name that does not resolve is
// retried once, not through the whole series, while other network errors
// use every retry.
func TestGetJSONUnresolvableHostFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int64
	}{
		{"nxdomain", &net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}, 2},
		{"refused", errors.New("connect: connection refused"), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int64
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return nil, &net.OpError{Op: "dial", Net: network, Err: tc.err}
			}}}
			c, err := New(Config{Service: "Test", HTTPClient: client, MaxRetries: 4, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = c.GetJSON(context.Background(), "http://api.example/x", nil, new(any))
			if tokenlysis.ErrorCode(err) != tokenlysis.EUNAVAILABLE {
				t.Fatalf("err = %v, want unavailable", err)
			}
			if n := dials.Load(); n != tc.want {
				t.Fatalf("%d attempts, want %d", n, tc.want)
			}
		})
	}
}
