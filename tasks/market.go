package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/coingecko"
	"github.com/tokenlysis/tokenlysis/internal/feargreed"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Market data job types.
const (
	TypeMarketIngest  = "market:ingest"
	TypeMarketHistory = "market:history"
	TypeSentimentFNG  = "sentiment:fng"
)

// MarketIngestPayload: the top Limit markets (default TOKENLYSIS_MARKET_TOP_N).
type MarketIngestPayload struct {
	Limit int `json:"limit,omitempty"`
}

// MarketHistoryPayload: daily history of Coins (none = every known coin)
// over Days ("max" or a number of days; default "max").
type MarketHistoryPayload struct {
	Coins []string `json:"coins,omitempty"`
	Days  string   `json:"days,omitempty"`
}

// FNGPayload: the last Limit days of the Fear & Greed index (0 = all).
type FNGPayload struct {
	Limit int `json:"limit,omitempty"`
}

// MarketSpecs are the market data job types.
func MarketSpecs() []job.Spec {
	return []job.Spec{
		{Type: TypeMarketIngest, Queue: job.QueueDefault, Permission: authz.AnalyticsSubmit, MaxRetry: 3, Timeout: time.Hour,
			Validate: func(raw json.RawMessage) (json.RawMessage, error) {
				var p MarketIngestPayload
				if err := job.DecodeParams(raw, &p); err != nil {
					return nil, err
				}
				if p.Limit < 0 || p.Limit > 20_000 {
					return nil, tokenlysis.FieldErrorf("params.limit", "Must be from 1 to 20000.")
				}
				return json.Marshal(p)
			},
			DedupeKey: func(json.RawMessage) string { return TypeMarketIngest }},
		{Type: TypeMarketHistory, Queue: job.QueueLow, Permission: authz.AnalyticsSubmit, MaxRetry: 5, Timeout: 6 * time.Hour,
			Validate: func(raw json.RawMessage) (json.RawMessage, error) {
				var p MarketHistoryPayload
				if err := job.DecodeParams(raw, &p); err != nil {
					return nil, err
				}
				if p.Days == "" {
					p.Days = "max"
				}
				if n, err := fmt.Sscanf(p.Days, "%d", new(int)); p.Days != "max" && (err != nil || n != 1) {
					return nil, tokenlysis.FieldErrorf("params.days", `Must be "max" or a number of days.`)
				}
				if p.Coins != nil && len(p.Coins) == 0 {
					return nil, tokenlysis.FieldErrorf("params.coins", "Give at least one coin ID, or leave coins out for every known coin.")
				}
				return json.Marshal(p)
			}},
		{Type: TypeSentimentFNG, Queue: job.QueueDefault, Permission: authz.AnalyticsSubmit, MaxRetry: 3, Timeout: 10 * time.Minute,
			Validate: func(raw json.RawMessage) (json.RawMessage, error) {
				var p FNGPayload
				if err := job.DecodeParams(raw, &p); err != nil {
					return nil, err
				}
				if p.Limit < 0 || p.Limit > 100_000 {
					return nil, tokenlysis.FieldErrorf("params.limit", "Must be from 0 (all) to 100000.")
				}
				return json.Marshal(p)
			},
			DedupeKey: func(json.RawMessage) string { return TypeSentimentFNG }},
	}
}

// DemoSeeder loads the bundled demo universe (marketimport.SeedDemo).
type DemoSeeder func(ctx context.Context) (any, error)

// MarketHandler runs the market data jobs.
type MarketHandler struct {
	Store     *sqlstore.Store
	CoinGecko *coingecko.Client
	FNG       *feargreed.Client
	TopN      int
	// Demo, when set, is used when CoinGecko cannot be reached: the embedded
	// default scores the demo universe rather than nothing.
	Demo DemoSeeder
}

func ptr(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// Ingest fetches the top markets and the categories and saves coins and
// their latest snapshots.
func (h MarketHandler) Ingest(ctx context.Context, t *asynq.Task) error {
	var p MarketIngestPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("ingest payload: %v: %w", err, asynq.SkipRetry)
	}
	n := p.Limit
	if n == 0 {
		n = h.TopN
	}
	pages := (n + coingecko.MaxPerPage - 1) / coingecko.MaxPerPage
	markets, err := h.CoinGecko.TopMarkets(ctx, n, func(page int, got []coingecko.Market) error {
		return job.Report(ctx, min(page*90/max(pages, 1), 90), fmt.Sprintf("markets page %d of %d", page, pages), map[string]int{"page": page, "markets": len(got)})
	})
	if err != nil {
		return h.fallback(ctx, err)
	}
	categories, err := h.CoinGecko.Categories(ctx)
	if err != nil {
		return h.fallback(ctx, err)
	}
	byCoin := map[string][]string{}
	for _, c := range categories {
		for _, id := range c.Top3CoinsID {
			byCoin[id] = append(byCoin[id], c.Name)
		}
	}
	now := time.Now().UTC()
	data := sqlstore.MarketData{}
	for _, m := range markets {
		data.Coins = append(data.Coins, sqlstore.Coin{ID: m.ID, Symbol: m.Symbol, Name: m.Name, LogoURL: m.Image,
			Categories: byCoin[m.ID], Source: sqlstore.SourceCoinGecko, UpdatedAt: now})
		snap := sqlstore.Snapshot{CoinID: m.ID, Price: ptr(m.CurrentPrice), MarketCap: ptr(m.MarketCap), Volume24h: ptr(m.TotalVolume),
			Change24h: ptr(m.PriceChangePercentage24h), AsOf: now, Source: sqlstore.SourceCoinGecko}
		if m.MarketCapRank != nil {
			snap.Rank = *m.MarketCapRank
		}
		if m.LastUpdated != nil {
			snap.AsOf = m.LastUpdated.UTC()
		}
		data.Snapshots = append(data.Snapshots, snap)
	}
	if err := h.Store.SaveMarket(ctx, data); err != nil {
		return err
	}
	return job.SetResult(ctx, map[string]any{"source": sqlstore.SourceCoinGecko, "coins": len(markets), "categories": len(categories)})
}

// fallback seeds the demo universe when the market API cannot be reached
// and a demo seeder is configured; the result says so.
func (h MarketHandler) fallback(ctx context.Context, cause error) error {
	if h.Demo == nil || tokenlysis.ErrorCode(cause) != tokenlysis.EUNAVAILABLE {
		return cause
	}
	job.Report(ctx, 50, "CoinGecko unavailable; loading the bundled demo universe", map[string]string{"reason": tokenlysis.ErrorMessage(cause)})
	summary, err := h.Demo(ctx)
	if err != nil {
		return err
	}
	return job.SetResult(ctx, map[string]any{"source": sqlstore.SourceDemo, "reason": "CoinGecko unavailable: " + tokenlysis.ErrorMessage(cause), "demo": summary})
}

// History fetches daily history per coin. It is resumable: a coin whose
// stored history already reaches yesterday is skipped, so a retry goes on
// where the last attempt stopped.
func (h MarketHandler) History(ctx context.Context, t *asynq.Task) error {
	var p MarketHistoryPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("history payload: %v: %w", err, asynq.SkipRetry)
	}
	coins, err := h.Store.ListCoins(ctx, sqlstore.CoinFilter{IDs: p.Coins})
	if err != nil {
		return err
	}
	yesterday := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	fetched, skipped, rows := 0, 0, 0
	for i, c := range coins {
		if last, err := h.Store.LastHistoryDay(ctx, c.ID); err == nil && !last.Before(yesterday) {
			skipped++
			continue
		}
		chart, err := h.CoinGecko.MarketChart(ctx, c.ID, p.Days)
		if err != nil {
			return err
		}
		daily := chart.Daily()
		hist := make([]sqlstore.HistoryRow, len(daily))
		for k, d := range daily {
			hist[k] = sqlstore.HistoryRow{Day: d.Date, Price: d.Price, MarketCap: d.MarketCap, Volume: d.Volume}
		}
		n, err := h.Store.UpsertHistory(ctx, c.ID, sqlstore.SourceCoinGecko, hist)
		if err != nil {
			return err
		}
		fetched, rows = fetched+1, rows+n
		if err := job.Report(ctx, (i+1)*100/len(coins), "history of "+c.ID, map[string]any{"coin": c.ID, "rows": n}); err != nil {
			return err
		}
	}
	return job.SetResult(ctx, map[string]any{"source": sqlstore.SourceCoinGecko, "coins": fetched, "skipped_up_to_date": skipped, "rows": rows})
}

// FearGreed fetches the Fear & Greed index history.
func (h MarketHandler) FearGreed(ctx context.Context, t *asynq.Task) error {
	var p FNGPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("fng payload: %v: %w", err, asynq.SkipRetry)
	}
	points, err := h.FNG.History(ctx, p.Limit)
	if err != nil {
		return err
	}
	rows := make([]sqlstore.FNG, len(points))
	for i, pt := range points {
		rows[i] = sqlstore.FNG{Day: pt.Date, Value: pt.Value, Classification: pt.Classification, Source: "alternative.me"}
	}
	n, err := h.Store.UpsertFNG(ctx, rows)
	if err != nil {
		return err
	}
	return job.SetResult(ctx, map[string]any{"source": "alternative.me", "days": n})
}
