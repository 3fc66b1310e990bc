package score

// Percentile bounds of the normalisation band.
const (
	LowPercentile  = 5
	HighPercentile = 95
)

// band returns the 5th and 95th percentiles of values, with numpy's default
// ("linear") interpolation: for the sorted values x₀…x₍ₙ₋₁₎ and q in [0,1],
// h = (n−1)·q and the percentile is x⌊h⌋ + (h−⌊h⌋)·(x⌊h⌋₊₁ − x⌊h⌋). With
// logScale the percentiles are those of log10(values): log10 is increasing,
// so the order statistics are found on the values themselves and only the
// four that are used are taken to log10 before interpolating.
//
// values must be non-empty and hold no NaN (and only positive numbers with
// logScale); band reorders them. It finds the four order statistics it
// needs by selection (expected O(n)), not by sorting.
func band(values []float64, logScale bool) (lo, hi float64) {
	n := len(values)
	h5 := float64(n-1) * (LowPercentile / 100.0)
	h95 := float64(n-1) * (HighPercentile / 100.0)
	i5, i95 := int(h5), int(h95)

	x5 := selectK(values, i5) // values[:i5] ≤ x5 ≤ values[i5+1:]
	rest := values[i5+1:]
	if len(rest) == 0 { // n == 1
		lo = scaled(x5, logScale)
		return lo, lo
	}
	y5 := minOf(rest) // the order statistic after x5
	lo = interpolate(x5, y5, h5-float64(i5), logScale)

	k := i95 - (i5 + 1) // i95's position within rest
	if k < 0 {
		// i95 == i5 (n ≤ 2, or a tiny n where both fall in one gap).
		return lo, interpolate(x5, y5, h95-float64(i95), logScale)
	}
	x95 := selectK(rest, k)
	if k+1 >= len(rest) {
		return lo, scaled(x95, logScale)
	}
	return lo, interpolate(x95, minOf(rest[k+1:]), h95-float64(i95), logScale)
}

// scaled returns log10(x) with logScale, x otherwise.
func scaled(x float64, logScale bool) float64 {
	if logScale {
		return log10(x)
	}
	return x
}

// interpolate returns lerp of the (scaled) order statistics a ≤ b.
func interpolate(a, b, t float64, logScale bool) float64 {
	return lerp(scaled(a, logScale), scaled(b, logScale), t)
}

// lerp interpolates between a and b as numpy does (numpy's _lerp), exact
// at both ends.
func lerp(a, b, t float64) float64 {
	d := b - a
	if t >= 0.5 {
		return b - d*(1-t)
	}
	return a + d*t
}

// minOf returns the smallest of the non-empty values.
func minOf(values []float64) float64 {
	m := values[0]
	for _, v := range values[1:] {
		m = min(m, v)
	}
	return m
}

// selectK reorders values so that values[k] is the k-th smallest (from 0),
// values[:k] ≤ values[k] ≤ values[k+1:], and returns it: Hoare's selection
// with a median-of-three pivot, insertion sort on small ranges.
func selectK(values []float64, k int) float64 {
	l, r := 0, len(values)-1
	for r-l > 16 {
		// Median of three, which also places sentinels at l and r.
		m := l + (r-l)/2
		if values[m] < values[l] {
			values[m], values[l] = values[l], values[m]
		}
		if values[r] < values[l] {
			values[r], values[l] = values[l], values[r]
		}
		if values[r] < values[m] {
			values[r], values[m] = values[m], values[r]
		}
		pivot := values[m]
		i, j := l, r
		for i <= j {
			for values[i] < pivot {
				i++
			}
			for pivot < values[j] {
				j--
			}
			if i <= j {
				values[i], values[j] = values[j], values[i]
				i++
				j--
			}
		}
		// Now values[l..j] ≤ pivot ≤ values[i..r], and values[j+1..i-1]
		// (if any) equal the pivot.
		switch {
		case k <= j:
			r = j
		case k >= i:
			l = i
		default:
			return values[k]
		}
	}
	for i := l + 1; i <= r; i++ {
		v := values[i]
		j := i
		for ; j > l && values[j-1] > v; j-- {
			values[j] = values[j-1]
		}
		values[j] = v
	}
	return values[k]
}
