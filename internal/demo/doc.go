// Package demo generates a bundled, deterministic demo universe of crypto
// assets with daily history, so that the system has something realistic to
// ingest and score when the live market API cannot be reached. It performs
// no I/O and keeps no state: Universe is a pure function of its Config, and
// the same Config yields byte-identical output on a given platform
// (math/rand/v2 PCG streams derived from Config.Seed, no global source).
//
// The defaults give 300 assets over four years (1,461 days) ending on
// 2025-01-14 (DefaultEnd), the last day of the real CoinGecko exports in
// internal/marketcsv/testdata. The date is fixed rather than "today" so that
// demo scores are reproducible; pass Config.End to move the window.
//
// The data is synthetic but shaped like the real market, so that scores
// spread across their range:
//
//   - Market caps follow a Zipf-like law with noise (rank 1 near $1.2T, rank
//     300 near $40M): a few large caps, many small ones, more than four
//     orders of magnitude apart. Assets are returned largest first.
//   - Prices are geometric random walks: a shared market factor with bull,
//     bear and sideways regimes and rare crash days, plus per-asset beta,
//     drift, volatility (by theme and size: memes and small caps swing
//     more), idiosyncratic hype/fade regimes and fat tails. Stablecoins stay
//     within 3% of 1.0.
//   - Market cap is price times a supply that grows over the history.
//   - Volume is market cap times a per-asset turnover with daily noise,
//     higher on big-move days, so it follows market cap loosely.
//   - Realistic defects: about 40% of assets outside the top 15 are listed
//     later (shorter history, at least 60 days), a few days are missing
//     (gaps, never the first or last day) and a few volumes are zero, mostly
//     in the first weeks after listing, as in early CoinGecko data.
//   - Categories are themes (Layer 1, Layer 2, DeFi, Meme, Gaming, AI,
//     Infrastructure, Oracle, Privacy, Storage, RWA, Exchange, Stablecoin);
//     about a third of non-stablecoins carry a second one. ListingsCount
//     rises with market cap. LogoURL is an SVG data: URL, never an external
//     host.
//
// IDs are "demo-" plus the lower-case symbol, so demo assets cannot collide
// with real CoinGecko IDs.
package demo
