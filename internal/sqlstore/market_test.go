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

// marketBundle is what the market tests share: a store on a fresh database.
type marketBundle struct {
	ctx   context.Context
	store *sqlstore.Store
	db    *database.DB
}

// forEachStore runs fn on a fresh store of each engine.
func forEachStore(t *testing.T, fn func(t *testing.T, tb marketBundle)) {
	t.Helper()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		fn(t, marketBundle{ctx: context.Background(), store: sqlstore.New(db, sqlstore.Config{}), db: db})
	})
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func intp(n int) *int { return &n }

// newCoin is the coin factory.
func newCoin(id string, cats ...string) sqlstore.Coin {
	return sqlstore.Coin{ID: id, Symbol: id[:min(3, len(id))], Name: "Coin " + id, Categories: cats, Source: sqlstore.SourceDemo}
}

func mustUpsertCoins(t *testing.T, tb marketBundle, coins ...sqlstore.Coin) {
	t.Helper()
	if err := tb.store.UpsertCoins(tb.ctx, coins); err != nil {
		t.Fatalf("UpsertCoins: %v", err)
	}
}

// sameFloat compares two values where NaN equals NaN.
func sameFloat(a, b float64) bool { return a == b || (a != a && b != b) }

func TestDay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "1970-01-01"},
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), "1969-12-31"},
		{time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC), "2000-02-29"},
		{time.Date(2025, 1, 14, 23, 0, 0, 0, time.FixedZone("CET", 3600)), "2025-01-14"},
		{time.Date(2025, 1, 15, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2025-01-14"},
		{time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC), "1900-03-01"},
		{time.Date(2199, 12, 31, 0, 0, 0, 0, time.UTC), "2199-12-31"},
	}
	for _, tt := range tests {
		d := sqlstore.DayOf(tt.in)
		if got := d.String(); got != tt.want {
			t.Errorf("DayOf(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		if got := d.Time().Format(time.DateOnly); got != tt.want || d.Time().Location() != time.UTC || d.Time().Hour() != 0 {
			t.Errorf("DayOf(%v).Time() = %v, want %s at 00:00 UTC", tt.in, d.Time(), tt.want)
		}
	}
	// Every day of four centuries formats as time does.
	for d := sqlstore.DayOf(day("1900-01-01")); d < sqlstore.DayOf(day("2300-01-01")); d++ {
		if got, want := d.String(), d.Time().Format(time.DateOnly); got != want {
			t.Fatalf("Day(%d).String() = %q, want %q", d, got, want)
		}
	}
}

func TestCoins(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		btc := newCoin("bitcoin", "Layer 1", "Store of Value")
		btc.Symbol, btc.Name, btc.LogoURL, btc.ListingsCount, btc.Source = "btc", "Bitcoin", "https://example.com/btc.png", intp(500), sqlstore.SourceCoinGecko
		mustUpsertCoins(t, tb, btc, newCoin("uniswap", "DeFi"), newCoin("pepe", "Meme"), newCoin("nocat"))

		got, err := s.FindCoin(ctx, "bitcoin")
		if err != nil {
			t.Fatal(err)
		}
		if got.Symbol != "btc" || got.Name != "Bitcoin" || !slices.Equal(got.Categories, []string{"Layer 1", "Store of Value"}) ||
			got.ListingsCount == nil || *got.ListingsCount != 500 || got.Source != "coingecko" || got.UpdatedAt.IsZero() {
			t.Fatalf("FindCoin = %+v", got)
		}
		if c, _ := s.FindCoin(ctx, "nocat"); c.Categories == nil || len(c.Categories) != 0 || c.ListingsCount != nil {
			t.Fatalf("coin without categories or listings = %+v", c)
		}
		if _, err := s.FindCoin(ctx, "nope"); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("FindCoin(nope) = %v", err)
		}

		// An update with unknown fields keeps what is stored.
		update := sqlstore.Coin{ID: "bitcoin", Name: "Bitcoin (new)", Source: sqlstore.SourceCoinGecko}
		mustUpsertCoins(t, tb, update)
		got, _ = s.FindCoin(ctx, "bitcoin")
		if got.Name != "Bitcoin (new)" || got.Symbol != "btc" || len(got.Categories) != 2 || got.ListingsCount == nil || got.LogoURL == "" {
			t.Fatalf("after partial update: %+v", got)
		}
		update.ListingsCount, update.Categories = intp(0), []string{"Layer 1"}
		mustUpsertCoins(t, tb, update)
		got, _ = s.FindCoin(ctx, "bitcoin")
		if *got.ListingsCount != 0 || !slices.Equal(got.Categories, []string{"Layer 1"}) {
			t.Fatalf("after full update: %+v", got)
		}

		tests := []struct {
			name string
			f    sqlstore.CoinFilter
			want []string
		}{
			{"all", sqlstore.CoinFilter{}, []string{"bitcoin", "nocat", "pepe", "uniswap"}},
			{"ids", sqlstore.CoinFilter{IDs: []string{"pepe", "bitcoin", "missing"}}, []string{"bitcoin", "pepe"}},
			{"no ids", sqlstore.CoinFilter{IDs: []string{}}, []string{}},
			{"category any case", sqlstore.CoinFilter{Category: "defi"}, []string{"uniswap"}},
			{"category with space", sqlstore.CoinFilter{Category: "Layer 1"}, []string{"bitcoin"}},
			{"unknown category", sqlstore.CoinFilter{Category: "Gaming"}, []string{}},
		}
		for _, tt := range tests {
			coins, err := s.ListCoins(ctx, tt.f)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			ids := []string{}
			for _, c := range coins {
				ids = append(ids, c.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("%s: ListCoins = %v, want %v", tt.name, ids, tt.want)
			}
		}

		invalid := []sqlstore.Coin{
			{ID: "", Source: "demo"},
			{ID: "x", Source: "yahoo"},
			{ID: "x", Source: "demo", ListingsCount: intp(-1)},
		}
		for _, c := range invalid {
			if err := s.UpsertCoins(ctx, []sqlstore.Coin{newCoin("good"), c}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
				t.Errorf("UpsertCoins(%+v) = %v, want invalid", c, err)
			}
		}
		if _, err := s.FindCoin(ctx, "good"); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("a rejected batch wrote a coin: %v", err)
		}
	})
}

func TestCoins_ManyInBatches(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		// More coins than one statement may carry parameters for.
		coins := make([]sqlstore.Coin, 4100)
		for i := range coins {
			coins[i] = newCoin(fmt.Sprintf("c%05d", i), "DeFi")
		}
		mustUpsertCoins(t, tb, coins...)
		got, err := tb.store.ListCoins(tb.ctx, sqlstore.CoinFilter{Category: "DeFi"})
		if err != nil || len(got) != len(coins) || got[4099].ID != "c04099" {
			t.Fatalf("ListCoins: %d coins, %v", len(got), err)
		}
	})
}

func TestSnapshots(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		mustUpsertCoins(t, tb, newCoin("a"), newCoin("b"), newCoin("c"), newCoin("d"))
		asOf := time.Date(2025, 1, 14, 10, 30, 0, 0, time.UTC)
		snaps := []sqlstore.Snapshot{
			{CoinID: "a", Price: 2, MarketCap: 100, Volume24h: 10, Rank: 2, Change24h: -1.5, AsOf: asOf, Source: "demo"},
			{CoinID: "b", Price: 3, MarketCap: 300, Volume24h: 0, Rank: 1, Change24h: 0, AsOf: asOf, Source: "demo"},
			{CoinID: "c", Price: 1, MarketCap: math.NaN(), Volume24h: math.NaN(), Change24h: math.NaN(), AsOf: asOf, Source: "demo"},
		}
		if err := s.UpsertSnapshots(ctx, snaps); err != nil {
			t.Fatal(err)
		}
		// A missing coin rejects the whole batch.
		bad := []sqlstore.Snapshot{{CoinID: "d", Price: 9, MarketCap: 1e9, AsOf: asOf, Source: "demo"}, {CoinID: "zzz", Price: 1, AsOf: asOf, Source: "demo"}}
		if err := s.UpsertSnapshots(ctx, bad); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("snapshot of a missing coin: %v", err)
		}
		if err := s.UpsertSnapshots(ctx, []sqlstore.Snapshot{{CoinID: "a", Source: "demo"}}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Fatalf("snapshot without as_of: %v", err)
		}
		top, err := s.TopMarkets(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range top {
			ids = append(ids, m.Coin.ID)
		}
		if !slices.Equal(ids, []string{"b", "a", "c"}) {
			t.Fatalf("TopMarkets order = %v, want b, a, c (unknown cap last; d has no snapshot)", ids)
		}
		b, c := top[0].Snapshot, top[2].Snapshot
		if b.Volume24h != 0 || b.Change24h != 0 || b.Rank != 1 || !b.AsOf.Equal(asOf) || b.Source != "demo" {
			t.Errorf("snapshot b = %+v (a real 0 must stay 0)", b)
		}
		if !math.IsNaN(c.MarketCap) || !math.IsNaN(c.Volume24h) || !math.IsNaN(c.Change24h) || c.Rank != 0 || c.Price != 1 {
			t.Errorf("snapshot c = %+v, want NaN for the unknown values", c)
		}
		if top, _ := s.TopMarkets(ctx, 1); len(top) != 1 {
			t.Errorf("TopMarkets(1) returned %d", len(top))
		}
	})
}

func TestHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		mustUpsertCoins(t, tb, newCoin("a"), newCoin("b"))
		nan := math.NaN()
		rows := []sqlstore.HistoryRow{
			{Day: day("2024-01-01"), Price: 10, MarketCap: 1000, Volume: 0},
			{Day: day("2024-01-02"), Price: 11, MarketCap: nan, Volume: 50},
			// 2024-01-03 is a gap.
			{Day: day("2024-01-04").Add(13 * time.Hour), Price: 9.722410112328183e-10, MarketCap: 0, Volume: nan},
		}
		if n, err := s.UpsertHistory(ctx, "a", sqlstore.SourceCSV, rows); err != nil || n != 3 {
			t.Fatalf("UpsertHistory = %d, %v", n, err)
		}
		got, err := s.PriceHistory(ctx, "a", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("PriceHistory = %+v", got)
		}
		for i, p := range got {
			want := rows[i]
			if !p.Day.Equal(sqlstore.DayOf(want.Day).Time()) || p.Price != want.Price || !sameFloat(p.MarketCap, want.MarketCap) ||
				!sameFloat(p.Volume, want.Volume) || p.Source != "csv" {
				t.Errorf("row %d = %+v, want %+v", i, p, want)
			}
		}

		// Upsert replaces a day and keeps the others.
		if _, err := s.UpsertHistory(ctx, "a", sqlstore.SourceDemo, []sqlstore.HistoryRow{{Day: day("2024-01-02"), Price: 12, MarketCap: 1200, Volume: nan}}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.PriceHistory(ctx, "a", day("2024-01-02"), day("2024-01-04"))
		if len(got) != 2 || got[0].Price != 12 || got[0].Source != "demo" || !math.IsNaN(got[0].Volume) || got[1].MarketCap != 0 {
			t.Fatalf("after upsert, 2nd..4th = %+v", got)
		}

		if _, err := s.UpsertHistory(ctx, "nope", "csv", rows); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("history of an unknown coin: %v", err)
		}
		if _, err := s.PriceHistory(ctx, "nope", time.Time{}, time.Time{}); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("PriceHistory(nope): %v", err)
		}
		if got, err := s.PriceHistory(ctx, "b", time.Time{}, time.Time{}); err != nil || len(got) != 0 {
			t.Errorf("PriceHistory of a coin without history = %v, %v; want empty", got, err)
		}
		invalid := []struct {
			field string
			rows  []sqlstore.HistoryRow
		}{
			{"day", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: 1}, {Day: day("2024-02-01"), Price: 1}}},
			{"day", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: 1}, {Day: day("2024-02-02").Add(time.Hour), Price: 1}}},
			{"price", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: 0}}},
			{"price", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: nan}}},
			{"market_cap", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: 1, MarketCap: -1}}},
			{"volume", []sqlstore.HistoryRow{{Day: day("2024-02-02"), Price: 1, MarketCap: nan, Volume: math.Inf(1)}}},
		}
		for _, tt := range invalid {
			_, err := s.UpsertHistory(ctx, "b", "csv", tt.rows)
			if tokenlysis.ErrorCode(err) != tokenlysis.EINVALID || tokenlysis.ErrorField(err) != tt.field {
				t.Errorf("UpsertHistory(%v) = %v, want invalid %s", tt.rows, err, tt.field)
			}
		}
		if _, err := s.UpsertHistory(ctx, "b", "yahoo", rows); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("unknown source: %v", err)
		}
	})
}

func TestLoadHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		mustUpsertCoins(t, tb, newCoin("a"), newCoin("b"), newCoin("c"))
		// More rows than one statement holds, with a remainder.
		start := day("2020-01-01")
		long := make([]sqlstore.HistoryRow, 1234)
		for i := range long {
			long[i] = sqlstore.HistoryRow{Day: start.AddDate(0, 0, i), Price: float64(i + 1), MarketCap: math.NaN(), Volume: float64(i)}
		}
		if n, err := s.UpsertHistory(ctx, "b", "demo", long); err != nil || n != len(long) {
			t.Fatalf("UpsertHistory(long) = %d, %v", n, err)
		}
		// Two sources for one coin.
		if _, err := s.UpsertHistory(ctx, "a", "csv", []sqlstore.HistoryRow{{Day: day("2020-01-01"), Price: 1, MarketCap: 5, Volume: 0}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpsertHistory(ctx, "a", "coingecko", []sqlstore.HistoryRow{{Day: day("2020-01-03"), Price: 2, MarketCap: math.NaN(), Volume: 7}}); err != nil {
			t.Fatal(err)
		}

		all, err := s.LoadHistory(ctx, sqlstore.HistoryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].CoinID != "a" || all[1].CoinID != "b" {
			t.Fatalf("LoadHistory coins = %+v", all)
		}
		a := all[0]
		if !slices.Equal(a.Days, []sqlstore.Day{sqlstore.DayOf(day("2020-01-01")), sqlstore.DayOf(day("2020-01-03"))}) ||
			!slices.Equal(a.Price, []float64{1, 2}) || a.MarketCap[0] != 5 || !math.IsNaN(a.MarketCap[1]) ||
			a.Volume[0] != 0 || a.Volume[1] != 7 {
			t.Errorf("columns of a = %+v", a)
		}
		if !slices.Equal(a.Sources, []string{"csv", "coingecko"}) || !slices.Equal(a.SourceIndex, []uint8{0, 1}) {
			t.Errorf("sources of a = %v %v", a.Sources, a.SourceIndex)
		}
		b := all[1]
		if len(b.Days) != len(long) || b.Price[1233] != 1234 || b.Volume[0] != 0 || !math.IsNaN(b.MarketCap[7]) ||
			b.Days[1233] != sqlstore.DayOf(start)+1233 || !slices.Equal(b.Sources, []string{"demo"}) {
			t.Errorf("columns of b: %d days, last %v", len(b.Days), b.Days[len(b.Days)-1])
		}

		since, err := s.LoadHistory(ctx, sqlstore.HistoryFilter{CoinIDs: []string{"a", "b"}, Since: day("2023-05-01")})
		if err != nil || len(since) != 1 || since[0].CoinID != "b" || since[0].Days[0] != sqlstore.DayOf(day("2023-05-01")) {
			t.Fatalf("LoadHistory(since) = %v, %v", since, err)
		}
		if none, err := s.LoadHistory(ctx, sqlstore.HistoryFilter{CoinIDs: []string{}}); err != nil || len(none) != 0 {
			t.Errorf("LoadHistory(no coins) = %v, %v", none, err)
		}
		// SQLite reads in parts on several connections; a pool too small
		// for that reads in one scan, with the same result.
		tb.db.SetMaxOpenConns(1)
		one, err := s.LoadHistory(ctx, sqlstore.HistoryFilter{})
		if err != nil || len(one) != len(all) {
			t.Fatalf("LoadHistory on one connection = %d coins, %v", len(one), err)
		}
		for i := range one {
			if one[i].CoinID != all[i].CoinID || !slices.Equal(one[i].Days, all[i].Days) || !slices.Equal(one[i].Price, all[i].Price) ||
				!slices.Equal(one[i].Sources, all[i].Sources) || !slices.Equal(one[i].SourceIndex, all[i].SourceIndex) {
				t.Errorf("LoadHistory on one connection: coin %d = %+v, want %+v", i, one[i], all[i])
			}
		}
	})
}

func TestImportHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		rows := []sqlstore.HistoryRow{{Day: day("2024-01-01"), Price: 1, MarketCap: math.NaN(), Volume: math.NaN()}}
		coin := sqlstore.Coin{ID: "bitcoin", Symbol: "btc", Name: "Bitcoin", Source: sqlstore.SourceCSV}
		created, err := s.ImportHistory(ctx, coin, rows)
		if err != nil || !created {
			t.Fatalf("ImportHistory = %v, %v", created, err)
		}
		if c, err := s.FindCoin(ctx, "bitcoin"); err != nil || c.Source != "csv" || c.Symbol != "btc" {
			t.Fatalf("created coin = %+v, %v", c, err)
		}
		// A second import keeps the coin's record as it is.
		coin.Name = "Renamed"
		if created, err := s.ImportHistory(ctx, coin, rows); err != nil || created {
			t.Fatalf("second ImportHistory = %v, %v", created, err)
		}
		if c, _ := s.FindCoin(ctx, "bitcoin"); c.Name != "Bitcoin" {
			t.Errorf("import renamed an existing coin: %+v", c)
		}
		// An invalid import writes nothing, not even the coin.
		bad := []sqlstore.HistoryRow{{Day: day("2024-01-01"), Price: 1}, {Day: day("2024-01-01"), Price: 2}}
		if _, err := s.ImportHistory(ctx, sqlstore.Coin{ID: "eth", Source: "csv"}, bad); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Fatalf("invalid import: %v", err)
		}
		if _, err := s.FindCoin(ctx, "eth"); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Errorf("invalid import created its coin: %v", err)
		}
	})
}

func TestSaveMarket_AllOrNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		asOf := day("2025-01-14")
		m := sqlstore.MarketData{
			Coins:     []sqlstore.Coin{newCoin("a"), newCoin("b")},
			Snapshots: []sqlstore.Snapshot{{CoinID: "a", Price: 1, MarketCap: 10, Volume24h: 1, AsOf: asOf, Source: "demo"}},
			History: []sqlstore.CoinHistory{
				{CoinID: "a", Source: "demo", Rows: []sqlstore.HistoryRow{{Day: asOf, Price: 1, MarketCap: 10, Volume: 1}}},
				{CoinID: "ghost", Source: "demo", Rows: []sqlstore.HistoryRow{{Day: asOf, Price: 1}}},
			},
		}
		if err := s.SaveMarket(ctx, m); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("SaveMarket with a history of a missing coin: %v", err)
		}
		if coins, _ := s.ListCoins(ctx, sqlstore.CoinFilter{}); len(coins) != 0 {
			t.Fatalf("a failed SaveMarket left coins behind: %v", coins)
		}
		m.History = m.History[:1]
		if err := s.SaveMarket(ctx, m); err != nil {
			t.Fatal(err)
		}
		if top, _ := s.TopMarkets(ctx, 10); len(top) != 1 {
			t.Errorf("TopMarkets = %v", top)
		}
		if h, _ := s.PriceHistory(ctx, "a", time.Time{}, time.Time{}); len(h) != 1 {
			t.Errorf("history = %v", h)
		}
	})
}

func TestFNG(t *testing.T) {
	forEachStore(t, func(t *testing.T, tb marketBundle) {
		s, ctx := tb.store, tb.ctx
		if _, err := s.LatestFNG(ctx); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("LatestFNG on an empty table: %v", err)
		}
		pts := []sqlstore.FNG{
			{Day: day("2025-01-12"), Value: 0, Classification: "Extreme Fear", Source: "alternative.me"},
			{Day: day("2025-01-13"), Value: 47, Classification: "Neutral", Source: "alternative.me"},
			{Day: day("2025-01-14"), Value: 100, Classification: "Extreme Greed", Source: "alternative.me"},
		}
		if n, err := s.UpsertFNG(ctx, pts); err != nil || n != 3 {
			t.Fatalf("UpsertFNG = %d, %v", n, err)
		}
		pts[1].Value = 50
		if _, err := s.UpsertFNG(ctx, pts[1:2]); err != nil {
			t.Fatal(err)
		}
		latest, err := s.LatestFNG(ctx)
		if err != nil || latest.Value != 100 || !latest.Day.Equal(day("2025-01-14")) || latest.Classification != "Extreme Greed" {
			t.Fatalf("LatestFNG = %+v, %v", latest, err)
		}
		hist, err := s.FNGHistory(ctx, time.Time{}, time.Time{}, 0)
		if err != nil || len(hist) != 3 || hist[0].Value != 0 || hist[1].Value != 50 || !hist[0].Day.Equal(day("2025-01-12")) {
			t.Fatalf("FNGHistory = %+v, %v", hist, err)
		}
		if hist, _ := s.FNGHistory(ctx, day("2025-01-13"), time.Time{}, 0); len(hist) != 2 {
			t.Errorf("FNGHistory(from) = %+v", hist)
		}
		if hist, _ := s.FNGHistory(ctx, time.Time{}, time.Time{}, 2); len(hist) != 2 || hist[0].Value != 50 || hist[1].Value != 100 {
			t.Errorf("FNGHistory(limit 2) = %+v, want the latest two, oldest first", hist)
		}
		for _, bad := range []sqlstore.FNG{{Day: day("2025-01-01"), Value: 101, Source: "x"}, {Day: day("2025-01-01"), Value: 1}} {
			if _, err := s.UpsertFNG(ctx, []sqlstore.FNG{bad}); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
				t.Errorf("UpsertFNG(%+v) = %v", bad, err)
			}
		}
	})
}
