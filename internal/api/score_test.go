package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// seedScores loads a small demo universe and scores it.
func seedScores(t *testing.T, tb *testBundle) recalc.Result {
	t.Helper()
	ctx := context.Background()
	if _, err := marketimport.SeedDemo(ctx, tb.store, demo.Config{Assets: 30, Days: 120, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	eng, err := recalc.New(tb.store, recalc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Run(ctx, recalc.Scope{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestScoreRoutes(t *testing.T) {
	for _, d := range []database.Dialect{database.SQLite, database.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d)
			seedScores(t, tb)
			tok := tb.token(t, "reader", "user")

			var top struct {
				Items []struct {
					Coin   string   `json:"coin"`
					Date   string   `json:"date"`
					Global *float64 `json:"global"`
					RSI    *float64 `json:"rsi"`
					Source string   `json:"source"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			res := tb.do(t, "GET", "/api/scores?limit=10&sort=global", tok, "")
			if res.status != 200 || json.Unmarshal(res.body, &top) != nil || len(top.Items) != 10 || top.NextCursor == "" {
				t.Fatalf("GET /api/scores: %d %s", res.status, res.body)
			}
			for i, it := range top.Items {
				if it.Date == "" || it.Source != "demo" || it.Global == nil {
					t.Fatalf("item %+v lacks its day, source or score", it)
				}
				if i > 0 && *it.Global > *top.Items[i-1].Global {
					t.Fatal("not sorted by global score, descending")
				}
			}
			first := top.Items[0].Coin
			res = tb.do(t, "GET", "/api/scores?limit=10&cursor="+top.NextCursor, tok, "")
			if res.status != 200 || strings.Contains(string(res.body), `"coin":"`+first+`"`) {
				t.Fatalf("page 2: %d (contains page 1's first coin?) %s", res.status, res.body)
			}
			if res := tb.do(t, "GET", "/api/scores?sort=shoe_size", tok, ""); res.status != 422 || res.json(t)["field"] != "sort" {
				t.Fatalf("bad sort: %d %s", res.status, res.body)
			}

			var hist struct {
				Coin  string `json:"coin"`
				Items []struct {
					Date string   `json:"date"`
					RSI  *float64 `json:"rsi"`
				} `json:"items"`
			}
			res = tb.do(t, "GET", "/api/scores/"+first+"?range=max", tok, "")
			if res.status != 200 || json.Unmarshal(res.body, &hist) != nil || len(hist.Items) < 100 {
				t.Fatalf("history: %d %.300s", res.status, res.body)
			}
			if hist.Items[0].RSI != nil || hist.Items[len(hist.Items)-1].RSI == nil {
				t.Fatal("RSI must be null without 14 days of history and present after")
			}
			last := hist.Items[len(hist.Items)-1].Date
			res = tb.do(t, "GET", "/api/scores/"+first+"?range=7d", tok, "")
			json.Unmarshal(res.body, &hist)
			if len(hist.Items) > 7 || hist.Items[len(hist.Items)-1].Date != last {
				t.Fatalf("range=7d: %d days ending %s, want ≤ 7 ending %s", len(hist.Items), hist.Items[len(hist.Items)-1].Date, last)
			}
			for q, field := range map[string]string{"range=2w": "range", "from=2024-13-01": "from", "from=2024-02-01&to=2024-01-01": "to", "range=7d&from=2024-01-01": "range"} {
				if res := tb.do(t, "GET", "/api/scores/"+first+"?"+q, tok, ""); res.status != 422 || res.json(t)["field"] != field {
					t.Errorf("?%s: %d %s, want 422 naming %s", q, res.status, res.body, field)
				}
			}
			if res := tb.do(t, "GET", "/api/scores/no-such-coin", tok, ""); res.status != 404 {
				t.Fatalf("unknown coin: %d", res.status)
			}
			if res := tb.do(t, "GET", "/api/price/"+first+"/history?range=1m", tok, ""); res.status != 200 || !strings.Contains(string(res.body), `"source":"demo"`) {
				t.Fatalf("price history: %d %.200s", res.status, res.body)
			}
			if res := tb.do(t, "GET", "/api/markets/top?limit=5", tok, ""); res.status != 200 || strings.Count(string(res.body), `"coin":`) != 5 {
				t.Fatalf("top markets: %d %.300s", res.status, res.body)
			}
			if res := tb.do(t, "GET", "/api/fng/latest", tok, ""); res.status != 404 {
				t.Fatalf("F&G without data: %d, want 404", res.status)
			}
		})
	}
}

// TestScoreStreamPushesOnRecalculation: the SSE stream sends the current
// scores on connect, then again only when a recalculation announces
// itself, with the run's ID as the event id.
func TestScoreStreamPushesOnRecalculation(t *testing.T) {
	tb := setup(t, database.SQLite)
	first := seedScores(t, tb)
	req, _ := http.NewRequest("GET", tb.url+"/api/stream/scores?limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+tb.token(t, "s", "user"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", res.Header)
	}
	rd := bufio.NewReader(res.Body)
	nextID := func() string {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if strings.HasPrefix(line, "id: ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "id: "))
			}
		}
	}
	if id := nextID(); id != first.RunID {
		t.Fatalf("first event id %q, want the latest run %q", id, first.RunID)
	}
	// A new run, announced on the bus as the worker does, is pushed.
	eng, _ := recalc.New(tb.store, recalc.Config{})
	second, err := eng.Run(context.Background(), recalc.Scope{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]string{"run_id": second.RunID})
	go func() {
		// Publish until the stream has it (the subscription may still be
		// starting on the server's bus).
		for ctx.Err() == nil {
			tb.bus.Publish(context.Background(), tokenlysis.TopicScores, payload)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if id := nextID(); id != second.RunID {
		t.Fatalf("pushed event id %q, want %q", id, second.RunID)
	}
}

func TestScoreSocket(t *testing.T) {
	tb := setup(t, database.SQLite)
	seedScores(t, tb)
	var top struct {
		Items []struct{ Coin string } `json:"items"`
	}
	json.Unmarshal(tb.do(t, "GET", "/api/scores?limit=2", tb.token(t, "w", "user"), "").body, &top)
	coin := top.Items[0].Coin

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, strings.Replace(tb.url, "http", "ws", 1)+"/ws/scores", nil); err == nil {
		t.Fatal("a WebSocket without a token was accepted")
	}
	conn, _, err := websocket.Dial(ctx, strings.Replace(tb.url, "http", "ws", 1)+"/ws/scores", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tb.token(t, "w", "user")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	type msg struct {
		Type  string   `json:"type"`
		Coins []string `json:"coins"`
		RunID string   `json:"run_id"`
		Error string   `json:"error"`
		Items []struct {
			Coin   string   `json:"coin"`
			Global *float64 `json:"global"`
		} `json:"items"`
	}
	read := func() msg {
		var m msg
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatalf("read: %v", err)
		}
		return m
	}
	conn.Write(ctx, websocket.MessageText, []byte("not json"))
	if m := read(); m.Type != "error" || m.Error == "" {
		t.Fatalf("bad message answered %+v, want an error message", m)
	}
	wsjson.Write(ctx, conn, map[string]any{"type": "dance"})
	if m := read(); m.Type != "error" {
		t.Fatalf("unknown type answered %+v", m)
	}
	wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "coins": []string{coin}})
	if m := read(); m.Type != "subscribed" || len(m.Coins) != 1 || m.Coins[0] != coin {
		t.Fatalf("subscribe answered %+v", m)
	}
	if m := read(); m.Type != "scores" || len(m.Items) != 1 || m.Items[0].Coin != coin || m.Items[0].Global == nil {
		t.Fatalf("scores after subscribe = %+v", m)
	}
	// A recalculation's announcement brings the subscribed coins' scores.
	tb.bus.Publish(ctx, tokenlysis.TopicScores, []byte(`{"run_id":"r-2"}`))
	if m := read(); m.Type != "scores" || m.RunID != "r-2" || len(m.Items) != 1 {
		t.Fatalf("scores after a recalculation = %+v", m)
	}
	wsjson.Write(ctx, conn, map[string]any{"type": "unsubscribe", "coins": []string{coin}})
	if m := read(); m.Type != "subscribed" || len(m.Coins) != 0 {
		t.Fatalf("unsubscribe answered %+v", m)
	}
}

// TestScoreListCacheEmptiedByRecalculation: GET /api/scores answers from
// its cache until a recalculation is announced on the bus.
func TestScoreListCacheEmptiedByRecalculation(t *testing.T) {
	tb := setup(t, database.SQLite)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tb.srv.Run(ctx)
	seedScores(t, tb)
	tok := tb.token(t, "c", "user")
	before := string(tb.do(t, "GET", "/api/scores?limit=5", tok, "").body)

	// New data and a new run, not yet announced: the cached answer stays.
	if _, err := marketimport.SeedDemo(ctx, tb.store, demo.Config{Assets: 30, Days: 120, Seed: 99}); err != nil {
		t.Fatal(err)
	}
	eng, _ := recalc.New(tb.store, recalc.Config{})
	run, err := eng.Run(ctx, recalc.Scope{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tb.do(t, "GET", "/api/scores?limit=5", tok, "").body); got != before {
		t.Fatal("the answer changed before any announcement: not cached")
	}
	payload, _ := json.Marshal(map[string]string{"run_id": run.RunID})
	deadline := time.Now().Add(10 * time.Second)
	for {
		tb.bus.Publish(ctx, tokenlysis.TopicScores, payload)
		if got := string(tb.do(t, "GET", "/api/scores?limit=5", tok, "").body); got != before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cached answer outlived the recalculation's announcement")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
