// Package latency summarises latency samples for the benchmark programs:
// count, mean, percentiles and maximum.
package latency

import (
	"fmt"
	"slices"
	"time"
)

// Summary describes a set of latency samples.
type Summary struct {
	N    int
	Mean time.Duration
	P50  time.Duration
	P95  time.Duration
	P99  time.Duration
	Max  time.Duration
}

// Summarize returns the summary of ds, which it sorts in place. Percentiles
// use the nearest-rank method, so P99 of 100 samples is the 99th smallest.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Summary{
		N: len(ds), Mean: sum / time.Duration(len(ds)),
		P50: rank(ds, 50), P95: rank(ds, 95), P99: rank(ds, 99), Max: ds[len(ds)-1],
	}
}

// rank is the nearest-rank percentile p of sorted ds.
func rank(ds []time.Duration, p int) time.Duration {
	i := (p*len(ds) + 99) / 100 // ceil(p/100 × n), 1-based
	return ds[max(i, 1)-1]
}

// String formats the summary in milliseconds.
func (s Summary) String() string {
	return fmt.Sprintf("n=%d p50=%s p95=%s p99=%s max=%s mean=%s",
		s.N, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), ms(s.Mean))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// MS returns d in milliseconds, for tables.
func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
