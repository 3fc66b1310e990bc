package score

import (
	"math"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Weights of the scores, as the Python original defined them.
const (
	LiquidityVolumeWeight    = 0.45
	LiquidityMarketCapWeight = 0.35
	LiquidityListingsWeight  = 0.20

	OpportunityRSIWeight          = 0.60
	OpportunityVolumeChangeWeight = 0.40

	// The RSI term of the opportunity is clamp((RSICeiling − RSI)/RSISpan, 0, 1):
	// 1 at RSI 30 and below (oversold), 0 at RSI 70 and above (overbought).
	RSICeiling = 70
	RSISpan    = 40
)

// Inputs holds the input columns of the scores (NaN = missing). In a
// cross-section (Scorer.Day) index i is an asset; in a panel (Scorer.Panel)
// each asset has its own Inputs, indexed by day. A nil column is missing
// everywhere; a non-nil column has the common length.
type Inputs struct {
	Volume       []float64 // traded volume; ≤ 0 is missing (log scale)
	MarketCap    []float64 // market capitalisation; ≤ 0 is missing (log scale)
	Listings     []float64 // number of exchange listings (linear)
	RSI          []float64 // RSI(14), 0–100
	VolumeChange []float64 // day-over-day volume change, a fraction
}

// Scores holds the score columns (0–100, NaN = no score), indexed like the
// Inputs they come from.
type Scores struct {
	Liquidity   []float64
	Opportunity []float64
	Global      []float64
}

// resize returns dst with length n, reusing its backing array when it is
// large enough.
func resize(dst []float64, n int) []float64 {
	if cap(dst) < n {
		return make([]float64, n)
	}
	return dst[:n]
}

// resize sizes every column of s to n.
func (s *Scores) resize(n int) {
	s.Liquidity = resize(s.Liquidity, n)
	s.Opportunity = resize(s.Opportunity, n)
	s.Global = resize(s.Global, n)
}

// The normalised components.
const (
	compVolume = iota
	compMarketCap
	compListings
	compVolumeChange
	nComponents
)

// logScaled reports whether component comp is normalised on log10 of the
// value (volume and market cap).
func logScaled(comp int) bool { return comp == compVolume || comp == compMarketCap }

// Scorer computes scores. Its zero value is ready to use; it keeps scratch
// buffers between calls so that a long run does not allocate, and each
// component's last band, which turns the next day's percentile selection
// into a single pass while the universe drifts slowly (the results are
// exact either way). A Scorer is not safe for concurrent use: give each
// goroutine its own.
type Scorer struct {
	blk     [nComponents][]float64 // day-major cross-sections of a block of days (panel)
	bands   []dayBands             // bands of the days being scored (panel)
	sel     []float64              // selection scratch for the percentiles
	b5, b95 []float64              // bracketed selection buckets
	nan     []float64              // NaN, standing for nil columns
	hints   [nComponents]hint
	// stats counts the bands computed in one pass (bracketed) and in full.
	stats struct{ bracketed, full int }
}

// bandOf is one component's p5–p95 band on one day (in log10 for the
// log-scaled components); ok is false when no value was present.
type bandOf struct {
	lo, hi float64
	scale  float64 // 100/(hi − lo), 0 on a degenerate band
	ok     bool
}

// newBand returns the band [lo, hi].
func newBand(lo, hi float64) bandOf {
	b := bandOf{lo: lo, hi: hi, ok: true}
	if hi > lo {
		b.scale = 100 / (hi - lo)
	}
	return b
}

// dayBands holds the bands of every component on one day.
type dayBands [nComponents]bandOf

// Day computes the scores of one day's universe: in holds one entry per
// asset, dst receives one score per asset (its columns are resized to the
// universe, reusing their capacity).
//
// Liquidity = 0.45·volume + 0.35·market cap + 0.20·listings, where volume
// and market cap are log10-scaled (a value ≤ 0 is missing) and each
// component is normalised to 0–100 between the 5th and 95th percentiles of
// the present values of the universe (numpy's linear interpolation): ≤ p5
// → 0, ≥ p95 → 100, linear between. When p5 == p95 a value equal to them
// scores 50 (below 0, above 100). A missing component drops out and the
// weights of the present ones are renormalised to sum to 1; with no
// component the liquidity is NaN.
//
// Opportunity = 100·(0.60·clamp((70 − RSI)/40, 0, 1) + 0.40·v), where v is
// the volume change normalised to 0–1 in the same way. The RSI is the core
// of the signal: without it the opportunity is NaN. Without a volume
// change the RSI term alone is used (its weight renormalised to 1).
//
// Global is the mean of the liquidity and opportunity that are present,
// NaN when neither is.
//
// Day returns an EINVALID *tokenlysis.Error naming the first column whose
// length differs from the others.
func (s *Scorer) Day(dst *Scores, in Inputs) error {
	n, err := columnsLength(in, -1)
	if err != nil {
		return err
	}
	var b [1]dayBands
	cols := [...][]float64{in.Volume, in.MarketCap, in.Listings, in.RSI, in.VolumeChange}
	for c, col := range [nComponents][]float64{in.Volume, in.MarketCap, in.Listings, in.VolumeChange} {
		b[0][c] = s.band(col, c)
	}
	for i, c := range cols {
		if c == nil {
			cols[i] = s.nans(n)
		}
	}
	dst.resize(n)
	scoreColumns(dst, cols[0], cols[1], cols[2], cols[3], cols[4], b[:], 0)
	return nil
}

// nans returns a column of n NaN, standing for a nil input column.
func (s *Scorer) nans(n int) []float64 {
	if len(s.nan) < n {
		s.nan = make([]float64, n)
		for i := range s.nan {
			s.nan[i] = math.NaN()
		}
	}
	return s.nan[:n]
}

// columnsLength returns the common length of in's non-nil columns (0 when
// all are nil), or an EINVALID error naming the first column of another
// length. want < 0 means the first non-nil column sets the length.
func columnsLength(in Inputs, want int) (int, error) {
	cols := [...]struct {
		field string
		c     []float64
	}{
		{"volume", in.Volume},
		{"market_cap", in.MarketCap},
		{"listings", in.Listings},
		{"rsi", in.RSI},
		{"volume_change", in.VolumeChange},
	}
	for _, c := range cols {
		if c.c == nil {
			continue
		}
		if want < 0 {
			want = len(c.c)
		} else if len(c.c) != want {
			return 0, tokenlysis.FieldErrorf(c.field, "%s has %d values, want %d", c.field, len(c.c), want)
		}
	}
	return max(want, 0), nil
}

// isPresent reports whether x is a number (not NaN, not ±Inf).
func isPresent(x float64) bool { return x-x == 0 }

// isPositive reports whether x is a positive finite number, the values a
// log-scaled component can take.
func isPositive(x float64) bool { return x > 0 && x <= math.MaxFloat64 }

// scoreColumns writes the liquidity, opportunity and global scores of
// len(dst.Liquidity) points from their raw inputs (NaN = missing): point i
// is scored with bands[i·step], so step 0 scores one day's universe and
// step 1 the days of one asset.
func scoreColumns(dst *Scores, vol, mcap, listings, rsi, vc []float64, bands []dayBands, step int) {
	liq, opp, glob := dst.Liquidity, dst.Opportunity, dst.Global
	n := len(liq)
	vol, mcap, listings, rsi, vc = vol[:n], mcap[:n], listings[:n], rsi[:n], vc[:n]
	opp, glob = opp[:n], glob[:n]
	for i := range liq {
		b := &bands[i*step]
		// A present value implies a present band: no need to check ok.
		var acc, w float64
		if x := vol[i]; isPositive(x) {
			acc += LiquidityVolumeWeight * b[compVolume].normalise(log10(x))
			w += LiquidityVolumeWeight
		}
		if x := mcap[i]; isPositive(x) {
			acc += LiquidityMarketCapWeight * b[compMarketCap].normalise(log10(x))
			w += LiquidityMarketCapWeight
		}
		if x := listings[i]; isPresent(x) {
			acc += LiquidityListingsWeight * b[compListings].normalise(x)
			w += LiquidityListingsWeight
		}
		l := math.NaN()
		if w > 0 {
			l = acc / w
		}

		o := math.NaN()
		if r := rsi[i]; isPresent(r) {
			t := min(max((RSICeiling-r)/RSISpan, 0), 1)
			if x := vc[i]; isPresent(x) {
				o = OpportunityRSIWeight*100*t + OpportunityVolumeChangeWeight*b[compVolumeChange].normalise(x)
			} else {
				o = 100 * t
			}
		}

		liq[i], opp[i] = l, o
		switch {
		case l == l && o == o:
			glob[i] = (l + o) / 2
		case l == l:
			glob[i] = l
		default:
			glob[i] = o // NaN when both are missing
		}
	}
}

// present reports whether x counts for component comp.
func present(x float64, comp int) bool {
	if logScaled(comp) {
		return isPositive(x)
	}
	return isPresent(x)
}

// band returns the p5–p95 band of col's present values (in log10 for a
// log-scaled component); ok is false when none is present. comp's
// previous band serves as a hint (see bracketed).
func (s *Scorer) band(col []float64, comp int) bandOf {
	h := &s.hints[comp]
	logScale := logScaled(comp)
	if h.ok {
		if b, done := s.bracketed(col, comp, h); done {
			if b.ok {
				h.lo, h.hi = b.lo, b.hi
			}
			s.stats.bracketed++
			return b
		}
		h.w *= 2 // missed: widen the brackets for the next day
	}
	s.sel = resize(s.sel, len(col))
	sel := s.sel[:0]
	for _, x := range col {
		if present(x, comp) {
			sel = append(sel, x)
		}
	}
	if len(sel) == 0 {
		return bandOf{}
	}
	s.stats.full++
	lo, hi := band(sel, logScale)
	if !h.ok {
		h.w = (hi - lo) / 50
	}
	h.lo, h.hi, h.ok = lo, hi, h.w > 0
	return newBand(lo, hi)
}

// hint is a component's band on the previous day scored by this Scorer
// (log10 for a log-scaled component) and the half-width of the brackets
// put around it.
type hint struct {
	lo, hi, w float64
	ok        bool
}

// bracketed computes the band of col in one pass when the order statistics
// it needs lie within ±h.w of the previous band, which is the rule from one
// day to the next: values outside the brackets are only counted, values
// inside are collected, and the order statistics are selected among those
// few. The result is exactly band's. done is false when the brackets
// overlap or miss an order statistic: the caller then computes the band in
// full. The width adapts: halved while the buckets hold more than 256
// values, doubled by the caller after a miss.
func (s *Scorer) bracketed(col []float64, comp int, h *hint) (b bandOf, done bool) {
	logScale := logScaled(comp)
	a5lo, a5hi := h.lo-h.w, h.lo+h.w
	a95lo, a95hi := h.hi-h.w, h.hi+h.w
	if !(a5hi < a95lo) {
		return bandOf{}, false
	}
	if logScale {
		// Compare the values themselves with the brackets' antilogs: the
		// classification only has to be consistent, not exact.
		a5lo, a5hi = math.Pow(10, a5lo), math.Pow(10, a5hi)
		a95lo, a95hi = math.Pow(10, a95lo), math.Pow(10, a95hi)
		if !(a5hi < a95lo) {
			return bandOf{}, false
		}
	}
	s.b5 = resize(s.b5, len(col))
	s.b95 = resize(s.b95, len(col))
	b5, b95 := s.b5[:0], s.b95[:0]
	var bulk, below, above int
	for _, x := range col {
		if x > a5hi && x < a95lo { // the bulk, between the brackets (false for NaN)
			bulk++
			continue
		}
		switch {
		case !present(x, comp):
		case x <= a5hi:
			if x >= a5lo {
				b5 = append(b5, x)
			} else {
				below++
			}
		case x <= a95hi:
			b95 = append(b95, x)
		default:
			above++
		}
	}
	n := bulk + below + above + len(b5) + len(b95)
	if n == 0 {
		return bandOf{}, true
	}
	if n < 3 {
		return bandOf{}, false
	}
	h5 := float64(n-1) * (LowPercentile / 100.0)
	h95 := float64(n-1) * (HighPercentile / 100.0)
	i5, i95 := int(h5), int(h95)
	// Order statistics i5, i5+1 must be in b5 and i95, i95+1 in b95
	// (n ≥ 3, so i95+1 ≤ n−1).
	j5 := i5 - below
	j95 := i95 - (n - above - len(b95))
	if j5 < 0 || j5+1 >= len(b5) || j95 < 0 || j95+1 >= len(b95) {
		return bandOf{}, false
	}
	x5 := selectK(b5, j5)
	lo := interpolate(x5, minOf(b5[j5+1:]), h5-float64(i5), logScale)
	x95 := selectK(b95, j95)
	b = newBand(lo, interpolate(x95, minOf(b95[j95+1:]), h95-float64(i95), logScale))
	if len(b5)+len(b95) > 256 {
		h.w /= 2
	}
	return b, true
}

// normalise maps x to 0–100 over the band: ≤ lo → 0, ≥ hi → 100, linear
// between; on a degenerate band (lo == hi) x == lo scores 50.
func (b *bandOf) normalise(x float64) float64 {
	switch {
	case x < b.lo:
		return 0
	case x > b.hi:
		return 100
	case b.scale == 0:
		return 50
	default:
		return (x - b.lo) * b.scale
	}
}
