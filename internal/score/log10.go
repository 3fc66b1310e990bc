package score

import "math"

// log10 returns log10(v) for a positive finite v, NaN otherwise.
//
// The panel takes two logarithms per asset and day (3.6 million for 1,000
// assets × 5 years), and math.Log10 is then a third of the scoring time.
// This version splits v = 2^e·m (m in [1, 2)), divides m by the centre c of
// its 1/256-wide interval (a table lookup: m·(1/c) = 1 + r with |r| ≤
// 1/512) and sums e·log10(2) − log10(1/c) + log1p(r)/ln(10), log1p by a
// degree-5 series whose truncation error is below 1e-17. It agrees with
// math.Log10 to about 1e-15 (see TestLog10), far below what a score
// resolves.
func log10(v float64) float64 {
	if !(v > 0 && v <= math.MaxFloat64) {
		return math.NaN()
	}
	bits := math.Float64bits(v)
	exp := int(bits >> 52) // the sign bit is 0
	if exp == 0 {
		return math.Log10(v) // subnormal
	}
	k := bits >> 44 & 0xff
	m := math.Float64frombits(bits&(1<<52-1) | 1023<<52)
	t := &log10Table[k]
	r := m*t.inv - 1
	p := r * (1 + r*(-1.0/2+r*(1.0/3+r*(-1.0/4+r*(1.0/5)))))
	return float64(exp-1023)*(math.Ln2/math.Ln10) + t.log10c + p*(1/math.Ln10)
}

// log10Table holds, for each of the 256 intervals [1+k/256, 1+(k+1)/256),
// the reciprocal of its centre c (rounded) and log10 of 1/inv (so that the
// rounding of inv cancels out). Read-only after initialisation.
var log10Table = func() (t [256]struct{ inv, log10c float64 }) {
	for k := range t {
		c := 1 + (float64(k)+0.5)/256
		t[k].inv = 1 / c
		t[k].log10c = -math.Log10(t[k].inv)
	}
	return t
}()
