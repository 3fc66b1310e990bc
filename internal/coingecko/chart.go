package coingecko

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Point is one [timestamp, value] pair of a market chart. A null value
// arrives as NaN.
type Point struct {
	// TimestampMS is Unix milliseconds.
	TimestampMS int64
	Value       float64
}

// Time returns the point's time in UTC.
func (p Point) Time() time.Time { return time.UnixMilli(p.TimestampMS).UTC() }

// UnmarshalJSON reads [timestamp_ms, value], value possibly null.
func (p *Point) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 2 || raw[0] == nil {
		return fmt.Errorf("coingecko: chart point %s is not [timestamp, value]", b)
	}
	p.TimestampMS = int64(*raw[0])
	p.Value = math.NaN()
	if raw[1] != nil {
		p.Value = *raw[1]
	}
	return nil
}

// Chart is the USD history of one coin (GET /coins/{id}/market_chart).
type Chart struct {
	Prices     []Point `json:"prices"`
	MarketCaps []Point `json:"market_caps"`
	Volumes    []Point `json:"total_volumes"`
}

// MarketChart returns the daily USD history of coinID over the last days
// ("max" or a positive number of days), with interval=daily: one point at
// 00:00 UTC per day, plus CoinGecko's trailing "current" intraday point
// (see Chart.Daily). Error codes: EINVALID (arguments, HTTP 400), ENOTFOUND
// (unknown coin), EUNAVAILABLE (upstream failures, exhausted budget); a
// done ctx returns an error wrapping ctx.Err().
func (c *Client) MarketChart(ctx context.Context, coinID string, days string) (Chart, error) {
	if coinID == "" {
		return Chart{}, tokenlysis.FieldErrorf("coin_id", "coingecko: a coin id is required")
	}
	if n, err := strconv.Atoi(days); days != "max" && (err != nil || n < 1) {
		return Chart{}, tokenlysis.FieldErrorf("days", `coingecko: days must be "max" or a positive whole number, got %q`, days)
	}
	q := url.Values{"vs_currency": {"usd"}, "days": {days}, "interval": {"daily"}}
	var ch Chart
	if err := c.get(ctx, "/coins/"+url.PathEscape(coinID)+"/market_chart", q, &ch); err != nil {
		return Chart{}, fmt.Errorf("coingecko: market chart of %s: %w", coinID, err)
	}
	return ch, nil
}

// DailyRow is a coin's USD snapshot of one UTC day. Values CoinGecko does
// not have (null or absent from their series) are NaN.
type DailyRow struct {
	// Date is 00:00 UTC of the day, the time of the snapshot (CoinGecko's
	// "snapped_at" in its CSV exports).
	Date      time.Time
	Price     float64
	MarketCap float64
	Volume    float64
}

// Daily turns the chart into one row per UTC day, oldest first, by this
// rule:
//
//  1. Each series is grouped by UTC date and the earliest point of each
//     date is that date's value, so the daily 00:00 snapshot wins over any
//     later point of the same day.
//  2. The dates are those of the price series; a market cap or volume
//     missing on a date is NaN.
//  3. If the last row's price point is not at exactly 00:00 UTC, the row is
//     dropped: it is CoinGecko's "current" intraday point on a day whose
//     snapshot does not exist yet, not a daily value. (A current point on a
//     day that already has its 00:00 snapshot is removed by rule 1.)
//
// Rows are never invented for missing days. Non-midnight points inside the
// range (a snapshot taken late) are kept as their day's value.
func (ch Chart) Daily() []DailyRow {
	prices := firstPerDay(ch.Prices)
	caps := firstPerDay(ch.MarketCaps)
	vols := firstPerDay(ch.Volumes)
	rows := make([]DailyRow, 0, len(prices))
	ci, vi := 0, 0
	for _, p := range prices {
		day := dayOf(p.TimestampMS)
		r := DailyRow{Date: time.UnixMilli(day).UTC(), Price: p.Value, MarketCap: math.NaN(), Volume: math.NaN()}
		r.MarketCap, ci = valueOn(caps, ci, day)
		r.Volume, vi = valueOn(vols, vi, day)
		rows = append(rows, r)
	}
	if n := len(prices); n > 0 && prices[n-1].TimestampMS != dayOf(prices[n-1].TimestampMS) {
		rows = rows[:len(rows)-1]
	}
	return rows
}

const dayMS = int64(24 * time.Hour / time.Millisecond)

// dayOf returns 00:00 UTC of the day of ms, in Unix milliseconds.
func dayOf(ms int64) int64 {
	d := ms - ms%dayMS
	if ms < 0 && ms%dayMS != 0 {
		d -= dayMS
	}
	return d
}

// firstPerDay returns the earliest point of each UTC day, oldest first. It
// does not modify ps.
func firstPerDay(ps []Point) []Point {
	if !slices.IsSortedFunc(ps, cmpPoint) {
		ps = slices.Clone(ps)
		slices.SortStableFunc(ps, cmpPoint)
	}
	out := make([]Point, 0, len(ps))
	for _, p := range ps {
		if len(out) == 0 || dayOf(out[len(out)-1].TimestampMS) != dayOf(p.TimestampMS) {
			out = append(out, p)
		}
	}
	return out
}

func cmpPoint(a, b Point) int { return cmp.Compare(a.TimestampMS, b.TimestampMS) }

// valueOn returns the value of the day-sorted series ps on day, scanning
// from index i (both walks move forward together), and the next index.
func valueOn(ps []Point, i int, day int64) (float64, int) {
	for i < len(ps) && dayOf(ps[i].TimestampMS) < day {
		i++
	}
	if i < len(ps) && dayOf(ps[i].TimestampMS) == day {
		return ps[i].Value, i + 1
	}
	return math.NaN(), i
}
