// Package marketcsv parses daily market history from CSV files: CoinGecko
// "usd-max" exports (snapped_at,price,market_cap,total_volume) and plain
// OHLCV bars (date,open,high,low,close,volume). The format is detected from
// the header. The package performs no I/O beyond reading the given reader.
//
// The output is one Row per UTC day in ascending date order, plus the Gaps
// between rows. Decisions an importer relies on:
//
//   - Missing values are NaN, the convention of the indicator code: an
//     empty market_cap (CoinGecko wrote one on 2017-04-02 for BTC, ETH and
//     DOGE), an empty volume, and the columns a format lacks (Open, High and
//     Low in CoinGecko rows, MarketCap in OHLCV rows).
//   - Zero is a value, not a missing one: CoinGecko writes zero volumes
//     (242 early BTC rows) and zero market caps (SHIB's first 274 days, the
//     first ETH row) where it had no data, and they are kept as 0 so that
//     callers can tell "reported as zero" from "not reported" and decide
//     themselves, e.g. to exclude them from a turnover ratio.
//   - The price (or close) is required and must be positive: a row without
//     one is meaningless and a zero would break every return computation.
//     Other negative numbers are rejected too.
//   - Missing days are never invented: they are reported as Gaps (BTC has
//     none on 2013-06-04 and 2015-01-28).
//   - Duplicate and out-of-order dates are errors, not sorted or merged
//     away: which of two rows for the same day is right cannot be known, and
//     an import must be complete and trustworthy or rejected. A time of day
//     is dropped (after applying an offset), so two rows of the same UTC day
//     are duplicates.
//   - Dates must fall in the years 1900 to 2199; anything else is corrupt.
//   - Numbers are plain decimals with an optional exponent
//     (9.722410112328183e-10); NaN, Inf, hexadecimal and digit separators
//     are rejected although strconv would accept them.
//   - A UTF-8 BOM, CRLF line endings, blank lines, a missing or present
//     final newline, quoted fields, spaces around values, header names in
//     any case and columns in any order are accepted.
//   - Reading is bounded: Config.MaxBytes and Config.MaxRows (defaults 16 MiB
//     and 100,000 rows) turn an oversized input into ETOOLARGE instead of
//     unbounded memory.
//
// Errors are *tokenlysis.Error values. A bad value is EINVALID with Field set
// to the column name and a message such as
// `line 17, column "price": invalid number "abc"`; line numbers count every
// physical line of the file, the header being line 1.
package marketcsv
