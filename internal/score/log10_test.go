package score

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestLog10(t *testing.T) {
	t.Parallel()
	for _, v := range []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := log10(v); !math.IsNaN(got) {
			t.Errorf("log10(%v) = %v, want NaN", v, got)
		}
	}
	check := func(v float64) {
		t.Helper()
		got, want := log10(v), math.Log10(v)
		if d := math.Abs(got - want); !(d <= 4e-15*max(1, math.Abs(want))) {
			t.Fatalf("log10(%v) = %.17g, math.Log10 = %.17g (diff %.3g)", v, got, want, d)
		}
	}
	for _, v := range []float64{1, 10, 1000, 1e12, 2, 0.5, math.SmallestNonzeroFloat64, 5e-324 * 3,
		2.2250738585072014e-308, math.MaxFloat64, 1 + 1.0/512, 1 - 1e-16, math.Nextafter(2, 0)} {
		check(v)
	}
	r := rand.New(rand.NewPCG(13, 14))
	for range 200_000 {
		check(math.Pow(10, -300+600*r.Float64()))
		check(1 + r.Float64()) // every mantissa interval, densely
	}
}

func BenchmarkLog10(b *testing.B) {
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = math.Pow(10, 3+9*float64(i)/1000)
	}
	var sink float64
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				sink += log10(x)
			}
		}
	})
	b.Run("math", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				sink += math.Log10(x)
			}
		}
	})
	_ = sink
}
