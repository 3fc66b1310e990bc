package coingecko

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkDaily turns a chart the size of Bitcoin's "max" history (about
// 4,300 daily points plus the current one) into daily rows.
func BenchmarkDaily(b *testing.B) {
	const days = 4300
	start := time.Date(2013, 4, 28, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ch Chart
	for i := range days + 1 {
		ts := start + int64(i)*dayMS
		if i == days {
			ts -= dayMS - 15*int64(time.Hour/time.Millisecond) // the current point
		}
		v := rand.Float64() * 1e5
		ch.Prices = append(ch.Prices, Point{ts, v})
		ch.MarketCaps = append(ch.MarketCaps, Point{ts, v * 19e6})
		ch.Volumes = append(ch.Volumes, Point{ts, v * 3e5})
	}
	b.ReportAllocs()
	var rows []DailyRow
	for b.Loop() {
		rows = ch.Daily()
	}
	if len(rows) != days {
		b.Fatalf("got %d rows, want %d", len(rows), days)
	}
	b.ReportMetric(float64(days)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRedisBudgetSpend reserves one call at a time in the test Redis.
func BenchmarkRedisBudgetSpend(b *testing.B) {
	rdb := testRedis(b)
	budget := NewRedisBudget(rdb, testPrefix(b, rdb))
	for b.Loop() {
		if ok, _, err := budget.Spend(b.Context(), "2026-11", 1, 1<<40); err != nil || !ok {
			b.Fatalf("Spend: %v %v", ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "spends/s")
}

// BenchmarkMarketsPage fetches and decodes a full page of 250 markets from a
// local server through the whole client (budget in Redis, rate limiter,
// retry layer).
func BenchmarkMarketsPage(b *testing.B) {
	bundle := setup(b, Config{MonthlyBudget: Unlimited}, 250)
	for b.Loop() {
		ms, err := bundle.client.Markets(b.Context(), 1, 250)
		if err != nil || len(ms) != 250 {
			b.Fatalf("Markets: %d, %v", len(ms), err)
		}
	}
	b.ReportMetric(250*float64(b.N)/b.Elapsed().Seconds(), "markets/s")
}
