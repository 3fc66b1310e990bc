-- 002_market: coins, market snapshots, daily price history, daily scores,
-- the latest score of each coin, Fear & Greed, recalculation runs
-- (PostgreSQL).
--
-- Days are DATE (UTC calendar days); times are TIMESTAMPTZ; categories are
-- a JSONB array of strings. Coin IDs compare byte-wise (COLLATE "C") as on
-- SQLite, so that ordering and keyset cursors agree on both engines. A
-- missing value is NULL, never an invented 0 (a real 0 stays 0).

-- +migrate Up
CREATE TABLE coins (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    symbol         TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    categories     JSONB NOT NULL DEFAULT '[]',
    logo_url       TEXT NOT NULL DEFAULT '',
    listings_count INTEGER NULL,
    source         TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv')),
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE market_snapshots (
    coin_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES coins (id) ON DELETE CASCADE,
    price      DOUBLE PRECISION NULL,
    market_cap DOUBLE PRECISION NULL,
    volume_24h DOUBLE PRECISION NULL,
    rank       INTEGER NULL,
    change_24h DOUBLE PRECISION NULL,
    as_of      TIMESTAMPTZ NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv'))
);

CREATE INDEX market_snapshots_market_cap_idx ON market_snapshots (market_cap DESC NULLS LAST, coin_id);

CREATE TABLE price_history (
    coin_id    TEXT COLLATE "C" NOT NULL REFERENCES coins (id) ON DELETE CASCADE,
    day        DATE NOT NULL,
    price      DOUBLE PRECISION NOT NULL,
    market_cap DOUBLE PRECISION NULL,
    volume     DOUBLE PRECISION NULL,
    source     TEXT NOT NULL CHECK (source IN ('coingecko', 'demo', 'csv')),
    PRIMARY KEY (coin_id, day)
);

-- scores has no foreign key to coins: it is derived data, rewritten in
-- bulk by every recalculation (1.8 M rows for 1,000 coins over five
-- years), and a per-row key check roughly doubles the write time (on
-- PostgreSQL it is a trigger per row, also under COPY). Whatever deletes a
-- coin deletes its scores; latest_scores, small, keeps its foreign key.
CREATE TABLE scores (
    coin_id        TEXT COLLATE "C" NOT NULL,
    day            DATE NOT NULL,
    rsi            DOUBLE PRECISION NULL,
    volume_change  DOUBLE PRECISION NULL,
    volatility_30d DOUBLE PRECISION NULL,
    drawdown       DOUBLE PRECISION NULL,
    momentum_7d    DOUBLE PRECISION NULL,
    momentum_30d   DOUBLE PRECISION NULL,
    ema_20         DOUBLE PRECISION NULL,
    liquidity      DOUBLE PRECISION NULL,
    opportunity    DOUBLE PRECISION NULL,
    global         DOUBLE PRECISION NULL,
    source         TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    PRIMARY KEY (coin_id, day)
);

-- latest_scores holds, per coin, a copy of its scores row of the latest
-- day with that day's price, market cap and volume, so that the list of
-- latest scores is an index scan of at most a few thousand rows instead of
-- a GROUP BY over the whole history. Each write of scores refreshes it in
-- the same transaction.
CREATE TABLE latest_scores (
    coin_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES coins (id) ON DELETE CASCADE,
    day            DATE NOT NULL,
    rsi            DOUBLE PRECISION NULL,
    volume_change  DOUBLE PRECISION NULL,
    volatility_30d DOUBLE PRECISION NULL,
    drawdown       DOUBLE PRECISION NULL,
    momentum_7d    DOUBLE PRECISION NULL,
    momentum_30d   DOUBLE PRECISION NULL,
    ema_20         DOUBLE PRECISION NULL,
    liquidity      DOUBLE PRECISION NULL,
    opportunity    DOUBLE PRECISION NULL,
    global         DOUBLE PRECISION NULL,
    price          DOUBLE PRECISION NULL,
    market_cap     DOUBLE PRECISION NULL,
    volume         DOUBLE PRECISION NULL,
    source         TEXT NOT NULL,
    run_id         TEXT NOT NULL
);

-- NULLS LAST as in the queries (SQLite's DESC order).
CREATE INDEX latest_scores_global_idx ON latest_scores (global DESC NULLS LAST, coin_id);
CREATE INDEX latest_scores_liquidity_idx ON latest_scores (liquidity DESC NULLS LAST, coin_id);
CREATE INDEX latest_scores_opportunity_idx ON latest_scores (opportunity DESC NULLS LAST, coin_id);
CREATE INDEX latest_scores_market_cap_idx ON latest_scores (market_cap DESC NULLS LAST, coin_id);

CREATE TABLE fng (
    day            DATE NOT NULL PRIMARY KEY,
    value          INTEGER NOT NULL CHECK (value BETWEEN 0 AND 100),
    classification TEXT NOT NULL DEFAULT '',
    source         TEXT NOT NULL
);

CREATE TABLE recalc_runs (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    job_id       TEXT NULL,
    scope        TEXT NOT NULL,
    since        DATE NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    assets       INTEGER NOT NULL DEFAULT 0,
    days         INTEGER NOT NULL DEFAULT 0,
    rows_written BIGINT NOT NULL DEFAULT 0,
    sources      TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NULL,
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
