package indicator

import "math"

// The indicators are computed by small state machines fed one valid point
// at a time: the exported functions run one of them over a series, Compute
// runs all of them in a single pass, with the same arithmetic.

// rsiState computes Wilder's RSI (see RSI).
type rsiState struct {
	period, changes  int
	n, keep, inv     float64
	prev             float64
	avgGain, avgLoss float64
}

func newRSI(period int) rsiState {
	n := float64(period)
	// avg·(period−1)/period + x/period, with the divisions hoisted out of
	// the loop-carried dependency (within an ulp of TA-Lib's
	// (avg·(period−1) + x)/period, and contractive: errors do not grow).
	return rsiState{period: period, changes: -1, n: n, keep: float64(period-1) / n, inv: 1 / n}
}

// next takes the next valid close and returns the RSI, NaN until period
// changes have been seen.
func (s *rsiState) next(c float64) float64 {
	s.changes++
	if s.changes == 0 {
		s.prev = c
		return math.NaN()
	}
	d := c - s.prev
	s.prev = c
	// gain = max(d, 0), loss = max(−d, 0), without an unpredictable
	// branch; both are exact (d+|d| is 2d or 0, and halving is exact).
	a := math.Abs(d)
	gain, loss := (a+d)/2, (a-d)/2
	switch {
	case s.changes < s.period:
		s.avgGain += gain // running sums until the seed
		s.avgLoss += loss
		return math.NaN()
	case s.changes == s.period:
		s.avgGain = (s.avgGain + gain) / s.n
		s.avgLoss = (s.avgLoss + loss) / s.n
	default:
		s.avgGain = s.avgGain*s.keep + gain*s.inv
		s.avgLoss = s.avgLoss*s.keep + loss*s.inv
	}
	if t := s.avgGain + s.avgLoss; t != 0 {
		return 100 * (s.avgGain / t)
	}
	return 0 // flat: TA-Lib's convention
}

// emaState computes the EMA seeded with the SMA (see EMA).
type emaState struct {
	period, seen int
	k, ema       float64
}

func newEMA(period int) emaState {
	return emaState{period: period, k: 2 / (float64(period) + 1)}
}

// next takes the next valid value and returns the EMA, NaN until period
// values have been seen.
func (s *emaState) next(v float64) float64 {
	s.seen++
	switch {
	case s.seen < s.period:
		s.ema += v // running sum until the seed
		return math.NaN()
	case s.seen == s.period:
		s.ema = (s.ema + v) / float64(s.period)
	default:
		s.ema += s.k * (v - s.ema)
	}
	return s.ema
}

// volatilityState computes the realised volatility (see Volatility).
type volatilityState struct {
	w       window
	ring    []float64 // the window's returns, the oldest at pos once full
	pos     int
	returns int
	prev    float64 // previous valid close, NaN before the first
	scale   float64 // √annualization
}

// ringFor returns stack[:period] when period fits (the common case keeps
// the returns on the caller's stack), else a new slice.
func ringFor(stack []float64, period int) []float64 {
	if period <= len(stack) {
		return stack[:period]
	}
	return make([]float64, period)
}

func newVolatility(period int, annualization float64, ring []float64) volatilityState {
	return volatilityState{
		w:     window{n: float64(period), inv: 1 / float64(period)},
		ring:  ring,
		prev:  math.NaN(),
		scale: math.Sqrt(annualization),
	}
}

// next takes the next valid close and returns the volatility, NaN until
// len(ring) returns have been seen.
func (s *volatilityState) next(c float64) float64 {
	if !isPrice(s.prev) {
		s.prev = c
		return math.NaN()
	}
	r := c/s.prev - 1
	s.prev = c
	period := len(s.ring)
	if s.returns < period {
		s.ring[s.returns] = r
		s.returns++
		if s.returns < period {
			return math.NaN()
		}
		s.w.recomputeValues(s.ring)
	} else {
		old := s.ring[s.pos]
		s.ring[s.pos] = r
		if s.pos++; s.pos == period {
			s.pos = 0
		}
		s.w.replace(old, r)
		if s.w.stale(period) {
			s.w.recomputeValues(s.ring)
		}
	}
	return s.w.sd() * s.scale
}

// momentumState computes close_t/close_{t−n} − 1 (see Momentum); it looks
// back into the series it is fed from.
type momentumState struct {
	closes      []float64
	n, lo, seen int
}

func newMomentum(closes []float64, n int) momentumState {
	return momentumState{closes: closes, n: n, lo: -1}
}

// next takes the valid close at index i of the series and returns the
// momentum, NaN until n+1 valid closes have been seen.
func (s *momentumState) next(i int, c float64) float64 {
	if s.lo < 0 {
		s.lo = i // the first valid close
	}
	switch {
	case s.seen < s.n:
		s.seen++
		return math.NaN()
	case s.seen == s.n:
		s.seen++ // lo already points n observations back
	default:
		for s.lo++; !isPrice(s.closes[s.lo]); s.lo++ {
		}
	}
	return c/s.closes[s.lo] - 1
}

// drawdownState computes the running maximum drawdown (see Drawdown).
type drawdownState struct {
	peak, maxDD float64
}

// next takes the next valid close and returns the maximum drawdown so far.
func (s *drawdownState) next(c float64) float64 {
	if c > s.peak {
		s.peak = c
	} else if c < s.peak*(1-s.maxDD) { // cheap test before the division
		if dd := 1 - c/s.peak; dd > s.maxDD {
			s.maxDD = dd
		}
	}
	return s.maxDD
}
