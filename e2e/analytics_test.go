package e2e

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
	"github.com/tokenlysis/tokenlysis/internal/marketcsv"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// submit posts a job of any type and checks the 202.
func (s *stack) submit(typ string, params any) tokenlysis.Job {
	s.t.Helper()
	r := s.do("POST", "/api/jobs", map[string]any{"type": typ, "params": params})
	if r.Status != http.StatusAccepted {
		s.t.Fatalf("POST /api/jobs %s: status %d; body: %s", typ, r.Status, r.Body)
	}
	return decodeJob(s.t, "POST /api/jobs", r.Body)
}

func (s *stack) getJSON(path string, v any) {
	s.t.Helper()
	r := s.do("GET", path, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("GET %s: status %d; body: %s", path, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		s.t.Fatalf("GET %s: %v: %s", path, err, r.Body)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAnalyticsOnTheEmbeddedDefault is the analytics issue's "done when",
// as a new user would try it: with the market API out of reach, ingest
// falls back to the demo universe; a recalculation fills the scores while
// its event stream shows progress; the top list is sensible; the real BTC
// and ETH exports import, and their RSI history is served.
func TestAnalyticsOnTheEmbeddedDefault(t *testing.T) {
	t.Parallel()
	imports := t.TempDir()
	s := newStack(t, stackConfig{RedisDB: 8, Env: map[string]string{
		"TOKENLYSIS_COINGECKO_BASE_URL": "http://127.0.0.1:1/api/v3", // nothing listens: the API "cannot be reached"
		"TOKENLYSIS_MARKET_MAX_RETRIES": "0",
		"TOKENLYSIS_IMPORT_DIR":         imports,
	}})

	ingest := s.submit("market:ingest", map[string]any{"limit": 50})
	ingest = s.waitFinished(ingest.ID, 60*time.Second)
	var ingested struct{ Source string }
	json.Unmarshal(ingest.Result, &ingested)
	if ingest.Status != tokenlysis.JobSucceeded || ingested.Source != "demo" {
		t.Fatalf("market:ingest without CoinGecko = %s %s (%s), want succeeded from the demo source", ingest.Status, ingest.Result, ingest.Error)
	}

	recalc := s.submit("scores:recalculate", map[string]any{})
	stream := s.openEvents(recalc.ID, "", 90*time.Second)
	evs := stream.readAll(t, recalc.ID)
	stream.close()
	if count(evs, tokenlysis.EventProgress) < 2 || evs[len(evs)-1].Kind != tokenlysis.EventSucceeded {
		t.Fatalf("recalculation events = %s, want progress per chunk then succeeded", kinds(evs))
	}
	var top struct {
		Items []struct {
			Coin   string   `json:"coin"`
			Date   string   `json:"date"`
			Global *float64 `json:"global"`
			Source string   `json:"source"`
		} `json:"items"`
	}
	s.getJSON("/api/scores?limit=100", &top)
	if len(top.Items) != 100 {
		t.Fatalf("GET /api/scores?limit=100 returned %d items", len(top.Items))
	}
	prev, lo, hi := math.Inf(1), math.Inf(1), math.Inf(-1)
	for _, it := range top.Items {
		if it.Global == nil || it.Date == "" || it.Source != "demo" {
			t.Fatalf("top item %+v lacks a score, its day or its source", it)
		}
		if *it.Global > prev {
			t.Fatalf("top list not sorted by global score: %v after %v", *it.Global, prev)
		}
		prev, lo, hi = *it.Global, math.Min(lo, *it.Global), math.Max(hi, *it.Global)
	}
	var all struct {
		Items []struct{ Global *float64 } `json:"items"`
	}
	s.getJSON("/api/scores?limit=1000", &all)
	minAll := math.Inf(1)
	for _, it := range all.Items {
		if it.Global != nil {
			minAll = math.Min(minAll, *it.Global)
		}
	}
	if hi-minAll < 40 {
		t.Fatalf("global scores of the demo universe span only %.1f–%.1f: not spread across 0–100", minAll, hi)
	}

	// The real exports import whole, and their RSI history is served.
	for _, f := range []struct{ file, coin string }{{"btc-usd-max.csv", "bitcoin"}, {"eth-usd-max.csv", "ethereum"}} {
		copyFile(t, filepath.Join("..", "internal", "marketcsv", "testdata", f.file), filepath.Join(imports, f.file))
		j := s.waitFinished(s.submit("market:import", map[string]any{"path": f.file, "coin": f.coin}).ID, 60*time.Second)
		if j.Status != tokenlysis.JobSucceeded {
			t.Fatalf("market:import %s = %s: %s", f.file, j.Status, j.Error)
		}
	}
	j := s.waitFinished(s.submit("scores:recalculate", map[string]any{"coins": []string{"bitcoin", "ethereum"}}).ID, 90*time.Second)
	if j.Status != tokenlysis.JobSucceeded {
		t.Fatalf("recalculation of bitcoin and ethereum = %s: %s", j.Status, j.Error)
	}
	file, _ := os.Open(filepath.Join(imports, "btc-usd-max.csv"))
	parsed, err := marketcsv.Parse(file)
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	closes := make([]float64, len(parsed.Rows))
	for i, r := range parsed.Rows {
		closes[i] = r.Price
	}
	want := indicator.RSI(nil, closes, 14)
	var hist struct {
		Items []struct {
			Date string   `json:"date"`
			RSI  *float64 `json:"rsi"`
		} `json:"items"`
	}
	s.getJSON("/api/scores/bitcoin?range=max", &hist)
	if len(hist.Items) != len(parsed.Rows) {
		t.Fatalf("bitcoin score history has %d days, the export %d", len(hist.Items), len(parsed.Rows))
	}
	for i, it := range hist.Items {
		if it.Date != parsed.Rows[i].Date.Format(time.DateOnly) {
			t.Fatalf("day %d is %s, the export's %s", i, it.Date, parsed.Rows[i].Date.Format(time.DateOnly))
		}
		if (it.RSI == nil) != math.IsNaN(want[i]) || (it.RSI != nil && math.Abs(*it.RSI-want[i]) > 1e-9) {
			t.Fatalf("RSI on %s = %v, want %v", it.Date, it.RSI, want[i])
		}
	}
	s.getJSON("/api/scores/bitcoin?range=7d", &hist)
	if len(hist.Items) != 7 || hist.Items[6].Date != "2025-01-14" {
		t.Fatalf("range=7d gave %d days ending %v", len(hist.Items), hist.Items)
	}

	// A malformed file fails the import naming line and column, and lands nothing.
	os.WriteFile(filepath.Join(imports, "bad.csv"), []byte("snapped_at,price,market_cap,total_volume\n2024-01-01 00:00:00 UTC,1,2,3\n2024-01-02 00:00:00 UTC,abc,2,3\n"), 0o644)
	bad := s.waitFinished(s.submit("market:import", map[string]any{"path": "bad.csv", "coin": "badcoin"}).ID, 30*time.Second)
	if bad.Status != tokenlysis.JobFailed || !strings.Contains(bad.Error, "line 3") || !strings.Contains(bad.Error, "price") {
		t.Fatalf("malformed import = %s %q, want failed naming line 3 and the price column", bad.Status, bad.Error)
	}
	if r := s.do("GET", "/api/price/badcoin/history", nil); r.Status != http.StatusNotFound {
		t.Fatalf("a failed import left data behind: GET /api/price/badcoin/history = %d %s", r.Status, r.Body)
	}
	// A path outside the import directory is refused.
	escape := s.waitFinished(s.submit("market:import", map[string]any{"path": "../../etc/passwd", "coin": "x"}).ID, 30*time.Second)
	if escape.Status != tokenlysis.JobFailed || escape.Attempts != 1 {
		t.Fatalf("import outside the import directory = %s after %d attempts", escape.Status, escape.Attempts)
	}
}
