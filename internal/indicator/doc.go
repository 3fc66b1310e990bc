// Package indicator computes per-asset technical indicators as pure
// functions over columnar float64 series: no I/O, no globals, no goroutines.
//
// # Conventions
//
// NaN means missing: an absent point in the input, or "not enough history"
// in the output (never 0). Each function takes its points in date order
// and writes into a caller-provided slice:
//
//	func RSI(dst, closes []float64, period int) []float64
//
// dst is resliced to len(input) and returned; it is only allocated when its
// capacity is too small, so a caller that keeps its buffers (see Set and
// Compute) computes any number of assets without allocating. dst must not
// share memory with the input. An invalid period (< 1) is a programming
// error and panics; Compute validates a Config and returns an error
// instead.
//
// The input is normally an asset's observed points (a day without an
// observation is simply not there), but an input point that is not a valid
// number is treated as absent as well: its output is NaN and it does not
// count towards any history or window. For the price indicators (RSI,
// Volatility, Momentum, Drawdown) a valid close is a positive finite
// number; for the value indicators (EMA, StdDev) any finite number.
// Passing a day-aligned column with NaN on missing days therefore gives the
// same values, at the same days, as passing the observations alone.
// VolumeChange is the exception: it always compares with the immediately
// preceding element.
//
// # Functions
//
//   - RSI(dst, closes, period): Wilder's RSI seeded with the simple mean of
//     the first period gains and losses (as Stock.Indicators and TA-Lib);
//     flat market (both averages 0) → 0 as in TA-Lib, average loss 0 → 100.
//   - EMA(dst, values, period): seeded with the SMA of the first period values.
//   - StdDev(dst, values, period): rolling population standard deviation.
//   - Volatility(dst, closes, period, annualization): population standard
//     deviation of the last period simple returns × √annualization
//     (Tulip's volatility uses 252; Tokenlysis uses 365).
//   - VolumeChange(dst, volumes): (v_t − v_{t−1}) / v_{t−1}; NaN when the
//     previous volume is 0 or missing.
//   - Momentum(dst, closes, n): close_t / close_{t−n} − 1 over n observations.
//   - Drawdown(dst, closes): running maximum drawdown, a positive fraction;
//     MaxDrawdown(closes) returns its last value.
//   - Compute(dst *Set, closes, volumes, Config): all of the product's
//     columns for one asset into reusable buffers (RSI 14, EMA 20,
//     volatility 30 × √365, drawdown, momentum 7 and 30, volume change), in
//     one pass over the closes with the same per-point state machines as
//     the functions above, hence the same values.
//
// # Reference values
//
// The tests pin RSI, EMA and StdDev to Stock.Indicators' published results
// (1e-9), RSI to TA-Lib's (including inputs around 2.4e-7, where TA-Lib
// before 0.6 printed 0) and to Tulip's, and Volatility to Tulip's; see
// testdata/README.md.
package indicator
