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
	day     Inputs    // transformed cross-sections of up to panelBlock days
	out     Scores    // their scores
	sel     []float64 // selection scratch for the percentiles
	b5, b95 []float64 // bracketed selection buckets
	hints   [nComponents]hint
	// bands counts the bands computed in one pass (bracketed) and in full.
	bands struct{ bracketed, full int }
}

// The normalised components, each with its hint.
const (
	compVolume = iota
	compMarketCap
	compListings
	compVolumeChange
	nComponents
)

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

// isPresent reports whether x is a number (not NaN, not ±Inf).
func isPresent(x float64) bool { return x-x == 0 }

// score computes dst (already sized) from the transformed day columns c
// (log10 volume and market cap, NaN = missing): one pass per component for
// its band, then one pass over the assets for the three scores.
func (s *Scorer) score(dst *Scores, c *Inputs) {
	vLo, vHi, _ := s.band(c.Volume, compVolume)
	mLo, mHi, _ := s.band(c.MarketCap, compMarketCap)
	lLo, lHi, _ := s.band(c.Listings, compListings)
	cLo, cHi, _ := s.band(c.VolumeChange, compVolumeChange)
	liq, opp, glob := dst.Liquidity, dst.Opportunity, dst.Global
	vol, mcap, lst, rsis, vcs := c.Volume[:len(liq)], c.MarketCap[:len(liq)], c.Listings[:len(liq)], c.RSI[:len(liq)], c.VolumeChange[:len(liq)]
	for i := range liq {
		// A present value implies a present band, so ok needs no check.
		var acc, w float64
		if x := vol[i]; isPresent(x) {
			acc += LiquidityVolumeWeight * normalise(x, vLo, vHi)
			w += LiquidityVolumeWeight
		}
		if x := mcap[i]; isPresent(x) {
			acc += LiquidityMarketCapWeight * normalise(x, mLo, mHi)
			w += LiquidityMarketCapWeight
		}
		if x := lst[i]; isPresent(x) {
			acc += LiquidityListingsWeight * normalise(x, lLo, lHi)
			w += LiquidityListingsWeight
		}
		l := math.NaN()
		if w > 0 {
			l = acc / w
		}

		o := math.NaN()
		if rsi := rsis[i]; isPresent(rsi) {
			r := min(max((RSICeiling-rsi)/RSISpan, 0), 1)
			if vc := vcs[i]; isPresent(vc) {
				o = OpportunityRSIWeight*100*r + OpportunityVolumeChangeWeight*normalise(vc, cLo, cHi)
			} else {
				o = 100 * r
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

// band returns the p5–p95 band of col's present values; ok is false when
// none is present. comp names the component, whose previous band serves as
// a hint (see bracketed).
func (s *Scorer) band(col []float64, comp int) (lo, hi float64, ok bool) {
	h := &s.hints[comp]
	if h.ok {
		var done bool
		if lo, hi, ok, done = s.bracketed(col, h); done {
			if ok {
				h.lo, h.hi = lo, hi
			}
			s.bands.bracketed++
			return lo, hi, ok
		}
		h.w *= 2 // missed: widen the brackets for the next day
	}
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
	s.bands.full++
	lo, hi = band(sel)
	if !h.ok {
		h.w = (hi - lo) / 50
	}
	h.lo, h.hi, h.ok = lo, hi, h.w > 0
	return lo, hi, true
}

// hint is a component's band on the previous day scored by this Scorer and
// the half-width of the brackets put around it.
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
// full. The width adapts: halved while the buckets hold more than 32
// values, doubled by the caller after a miss.
func (s *Scorer) bracketed(col []float64, h *hint) (lo, hi float64, ok, done bool) {
	a5lo, a5hi := h.lo-h.w, h.lo+h.w
	a95lo, a95hi := h.hi-h.w, h.hi+h.w
	if !(a5hi < a95lo) {
		return 0, 0, false, false
	}
	s.b5 = resize(s.b5, len(col))
	s.b95 = resize(s.b95, len(col))
	b5, b95 := s.b5[:0], s.b95[:0]
	var n, below, above int
	for _, x := range col {
		switch {
		case !isPresent(x):
			continue
		case x > a5hi && x < a95lo: // the bulk: between the brackets
		case x <= a5hi:
			if x >= a5lo {
				b5 = append(b5, x)
			} else {
				below++
			}
		default:
			if x <= a95hi {
				b95 = append(b95, x)
			} else {
				above++
			}
		}
		n++
	}
	if n == 0 {
		return 0, 0, false, true
	}
	if n < 3 {
		return 0, 0, false, false
	}
	h5 := float64(n-1) * (LowPercentile / 100.0)
	h95 := float64(n-1) * (HighPercentile / 100.0)
	i5, i95 := int(h5), int(h95)
	// Order statistics i5, i5+1 must be in b5 and i95, i95+1 in b95
	// (n ≥ 3, so i95+1 ≤ n−1).
	j5 := i5 - below
	j95 := i95 - (n - above - len(b95))
	if j5 < 0 || j5+1 >= len(b5) || j95 < 0 || j95+1 >= len(b95) {
		return 0, 0, false, false
	}
	x5 := selectK(b5, j5)
	lo = lerp(x5, minOf(b5[j5+1:]), h5-float64(i5))
	x95 := selectK(b95, j95)
	hi = lerp(x95, minOf(b95[j95+1:]), h95-float64(i95))
	if len(b5)+len(b95) > 64 {
		h.w /= 2
	}
	return lo, hi, true, true
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
