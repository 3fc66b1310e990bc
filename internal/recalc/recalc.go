package recalc

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
	"github.com/tokenlysis/tokenlysis/internal/score"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Store is the part of the SQL store the engine reads and writes.
type Store interface {
	ListCoins(ctx context.Context, f sqlstore.CoinFilter) ([]sqlstore.Coin, error)
	LoadHistory(ctx context.Context, f sqlstore.HistoryFilter) ([]sqlstore.HistoryColumns, error)
	WriteScores(ctx context.Context, runID string, b sqlstore.ScoreBatch) (sqlstore.ScoreWrite, error)
	StartRecalcRun(ctx context.Context, r sqlstore.RecalcRun) (sqlstore.RecalcRun, error)
	FinishRecalcRun(ctx context.Context, r sqlstore.RecalcRun) error
}

var _ Store = (*sqlstore.Store)(nil)

// DefaultChunkAssets is Config.ChunkAssets when zero.
const DefaultChunkAssets = 100

// Config tunes an Engine. Zero fields take their defaults.
type Config struct {
	// ChunkAssets is the number of assets written per transaction, and the
	// granularity of progress reports; default DefaultChunkAssets.
	ChunkAssets int
	// Workers is the number of goroutines computing indicators and scores;
	// default GOMAXPROCS.
	Workers int
	// Writers is the number of chunks written concurrently, each in its own
	// transaction; default the store's ScoreWriters() when it has that
	// method (sqlstore: 2 on PostgreSQL, 1 on SQLite, which has a single
	// writer), else 1.
	Writers int
	// NewRunID returns the ID of a new run; default a UUIDv7.
	NewRunID func() string
}

// Engine recomputes indicators and scores. It is safe for concurrent use,
// but two runs of overlapping scopes should not run at once (the job layer
// dedupes on Scope.Key): each would be correct alone, and the last
// transaction of each chunk wins.
type Engine struct {
	store Store
	cfg   Config
}

// New returns an Engine over store.
// Errors: EINVALID for a nil store or a negative Config field.
func New(store Store, cfg Config) (*Engine, error) {
	if store == nil {
		return nil, tokenlysis.Errorf(tokenlysis.EINVALID, "recalc: a store is required")
	}
	if cfg.ChunkAssets < 0 {
		return nil, tokenlysis.FieldErrorf("chunk_assets", "chunk_assets must be positive, got %d", cfg.ChunkAssets)
	}
	if cfg.Workers < 0 {
		return nil, tokenlysis.FieldErrorf("workers", "workers must be positive, got %d", cfg.Workers)
	}
	if cfg.Writers < 0 {
		return nil, tokenlysis.FieldErrorf("writers", "writers must be positive, got %d", cfg.Writers)
	}
	cfg.ChunkAssets = cmp.Or(cfg.ChunkAssets, DefaultChunkAssets)
	cfg.Workers = cmp.Or(cfg.Workers, runtime.GOMAXPROCS(0))
	if cfg.NewRunID == nil {
		cfg.NewRunID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	return &Engine{store: store, cfg: cfg}, nil
}

// Scope is what a run recomputes.
type Scope struct {
	// CoinIDs are the coins whose rows are written; nil means the whole
	// universe (every coin with history).
	CoinIDs []string
	// Since is the first day written (its UTC day); zero means the full
	// history.
	Since time.Time
	// JobID is recorded with the run; it is not part of the scope.
	JobID string
}

// Name returns the scope's coins as recorded in recalc_runs.scope:
// "universe", or "coins:" and the sorted, deduplicated IDs.
func (s Scope) Name() string {
	if s.CoinIDs == nil {
		return "universe"
	}
	ids := slices.Clone(s.CoinIDs)
	slices.Sort(ids)
	return "coins:" + strings.Join(slices.Compact(ids), ",")
}

// Key identifies the scope for deduplication: two runs with the same Key
// write the same rows. It is Name, "@", and the since day or "full".
func (s Scope) Key() string {
	since := "full"
	if !s.Since.IsZero() {
		since = sqlstore.DayOf(s.Since).String()
	}
	return s.Name() + "@" + since
}

// Result summarises a run.
type Result struct {
	RunID string
	// Scope is Scope.Name of the run.
	Scope string
	// Assets is the number of coins whose rows were written; Universe the
	// number of coins in the cross-section the scores were ranked in.
	Assets   int
	Universe int
	// From and To are the first and last day written (zero when nothing
	// was); Days counts the days of that range.
	From, To time.Time
	Days     int
	// Rows is the number of score rows the run computed and stored for its
	// scope; Changed how many of them were inserted or rewritten because a
	// value differed from the stored row (a rerun on unchanged history
	// changes none); Deleted the stored rows of the scope that no longer
	// have a price day.
	Rows    int64
	Changed int64
	Deleted int64
	// Sources lists the sources of the history behind the rows written
	// ("coingecko", "csv", "demo"), sorted.
	Sources []string
	// Load, Compute and Write are the time spent reading the history,
	// computing, and writing the rows.
	Load, Compute, Write time.Duration
}

func (r *Result) add(w sqlstore.ScoreWrite) {
	r.Rows, r.Changed, r.Deleted = r.Rows+w.Rows, r.Changed+w.Changed, r.Deleted+w.Deleted
}

// MarshalJSON encodes r for a job result: days as YYYY-MM-DD, durations
// in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	day := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.DateOnly)
	}
	return json.Marshal(struct {
		RunID     string   `json:"run_id"`
		Scope     string   `json:"scope"`
		Assets    int      `json:"assets"`
		Universe  int      `json:"universe"`
		From      string   `json:"from,omitempty"`
		To        string   `json:"to,omitempty"`
		Days      int      `json:"days"`
		Rows      int64    `json:"rows"`
		Changed   int64    `json:"changed"`
		Deleted   int64    `json:"deleted"`
		Sources   []string `json:"sources"`
		LoadMS    int64    `json:"load_ms"`
		ComputeMS int64    `json:"compute_ms"`
		WriteMS   int64    `json:"write_ms"`
	}{r.RunID, r.Scope, r.Assets, r.Universe, day(r.From), day(r.To), r.Days, r.Rows, r.Changed, r.Deleted, r.Sources,
		r.Load.Milliseconds(), r.Compute.Milliseconds(), r.Write.Milliseconds()})
}

// Progress receives a run's progress: done of total assets written, and a
// message. It is called from the goroutine that called Run.
type Progress func(done, total int, msg string)

// Run recomputes the indicators and scores of scope and writes them, and
// records the run in recalc_runs (running, then succeeded or failed with
// its counts). progress may be nil.
//
// Errors: ENOTFOUND for a coin of scope.CoinIDs that does not exist; those
// of the store (EUNAVAILABLE…); ctx's error when it is done. A failed run
// may have written some chunks: each chunk is one transaction, and running
// the same scope again rewrites them all.
func (e *Engine) Run(ctx context.Context, scope Scope, progress Progress) (Result, error) {
	if progress == nil {
		progress = func(int, int, string) {}
	}
	res := Result{RunID: e.cfg.NewRunID(), Scope: scope.Name(), Sources: []string{}}
	if _, err := e.store.StartRecalcRun(ctx, sqlstore.RecalcRun{ID: res.RunID, JobID: scope.JobID, Scope: res.Scope, Since: scope.Since}); err != nil {
		return res, fmt.Errorf("recalc: %w", err)
	}
	err := e.run(ctx, scope, &res, progress)
	fin := sqlstore.RecalcRun{ID: res.RunID, Status: sqlstore.RecalcSucceeded, Assets: res.Assets, Days: res.Days, Rows: res.Rows, Sources: res.Sources}
	if err != nil {
		fin.Status, fin.Error = sqlstore.RecalcFailed, err.Error()
	}
	// Record the end even when ctx is done.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := e.store.FinishRecalcRun(fctx, fin); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return res, fmt.Errorf("recalc: %w", err)
	}
	return res, nil
}

// panel is the universe on a common day index: column a·nDays+d is asset
// a on day first+d, NaN where the asset has no row.
type panel struct {
	first   sqlstore.Day
	nDays   int
	hist    []sqlstore.HistoryColumns
	closes  []float64
	volumes []float64
	caps    []float64
	lists   []float64
	rsi     []float64
	volchg  []float64
	source  []uint8 // index into hist[a].Sources
	inputs  []score.Inputs
	scores  []score.Scores
}

func (p *panel) col(c []float64, a int) []float64 { return c[a*p.nDays : (a+1)*p.nDays] }

func (e *Engine) run(ctx context.Context, scope Scope, res *Result, progress Progress) error {
	t0 := time.Now()
	var wanted map[string]bool
	if scope.CoinIDs != nil {
		coins, err := e.store.ListCoins(ctx, sqlstore.CoinFilter{IDs: scope.CoinIDs})
		if err != nil {
			return err
		}
		wanted = make(map[string]bool, len(coins))
		for _, c := range coins {
			wanted[c.ID] = true
		}
		for _, id := range scope.CoinIDs {
			if !wanted[id] {
				return tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Coin %q not found.", id)
			}
		}
	}
	// The cross-section needs every coin, and the indicators the whole
	// history before Since, so the load is always the full universe.
	coins, err := e.store.ListCoins(ctx, sqlstore.CoinFilter{})
	if err != nil {
		return err
	}
	hist, err := e.store.LoadHistory(ctx, sqlstore.HistoryFilter{})
	if err != nil {
		return err
	}
	res.Load = time.Since(t0)
	res.Universe = len(hist)
	points := 0
	for _, h := range hist {
		points += len(h.Days)
	}
	var targets []int // indexes into hist of the assets to write
	for a, h := range hist {
		if wanted == nil || wanted[h.CoinID] {
			targets = append(targets, a)
		}
	}
	progress(0, len(targets), fmt.Sprintf("loaded %d assets, %d days of history", len(hist), points))
	if len(hist) == 0 || len(targets) == 0 {
		return nil
	}

	t1 := time.Now()
	listings := make(map[string]float64, len(coins))
	for _, c := range coins {
		if c.ListingsCount != nil {
			listings[c.ID] = float64(*c.ListingsCount)
		}
	}
	p, err := e.compute(ctx, hist, listings)
	if err != nil {
		return err
	}
	res.Compute = time.Since(t1)

	from, to := p.first, p.first+sqlstore.Day(p.nDays-1)
	if !scope.Since.IsZero() {
		from = max(from, sqlstore.DayOf(scope.Since))
	}
	if from > to {
		progress(len(targets), len(targets), "nothing to write after "+sqlstore.DayOf(scope.Since).String())
		return nil
	}
	res.From, res.To, res.Days = from.Time(), to.Time(), int(to-from)+1
	progress(0, len(targets), fmt.Sprintf("computed %d assets × %d days", len(hist), p.nDays))

	t2 := time.Now()
	err = e.write(ctx, p, targets, from, to, res, progress)
	res.Write = time.Since(t2)
	return err
}

// compute aligns the history on a common day index and computes the RSI,
// the volume change and the daily scores of every asset.
func (e *Engine) compute(ctx context.Context, hist []sqlstore.HistoryColumns, listings map[string]float64) (*panel, error) {
	first, last := hist[0].Days[0], hist[0].Days[len(hist[0].Days)-1]
	for _, h := range hist {
		first, last = min(first, h.Days[0]), max(last, h.Days[len(h.Days)-1])
	}
	n, nDays := len(hist), int(last-first)+1
	p := &panel{first: first, nDays: nDays, hist: hist}
	cells := n * nDays
	nan := func() []float64 {
		c := make([]float64, cells)
		for i := range c {
			c[i] = math.NaN()
		}
		return c
	}
	p.closes, p.volumes, p.caps, p.lists = nan(), nan(), nan(), nan()
	p.rsi, p.volchg = make([]float64, cells), make([]float64, cells)
	p.source = make([]uint8, cells)
	p.inputs = make([]score.Inputs, n)

	// Indicators, the assets split between the workers.
	err := e.parallel(n, func(w, a int) error {
		h := &hist[a]
		closes, volumes, caps, lists := p.col(p.closes, a), p.col(p.volumes, a), p.col(p.caps, a), p.col(p.lists, a)
		src := p.source[a*nDays : (a+1)*nDays]
		l, hasListings := listings[h.CoinID]
		for i, d := range h.Days {
			k := int(d - first)
			closes[k], volumes[k], caps[k], src[k] = h.Price[i], h.Volume[i], h.MarketCap[i], h.SourceIndex[i]
			if hasListings {
				lists[k] = l
			}
		}
		rsi := indicator.RSI(p.col(p.rsi, a), closes, indicator.DefaultRSIPeriod)
		volchg := indicator.VolumeChange(p.col(p.volchg, a), volumes)
		in := score.Inputs{Volume: volumes, MarketCap: caps, RSI: rsi, VolumeChange: volchg}
		if hasListings {
			in.Listings = lists
		}
		p.inputs[a] = in
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Daily cross-sectional scores, the days split between the workers.
	p.scores = score.NewPanelScores(nil, n, nDays)
	workers := min(e.cfg.Workers, nDays)
	per := (nDays + workers - 1) / workers
	err = e.parallel(workers, func(_, w int) error {
		var s score.Scorer
		return s.PanelDays(p.scores, p.inputs, min(w*per, nDays), min((w+1)*per, nDays))
	})
	return p, err
}

// parallel calls fn(worker, i) for i in [0, n), spread over the workers.
func (e *Engine) parallel(n int, fn func(w, i int) error) error {
	workers := max(1, min(e.cfg.Workers, n))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := fn(w, i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// write writes the rows of the target assets for the days from..to, one
// transaction per chunk of assets, with the store's number of concurrent
// writers. One goroutine prepares chunks (the remaining indicators, the
// rows gathered) into a pool of buffers while the writers send earlier
// chunks to the database, so that computing overlaps with writing.
// Progress is reported from the calling goroutine as chunks complete.
func (e *Engine) write(ctx context.Context, p *panel, targets []int, from, to sqlstore.Day, res *Result, progress Progress) error {
	writers := e.cfg.Writers
	if writers == 0 {
		writers = 1
		if h, ok := e.store.(interface{ ScoreWriters() int }); ok {
			writers = max(1, h.ScoreWriters())
		}
	}
	type chunk struct {
		buf   *chunkBuffers
		batch sqlstore.ScoreBatch
	}
	type result struct {
		coins   int
		w       sqlstore.ScoreWrite
		sources []string
		err     error
	}
	nChunks := (len(targets) + e.cfg.ChunkAssets - 1) / e.cfg.ChunkAssets
	// stop ends the dispatch of chunks after a failure; the writes under
	// way finish with the caller's ctx, so that a chunk is never cut off in
	// its commit and every committed chunk is counted.
	writeCtx := ctx
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	free := make(chan *chunkBuffers, writers+1)
	for range writers + 1 {
		free <- new(chunkBuffers)
	}
	todo := make(chan chunk)
	results := make(chan result, nChunks+1) // never blocks a sender
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(todo)
		for c0 := 0; c0 < len(targets); c0 += e.cfg.ChunkAssets {
			var buf *chunkBuffers
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			batch, err := buf.fill(p, targets[c0:min(c0+e.cfg.ChunkAssets, len(targets))], from, to)
			if err != nil {
				results <- result{err: err}
				return
			}
			select {
			case todo <- chunk{buf, batch}:
			case <-ctx.Done():
				return
			}
		}
	})
	for range writers {
		wg.Go(func() {
			for c := range todo {
				w, err := e.store.WriteScores(writeCtx, res.RunID, c.batch)
				results <- result{coins: len(c.batch.Coins), w: w, sources: batchSources(c.batch), err: err}
				free <- c.buf
				if err != nil {
					return
				}
			}
		})
	}
	sources := map[string]bool{}
	var err error
	for done := 0; done < len(targets) && err == nil; {
		var r result
		select {
		case r = <-results:
		case <-ctx.Done():
			r.err = ctx.Err()
		}
		if r.err != nil {
			err = r.err
			break
		}
		done += r.coins
		res.Assets = done
		res.add(r.w)
		for _, s := range r.sources {
			sources[s] = true
		}
		progress(done, len(targets), fmt.Sprintf("wrote %d of %d assets (%d rows)", done, len(targets), res.Rows))
	}
	stop()
	wg.Wait()
	// Chunks that other writers committed after a failure still count.
	for len(results) > 0 {
		if r := <-results; r.err == nil {
			res.Assets += r.coins
			res.add(r.w)
			for _, s := range r.sources {
				sources[s] = true
			}
		}
	}
	for s := range sources {
		res.Sources = append(res.Sources, s)
	}
	slices.Sort(res.Sources)
	return err
}

// batchSources returns the sources of the rows of b.
func batchSources(b sqlstore.ScoreBatch) []string {
	var out []string
	for _, c := range b.Coins {
		for i, s := range c.Sources {
			if !slices.Contains(out, s) && slices.Contains(c.SourceIndex, uint8(i)) {
				out = append(out, s)
			}
		}
	}
	return out
}

// chunkBuffers holds the columns of one chunk of assets, reused from
// chunk to chunk.
type chunkBuffers struct {
	set  indicator.Set
	cols [10][]float64
	days []sqlstore.Day
	src  []uint8
	out  []sqlstore.ScoreColumns
}

// fill computes the remaining indicators of the assets and gathers their
// rows of the days from..to (the days they have a price) into a batch that
// stays valid until the next fill.
func (cb *chunkBuffers) fill(p *panel, assets []int, from, to sqlstore.Day) (sqlstore.ScoreBatch, error) {
	span := int(to-from) + 1
	need := len(assets) * span
	for k := range cb.cols {
		if cap(cb.cols[k]) < need {
			cb.cols[k] = make([]float64, need)
		}
	}
	if cap(cb.days) < need {
		cb.days, cb.src = make([]sqlstore.Day, need), make([]uint8, need)
	}
	cb.out = cb.out[:0]
	off := 0
	d0, d1 := int(from-p.first), int(to-p.first)
	for _, a := range assets {
		closes, volumes := p.col(p.closes, a), p.col(p.volumes, a)
		if err := indicator.Compute(&cb.set, closes, volumes, indicator.Config{}); err != nil {
			return sqlstore.ScoreBatch{}, err
		}
		s := &p.scores[a]
		src := [10][]float64{p.col(p.rsi, a), p.col(p.volchg, a), cb.set.Volatility, cb.set.Drawdown,
			cb.set.MomentumShort, cb.set.MomentumLong, cb.set.EMA, s.Liquidity, s.Opportunity, s.Global}
		srcIdx := p.source[a*p.nDays : (a+1)*p.nDays]
		start := off
		for d := d0; d <= d1; d++ {
			if closes[d] != closes[d] { // no price that day: a gap, no row
				continue
			}
			for k := range src {
				cb.cols[k][off] = src[k][d]
			}
			cb.days[off], cb.src[off] = p.first+sqlstore.Day(d), srcIdx[d]
			off++
		}
		// An asset without a day in range still clears its stored range.
		c := func(k int) []float64 { return cb.cols[k][start:off:off] }
		cb.out = append(cb.out, sqlstore.ScoreColumns{
			CoinID: p.hist[a].CoinID, Days: cb.days[start:off:off],
			RSI: c(0), VolumeChange: c(1), Volatility30d: c(2), Drawdown: c(3), Momentum7d: c(4), Momentum30d: c(5),
			EMA20: c(6), Liquidity: c(7), Opportunity: c(8), Global: c(9),
			Sources: p.hist[a].Sources, SourceIndex: cb.src[start:off:off],
		})
	}
	return sqlstore.ScoreBatch{From: from, To: to, Coins: cb.out}, nil
}
