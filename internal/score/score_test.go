package score_test

import (
	"math"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/score"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

var nan = math.NaN()

// assertColumn fails unless got and want have the same length, NaN at the
// same places and other values within 1e-9.
func assertColumn(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len = %d, want %d", name, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if math.IsNaN(g) && math.IsNaN(w) {
			continue
		}
		if math.IsNaN(g) || math.IsNaN(w) || !(math.Abs(g-w) <= 1e-9) {
			t.Errorf("%s[%d] = %.12g, want %.12g", name, i, g, w)
		}
	}
}

func TestScorer_Day(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   score.Inputs
		want score.Scores
	}{
		{
			// Five assets. log10 volume 0..4: p5 = 0 + 0.2·1 = 0.2, p95 =
			// 3 + 0.8·1 = 3.8, so 0 → 0, 1 → 0.8/3.6 = 2/9 → 22.2, 2 → 50,
			// 3 → 7/9 → 77.8, 4 → 100. Market cap in reverse: 100, 77.8,
			// 50, 22.2, 0. Listings 0..40: p5 = 2, p95 = 38 → 0, 8/36 =
			// 2/9, 50, 7/9, 100.
			// Liquidity = 0.45·vol + 0.35·cap + 0.20·listings:
			//   a0 = 0.35·100 = 35
			//   a1 = 0.65·200/9 + 0.35·700/9 = (130+245)/9 = 375/9
			//   a2 = 50
			//   a3 = 0.65·700/9 + 0.35·200/9 = (455+70)/9 = 525/9
			//   a4 = 0.65·100 = 65
			// No RSI: opportunity is missing and global = liquidity.
			name: "liquidity, every component present",
			in: score.Inputs{
				Volume:    []float64{1, 10, 100, 1000, 10000},
				MarketCap: []float64{1e4, 1e3, 1e2, 1e1, 1},
				Listings:  []float64{0, 10, 20, 30, 40},
			},
			want: score.Scores{
				Liquidity:   []float64{35, 375.0 / 9, 50, 525.0 / 9, 65},
				Opportunity: []float64{nan, nan, nan, nan, nan},
				Global:      []float64{35, 375.0 / 9, 50, 525.0 / 9, 65},
			},
		},
		{
			// Volume 10^{0,2,4}: n = 3, p5 = 0 + 0.1·2 = 0.2, p95 = 2 +
			// 0.9·2 = 3.8 → 0, 50, 100. Market cap only for a1: one value,
			// p5 = p95 → 50. Listings 4, 0, 2: p5 = 0.2, p95 = 3.8 → 100,
			// 0, 50. Weights renormalised over the present components:
			//   a0 = (0.45·0 + 0.20·100)/0.65 = 20/0.65
			//   a1 = 0.45·50 + 0.35·50 + 0.20·0 = 40
			//   a2 = (0.45·100 + 0.20·50)/0.65 = 55/0.65
			// a3 has no valid component (volume ≤ 0, market cap 0): NaN,
			// and its values are not part of any universe.
			name: "liquidity renormalises over present components",
			in: score.Inputs{
				Volume:    []float64{1, 100, 10000, -5},
				MarketCap: []float64{nan, 10, nan, 0},
				Listings:  []float64{4, 0, 2, nan},
			},
			want: score.Scores{
				Liquidity:   []float64{20 / 0.65, 40, 55 / 0.65, nan},
				Opportunity: []float64{nan, nan, nan, nan},
				Global:      []float64{20 / 0.65, 40, 55 / 0.65, nan},
			},
		},
		{
			// Every present volume equal (a2's is missing) and every
			// listing equal: p5 == p95, and a value equal to the band
			// scores 50, so every liquidity is 50.
			name: "constant universe scores 50",
			in: score.Inputs{
				Volume:   []float64{5, 5, nan, 5},
				Listings: []float64{3, 3, 3, 3},
			},
			want: score.Scores{
				Liquidity:   []float64{50, 50, 50, 50},
				Opportunity: []float64{nan, nan, nan, nan},
				Global:      []float64{50, 50, 50, 50},
			},
		},
		{
			// RSI term clamp((70−RSI)/40, 0, 1): 30 → 1, 50 → 0.5, 70 → 0,
			// 90 → 0, 10 → 1. Volume change universe {0,1,2,3,4} (a5's is
			// missing): p5 = 0.2, p95 = 3.8 → 0, 2/9, 1/2, 7/9, 1.
			// Opportunity = 100·(0.6·rsi + 0.4·vc):
			//   a0 = 60; a1 = 30 + 40·2/9 = 30 + 80/9; a2 = 20;
			//   a3 = 40·7/9 = 280/9; a4: RSI missing → NaN;
			//   a5: volume change missing → RSI term alone: 100.
			// Liquidity: volumes 10^{0..5} (n = 6, p5 = 0.25, p95 = 4.75)
			// → 0, 0.75/4.5 = 1/6, 1.75/4.5 = 7/18, 11/18, 5/6, 1; times 100.
			// Global = mean of the two, or the one present.
			name: "opportunity and global",
			in: score.Inputs{
				Volume:       []float64{1, 10, 100, 1000, 10000, 100000},
				RSI:          []float64{30, 50, 70, 90, nan, 10},
				VolumeChange: []float64{0, 1, 2, 3, 4, nan},
			},
			want: score.Scores{
				Liquidity:   []float64{0, 100.0 / 6, 700.0 / 18, 1100.0 / 18, 500.0 / 6, 100},
				Opportunity: []float64{60, 30 + 80.0/9, 20, 280.0 / 9, nan, 100},
				Global: []float64{(0 + 60) / 2.0, (100.0/6 + 30 + 80.0/9) / 2, (700.0/18 + 20) / 2,
					(1100.0/18 + 280.0/9) / 2, 500.0 / 6, (100 + 100) / 2.0},
			},
		},
		{
			// Values below p5 clamp to 0 and above p95 to 100: 21 volume
			// changes −10, 1..19, 1000: n = 21, h5 = 20·0.05 = 1 → p5 =
			// x₁ = 1, h95 = 19 → p95 = x₁₉ = 19. The RSI term is 0 (RSI
			// 70), so opportunity = 40·norm: −10 → 0, 1 → 0, 10 → 40·9/18
			// = 20, 19 → 40, 1000 → 40.
			name: "clamped outside the p5–p95 band",
			in: func() score.Inputs {
				vc := []float64{-10, 1000}
				for v := 1; v <= 19; v++ {
					vc = append(vc, float64(v))
				}
				rsi := make([]float64, len(vc))
				for i := range rsi {
					rsi[i] = 70
				}
				return score.Inputs{RSI: rsi, VolumeChange: vc}
			}(),
			want: func() score.Scores {
				opp := []float64{0, 40}
				for v := 1; v <= 19; v++ {
					opp = append(opp, 40*float64(v-1)/18)
				}
				liq := make([]float64, len(opp))
				for i := range liq {
					liq[i] = nan
				}
				return score.Scores{Liquidity: liq, Opportunity: opp, Global: opp}
			}(),
		},
		{
			name: "empty universe",
			in:   score.Inputs{},
			want: score.Scores{Liquidity: []float64{}, Opportunity: []float64{}, Global: []float64{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s score.Scorer
			var got score.Scores
			if err := s.Day(&got, tt.in); err != nil {
				t.Fatalf("Day: %v", err)
			}
			assertColumn(t, "Liquidity", got.Liquidity, tt.want.Liquidity)
			assertColumn(t, "Opportunity", got.Opportunity, tt.want.Opportunity)
			assertColumn(t, "Global", got.Global, tt.want.Global)
		})
	}
}

// TestScorer_DayBand pins the rule for a degenerate band (p5 == p95) with
// values on both sides: many equal values and two outliers. n = 41 log10
// volumes {0, 1×39, 2}: h5 = 40·0.05 = 2 → p5 = 1, h95 = 38 → p95 = 1.
// Equal to the band → 50, below → 0, above → 100.
func TestScorer_DayBand(t *testing.T) {
	t.Parallel()
	vol := []float64{1, 100}
	want := []float64{0, 100}
	for range 39 {
		vol = append(vol, 10)
		want = append(want, 50)
	}
	var s score.Scorer
	var got score.Scores
	if err := s.Day(&got, score.Inputs{Volume: vol}); err != nil {
		t.Fatalf("Day: %v", err)
	}
	assertColumn(t, "Liquidity", got.Liquidity, want)
}

func TestScorer_DayErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    score.Inputs
		field string
	}{
		{"market cap", score.Inputs{Volume: []float64{1, 2}, MarketCap: []float64{1}}, "market_cap"},
		{"listings", score.Inputs{Volume: []float64{1}, Listings: []float64{1, 2}}, "listings"},
		{"rsi", score.Inputs{Volume: []float64{1, 2, 3}, RSI: []float64{1, 2}}, "rsi"},
		{"volume change", score.Inputs{RSI: []float64{1}, VolumeChange: []float64{1, 2}}, "volume_change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s score.Scorer
			var got score.Scores
			err := s.Day(&got, tt.in)
			if code := tokenlysis.ErrorCode(err); code != tokenlysis.EINVALID {
				t.Fatalf("Day error = %v (code %q), want %q", err, code, tokenlysis.EINVALID)
			}
			if f := tokenlysis.ErrorField(err); f != tt.field {
				t.Errorf("error field = %q, want %q", f, tt.field)
			}
		})
	}
}
