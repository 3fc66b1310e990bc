package sqlstore_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// newScores is the ScoreColumns factory: n consecutive days from first,
// every value derived from seed and the day (NaN on some), source demo.
func newScores(coinID string, first sqlstore.Day, n int, seed float64) sqlstore.ScoreColumns {
	c := sqlstore.ScoreColumns{CoinID: coinID, Sources: []string{"demo"}}
	cols := []*[]float64{&c.RSI, &c.VolumeChange, &c.Volatility30d, &c.Drawdown, &c.Momentum7d, &c.Momentum30d,
		&c.EMA20, &c.Liquidity, &c.Opportunity, &c.Global}
	for i := range n {
		c.Days = append(c.Days, first+sqlstore.Day(i))
		c.SourceIndex = append(c.SourceIndex, 0)
		for k, col := range cols {
			v := seed + float64(i)*1.25 + float64(k)/3
			if (i+k)%7 == 0 {
				v = math.NaN()
			}
			*col = append(*col, v)
		}
	}
	return c
}

// scoreOf returns the Score that row i of c should read back as.
func scoreOf(c sqlstore.ScoreColumns, i int, runID string) sqlstore.Score {
	return sqlstore.Score{
		CoinID: c.CoinID, Day: c.Days[i].Time(), RSI: c.RSI[i], VolumeChange: c.VolumeChange[i], Volatility30d: c.Volatility30d[i],
		Drawdown: c.Drawdown[i], Momentum7d: c.Momentum7d[i], Momentum30d: c.Momentum30d[i], EMA20: c.EMA20[i],
		Liquidity: c.Liquidity[i], Opportunity: c.Opportunity[i], Global: c.Global[i], Source: c.Sources[c.SourceIndex[i]], RunID: runID,
	}
}

func sameScore(a, b sqlstore.Score) bool {
	return a.CoinID == b.CoinID && a.Day.Equal(b.Day) && a.Source == b.Source && a.RunID == b.RunID &&
		sameFloat(a.RSI, b.RSI) && sameFloat(a.VolumeChange, b.VolumeChange) && sameFloat(a.Volatility30d, b.Volatility30d) &&
		sameFloat(a.Drawdown, b.Drawdown) && sameFloat(a.Momentum7d, b.Momentum7d) && sameFloat(a.Momentum30d, b.Momentum30d) &&
		sameFloat(a.EMA20, b.EMA20) && sameFloat(a.Liquidity, b.Liquidity) && sameFloat(a.Opportunity, b.Opportunity) &&
		sameFloat(a.Global, b.Global)
}

func countScores(t *testing.T, db *database.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.GetContext(context.Background(), &n, db.Rebind(`SELECT COUNT(*) FROM scores WHERE `+where), args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriteScores(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		mustUpsertCoins(t, tb, newCoin("a"), newCoin("b"), newCoin("c"))
		d0 := sqlstore.DayOf(day("2024-01-01"))
		// Long enough for several statements on SQLite and several COPY buffers on PostgreSQL.
		a, b := newScores("a", d0, 1300, 1), newScores("b", d0+5, 20, 100)
		b.Sources, b.SourceIndex[3] = []string{"demo", "csv"}, 1
		batch := sqlstore.ScoreBatch{From: d0, To: d0 + 1299, Coins: []sqlstore.ScoreColumns{a, b}}
		w, err := s.WriteScores(ctx, "run-1", batch)
		if err != nil || w != (sqlstore.ScoreWrite{Rows: 1320, Changed: 1320}) {
			t.Fatalf("WriteScores = %+v, %v", w, err)
		}
		got, err := s.ScoreHistory(ctx, "a", time.Time{}, time.Time{})
		if err != nil || len(got) != 1300 {
			t.Fatalf("ScoreHistory(a) = %d rows, %v", len(got), err)
		}
		for i, sc := range got {
			if want := scoreOf(a, i, "run-1"); !sameScore(sc, want) {
				t.Fatalf("row %d = %+v\nwant %+v", i, sc, want)
			}
		}
		gb, _ := s.ScoreHistory(ctx, "b", d0.Time().AddDate(0, 0, 7), d0.Time().AddDate(0, 0, 9))
		if len(gb) != 3 || !sameScore(gb[0], scoreOf(b, 2, "run-1")) || gb[1].Source != "csv" {
			t.Fatalf("ScoreHistory(b, range) = %+v", gb)
		}
		if got, err := s.ScoreHistory(ctx, "c", time.Time{}, time.Time{}); err != nil || len(got) != 0 {
			t.Errorf("ScoreHistory of a coin without scores = %v, %v", got, err)
		}
		if _, err := s.ScoreHistory(ctx, "zzz", time.Time{}, time.Time{}); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("ScoreHistory(unknown) = %v", err)
		}

		// The same batch again changes nothing, even under another run:
		// identical rows keep the run that wrote them.
		if w, err := s.WriteScores(ctx, "run-1b", batch); err != nil || w != (sqlstore.ScoreWrite{Rows: 1320}) {
			t.Fatalf("second WriteScores = %+v, %v", w, err)
		}
		if c := countScores(t, tb.db, "run_id = ?", "run-1"); c != 1320 {
			t.Fatalf("%d rows of run-1 after writing the same batch twice, want 1320", c)
		}
		// One changed value rewrites one row.
		a.Drawdown[100] = 0.5
		if w, err := s.WriteScores(ctx, "run-1c", sqlstore.ScoreBatch{From: d0, To: d0 + 1299, Coins: []sqlstore.ScoreColumns{a}}); err != nil ||
			w != (sqlstore.ScoreWrite{Rows: 1300, Changed: 1}) {
			t.Fatalf("WriteScores with one change = %+v, %v", w, err)
		}
		if got, _ := s.ScoreHistory(ctx, "a", (d0 + 100).Time(), (d0 + 100).Time()); len(got) != 1 || got[0].Drawdown != 0.5 || got[0].RunID != "run-1c" {
			t.Fatalf("changed row = %+v", got)
		}
		if c := countScores(t, tb.db, "1 = 1"); c != 1320 {
			t.Fatalf("%d rows, want 1320", c)
		}

		// A narrower batch replaces its range only: a's days 10..19 become
		// days 10..14, the rest of a and all of b stay.
		a2 := newScores("a", d0+10, 5, 1000)
		if w, err := s.WriteScores(ctx, "run-2", sqlstore.ScoreBatch{From: d0 + 10, To: d0 + 19, Coins: []sqlstore.ScoreColumns{a2}}); err != nil ||
			w != (sqlstore.ScoreWrite{Rows: 5, Changed: 5, Deleted: 5}) {
			t.Fatalf("narrower WriteScores = %+v, %v", w, err)
		}
		if c := countScores(t, tb.db, "coin_id = ?", "a"); c != 1295 {
			t.Errorf("a has %d rows, want 1295", c)
		}
		if c := countScores(t, tb.db, "run_id = ?", "run-2"); c != 5 {
			t.Errorf("%d rows of run-2, want 5", c)
		}
		got, _ = s.ScoreHistory(ctx, "a", d0.Time().AddDate(0, 0, 9), d0.Time().AddDate(0, 0, 20))
		if len(got) != 7 || !sameScore(got[0], scoreOf(a, 9, "run-1")) || !sameScore(got[1], scoreOf(a2, 0, "run-2")) ||
			!sameScore(got[6], scoreOf(a, 20, "run-1")) {
			t.Errorf("a around the replaced range = %+v", got)
		}

		// Interleaved: in days 200..210 keep 200, 203 and 208 as stored,
		// change 202, 205 and 206, drop the others.
		stored, _ := s.ScoreHistory(ctx, "a", (d0 + 200).Time(), (d0 + 210).Time())
		mixed := sqlstore.ScoreColumns{CoinID: "a", Sources: []string{"demo"}}
		for _, k := range []int{0, 2, 3, 5, 6, 8} {
			r := stored[k]
			if k == 2 || k == 5 || k == 6 {
				r.Global, r.RSI = float64(k), math.NaN()
			}
			mixed.Days = append(mixed.Days, sqlstore.DayOf(r.Day))
			mixed.SourceIndex = append(mixed.SourceIndex, 0)
			mixed.RSI, mixed.VolumeChange = append(mixed.RSI, r.RSI), append(mixed.VolumeChange, r.VolumeChange)
			mixed.Volatility30d, mixed.Drawdown = append(mixed.Volatility30d, r.Volatility30d), append(mixed.Drawdown, r.Drawdown)
			mixed.Momentum7d, mixed.Momentum30d = append(mixed.Momentum7d, r.Momentum7d), append(mixed.Momentum30d, r.Momentum30d)
			mixed.EMA20, mixed.Liquidity = append(mixed.EMA20, r.EMA20), append(mixed.Liquidity, r.Liquidity)
			mixed.Opportunity, mixed.Global = append(mixed.Opportunity, r.Opportunity), append(mixed.Global, r.Global)
		}
		w, err = s.WriteScores(ctx, "run-3", sqlstore.ScoreBatch{From: d0 + 200, To: d0 + 210, Coins: []sqlstore.ScoreColumns{mixed}})
		if err != nil || w != (sqlstore.ScoreWrite{Rows: 6, Changed: 3, Deleted: 5}) {
			t.Fatalf("interleaved WriteScores = %+v, %v", w, err)
		}
		after, _ := s.ScoreHistory(ctx, "a", (d0 + 199).Time(), (d0 + 211).Time())
		if len(after) != 8 { // 199 and 211, outside the range, plus the six of the batch
			t.Fatalf("after the interleaved write: %d rows in 199..211, want 8", len(after))
		}
		wantRuns := []string{"run-1", "run-1", "run-3", "run-1", "run-3", "run-3", "run-1", "run-1"}
		for i, r := range after {
			if r.RunID != wantRuns[i] {
				t.Fatalf("after the interleaved write, row %d (%s) is from %s, want %s", i, r.Day.Format(time.DateOnly), r.RunID, wantRuns[i])
			}
		}
		if after[2].Global != 2 || !math.IsNaN(after[2].RSI) || !sameScore(after[3], stored[3]) {
			t.Errorf("interleaved rows = %+v", after[1:4])
		}

		// Errors write nothing.
		before := countScores(t, tb.db, "1 = 1")
		bad := []struct {
			name string
			run  string
			b    sqlstore.ScoreBatch
			code string
		}{
			{"unknown coin", "r", sqlstore.ScoreBatch{From: d0, To: d0 + 30, Coins: []sqlstore.ScoreColumns{newScores("c", d0, 3, 0), newScores("zzz", d0, 3, 0)}}, tokenlysis.ENOTFOUND},
			{"no run", "", sqlstore.ScoreBatch{From: d0, To: d0 + 30, Coins: []sqlstore.ScoreColumns{newScores("c", d0, 3, 0)}}, tokenlysis.EINVALID},
			{"outside range", "r", sqlstore.ScoreBatch{From: d0 + 1, To: d0 + 30, Coins: []sqlstore.ScoreColumns{newScores("c", d0, 3, 0)}}, tokenlysis.EINVALID},
			{"twice", "r", sqlstore.ScoreBatch{From: d0, To: d0 + 30, Coins: []sqlstore.ScoreColumns{newScores("c", d0, 3, 0), newScores("c", d0+5, 3, 0)}}, tokenlysis.EINVALID},
		}
		short := newScores("c", d0, 3, 0)
		short.RSI = short.RSI[:2]
		bad = append(bad, struct {
			name string
			run  string
			b    sqlstore.ScoreBatch
			code string
		}{"short column", "r", sqlstore.ScoreBatch{From: d0, To: d0 + 30, Coins: []sqlstore.ScoreColumns{short}}, tokenlysis.EINVALID})
		for _, tt := range bad {
			if _, err := s.WriteScores(ctx, tt.run, tt.b); tokenlysis.ErrorCode(err) != tt.code {
				t.Errorf("%s: WriteScores = %v, want %s", tt.name, err, tt.code)
			}
		}
		if after := countScores(t, tb.db, "1 = 1"); after != before {
			t.Errorf("failed batches changed the row count from %d to %d", before, after)
		}
	})
}

func TestLatestScores(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		coins := []sqlstore.Coin{newCoin("a", "DeFi"), newCoin("b", "Meme"), newCoin("c", "DeFi", "AI"), newCoin("d"), newCoin("e", "defi")}
		mustUpsertCoins(t, tb, coins...)
		d0 := sqlstore.DayOf(day("2025-01-10"))
		nan := math.NaN()
		// global on the last day: a 50, b 80, c NaN, d 50, e 20; e's history ends a day earlier.
		last := map[string]float64{"a": 50, "b": 80, "c": nan, "d": 50, "e": 20}
		var batch sqlstore.ScoreBatch
		batch.From, batch.To = d0, d0+4
		for _, c := range coins {
			n := 5
			if c.ID == "e" {
				n = 4
			}
			sc := newScores(c.ID, d0, n, 1)
			sc.Global[n-1] = last[c.ID]
			sc.Liquidity[n-1] = float64(len(c.ID))
			batch.Coins = append(batch.Coins, sc)
			rows := make([]sqlstore.HistoryRow, n)
			for i := range rows {
				rows[i] = sqlstore.HistoryRow{Day: (d0 + sqlstore.Day(i)).Time(), Price: 1 + float64(i), MarketCap: float64(100 * (i + 1)), Volume: nan}
			}
			if c.ID == "a" {
				rows[n-1].MarketCap = 1e12
			}
			if _, err := s.UpsertHistory(ctx, c.ID, "demo", rows); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.WriteScores(ctx, "run-1", batch); err != nil {
			t.Fatal(err)
		}

		page, err := s.LatestScores(ctx, sqlstore.ScoreFilter{})
		if err != nil {
			t.Fatal(err)
		}
		ids := func(items []sqlstore.LatestScore) []string {
			out := []string{}
			for _, it := range items {
				out = append(out, it.CoinID)
			}
			return out
		}
		if got := ids(page.Items); !slices.Equal(got, []string{"b", "a", "d", "e", "c"}) || page.NextCursor != "" {
			t.Fatalf("LatestScores by global = %v (next %q), want b a d e c", got, page.NextCursor)
		}
		a := page.Items[1]
		if a.Global != 50 || !a.Day.Equal((d0 + 4).Time()) || a.Price != 5 || a.MarketCap != 1e12 || !math.IsNaN(a.Volume) ||
			a.Symbol != "a" || a.Name != "Coin a" || !slices.Equal(a.Categories, []string{"DeFi"}) || a.Source != "demo" || a.RunID != "run-1" {
			t.Errorf("latest a = %+v", a)
		}
		if e := page.Items[3]; !e.Day.Equal((d0 + 3).Time()) {
			t.Errorf("latest day of e = %v, want its own last day", e.Day)
		}

		// Every page size walks the same order, each coin once.
		for limit := 1; limit <= 3; limit++ {
			var all []string
			f := sqlstore.ScoreFilter{Limit: limit}
			for range 10 {
				p, err := s.LatestScores(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, ids(p.Items)...)
				if p.NextCursor == "" {
					break
				}
				f.Cursor = p.NextCursor
			}
			if !slices.Equal(all, []string{"b", "a", "d", "e", "c"}) {
				t.Errorf("limit %d pages = %v", limit, all)
			}
		}

		tests := []struct {
			f    sqlstore.ScoreFilter
			want []string
		}{
			{sqlstore.ScoreFilter{Category: "DEFI"}, []string{"a", "e", "c"}},
			{sqlstore.ScoreFilter{Sort: "market_cap", Limit: 2}, []string{"a", "b"}},
			{sqlstore.ScoreFilter{Sort: "liquidity"}, []string{"a", "b", "c", "d", "e"}},
		}
		for _, tt := range tests {
			p, err := s.LatestScores(ctx, tt.f)
			if err != nil || !slices.Equal(ids(p.Items), tt.want) {
				t.Errorf("LatestScores(%+v) = %v, %v; want %v", tt.f, ids(p.Items), err, tt.want)
			}
		}

		p, _ := s.LatestScores(ctx, sqlstore.ScoreFilter{Limit: 1})
		invalid := []struct {
			f     sqlstore.ScoreFilter
			field string
		}{
			{sqlstore.ScoreFilter{Sort: "global; DELETE FROM coins"}, "sort"},
			{sqlstore.ScoreFilter{Limit: -1}, "limit"},
			{sqlstore.ScoreFilter{Limit: sqlstore.MaxScoreLimit + 1}, "limit"},
			{sqlstore.ScoreFilter{Cursor: "not a cursor"}, "cursor"},
			{sqlstore.ScoreFilter{Sort: "rsi", Cursor: p.NextCursor}, "cursor"},
		}
		for _, tt := range invalid {
			if _, err := s.LatestScores(ctx, tt.f); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID || tokenlysis.ErrorField(err) != tt.field {
				t.Errorf("LatestScores(%+v) = %v, want invalid %s", tt.f, err, tt.field)
			}
		}

		// Rewriting a coin's range without its last day moves its latest row back.
		b := newScores("b", d0, 2, 7)
		if _, err := s.WriteScores(ctx, "run-2", sqlstore.ScoreBatch{From: d0, To: d0 + 4, Coins: []sqlstore.ScoreColumns{b}}); err != nil {
			t.Fatal(err)
		}
		p, _ = s.LatestScores(ctx, sqlstore.ScoreFilter{Sort: "global", Limit: 100})
		for _, it := range p.Items {
			if it.CoinID == "b" && (!it.Day.Equal((d0 + 1).Time()) || it.RunID != "run-2" || !sameFloat(it.Global, b.Global[1])) {
				t.Errorf("latest b after a rewrite = %+v", it)
			}
		}
	})
}

func TestRecalcRuns(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		r, err := s.StartRecalcRun(ctx, sqlstore.RecalcRun{ID: "r1", JobID: "job-1", Scope: "universe", Since: day("2024-06-01").Add(5 * time.Hour)})
		if err != nil || r.Status != sqlstore.RecalcRunning || r.StartedAt.IsZero() {
			t.Fatalf("StartRecalcRun = %+v, %v", r, err)
		}
		if _, err := s.StartRecalcRun(ctx, sqlstore.RecalcRun{ID: "r1", Scope: "universe"}); tokenlysis.ErrorCode(err) != tokenlysis.ECONFLICT {
			t.Fatalf("duplicate run: %v", err)
		}
		if _, err := s.StartRecalcRun(ctx, sqlstore.RecalcRun{ID: "r2", Scope: "coins:a"}); err != nil {
			t.Fatal(err)
		}
		r.Status, r.Assets, r.Days, r.Rows, r.Sources = sqlstore.RecalcSucceeded, 3, 10, 30, []string{"csv", "demo"}
		if err := s.FinishRecalcRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRecalcRun(ctx, r); tokenlysis.ErrorCode(err) != tokenlysis.ECONFLICT {
			t.Errorf("finishing twice: %v", err)
		}
		if err := s.FinishRecalcRun(ctx, sqlstore.RecalcRun{ID: "nope", Status: sqlstore.RecalcFailed}); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("finishing an unknown run: %v", err)
		}
		if err := s.FinishRecalcRun(ctx, sqlstore.RecalcRun{ID: "r2", Status: "running"}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("finishing as running: %v", err)
		}
		got, err := s.FindRecalcRun(ctx, "r1")
		if err != nil || got.Status != "succeeded" || got.JobID != "job-1" || !got.Since.Equal(day("2024-06-01")) || got.Assets != 3 ||
			got.Days != 10 || got.Rows != 30 || !slices.Equal(got.Sources, []string{"csv", "demo"}) || got.FinishedAt.IsZero() {
			t.Fatalf("FindRecalcRun = %+v, %v", got, err)
		}
		if err := s.FinishRecalcRun(ctx, sqlstore.RecalcRun{ID: "r2", Status: sqlstore.RecalcFailed, Error: "boom"}); err != nil {
			t.Fatal(err)
		}
		runs, err := s.ListRecalcRuns(ctx, 10)
		if err != nil || len(runs) != 2 {
			t.Fatalf("ListRecalcRuns = %+v, %v", runs, err)
		}
		r2 := runs[0]
		if runs[0].ID != "r2" {
			r2 = runs[1]
		}
		if r2.Error != "boom" || r2.Status != "failed" || !r2.Since.IsZero() || r2.JobID != "" || len(r2.Sources) != 0 {
			t.Errorf("run r2 = %+v", r2)
		}
		if _, err := s.FindRecalcRun(ctx, "nope"); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("FindRecalcRun(nope) = %v", err)
		}
	})
}

// BenchmarkLatestScores measures the query behind GET /api/scores?limit=100
// over 1,000 coins (P5: p99 < 5 ms at 1,000 requests/s).
func BenchmarkLatestScores(b *testing.B) {
	for _, d := range databasetest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := databasetest.New(b, d)
			s := sqlstore.New(db, sqlstore.Config{})
			const n = 1000
			coins := make([]sqlstore.Coin, n)
			batch := sqlstore.ScoreBatch{From: sqlstore.DayOf(day("2025-01-01")), To: sqlstore.DayOf(day("2025-01-14"))}
			for i := range coins {
				coins[i] = newCoin(fmt.Sprintf("coin-%04d", i), []string{"DeFi", "Meme", "AI"}[i%3])
				batch.Coins = append(batch.Coins, newScores(coins[i].ID, batch.From, 14, float64(i%97)))
			}
			if err := s.UpsertCoins(ctx, coins); err != nil {
				b.Fatal(err)
			}
			if _, err := s.WriteScores(ctx, "bench", batch); err != nil {
				b.Fatal(err)
			}
			for _, f := range []sqlstore.ScoreFilter{{Limit: 100}, {Limit: 100, Category: "meme"}} {
				b.Run("category="+f.Category, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						p, err := s.LatestScores(ctx, f)
						if err != nil || len(p.Items) != 100 {
							b.Fatalf("LatestScores: %d items, %v", len(p.Items), err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkWriteScores measures one WriteScores call of the size the
// recalculation writes per transaction (100 coins × 1,826 days, 182,600
// rows): "first" into an empty table, "again" with the stored rows
// unchanged (read and compared, nothing written), "changed" with every
// value different (every row replaced).
func BenchmarkWriteScores(b *testing.B) {
	for _, d := range databasetest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := databasetest.New(b, d)
			s := sqlstore.New(db, sqlstore.Config{})
			const nCoins, nDays = 100, 1826
			d0 := sqlstore.DayOf(day("2021-01-01"))
			coins := make([]sqlstore.Coin, nCoins)
			batches := [2]sqlstore.ScoreBatch{}
			for i := range batches {
				batches[i] = sqlstore.ScoreBatch{From: d0, To: d0 + nDays - 1}
			}
			for i := range coins {
				coins[i] = newCoin(fmt.Sprintf("coin-%04d", i))
				for k := range batches {
					batches[k].Coins = append(batches[k].Coins, newScores(coins[i].ID, d0, nDays, float64(i+k)))
				}
			}
			if err := s.UpsertCoins(ctx, coins); err != nil {
				b.Fatal(err)
			}
			rows := int64(batches[0].Rows())
			write := func(b *testing.B, batch sqlstore.ScoreBatch, changed int64) {
				b.Helper()
				w, err := s.WriteScores(ctx, "bench", batch)
				if err != nil {
					b.Fatal(err)
				}
				if w.Rows != rows || w.Changed != changed {
					b.Fatalf("WriteScores = %+v, want %d rows, %d changed", w, rows, changed)
				}
			}
			report := func(b *testing.B) {
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			}
			// TRUNCATE leaves PostgreSQL no dead index entries to check the
			// new keys against, as in a new table.
			empty := `DELETE FROM scores`
			if d == database.Postgres {
				empty = `TRUNCATE scores`
			}
			b.Run("first", func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					if _, err := db.ExecContext(ctx, empty); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					write(b, batches[0], rows)
				}
				report(b)
			})
			// Each of the others starts from batch 0 stored.
			prepare := func(b *testing.B) {
				if _, err := s.WriteScores(ctx, "bench", batches[0]); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("again", func(b *testing.B) {
				prepare(b)
				for b.Loop() {
					write(b, batches[0], 0)
				}
				report(b)
			})
			b.Run("changed", func(b *testing.B) {
				prepare(b)
				i := 0
				for b.Loop() {
					i++
					write(b, batches[i%2], rows)
				}
				report(b)
			})
		})
	}
}
