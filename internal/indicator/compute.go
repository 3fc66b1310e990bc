package indicator

import (
	"cmp"
	"math"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Default parameters of Compute (the product's choices).
const (
	DefaultRSIPeriod        = 14
	DefaultEMAPeriod        = 20
	DefaultVolatilityPeriod = 30
	DefaultAnnualization    = 365 // crypto trades every day
	DefaultMomentumShort    = 7
	DefaultMomentumLong     = 30
)

// Config holds the parameters of Compute. A zero field means its default.
type Config struct {
	RSIPeriod        int     // RSI changes; default 14
	EMAPeriod        int     // EMA of the close; default 20
	VolatilityPeriod int     // returns in the realised volatility; default 30
	Annualization    float64 // periods per year for the volatility; default 365
	MomentumShort    int     // observations of the short momentum; default 7
	MomentumLong     int     // observations of the long momentum; default 30
}

// withDefaults returns c with its zero fields set to their defaults, or an
// EINVALID error naming the first negative field.
func (c Config) withDefaults() (Config, error) {
	ints := []struct {
		field string
		v     int
	}{
		{"rsi_period", c.RSIPeriod},
		{"ema_period", c.EMAPeriod},
		{"volatility_period", c.VolatilityPeriod},
		{"momentum_short", c.MomentumShort},
		{"momentum_long", c.MomentumLong},
	}
	for _, f := range ints {
		if f.v < 0 {
			return c, tokenlysis.FieldErrorf(f.field, "%s must be positive, got %d", f.field, f.v)
		}
	}
	if c.Annualization < 0 || math.IsNaN(c.Annualization) || math.IsInf(c.Annualization, 0) {
		return c, tokenlysis.FieldErrorf("annualization", "annualization must be a positive number, got %v", c.Annualization)
	}
	c.RSIPeriod = cmp.Or(c.RSIPeriod, DefaultRSIPeriod)
	c.EMAPeriod = cmp.Or(c.EMAPeriod, DefaultEMAPeriod)
	c.VolatilityPeriod = cmp.Or(c.VolatilityPeriod, DefaultVolatilityPeriod)
	c.Annualization = cmp.Or(c.Annualization, DefaultAnnualization)
	c.MomentumShort = cmp.Or(c.MomentumShort, DefaultMomentumShort)
	c.MomentumLong = cmp.Or(c.MomentumLong, DefaultMomentumLong)
	return c, nil
}

// Set holds the indicator columns of one asset, each as long as the input
// and indexed like it. Compute reuses the columns' capacity, so one Set per
// worker can serve every asset without allocating.
type Set struct {
	RSI           []float64 // RSI(RSIPeriod) of the close
	EMA           []float64 // EMA(EMAPeriod) of the close
	Volatility    []float64 // realised volatility over VolatilityPeriod returns, annualised
	Drawdown      []float64 // running maximum drawdown, a positive fraction
	MomentumShort []float64 // close/close MomentumShort observations back − 1
	MomentumLong  []float64 // close/close MomentumLong observations back − 1
	VolumeChange  []float64 // day-over-day volume change
}

// Compute writes every indicator of one asset into dst: closes and volumes
// are the asset's points in date order, of equal length (NaN = missing).
// It returns an EINVALID *tokenlysis.Error when the lengths differ or a
// Config field is invalid.
func Compute(dst *Set, closes, volumes []float64, cfg Config) error {
	if len(volumes) != len(closes) {
		return tokenlysis.FieldErrorf("volumes", "volumes has %d points, closes %d", len(volumes), len(closes))
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	n := len(closes)
	dst.RSI = resize(dst.RSI, n)
	dst.EMA = resize(dst.EMA, n)
	dst.Volatility = resize(dst.Volatility, n)
	dst.Drawdown = resize(dst.Drawdown, n)
	dst.MomentumShort = resize(dst.MomentumShort, n)
	dst.MomentumLong = resize(dst.MomentumLong, n)
	rsiOut, emaOut, volOut := dst.RSI[:n], dst.EMA[:n], dst.Volatility[:n]
	ddOut, msOut, mlOut := dst.Drawdown[:n], dst.MomentumShort[:n], dst.MomentumLong[:n]

	// One pass over the closes for every indicator: the same state
	// machines as the exported functions, so the same values, but their
	// dependency chains overlap in the processor instead of running one
	// after the other.
	rsi := newRSI(cfg.RSIPeriod)
	ema := newEMA(cfg.EMAPeriod)
	var stack [64]float64
	vol := newVolatility(cfg.VolatilityPeriod, cfg.Annualization, ringFor(stack[:], cfg.VolatilityPeriod))
	var dd drawdownState
	ms := newMomentum(closes, cfg.MomentumShort)
	ml := newMomentum(closes, cfg.MomentumLong)
	nan := math.NaN()
	for i, c := range closes {
		if isValue(c) {
			emaOut[i] = ema.next(c)
		} else {
			emaOut[i] = nan
		}
		if !isPrice(c) {
			rsiOut[i], volOut[i], ddOut[i], msOut[i], mlOut[i] = nan, nan, nan, nan, nan
			continue
		}
		rsiOut[i] = rsi.next(c)
		volOut[i] = vol.next(c)
		ddOut[i] = dd.next(c)
		msOut[i] = ms.next(i, c)
		mlOut[i] = ml.next(i, c)
	}
	dst.VolumeChange = VolumeChange(dst.VolumeChange, volumes)
	return nil
}
