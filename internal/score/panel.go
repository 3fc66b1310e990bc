package score

import (
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

// panelBlock is the number of days whose cross-sections panelDays gathers
// at once. Each asset's columns are then read panelBlock·8 contiguous bytes
// at a time: the cost of the gather is mostly one cache and TLB miss per
// asset, column and block, so fewer, larger blocks are cheaper. The
// day-major buffers hold 4 columns × panelBlock × assets values (4 MiB for
// 1,000 assets).
const panelBlock = 128

// panelDays scores the days [from, to) of a validated panel in two phases.
// The bands of a day need the day's cross-section: they are computed
// panelBlock days at a time from day-major copies of the four normalised
// columns. The scores of an asset need only its own values and the bands
// of each day: they are computed asset by asset, reading and writing each
// asset's columns sequentially.
func (s *Scorer) panelDays(dst []Scores, assets []Inputs, from, to int) error {
	n := len(assets)
	if cap(s.bands) < to-from {
		s.bands = make([]dayBands, to-from)
	}
	bands := s.bands[:to-from]
	for c := range s.blk {
		s.blk[c] = resize(s.blk[c], panelBlock*n)
	}
	for d0 := from; d0 < to; d0 += panelBlock {
		d1 := min(d0+panelBlock, to)
		for c := range s.blk {
			s.gatherBlock(s.blk[c], assets, c, d0, d1)
		}
		for d := d0; d < d1; d++ {
			k := (d - d0) * n
			for c := range bands[d-from] {
				bands[d-from][c] = s.band(s.blk[c][k:k+n], c)
			}
		}
	}
	for a := range assets {
		in := &assets[a]
		cols := [...][]float64{in.Volume, in.MarketCap, in.Listings, in.RSI, in.VolumeChange}
		for i, c := range cols {
			if c == nil {
				cols[i] = s.nans(to)
			}
			cols[i] = cols[i][from:to]
		}
		out := Scores{
			Liquidity:   dst[a].Liquidity[from:to],
			Opportunity: dst[a].Opportunity[from:to],
			Global:      dst[a].Global[from:to],
		}
		scoreColumns(&out, cols[0], cols[1], cols[2], cols[3], cols[4], bands, 1)
	}
	return nil
}

// column returns in's column of component comp.
func column(in *Inputs, comp int) []float64 {
	switch comp {
	case compVolume:
		return in.Volume
	case compMarketCap:
		return in.MarketCap
	case compListings:
		return in.Listings
	default:
		return in.VolumeChange
	}
}

// gatherBlock copies the days [d0, d1) of component comp of every asset
// into blk, day-major (blk[(d−d0)·n + a]). It moves eight assets at a time,
// so that each cache line of blk is written whole, once, from eight
// sequential reads: a cache-blocked transposition.
func (s *Scorer) gatherBlock(blk []float64, assets []Inputs, comp, d0, d1 int) {
	n, m := len(assets), d1-d0
	var src [8][]float64
	for a0 := 0; a0 < n; a0 += 8 {
		g := min(8, n-a0)
		for j := range g {
			c := column(&assets[a0+j], comp)
			if c == nil {
				c = s.nans(d1)
			}
			src[j] = c[d0:d1]
		}
		if g < 8 {
			for j := range g {
				for d, v := range src[j] {
					blk[d*n+a0+j] = v
				}
			}
			continue
		}
		s0, s1, s2, s3 := src[0][:m], src[1][:m], src[2][:m], src[3][:m]
		s4, s5, s6, s7 := src[4][:m], src[5][:m], src[6][:m], src[7][:m]
		for d := range m {
			row := blk[d*n+a0 : d*n+a0+8 : d*n+a0+8]
			row[0], row[1], row[2], row[3] = s0[d], s1[d], s2[d], s3[d]
			row[4], row[5], row[6], row[7] = s4[d], s5[d], s6[d], s7[d]
		}
	}
}

// maxLen returns the length of in's non-nil columns (0 when all are nil).
func maxLen(in Inputs) int {
	return max(len(in.Volume), len(in.MarketCap), len(in.Listings), len(in.RSI), len(in.VolumeChange))
}
