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

// panelDays scores the days [from, to) of a validated panel: for each day it
// gathers the cross-section into the Scorer's day columns (taking log10 on
// the way), scores it, and scatters the scores back to the assets.
func (s *Scorer) panelDays(dst []Scores, assets []Inputs, from, to int) error {
	n := len(assets)
	day := &s.day
	day.Volume = resize(day.Volume, n)
	day.MarketCap = resize(day.MarketCap, n)
	day.Listings = resize(day.Listings, n)
	day.RSI = resize(day.RSI, n)
	day.VolumeChange = resize(day.VolumeChange, n)
	s.out.resize(n)
	nan := math.NaN()
	for d := from; d < to; d++ {
		for a := range assets {
			in := &assets[a]
			day.Volume[a] = nan
			if in.Volume != nil {
				day.Volume[a] = log10(in.Volume[d])
			}
			day.MarketCap[a] = nan
			if in.MarketCap != nil {
				day.MarketCap[a] = log10(in.MarketCap[d])
			}
			day.Listings[a] = at(in.Listings, d)
			day.RSI[a] = at(in.RSI, d)
			day.VolumeChange[a] = at(in.VolumeChange, d)
		}
		s.score(&s.out, day)
		for a := range dst {
			dst[a].Liquidity[d] = s.out.Liquidity[a]
			dst[a].Opportunity[d] = s.out.Opportunity[a]
			dst[a].Global[d] = s.out.Global[a]
		}
	}
	return nil
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
