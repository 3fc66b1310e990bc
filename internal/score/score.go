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

// Scorer computes scores. Its zero value is ready to use; it keeps scratch
// buffers between calls so that a long run does not allocate. A Scorer is
// not safe for concurrent use: give each goroutine its own.
type Scorer struct {
	day     Inputs // one day's transformed cross-section (panel)
	out     Scores // one day's scores (panel)
	weights []float64
	sel     []float64 // selection scratch for the percentiles
}

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
	s.day.Volume = logColumn(s.day.Volume, in.Volume, n)
	s.day.MarketCap = logColumn(s.day.MarketCap, in.MarketCap, n)
	s.day.Listings = copyColumn(s.day.Listings, in.Listings, n)
	s.day.RSI = copyColumn(s.day.RSI, in.RSI, n)
	s.day.VolumeChange = copyColumn(s.day.VolumeChange, in.VolumeChange, n)
	dst.resize(n)
	s.score(dst, &s.day)
	return nil
}

// columnsLength returns the common length of in's non-nil columns (0 when
// all are nil), or an EINVALID error naming the first column of another
// length. want < 0 means the first non-nil column sets the length.
func columnsLength(in Inputs, want int) (int, error) {
	cols := []struct {
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

// logColumn writes log10 of src into dst (NaN where src is not a positive
// finite number, or everywhere when src is nil).
func logColumn(dst, src []float64, n int) []float64 {
	dst = resize(dst, n)
	if src == nil {
		fill(dst, math.NaN())
		return dst
	}
	for i, v := range src {
		dst[i] = log10(v)
	}
	return dst
}

// copyColumn copies src into dst (NaN everywhere when src is nil).
func copyColumn(dst, src []float64, n int) []float64 {
	dst = resize(dst, n)
	if src == nil {
		fill(dst, math.NaN())
		return dst
	}
	copy(dst, src)
	return dst
}

func fill(dst []float64, v float64) {
	for i := range dst {
		dst[i] = v
	}
}

// log10 returns log10(v) for a positive finite v, NaN otherwise.
func log10(v float64) float64 {
	if v > 0 && v <= math.MaxFloat64 {
		return math.Log10(v)
	}
	return math.NaN()
}

// isPresent reports whether x is a number (not NaN, not ±Inf).
func isPresent(x float64) bool { return x-x == 0 }

// score computes dst (already sized) from the transformed day columns c
// (log10 volume and market cap, NaN = missing).
func (s *Scorer) score(dst *Scores, c *Inputs) {
	n := len(dst.Liquidity)
	liq, opp, glob := dst.Liquidity, dst.Opportunity, dst.Global
	s.weights = resize(s.weights, n)
	w := s.weights
	for i := range liq {
		liq[i], w[i] = 0, 0
	}
	s.addComponent(liq, w, c.Volume, LiquidityVolumeWeight)
	s.addComponent(liq, w, c.MarketCap, LiquidityMarketCapWeight)
	s.addComponent(liq, w, c.Listings, LiquidityListingsWeight)
	for i := range liq {
		if w[i] > 0 {
			liq[i] /= w[i]
		} else {
			liq[i] = math.NaN()
		}
	}

	// The normalised volume change (0–100) goes into opp first.
	lo, hi, ok := s.band(c.VolumeChange)
	for i, vc := range c.VolumeChange {
		rsi := c.RSI[i]
		if !isPresent(rsi) {
			opp[i] = math.NaN()
			continue
		}
		r := min(max((RSICeiling-rsi)/RSISpan, 0), 1)
		if ok && isPresent(vc) {
			opp[i] = OpportunityRSIWeight*100*r + OpportunityVolumeChangeWeight*normalise(vc, lo, hi)
		} else {
			opp[i] = 100 * r
		}
	}

	for i := range glob {
		l, o := liq[i], opp[i]
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

// addComponent adds weight·normalised(col) to acc and weight to wsum where
// col is present.
func (s *Scorer) addComponent(acc, wsum, col []float64, weight float64) {
	lo, hi, ok := s.band(col)
	if !ok {
		return
	}
	for i, x := range col {
		if isPresent(x) {
			acc[i] += weight * normalise(x, lo, hi)
			wsum[i] += weight
		}
	}
}

// band returns the p5–p95 band of col's present values; ok is false when
// none is present.
func (s *Scorer) band(col []float64) (lo, hi float64, ok bool) {
	s.sel = resize(s.sel, len(col))
	sel := s.sel[:0]
	for _, x := range col {
		if isPresent(x) {
			sel = append(sel, x)
		}
	}
	if len(sel) == 0 {
		return 0, 0, false
	}
	lo, hi = band(sel)
	return lo, hi, true
}

// normalise maps x to 0–100 over the band [lo, hi]: ≤ lo → 0, ≥ hi → 100,
// linear between; on a degenerate band (lo == hi) x == lo scores 50.
func normalise(x, lo, hi float64) float64 {
	switch {
	case x < lo:
		return 0
	case x > hi:
		return 100
	case lo == hi:
		return 50
	default:
		return 100 * (x - lo) / (hi - lo)
	}
}
