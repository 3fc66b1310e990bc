package marketimport

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/marketcsv"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Store is the part of the SQL store the importer writes to.
type Store interface {
	ImportHistory(ctx context.Context, c sqlstore.Coin, rows []sqlstore.HistoryRow) (created bool, err error)
	SaveMarket(ctx context.Context, m sqlstore.MarketData) error
}

var _ Store = (*sqlstore.Store)(nil)

// FormatDemo is Summary.Format for the demo universe.
const FormatDemo = "demo"

// Meta describes an import beyond its data.
type Meta struct {
	// Symbol and Name describe the coin when the import creates it.
	Symbol, Name string
	// Limits bounds what the parser reads (zero fields: marketcsv's
	// defaults, 16 MiB and 100,000 rows).
	Limits marketcsv.Config
}

// Summary describes what an import or a seed wrote.
type Summary struct {
	// CoinID is the imported coin; "" for the demo universe.
	CoinID string `json:"coin,omitempty"`
	// CoinCreated reports that the import created the coin.
	CoinCreated bool `json:"coin_created,omitempty"`
	// Assets is the number of coins written.
	Assets int `json:"assets"`
	// Format is "coingecko" or "ohlcv" (the CSV header), or "demo".
	Format string `json:"format"`
	// Rows is the number of history rows written.
	Rows int `json:"rows"`
	// First and Last are the first and last days written.
	First time.Time `json:"first_day"`
	Last  time.Time `json:"last_day"`
	// Gaps lists the runs of missing days of an import; GapDays counts the
	// missing days (of every asset for the demo universe).
	Gaps    []marketcsv.Gap `json:"gaps,omitempty"`
	GapDays int             `json:"gap_days"`
	// Source is the source recorded with the rows: "csv" or "demo".
	Source string `json:"source"`
}

// maxCoinID bounds a coin ID (CoinGecko's are far shorter).
const maxCoinID = 100

func validCoinID(id string) bool {
	if id == "" || len(id) > maxCoinID {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// Import parses r as a market-history CSV and writes it as coinID's
// history in one transaction (see the package documentation).
//
// Errors: EINVALID for an invalid coin ID (letters, digits, '-', '_' and
// '.', at most 100) or a malformed file (the message names the line and
// column, Field the column); ETOOLARGE beyond meta.Limits; those of the
// store (EUNAVAILABLE…). Nothing is written on any error.
func Import(ctx context.Context, store Store, coinID string, r io.Reader, meta Meta) (Summary, error) {
	if !validCoinID(coinID) {
		return Summary{}, tokenlysis.FieldErrorf("coin", "Invalid coin ID %q: use letters, digits, '-', '_' and '.', at most %d characters.", coinID, maxCoinID)
	}
	p, err := marketcsv.NewParser(meta.Limits)
	if err != nil {
		return Summary{}, err
	}
	res, err := p.Parse(r)
	if err != nil {
		return Summary{}, fmt.Errorf("import %s: %w", coinID, err)
	}
	rows := make([]sqlstore.HistoryRow, len(res.Rows))
	for i, row := range res.Rows {
		rows[i] = sqlstore.HistoryRow{Day: row.Date, Price: row.Price, MarketCap: row.MarketCap, Volume: row.Volume}
	}
	coin := sqlstore.Coin{ID: coinID, Symbol: meta.Symbol, Name: meta.Name, Source: sqlstore.SourceCSV}
	created, err := store.ImportHistory(ctx, coin, rows)
	if err != nil {
		return Summary{}, fmt.Errorf("import %s: %w", coinID, err)
	}
	sum := Summary{
		CoinID: coinID, CoinCreated: created, Assets: 1, Format: string(res.Format), Rows: len(rows),
		First: res.Rows[0].Date, Last: res.Rows[len(res.Rows)-1].Date, Gaps: res.Gaps, Source: sqlstore.SourceCSV,
	}
	for _, g := range res.Gaps {
		sum.GapDays += g.Days
	}
	return sum, nil
}

// SeedDemo writes the demo universe of cfg (see demo.Config; the zero
// Config is the default 300 assets over four years) in one transaction:
// coins, a snapshot per coin from its last day (rank by market cap, the
// 24-hour change from the day before when there is one) and every day of
// history, all with source "demo".
func SeedDemo(ctx context.Context, store Store, cfg demo.Config) (Summary, error) {
	assets := demo.Universe(cfg)
	m := sqlstore.MarketData{
		Coins:     make([]sqlstore.Coin, len(assets)),
		Snapshots: make([]sqlstore.Snapshot, len(assets)),
		History:   make([]sqlstore.CoinHistory, len(assets)),
	}
	sum := Summary{Assets: len(assets), Format: FormatDemo, Source: sqlstore.SourceDemo}
	for i, a := range assets {
		listings := a.ListingsCount
		m.Coins[i] = sqlstore.Coin{ID: a.ID, Symbol: a.Symbol, Name: a.Name, Categories: a.Categories, LogoURL: a.LogoURL,
			ListingsCount: &listings, Source: sqlstore.SourceDemo}
		rows := make([]sqlstore.HistoryRow, len(a.History))
		for j, d := range a.History {
			rows[j] = sqlstore.HistoryRow{Day: d.Date, Price: d.Price, MarketCap: d.MarketCap, Volume: d.Volume}
		}
		m.History[i] = sqlstore.CoinHistory{CoinID: a.ID, Source: sqlstore.SourceDemo, Rows: rows}
		last := a.History[len(a.History)-1]
		change := math.NaN()
		if k := len(a.History) - 2; k >= 0 && last.Date.Sub(a.History[k].Date) == 24*time.Hour {
			change = (last.Price/a.History[k].Price - 1) * 100
		}
		m.Snapshots[i] = sqlstore.Snapshot{CoinID: a.ID, Price: last.Price, MarketCap: last.MarketCap, Volume24h: last.Volume,
			Rank: i + 1, Change24h: change, AsOf: last.Date, Source: sqlstore.SourceDemo}
		sum.Rows += len(rows)
		first := a.History[0].Date
		if sum.First.IsZero() || first.Before(sum.First) {
			sum.First = first
		}
		if last.Date.After(sum.Last) {
			sum.Last = last.Date
		}
		sum.GapDays += int(last.Date.Sub(first)/(24*time.Hour)) + 1 - len(a.History)
	}
	if err := store.SaveMarket(ctx, m); err != nil {
		return Summary{}, fmt.Errorf("seed demo: %w", err)
	}
	return sum, nil
}
