// Package recalc is the recalculation engine: it recomputes every coin's
// indicators and daily cross-sectional scores from the stored price
// history and writes them to the scores table, as a plain Go API
// (Engine.Run) that the scores:recalculate job calls.
//
// # What a run does
//
//  1. Records a recalc_runs row (status running).
//  2. Loads the whole universe's history (every coin with history, all
//     days), as columns, from one snapshot (on SQLite, two ranges of
//     coins read at once on two connections).
//  3. Aligns the assets on a common calendar day index from the first to
//     the last day of any history. A day on which a coin has no price is a
//     gap: NaN in its columns, never a 0 or an interpolated price.
//  4. Computes per asset, over its own series in date order: RSI(14),
//     EMA(20), 30-day volatility, drawdown, 7- and 30-day momentum and
//     day-over-day volume change (internal/indicator). NaN (missing) days
//     do not count towards any window, so the price indicators equal those
//     of the observations alone, as in every technical-analysis library.
//     The volume change is day over day: NULL on the day after a gap.
//  5. Scores every day's cross-section (internal/score): the percentile
//     bands of a day are those of the assets that have a price that day.
//  6. Writes, for the coins of the scope and the days from Since (or the
//     first day) to the last day, one row per coin and day with a price,
//     in chunks of Config.ChunkAssets coins. Each chunk is one transaction
//     that replaces the chunk's coins' rows of that day range and refreshes
//     their latest_scores rows. Progress is reported after each chunk.
//  7. Records the run's end: succeeded or failed, assets, days, rows and
//     the sources of the data.
//
// # Column definitions (table scores; NULL = could not be computed)
//
//   - rsi: RSI(14), Wilder's smoothing seeded with the simple mean of the
//     first 14 gains and losses; 0–100. NULL for a coin's first 14
//     observations. A flat market (no gain, no loss) is 0, no loss is 100.
//   - volume_change: (v_t − v_{t−1}) / v_{t−1}, yesterday's and today's
//     24h volume, a fraction. NULL when either volume is unknown, the
//     previous day is a gap, or the previous volume is 0.
//   - volatility_30d: population standard deviation of the last 30 simple
//     daily returns × √365 (annualised; crypto trades every day), a
//     fraction. NULL for the first 30 observations (30 returns need 31).
//   - drawdown: maximum drawdown up to that day, 1 − price/peak at its
//     worst, a positive fraction (0 while the price only rises); defined
//     from the first observation.
//   - momentum_7d, momentum_30d: close_t / close_{t−n} − 1, n = 7 and 30
//     observations back, a fraction. NULL for the first n observations.
//   - ema_20: exponential moving average of the close over 20 periods
//     (α = 2/21) seeded with the simple mean of the first 20 closes, in the
//     quote currency (USD). NULL for the first 19 observations. 20 is the common
//     short-to-medium trend period (and Stock.Indicators' reference).
//   - liquidity (0–100): 0.45·volume + 0.35·market cap + 0.20·listings.
//     Volume and market cap are log10-scaled (≤ 0 or unknown is missing),
//     listings linear; each component is normalised to 0–100 between the
//     5th and 95th percentiles of that day's present values (linear
//     interpolation; ≤ p5 → 0, ≥ p95 → 100). A missing component drops out
//     and the other weights are renormalised; NULL when none is present.
//     The listings count is the coin's current one (no history of listings
//     exists), applied to every day the coin has a price.
//   - opportunity (0–100): 100·(0.60·clamp((70 − RSI)/40, 0, 1) + 0.40·v),
//     v the day's volume change normalised like a liquidity component.
//     NULL without RSI; without a volume change, the RSI term alone.
//   - global (0–100): the mean of liquidity and opportunity, ignoring a
//     missing one; NULL when both are.
//   - source: the source of the coin's price that day (coingecko, csv,
//     demo); run_id: the run that wrote the row.
//
// # Partial scope
//
// A percentile needs the cross-section, and Wilder's RSI, the EMA and the
// drawdown depend on the whole history before any day. So a run always
// loads and computes the whole universe over its whole history; Scope only
// restricts what is written: the rows of Scope.CoinIDs (nil = every coin)
// from Scope.Since (zero = the first day). A scoped run therefore writes
// exactly the values a full run would write for those rows given the same
// data; other rows are left as they are (their scores may predate newer
// history of other coins until the next full run).
//
// # Idempotence and concurrency
//
// Running the same scope twice on the same data gives the same rows: each
// chunk's stored range is compared with the recomputed rows and only the
// difference is written (Result.Changed, Result.Deleted), so a rerun on
// unchanged history rewrites nothing and rows keep the run_id of the run
// that last changed them. A run that dies leaves whole chunks behind, never
// half of one, and no duplicates: the primary key is (coin_id, day) and
// each chunk makes its range exactly the recomputed rows. Two runs of the
// same scope should not run at once; Scope.Key is the dedupe key for the
// job layer.
//
// # Speed
//
// The history is read into columns (in one scan on PostgreSQL, in two
// ranges of coins at once on SQLite, see sqlstore.Store.LoadHistory); the
// indicators (assets split between Config.Workers goroutines) and the
// scores (days split between them) reuse their buffers. While chunks are
// written (two at a time on PostgreSQL, one on SQLite:
// sqlstore.Store.ScoreWriters), the next is prepared. On PostgreSQL new
// rows go in with binary COPY; on SQLite with prepared multi-row INSERTs
// of up to 256 rows run on the driver's connection, while a second
// connection checkpoints the WAL the previous chunk left (see
// sqlstore.Store.WriteScores).
package recalc
