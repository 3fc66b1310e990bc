package demo

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultAssets = 300
	DefaultDays   = 4*365 + 1
)

// DefaultEnd is the last day of a demo universe when Config.End is zero:
// 2025-01-14, the last day of the real CoinGecko exports under
// internal/marketcsv/testdata, so demo and real histories line up. It is
// fixed, not today, so that the same Config always yields the same data.
func DefaultEnd() time.Time { return time.Date(2025, 1, 14, 0, 0, 0, 0, time.UTC) }

// Config shapes a universe. Zero (or negative) fields take the defaults.
type Config struct {
	// Assets is the number of assets; default DefaultAssets.
	Assets int
	// Days is the length of the full history, ending on End; default
	// DefaultDays (four years). Assets listed later have fewer days.
	Days int
	// End is the last day of every history; default DefaultEnd. Only its
	// UTC calendar day counts.
	End time.Time
	// Seed selects the universe; 0 is a seed like any other.
	Seed int64
}

// Asset is one demo crypto asset with its daily history.
type Asset struct {
	// ID is "demo-" followed by the lower-case symbol; unique.
	ID     string
	Symbol string
	Name   string
	// Categories holds the asset's theme first, then at most one more.
	Categories []string
	// ListingsCount is the number of exchange listings, rising with size.
	ListingsCount int
	// LogoURL is a data: URL (an SVG disc with the symbol): no external host.
	LogoURL string
	// History is in ascending date order, at most one Day per UTC day, and
	// always ends on Config.End. A few days are missing (gaps).
	History []Day
}

// Day is one day of an asset's history. Price and MarketCap are always > 0;
// Volume is >= 0, with a few zero days as in real exports.
type Day struct {
	Date      time.Time
	Price     float64
	MarketCap float64
	Volume    float64
}

// theme is a category with the traits that drive its assets' series.
type theme struct {
	name     string
	weight   float64  // share of assets
	vol      float64  // typical daily log-return volatility
	turnover float64  // typical daily volume / market cap
	suffixes []string // name suffixes
}

const stablecoin = "Stablecoin"

func themes() []theme {
	return []theme{
		{"Layer 1", 12, 0.026, 0.04, []string{"Chain", "Network", ""}},
		{"Layer 2", 6, 0.034, 0.05, []string{"Rollup", "Layer", "L2"}},
		{"DeFi", 19, 0.038, 0.05, []string{"Swap", "Finance", "Lend", "DAO"}},
		{"Meme", 15, 0.053, 0.10, []string{"Inu", "Doge", "Cat", "Frog"}},
		{"Gaming", 10, 0.041, 0.06, []string{"Quest", "Arena", "Verse"}},
		{"AI", 10, 0.045, 0.07, []string{"AI", "Mind", "Neural"}},
		{"Infrastructure", 8, 0.034, 0.04, []string{"Protocol", "Node", "Grid"}},
		{"Oracle", 3, 0.034, 0.04, []string{"Oracle", "Link"}},
		{"Privacy", 3, 0.034, 0.05, []string{"Cash", "Shield"}},
		{"Storage", 3, 0.034, 0.04, []string{"Storage", "Vault"}},
		{"RWA", 4, 0.030, 0.03, []string{"Estate", "Bond", "Gold"}},
		{"Exchange", 3, 0.026, 0.03, []string{"Exchange Token", "Trade"}},
		{stablecoin, 4, 0.001, 0.30, []string{"USD", "Dollar"}},
	}
}

// Categories returns every category a demo asset can have, in a fixed order.
func Categories() []string {
	ts := themes()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.name
	}
	return names
}

// Universe returns a deterministic demo universe: the same Config gives
// byte-identical assets, in descending order of final market cap. It does
// no I/O and uses no global random source; cost is linear in Assets × Days
// (the default, 300 assets over 1,461 days, takes about 0.1 s on one core
// and allocates about 25 MB).
func Universe(cfg Config) []Asset {
	n := cfg.Assets
	if n <= 0 {
		n = DefaultAssets
	}
	days := cfg.Days
	if days <= 0 {
		days = DefaultDays
	}
	end := cfg.End
	if end.IsZero() {
		end = DefaultEnd()
	}
	end = end.UTC()
	end = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -(days - 1))

	seed := uint64(cfg.Seed)
	meta := newRand(seed, 0)
	market := marketReturns(newRand(seed, 1), days)
	ts := themes()
	taken := map[string]bool{}

	assets := make([]Asset, n)
	for i := range n {
		s := newSpec(meta, ts, i, days, taken)
		assets[i] = s.build(newRand(seed, uint64(i)+2), market, start)
	}
	slices.SortStableFunc(assets, func(a, b Asset) int {
		ca, cb := a.History[len(a.History)-1].MarketCap, b.History[len(b.History)-1].MarketCap
		return cmp.Or(cmp.Compare(cb, ca), strings.Compare(a.ID, b.ID))
	})
	return assets
}

// newRand returns a PCG generator for one stream of a seed. The stream
// number is mixed so that neighbouring streams are unrelated.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix(seed), splitmix(seed^splitmix(stream+0x9e3779b97f4a7c15))))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// regime is a state of a Markov chain of market moods.
type regime struct {
	drift, volScale float64
}

// marketReturns is the common crypto-market factor: daily log returns that
// switch between bull, bear and sideways regimes every few months, with
// occasional crashes and squeezes.
func marketReturns(rng *rand.Rand, days int) []float64 {
	regimes := [...]regime{
		{drift: 0.0030, volScale: 0.9},  // bull
		{drift: -0.0028, volScale: 1.3}, // bear
		{drift: 0.0002, volScale: 0.7},  // sideways
	}
	const vol = 0.028
	out := make([]float64, days)
	state := rng.IntN(len(regimes))
	for t := range out {
		if rng.Float64() < 1.0/120 {
			state = rng.IntN(len(regimes))
		}
		r := regimes[state]
		x := r.drift + vol*r.volScale*rng.NormFloat64()
		if rng.Float64() < 0.004 {
			x += 0.12 * rng.NormFloat64() // a crash or squeeze day
		}
		out[t] = x
	}
	return out
}

// spec is the drawn personality of one asset.
type spec struct {
	symbol, name string
	categories   []string
	stable       bool
	capEnd       float64 // market cap on the last day
	vol          float64 // idiosyncratic daily volatility
	beta         float64 // exposure to the market factor
	drift        float64 // idiosyncratic daily drift
	turnover     float64 // mean volume / market cap
	inflation    float64 // share of the final supply issued during the history
	price0       float64 // price on the listing day
	listing      int     // index of the first day
	listings     int
	hue          int
}

func newSpec(rng *rand.Rand, ts []theme, rank, days int, taken map[string]bool) spec {
	var th theme
	switch rank {
	case 0, 1:
		th = ts[0] // the two largest assets are layer 1s, as in the real market
	case 2:
		th = ts[len(ts)-1] // and a stablecoin comes next
	default:
		th = pickTheme(rng, ts)
	}
	s := spec{stable: th.name == stablecoin, categories: []string{th.name}}
	if !s.stable && rng.Float64() < 0.35 {
		if other := pickTheme(rng, ts); other.name != th.name && other.name != stablecoin {
			s.categories = append(s.categories, other.name)
		}
	}
	s.symbol, s.name = newName(rng, th, taken)

	// Zipf-like sizes: rank 1 near $1.2T, rank 300 near $40M, with noise,
	// so that a few large caps tower over many small ones.
	s.capEnd = 1.2e12 * math.Pow(float64(rank+1), -1.8) * math.Exp(0.4*rng.NormFloat64())
	smallness := math.Log10(1.2e12 / s.capEnd) // 0 for the largest, ~5 for the smallest
	s.vol = th.vol * math.Exp(0.25*rng.NormFloat64()) * (1 + 0.05*smallness)
	s.beta = 0.5 + 0.8*rng.Float64()
	s.drift = 0.4 * rng.NormFloat64() / 365
	s.turnover = th.turnover * math.Exp(0.5*rng.NormFloat64())
	s.inflation = 0.6 * rng.Float64()
	s.price0 = math.Pow(10, -4+6*rng.Float64())
	if th.name == "Meme" {
		s.price0 /= 1e4
	}
	if s.stable {
		s.vol, s.beta, s.drift, s.inflation, s.price0 = 0.0015, 0, 0, 0.8*rng.Float64(), 1
	}
	if rank >= 15 && days >= 120 && rng.Float64() < 0.45 {
		s.listing = 1 + rng.IntN(days-60)
	}
	s.listings = max(1, int(math.Round(math.Exp(1+0.35*math.Log(s.capEnd/1e6)+0.4*rng.NormFloat64()))))
	s.hue = rng.IntN(360)
	return s
}

func pickTheme(rng *rand.Rand, ts []theme) theme {
	var total float64
	for _, t := range ts {
		total += t.weight
	}
	x := rng.Float64() * total
	for _, t := range ts {
		if x < t.weight {
			return t
		}
		x -= t.weight
	}
	return ts[len(ts)-1]
}

// newName draws an unused word and derives the symbol (3 to 5 letters) and
// the display name from it.
func newName(rng *rand.Rand, th theme, taken map[string]bool) (symbol, name string) {
	prefixes := [...]string{"Ar", "Bel", "Cor", "Dra", "El", "Fen", "Gal", "Hex", "Ion", "Jun", "Kai", "Lum", "Mor", "Nex", "Ob", "Pyr", "Qua", "Ryn", "Sol", "Tor", "Ul", "Vex", "Wyn", "Xal", "Yor", "Zen", "Ast", "Bri", "Cyn", "Dex", "Flo", "Gry", "Hal", "Kry", "Lyr", "Myr", "Nov", "Orb", "Pax", "Rho", "Syl", "Tav", "Umb", "Vor", "Zyr"}
	middles := [...]string{"a", "e", "i", "o", "u", "ar", "en", "is", "on", "ul", ""}
	ends := [...]string{"ex", "ium", "on", "ix", "ara", "os", "yn", "um", "is", "ea", "or", "ax"}
	for attempt := 0; ; attempt++ {
		word := prefixes[rng.IntN(len(prefixes))] + middles[rng.IntN(len(middles))] + ends[rng.IntN(len(ends))]
		if attempt > 50 {
			word += string(rune('a' + rng.IntN(26))) // the word space is large; this is a safety net
		}
		if taken["w:"+word] {
			continue
		}
		upper := strings.ToUpper(word)
		var candidates []string
		if th.name == stablecoin {
			candidates = []string{upper[:1] + "USD", upper[:2] + "USD"}
		} else {
			candidates = []string{upper[:min(3, len(upper))], upper[:min(4, len(upper))], upper[:min(5, len(upper))]}
		}
		for _, sym := range candidates {
			if taken["s:"+sym] {
				continue
			}
			taken["w:"+word], taken["s:"+sym] = true, true
			suffix := th.suffixes[rng.IntN(len(th.suffixes))]
			return sym, strings.TrimSpace(word + " " + suffix)
		}
	}
}

// build draws the asset's history from its own random stream.
func (s spec) build(rng *rand.Rand, market []float64, start time.Time) Asset {
	days := len(market)
	n := days - s.listing
	prices := make([]float64, n)
	returns := make([]float64, n)

	// Log-price walk: market factor, idiosyncratic regimes and drift, fat
	// tails, and a turbulent first month after listing.
	idio := [...]regime{
		{drift: 0, volScale: 1},        // neutral
		{drift: 0.003, volScale: 1.2},  // hype
		{drift: -0.002, volScale: 1.1}, // fading
	}
	state := 0
	lp := math.Log(s.price0)
	stableDev := 0.0
	for t := range n {
		if s.stable {
			stableDev = 0.7*stableDev + s.vol*rng.NormFloat64()
			stableDev = min(max(stableDev, -0.03), 0.03)
			prices[t] = 1 + stableDev
			if t > 0 {
				returns[t] = math.Log(prices[t] / prices[t-1])
			}
			continue
		}
		if t > 0 {
			if rng.Float64() < 1.0/90 {
				state = rng.IntN(len(idio))
			}
			r := idio[state]
			sigma := s.vol * r.volScale
			if t < 30 {
				sigma *= 1.5
			}
			eps := rng.NormFloat64()
			if rng.Float64() < 0.02 {
				eps *= 3
			}
			x := s.beta*market[s.listing+t] + s.drift + r.drift + sigma*eps
			x = min(max(x, -0.9), 0.9)
			lp += x
			returns[t] = x
		}
		prices[t] = math.Exp(lp)
	}

	// Supply grows linearly to the final supply, which sets the final cap.
	supplyEnd := s.capEnd / prices[n-1]
	hist := make([]Day, 0, n)
	for t := range n {
		frac := 1.0
		if n > 1 {
			frac = float64(t) / float64(n-1)
		}
		mcap := prices[t] * supplyEnd * (1 - s.inflation*(1-frac))
		noise := math.Exp(0.45*rng.NormFloat64() - 0.1)
		volume := mcap * s.turnover * noise * (1 + 8*math.Abs(returns[t]))
		switch u := rng.Float64(); {
		case t < 20 && s.listing > 0 && u < 0.15, u < 0.0004:
			volume = 0 // no trades reported, as in early real data
		}
		if t > 0 && t < n-1 && rng.Float64() < 0.0006 {
			continue // a missing day
		}
		hist = append(hist, Day{
			Date:      start.Add(time.Duration(s.listing+t) * 24 * time.Hour),
			Price:     prices[t],
			MarketCap: mcap,
			Volume:    volume,
		})
	}

	return Asset{
		ID:            "demo-" + strings.ToLower(s.symbol),
		Symbol:        s.symbol,
		Name:          s.name,
		Categories:    s.categories,
		ListingsCount: s.listings,
		LogoURL:       logo(s.symbol, s.hue),
		History:       hist,
	}
}

// logo renders a disc in the asset's colour with its symbol's first letters
// as an SVG data: URL, so that the UI never fetches an external image.
func logo(symbol string, hue int) string {
	r, g, b := hsl(float64(hue), 0.55, 0.45)
	svg := fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">`+
		`<circle cx="32" cy="32" r="32" fill="#%02x%02x%02x"/>`+
		`<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="bold" text-anchor="middle" fill="#ffffff">%s</text></svg>`,
		r, g, b, symbol[:min(2, len(symbol))])
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg))
}

// hsl converts a colour from HSL (h in degrees) to 8-bit RGB.
func hsl(h, s, l float64) (r, g, b uint8) {
	c := (1 - math.Abs(2*l-1)) * s
	hp := h / 60
	x := c * (1 - math.Abs(math.Mod(hp, 2)-1))
	var rf, gf, bf float64
	switch {
	case hp < 1:
		rf, gf = c, x
	case hp < 2:
		rf, gf = x, c
	case hp < 3:
		gf, bf = c, x
	case hp < 4:
		gf, bf = x, c
	case hp < 5:
		rf, bf = x, c
	default:
		rf, bf = c, x
	}
	m := l - c/2
	to8 := func(v float64) uint8 { return uint8(math.Round((v + m) * 255)) }
	return to8(rf), to8(gf), to8(bf)
}
