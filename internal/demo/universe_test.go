package demo

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// encode serializes every field of every asset, floats bit for bit, so that
// equal encodings mean byte-identical universes.
func encode(t testing.TB, assets []Asset) []byte {
	t.Helper()
	var b []byte
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	f64 := func(v float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) }
	for _, a := range assets {
		str(a.ID)
		str(a.Symbol)
		str(a.Name)
		str(strings.Join(a.Categories, "\x00"))
		b = binary.AppendVarint(b, int64(a.ListingsCount))
		str(a.LogoURL)
		b = binary.AppendUvarint(b, uint64(len(a.History)))
		for _, d := range a.History {
			b = binary.AppendVarint(b, d.Date.UnixNano())
			str(d.Date.Location().String())
			f64(d.Price)
			f64(d.MarketCap)
			f64(d.Volume)
		}
	}
	return b
}

func TestUniverseDeterministic(t *testing.T) {
	t.Parallel()

	cfg := Config{Assets: 40, Days: 400, Seed: 7}
	a, b := encode(t, Universe(cfg)), encode(t, Universe(cfg))
	if !bytes.Equal(a, b) {
		t.Fatalf("two universes from the same config differ")
	}
	cfg.Seed = 8
	if c := encode(t, Universe(cfg)); bytes.Equal(a, c) {
		t.Fatalf("seed 7 and seed 8 give the same universe")
	}

	// The default universe, the one the system falls back to, too.
	d1, d2 := encode(t, Universe(Config{})), encode(t, Universe(Config{}))
	if !bytes.Equal(d1, d2) {
		t.Fatalf("two default universes differ")
	}
}

func TestUniverseDifferentSeedsDifferPerAsset(t *testing.T) {
	t.Parallel()

	a := Universe(Config{Assets: 30, Days: 200, Seed: 1})
	b := Universe(Config{Assets: 30, Days: 200, Seed: 2})
	samePrices := 0
	for i := range a {
		if a[i].History[len(a[i].History)-1].Price == b[i].History[len(b[i].History)-1].Price {
			samePrices++
		}
	}
	// Stablecoins may coincide by chance near 1.0; nothing else should.
	if samePrices > 3 {
		t.Fatalf("%d of %d assets end at the same price with different seeds", samePrices, len(a))
	}
}

func TestUniverseShape(t *testing.T) {
	t.Parallel()

	assets := Universe(Config{})
	const days = 4*365 + 1
	end := time.Date(2025, 1, 14, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -(days - 1))

	if len(assets) != 300 {
		t.Fatalf("assets = %d, want 300", len(assets))
	}
	ids, symbols := map[string]bool{}, map[string]bool{}
	themes := map[string]int{}
	known := Categories()
	var gaps, zeroVolumes, fullHistory, shortHistory int
	var minCap, maxCap = math.Inf(1), math.Inf(-1)
	for i, a := range assets {
		if !strings.HasPrefix(a.ID, "demo-") || ids[a.ID] {
			t.Errorf("asset %d: ID %q not unique or not demo-", i, a.ID)
		}
		ids[a.ID] = true
		if a.Symbol == "" || symbols[a.Symbol] || strings.ToUpper(a.Symbol) != a.Symbol {
			t.Errorf("asset %d: symbol %q empty, duplicate or not upper case", i, a.Symbol)
		}
		symbols[a.Symbol] = true
		if a.Name == "" {
			t.Errorf("asset %s: empty name", a.ID)
		}
		if len(a.Categories) == 0 {
			t.Errorf("asset %s: no category", a.ID)
		}
		for _, c := range a.Categories {
			if !slices.Contains(known, c) {
				t.Errorf("asset %s: unknown category %q", a.ID, c)
			}
			themes[c]++
		}
		if a.ListingsCount < 1 {
			t.Errorf("asset %s: listings %d", a.ID, a.ListingsCount)
		}
		if a.LogoURL != "" && !strings.HasPrefix(a.LogoURL, "data:image/") {
			t.Errorf("asset %s: logo %q is not a data: URL", a.ID, a.LogoURL[:min(40, len(a.LogoURL))])
		}

		h := a.History
		if len(h) < 30 || len(h) > days {
			t.Fatalf("asset %s: %d days of history", a.ID, len(h))
		}
		if !h[len(h)-1].Date.Equal(end) {
			t.Errorf("asset %s: last day %v, want %v", a.ID, h[len(h)-1].Date, end)
		}
		switch first := h[0].Date; {
		case first.Before(start):
			t.Errorf("asset %s: first day %v before %v", a.ID, first, start)
		case first.Equal(start):
			fullHistory++
		default:
			shortHistory++
		}
		for j, d := range h {
			if d.Date.Location() != time.UTC || d.Date.Hour() != 0 {
				t.Fatalf("asset %s: day %v not UTC midnight", a.ID, d.Date)
			}
			if !(d.Price > 0) || math.IsInf(d.Price, 0) || !(d.MarketCap > 0) || math.IsInf(d.MarketCap, 0) ||
				!(d.Volume >= 0) || math.IsInf(d.Volume, 0) {
				t.Fatalf("asset %s %v: price %v cap %v volume %v", a.ID, d.Date, d.Price, d.MarketCap, d.Volume)
			}
			if d.Volume == 0 {
				zeroVolumes++
			}
			if j > 0 {
				step := int(d.Date.Sub(h[j-1].Date) / (24 * time.Hour))
				if step < 1 {
					t.Fatalf("asset %s: %v not after %v", a.ID, d.Date, h[j-1].Date)
				}
				if step > 1 {
					gaps++
				}
			}
			if slices.Contains(a.Categories, "Stablecoin") && math.Abs(d.Price-1) > 0.05 {
				t.Fatalf("stablecoin %s at %v on %v", a.ID, d.Price, d.Date)
			}
		}
		last := h[len(h)-1].MarketCap
		minCap, maxCap = min(minCap, last), max(maxCap, last)
		if i > 0 && last > assets[i-1].History[len(assets[i-1].History)-1].MarketCap {
			t.Errorf("asset %d (%s) has a larger market cap than asset %d: not ranked", i, a.ID, i-1)
		}
	}
	if gaps == 0 || zeroVolumes == 0 {
		t.Errorf("gaps = %d, zero-volume days = %d: want some of each", gaps, zeroVolumes)
	}
	if fullHistory < 100 || shortHistory < 50 {
		t.Errorf("full histories %d, later listings %d: want both", fullHistory, shortHistory)
	}
	if maxCap/minCap < 1e4 {
		t.Errorf("market caps span %.3g to %.3g, want at least 4 orders of magnitude", minCap, maxCap)
	}
	for _, c := range []string{"Layer 1", "DeFi", "Meme", "Gaming", "AI", "Stablecoin"} {
		if themes[c] == 0 {
			t.Errorf("no asset in category %q (have %v)", c, themes)
		}
	}
	if len(themes) < 8 {
		t.Errorf("only %d categories used: %v", len(themes), themes)
	}
	t.Logf("gaps %d, zero-volume days %d, full histories %d, later listings %d, caps %.3g..%.3g, categories %v",
		gaps, zeroVolumes, fullHistory, shortHistory, minCap, maxCap, themes)
}

// TestUniverseSpread checks that the universe gives a scorer something to
// separate: returns, volatility and liquidity must differ between assets,
// and volume must follow market cap.
func TestUniverseSpread(t *testing.T) {
	t.Parallel()

	assets := Universe(Config{})
	var yearReturns, vols, logCaps, logVolumes []float64
	for _, a := range assets {
		h := a.History
		if slices.Contains(a.Categories, "Stablecoin") || len(h) < 366 {
			continue
		}
		yearReturns = append(yearReturns, h[len(h)-1].Price/h[len(h)-366].Price-1)
		var sum, sum2 float64
		for j := 1; j < len(h); j++ {
			r := math.Log(h[j].Price / h[j-1].Price)
			sum += r
			sum2 += r * r
		}
		n := float64(len(h) - 1)
		vols = append(vols, math.Sqrt(sum2/n-(sum/n)*(sum/n)))
		var capSum, volSum float64
		for _, d := range h[len(h)-30:] {
			capSum += d.MarketCap
			volSum += d.Volume
		}
		logCaps = append(logCaps, math.Log(capSum))
		logVolumes = append(logVolumes, math.Log(volSum+1))
	}
	if len(yearReturns) < 100 {
		t.Fatalf("only %d assets with a year of history", len(yearReturns))
	}
	up, down := 0, 0
	for _, r := range yearReturns {
		if r > 0.2 {
			up++
		}
		if r < -0.2 {
			down++
		}
	}
	if up < len(yearReturns)/5 || down < len(yearReturns)/5 {
		t.Errorf("1-year returns: %d above +20%%, %d below -20%% of %d: want a spread", up, down, len(yearReturns))
	}
	slices.Sort(vols)
	p10, p90 := vols[len(vols)/10], vols[len(vols)*9/10]
	if p90/p10 < 1.8 || p10 < 0.01 || p90 > 0.2 {
		t.Errorf("daily volatility p10 %.4f, p90 %.4f: want a realistic spread", p10, p90)
	}
	c := correlation(logCaps, logVolumes)
	if c < 0.6 || c > 0.99 {
		t.Errorf("correlation of log cap and log volume = %.3f, want strong but noisy", c)
	}
	t.Logf("1y returns: %d > +20%%, %d < -20%% of %d; daily vol p10 %.4f p90 %.4f; corr(log cap, log volume) %.3f",
		up, down, len(yearReturns), p10, p90, c)
}

func correlation(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, syy, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		syy += y[i] * y[i]
		sxy += x[i] * y[i]
	}
	return (sxy - sx*sy/n) / math.Sqrt((sxx-sx*sx/n)*(syy-sy*sy/n))
}

func TestUniverseConfig(t *testing.T) {
	t.Parallel()

	end := time.Date(2023, 6, 30, 15, 4, 5, 0, time.FixedZone("X", 3*3600))
	assets := Universe(Config{Assets: 12, Days: 90, End: end, Seed: 3})
	if len(assets) != 12 {
		t.Fatalf("assets = %d, want 12", len(assets))
	}
	wantEnd := time.Date(2023, 6, 30, 0, 0, 0, 0, time.UTC)
	wantStart := wantEnd.AddDate(0, 0, -89)
	for _, a := range assets {
		h := a.History
		if len(h) > 90 || len(h) < 30 {
			t.Errorf("asset %s: %d days, want 30..90", a.ID, len(h))
		}
		if !h[len(h)-1].Date.Equal(wantEnd) {
			t.Errorf("asset %s: ends %v, want %v", a.ID, h[len(h)-1].Date, wantEnd)
		}
		if h[0].Date.Before(wantStart) {
			t.Errorf("asset %s: starts %v, before %v", a.ID, h[0].Date, wantStart)
		}
	}

	// Negative sizes mean the defaults.
	if n := len(Universe(Config{Assets: -1, Days: 10})); n != 300 {
		t.Errorf("Assets -1 gave %d assets, want the default 300", n)
	}
}

func BenchmarkUniverse(b *testing.B) {
	var days int
	for b.Loop() {
		days = 0
		for _, a := range Universe(Config{}) {
			days += len(a.History)
		}
	}
	b.ReportMetric(float64(days)*float64(b.N)/b.Elapsed().Seconds(), "days/s")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/universe")
}
