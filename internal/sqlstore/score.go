package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Score is one coin's indicators and scores on one day, as stored in the
// scores table. A value that cannot be computed (not enough history, no
// input that day) is NaN, stored as NULL; never 0.
//
// Definitions (the recalculation, internal/recalc, computes them over the
// coin's observed days in date order; a day without a price is a gap and
// has no row):
//
//   - RSI: RSI(14), Wilder's smoothing seeded with the simple mean of the
//     first 14 gains and losses, 0–100; NULL for the first 14 observations.
//   - VolumeChange: (v_t − v_{t−1}) / v_{t−1} from the previous calendar
//     day, a fraction; NULL when either volume is unknown, the previous day
//     is a gap, or the previous volume is 0.
//   - Volatility30d: population standard deviation of the last 30 simple
//     daily returns × √365 (annualised), a fraction; NULL for the first 30
//     observations.
//   - Drawdown: maximum drawdown from the running peak up to that day, a
//     positive fraction (0.25 = the price fell 25% from a previous peak).
//   - Momentum7d, Momentum30d: close_t / close_{t−n} − 1 over 7 and 30
//     observations; NULL for the first n observations.
//   - EMA20: 20-period exponential moving average of the close (α = 2/21),
//     seeded with the simple mean of the first 20 closes; in quote currency;
//     NULL for the first 19 observations.
//   - Liquidity (0–100): 0.45·volume + 0.35·market cap + 0.20·listings,
//     volume and market cap log10-scaled, listings linear, each normalised
//     between the 5th and 95th percentiles of that day's universe; a missing
//     component drops out and the others' weights are renormalised.
//   - Opportunity (0–100): 100·(0.60·clamp((70 − RSI)/40, 0, 1) + 0.40·v),
//     v the volume change normalised like the liquidity components; NULL
//     without RSI.
//   - Global (0–100): the mean of Liquidity and Opportunity where present.
//
// Source is the source of the coin's price on that day; RunID the
// recalculation run that wrote the row.
type Score struct {
	CoinID        string
	Day           time.Time
	RSI           float64
	VolumeChange  float64
	Volatility30d float64
	Drawdown      float64
	Momentum7d    float64
	Momentum30d   float64
	EMA20         float64
	Liquidity     float64
	Opportunity   float64
	Global        float64
	Source        string
	RunID         string
}

// LatestScore is a coin's Score of its latest scored day with the coin's
// details and that day's price, market cap and volume (NaN when unknown).
type LatestScore struct {
	Score
	Symbol     string
	Name       string
	LogoURL    string
	Categories []string
	Price      float64
	MarketCap  float64
	Volume     float64
}

// ScoreColumns is one coin's indicators and scores as columns, for
// WriteScores: element i of every column is day Days[i] (ascending, no
// duplicates). A nil column is NULL on every day. Sources and SourceIndex
// give the source of each day as in HistoryColumns.
type ScoreColumns struct {
	CoinID        string
	Days          []Day
	RSI           []float64
	VolumeChange  []float64
	Volatility30d []float64
	Drawdown      []float64
	Momentum7d    []float64
	Momentum30d   []float64
	EMA20         []float64
	Liquidity     []float64
	Opportunity   []float64
	Global        []float64
	Sources       []string
	SourceIndex   []uint8
}

// values returns the ten value columns in the order of scoreValueColumns.
func (c *ScoreColumns) values() [10][]float64 {
	return [10][]float64{c.RSI, c.VolumeChange, c.Volatility30d, c.Drawdown, c.Momentum7d, c.Momentum30d,
		c.EMA20, c.Liquidity, c.Opportunity, c.Global}
}

const scoreValueColumns = `rsi, volume_change, volatility_30d, drawdown, momentum_7d, momentum_30d, ema_20, liquidity, opportunity, global`

// ScoreBatch is what WriteScores writes in one transaction: for each coin
// of Coins, its rows of the days From to To (inclusive), which replace
// every stored row of that coin in that range.
type ScoreBatch struct {
	From, To Day
	Coins    []ScoreColumns
}

// Rows returns the number of rows in b.
func (b ScoreBatch) Rows() int {
	n := 0
	for i := range b.Coins {
		n += len(b.Coins[i].Days)
	}
	return n
}

func (b ScoreBatch) validate(runID string) error {
	if runID == "" {
		return tokenlysis.FieldErrorf("run_id", "Scores need the ID of the run that computed them.")
	}
	if b.To < b.From {
		return tokenlysis.FieldErrorf("to", "The score range ends (%s) before it starts (%s).", b.To, b.From)
	}
	seen := make(map[string]bool, len(b.Coins))
	for i := range b.Coins {
		c := &b.Coins[i]
		if c.CoinID == "" || seen[c.CoinID] {
			return tokenlysis.FieldErrorf("coin_id", "Coin %q is empty or appears twice in the batch.", c.CoinID)
		}
		seen[c.CoinID] = true
		n := len(c.Days)
		for _, col := range c.values() {
			if col != nil && len(col) != n {
				return tokenlysis.FieldErrorf("columns", "Scores of %s: a column has %d values for %d days.", c.CoinID, len(col), n)
			}
		}
		if len(c.SourceIndex) != n {
			return tokenlysis.FieldErrorf("source", "Scores of %s: %d sources for %d days.", c.CoinID, len(c.SourceIndex), n)
		}
		for _, si := range c.SourceIndex {
			if int(si) >= len(c.Sources) || !validSource(c.Sources[si]) {
				return tokenlysis.FieldErrorf("source", "Scores of %s: invalid source.", c.CoinID)
			}
		}
		last := b.From - 1
		for _, d := range c.Days {
			if d <= last || d > b.To {
				return tokenlysis.FieldErrorf("day", "Scores of %s: day %s is duplicated, out of order or outside %s..%s.", c.CoinID, d, b.From, b.To)
			}
			last = d
		}
	}
	return nil
}

func (b ScoreBatch) coinIDs() []string {
	ids := make([]string, len(b.Coins))
	for i := range b.Coins {
		ids[i] = b.Coins[i].CoinID
	}
	return ids
}

// ScoreWriters is how many WriteScores calls are worth running at once: 1
// on SQLite, which has a single writer; 2 on PostgreSQL, whose COPY is
// bound by the server's CPU, one core per connection.
func (s *Store) ScoreWriters() int {
	if s.db.Dialect == database.Postgres {
		return 2
	}
	return 1
}

// ScoreWrite counts what a WriteScores call did.
type ScoreWrite struct {
	// Rows is the number of rows of the batch: after the call, the stored
	// rows of its coins and range.
	Rows int64
	// Changed counts the rows inserted or updated because a value (or the
	// source) differs from the stored row; identical rows are not
	// rewritten and keep their run_id.
	Changed int64
	// Deleted counts the stored rows of the range the batch did not have.
	Deleted int64
}

// WriteScores writes a batch of indicators and scores in one transaction:
// for each coin of the batch, its stored rows of the days b.From to b.To
// become exactly the batch's rows. The stored rows of the range are read
// and compared with the batch: rows the batch does not have are deleted,
// new rows inserted, and rows whose values or source differ replaced;
// identical rows are not rewritten and keep their run_id, so a rerun on
// unchanged history writes nothing but reads. Then the coins'
// latest_scores rows are refreshed. The result is the same however often
// it runs, and a crash rolls the whole batch back, so a retried run never
// duplicates or half-writes a batch. Rows go in with COPY (binary) on
// PostgreSQL and multi-row INSERTs on SQLite.
//
// Errors: ENOTFOUND for a coin that does not exist; EINVALID for a missing
// run ID, columns of the wrong length, days out of order or outside the
// range, or an unknown source.
func (s *Store) WriteScores(ctx context.Context, runID string, b ScoreBatch) (ScoreWrite, error) {
	if err := b.validate(runID); err != nil {
		return ScoreWrite{}, err
	}
	if len(b.Coins) == 0 {
		return ScoreWrite{}, nil
	}
	var w ScoreWrite
	var err error
	if s.db.Dialect == database.Postgres {
		w, err = s.writeScoresPostgres(ctx, runID, b)
	} else {
		w, err = s.writeScoresSQLite(ctx, runID, b)
	}
	return w, wrap("write scores", err)
}

// storedScores are the stored rows of a batch's coins and range, read to
// compare with the batch, as columns in (coin, day) order.
type storedScores struct {
	coins  []string
	starts []int // coins[i]'s rows are starts[i]:starts[i+1]
	days   []Day
	vals   [10][]float64
	source []string
	// sizeHint is the capacity to give the columns on the first row.
	sizeHint int
}

func (st *storedScores) add(coin string, day Day, vals *[10]float64, source string) {
	if st.days == nil && st.sizeHint > 0 {
		// A batch usually replaces about as many rows as it has: size the
		// columns once, on the first row (a first run reads none).
		st.days, st.source = make([]Day, 0, st.sizeHint), make([]string, 0, st.sizeHint)
		for k := range st.vals {
			st.vals[k] = make([]float64, 0, st.sizeHint)
		}
	}
	if len(st.coins) == 0 || st.coins[len(st.coins)-1] != coin {
		st.coins = append(st.coins, coin)
		st.starts = append(st.starts, len(st.days))
	}
	st.days = append(st.days, day)
	for k := range vals {
		st.vals[k] = append(st.vals[k], vals[k])
	}
	if n := len(st.source); n > 0 && st.source[n-1] == source {
		source = st.source[n-1] // share the string
	}
	st.source = append(st.source, source)
}

// rows returns the index range of coin's stored rows.
func (st *storedScores) rows(coin string) (int, int) {
	i, ok := slices.BinarySearch(st.coins, coin)
	if !ok {
		return 0, 0
	}
	end := len(st.days)
	if i+1 < len(st.starts) {
		end = st.starts[i+1]
	}
	return st.starts[i], end
}

// dayRange is a run of stored rows of one coin to delete: days lo to hi.
type dayRange struct {
	coin   string
	lo, hi Day
}

// scorePlan is what a batch changes: the stored rows to delete (those the
// batch does not have, and those it replaces) as ranges, and the batch
// rows to insert (new and replaced).
type scorePlan struct {
	del     []dayRange
	ins     ScoreBatch
	w       ScoreWrite
	changed bool
}

// sameValue reports whether a batch value and a stored one store the same:
// NaN and ±Inf are NULL.
func sameValue(batch, stored float64) bool {
	if batch-batch != 0 {
		return stored != stored
	}
	return batch == stored
}

// plan compares b with the stored rows of its coins and range.
func (b ScoreBatch) plan(st *storedScores) scorePlan {
	var p scorePlan
	if len(st.days) == 0 { // nothing stored: insert everything as is
		p.ins, p.w.Rows, p.w.Changed = b, int64(b.Rows()), int64(b.Rows())
		p.changed = p.w.Rows > 0
		return p
	}
	p.ins = ScoreBatch{From: b.From, To: b.To}
	for ci := range b.Coins {
		c := &b.Coins[ci]
		vals := c.values()
		s0, s1 := st.rows(c.CoinID)
		var keep []int // batch rows to insert
		var open *dayRange
		closeRange := func() { open = nil }
		deleteStored := func(i int) {
			if open == nil {
				p.del = append(p.del, dayRange{coin: c.CoinID, lo: st.days[i], hi: st.days[i]})
				open = &p.del[len(p.del)-1]
			} else {
				open.hi = st.days[i]
			}
		}
		i, j := s0, 0
		for i < s1 || j < len(c.Days) {
			switch {
			case j == len(c.Days) || i < s1 && st.days[i] < c.Days[j]: // stored only: stale
				deleteStored(i)
				p.w.Deleted++
				i++
			case i == s1 || c.Days[j] < st.days[i]: // batch only: new
				keep = append(keep, j)
				j++
			default: // both: replace when different
				same := st.source[i] == c.Sources[c.SourceIndex[j]]
				for k := 0; same && k < len(vals); k++ {
					v := math.NaN()
					if vals[k] != nil {
						v = vals[k][j]
					}
					same = sameValue(v, st.vals[k][i])
				}
				if same {
					closeRange()
				} else {
					deleteStored(i)
					keep = append(keep, j)
				}
				i, j = i+1, j+1
			}
		}
		p.w.Rows += int64(len(c.Days))
		p.w.Changed += int64(len(keep))
		if len(keep) > 0 {
			p.ins.Coins = append(p.ins.Coins, c.subset(keep))
		}
	}
	p.changed = len(p.del) > 0 || len(p.ins.Coins) > 0
	return p
}

// subset returns the rows idx of c.
func (c *ScoreColumns) subset(idx []int) ScoreColumns {
	out := ScoreColumns{CoinID: c.CoinID, Sources: c.Sources, Days: make([]Day, len(idx)), SourceIndex: make([]uint8, len(idx))}
	for n, j := range idx {
		out.Days[n], out.SourceIndex[n] = c.Days[j], c.SourceIndex[j]
	}
	dst := [10]*[]float64{&out.RSI, &out.VolumeChange, &out.Volatility30d, &out.Drawdown, &out.Momentum7d, &out.Momentum30d,
		&out.EMA20, &out.Liquidity, &out.Opportunity, &out.Global}
	for k, col := range c.values() {
		if col == nil {
			continue
		}
		v := make([]float64, len(idx))
		for n, j := range idx {
			v[n] = col[j]
		}
		*dst[k] = v
	}
	return out
}

// readStoredSQLite appends the rows of query q (readScoresSQL's columns,
// ordered by coin and day) to st, straight from the SQLite driver's rows
// as loadHistorySQLite does: a rerun reads back every row it might
// rewrite, and database/sql's conversions were most of that time.
func readStoredSQLite(ctx context.Context, conn *sql.Conn, st *storedScores, q string, args []any) error {
	var fv [10]float64
	return driverRows(ctx, conn, q, args, 13, func(dest []driver.Value) error {
		coin, ok := dest[0].(string)
		dayText, ok1 := dest[1].(string)
		source, ok2 := dest[12].(string)
		day, ok3 := parseDay(dayText)
		ok = ok && ok1 && ok2 && ok3
		for k := range fv {
			var okf bool
			if fv[k], okf = floatValue(dest[2+k]); !okf {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("sqlstore: unexpected scores row %v", dest)
		}
		if n := len(st.coins); n > 0 && st.coins[n-1] == coin {
			coin = st.coins[n-1] // share the string
		}
		st.add(coin, day, &fv, source)
		return nil
	})
}

const readScoresSQL = `SELECT coin_id, day, ` + scoreValueColumns + `, source FROM scores WHERE `

func (s *Store) writeScoresSQLite(ctx context.Context, runID string, b ScoreBatch) (_ ScoreWrite, err error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return ScoreWrite{}, err
	}
	defer conn.Close()
	// A large batch touches tens of megabytes of pages: with SQLite's
	// default 2 MB cache the transaction spills to the WAL as it goes and
	// rereads its own pages. The setting stays with the pooled connection.
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -65536`); err != nil {
		return ScoreWrite{}, err
	}
	checkpointed, err := s.checkpointAside(ctx)
	if err != nil {
		return ScoreWrite{}, err
	}
	defer checkpointed()
	// This commit leaves its pages in the WAL for the next call's
	// checkpointAside instead of copying them into the database file itself.
	var autoCheckpoint int
	if err := conn.GetContext(ctx, &autoCheckpoint, `PRAGMA wal_autocheckpoint`); err != nil {
		return ScoreWrite{}, err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		return ScoreWrite{}, err
	}
	defer func() {
		// A pragma takes no bind parameter; the value is SQLite's own integer.
		_, rerr := conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d`, autoCheckpoint))
		if err == nil {
			err = rerr
		}
	}()
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return ScoreWrite{}, err
	}
	defer tx.Rollback()
	ids := b.coinIDs()
	if id, err := s.missingCoin(ctx, tx, ids); err != nil {
		return ScoreWrite{}, err
	} else if id != "" {
		return ScoreWrite{}, coinNotFound(id)
	}

	var stored storedScores
	stored.sizeHint = b.Rows()
	for batch := range slices.Chunk(ids, maxParams-2) {
		q, args, err := sqlx.In(readScoresSQL+`coin_id IN (?) AND day >= ? AND day <= ? ORDER BY coin_id, day`, batch, dayArg(b.From), dayArg(b.To))
		if err != nil {
			return ScoreWrite{}, err
		}
		if err := readStoredSQLite(ctx, conn.Conn, &stored, q, args); err != nil {
			return ScoreWrite{}, err
		}
	}
	plan := b.plan(&stored)

	if len(plan.del) > 0 {
		del, err := tx.PreparexContext(ctx, `DELETE FROM scores WHERE coin_id = ? AND day >= ? AND day <= ?`)
		if err != nil {
			return ScoreWrite{}, err
		}
		defer del.Close()
		for _, r := range plan.del {
			if _, err := del.ExecContext(ctx, r.coin, dayArg(r.lo), dayArg(r.hi)); err != nil {
				return ScoreWrite{}, err
			}
		}
	}
	if err := insertScoresSQLite(ctx, conn.Conn, runID, plan.ins); err != nil {
		return ScoreWrite{}, err
	}
	if plan.changed {
		if err := s.refreshLatest(ctx, tx, ids); err != nil {
			return ScoreWrite{}, err
		}
	}
	// Once the checkpoint is over, the commit can start the WAL again from
	// its beginning instead of growing it.
	checkpointed()
	return plan.w, tx.Commit()
}

// checkpointAside starts a checkpoint of SQLite's WAL (PASSIVE: it copies
// what no reader still needs and never waits for a lock) on a connection
// of its own, and returns a function that waits for its end; it may be
// called more than once. writeScoresSQLite runs it alongside its
// transaction so that the pages the previous call committed are copied
// into the database file while this one builds its own, on the other
// core: checkpointing at each commit was a fifth of the write time. The
// price is disk space: a writer can only start the WAL over when its
// transaction began after a complete checkpoint, so during a run of calls
// the WAL grows to the size of all their writes, and it is trimmed
// (journal_size_limit, set by internal/database) when the next writer
// starts it over. A failed checkpoint loses nothing (the pages stay in the
// WAL for the next one), so its error is not the caller's. With a pool of
// one connection (an in-memory database, which has no WAL) there is
// nothing to do.
func (s *Store) checkpointAside(ctx context.Context) (wait func(), err error) {
	if s.db.Stats().MaxOpenConnections == 1 {
		return func() {}, nil
	}
	// The connection is taken now, before the caller holds the write lock,
	// so that the caller never waits for the pool while holding it.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		conn.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}()
	return func() { <-done }, nil
}

// scoreInsertWidth is the bind parameters of one row of scoreInsertSQL:
// the day and the ten values. The run ID, the coin and the source are the
// same in every row of a statement and bound once, as ?1, ?2 and ?3.
const scoreInsertWidth = 11

// scoreInsertSQL returns the INSERT of rows rows.
func scoreInsertSQL(rows int) string {
	// The numbered parameters come first: a ? takes the number after the
	// largest one before it.
	one := "(?1, ?2, ?3, " + strings.Repeat("?, ", scoreInsertWidth-1) + "?)"
	var b strings.Builder
	b.WriteString(`INSERT INTO scores (run_id, coin_id, source, day, ` + scoreValueColumns + `) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// insertScoresSQLite inserts the rows of b, which are not stored, in the
// transaction open on conn. It runs prepared multi-row INSERTs straight on
// the driver's connection: binding the values is most of the cost of the
// write, and database/sql would check and convert each of them once more.
func insertScoresSQLite(ctx context.Context, conn *sql.Conn, runID string, b ScoreBatch) error {
	if b.Rows() == 0 {
		return nil
	}
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("sqlstore: the SQLite driver connection %T cannot prepare", dc)
		}
		// The row counts of the statements, largest first. A run of rows of
		// one coin and source goes in with as many of the largest as fit,
		// then the smaller ones.
		sizes := [...]int{256, 64, 16, 4, 1}
		var stmts [len(sizes)]driver.Stmt
		defer func() {
			for _, st := range stmts {
				if st != nil {
					st.Close()
				}
			}
		}()
		exec := func(k int, args []driver.NamedValue) error {
			if stmts[k] == nil {
				st, err := pc.PrepareContext(ctx, scoreInsertSQL(sizes[k]))
				if err != nil {
					return err
				}
				stmts[k] = st
			}
			ex, ok := stmts[k].(driver.StmtExecContext)
			if !ok {
				return fmt.Errorf("sqlstore: the SQLite driver statement %T cannot execute", stmts[k])
			}
			_, err := ex.ExecContext(ctx, args)
			return err
		}
		args := make([]driver.NamedValue, 3+sizes[0]*scoreInsertWidth)
		for i := range args {
			args[i].Ordinal = i + 1
		}
		args[0].Value = runID
		// Each distinct day is formatted (and boxed) once per batch.
		days := make([]driver.Value, b.To-b.From+1)
		for ci := range b.Coins {
			c := &b.Coins[ci]
			cols := c.values()
			args[1].Value = c.CoinID
			for j := 0; j < len(c.Days); {
				si := c.SourceIndex[j]
				end := j + 1
				for end < len(c.Days) && c.SourceIndex[end] == si {
					end++
				}
				args[2].Value = c.Sources[si]
				for j < end {
					k := 0
					for sizes[k] > end-j {
						k++
					}
					n := sizes[k]
					a := args[3 : 3+n*scoreInsertWidth]
					for r := range n {
						row := a[r*scoreInsertWidth : (r+1)*scoreInsertWidth]
						d := c.Days[j+r] - b.From
						if days[d] == nil {
							days[d] = dayArg(c.Days[j+r])
						}
						row[0].Value = days[d]
						for v, col := range cols {
							if col == nil {
								row[1+v].Value = nil
							} else {
								row[1+v].Value = nullable(col[j+r])
							}
						}
					}
					if err := exec(k, args[:3+n*scoreInsertWidth]); err != nil {
						return err
					}
					j += n
				}
			}
		}
		return nil
	})
}

// refreshLatest rewrites the latest_scores rows of coins ids from their
// scores of their latest day (and removes those of coins without scores).
func (s *Store) refreshLatest(ctx context.Context, tx sqlx.ExtContext, ids []string) error {
	const del = `DELETE FROM latest_scores WHERE coin_id IN (?)`
	for batch := range slices.Chunk(ids, maxParams) {
		for _, q := range []string{del, refreshLatestSQL + `c.id IN (?)`} {
			q, args, err := sqlx.In(q, batch)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.rebind(q), args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshLatestSQL inserts the latest scores row of the coins selected by
// the condition on c.id that follows it.
const refreshLatestSQL = `INSERT INTO latest_scores (coin_id, day, ` + scoreValueColumns + `, price, market_cap, volume, source, run_id)
	SELECT s.coin_id, s.day, s.rsi, s.volume_change, s.volatility_30d, s.drawdown, s.momentum_7d, s.momentum_30d,
		s.ema_20, s.liquidity, s.opportunity, s.global, h.price, h.market_cap, h.volume, s.source, s.run_id
	FROM coins c
	JOIN scores s ON s.coin_id = c.id AND s.day = (SELECT MAX(m.day) FROM scores m WHERE m.coin_id = c.id)
	LEFT JOIN price_history h ON h.coin_id = s.coin_id AND h.day = s.day
	WHERE `

// writeScoresPostgres runs the batch's transaction on a pgx connection of
// the pool: the stored rows are read in binary, and the rows to insert go
// in with COPY FROM STDIN (FORMAT binary), streamed from the columns.
func (s *Store) writeScoresPostgres(ctx context.Context, runID string, b ScoreBatch) (ScoreWrite, error) {
	var w ScoreWrite
	conn, err := s.db.DB.DB.Conn(ctx)
	if err != nil {
		return w, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: PostgreSQL connection is a %T, not a pgx connection", dc)
		}
		tx, err := sc.Conn().Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		ids, from, to := b.coinIDs(), b.From.Time(), b.To.Time()
		var found []string
		if err := pgxSelect(ctx, tx, &found, `SELECT id FROM coins WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		if len(found) != len(ids) {
			for _, id := range ids {
				if !slices.Contains(found, id) {
					return coinNotFound(id)
				}
			}
		}

		var stored storedScores
		stored.sizeHint = b.Rows()
		rows, err := tx.Query(ctx, readScoresSQL+`coin_id = ANY($1) AND day >= $2 AND day <= $3 ORDER BY coin_id, day`, ids, from, to)
		if err != nil {
			return err
		}
		err = readStoredPostgres(&stored, rows)
		rows.Close()
		if err != nil {
			return err
		}
		plan := b.plan(&stored)
		w = plan.w

		if len(plan.del) > 0 {
			coins, los, his := make([]string, len(plan.del)), make([]time.Time, len(plan.del)), make([]time.Time, len(plan.del))
			for i, r := range plan.del {
				coins[i], los[i], his[i] = r.coin, r.lo.Time(), r.hi.Time()
			}
			if _, err := tx.Exec(ctx, `DELETE FROM scores s USING unnest($1::text[], $2::date[], $3::date[]) AS r(coin_id, lo, hi)
				WHERE s.coin_id = r.coin_id AND s.day >= r.lo AND s.day <= r.hi`, coins, los, his); err != nil {
				return err
			}
		}
		if plan.ins.Rows() > 0 {
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, newScoreCopyReader(runID, plan.ins),
				`COPY scores (coin_id, day, `+scoreValueColumns+`, source, run_id) FROM STDIN (FORMAT binary)`); err != nil {
				return err
			}
		}
		if plan.changed {
			if _, err := tx.Exec(ctx, `DELETE FROM latest_scores WHERE coin_id = ANY($1)`, ids); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, refreshLatestSQL+`c.id = ANY($1)`, ids); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	return w, err
}

// readStoredPostgres reads scores rows (readScoresSQL's columns) from
// pgx's raw values.
func readStoredPostgres(st *storedScores, rows pgx.Rows) error {
	fds := rows.FieldDescriptions()
	binDay, binFloat := fds[1].Format == pgBinary, fds[2].Format == pgBinary
	var fv [10]float64
	var cur, src string
	for rows.Next() {
		raw := rows.RawValues()
		day, ok := pgDay(raw[1], binDay)
		for k := range fv {
			var okf bool
			if fv[k], okf = pgFloat(raw[2+k], binFloat); !okf {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("sqlstore: unexpected scores row %q", raw)
		}
		if cur != string(raw[0]) {
			cur = string(raw[0])
		}
		if src != string(raw[12]) {
			src = string(raw[12])
		}
		st.add(cur, day, &fv, src)
	}
	return rows.Err()
}

// pgxSelect reads one text column of every row into dst.
func pgxSelect(ctx context.Context, tx pgx.Tx, dst *[]string, q string, args ...any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		*dst = append(*dst, v)
	}
	return rows.Err()
}

// scoreCopyReader encodes a batch in PostgreSQL's binary COPY format as it
// is read: a header, one tuple per row, a trailer.
type scoreCopyReader struct {
	runID  string
	b      ScoreBatch
	coin   int // current coin of b.Coins
	row    int // next row of that coin
	buf    []byte
	off    int
	header bool
	done   bool
}

func newScoreCopyReader(runID string, b ScoreBatch) *scoreCopyReader {
	return &scoreCopyReader{runID: runID, b: b, buf: make([]byte, 0, 64<<10)}
}

// pgEpochDay is 2000-01-01, day 0 of PostgreSQL's binary DATE.
const pgEpochDay = 10957

func (r *scoreCopyReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.done {
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill encodes the next rows into the buffer.
func (r *scoreCopyReader) fill() {
	b := r.buf[:0]
	r.off = 0
	if !r.header {
		b = append(b, "PGCOPY\n\xff\r\n\x00"...)
		b = binary.BigEndian.AppendUint32(b, 0) // flags
		b = binary.BigEndian.AppendUint32(b, 0) // header extension length
		r.header = true
	}
	for len(b) < cap(b)-512 && r.coin < len(r.b.Coins) {
		c := &r.b.Coins[r.coin]
		if r.row == len(c.Days) {
			r.coin, r.row = r.coin+1, 0
			continue
		}
		j := r.row
		r.row++
		b = binary.BigEndian.AppendUint16(b, 14)
		b = appendText(b, c.CoinID)
		b = binary.BigEndian.AppendUint32(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(int32(c.Days[j])-pgEpochDay))
		for _, col := range c.values() {
			if col == nil || col[j]-col[j] != 0 {
				b = binary.BigEndian.AppendUint32(b, math.MaxUint32) // -1: NULL
				continue
			}
			b = binary.BigEndian.AppendUint32(b, 8)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(col[j]))
		}
		b = appendText(b, c.Sources[c.SourceIndex[j]])
		b = appendText(b, r.runID)
	}
	if r.coin == len(r.b.Coins) {
		b = binary.BigEndian.AppendUint16(b, math.MaxUint16) // -1: end of data
		r.done = true
	}
	r.buf = b
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// scoreColumns is the SELECT list of a Score, from table alias l.
const scoreColumns = `l.coin_id, l.day, l.rsi, l.volume_change, l.volatility_30d, l.drawdown, l.momentum_7d, l.momentum_30d,
	l.ema_20, l.liquidity, l.opportunity, l.global, l.source, l.run_id`

// scoreScan holds the scan targets of scoreColumns.
type scoreScan struct {
	s    Score
	day  Day
	vals [10]sql.NullFloat64
}

// scanScore reads one row of scoreColumns.
func scanScore(row scanner) (Score, error) {
	var ss scoreScan
	err := row.Scan(ss.dest()...)
	return ss.score(), err
}

func (ss *scoreScan) dest() []any {
	d := []any{&ss.s.CoinID, dayScanner{&ss.day}}
	for i := range ss.vals {
		d = append(d, &ss.vals[i])
	}
	return append(d, &ss.s.Source, &ss.s.RunID)
}

func (ss *scoreScan) score() Score {
	s := ss.s
	s.Day = ss.day.Time()
	v := func(i int) float64 { return nanOf(ss.vals[i]) }
	s.RSI, s.VolumeChange, s.Volatility30d, s.Drawdown, s.Momentum7d = v(0), v(1), v(2), v(3), v(4)
	s.Momentum30d, s.EMA20, s.Liquidity, s.Opportunity, s.Global = v(5), v(6), v(7), v(8), v(9)
	return s
}

// ScoreHistory returns a coin's scores between from and to (inclusive UTC
// days; a zero bound is open), oldest first.
// Errors: ENOTFOUND for an unknown coin.
func (s *Store) ScoreHistory(ctx context.Context, coinID string, from, to time.Time) ([]Score, error) {
	where, args := dayBounds(from, to)
	where, args = append([]string{"coin_id = ?"}, where...), append([]any{coinID}, args...)
	q := `SELECT ` + scoreColumns + ` FROM scores l WHERE ` + strings.Join(where, " AND ") + ` ORDER BY day`
	out, err := queryRows(ctx, s, "score history", q, args, scanScore)
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

// Sort keys of LatestScores: each sorts descending, unknown values last,
// ties by coin ID.
var scoreSorts = map[string]string{
	"global":         "l.global",
	"liquidity":      "l.liquidity",
	"opportunity":    "l.opportunity",
	"market_cap":     "l.market_cap",
	"volume":         "l.volume",
	"price":          "l.price",
	"rsi":            "l.rsi",
	"volume_change":  "l.volume_change",
	"volatility_30d": "l.volatility_30d",
	"drawdown":       "l.drawdown",
	"momentum_7d":    "l.momentum_7d",
	"momentum_30d":   "l.momentum_30d",
}

// ScoreSorts returns the sort keys LatestScores accepts.
func ScoreSorts() []string {
	keys := make([]string, 0, len(scoreSorts))
	for k := range scoreSorts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Limits of ScoreFilter.Limit.
const (
	DefaultScoreLimit = 100
	MaxScoreLimit     = 1000
)

// ScoreFilter selects latest scores.
type ScoreFilter struct {
	// Category keeps the coins having it (case-insensitive); "" keeps all.
	Category string
	// Sort is a key of ScoreSorts; default "global". The order is
	// descending, unknown values last, ties by coin ID.
	Sort string
	// Limit is the page size, 1 to MaxScoreLimit; 0 means DefaultScoreLimit.
	Limit int
	// Cursor is the NextCursor of the previous page, "" for the first.
	Cursor string
}

// ScorePage is a page of latest scores; NextCursor is "" on the last page.
type ScorePage struct {
	Items      []LatestScore
	NextCursor string
}

// scoreCursor is the position after the last item of a page: its sort key,
// the item's value of that key (nil when unknown) and its coin ID.
type scoreCursor struct {
	Sort  string   `json:"s"`
	Value *float64 `json:"v"`
	Coin  string   `json:"c"`
}

func (c scoreCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeScoreCursor(s string) (scoreCursor, bool) {
	var c scoreCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Coin == "" {
		return c, false
	}
	return c, true
}

// sortValue returns ls's value of sort key k.
func (ls *LatestScore) sortValue(k string) float64 {
	switch k {
	case "liquidity":
		return ls.Liquidity
	case "opportunity":
		return ls.Opportunity
	case "market_cap":
		return ls.MarketCap
	case "volume":
		return ls.Volume
	case "price":
		return ls.Price
	case "rsi":
		return ls.RSI
	case "volume_change":
		return ls.VolumeChange
	case "volatility_30d":
		return ls.Volatility30d
	case "drawdown":
		return ls.Drawdown
	case "momentum_7d":
		return ls.Momentum7d
	case "momentum_30d":
		return ls.Momentum30d
	}
	return ls.Global
}

// LatestScores returns a page of each coin's latest scores, read from the
// latest_scores table that every WriteScores keeps current (an index scan,
// not an aggregate over the history).
// Errors: EINVALID for an unknown sort key, a limit out of range or a
// cursor that is not one of this sort's.
func (s *Store) LatestScores(ctx context.Context, f ScoreFilter) (ScorePage, error) {
	sortKey := f.Sort
	if sortKey == "" {
		sortKey = "global"
	}
	col, ok := scoreSorts[sortKey]
	if !ok {
		return ScorePage{}, tokenlysis.FieldErrorf("sort", "Unknown sort %q: want one of %s.", f.Sort, strings.Join(ScoreSorts(), ", "))
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultScoreLimit
	}
	if limit < 1 || limit > MaxScoreLimit {
		return ScorePage{}, tokenlysis.FieldErrorf("limit", "The limit must be between 1 and %d, got %d.", MaxScoreLimit, f.Limit)
	}
	where, args := []string{"1 = 1"}, []any{}
	if f.Category != "" {
		where, args = append(where, s.categoryFilter()), append(args, f.Category)
	}
	if f.Cursor != "" {
		c, ok := decodeScoreCursor(f.Cursor)
		if !ok || c.Sort != sortKey {
			return ScorePage{}, tokenlysis.FieldErrorf("cursor", "Invalid cursor for sort %q.", sortKey)
		}
		if c.Value == nil {
			where, args = append(where, "("+col+" IS NULL AND l.coin_id > ?)"), append(args, c.Coin)
		} else {
			where = append(where, "("+col+" < ? OR ("+col+" = ? AND l.coin_id > ?) OR "+col+" IS NULL)")
			args = append(args, *c.Value, *c.Value, c.Coin)
		}
	}
	// col comes from scoreSorts, never from the request.
	q := `SELECT ` + scoreColumns + `, l.price, l.market_cap, l.volume, c.symbol, c.name, c.logo_url, c.categories
		FROM latest_scores l JOIN coins c ON c.id = l.coin_id
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY ` + col + ` DESC NULLS LAST, l.coin_id LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return ScorePage{}, wrap("latest scores", err)
	}
	defer rows.Close()
	page := ScorePage{Items: make([]LatestScore, 0, limit)}
	var (
		ss               scoreScan
		price, mcap, vol sql.NullFloat64
		symbol, name     string
		logo, cats       string
		dest             = append(ss.dest(), &price, &mcap, &vol, &symbol, &name, &logo, &cats)
		// Most coins share a few category lists: parse each distinct one once.
		parsed = map[string][]string{}
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return ScorePage{}, wrap("latest scores", err)
		}
		ls := LatestScore{Score: ss.score(), Symbol: symbol, Name: name, LogoURL: logo,
			Price: nanOf(price), MarketCap: nanOf(mcap), Volume: nanOf(vol)}
		cs, ok := parsed[cats]
		if !ok {
			cs = []string{}
			if err := json.Unmarshal([]byte(cats), &cs); err != nil {
				return ScorePage{}, wrap("latest scores", err)
			}
			parsed[cats] = cs
		}
		ls.Categories = slices.Clone(cs)
		page.Items = append(page.Items, ls)
	}
	if err := rows.Err(); err != nil {
		return ScorePage{}, wrap("latest scores", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		last := &page.Items[limit-1]
		c := scoreCursor{Sort: sortKey, Coin: last.CoinID}
		if v := last.sortValue(sortKey); v == v {
			c.Value = &v
		}
		page.NextCursor = c.encode()
	}
	return page, nil
}

// Statuses of a recalculation run.
const (
	RecalcRunning   = "running"
	RecalcSucceeded = "succeeded"
	RecalcFailed    = "failed"
)

// RecalcRun records one recalculation: what it covered and how it ended.
type RecalcRun struct {
	ID string
	// JobID is the job that ran it, "" when run outside a job.
	JobID string
	// Scope describes the coins covered, e.g. "universe" or "coins:a,b".
	Scope string
	// Since is the first day written; zero for the full history.
	Since  time.Time
	Status string
	// Assets, Days and Rows count the coins, the days and the score rows
	// written.
	Assets int
	Days   int
	Rows   int64
	// Sources lists the data sources of the history scored.
	Sources    []string
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Error      string
}

const recalcRunColumns = `id, job_id, scope, since, status, assets, days, rows_written, sources, started_at, finished_at, error`

func scanRecalcRun(sc scanner) (RecalcRun, error) {
	var r RecalcRun
	var job sql.NullString
	var since nullDay
	var finished sql.NullTime
	var sources string
	err := sc.Scan(&r.ID, &job, &r.Scope, &since, &r.Status, &r.Assets, &r.Days, &r.Rows, &sources, &r.StartedAt, &finished, &r.Error)
	r.JobID, r.StartedAt = job.String, r.StartedAt.UTC()
	if since.Valid {
		r.Since = since.Day.Time()
	}
	if finished.Valid {
		r.FinishedAt = finished.Time.UTC()
	}
	r.Sources = []string{}
	if sources != "" {
		r.Sources = strings.Split(sources, ",")
	}
	return r, err
}

// StartRecalcRun records a new running run (r.ID, r.Scope and, when not
// zero, r.JobID and r.Since) started now, and returns it.
// Errors: EINVALID without ID or scope; ECONFLICT when the ID exists.
func (s *Store) StartRecalcRun(ctx context.Context, r RecalcRun) (RecalcRun, error) {
	if r.ID == "" || r.Scope == "" {
		return r, tokenlysis.FieldErrorf("id", "A recalculation run needs an ID and a scope.")
	}
	r.Status, r.StartedAt, r.FinishedAt, r.Error = RecalcRunning, s.now(), time.Time{}, ""
	r.Assets, r.Days, r.Rows, r.Sources = 0, 0, 0, []string{}
	var since any
	if !r.Since.IsZero() {
		r.Since = DayOf(r.Since).Time()
		since = timeDayArg(r.Since)
	}
	const q = `INSERT INTO recalc_runs (id, job_id, scope, since, status, started_at) VALUES (?, ?, ?, ?, ?, ?)`
	_, err := s.db.ExecContext(ctx, s.rebind(q), r.ID, nullString(r.JobID), r.Scope, since, r.Status, r.StartedAt)
	if database.IsUniqueViolation(err) {
		return r, tokenlysis.Errorf(tokenlysis.ECONFLICT, "Recalculation run %s already exists.", r.ID)
	}
	return r, wrap("start recalc run", err)
}

// FinishRecalcRun ends a running run with r.Status (RecalcSucceeded or
// RecalcFailed), its counts, sources and error, finished now.
// Errors: EINVALID for another status; ENOTFOUND; ECONFLICT when the run
// already ended.
func (s *Store) FinishRecalcRun(ctx context.Context, r RecalcRun) error {
	if r.Status != RecalcSucceeded && r.Status != RecalcFailed {
		return tokenlysis.FieldErrorf("status", "A run ends as succeeded or failed, not %q.", r.Status)
	}
	const q = `UPDATE recalc_runs SET status = ?, assets = ?, days = ?, rows_written = ?, sources = ?, error = ?, finished_at = ?
		WHERE id = ? AND status = 'running'`
	res, err := s.db.ExecContext(ctx, s.rebind(q), r.Status, r.Assets, r.Days, r.Rows, strings.Join(r.Sources, ","), r.Error, s.now(), r.ID)
	if err != nil {
		return wrap("finish recalc run", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("finish recalc run", err)
	} else if n == 0 {
		if _, err := s.FindRecalcRun(ctx, r.ID); err != nil {
			return err
		}
		return tokenlysis.Errorf(tokenlysis.ECONFLICT, "Recalculation run %s already ended.", r.ID)
	}
	return nil
}

// FindRecalcRun returns the run with the given ID.
// Errors: ENOTFOUND.
func (s *Store) FindRecalcRun(ctx context.Context, id string) (RecalcRun, error) {
	r, err := scanRecalcRun(s.db.QueryRowxContext(ctx, s.rebind(`SELECT `+recalcRunColumns+` FROM recalc_runs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Recalculation run not found.")
	}
	return r, wrap("find recalc run", err)
}

// ListRecalcRuns returns the latest runs, newest first, at most limit
// (default 20).
func (s *Store) ListRecalcRuns(ctx context.Context, limit int) ([]RecalcRun, error) {
	if limit <= 0 {
		limit = 20
	}
	return queryRows(ctx, s, "list recalc runs", `SELECT `+recalcRunColumns+` FROM recalc_runs ORDER BY started_at DESC, id DESC LIMIT ?`,
		[]any{limit}, scanRecalcRun)
}
