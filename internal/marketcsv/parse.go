package marketcsv

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Format names the CSV dialect detected from the header.
type Format string

// Accepted formats.
const (
	// FormatCoinGecko is CoinGecko's "usd-max" export:
	// snapped_at,price,market_cap,total_volume.
	FormatCoinGecko Format = "coingecko"
	// FormatOHLCV is plain daily bars: date,open,high,low,close,volume.
	FormatOHLCV Format = "ohlcv"
)

// Headers accepted by Parse, as written by their producers. Column names
// are matched case-insensitively, ignoring surrounding spaces and order.
const (
	HeaderCoinGecko = "snapped_at,price,market_cap,total_volume"
	HeaderOHLCV     = "date,open,high,low,close,volume"
)

// Defaults of Config.
const (
	// DefaultMaxRows is about 270 years of daily rows.
	DefaultMaxRows = 100_000
	// DefaultMaxBytes is 16 MiB, twice what DefaultMaxRows of the longest
	// real CoinGecko lines take.
	DefaultMaxBytes = 16 << 20
)

// Row is one day of history. Missing values are NaN: Open, High and Low in a
// CoinGecko export, MarketCap in an OHLCV file, and any optional field left
// empty. Zero is a value, not a missing one.
type Row struct {
	// Date is the UTC day the row stands for, at 00:00:00 UTC.
	Date time.Time
	// Open, High and Low are the OHLCV bar's; NaN in CoinGecko rows.
	Open, High, Low float64
	// Price is the CoinGecko price, or the OHLCV close. Always > 0.
	Price float64
	// MarketCap is in quote currency; NaN when empty or absent.
	MarketCap float64
	// Volume is the 24h traded volume; NaN when empty.
	Volume float64
}

// Gap is a run of consecutive days with no row, between two rows. From and
// To are the first and last missing days (inclusive); Days counts them.
type Gap struct {
	From, To time.Time
	Days     int
}

// Result is a parsed file: its format, its rows in ascending date order with
// one row per day, and the gaps between them (nil when there are none).
type Result struct {
	Format Format
	Rows   []Row
	Gaps   []Gap
}

// Config bounds what a Parser reads. Zero fields take the defaults.
type Config struct {
	// MaxRows is the most data rows accepted; default DefaultMaxRows.
	MaxRows int
	// MaxBytes is the most input bytes read; default DefaultMaxBytes.
	MaxBytes int64
}

// Parser parses market-history CSV within configured limits. It holds no
// state between calls and is safe for concurrent use.
type Parser struct {
	maxRows  int
	maxBytes int64
}

// NewParser returns a Parser for cfg. It returns EINVALID for negative
// limits.
func NewParser(cfg Config) (*Parser, error) {
	if cfg.MaxRows < 0 {
		return nil, tokenlysis.FieldErrorf("max_rows", "max rows must not be negative, got %d", cfg.MaxRows)
	}
	if cfg.MaxBytes < 0 {
		return nil, tokenlysis.FieldErrorf("max_bytes", "max bytes must not be negative, got %d", cfg.MaxBytes)
	}
	return &Parser{
		maxRows:  cmp.Or(cfg.MaxRows, DefaultMaxRows),
		maxBytes: cmp.Or(cfg.MaxBytes, DefaultMaxBytes),
	}, nil
}

// Parse parses r with the default limits. See (*Parser).Parse.
func Parse(r io.Reader) (Result, error) {
	p, _ := NewParser(Config{}) // the zero Config is valid
	return p.Parse(r)
}

// column is the meaning of a CSV column, whatever its name in the file.
type column int

const (
	colDate column = iota
	colOpen
	colHigh
	colLow
	colPrice
	colMarketCap
	colVolume
)

// layout describes one accepted header: its column names and meanings.
type layout struct {
	format  Format
	names   []string
	columns []column
}

func layouts() [2]layout {
	return [2]layout{
		{FormatCoinGecko, strings.Split(HeaderCoinGecko, ","), []column{colDate, colPrice, colMarketCap, colVolume}},
		{FormatOHLCV, strings.Split(HeaderOHLCV, ","), []column{colDate, colOpen, colHigh, colLow, colPrice, colVolume}},
	}
}

var (
	errTooLarge = errors.New("input too large")
	utf8BOM     = []byte("\uFEFF")
)

// Parse reads a whole CSV file of daily history. The format is detected
// from the header. A UTF-8 BOM, CRLF line endings, blank lines, quoted
// fields and spaces around values are accepted.
//
// Every line must be valid: one malformed value fails the whole parse, so
// that an import is either complete and trustworthy or rejected. Dates must
// be strictly ascending, one row per UTC day (a time of day is dropped, an
// offset is applied first); a duplicate or earlier date is an error rather
// than being silently sorted or merged, since which of two conflicting rows
// is right cannot be known. Missing days are reported as Gaps, never filled.
//
// Errors, all *tokenlysis.Error:
//   - EINVALID with Field set to the column name and a message starting
//     "line N, column "name": " for a bad value, a missing required value
//     (date, price or close), a negative number, a non-positive price, a
//     missing field, or a duplicate or out-of-order date;
//   - EINVALID with a message starting "line N: " and no Field for an
//     unknown header, a line with too many fields or malformed CSV quoting;
//   - EINVALID for an empty input or a header without data rows;
//   - ETOOLARGE when the input exceeds MaxBytes or MaxRows.
//
// Errors from r itself are returned wrapped.
func (p *Parser) Parse(r io.Reader) (Result, error) {
	lr := &limitReader{r: r, max: p.maxBytes}
	br := bufio.NewReaderSize(lr, 64<<10)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	readErr := func(err error) error {
		var pe *csv.ParseError
		switch {
		case errors.Is(err, errTooLarge):
			return tokenlysis.Errorf(tokenlysis.ETOOLARGE, "input larger than %d bytes", p.maxBytes)
		case errors.As(err, &pe):
			return tokenlysis.Errorf(tokenlysis.EINVALID, "line %d: malformed CSV: %v", pe.StartLine, pe.Err)
		}
		return fmt.Errorf("marketcsv: read: %w", err)
	}

	header, err := cr.Read()
	if err == io.EOF {
		return Result{}, tokenlysis.Errorf(tokenlysis.EINVALID, "empty input: want a header %q (CoinGecko export) or %q (OHLCV)", HeaderCoinGecko, HeaderOHLCV)
	} else if err != nil {
		return Result{}, readErr(err)
	}
	headerLine, _ := cr.FieldPos(0)
	lay, roles, ok := matchHeader(header)
	if !ok {
		return Result{}, tokenlysis.Errorf(tokenlysis.EINVALID, "line %d: unknown header %s: want %q (CoinGecko export) or %q (OHLCV)",
			headerLine, quoteValue(strings.Join(header, ",")), HeaderCoinGecko, HeaderOHLCV)
	}

	res := Result{Format: lay.format}
	var prevDay int64
	var prevLine int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return Result{}, readErr(err)
		}
		line, _ := cr.FieldPos(0)
		if len(res.Rows) >= p.maxRows {
			return Result{}, tokenlysis.Errorf(tokenlysis.ETOOLARGE, "line %d: more than %d data rows", line, p.maxRows)
		}
		if len(rec) < len(roles) {
			name := lay.names[roles[len(rec)]]
			return Result{}, fieldError(line, name, "missing field (want %d fields, got %d)", len(roles), len(rec))
		} else if len(rec) > len(roles) {
			return Result{}, tokenlysis.Errorf(tokenlysis.EINVALID, "line %d: want %d fields, got %d", line, len(roles), len(rec))
		}

		row := Row{Open: math.NaN(), High: math.NaN(), Low: math.NaN(), MarketCap: math.NaN(), Volume: math.NaN()}
		for i, raw := range rec {
			li := roles[i]
			name, col := lay.names[li], lay.columns[li]
			s := strings.TrimSpace(raw)
			if col == colDate {
				if s == "" {
					return Result{}, fieldError(line, name, "missing value")
				}
				d, ok := parseDate(s)
				if !ok {
					return Result{}, fieldError(line, name, "invalid date %s (want 2006-01-02, optionally followed by a time such as 15:04:05 UTC)", quoteValue(s))
				}
				if y := d.Year(); y < minYear || y > maxYear {
					return Result{}, fieldError(line, name, "date %s out of range (%d-01-01 to %d-12-31)", d.Format(time.DateOnly), minYear, maxYear)
				}
				row.Date = d
				continue
			}
			if s == "" {
				if col == colPrice {
					return Result{}, fieldError(line, name, "missing value")
				}
				continue // NaN: missing
			}
			v, ok := parseNumber(s)
			switch {
			case !ok:
				return Result{}, fieldError(line, name, "invalid number %s", quoteValue(s))
			case v < 0:
				return Result{}, fieldError(line, name, "negative value %s", quoteValue(s))
			case col == colPrice && v == 0:
				return Result{}, fieldError(line, name, "%s must be positive, got %s", name, quoteValue(s))
			}
			switch col {
			case colOpen:
				row.Open = v
			case colHigh:
				row.High = v
			case colLow:
				row.Low = v
			case colPrice:
				row.Price = v
			case colMarketCap:
				row.MarketCap = v
			case colVolume:
				row.Volume = v
			}
		}

		dayNum := unixDay(row.Date)
		if len(res.Rows) > 0 {
			dateName := lay.names[0]
			switch {
			case dayNum == prevDay:
				return Result{}, fieldError(line, dateName, "duplicate date %s (already on line %d)", row.Date.Format(time.DateOnly), prevLine)
			case dayNum < prevDay:
				return Result{}, fieldError(line, dateName, "date %s is before %s on line %d (rows must be in ascending date order)",
					row.Date.Format(time.DateOnly), res.Rows[len(res.Rows)-1].Date.Format(time.DateOnly), prevLine)
			case dayNum > prevDay+1:
				res.Gaps = append(res.Gaps, Gap{
					From: res.Rows[len(res.Rows)-1].Date.AddDate(0, 0, 1),
					To:   row.Date.AddDate(0, 0, -1),
					Days: int(dayNum - prevDay - 1),
				})
			}
		}
		prevDay, prevLine = dayNum, line
		res.Rows = append(res.Rows, row)
	}
	if len(res.Rows) == 0 {
		return Result{}, tokenlysis.Errorf(tokenlysis.EINVALID, "no data rows after the header")
	}
	return res, nil
}

// matchHeader finds the layout whose column names are exactly header's, in
// any order. roles[i] is the layout index of the file's column i.
func matchHeader(header []string) (layout, []int, bool) {
	for _, lay := range layouts() {
		if len(header) != len(lay.names) {
			continue
		}
		roles := make([]int, len(header))
		seen := make([]bool, len(lay.names))
		ok := true
		for i, h := range header {
			h = strings.ToLower(strings.TrimSpace(h))
			j := indexOf(lay.names, h)
			if j < 0 || seen[j] {
				ok = false
				break
			}
			seen[j], roles[i] = true, j
		}
		if ok {
			return lay, roles, true
		}
	}
	return layout{}, nil, false
}

func indexOf(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}

// Dates outside these years are rejected as corrupt: no market history
// starts before 1900, and a date past 2199 is a typo.
const minYear, maxYear = 1900, 2199

// dateLayouts are tried in order after the fast paths of parseDate. A
// layout without a zone means UTC.
var dateLayouts = [...]string{
	"2006-01-02 15:04:05 UTC",
	time.DateTime,
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 -0700",
}

// parseDate returns the UTC day of s at 00:00 UTC. A time of day is
// dropped after converting to UTC.
func parseDate(s string) (time.Time, bool) {
	if len(s) < len(time.DateOnly) {
		return time.Time{}, false
	}
	switch rest := s[len(time.DateOnly):]; rest {
	case "", " 00:00:00 UTC", " 00:00:00", "T00:00:00Z":
		t, err := time.Parse(time.DateOnly, s[:len(time.DateOnly)])
		return t, err == nil
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			t = t.UTC()
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

// parseNumber parses a plain decimal number, with an optional exponent.
// It rejects what strconv.ParseFloat would also accept but no market export
// writes: NaN, infinities, hexadecimal and digit separators.
func parseNumber(s string) (float64, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.', c == 'e', c == 'E', c == '+', c == '-':
		default:
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	if v == 0 {
		v = 0 // drop the sign of -0
	}
	return v, true
}

func unixDay(t time.Time) int64 { return t.Unix() / 86400 }

func fieldError(line int, name, format string, args ...any) *tokenlysis.Error {
	return tokenlysis.FieldErrorf(name, "line %d, column %q: %s", line, name, fmt.Sprintf(format, args...))
}

// quoteValue quotes s for an error message, cut to 32 bytes so that a huge
// field cannot blow up logs.
func quoteValue(s string) string {
	const max = 32
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut] + "…")
}

// limitReader fails with errTooLarge once more than max bytes were read.
type limitReader struct {
	r      io.Reader
	n, max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, errTooLarge
	}
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room] // one byte past the limit is enough to know
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, errTooLarge
	}
	return n, err
}
