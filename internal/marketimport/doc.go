// Package marketimport loads daily market history into the SQL store from
// the sources that do not need the network: a CSV file (Import) and the
// bundled demo universe (SeedDemo).
//
// Import parses a CSV with internal/marketcsv, the format detected from the
// header (CoinGecko's "usd-max" export snapped_at,price,market_cap,
// total_volume, or plain date,open,high,low,close,volume), and writes the
// coin's history in one transaction: the file lands whole or not at all. A
// malformed line is an EINVALID error naming the line and the column, and
// nothing is written. A day already stored is replaced by the file's, the
// other stored days are kept. When the coin does not exist yet it is
// created with source "csv" and the symbol and name of Meta; an existing
// coin's record is left as it is. Rows are stored with source "csv".
//
// What lands, per the marketcsv rules: one row per UTC day; an empty
// market cap or volume is NULL (unknown), a 0 in the file stays 0; the
// OHLCV format has no market cap (NULL) and its close is the price; days
// missing from the file are not invented and are reported as Summary.Gaps.
//
// SeedDemo writes the deterministic demo universe of internal/demo (coins
// with their categories, listings and logos, a snapshot from each coin's
// last day, and the full daily history), everything with source "demo", in
// one transaction. It is the embedded default's fallback when the market
// API cannot be reached, and is idempotent: seeding twice leaves the same
// rows.
package marketimport
