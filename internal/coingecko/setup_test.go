package coingecko

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultTestRedisURL is the Redis the tests use unless
// TOKENLYSIS_TEST_REDIS_URL says otherwise: DB 10 of the local server.
const defaultTestRedisURL = "redis://127.0.0.1:6379/10"

// testRedis connects to the test Redis and fails the test, with a message
// saying what to start, when it does not answer.
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	u := os.Getenv("TOKENLYSIS_TEST_REDIS_URL")
	if u == "" {
		u = defaultTestRedisURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("TOKENLYSIS_TEST_REDIS_URL %q: %v", u, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer (%v): start one (redis-server --port 6379) or set TOKENLYSIS_TEST_REDIS_URL", u, err)
	}
	return rdb
}

// testPrefix returns a key prefix unique to this test run and deletes its
// keys when the test ends.
func testPrefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_")
	prefix := fmt.Sprintf("tokenlysis-test:%s:%s:", name, hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// sample returns the JSON body of a testdata file, without its three header
// lines (method, path, flag).
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(b, []byte("\n"), 4)
	if len(lines) != 4 || !bytes.Equal(bytes.TrimSpace(lines[0]), []byte("GET")) {
		t.Fatalf("testdata/%s: want three header lines then JSON", name)
	}
	return lines[3]
}

// fakeGecko serves the CoinGecko endpoints the client uses, with payloads in
// the shape of the real samples. Handlers queued in fail answer the next
// requests before normal service resumes, to misbehave on purpose.
type fakeGecko struct {
	t        testing.TB
	markets  []map[string]any // the whole ranked list, paged by the server
	chart    []byte
	cats     []byte
	mu       sync.Mutex
	fail     []http.HandlerFunc
	requests []*http.Request
	// shift duplicates the last item of each page at the start of the next
	// one, as when ranks move between two page requests.
	shift bool
}

func newFakeGecko(t testing.TB, nMarkets int) *fakeGecko {
	var base []map[string]any
	if err := json.Unmarshal(sample(t, "coingecko-GetMarkets.txt"), &base); err != nil {
		t.Fatal(err)
	}
	f := &fakeGecko{t: t, chart: sample(t, "coingecko-GetMarketChart.txt"), cats: sample(t, "coingecko-GetMarketDataCategories.txt")}
	for i := range nMarkets {
		m := map[string]any{}
		for k, v := range base[0] {
			m[k] = v
		}
		if i > 0 {
			m["id"], m["symbol"], m["name"] = fmt.Sprintf("coin-%d", i+1), fmt.Sprintf("c%d", i+1), fmt.Sprintf("Coin %d", i+1)
			m["market_cap"] = 1e12 / float64(i+1)
		}
		m["market_cap_rank"] = i + 1
		f.markets = append(f.markets, m)
	}
	return f
}

// then queues handlers that answer the next requests.
func (f *fakeGecko) then(h ...http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, h...)
}

func (f *fakeGecko) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeGecko) request(i int) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[i]
}

var chartPath = regexp.MustCompile(`^/api/v3/coins/([^/]+)/market_chart$`)

func (f *fakeGecko) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	var h http.HandlerFunc
	if len(f.fail) > 0 {
		h, f.fail = f.fail[0], f.fail[1:]
	}
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/api/v3/coins/markets":
		page, _ := strconv.Atoi(q.Get("page"))
		perPage, _ := strconv.Atoi(q.Get("per_page"))
		if page < 1 || perPage < 1 || perPage > 250 || q.Get("vs_currency") != "usd" {
			writeJSON(w, 400, map[string]any{"error": "invalid page, per_page or vs_currency"})
			return
		}
		start := (page - 1) * perPage
		if f.shift && page > 1 {
			start--
		}
		start = min(start, len(f.markets))
		writeJSON(w, 200, f.markets[start:min(start+perPage, len(f.markets))])
	case r.URL.Path == "/api/v3/coins/categories":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.cats)
	case chartPath.MatchString(r.URL.Path):
		id := chartPath.FindStringSubmatch(r.URL.Path)[1]
		if id != "ethereum" {
			writeJSON(w, 404, map[string]any{"error": "coin not found"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.chart)
	default:
		writeJSON(w, 404, map[string]any{"status": map[string]any{"error_code": 404, "error_message": "no route " + r.URL.Path}})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// respond answers with a status, content type, body and header pairs.
func respond(code int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

const rateLimited = `{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}`

const rateLimitedHTML = `<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>`

// testBundle is a client talking to a fake CoinGecko, with its budget in
// the test Redis under a prefix of its own.
type testBundle struct {
	client *Client
	gecko  *fakeGecko
	srv    *httptest.Server
	rdb    *redis.Client
	prefix string
	cfg    Config
	now    *clock
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// setup starts a fake CoinGecko holding nMarkets markets and a client on it.
// cfg fields left zero get test values: demo plan, a key, a fast rate and
// millisecond backoff.
func setup(t testing.TB, cfg Config, nMarkets int) *testBundle {
	t.Helper()
	gecko := newFakeGecko(t, nMarkets)
	srv := httptest.NewServer(gecko)
	t.Cleanup(srv.Close)
	rdb := testRedis(t)
	b := &testBundle{gecko: gecko, srv: srv, rdb: rdb, prefix: testPrefix(t, rdb),
		now: &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}}
	if cfg.Plan == "" {
		cfg.Plan, cfg.APIKey = PlanDemo, "CG-test-key"
	}
	cfg.BaseURL = srv.URL + "/api/v3"
	if cfg.RatePerMinute == 0 {
		cfg.RatePerMinute = 600_000
	}
	if cfg.RetryBaseDelay == 0 {
		cfg.RetryBaseDelay = time.Millisecond
	}
	if cfg.RetryMaxDelay == 0 {
		cfg.RetryMaxDelay = 20 * time.Millisecond
	}
	cfg.Now = b.now.Now
	b.cfg = cfg
	b.client = b.newClient(t)
	return b
}

// newClient builds another Client on the same server and budget keys, with
// its own Redis connection: a second process, or the same one restarted.
func (b *testBundle) newClient(t testing.TB) *Client {
	t.Helper()
	rdb := redis.NewClient(b.rdb.Options())
	t.Cleanup(func() { rdb.Close() })
	c, err := New(b.cfg, NewRedisBudget(rdb, b.prefix))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func contains(s string, subs ...string) string {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
