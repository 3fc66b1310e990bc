package indicator_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

var nan = math.NaN()

func TestRSI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		closes []float64
		period int
		want   []float64
	}{
		{"empty", nil, 2, []float64{}},
		{"not enough history", []float64{1, 2}, 2, []float64{nan, nan}},
		// Changes +1, -1, +2. At 2: gain (1+0)/2 = 0.5, loss (0+1)/2 = 0.5
		// → 50. At 3: gain (0.5·1+2)/2 = 1.25, loss (0.5·1+0)/2 = 0.25 →
		// 100·1.25/1.5 = 83.33….
		{"wilder by hand", []float64{10, 11, 10, 12}, 2, []float64{nan, nan, 50, 100 * 1.25 / 1.5}},
		// The same observations with a gap (NaN) and an invalid price (0)
		// in between: both are absent points, NaN in the output.
		{"absent points", []float64{10, nan, 11, 10, 0, 12}, 2, []float64{nan, nan, nan, 50, nan, 100 * 1.25 / 1.5}},
		{"only gains", []float64{1, 2, 3, 4}, 2, []float64{nan, nan, 100, 100}},
		{"only losses", []float64{4, 3, 2, 1}, 2, []float64{nan, nan, 0, 0}},
		// TA-Lib writes 0 when average gain + average loss is zero. At 3:
		// gain (0·1+1)/2 = 0.5, loss 0 → 100.
		{"flat like TA-Lib", []float64{5, 5, 5, 6}, 2, []float64{nan, nan, 0, 100}},
		// Period 1: each value is the last change alone.
		{"period 1", []float64{1, 2, 1, 1}, 1, []float64{nan, 100, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, indicator.RSI(nil, tt.closes, tt.period), tt.want, 1e-12)
		})
	}
}

func TestEMA(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		period int
		want   []float64
	}{
		{"not enough history", []float64{1, 2}, 3, []float64{nan, nan}},
		// k = 2/(3+1) = 0.5. Seed SMA(1,2,3) = 2; then 2+0.5·(4−2) = 3;
		// NaN is absent; then 3+0.5·(8−3) = 5.5.
		{"by hand", []float64{1, 2, 3, 4, nan, 8}, 3, []float64{nan, nan, 2, 3, nan, 5.5}},
		{"negative values are values", []float64{-3, -3, -3, -1}, 3, []float64{nan, nan, -3, -2}},
		{"infinity is absent", []float64{1, math.Inf(1), 3}, 2, []float64{nan, nan, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, indicator.EMA(nil, tt.values, tt.period), tt.want, 1e-12)
		})
	}
}

func TestStdDev(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		period int
		want   []float64
	}{
		{"not enough history", []float64{1, 2}, 3, []float64{nan, nan}},
		// {2,4,6}: mean 4, squares 4+0+4 = 8, /3 → √(8/3); {4,6,8} the
		// same; NaN absent; {6,8,3}: mean 17/3, squares 1/9+49/9+64/9 =
		// 114/9, /3 → √(38/9).
		{"by hand", []float64{2, 4, 6, 8, nan, 3}, 3, []float64{nan, nan, math.Sqrt(8.0 / 3), math.Sqrt(8.0 / 3), nan, math.Sqrt(38.0 / 9)}},
		{"constant is exactly zero", []float64{7, 7, 7, 7, 7}, 3, []float64{nan, nan, 0, 0, 0}},
		{"period 1", []float64{3, nan, 5}, 1, []float64{0, nan, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := indicator.StdDev(nil, tt.values, tt.period)
			assertSeries(t, got, tt.want, 1e-12)
			for i, w := range tt.want {
				if w == 0 && got[i] != 0 {
					t.Errorf("[%d] = %g, want exactly 0", i, got[i])
				}
			}
		})
	}
}

// TestStdDev_Precision runs a long series of large values with a small
// spread, where a running sum of squares loses every significant digit, and
// compares with a two-pass computation of each window.
func TestStdDev_Precision(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const n, period = 20000, 30
	values := make([]float64, n)
	level := 1e9
	for i := range values {
		level += r.NormFloat64() * 0.01
		values[i] = level + r.NormFloat64()
	}
	got := indicator.StdDev(nil, values, period)
	for i := period - 1; i < n; i++ {
		w := values[i-period+1 : i+1]
		var mean float64
		for _, v := range w {
			mean += v
		}
		mean /= period
		var ss, s float64
		for _, v := range w {
			ss += (v - mean) * (v - mean)
			s += v - mean
		}
		want := math.Sqrt((ss - s*s/period) / period)
		if rel := math.Abs(got[i]-want) / want; !(rel < 1e-9) {
			t.Fatalf("[%d] = %.17g, want %.17g (relative error %.3g)", i, got[i], want, rel)
		}
	}
}

// TestStdDev_RegimeJump sends a huge value through the window: once it has
// left, the small spread must come back with full precision (removing a
// value 1e9 times larger than the spread cancels every digit of a running
// update).
func TestStdDev_RegimeJump(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	const period = 30
	var values []float64
	for range 200 {
		values = append(values, 1+0.001*r.NormFloat64())
	}
	for i := range 7 {
		values = append(values, 1e9*float64(i+1)+r.NormFloat64())
	}
	for range 500 {
		values = append(values, 2+0.001*r.NormFloat64())
	}
	got := indicator.StdDev(nil, values, period)
	for i := period - 1; i < len(values); i++ {
		w := values[i-period+1 : i+1]
		var mean float64
		for _, v := range w {
			mean += v
		}
		mean /= period
		var ss float64
		for _, v := range w {
			ss += (v - mean) * (v - mean)
		}
		want := math.Sqrt(ss / period)
		if rel := math.Abs(got[i]-want) / want; !(rel < 1e-9) {
			t.Fatalf("[%d] = %.17g, want %.17g (relative error %.3g)", i, got[i], want, rel)
		}
	}
}

func TestVolatility(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		closes []float64
		period int
		factor float64
		want   []float64
	}{
		{"not enough history", []float64{100, 110}, 2, 4, []float64{nan, nan}},
		// Returns: 0.1, −0.1, 0, (gap), 0.1. Windows of 2: {0.1,−0.1} → σ
		// 0.1; {−0.1,0} → 0.05; {0,0.1} → 0.05; × √4 = 2.
		{"by hand", []float64{100, 110, 99, 99, nan, 108.9}, 2, 4, []float64{nan, nan, 0.2, 0.1, nan, 0.1}},
		{"non-positive prices are absent", []float64{100, -1, 110, 0, 99}, 2, 1, []float64{nan, nan, nan, nan, 0.1}},
		{"constant price", []float64{5, 5, 5, 5}, 2, 365, []float64{nan, nan, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, indicator.Volatility(nil, tt.closes, tt.period, tt.factor), tt.want, 1e-12)
		})
	}
}

// TestVolatility_Precision compares a long rolling volatility, with a bad
// tick, with a two-pass computation of each window.
func TestVolatility_Precision(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	const n = 5000
	closes := make([]float64, n)
	p := 1e-9 // a micro-priced token
	for i := range closes {
		p *= math.Exp(r.NormFloat64() * 0.05)
		closes[i] = p
	}
	// A bad tick: a return of ~1e6 enters and leaves the window.
	closes[2000] *= 1e6
	// 70 is more than the 64 returns Volatility keeps on the stack.
	for _, period := range []int{30, 70} {
		got := indicator.Volatility(nil, closes, period, 365)
		for i := period; i < n; i++ {
			var mean float64
			for j := i - period + 1; j <= i; j++ {
				mean += closes[j]/closes[j-1] - 1
			}
			mean /= float64(period)
			var ss float64
			for j := i - period + 1; j <= i; j++ {
				d := closes[j]/closes[j-1] - 1 - mean
				ss += d * d
			}
			want := math.Sqrt(ss/float64(period)) * math.Sqrt(365)
			if rel := math.Abs(got[i]-want) / want; !(rel < 1e-9) {
				t.Fatalf("period %d [%d] = %.17g, want %.17g (relative error %.3g)", period, i, got[i], want, rel)
			}
		}
	}
}

func TestVolumeChange(t *testing.T) {
	t.Parallel()
	// (150−100)/100 = 0.5; (0−150)/150 = −1; previous 0 → NaN; current
	// missing → NaN; previous missing → NaN; (30−20)/20 = 0.5.
	got := indicator.VolumeChange(nil, []float64{100, 150, 0, 50, nan, 20, 30})
	assertSeries(t, got, []float64{nan, 0.5, -1, nan, nan, nan, 0.5}, 1e-15)
	assertSeries(t, indicator.VolumeChange(nil, []float64{-5, 10, 20}), []float64{nan, nan, 1}, 1e-15)
}

func TestMomentum(t *testing.T) {
	t.Parallel()
	// Observations 10, 12, 15, 18, 30 (NaN and 0 are absent). Over 2:
	// 15/10−1 = 0.5, 18/12−1 = 0.5, 30/15−1 = 1.
	closes := []float64{10, 12, 15, nan, 18, 0, 30}
	assertSeries(t, indicator.Momentum(nil, closes, 2), []float64{nan, nan, 0.5, nan, 0.5, nan, 1}, 1e-15)
	// Over 1: 12/10−1, 15/12−1, 18/15−1, 30/18−1.
	assertSeries(t, indicator.Momentum(nil, closes, 1),
		[]float64{nan, 12.0/10 - 1, 15.0/12 - 1, nan, 18.0/15 - 1, nan, 30.0/18 - 1}, 1e-15)
	assertSeries(t, indicator.Momentum(nil, closes, 5), []float64{nan, nan, nan, nan, nan, nan, nan}, 0)
}

func TestDrawdown(t *testing.T) {
	t.Parallel()
	// Peak 100, 120 (dd 0), 90 → 1−90/120 = 0.25, 110 → 0.0833 (max stays
	// 0.25), gap, 60 → 1−60/120 = 0.5, peak 130, 52 → 1−52/130 = 0.6.
	closes := []float64{100, 120, 90, 110, nan, 60, 130, 52}
	assertSeries(t, indicator.Drawdown(nil, closes), []float64{0, 0, 0.25, 0.25, nan, 0.5, 0.5, 0.6}, 1e-15)
	if got := indicator.MaxDrawdown(closes); math.Abs(got-0.6) > 1e-15 {
		t.Errorf("MaxDrawdown = %v, want 0.6", got)
	}
	assertSeries(t, indicator.Drawdown(nil, []float64{nan, 5}), []float64{nan, 0}, 0)
	if got := indicator.MaxDrawdown([]float64{5}); got != 0 {
		t.Errorf("MaxDrawdown(one point) = %v, want 0", got)
	}
	if got := indicator.MaxDrawdown([]float64{nan, 0}); !math.IsNaN(got) {
		t.Errorf("MaxDrawdown(no valid price) = %v, want NaN", got)
	}
}

func TestInvalidPeriodPanics(t *testing.T) {
	t.Parallel()
	in := []float64{1, 2, 3}
	tests := map[string]func(){
		"RSI":        func() { indicator.RSI(nil, in, 0) },
		"EMA":        func() { indicator.EMA(nil, in, -1) },
		"StdDev":     func() { indicator.StdDev(nil, in, 0) },
		"Volatility": func() { indicator.Volatility(nil, in, 0, 365) },
		"factor":     func() { indicator.Volatility(nil, in, 2, -1) },
		"Momentum":   func() { indicator.Momentum(nil, in, 0) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with an invalid parameter did not panic", name)
				}
			}()
			f()
		})
	}
}

// TestReuseDst checks that every function writes into the caller's slice
// when it is large enough, without allocating.
func TestReuseDst(t *testing.T) {
	closes := loadCloses(t)
	dst := make([]float64, 0, len(closes))
	funcs := map[string]func([]float64) []float64{
		"RSI":          func(d []float64) []float64 { return indicator.RSI(d, closes, 14) },
		"EMA":          func(d []float64) []float64 { return indicator.EMA(d, closes, 20) },
		"StdDev":       func(d []float64) []float64 { return indicator.StdDev(d, closes, 14) },
		"Volatility":   func(d []float64) []float64 { return indicator.Volatility(d, closes, 30, 365) },
		"VolumeChange": func(d []float64) []float64 { return indicator.VolumeChange(d, closes) },
		"Momentum":     func(d []float64) []float64 { return indicator.Momentum(d, closes, 7) },
		"Drawdown":     func(d []float64) []float64 { return indicator.Drawdown(d, closes) },
	}
	for name, f := range funcs {
		out := f(dst)
		if len(out) != len(closes) || &out[0] != &dst[:1][0] {
			t.Errorf("%s did not write into dst", name)
		}
		if a := testing.AllocsPerRun(10, func() { f(dst) }); a != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, a)
		}
	}
}

func TestCompute(t *testing.T) {
	closes := loadCloses(t)
	volumes := make([]float64, len(closes))
	for i := range volumes {
		volumes[i] = float64(1000 + (i*37)%101)
	}
	var set indicator.Set
	if err := indicator.Compute(&set, closes, volumes, indicator.Config{}); err != nil {
		t.Fatalf("Compute: %v", err)
	}
	// The zero Config means the documented defaults.
	columns := []struct {
		name      string
		got, want []float64
	}{
		{"RSI", set.RSI, indicator.RSI(nil, closes, 14)},
		{"EMA", set.EMA, indicator.EMA(nil, closes, 20)},
		{"Volatility", set.Volatility, indicator.Volatility(nil, closes, 30, 365)},
		{"Drawdown", set.Drawdown, indicator.Drawdown(nil, closes)},
		{"MomentumShort", set.MomentumShort, indicator.Momentum(nil, closes, 7)},
		{"MomentumLong", set.MomentumLong, indicator.Momentum(nil, closes, 30)},
		{"VolumeChange", set.VolumeChange, indicator.VolumeChange(nil, volumes)},
	}
	for _, c := range columns {
		t.Run(c.name, func(t *testing.T) { assertSeries(t, c.got, c.want, 0) })
	}

	custom := indicator.Config{RSIPeriod: 10, EMAPeriod: 5, VolatilityPeriod: 7, Annualization: 252, MomentumShort: 3, MomentumLong: 9}
	if err := indicator.Compute(&set, closes, volumes, custom); err != nil {
		t.Fatalf("Compute(custom): %v", err)
	}
	assertSeries(t, set.RSI, indicator.RSI(nil, closes, 10), 0)
	assertSeries(t, set.EMA, indicator.EMA(nil, closes, 5), 0)
	assertSeries(t, set.Volatility, indicator.Volatility(nil, closes, 7, 252), 0)
	assertSeries(t, set.MomentumShort, indicator.Momentum(nil, closes, 3), 0)
	assertSeries(t, set.MomentumLong, indicator.Momentum(nil, closes, 9), 0)

	if a := testing.AllocsPerRun(5, func() {
		_ = indicator.Compute(&set, closes, volumes, indicator.Config{})
	}); a != 0 {
		t.Errorf("Compute into a used Set: %v allocations per run, want 0", a)
	}
}

func TestCompute_Errors(t *testing.T) {
	t.Parallel()
	closes := []float64{1, 2, 3}
	tests := []struct {
		name    string
		volumes []float64
		cfg     indicator.Config
		field   string
	}{
		{"length mismatch", []float64{1, 2}, indicator.Config{}, "volumes"},
		{"negative RSI period", closes, indicator.Config{RSIPeriod: -1}, "rsi_period"},
		{"negative EMA period", closes, indicator.Config{EMAPeriod: -2}, "ema_period"},
		{"negative volatility period", closes, indicator.Config{VolatilityPeriod: -3}, "volatility_period"},
		{"negative annualization", closes, indicator.Config{Annualization: -365}, "annualization"},
		{"NaN annualization", closes, indicator.Config{Annualization: nan}, "annualization"},
		{"negative momentum", closes, indicator.Config{MomentumShort: -7}, "momentum_short"},
		{"negative long momentum", closes, indicator.Config{MomentumLong: -30}, "momentum_long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var set indicator.Set
			err := indicator.Compute(&set, closes, tt.volumes, tt.cfg)
			if code := tokenlysis.ErrorCode(err); code != tokenlysis.EINVALID {
				t.Fatalf("Compute error = %v (code %q), want %q", err, code, tokenlysis.EINVALID)
			}
			if f := tokenlysis.ErrorField(err); f != tt.field {
				t.Errorf("error field = %q, want %q", f, tt.field)
			}
		})
	}
}

// TestCompute_MatchesFunctions runs Compute over random series with gaps,
// zero, negative and infinite prices, and expects exactly the values of
// the exported functions (Compute runs them all in one pass).
func TestCompute_MatchesFunctions(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(21, 22))
	configs := []indicator.Config{
		{},
		{RSIPeriod: 3, EMAPeriod: 2, VolatilityPeriod: 100, Annualization: 252, MomentumShort: 1, MomentumLong: 60},
	}
	var set indicator.Set
	for run := range 20 {
		n := 1 + r.IntN(800)
		closes := make([]float64, n)
		volumes := make([]float64, n)
		p := 50.0
		for i := range closes {
			p *= math.Exp(0.05 * r.NormFloat64())
			closes[i], volumes[i] = p, 1e6*r.Float64()
			switch r.IntN(30) {
			case 0:
				closes[i] = nan
			case 1:
				closes[i] = 0
			case 2:
				closes[i] = -p
			case 3:
				closes[i] = math.Inf(1)
			case 4:
				volumes[i] = nan
			}
		}
		for _, cfg := range configs {
			if err := indicator.Compute(&set, closes, volumes, cfg); err != nil {
				t.Fatalf("Compute: %v", err)
			}
			d := cfg
			if d.RSIPeriod == 0 {
				d = indicator.Config{RSIPeriod: 14, EMAPeriod: 20, VolatilityPeriod: 30, Annualization: 365, MomentumShort: 7, MomentumLong: 30}
			}
			for _, c := range []struct {
				name      string
				got, want []float64
			}{
				{"RSI", set.RSI, indicator.RSI(nil, closes, d.RSIPeriod)},
				{"EMA", set.EMA, indicator.EMA(nil, closes, d.EMAPeriod)},
				{"Volatility", set.Volatility, indicator.Volatility(nil, closes, d.VolatilityPeriod, d.Annualization)},
				{"Drawdown", set.Drawdown, indicator.Drawdown(nil, closes)},
				{"MomentumShort", set.MomentumShort, indicator.Momentum(nil, closes, d.MomentumShort)},
				{"MomentumLong", set.MomentumLong, indicator.Momentum(nil, closes, d.MomentumLong)},
				{"VolumeChange", set.VolumeChange, indicator.VolumeChange(nil, volumes)},
			} {
				for i := range c.want {
					g, w := c.got[i], c.want[i]
					if !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
						t.Fatalf("run %d, config %+v: %s[%d] = %v, the function gives %v", run, cfg, c.name, i, g, w)
					}
				}
			}
		}
	}
}
