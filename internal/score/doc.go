// Package score computes the Tokenlysis scores of a universe of assets as
// pure functions over columnar float64 data (NaN = missing): no I/O, no
// goroutines, no mutable package state (the only package variable is a
// read-only log10 table).
//
// # Definitions (as the Python original defined them)
//
// Each score is 0–100.
//
//   - Liquidity = 0.45·volume + 0.35·market cap + 0.20·listings. Volume and
//     market cap are log10-scaled (a value ≤ 0 or missing is missing),
//     listings are linear. Each component is normalised to 0–100 between
//     the 5th and 95th percentiles of that day's present values (numpy's
//     default linear interpolation): ≤ p5 → 0, ≥ p95 → 100, linear between.
//     If p5 == p95, a value equal to them scores 50 (below 0, above 100).
//     Missing components drop out and the remaining weights are
//     renormalised to sum to 1; with no component the liquidity is NaN.
//   - Opportunity = 100·(0.60·clamp((70 − RSI)/40, 0, 1) + 0.40·v), v the
//     day's volume change normalised to 0–1 in the same way. Missing RSI →
//     NaN (the RSI is the core of the signal); missing volume change → the
//     RSI term alone (weight renormalised to 1).
//   - Global = mean of the liquidity and opportunity present; NaN when none.
//
// # API
//
// A Scorer holds scratch buffers (its zero value is ready; one per
// goroutine):
//
//	func (s *Scorer) Day(dst *Scores, in Inputs) error
//	func (s *Scorer) Panel(dst []Scores, assets []Inputs, nDays int) ([]Scores, error)
//	func (s *Scorer) PanelDays(dst []Scores, assets []Inputs, from, to int) error
//	func NewPanelScores(dst []Scores, nAssets, nDays int) []Scores
//
// Day scores one day's cross-section (index = asset). Panel scores a whole
// history: each asset's Inputs are aligned on a common day index (NaN, or a
// nil column, where the asset has no value that day) and every day is
// scored exactly as Day would score that day's cross-section (the tests
// check bit-for-bit equality). PanelDays scores a range of days into
// columns sized by NewPanelScores, so that a caller can split the days
// between goroutines (one Scorer each).
//
// # How the panel is computed
//
// Only the bands (the p5 and p95 of each component on each day) need the
// cross-section. Panel computes them first, from day-major copies of the
// four normalised columns made 128 days at a time by a cache-blocked
// transposition; then it scores each asset along its own columns, reading
// and writing them sequentially. A band needs four order statistics, found
// by selection on the raw values (log10 is increasing, so only those four
// are taken to log10), in one pass that brackets them with the previous
// day's band, with an exact fallback to a full selection. log10 itself is
// a table-driven version accurate to about 1e-15. Once its buffers have
// grown, a Scorer does not allocate.
//
// Errors are *tokenlysis.Error with code EINVALID (mismatched column
// lengths, a bad day range).
package score
