package score

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// numpyPercentile is numpy.percentile's default ("linear") method on a
// sorted copy: the reference for band.
func numpyPercentile(sorted []float64, q float64) float64 {
	h := float64(len(sorted)-1) * q
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[i]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

func TestBand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		lo, hi float64
	}{
		// n = 5: h5 = 4·0.05 = 0.2 → 0 + 0.2·10 = 2; h95 = 3.8 → 30 + 0.8·10 = 38.
		{"five", []float64{40, 0, 30, 10, 20}, 2, 38},
		// n = 21: h5 = 1, h95 = 19: exact order statistics x₁ and x₁₉.
		{"twenty-one", []float64{20, 0, 19, 1, 18, 2, 17, 3, 16, 4, 15, 5, 14, 6, 13, 7, 12, 8, 11, 9, 10}, 1, 19},
		{"one", []float64{7}, 7, 7},
		// n = 2: h5 = 0.05 → 1 + 0.05·2 = 1.1; h95 = 0.95 → 1 + 0.95·2 = 2.9.
		{"two", []float64{3, 1}, 1.1, 2.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lo, hi := band(slices.Clone(tt.values), false)
			if math.Abs(lo-tt.lo) > 1e-12 || math.Abs(hi-tt.hi) > 1e-12 {
				t.Errorf("band = (%v, %v), want (%v, %v)", lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

// TestBand_Random compares band with sorting on many random sizes, with
// many duplicates.
func TestBand_Random(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		n := 1 + r.IntN(300)
		values := make([]float64, n)
		distinct := 1 + r.IntN(n)
		for i := range values {
			values[i] = float64(r.IntN(distinct)) + r.Float64()*float64(r.IntN(2))
		}
		sorted := slices.Clone(values)
		slices.Sort(sorted)
		lo, hi := band(values, false)
		wantLo, wantHi := numpyPercentile(sorted, 0.05), numpyPercentile(sorted, 0.95)
		if math.Abs(lo-wantLo) > 1e-12 || math.Abs(hi-wantHi) > 1e-12 {
			t.Fatalf("n=%d: band = (%v, %v), want (%v, %v)", n, lo, hi, wantLo, wantHi)
		}
	}
}

// TestScorer_BandBracketed scores a drifting universe day after day (with a
// crash day and a universe that changes size) and expects every band to be
// exactly band's, most of them found by the one-pass bracketed selection.
func TestScorer_BandBracketed(t *testing.T) {
	t.Parallel()
	for _, comp := range []int{compListings, compVolume} {
		t.Run(map[int]string{compListings: "linear", compVolume: "log10"}[comp], func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(11, 12))
			const n, days = 1000, 400
			level := make([]float64, n)
			for i := range level {
				level[i] = 3 + 6*r.Float64()
			}
			var s Scorer
			col := make([]float64, n)
			for d := range days {
				shift := 0.0
				if d == 200 {
					shift = -2 // a market-wide crash: the brackets miss
				}
				for i := range level {
					level[i] += shift + 0.1*r.NormFloat64()
					col[i] = level[i]
					if logScaled(comp) {
						col[i] = math.Pow(10, level[i])
					}
					if r.IntN(10) == 0 || (d > 300 && i%3 == 0) {
						col[i] = math.NaN()
					}
				}
				var present []float64
				for _, x := range col {
					if !math.IsNaN(x) {
						present = append(present, x)
					}
				}
				wantLo, wantHi := band(present, logScaled(comp))
				b := s.band(col, comp)
				if !b.ok || b.lo != wantLo || b.hi != wantHi {
					t.Fatalf("day %d: band = %+v, want (%v, %v)", d, b, wantLo, wantHi)
				}
			}
			if s.stats.bracketed < days*8/10 {
				t.Errorf("%d of %d bands bracketed (%d in full), want most", s.stats.bracketed, days, s.stats.full)
			}
			t.Logf("%d bands bracketed, %d in full", s.stats.bracketed, s.stats.full)
		})
	}
}
