package score_test

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
	"github.com/tokenlysis/tokenlysis/internal/score"
)

// recomputeInput is a deterministic synthetic history: nAssets assets on a
// common index of nDays days, each price a seeded geometric random walk,
// some assets listed during the period, a few missing days (NaN).
type recomputeInput struct {
	nAssets, nDays                  int
	closes, volumes, caps, listings [][]float64
}

func newRecomputeInput(nAssets, nDays int) *recomputeInput {
	r := rand.New(rand.NewPCG(2024, 1))
	in := &recomputeInput{nAssets: nAssets, nDays: nDays}
	for range nAssets {
		closes := make([]float64, nDays)
		volumes := make([]float64, nDays)
		caps := make([]float64, nDays)
		listings := make([]float64, nDays)
		start := 0
		if r.IntN(4) == 0 {
			start = r.IntN(nDays) // listed during the period
		}
		p := math.Pow(10, -8+12*r.Float64())
		supply := math.Pow(10, 6+6*r.Float64())
		// Volume = market cap × turnover, the log turnover an AR(1) around
		// the asset's own level (volumes mean-revert; prices do not).
		turnover := math.Log(0.01 + 0.2*r.Float64())
		lt := 0.0
		lst := float64(1 + r.IntN(80))
		for d := range nDays {
			p *= math.Exp(r.NormFloat64() * 0.04)
			lt = 0.9*lt + 0.3*r.NormFloat64()
			if d < start || r.IntN(200) == 0 {
				closes[d], volumes[d], caps[d], listings[d] = math.NaN(), math.NaN(), math.NaN(), math.NaN()
				continue
			}
			closes[d], caps[d], listings[d] = p, p*supply, lst
			volumes[d] = p * supply * math.Exp(turnover+lt)
		}
		in.closes = append(in.closes, closes)
		in.volumes = append(in.volumes, volumes)
		in.caps = append(in.caps, caps)
		in.listings = append(in.listings, listings)
	}
	return in
}

// recompute holds the reusable buffers of a full recompute: per-asset
// indicator columns (kept, because the day scores need every asset's RSI
// and volume change), the panel's inputs and scores, one Scorer per worker.
type recompute struct {
	in      *recomputeInput
	workers int
	sets    []indicator.Set
	inputs  []score.Inputs
	scores  []score.Scores
	scorers []score.Scorer
}

func newRecompute(in *recomputeInput, workers int) *recompute {
	rc := &recompute{
		in:      in,
		workers: workers,
		sets:    make([]indicator.Set, in.nAssets),
		inputs:  make([]score.Inputs, in.nAssets),
		scores:  score.NewPanelScores(nil, in.nAssets, in.nDays),
		scorers: make([]score.Scorer, workers),
	}
	return rc
}

// indicators computes every asset's indicators, the assets split between
// the workers.
func (rc *recompute) indicators() error {
	var wg sync.WaitGroup
	errs := make([]error, rc.workers)
	for w := range rc.workers {
		wg.Go(func() {
			for a := w; a < rc.in.nAssets; a += rc.workers {
				if err := indicator.Compute(&rc.sets[a], rc.in.closes[a], rc.in.volumes[a], indicator.Config{}); err != nil {
					errs[w] = err
					return
				}
				rc.inputs[a] = score.Inputs{
					Volume:       rc.in.volumes[a],
					MarketCap:    rc.in.caps[a],
					Listings:     rc.in.listings[a],
					RSI:          rc.sets[a].RSI,
					VolumeChange: rc.sets[a].VolumeChange,
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// scores computes every day's scores, the days split between the workers.
func (rc *recompute) dayScores() error {
	var wg sync.WaitGroup
	errs := make([]error, rc.workers)
	per := (rc.in.nDays + rc.workers - 1) / rc.workers
	for w := range rc.workers {
		from, to := min(w*per, rc.in.nDays), min((w+1)*per, rc.in.nDays)
		wg.Go(func() { errs[w] = rc.scorers[w].PanelDays(rc.scores, rc.inputs, from, to) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// cpuTime returns the user+system CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecompute is P4: the full-history recompute of 1,000 assets ×
// 1,826 days (5 years), every indicator (RSI 14, EMA 20, 30-day volatility,
// drawdown, momentum 7 and 30, volume change) plus the daily
// cross-sectional scores. Target: compute alone under 100 ms on 2 cores.
func BenchmarkRecompute(b *testing.B) {
	const nAssets, nDays = 1000, 1826
	in := newRecomputeInput(nAssets, nDays)
	workers := runtime.GOMAXPROCS(0)
	points := float64(nAssets * nDays)

	run := func(b *testing.B, step func(rc *recompute) error) {
		rc := newRecompute(in, workers)
		if err := rc.indicators(); err != nil { // warm the buffers
			b.Fatal(err)
		}
		if err := step(rc); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime(b)
		for b.Loop() {
			if err := step(rc); err != nil {
				b.Fatal(err)
			}
		}
		cpu := cpuTime(b) - cpu0
		b.ReportMetric(points*float64(b.N)/b.Elapsed().Seconds(), "points/s")
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/recompute")
		// CPU time of the process (all threads) per recompute: on a shared
		// machine, wall time includes waiting for a core; CPU time does not.
		// Divided by the cores used it is the wall time of an idle machine.
		b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/recompute")
	}
	b.Run("full", func(b *testing.B) {
		run(b, func(rc *recompute) error {
			if err := rc.indicators(); err != nil {
				return err
			}
			return rc.dayScores()
		})
	})
	b.Run("indicators", func(b *testing.B) { run(b, (*recompute).indicators) })
	b.Run("scores", func(b *testing.B) { run(b, (*recompute).dayScores) })
}

// BenchmarkDay scores one day's universe of 1,000 assets.
func BenchmarkDay(b *testing.B) {
	const n = 1000
	assets := randomPanel(4, n, 2)
	in := score.Inputs{
		Volume: make([]float64, n), MarketCap: make([]float64, n), Listings: make([]float64, n),
		RSI: make([]float64, n), VolumeChange: make([]float64, n),
	}
	for a, x := range assets {
		in.Volume[a], in.MarketCap[a], in.Listings[a] = x.Volume[1], x.MarketCap[1], x.Listings[1]
		in.RSI[a], in.VolumeChange[a] = x.RSI[1], x.VolumeChange[1]
	}
	var s score.Scorer
	var out score.Scores
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Day(&out, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(n*float64(b.N)/b.Elapsed().Seconds(), "assets/s")
}
