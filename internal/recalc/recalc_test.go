package recalc_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/indicator"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/score"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// smallDemo is the universe of most tests: late listings, gaps and zero
// volumes included.
var smallDemo = demo.Config{Assets: 40, Days: 150}

type testBundle struct {
	ctx    context.Context
	db     *database.DB
	store  *sqlstore.Store
	engine *recalc.Engine
}

func setup(t *testing.T, db *database.DB, seed demo.Config) testBundle {
	t.Helper()
	tb := testBundle{ctx: context.Background(), db: db, store: sqlstore.New(db, sqlstore.Config{})}
	if seed.Assets > 0 {
		if _, err := marketimport.SeedDemo(tb.ctx, tb.store, seed); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if tb.engine, err = recalc.New(tb.store, recalc.Config{ChunkAssets: 7}); err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb testBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := tb.db.GetContext(tb.ctx, &n, tb.db.Rebind(q), args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// close reports whether a and b agree to 1e-9 relative (NaN equals NaN).
func close(a, b float64) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// allScores reads every scores row, keyed by coin and day, without run IDs.
func allScores(t *testing.T, tb testBundle) map[string]sqlstore.Score {
	t.Helper()
	coins, err := tb.store.ListCoins(tb.ctx, sqlstore.CoinFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]sqlstore.Score{}
	for _, c := range coins {
		rows, err := tb.store.ScoreHistory(tb.ctx, c.ID, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			r.RunID = ""
			out[c.ID+"/"+r.Day.Format(time.DateOnly)] = r
		}
	}
	return out
}

func sameScores(a, b sqlstore.Score) bool {
	return a.CoinID == b.CoinID && a.Day.Equal(b.Day) && a.Source == b.Source &&
		close(a.RSI, b.RSI) && close(a.VolumeChange, b.VolumeChange) && close(a.Volatility30d, b.Volatility30d) &&
		close(a.Drawdown, b.Drawdown) && close(a.Momentum7d, b.Momentum7d) && close(a.Momentum30d, b.Momentum30d) &&
		close(a.EMA20, b.EMA20) && close(a.Liquidity, b.Liquidity) && close(a.Opportunity, b.Opportunity) && close(a.Global, b.Global)
}

func TestRun_FullUniverse(t *testing.T) {
	t.Parallel()
	universe := demo.Universe(smallDemo)
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db, smallDemo)
		var calls []int
		res, err := tb.engine.Run(tb.ctx, recalc.Scope{JobID: "job-9"}, func(done, total int, msg string) {
			if total != len(universe) || msg == "" {
				t.Errorf("progress(%d, %d, %q)", done, total, msg)
			}
			calls = append(calls, done)
		})
		if err != nil {
			t.Fatal(err)
		}
		historyRows := tb.count(t, `SELECT COUNT(*) FROM price_history`)
		if res.Assets != 40 || res.Universe != 40 || res.Rows != int64(historyRows) || res.Days != 150 || res.Scope != "universe" ||
			!slices.Equal(res.Sources, []string{"demo"}) || !res.To.Equal(demo.DefaultEnd()) || !res.From.Equal(demo.DefaultEnd().AddDate(0, 0, -149)) {
			t.Errorf("Result = %+v; want 40 assets, %d rows over 150 days", res, historyRows)
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores`); n != historyRows {
			t.Errorf("%d score rows for %d history rows: want one per day with a price", n, historyRows)
		}
		// Chunks of 7 assets: 6 chunks, done rising to the total.
		if !slices.IsSorted(calls) || calls[len(calls)-1] != 40 || len(calls) < 6 {
			t.Errorf("progress done values = %v", calls)
		}
		run, err := tb.store.FindRecalcRun(tb.ctx, res.RunID)
		if err != nil || run.Status != "succeeded" || run.Rows != res.Rows || run.JobID != "job-9" || run.Assets != 40 || run.Scope != "universe" {
			t.Errorf("recalc run = %+v, %v", run, err)
		}

		// Each asset's indicators are those of its observations in date
		// order: RSI, momentum and EMA against the indicator package on
		// the history alone.
		for _, a := range []demo.Asset{universe[0], universe[17], universe[39]} {
			got, err := tb.store.ScoreHistory(tb.ctx, a.ID, time.Time{}, time.Time{})
			if err != nil || len(got) != len(a.History) {
				t.Fatalf("%s: %d score rows for %d days, %v", a.ID, len(got), len(a.History), err)
			}
			closes := make([]float64, len(a.History))
			for i, d := range a.History {
				closes[i] = d.Price
			}
			rsi := indicator.RSI(nil, closes, 14)
			mom := indicator.Momentum(nil, closes, 7)
			ema := indicator.EMA(nil, closes, 20)
			for i, s := range got {
				if !s.Day.Equal(a.History[i].Date) || !close(s.RSI, rsi[i]) || !close(s.Momentum7d, mom[i]) || !close(s.EMA20, ema[i]) || s.Source != "demo" {
					t.Fatalf("%s day %d: %+v; want RSI %v, momentum %v, EMA %v", a.ID, i, s, rsi[i], mom[i], ema[i])
				}
				if i < 14 && !math.IsNaN(s.RSI) || i >= 14 && math.IsNaN(s.RSI) {
					t.Fatalf("%s: RSI on observation %d = %v; want NULL for the first 14 only", a.ID, i, s.RSI)
				}
			}
		}

		// The scores of a day are the cross-section of the assets present
		// that day, scored by score.Scorer.Day.
		for _, back := range []int{0, 45, 149} {
			checkDay(t, tb, universe, demo.DefaultEnd().AddDate(0, 0, -back))
		}

		top, err := tb.store.LatestScores(tb.ctx, sqlstore.ScoreFilter{Limit: 40})
		if err != nil || len(top.Items) != 40 {
			t.Fatalf("LatestScores = %d, %v", len(top.Items), err)
		}
		spread := []float64{}
		for _, it := range top.Items {
			if !it.Day.Equal(demo.DefaultEnd()) && it.CoinID != "" {
				// Every demo asset has a price on the last day.
				t.Errorf("latest day of %s = %v", it.CoinID, it.Day)
			}
			spread = append(spread, it.Global)
		}
		if spread[0] < 60 || spread[len(spread)-1] > 40 {
			t.Errorf("latest global scores %v do not spread across 0–100", spread)
		}
	})
}

// checkDay recomputes one day's scores from the demo universe with
// score.Scorer.Day and compares them with the stored rows.
func checkDay(t *testing.T, tb testBundle, universe []demo.Asset, d time.Time) {
	t.Helper()
	var ids []string
	var in score.Inputs
	for _, a := range universe {
		i := slices.IndexFunc(a.History, func(x demo.Day) bool { return x.Date.Equal(d) })
		if i < 0 {
			continue // not present that day
		}
		closes := make([]float64, i+1)
		for j := range closes {
			closes[j] = a.History[j].Price
		}
		vc := math.NaN()
		if i > 0 && a.History[i].Date.Sub(a.History[i-1].Date) == 24*time.Hour && a.History[i-1].Volume > 0 {
			vc = (a.History[i].Volume - a.History[i-1].Volume) / a.History[i-1].Volume
		}
		ids = append(ids, a.ID)
		in.Volume = append(in.Volume, a.History[i].Volume)
		in.MarketCap = append(in.MarketCap, a.History[i].MarketCap)
		in.Listings = append(in.Listings, float64(a.ListingsCount))
		in.RSI = append(in.RSI, indicator.RSI(nil, closes, 14)[i])
		in.VolumeChange = append(in.VolumeChange, vc)
	}
	var want score.Scores
	var s score.Scorer
	if err := s.Day(&want, in); err != nil {
		t.Fatal(err)
	}
	for k, id := range ids {
		got, err := tb.store.ScoreHistory(tb.ctx, id, d, d)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s on %s: %v, %v", id, d, got, err)
		}
		g := got[0]
		if !close(g.Liquidity, want.Liquidity[k]) || !close(g.Opportunity, want.Opportunity[k]) || !close(g.Global, want.Global[k]) ||
			!close(g.VolumeChange, in.VolumeChange[k]) {
			t.Fatalf("%s on %s: liquidity %v opportunity %v global %v volume change %v; want %v %v %v %v", id, d.Format(time.DateOnly),
				g.Liquidity, g.Opportunity, g.Global, g.VolumeChange, want.Liquidity[k], want.Opportunity[k], want.Global[k], in.VolumeChange[k])
		}
	}
}

func TestRun_IdempotentAndPartial(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db, smallDemo)
		first, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		all := tb.count(t, `SELECT COUNT(*) FROM scores`)
		if first.Changed != first.Rows || first.Deleted != 0 || int64(all) != first.Rows {
			t.Fatalf("first run = %+v, %d rows stored", first, all)
		}
		want := allScores(t, tb)

		// The same run again: the same rows, none rewritten.
		second, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if second.RunID == first.RunID || second.Rows != first.Rows || second.Changed != 0 || second.Deleted != 0 {
			t.Fatalf("second run = %+v, first %+v", second, first)
		}
		got := allScores(t, tb)
		if len(got) != len(want) {
			t.Fatalf("%d rows after the second run, %d after the first", len(got), len(want))
		}
		for k, w := range want {
			if !sameScores(got[k], w) {
				t.Fatalf("%s changed: %+v, was %+v", k, got[k], w)
			}
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores WHERE run_id = ?`, first.RunID); n != all {
			t.Errorf("%d rows of the first run left, want all %d (identical rows are not rewritten)", n, all)
		}

		// New prices for one coin's last three days, then a run scoped to
		// it and another coin for the last ten days.
		coins, _ := tb.store.ListCoins(tb.ctx, sqlstore.CoinFilter{})
		c3, c30 := coins[3].ID, coins[30].ID
		hist, _ := tb.store.PriceHistory(tb.ctx, c3, demo.DefaultEnd().AddDate(0, 0, -2), time.Time{})
		rows := make([]sqlstore.HistoryRow, len(hist))
		for i, h := range hist {
			rows[i] = sqlstore.HistoryRow{Day: h.Day, Price: h.Price * 1.5, MarketCap: h.MarketCap, Volume: h.Volume}
		}
		if _, err := tb.store.UpsertHistory(tb.ctx, c3, "demo", rows); err != nil {
			t.Fatal(err)
		}
		scope := recalc.Scope{CoinIDs: []string{c30, c3}, Since: demo.DefaultEnd().AddDate(0, 0, -9)}
		part, err := tb.engine.Run(tb.ctx, scope, nil)
		if err != nil {
			t.Fatal(err)
		}
		if part.Assets != 2 || part.Universe != 40 || part.Days != 10 || part.Rows != 20 || part.Changed == 0 || part.Changed > 3 ||
			part.Scope != "coins:"+min(c3, c30)+","+max(c3, c30) {
			t.Errorf("scoped Result = %+v; want 20 rows, 1 to 3 changed (the new prices)", part)
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores WHERE run_id = ? AND coin_id = ? AND day >= ?`, part.RunID, c3, sqlstore.DayOf(demo.DefaultEnd().AddDate(0, 0, -2)).String()); int64(n) != part.Changed {
			t.Errorf("%d of %s's last three days rewritten by the scoped run, it reports %d changes", n, c3, part.Changed)
		}
		// A full run now finds the scoped coins' rows as it would write
		// them: the scoped run computed them against the whole universe.
		full, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores WHERE run_id = ?`, part.RunID); int64(n) != part.Changed {
			t.Errorf("the full run rewrote rows of the scoped run: %d left of %d", n, part.Changed)
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores WHERE run_id = ? AND coin_id IN (?, ?) AND day >= ?`, full.RunID, c3, c30, sqlstore.DayOf(scope.Since).String()); n != 0 {
			t.Errorf("the full run changed %d rows the scoped run had written", n)
		}
		run, _ := tb.store.FindRecalcRun(tb.ctx, part.RunID)
		if run.Scope != scope.Name() || !run.Since.Equal(scope.Since) || run.Status != "succeeded" || run.Rows != 20 {
			t.Errorf("scoped run record = %+v", run)
		}
	})
}

func TestRun_Errors(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db, demo.Config{})
		// An empty universe is not an error: nothing to score.
		res, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil || res.Rows != 0 || res.Assets != 0 {
			t.Fatalf("Run on an empty universe = %+v, %v", res, err)
		}
		if _, err := marketimport.SeedDemo(tb.ctx, tb.store, demo.Config{Assets: 5, Days: 60}); err != nil {
			t.Fatal(err)
		}
		res, err = tb.engine.Run(tb.ctx, recalc.Scope{CoinIDs: []string{"demo-nope"}}, nil)
		if tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("Run(unknown coin) = %v, want not_found", err)
		}
		if run, _ := tb.store.FindRecalcRun(tb.ctx, res.RunID); run.Status != "failed" || run.Error == "" {
			t.Errorf("failed run record = %+v", run)
		}
		// A day after the history writes nothing.
		res, err = tb.engine.Run(tb.ctx, recalc.Scope{Since: demo.DefaultEnd().AddDate(0, 0, 1)}, nil)
		if err != nil || res.Rows != 0 {
			t.Errorf("Run(since after the history) = %+v, %v", res, err)
		}
		ctx, cancel := context.WithCancel(tb.ctx)
		cancel()
		if _, err := tb.engine.Run(ctx, recalc.Scope{}, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Run with a canceled context = %v", err)
		}
		for _, cfg := range []recalc.Config{{ChunkAssets: -1}, {Workers: -2}} {
			if _, err := recalc.New(tb.store, cfg); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
				t.Errorf("New(%+v) = %v", cfg, err)
			}
		}
	})
}

// crashingStore fails the write of the n-th chunk, like a worker dying
// in the middle of a run.
type crashingStore struct {
	*sqlstore.Store
	n     int64
	calls atomic.Int64
}

func (s *crashingStore) WriteScores(ctx context.Context, runID string, b sqlstore.ScoreBatch) (sqlstore.ScoreWrite, error) {
	if s.calls.Add(1) == s.n {
		return sqlstore.ScoreWrite{}, errors.New("worker lost")
	}
	return s.Store.WriteScores(ctx, runID, b)
}

func TestRun_RetryAfterCrashDuplicatesNothing(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db, smallDemo)
		crashing, err := recalc.New(&crashingStore{Store: tb.store, n: 3}, recalc.Config{ChunkAssets: 7})
		if err != nil {
			t.Fatal(err)
		}
		res, err := crashing.Run(tb.ctx, recalc.Scope{}, nil)
		if err == nil || !strings.Contains(err.Error(), "worker lost") {
			t.Fatalf("crashing run = %v", err)
		}
		if n := tb.count(t, `SELECT COUNT(*) FROM scores`); n == 0 || int64(n) != res.Rows {
			t.Fatalf("%d rows after the crash, the run reported %d", n, res.Rows)
		}
		if run, _ := tb.store.FindRecalcRun(tb.ctx, res.RunID); run.Status != "failed" || run.Rows != res.Rows {
			t.Errorf("crashed run record = %+v", run)
		}
		retry, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		history := tb.count(t, `SELECT COUNT(*) FROM price_history`)
		if n := tb.count(t, `SELECT COUNT(*) FROM scores`); n != history || retry.Rows != int64(history) {
			t.Errorf("after the retry: %d rows (run says %d), want %d", n, retry.Rows, history)
		}
	})
}

func TestRun_RealExportsWithDemo(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db, demo.Config{Assets: 20, Days: 400})
		for coin, file := range map[string]string{"bitcoin": "btc-usd-max.csv", "ethereum": "eth-usd-max.csv"} {
			f, err := os.Open(filepath.Join("../marketcsv/testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = marketimport.Import(tb.ctx, tb.store, coin, f, marketimport.Meta{})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		res, err := tb.engine.Run(tb.ctx, recalc.Scope{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Sources, []string{"csv", "demo"}) || res.Universe != 22 || res.Days != 4280 { // calendar days, BTC's two gaps included
			t.Errorf("Result = %+v", res)
		}
		// BTC's RSI history is that of its observations: gaps (2013-06-04,
		// 2015-01-28) have no row and do not break the series.
		hist, _ := tb.store.PriceHistory(tb.ctx, "bitcoin", time.Time{}, time.Time{})
		closes := make([]float64, len(hist))
		for i, p := range hist {
			closes[i] = p.Price
		}
		rsi := indicator.RSI(nil, closes, 14)
		got, err := tb.store.ScoreHistory(tb.ctx, "bitcoin", time.Time{}, time.Time{})
		if err != nil || len(got) != 4278 {
			t.Fatalf("BTC scores: %d rows, %v", len(got), err)
		}
		for i := range got {
			if !close(got[i].RSI, rsi[i]) || got[i].Source != "csv" {
				t.Fatalf("BTC %s: RSI %v, want %v", got[i].Day.Format(time.DateOnly), got[i].RSI, rsi[i])
			}
		}
		if g := got[len(got)-1]; math.IsNaN(g.Global) || math.IsNaN(g.Liquidity) {
			t.Errorf("BTC's latest scores = %+v", g)
		}
	})
}

func TestScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s         recalc.Scope
		name, key string
	}{
		{recalc.Scope{}, "universe", "universe@full"},
		{recalc.Scope{Since: time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC), JobID: "x"}, "universe", "universe@2024-05-01"},
		{recalc.Scope{CoinIDs: []string{"b", "a", "b"}}, "coins:a,b", "coins:a,b@full"},
		{recalc.Scope{CoinIDs: []string{}}, "coins:", "coins:@full"},
	}
	for _, tt := range tests {
		if got := tt.s.Name(); got != tt.name {
			t.Errorf("%+v.Name() = %q, want %q", tt.s, got, tt.name)
		}
		if got := tt.s.Key(); got != tt.key {
			t.Errorf("%+v.Key() = %q, want %q", tt.s, got, tt.key)
		}
	}
}
