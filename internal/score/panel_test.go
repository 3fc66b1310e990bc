package score_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/score"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// randomPanel returns nAssets aligned input columns of nDays, with gaps
// (NaN) and some assets listed late.
func randomPanel(seed uint64, nAssets, nDays int) []score.Inputs {
	r := rand.New(rand.NewPCG(seed, 7))
	assets := make([]score.Inputs, nAssets)
	for a := range assets {
		in := score.Inputs{
			Volume:       make([]float64, nDays),
			MarketCap:    make([]float64, nDays),
			Listings:     make([]float64, nDays),
			RSI:          make([]float64, nDays),
			VolumeChange: make([]float64, nDays),
		}
		start := r.IntN(nDays / 2)
		for d := range nDays {
			if d < start || r.IntN(20) == 0 {
				in.Volume[d], in.MarketCap[d], in.Listings[d], in.RSI[d], in.VolumeChange[d] = nan, nan, nan, nan, nan
				continue
			}
			in.Volume[d] = math.Pow(10, 3+6*r.Float64())
			in.MarketCap[d] = math.Pow(10, 5+7*r.Float64())
			if r.IntN(10) == 0 {
				in.MarketCap[d] = 0 // CoinGecko's zero market caps
			}
			in.Listings[d] = float64(r.IntN(60))
			in.RSI[d] = 100 * r.Float64()
			in.VolumeChange[d] = r.NormFloat64()
		}
		assets[a] = in
	}
	return assets
}

// TestScorer_Panel checks that the panel scores of every asset and day equal
// the cross-sectional scores of that day (Day on the day's column). 45
// assets (not a multiple of the 8 moved at once) over 300 days (more than
// one block of days) exercise every path of the transposition.
func TestScorer_Panel(t *testing.T) {
	const nAssets, nDays = 45, 300
	assets := randomPanel(1, nAssets, nDays)
	assets[3].Listings = nil // a nil column is missing everywhere
	var s score.Scorer
	got, err := s.Panel(nil, assets, nDays)
	if err != nil {
		t.Fatalf("Panel: %v", err)
	}
	if len(got) != nAssets {
		t.Fatalf("Panel returned %d assets, want %d", len(got), nAssets)
	}
	var day score.Scores
	column := func(f func(score.Inputs) []float64, d int) []float64 {
		out := make([]float64, nAssets)
		for a, in := range assets {
			if c := f(in); c != nil {
				out[a] = c[d]
			} else {
				out[a] = nan
			}
		}
		return out
	}
	present := 0
	for d := range nDays {
		in := score.Inputs{
			Volume:       column(func(in score.Inputs) []float64 { return in.Volume }, d),
			MarketCap:    column(func(in score.Inputs) []float64 { return in.MarketCap }, d),
			Listings:     column(func(in score.Inputs) []float64 { return in.Listings }, d),
			RSI:          column(func(in score.Inputs) []float64 { return in.RSI }, d),
			VolumeChange: column(func(in score.Inputs) []float64 { return in.VolumeChange }, d),
		}
		if err := s.Day(&day, in); err != nil {
			t.Fatalf("Day %d: %v", d, err)
		}
		for a := range assets {
			for _, c := range []struct {
				name      string
				got, want float64
			}{
				{"Liquidity", got[a].Liquidity[d], day.Liquidity[a]},
				{"Opportunity", got[a].Opportunity[d], day.Opportunity[a]},
				{"Global", got[a].Global[d], day.Global[a]},
			} {
				if math.IsNaN(c.want) && math.IsNaN(c.got) {
					continue
				}
				present++
				if c.got != c.want {
					t.Fatalf("asset %d day %d %s = %v, Day gives %v", a, d, c.name, c.got, c.want)
				}
			}
		}
	}
	if present < nAssets*nDays {
		t.Fatalf("only %d present scores: the panel is too sparse to test anything", present)
	}

	// A used panel is recomputed without allocating.
	if a := testing.AllocsPerRun(3, func() { got, _ = s.Panel(got, assets, nDays) }); a != 0 {
		t.Errorf("Panel into used buffers: %v allocations per run, want 0", a)
	}
}

// TestScorer_PanelDays splits the days between two goroutines, each with
// its own Scorer, and expects the same scores as one Panel call.
func TestScorer_PanelDays(t *testing.T) {
	t.Parallel()
	const nAssets, nDays = 30, 50
	assets := randomPanel(2, nAssets, nDays)
	var s score.Scorer
	want, err := s.Panel(nil, assets, nDays)
	if err != nil {
		t.Fatalf("Panel: %v", err)
	}
	got := score.NewPanelScores(nil, nAssets, nDays)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for w, r := range [][2]int{{0, 20}, {20, nDays}} {
		wg.Go(func() {
			var s score.Scorer
			errs[w] = s.PanelDays(got, assets, r[0], r[1])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("PanelDays: %v", err)
		}
	}
	for a := range assets {
		assertColumn(t, "Liquidity", got[a].Liquidity, want[a].Liquidity)
		assertColumn(t, "Opportunity", got[a].Opportunity, want[a].Opportunity)
		assertColumn(t, "Global", got[a].Global, want[a].Global)
	}
}

func TestScorer_PanelErrors(t *testing.T) {
	t.Parallel()
	assets := randomPanel(3, 3, 10)
	var s score.Scorer

	short := append([]score.Inputs(nil), assets...)
	short[1].RSI = short[1].RSI[:9]
	_, err := s.Panel(nil, short, 10)
	if code, field := tokenlysis.ErrorCode(err), tokenlysis.ErrorField(err); code != tokenlysis.EINVALID || field != "rsi" {
		t.Errorf("Panel with a short column: error %v (code %q, field %q), want invalid rsi", err, code, field)
	}

	dst := score.NewPanelScores(nil, 3, 10)
	for _, r := range [][2]int{{-1, 5}, {5, 11}, {6, 5}} {
		err := s.PanelDays(dst, assets, r[0], r[1])
		if code := tokenlysis.ErrorCode(err); code != tokenlysis.EINVALID {
			t.Errorf("PanelDays(%d, %d): error %v, want invalid", r[0], r[1], err)
		}
	}
	if err := s.PanelDays(dst[:2], assets, 0, 10); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("PanelDays with too few score columns: error %v, want invalid", err)
	}
}
