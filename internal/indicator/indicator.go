package indicator

import (
	"fmt"
	"math"
)

// resize returns dst with length n, reusing its backing array when it is
// large enough: the only allocation an indicator function ever makes.
func resize(dst []float64, n int) []float64 {
	if cap(dst) < n {
		return make([]float64, n)
	}
	return dst[:n]
}

// isValue reports whether x is a finite number: NaN and ±Inf are absent
// points for the value indicators (EMA, StdDev).
func isValue(x float64) bool { return x-x == 0 }

// isPrice reports whether x is a positive finite number: anything else is an
// absent point for the price indicators (RSI, Volatility, Momentum,
// Drawdown).
func isPrice(x float64) bool { return x > 0 && x <= math.MaxFloat64 }

// checkPeriod panics when period < 1: the periods are constants of the
// caller's code (Compute validates a Config and returns an error instead).
func checkPeriod(fn string, period int) {
	if period < 1 {
		panic(fmt.Sprintf("indicator.%s: period %d < 1", fn, period))
	}
}

// RSI writes Wilder's relative strength index of closes over period changes
// into dst (reusing its capacity) and returns it.
//
// The first average gain and loss are the simple means of the first period
// changes; each later average is (previous·(period−1) + today)/period, and
// RSI = 100·avgGain/(avgGain+avgLoss), so an average loss of 0 gives 100.
// When both averages are zero (a flat market) the value is 0, as in TA-Lib.
// TA-Lib tests "zero" with a fixed band (±1e-8 before 0.6, ±1e-14 since),
// which turns every RSI of a token priced below about 1e-6 (resp. 1e-12)
// into 0; this function tests exact zero, so RSI is scale-free.
//
// A close that is not a positive finite number is an absent point: NaN in
// the output and skipped by the smoothing. The output is NaN until period
// changes (period+1 valid closes) have been seen.
func RSI(dst, closes []float64, period int) []float64 {
	checkPeriod("RSI", period)
	dst = resize(dst, len(closes))
	st := newRSI(period)
	for i, c := range closes {
		if isPrice(c) {
			dst[i] = st.next(c)
		} else {
			dst[i] = math.NaN()
		}
	}
	return dst
}

// EMA writes the exponential moving average of values over period into dst
// (reusing its capacity) and returns it. The seed is the simple mean of the
// first period values; then ema += k·(value − ema) with k = 2/(period+1).
// A non-finite value is an absent point (NaN in the output, skipped); the
// output is NaN until period values have been seen.
func EMA(dst, values []float64, period int) []float64 {
	checkPeriod("EMA", period)
	dst = resize(dst, len(values))
	st := newEMA(period)
	for i, v := range values {
		if isValue(v) {
			dst[i] = st.next(v)
		} else {
			dst[i] = math.NaN()
		}
	}
	return dst
}

// window is the state of a rolling population variance over a fixed number
// of values. It keeps the mean and the sum of squared deviations of the
// values shifted by a reference k (Welford's update, replacing the oldest
// value by the newest). Shifting by a recent mean keeps the arithmetic at
// the scale of the spread rather than of the level, and the state is
// recomputed exactly (two passes):
//   - as soon as m2 has fallen below 1e-4 of its peak since the last
//     recomputation: removing a value far larger than the remaining spread
//     (a regime jump leaving the window) cancels the digits a running
//     update keeps;
//   - when the level has drifted more than 1000 standard deviations from
//     the shift (checked once n replacements have passed), which would
//     bring back the cancellation the shift avoids;
//   - every 16·n replacements in any case, so that rounding cannot
//     accumulate.
//
// On ordinary series that is one O(n) recomputation per 16·n points, so
// the window costs amortised O(1) per point.
type window struct {
	n     float64 // number of values
	inv   float64 // 1/n
	k     float64 // shift
	mean  float64 // mean of (x − k)
	m2    float64 // Σ (x − mean)²
	peak  float64 // largest m2 since the last recomputation
	moves int     // replacements since the last recomputation
}

// stale reports whether the running state must be recomputed exactly.
func (w *window) stale(period int) bool {
	return w.m2 < w.peak*1e-4 ||
		w.moves >= period && (w.moves >= 16*period || w.mean*w.mean*w.n > 1e6*w.m2)
}

// replace slides the window: old leaves, v enters.
func (w *window) replace(old, v float64) {
	yo, y := old-w.k, v-w.k
	d := y - yo
	mean := w.mean + d*w.inv
	w.m2 += d * (y - mean + yo - w.mean)
	w.mean = mean
	w.peak = max(w.peak, w.m2)
	w.moves++
}

// sd returns the population standard deviation.
func (w *window) sd() float64 {
	if w.m2 <= 0 {
		return 0
	}
	return math.Sqrt(w.m2 * w.inv)
}

// StdDev writes the rolling population standard deviation of the last
// period values into dst (reusing its capacity) and returns it. A
// non-finite value is an absent point (NaN in the output, not counted in
// any window); the output is NaN until period values have been seen.
func StdDev(dst, values []float64, period int) []float64 {
	checkPeriod("StdDev", period)
	dst = resize(dst, len(values))
	w := window{n: float64(period), inv: 1 / float64(period)}
	lo := -1 // index of the oldest value in the window
	seen := 0
	for i, v := range values {
		if !isValue(v) {
			dst[i] = math.NaN()
			continue
		}
		if lo < 0 {
			lo = i
		}
		if seen < period {
			seen++
			if seen < period {
				dst[i] = math.NaN()
				continue
			}
			w.recomputeValues(values[lo : i+1])
		} else {
			old := values[lo]
			for lo++; !isValue(values[lo]); lo++ {
			}
			w.replace(old, v)
			if w.stale(period) {
				w.recomputeValues(values[lo : i+1])
			}
		}
		dst[i] = w.sd()
	}
	return dst
}

// recomputeValues resets w exactly from the window's values (non-finite
// entries skipped), with the corrected two-pass algorithm.
func (w *window) recomputeValues(vs []float64) {
	var sum float64
	for _, v := range vs {
		if isValue(v) {
			sum += v
		}
	}
	w.k = sum / w.n
	var s, ss float64
	for _, v := range vs {
		if isValue(v) {
			y := v - w.k
			s += y
			ss += y * y
		}
	}
	w.mean = s / w.n
	w.m2 = ss - s*w.mean
	w.peak = w.m2
	w.moves = 0
}

// Volatility writes the realised volatility of closes into dst (reusing its
// capacity) and returns it: the population standard deviation of the last
// period simple returns (close/previous close − 1) times √annualization.
// Tulip's volatility uses 252 (trading days); crypto trades every day, so
// Tokenlysis uses 365.
//
// A close that is not a positive finite number is an absent point (NaN in
// the output; the next return is taken from the previous valid close). The
// output is NaN until period returns (period+1 valid closes) have been
// seen. Volatility panics when period < 1 or annualization is not a
// positive finite number.
func Volatility(dst, closes []float64, period int, annualization float64) []float64 {
	checkPeriod("Volatility", period)
	checkAnnualization(annualization)
	dst = resize(dst, len(closes))
	var stack [64]float64
	st := newVolatility(period, annualization, ringFor(stack[:], period))
	for i, c := range closes {
		if isPrice(c) {
			dst[i] = st.next(c)
		} else {
			dst[i] = math.NaN()
		}
	}
	return dst
}

// checkAnnualization panics unless a is a positive finite number.
func checkAnnualization(a float64) {
	if !isPrice(a) {
		panic(fmt.Sprintf("indicator.Volatility: annualization %v is not a positive number", a))
	}
}

// VolumeChange writes the day-over-day volume change (v_t − v_{t−1})/v_{t−1}
// into dst (reusing its capacity) and returns it. The previous point is the
// previous element of volumes: on per-asset observations that is the
// previous observation, on a day-aligned column the previous day. The value
// is NaN when the previous volume is missing (non-finite or negative) or 0,
// or when the current volume is missing; index 0 is always NaN.
func VolumeChange(dst, volumes []float64) []float64 {
	dst = resize(dst, len(volumes))
	prev := math.NaN()
	for i, v := range volumes {
		if prev > 0 && prev <= math.MaxFloat64 && v >= 0 && v <= math.MaxFloat64 {
			dst[i] = (v - prev) / prev
		} else {
			dst[i] = math.NaN()
		}
		prev = v
	}
	return dst
}

// Momentum writes close_t/close_{t−n} − 1 over n observations into dst
// (reusing its capacity) and returns it. A close that is not a positive
// finite number is an absent point (NaN in the output, not counted); the
// output is NaN until n+1 valid closes have been seen.
func Momentum(dst, closes []float64, n int) []float64 {
	checkPeriod("Momentum", n)
	dst = resize(dst, len(closes))
	st := newMomentum(closes, n)
	for i, c := range closes {
		if isPrice(c) {
			dst[i] = st.next(i, c)
		} else {
			dst[i] = math.NaN()
		}
	}
	return dst
}

// Drawdown writes the running maximum drawdown of closes into dst (reusing
// its capacity) and returns it: at each point, the largest fall so far from
// a previous peak, as a positive fraction (0.25 = 25 % below the peak). A
// close that is not a positive finite number is an absent point (NaN in the
// output); the first valid close has drawdown 0.
func Drawdown(dst, closes []float64) []float64 {
	dst = resize(dst, len(closes))
	var st drawdownState
	for i, c := range closes {
		if isPrice(c) {
			dst[i] = st.next(c)
		} else {
			dst[i] = math.NaN()
		}
	}
	return dst
}

// MaxDrawdown returns the maximum drawdown over all of closes (the last
// value of Drawdown), or NaN when closes holds no valid price.
func MaxDrawdown(closes []float64) float64 {
	var st drawdownState
	dd := math.NaN()
	for _, c := range closes {
		if isPrice(c) {
			dd = st.next(c)
		}
	}
	return dd
}
