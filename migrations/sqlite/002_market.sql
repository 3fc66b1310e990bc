-- 002_market: coins, market snapshots, daily price history, daily scores,
-- the latest score of each coin, Fear & Greed, recalculation runs (SQLite).
--
-- Days are 'YYYY-MM-DD' TEXT (UTC calendar days), so that comparison and
-- ordering are by day; times are TIMESTAMP text as in 001_core. A missing
-- value is NULL, never an invented 0 (a real 0 stays 0). The per-day tables
-- are WITHOUT ROWID: their primary key (coin_id, day) is the clustered
-- order every read and write follows.

-- +migrate Up
CREATE TABLE coins (
    id             TEXT NOT NULL PRIMARY KEY,
    symbol         TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    categories     TEXT NOT NULL DEFAULT '[]',
    logo_url       TEXT NOT NULL DEFAULT '',
    listings_count INTEGER NULL,
    source         TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv')),
    updated_at     TIMESTAMP NOT NULL
);

CREATE TABLE market_snapshots (
    coin_id    TEXT NOT NULL PRIMARY KEY REFERENCES coins (id) ON DELETE CASCADE,
    price      REAL NULL,
    market_cap REAL NULL,
    volume_24h REAL NULL,
    rank       INTEGER NULL,
    change_24h REAL NULL,
    as_of      TIMESTAMP NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv'))
);

CREATE INDEX market_snapshots_market_cap_idx ON market_snapshots (market_cap DESC, coin_id);

CREATE TABLE price_history (
    coin_id    TEXT NOT NULL REFERENCES coins (id) ON DELETE CASCADE,
    day        TEXT NOT NULL CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    price      REAL NOT NULL,
    market_cap REAL NULL,
    volume     REAL NULL,
    source     TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv')),
    PRIMARY KEY (coin_id, day)
) WITHOUT ROWID;

-- scores has no foreign key to coins: it is derived data, rewritten in
-- bulk by every recalculation (1.8 M rows for 1,000 coins over five
-- years), and a per-row key check roughly doubles the write time (on
-- PostgreSQL it is a trigger per row, also under COPY). Whatever deletes a
-- coin deletes its scores; latest_scores, small, keeps its foreign key.
CREATE TABLE scores (
    coin_id        TEXT NOT NULL,
    day            TEXT NOT NULL,
    rsi            REAL NULL,
    volume_change  REAL NULL,
    volatility_30d REAL NULL,
    drawdown       REAL NULL,
    momentum_7d    REAL NULL,
    momentum_30d   REAL NULL,
    ema_20         REAL NULL,
    liquidity      REAL NULL,
    opportunity    REAL NULL,
    global         REAL NULL,
    source         TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    PRIMARY KEY (coin_id, day)
) WITHOUT ROWID;

-- latest_scores holds, per coin, a copy of its scores row of the latest
-- day with that day's price, market cap and volume, so that the list of
-- latest scores is an index scan of at most a few thousand rows instead of
-- a GROUP BY over the whole history. Each write of scores refreshes it in
-- the same transaction.
CREATE TABLE latest_scores (
    coin_id        TEXT NOT NULL PRIMARY KEY REFERENCES coins (id) ON DELETE CASCADE,
    day            TEXT NOT NULL,
    rsi            REAL NULL,
    volume_change  REAL NULL,
    volatility_30d REAL NULL,
    drawdown       REAL NULL,
    momentum_7d    REAL NULL,
    momentum_30d   REAL NULL,
    ema_20         REAL NULL,
    liquidity      REAL NULL,
    opportunity    REAL NULL,
    global         REAL NULL,
    price          REAL NULL,
    market_cap     REAL NULL,
    volume         REAL NULL,
    source         TEXT NOT NULL,
    run_id         TEXT NOT NULL
);

-- SQLite sorts NULL first ascending, so these DESC indexes put NULL last.
CREATE INDEX latest_scores_global_idx ON latest_scores (global DESC, coin_id);
CREATE INDEX latest_scores_liquidity_idx ON latest_scores (liquidity DESC, coin_id);
CREATE INDEX latest_scores_opportunity_idx ON latest_scores (opportunity DESC, coin_id);
CREATE INDEX latest_scores_market_cap_idx ON latest_scores (market_cap DESC, coin_id);

CREATE TABLE fng (
    day            TEXT NOT NULL PRIMARY KEY CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    value          INTEGER NOT NULL CHECK (value BETWEEN 0 AND 100),
    classification TEXT NOT NULL DEFAULT '',
    source         TEXT NOT NULL
);

CREATE TABLE recalc_runs (
    id           TEXT NOT NULL PRIMARY KEY,
    job_id       TEXT NULL,
    scope        TEXT NOT NULL,
    since        TEXT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    assets       INTEGER NOT NULL DEFAULT 0,
    days         INTEGER NOT NULL DEFAULT 0,
    rows_written BIGINT NOT NULL DEFAULT 0,
    sources      TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP NULL,
    error        TEXT NOT NULL DEFAULT ''
);

CREATE INDEX recalc_runs_started_at_idx ON recalc_runs (started_at);

-- +migrate Down
DROP TABLE recalc_runs;
DROP TABLE fng;
DROP TABLE latest_scores;
DROP TABLE scores;
DROP TABLE price_history;
DROP TABLE market_snapshots;
DROP TABLE coins;
