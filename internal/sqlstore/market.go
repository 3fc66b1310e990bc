package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Market data (migration 002_market), for the functional specification:
//
//   - coins: one row per asset. ID is CoinGecko's ("bitcoin") or "demo-…"
//     for the bundled demo universe; categories are a JSON array of names;
//     listings_count is NULL when unknown (CoinGecko's market list does not
//     carry it). source says who created or last refreshed the record.
//   - market_snapshots: the latest market state per coin (price, market
//     cap, 24h volume, rank, 24h change in percent, as_of), replaced on
//     each ingest. NULL where the API sent null.
//   - price_history: one row per coin and UTC day (DATE on PostgreSQL,
//     'YYYY-MM-DD' text on SQLite), upserted. price is required and > 0; an
//     unknown market cap or volume is NULL, a reported 0 stays 0, and a day
//     without data has no row (a gap), never an invented price.
//   - scores and latest_scores: see Score and WriteScores; fng: see FNG;
//     recalc_runs: see RecalcRun.
//
// Sources of market data, stored in the source column of coins,
// market_snapshots, price_history and scores.
const (
	SourceCoinGecko = "coingecko" // the CoinGecko API
	SourceDemo      = "demo"      // the bundled demo universe (internal/demo)
	SourceCSV       = "csv"       // an imported CSV file (internal/marketimport)
)

func validSource(s string) bool {
	return s == SourceCoinGecko || s == SourceDemo || s == SourceCSV
}

func sourceError(s string) error {
	return tokenlysis.FieldErrorf("source", "Unknown data source %q: want coingecko, demo or csv.", s)
}

// maxParams bounds the bind parameters of one multi-row statement, under
// SQLite's limit (32766) and PostgreSQL's (65535).
const maxParams = 30000

// placeholders returns rows groups of width ? placeholders: "(?, ?), (?, ?)".
func placeholders(rows, width int) string {
	one := "(" + strings.Repeat("?, ", width-1) + "?)"
	var b strings.Builder
	b.Grow(rows * (len(one) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// dayStrings formats days for bind parameters, each distinct day once per
// write call rather than once per row.
type dayStrings map[Day]string

func (c dayStrings) get(d Day) string {
	s, ok := c[d]
	if !ok {
		s = dayArg(d)
		c[d] = s
	}
	return s
}

// nanOf returns the value of a nullable float column, NaN for NULL.
func nanOf(n sql.NullFloat64) float64 {
	if !n.Valid {
		return math.NaN()
	}
	return n.Float64
}

func dayBounds(from, to time.Time) (where []string, args []any) {
	if !from.IsZero() {
		where, args = append(where, "day >= ?"), append(args, timeDayArg(from))
	}
	if !to.IsZero() {
		where, args = append(where, "day <= ?"), append(args, timeDayArg(to))
	}
	return where, args
}

// Day is a UTC calendar day, counted in days since 1970-01-01. Columnar
// data (HistoryColumns, ScoreColumns) uses it instead of time.Time: four
// bytes per point and plain integer arithmetic for day indexes.
// Row-oriented methods take and return time.Time at 00:00 UTC.
type Day int32

// DayOf returns the UTC calendar day of t.
func DayOf(t time.Time) Day {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return Day(d)
}

// Time returns 00:00 UTC of d.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String returns d as YYYY-MM-DD, the way SQLite stores days.
func (d Day) String() string { return string(appendDay(make([]byte, 0, 10), d)) }

// appendDay appends d as YYYY-MM-DD (years 0–9999) to b without going
// through time.Time: the write paths format millions of days.
func appendDay(b []byte, d Day) []byte {
	y, m, dd := civil(int64(d))
	return append(b, byte('0'+y/1000%10), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+dd/10), byte('0'+dd%10))
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's civil_from_days).
func civil(z int64) (y, m, d int64) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// daysFromCivil is the inverse of civil.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// parseDay parses YYYY-MM-DD (SQLite's day text), allowing a time suffix.
func parseDay[T string | []byte](b T) (Day, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	n := func(i, j int) (int64, bool) {
		var v int64
		for ; i < j; i++ {
			c := b[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	y, ok1 := n(0, 4)
	m, ok2 := n(5, 7)
	d, ok3 := n(8, 10)
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, false
	}
	return Day(daysFromCivil(y, m, d)), true
}

// dayScanner reads a day column: DATE on PostgreSQL (time.Time), text on
// SQLite.
type dayScanner struct{ d *Day }

func (s dayScanner) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		*s.d = DayOf(x)
		return nil
	case string:
		if d, ok := parseDay(x); ok {
			*s.d = d
			return nil
		}
	case []byte:
		if d, ok := parseDay(x); ok {
			*s.d = d
			return nil
		}
	}
	return fmt.Errorf("sqlstore: cannot read %T %v as a day", v, v)
}

// nullDay is a nullable day column (recalc_runs.since).
type nullDay struct {
	Day   Day
	Valid bool
}

func (n *nullDay) Scan(v any) error {
	if v == nil {
		n.Valid = false
		return nil
	}
	n.Valid = true
	return dayScanner{&n.Day}.Scan(v)
}

// dayArg is a day as a bind parameter: 'YYYY-MM-DD', which SQLite stores as
// is and PostgreSQL reads into a DATE.
func dayArg(d Day) string { return d.String() }

// timeDayArg is dayArg for a time.Time.
func timeDayArg(t time.Time) string { return DayOf(t).String() }

// nullable returns x, or nil (NULL) for NaN and ±Inf.
func nullable(x float64) any {
	if x-x != 0 {
		return nil
	}
	return x
}

// Coin is a crypto asset.
type Coin struct {
	// ID is the CoinGecko ID (e.g. "bitcoin") or "demo-…" for demo assets.
	ID     string
	Symbol string
	Name   string
	// Categories are the coin's categories (themes), possibly none.
	Categories []string
	LogoURL    string
	// ListingsCount is the number of exchange listings; nil when unknown.
	ListingsCount *int
	// Source is where the coin's record came from: SourceCoinGecko,
	// SourceDemo or SourceCSV.
	Source    string
	UpdatedAt time.Time
}

// CoinFilter selects coins. The zero value selects every coin.
type CoinFilter struct {
	// IDs, when not nil, restricts the result to these coins (an empty,
	// non-nil slice selects nothing).
	IDs []string
	// Category, when set, keeps the coins having that category, compared
	// case-insensitively.
	Category string
}

const coinColumns = `c.id, c.symbol, c.name, c.categories, c.logo_url, c.listings_count, c.source, c.updated_at`

// coinScan holds the scan targets of coinColumns.
type coinScan struct {
	c          Coin
	categories string
	listings   sql.NullInt64
}

func (cs *coinScan) dest() []any {
	return []any{&cs.c.ID, &cs.c.Symbol, &cs.c.Name, &cs.categories, &cs.c.LogoURL, &cs.listings, &cs.c.Source, &cs.c.UpdatedAt}
}

func (cs *coinScan) coin() (Coin, error) {
	c := cs.c
	c.UpdatedAt = c.UpdatedAt.UTC()
	c.Categories = []string{}
	if err := json.Unmarshal([]byte(cs.categories), &c.Categories); err != nil {
		return c, fmt.Errorf("categories of %s: %w", c.ID, err)
	}
	if cs.listings.Valid {
		n := int(cs.listings.Int64)
		c.ListingsCount = &n
	}
	return c, nil
}

// categoryFilter returns the SQL condition "coin c has category ?" of the
// store's engine (categories are a JSON array: TEXT on SQLite, JSONB on
// PostgreSQL).
func (s *Store) categoryFilter() string {
	if s.db.Dialect == database.Postgres {
		// The matching coins are found once (a hashed subplan), not by a
		// set-returning function per row of the ordered scan.
		return `c.id IN (SELECT cc.id FROM coins cc, jsonb_array_elements_text(cc.categories) AS cat(v) WHERE lower(cat.v) = lower(?))`
	}
	return `EXISTS (SELECT 1 FROM json_each(c.categories) AS cat WHERE lower(cat.value) = lower(?))`
}

func validateCoin(c Coin) error {
	if c.ID == "" {
		return tokenlysis.FieldErrorf("id", "A coin needs an ID.")
	}
	if !validSource(c.Source) {
		return sourceError(c.Source)
	}
	if c.ListingsCount != nil && *c.ListingsCount < 0 {
		return tokenlysis.FieldErrorf("listings_count", "Coin %s: the listings count must not be negative.", c.ID)
	}
	return nil
}

// UpsertCoins inserts or updates coins in one transaction. On an existing
// coin, an empty Symbol, Name, LogoURL or Categories and a nil
// ListingsCount keep the stored value (the CoinGecko market list, for one,
// carries neither categories nor listings); Source and UpdatedAt (set to
// now when zero) are always replaced.
//
// Errors: EINVALID for a coin without ID, with an unknown source or a
// negative listings count.
func (s *Store) UpsertCoins(ctx context.Context, coins []Coin) error {
	for _, c := range coins {
		if err := validateCoin(c); err != nil {
			return err
		}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return wrap("upsert coins", err)
	}
	defer tx.Rollback()
	if err := s.upsertCoins(ctx, tx, coins); err != nil {
		return wrap("upsert coins", err)
	}
	return wrap("upsert coins", tx.Commit())
}

func (s *Store) upsertCoins(ctx context.Context, tx sqlx.ExecerContext, coins []Coin) error {
	const width = 8
	const q = `INSERT INTO coins (id, symbol, name, categories, logo_url, listings_count, source, updated_at) VALUES %s
		ON CONFLICT (id) DO UPDATE SET
			symbol = CASE WHEN excluded.symbol = '' THEN coins.symbol ELSE excluded.symbol END,
			name = CASE WHEN excluded.name = '' THEN coins.name ELSE excluded.name END,
			categories = CASE WHEN excluded.categories = '[]' THEN coins.categories ELSE excluded.categories END,
			logo_url = CASE WHEN excluded.logo_url = '' THEN coins.logo_url ELSE excluded.logo_url END,
			listings_count = COALESCE(excluded.listings_count, coins.listings_count),
			source = excluded.source,
			updated_at = excluded.updated_at`
	now := s.now()
	for batch := range slices.Chunk(coins, maxParams/width) {
		args := make([]any, 0, len(batch)*width)
		for _, c := range batch {
			cats := c.Categories
			if cats == nil {
				cats = []string{}
			}
			js, err := json.Marshal(cats)
			if err != nil {
				return err
			}
			var listings any
			if c.ListingsCount != nil {
				listings = int64(*c.ListingsCount)
			}
			updated := c.UpdatedAt
			if updated.IsZero() {
				updated = now
			}
			args = append(args, c.ID, c.Symbol, c.Name, string(js), c.LogoURL, listings, c.Source, updated.UTC())
		}
		if _, err := tx.ExecContext(ctx, s.rebind(fmt.Sprintf(q, placeholders(len(batch), width))), args...); err != nil {
			return err
		}
	}
	return nil
}

// ensureCoin inserts c unless a coin with its ID exists, and reports
// whether it did.
func (s *Store) ensureCoin(ctx context.Context, tx sqlx.ExecerContext, c Coin) (bool, error) {
	cats := c.Categories
	if cats == nil {
		cats = []string{}
	}
	js, err := json.Marshal(cats)
	if err != nil {
		return false, err
	}
	var listings any
	if c.ListingsCount != nil {
		listings = int64(*c.ListingsCount)
	}
	updated := c.UpdatedAt
	if updated.IsZero() {
		updated = s.now()
	}
	const q = `INSERT INTO coins (id, symbol, name, categories, logo_url, listings_count, source, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	res, err := tx.ExecContext(ctx, s.rebind(q), c.ID, c.Symbol, c.Name, string(js), c.LogoURL, listings, c.Source, updated.UTC())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// FindCoin returns the coin with the given ID.
// Errors: ENOTFOUND.
func (s *Store) FindCoin(ctx context.Context, id string) (Coin, error) {
	var cs coinScan
	err := s.db.QueryRowxContext(ctx, s.rebind(`SELECT `+coinColumns+` FROM coins c WHERE c.id = ?`), id).Scan(cs.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return Coin{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Coin %q not found.", id)
	} else if err != nil {
		return Coin{}, wrap("find coin", err)
	}
	c, err := cs.coin()
	return c, wrap("find coin", err)
}

// ListCoins returns the coins matching f, ordered by ID.
func (s *Store) ListCoins(ctx context.Context, f CoinFilter) ([]Coin, error) {
	if f.IDs != nil && len(f.IDs) == 0 {
		return []Coin{}, nil
	}
	where, args := []string{"1 = 1"}, []any{}
	if f.IDs != nil {
		where, args = append(where, "c.id IN (?)"), append(args, f.IDs)
	}
	if f.Category != "" {
		where, args = append(where, s.categoryFilter()), append(args, f.Category)
	}
	q, args, err := sqlx.In(`SELECT `+coinColumns+` FROM coins c WHERE `+strings.Join(where, " AND ")+` ORDER BY c.id`, args...)
	if err != nil {
		return nil, wrap("list coins", err)
	}
	return queryRows(ctx, s, "list coins", q, args, func(row scanner) (Coin, error) {
		var cs coinScan
		if err := row.Scan(cs.dest()...); err != nil {
			return Coin{}, err
		}
		return cs.coin()
	})
}

// missingCoin returns the first of ids that is not a coin, or "" when
// every one is.
func (s *Store) missingCoin(ctx context.Context, tx sqlx.QueryerContext, ids []string) (string, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	uniq := make([]string, 0, len(want))
	for id := range want {
		uniq = append(uniq, id)
	}
	slices.Sort(uniq)
	for batch := range slices.Chunk(uniq, maxParams) {
		q, args, err := sqlx.In(`SELECT id FROM coins WHERE id IN (?)`, batch)
		if err != nil {
			return "", err
		}
		var found []string
		if err := sqlx.SelectContext(ctx, tx, &found, s.rebind(q), args...); err != nil {
			return "", err
		}
		for _, id := range found {
			delete(want, id)
		}
	}
	for _, id := range uniq {
		if want[id] {
			return id, nil
		}
	}
	return "", nil
}

func coinNotFound(id string) error {
	return tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Coin %q not found.", id)
}

// Snapshot is the latest market state of a coin. Unknown values are NaN
// (Rank: 0).
type Snapshot struct {
	CoinID    string
	Price     float64
	MarketCap float64
	Volume24h float64
	// Rank is the market-cap rank, 1 for the largest; 0 when unknown.
	Rank int
	// Change24h is the price change over 24 hours, in percent.
	Change24h float64
	// AsOf is when the values were observed.
	AsOf   time.Time
	Source string
}

// Market is a coin with its latest snapshot.
type Market struct {
	Coin     Coin
	Snapshot Snapshot
}

func validateSnapshot(m Snapshot) error {
	if m.CoinID == "" {
		return tokenlysis.FieldErrorf("coin_id", "A snapshot needs a coin ID.")
	}
	if !validSource(m.Source) {
		return sourceError(m.Source)
	}
	if m.AsOf.IsZero() {
		return tokenlysis.FieldErrorf("as_of", "Snapshot of %s: as_of is required.", m.CoinID)
	}
	return nil
}

// UpsertSnapshots replaces the latest snapshot of each given coin, in one
// transaction.
// Errors: ENOTFOUND for a coin that does not exist (nothing is written);
// EINVALID for a snapshot without coin, time or a known source.
func (s *Store) UpsertSnapshots(ctx context.Context, snaps []Snapshot) error {
	for _, m := range snaps {
		if err := validateSnapshot(m); err != nil {
			return err
		}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return wrap("upsert snapshots", err)
	}
	defer tx.Rollback()
	if err := s.upsertSnapshots(ctx, tx, snaps); err != nil {
		return wrap("upsert snapshots", err)
	}
	return wrap("upsert snapshots", tx.Commit())
}

func (s *Store) upsertSnapshots(ctx context.Context, tx *sqlx.Tx, snaps []Snapshot) error {
	ids := make([]string, len(snaps))
	for i, m := range snaps {
		ids[i] = m.CoinID
	}
	if id, err := s.missingCoin(ctx, tx, ids); err != nil {
		return err
	} else if id != "" {
		return coinNotFound(id)
	}
	const width = 8
	const q = `INSERT INTO market_snapshots (coin_id, price, market_cap, volume_24h, rank, change_24h, as_of, source) VALUES %s
		ON CONFLICT (coin_id) DO UPDATE SET price = excluded.price, market_cap = excluded.market_cap,
			volume_24h = excluded.volume_24h, rank = excluded.rank, change_24h = excluded.change_24h,
			as_of = excluded.as_of, source = excluded.source`
	for batch := range slices.Chunk(snaps, maxParams/width) {
		args := make([]any, 0, len(batch)*width)
		for _, m := range batch {
			var rank any
			if m.Rank > 0 {
				rank = int64(m.Rank)
			}
			args = append(args, m.CoinID, nullable(m.Price), nullable(m.MarketCap), nullable(m.Volume24h), rank,
				nullable(m.Change24h), m.AsOf.UTC(), m.Source)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(fmt.Sprintf(q, placeholders(len(batch), width))), args...); err != nil {
			return err
		}
	}
	return nil
}

// TopMarkets returns the coins that have a snapshot, by descending market
// cap (unknown last, then by ID), at most limit (default 100).
func (s *Store) TopMarkets(ctx context.Context, limit int) ([]Market, error) {
	if limit <= 0 {
		limit = 100
	}
	const q = `SELECT ` + coinColumns + `, m.price, m.market_cap, m.volume_24h, m.rank, m.change_24h, m.as_of, m.source
		FROM market_snapshots m JOIN coins c ON c.id = m.coin_id
		ORDER BY m.market_cap DESC NULLS LAST, m.coin_id LIMIT ?`
	return queryRows(ctx, s, "top markets", q, []any{limit}, func(row scanner) (Market, error) {
		var cs coinScan
		var price, mcap, vol, change sql.NullFloat64
		var rank sql.NullInt64
		var m Snapshot
		if err := row.Scan(append(cs.dest(), &price, &mcap, &vol, &rank, &change, &m.AsOf, &m.Source)...); err != nil {
			return Market{}, err
		}
		c, err := cs.coin()
		if err != nil {
			return Market{}, err
		}
		m.CoinID, m.Price, m.MarketCap, m.Volume24h, m.Change24h = c.ID, nanOf(price), nanOf(mcap), nanOf(vol), nanOf(change)
		m.Rank, m.AsOf = int(rank.Int64), m.AsOf.UTC()
		return Market{Coin: c, Snapshot: m}, nil
	})
}

// HistoryRow is one day of a coin's market history. Price is required
// (> 0); MarketCap and Volume are NaN when unknown, and a reported 0 stays
// 0.
type HistoryRow struct {
	// Day is the UTC calendar day of the row (the time of day is ignored).
	Day       time.Time
	Price     float64
	MarketCap float64
	Volume    float64
}

// CoinHistory is rows of one coin's history, from one source, in
// ascending day order without duplicates.
type CoinHistory struct {
	CoinID string
	Source string
	Rows   []HistoryRow
}

// PricePoint is a stored day of history with where it came from.
type PricePoint struct {
	Day       time.Time
	Price     float64
	MarketCap float64 // NaN when unknown
	Volume    float64 // NaN when unknown
	Source    string
}

// HistoryFilter selects history for LoadHistory.
type HistoryFilter struct {
	// CoinIDs, when not nil, restricts the result to these coins.
	CoinIDs []string
	// Since, when not zero, keeps the days on or after its UTC day.
	Since time.Time
}

// HistoryColumns is one coin's history as columns, in ascending day order
// (a missing day is simply absent). Element i of every column is day
// Days[i]; MarketCap and Volume hold NaN where unknown. Sources lists the
// distinct sources of the rows and SourceIndex[i] indexes it for day i.
type HistoryColumns struct {
	CoinID      string
	Days        []Day
	Price       []float64
	MarketCap   []float64
	Volume      []float64
	Sources     []string
	SourceIndex []uint8
}

// MarketData is what SaveMarket writes in one transaction.
type MarketData struct {
	Coins     []Coin
	Snapshots []Snapshot
	History   []CoinHistory
}

// historyRowsPerStatement is the rows of one multi-row history upsert.
const historyRowsPerStatement = 500

func validateHistory(h CoinHistory) error {
	if h.CoinID == "" {
		return tokenlysis.FieldErrorf("coin_id", "History needs a coin ID.")
	}
	if !validSource(h.Source) {
		return sourceError(h.Source)
	}
	last := Day(math.MinInt32)
	for _, r := range h.Rows {
		d := DayOf(r.Day)
		if d <= last {
			return tokenlysis.FieldErrorf("day", "History of %s: day %s is duplicated or out of order.", h.CoinID, d)
		}
		last = d
		if !(r.Price > 0 && r.Price <= math.MaxFloat64) {
			return tokenlysis.FieldErrorf("price", "History of %s on %s: the price must be a positive number, got %v.", h.CoinID, d, r.Price)
		}
		for _, v := range []struct {
			field string
			x     float64
		}{{"market_cap", r.MarketCap}, {"volume", r.Volume}} {
			if v.x == v.x && (v.x < 0 || math.IsInf(v.x, 0)) {
				return tokenlysis.FieldErrorf(v.field, "History of %s on %s: %s must be a non-negative number or unknown, got %v.", h.CoinID, d, v.field, v.x)
			}
		}
	}
	return nil
}

// UpsertHistory writes rows of one coin's history in one transaction: a
// day already stored is replaced, other days are kept. It returns the rows
// written.
// Errors: ENOTFOUND for an unknown coin; EINVALID for an unknown source,
// duplicate or unordered days, a price that is not positive or a negative
// market cap or volume (nothing is written).
func (s *Store) UpsertHistory(ctx context.Context, coinID, source string, rows []HistoryRow) (int, error) {
	h := CoinHistory{CoinID: coinID, Source: source, Rows: rows}
	if err := validateHistory(h); err != nil {
		return 0, err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, wrap("upsert history", err)
	}
	defer tx.Rollback()
	if id, err := s.missingCoin(ctx, tx, []string{coinID}); err != nil {
		return 0, wrap("upsert history", err)
	} else if id != "" {
		return 0, coinNotFound(id)
	}
	n, err := s.upsertHistories(ctx, tx, []CoinHistory{h})
	if err != nil {
		return 0, wrap("upsert history", err)
	}
	return n, wrap("upsert history", tx.Commit())
}

// ImportHistory writes one coin's history in one transaction, creating the
// coin from c (Source included, which is also the rows' source) when it
// does not exist yet, so that an import lands whole or not at all. An
// existing coin's record is left as it is. It reports whether the coin was
// created.
// Errors: EINVALID as UpsertHistory and for an invalid c.
func (s *Store) ImportHistory(ctx context.Context, c Coin, rows []HistoryRow) (created bool, err error) {
	if err := validateCoin(c); err != nil {
		return false, err
	}
	h := CoinHistory{CoinID: c.ID, Source: c.Source, Rows: rows}
	if err := validateHistory(h); err != nil {
		return false, err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return false, wrap("import history", err)
	}
	defer tx.Rollback()
	if created, err = s.ensureCoin(ctx, tx, c); err != nil {
		return false, wrap("import history", err)
	}
	if _, err := s.upsertHistories(ctx, tx, []CoinHistory{h}); err != nil {
		return false, wrap("import history", err)
	}
	return created, wrap("import history", tx.Commit())
}

// SaveMarket writes coins (as UpsertCoins), snapshots (as UpsertSnapshots)
// and history (as UpsertHistory) in one transaction: all of it or nothing.
// Errors: those of the three methods.
func (s *Store) SaveMarket(ctx context.Context, m MarketData) error {
	for _, c := range m.Coins {
		if err := validateCoin(c); err != nil {
			return err
		}
	}
	for _, sn := range m.Snapshots {
		if err := validateSnapshot(sn); err != nil {
			return err
		}
	}
	ids := make([]string, len(m.History))
	for i, h := range m.History {
		if err := validateHistory(h); err != nil {
			return err
		}
		ids[i] = h.CoinID
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return wrap("save market", err)
	}
	defer tx.Rollback()
	if err := s.upsertCoins(ctx, tx, m.Coins); err != nil {
		return wrap("save market", err)
	}
	if err := s.upsertSnapshots(ctx, tx, m.Snapshots); err != nil {
		return wrap("save market", err)
	}
	if id, err := s.missingCoin(ctx, tx, ids); err != nil {
		return wrap("save market", err)
	} else if id != "" {
		return coinNotFound(id)
	}
	if _, err := s.upsertHistories(ctx, tx, m.History); err != nil {
		return wrap("save market", err)
	}
	return wrap("save market", tx.Commit())
}

// upsertHistories writes validated histories of existing coins with
// multi-row upserts of historyRowsPerStatement rows, the full-size
// statement prepared once.
func (s *Store) upsertHistories(ctx context.Context, tx *sqlx.Tx, hs []CoinHistory) (int, error) {
	const width = 6
	const q = `INSERT INTO price_history (coin_id, day, price, market_cap, volume, source) VALUES %s
		ON CONFLICT (coin_id, day) DO UPDATE SET price = excluded.price, market_cap = excluded.market_cap,
			volume = excluded.volume, source = excluded.source`
	per := min(historyRowsPerStatement, maxParams/width)
	var full *sqlx.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	days := dayStrings{}
	args := make([]any, 0, per*width)
	n, total := 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var err error
		if n == per {
			if full == nil {
				if full, err = tx.PreparexContext(ctx, s.rebind(fmt.Sprintf(q, placeholders(per, width)))); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, s.rebind(fmt.Sprintf(q, placeholders(n, width))), args...)
		}
		total += n
		args, n = args[:0], 0
		return err
	}
	for _, h := range hs {
		for _, r := range h.Rows {
			args = append(args, h.CoinID, days.get(DayOf(r.Day)), r.Price, nullable(r.MarketCap), nullable(r.Volume), h.Source)
			if n++; n == per {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
	return total, flush()
}

// LoadHistory returns the history matching f as columns, one
// HistoryColumns per coin that has rows, ordered by coin ID. It is the
// recalculation's bulk read: ordered scans straight from the driver (pgx's
// binary rows on PostgreSQL, the SQLite driver's rows), without
// database/sql's per-value conversions. On SQLite, where reading the rows
// is the driver's CPU, the coins are split into historyParts ranges read
// at once on as many connections, all in one snapshot (see
// loadHistorySQLiteParts); the result is the same as one scan's.
func (s *Store) LoadHistory(ctx context.Context, f HistoryFilter) ([]HistoryColumns, error) {
	if f.CoinIDs != nil && len(f.CoinIDs) == 0 {
		return []HistoryColumns{}, nil
	}
	var out []HistoryColumns
	var err error
	if s.db.Dialect == database.Postgres {
		hb := historyBuilder{out: []HistoryColumns{}}
		err = s.withConn(ctx, func(conn *sql.Conn) error { return s.loadHistoryPostgres(ctx, conn, f, &hb) })
		out = hb.out
	} else {
		out, err = s.loadHistorySQLiteParts(ctx, f)
	}
	if err != nil {
		return nil, wrap("load history", err)
	}
	return out, nil
}

// withConn calls fn with a connection of the pool.
func (s *Store) withConn(ctx context.Context, fn func(conn *sql.Conn) error) error {
	conn, err := s.db.DB.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// historyParts is the number of connections LoadHistory reads SQLite's
// history on at once: the machine this is tuned on has two cores.
const historyParts = 2

// coinRange is a range of coin IDs: from lo (inclusive) to hi (exclusive);
// an empty bound is open.
type coinRange struct{ lo, hi string }

// where appends the range's conditions on coin_id.
func (r coinRange) where(where []string, args []any) ([]string, []any) {
	if r.lo != "" {
		where, args = append(where, "coin_id >= ?"), append(args, r.lo)
	}
	if r.hi != "" {
		where, args = append(where, "coin_id < ?"), append(args, r.hi)
	}
	return where, args
}

// loadHistorySQLiteParts loads the history matching f on SQLite, split
// into historyParts ranges of coins (cut at the coins table's IDs, or f's)
// read at once, each on its own connection. The readers open their read
// transactions while a third connection holds the write lock, so that no
// commit can come between them: they all see the same snapshot, as one
// scan would. When the pool is too small for that, or the write lock is
// busy, it reads in one scan.
func (s *Store) loadHistorySQLiteParts(ctx context.Context, f HistoryFilter) ([]HistoryColumns, error) {
	single := func() ([]HistoryColumns, error) {
		hb := historyBuilder{out: []HistoryColumns{}}
		err := s.withConn(ctx, func(conn *sql.Conn) error { return s.loadHistorySQLite(ctx, conn, f, coinRange{}, &hb) })
		return hb.out, err
	}
	if n := s.db.Stats().MaxOpenConnections; n != 0 && n < historyParts+1 {
		return single()
	}
	ids := slices.Clone(f.CoinIDs)
	if ids == nil {
		if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM coins ORDER BY id`); err != nil {
			return nil, err
		}
	} else {
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	if len(ids) < historyParts {
		return single()
	}
	ranges := make([]coinRange, historyParts)
	for p := 1; p < historyParts; p++ {
		ranges[p-1].hi = ids[p*len(ids)/historyParts]
		ranges[p].lo = ranges[p-1].hi
	}

	conns := make([]*sql.Conn, historyParts+1)
	release := func() {
		for i, c := range conns {
			if c != nil {
				c.Close()
				conns[i] = nil
			}
		}
	}
	defer release()
	// Every connection is taken before the write lock is, so that the
	// lock is never held while waiting for the pool.
	for i := range conns {
		c, err := s.db.DB.DB.Conn(ctx)
		if err != nil {
			return nil, err
		}
		conns[i] = c
	}
	lock, err := conns[historyParts].BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		// Busy past the busy timeout: a long write holds the lock. (Any
		// other error comes back from the single scan.)
		release()
		return single()
	}
	txs := make([]*sql.Tx, historyParts)
	defer func() {
		for _, tx := range txs {
			if tx != nil {
				tx.Rollback()
			}
		}
	}()
	for p := range txs {
		tx, err := conns[p].BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred BEGIN
		if err != nil {
			lock.Rollback()
			return nil, err
		}
		txs[p] = tx
		// The read transaction, and its snapshot, starts with its first read.
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM price_history LIMIT 1`).Scan(&one); err != nil && !errors.Is(err, sql.ErrNoRows) {
			lock.Rollback()
			return nil, err
		}
	}
	if err := lock.Rollback(); err != nil {
		return nil, err
	}

	hbs := make([]historyBuilder, historyParts)
	errs := make([]error, historyParts)
	var wg sync.WaitGroup
	for p := range historyParts {
		hbs[p].out = []HistoryColumns{}
		wg.Go(func() { errs[p] = s.loadHistorySQLite(ctx, conns[p], f, ranges[p], &hbs[p]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := hbs[0].out
	for _, hb := range hbs[1:] {
		out = append(out, hb.out...)
	}
	return out, nil
}

const loadHistoryQuery = `SELECT coin_id, day, price, market_cap, volume, source FROM price_history WHERE `

// loadHistorySQLite appends the history matching f of the coins of r to hb.
func (s *Store) loadHistorySQLite(ctx context.Context, conn *sql.Conn, f HistoryFilter, r coinRange, hb *historyBuilder) error {
	where, args := []string{"1 = 1"}, []any{}
	if f.CoinIDs != nil {
		where, args = append(where, "coin_id IN (?)"), append(args, f.CoinIDs)
	}
	where, args = r.where(where, args)
	if !f.Since.IsZero() {
		where, args = append(where, "day >= ?"), append(args, timeDayArg(f.Since))
	}
	q, args, err := sqlx.In(loadHistoryQuery+strings.Join(where, " AND ")+` ORDER BY coin_id, day`, args...)
	if err != nil {
		return err
	}
	return driverRows(ctx, conn, q, args, 6, func(dest []driver.Value) error {
		id, ok1 := dest[0].(string)
		dayText, ok2 := dest[1].(string)
		src, ok3 := dest[5].(string)
		day, ok4 := parseDay(dayText)
		price, ok5 := floatValue(dest[2])
		mcap, ok6 := floatValue(dest[3])
		vol, ok7 := floatValue(dest[4])
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
			return fmt.Errorf("sqlstore: unexpected price_history row %v", dest)
		}
		return addRow(hb, id, day, price, mcap, vol, src)
	})
}

// driverRows runs q on the SQLite driver connection under conn and calls
// each with every row's values, straight from the driver: reading a
// million rows, database/sql's conversions were most of the time.
func driverRows(ctx context.Context, conn *sql.Conn, q string, args []any, columns int, each func(dest []driver.Value) error) error {
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("sqlstore: the SQLite driver connection %T cannot query", dc)
		}
		named := make([]driver.NamedValue, len(args))
		for i, a := range args {
			named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		}
		rows, err := qc.QueryContext(ctx, q, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		dest := make([]driver.Value, columns)
		for {
			if err := rows.Next(dest); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := each(dest); err != nil {
				return err
			}
		}
	})
}

// floatValue reads a nullable REAL from the SQLite driver (NaN for NULL).
func floatValue(v driver.Value) (float64, bool) {
	switch x := v.(type) {
	case nil:
		return math.NaN(), true
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func (s *Store) loadHistoryPostgres(ctx context.Context, conn *sql.Conn, f HistoryFilter, hb *historyBuilder) error {
	where, args := []string{"1 = 1"}, []any{}
	if f.CoinIDs != nil {
		where, args = append(where, "coin_id = ANY(?)"), append(args, f.CoinIDs)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "day >= ?"), append(args, DayOf(f.Since).Time())
	}
	q := s.rebind(loadHistoryQuery + strings.Join(where, " AND ") + ` ORDER BY coin_id, day`)
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: PostgreSQL connection is a %T, not a pgx connection", dc)
		}
		rows, err := sc.Conn().Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		fds := rows.FieldDescriptions()
		binaryDay, binaryFloat := fds[1].Format == pgBinary, fds[2].Format == pgBinary
		for rows.Next() {
			raw := rows.RawValues()
			day, ok1 := pgDay(raw[1], binaryDay)
			price, ok2 := pgFloat(raw[2], binaryFloat)
			mcap, ok3 := pgFloat(raw[3], binaryFloat)
			vol, ok4 := pgFloat(raw[4], binaryFloat)
			if !(ok1 && ok2 && ok3 && ok4) {
				return fmt.Errorf("sqlstore: unexpected price_history row %q", raw)
			}
			if err := addRow(hb, raw[0], day, price, mcap, vol, raw[5]); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// pgBinary is the binary format code of the PostgreSQL wire protocol.
const pgBinary = 1

// pgDay decodes a DATE column value.
func pgDay(b []byte, binaryFormat bool) (Day, bool) {
	if !binaryFormat {
		return parseDay(b)
	}
	if len(b) != 4 {
		return 0, false
	}
	return Day(int32(binary.BigEndian.Uint32(b)) + pgEpochDay), true
}

// pgFloat decodes a nullable DOUBLE PRECISION column value (NaN for NULL).
func pgFloat(b []byte, binaryFormat bool) (float64, bool) {
	if b == nil {
		return math.NaN(), true
	}
	if !binaryFormat {
		x, err := strconv.ParseFloat(string(b), 64)
		return x, err == nil
	}
	if len(b) != 8 {
		return 0, false
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), true
}

// historyBuilder appends rows ordered by coin and day to per-coin columns.
type historyBuilder struct {
	out     []HistoryColumns
	cur     *HistoryColumns
	lastSrc int
}

// addRow appends a row to hb (id and src are the driver's bytes or
// strings; they are copied only when a new coin or source starts).
func addRow[T string | []byte](hb *historyBuilder, id T, day Day, price, mcap, vol float64, src T) error {
	cur := hb.cur
	if cur == nil || cur.CoinID != string(id) {
		hb.out = append(hb.out, HistoryColumns{CoinID: string(id)})
		cur = &hb.out[len(hb.out)-1]
		hb.cur, hb.lastSrc = cur, -1
	}
	if hb.lastSrc < 0 || cur.Sources[hb.lastSrc] != string(src) {
		hb.lastSrc = -1
		for i, s := range cur.Sources {
			if s == string(src) {
				hb.lastSrc = i
			}
		}
		if hb.lastSrc < 0 {
			if len(cur.Sources) == math.MaxUint8+1 {
				return fmt.Errorf("coin %s has more than 256 sources", cur.CoinID)
			}
			cur.Sources = append(cur.Sources, string(src))
			hb.lastSrc = len(cur.Sources) - 1
		}
	}
	cur.Days = append(cur.Days, day)
	cur.Price = append(cur.Price, price)
	cur.MarketCap = append(cur.MarketCap, mcap)
	cur.Volume = append(cur.Volume, vol)
	cur.SourceIndex = append(cur.SourceIndex, uint8(hb.lastSrc))
	return nil
}

// PriceHistory returns a coin's stored history between from and to
// (inclusive UTC days; a zero bound is open), oldest first.
// Errors: ENOTFOUND for an unknown coin.
func (s *Store) PriceHistory(ctx context.Context, coinID string, from, to time.Time) ([]PricePoint, error) {
	where, args := dayBounds(from, to)
	where, args = append([]string{"coin_id = ?"}, where...), append([]any{coinID}, args...)
	q := `SELECT day, price, market_cap, volume, source FROM price_history WHERE ` + strings.Join(where, " AND ") + ` ORDER BY day`
	out, err := queryRows(ctx, s, "price history", q, args, func(row scanner) (PricePoint, error) {
		var p PricePoint
		var day Day
		var mcap, vol sql.NullFloat64
		err := row.Scan(dayScanner{&day}, &p.Price, &mcap, &vol, &p.Source)
		p.Day, p.MarketCap, p.Volume = day.Time(), nanOf(mcap), nanOf(vol)
		return p, err
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if _, err := s.FindCoin(ctx, coinID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FNG is the Fear & Greed index of one day.
type FNG struct {
	Day time.Time
	// Value is 0 (extreme fear) to 100 (extreme greed).
	Value          int
	Classification string
	// Source names the provider, e.g. "alternative.me".
	Source string
}

// UpsertFNG writes index values in one transaction, replacing stored days,
// and returns how many it wrote.
// Errors: EINVALID for a value outside 0–100, a missing source or a
// duplicate day (nothing is written).
func (s *Store) UpsertFNG(ctx context.Context, points []FNG) (int, error) {
	seen := map[Day]bool{}
	for _, p := range points {
		if p.Value < 0 || p.Value > 100 {
			return 0, tokenlysis.FieldErrorf("value", "Fear & Greed value %d on %s is outside 0–100.", p.Value, DayOf(p.Day))
		}
		if p.Source == "" {
			return 0, tokenlysis.FieldErrorf("source", "Fear & Greed value on %s has no source.", DayOf(p.Day))
		}
		if seen[DayOf(p.Day)] {
			return 0, tokenlysis.FieldErrorf("day", "Fear & Greed day %s is duplicated.", DayOf(p.Day))
		}
		seen[DayOf(p.Day)] = true
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, wrap("upsert fng", err)
	}
	defer tx.Rollback()
	const width = 4
	const q = `INSERT INTO fng (day, value, classification, source) VALUES %s
		ON CONFLICT (day) DO UPDATE SET value = excluded.value, classification = excluded.classification, source = excluded.source`
	for batch := range slices.Chunk(points, maxParams/width) {
		args := make([]any, 0, len(batch)*width)
		for _, p := range batch {
			args = append(args, timeDayArg(p.Day), int64(p.Value), p.Classification, p.Source)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(fmt.Sprintf(q, placeholders(len(batch), width))), args...); err != nil {
			return 0, wrap("upsert fng", err)
		}
	}
	return len(points), wrap("upsert fng", tx.Commit())
}

func scanFNG(row scanner) (FNG, error) {
	var p FNG
	var day Day
	err := row.Scan(dayScanner{&day}, &p.Value, &p.Classification, &p.Source)
	p.Day = day.Time()
	return p, err
}

// LatestFNG returns the index of the most recent day.
// Errors: ENOTFOUND when none is stored.
func (s *Store) LatestFNG(ctx context.Context) (FNG, error) {
	ps, err := s.FNGHistory(ctx, time.Time{}, time.Time{}, 1)
	if err != nil {
		return FNG{}, err
	}
	if len(ps) == 0 {
		return FNG{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "No Fear & Greed index has been fetched yet.")
	}
	return ps[0], nil
}

// FNGHistory returns the index between from and to (inclusive UTC days; a
// zero bound is open), oldest first; with limit > 0, only the latest limit
// days of that range.
func (s *Store) FNGHistory(ctx context.Context, from, to time.Time, limit int) ([]FNG, error) {
	where, args := dayBounds(from, to)
	where = append(where, "1 = 1")
	q := `SELECT day, value, classification, source FROM fng WHERE ` + strings.Join(where, " AND ") + ` ORDER BY day DESC`
	if limit > 0 {
		q, args = q+` LIMIT ?`, append(args, limit)
	}
	out, err := queryRows(ctx, s, "fng history", q, args, scanFNG)
	slices.Reverse(out)
	return out, err
}
