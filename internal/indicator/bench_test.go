package indicator_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
)

// pythonRSIPointsPerSec is the throughput of the Python original's RSI on
// this machine (about 2 M points/s), reported as a ratio.
const pythonRSIPointsPerSec = 2e6

// randomWalk returns n deterministic closes (a seeded geometric random walk).
func randomWalk(seed uint64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 42))
	out := make([]float64, n)
	p := 100.0
	for i := range out {
		p *= math.Exp(r.NormFloat64() * 0.04)
		out[i] = p
	}
	return out
}

func BenchmarkRSI(b *testing.B) {
	const days = 1826
	closes := randomWalk(1, days)
	dst := make([]float64, days)
	b.ReportAllocs()
	for b.Loop() {
		dst = indicator.RSI(dst, closes, 14)
	}
	pps := float64(b.N) * days / b.Elapsed().Seconds()
	b.ReportMetric(pps, "points/s")
	b.ReportMetric(pps/pythonRSIPointsPerSec, "x_python")
}

func BenchmarkCompute(b *testing.B) {
	const days = 1826
	closes := randomWalk(2, days)
	volumes := randomWalk(3, days)
	var set indicator.Set
	b.ReportAllocs()
	for b.Loop() {
		if err := indicator.Compute(&set, closes, volumes, indicator.Config{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*days/b.Elapsed().Seconds(), "points/s")
}
