package score

import (
	"math"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// NewPanelScores returns score columns for nAssets assets over nDays days,
// reusing dst and its columns' capacity where they are large enough.
func NewPanelScores(dst []Scores, nAssets, nDays int) []Scores {
	if cap(dst) < nAssets {
		dst = append(dst[:cap(dst)], make([]Scores, nAssets-cap(dst))...)
	}
	dst = dst[:nAssets]
	for a := range dst {
		dst[a].resize(nDays)
	}
	return dst
}

// Panel computes the scores of every asset on every day: assets[a] holds
// asset a's input columns aligned on a common day index of nDays days (NaN,
// or a nil column, where the asset has no value that day). Each day is
// scored exactly as Day scores that day's cross-section of the assets, so
// the percentile bands are those of the assets present that day.
//
// The result has one Scores per asset, each column nDays long; dst and its
// columns are reused where large enough, so a Scorer recomputing a panel
// of the same shape does not allocate. Panel returns an EINVALID
// *tokenlysis.Error naming the first column that is not nDays long.
func (s *Scorer) Panel(dst []Scores, assets []Inputs, nDays int) ([]Scores, error) {
	for _, in := range assets {
		if _, err := columnsLength(in, nDays); err != nil {
			return dst, err
		}
	}
	dst = NewPanelScores(dst, len(assets), nDays)
	return dst, s.panelDays(dst, assets, 0, nDays)
}

// PanelDays computes the scores of the days [from, to) of a panel into dst,
// which must hold one Scores per asset with columns covering those days
// (see NewPanelScores). Calls on disjoint day ranges write disjoint
// elements, so they may run concurrently on the same dst, each with its own
// Scorer. PanelDays returns an EINVALID *tokenlysis.Error when the range,
// dst or a column does not fit.
func (s *Scorer) PanelDays(dst []Scores, assets []Inputs, from, to int) error {
	if from < 0 || to < from {
		return tokenlysis.Errorf(tokenlysis.EINVALID, "invalid day range [%d, %d)", from, to)
	}
	if len(dst) != len(assets) {
		return tokenlysis.Errorf(tokenlysis.EINVALID, "%d score columns for %d assets", len(dst), len(assets))
	}
	for a, in := range assets {
		if _, err := columnsLength(in, -1); err != nil {
			return err
		}
		if n := maxLen(in); n != 0 && n < to {
			return tokenlysis.Errorf(tokenlysis.EINVALID, "asset %d: input columns have %d days, want at least %d", a, n, to)
		}
		if o := dst[a]; len(o.Liquidity) < to || len(o.Opportunity) < to || len(o.Global) < to {
			return tokenlysis.Errorf(tokenlysis.EINVALID, "asset %d: score columns shorter than %d days", a, to)
		}
	}
	return s.panelDays(dst, assets, from, to)
}

// panelBlock is the number of days panelDays moves between the per-asset
// and the per-day layouts at once: each asset's columns are then read and
// written 256 contiguous bytes at a time, which the hardware prefetches,
// instead of one scattered cache line per day. The day-major buffers hold
// 8 columns × panelBlock × assets values (2 MiB for 1,000 assets).
const panelBlock = 32

// panelDays scores the days [from, to) of a validated panel, panelBlock
// days at a time: it gathers the blocks' cross-sections into the Scorer's
// day-major buffers (taking log10 on the way), scores each day, and
// scatters the scores back to the assets.
func (s *Scorer) panelDays(dst []Scores, assets []Inputs, from, to int) error {
	n := len(assets)
	day := &s.day
	day.Volume = resize(day.Volume, panelBlock*n)
	day.MarketCap = resize(day.MarketCap, panelBlock*n)
	day.Listings = resize(day.Listings, panelBlock*n)
	day.RSI = resize(day.RSI, panelBlock*n)
	day.VolumeChange = resize(day.VolumeChange, panelBlock*n)
	s.out.resize(panelBlock * n)
	for d0 := from; d0 < to; d0 += panelBlock {
		d1 := min(d0+panelBlock, to)
		for a := range assets {
			in := &assets[a]
			gather(day.Volume, in.Volume, d0, d1, a, n, true)
			gather(day.MarketCap, in.MarketCap, d0, d1, a, n, true)
			gather(day.Listings, in.Listings, d0, d1, a, n, false)
			gather(day.RSI, in.RSI, d0, d1, a, n, false)
			gather(day.VolumeChange, in.VolumeChange, d0, d1, a, n, false)
		}
		for d := d0; d < d1; d++ {
			k, l := (d-d0)*n, (d-d0+1)*n
			c := Inputs{
				Volume: day.Volume[k:l], MarketCap: day.MarketCap[k:l], Listings: day.Listings[k:l],
				RSI: day.RSI[k:l], VolumeChange: day.VolumeChange[k:l],
			}
			out := Scores{Liquidity: s.out.Liquidity[k:l], Opportunity: s.out.Opportunity[k:l], Global: s.out.Global[k:l]}
			s.score(&out, &c)
		}
		for a := range dst {
			scatter(dst[a].Liquidity, s.out.Liquidity, d0, d1, a, n)
			scatter(dst[a].Opportunity, s.out.Opportunity, d0, d1, a, n)
			scatter(dst[a].Global, s.out.Global, d0, d1, a, n)
		}
	}
	return nil
}

// gather copies src[d0:d1] (an asset's column; NaN when nil) to
// blk[(d−d0)·n + a], taking log10 when logScale.
func gather(blk, src []float64, d0, d1, a, n int, logScale bool) {
	switch {
	case src == nil:
		for d := d0; d < d1; d++ {
			blk[(d-d0)*n+a] = math.NaN()
		}
	case logScale:
		for d, v := range src[d0:d1] {
			blk[d*n+a] = log10(v)
		}
	default:
		for d, v := range src[d0:d1] {
			blk[d*n+a] = v
		}
	}
}

// scatter copies blk[(d−d0)·n + a] back to dst[d0:d1].
func scatter(dst, blk []float64, d0, d1, a, n int) {
	for d := range dst[d0:d1] {
		dst[d0+d] = blk[d*n+a]
	}
}

// maxLen returns the length of in's non-nil columns (0 when all are nil).
func maxLen(in Inputs) int {
	return max(len(in.Volume), len(in.MarketCap), len(in.Listings), len(in.RSI), len(in.VolumeChange))
}

// at returns c[d], or NaN for a nil column.
func at(c []float64, d int) float64 {
	if c == nil {
		return math.NaN()
	}
	return c[d]
}
