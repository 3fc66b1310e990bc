package latency

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []time.Duration{5}, Summary{N: 1, Mean: 5, P50: 5, P95: 5, P99: 5, Max: 5}},
		{"hundred", hundred(), Summary{N: 100, Mean: 50, P50: 50, P95: 95, P99: 99, Max: 100}},
		{"unsorted", []time.Duration{3, 1, 2, 4}, Summary{N: 4, Mean: 2, P50: 2, P95: 4, P99: 4, Max: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.in); got != tt.want {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// hundred returns 100..1, so that the mean is 50 (integer division of 5050).
func hundred() []time.Duration {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100 - i)
	}
	return ds
}
