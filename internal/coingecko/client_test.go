package coingecko

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

func TestMarketsSample(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	got, err := b.client.Markets(t.Context(), 1, 100)
	if err != nil {
		t.Fatalf("Markets: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Markets returned %d markets, want 1", len(got))
	}
	m := got[0]
	// Values from testdata/coingecko-GetMarkets.txt.
	if m.ID != "bitcoin" || m.Symbol != "btc" || m.Name != "Bitcoin" ||
		m.Image != "https://assets.coingecko.com/coins/images/1/large/bitcoin.png?1696501400" {
		t.Errorf("identity = %q %q %q %q", m.ID, m.Symbol, m.Name, m.Image)
	}
	checkFloat(t, "current_price", m.CurrentPrice, 70187)
	checkFloat(t, "market_cap", m.MarketCap, 1381651251183)
	checkFloat(t, "total_volume", m.TotalVolume, 20154184933)
	checkFloat(t, "price_change_percentage_24h", m.PriceChangePercentage24h, 3.12502)
	if m.MarketCapRank == nil || *m.MarketCapRank != 1 {
		t.Errorf("market_cap_rank = %v, want 1", m.MarketCapRank)
	}
	if want := time.Date(2024, 4, 7, 16, 49, 31, 736e6, time.UTC); m.LastUpdated == nil || !m.LastUpdated.Equal(want) {
		t.Errorf("last_updated = %v, want %v", m.LastUpdated, want)
	}
	q := b.gecko.request(0).URL.Query()
	for k, want := range map[string]string{"vs_currency": "usd", "order": "market_cap_desc", "per_page": "100", "page": "1"} {
		if q.Get(k) != want {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), want)
		}
	}
}

func checkFloat(t *testing.T, name string, got *float64, want float64) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %v, want %v", name, deref(got), want)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestMarketsNulls(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	b.gecko.then(respond(200, "application/json", `[{"id":"newcoin","symbol":"new","name":"New","image":"missing_large.png",
		"current_price":null,"market_cap":null,"total_volume":null,"market_cap_rank":null,
		"price_change_percentage_24h":null,"last_updated":null,"roi":null}]`))
	got, err := b.client.Markets(t.Context(), 1, 250)
	if err != nil {
		t.Fatalf("Markets: %v", err)
	}
	m := got[0]
	if m.ID != "newcoin" || m.CurrentPrice != nil || m.MarketCap != nil || m.TotalVolume != nil ||
		m.MarketCapRank != nil || m.PriceChangePercentage24h != nil || m.LastUpdated != nil {
		t.Errorf("nulls decoded as %+v, want nil pointers", m)
	}
}

func TestMarketsInvalidArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	for _, tt := range []struct{ page, perPage int }{{0, 10}, {1, 0}, {1, 251}, {-1, 250}} {
		_, err := b.client.Markets(t.Context(), tt.page, tt.perPage)
		if tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("Markets(%d, %d): err = %v, want invalid", tt.page, tt.perPage, err)
		}
	}
	if _, err := b.client.TopMarkets(t.Context(), 0, nil); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("TopMarkets(0): err = %v, want invalid", err)
	}
	if n := b.gecko.hits(); n != 0 {
		t.Errorf("invalid arguments reached the server %d times", n)
	}
}

func TestTopMarketsPaging(t *testing.T) {
	t.Parallel()
	type page struct{ page, n int }
	tests := []struct {
		name      string
		available int
		n         int
		shift     bool
		wantLen   int
		wantPages []page
		wantPer   string
	}{
		{"three pages", 600, 600, false, 600, []page{{1, 250}, {2, 250}, {3, 100}}, "250"},
		{"trims the last page", 600, 300, false, 300, []page{{1, 250}, {2, 50}}, "250"},
		{"one small page", 600, 100, false, 100, []page{{1, 100}}, "100"},
		{"stops at the end of the list", 260, 1000, false, 260, []page{{1, 250}, {2, 10}}, "250"},
		{"drops a coin seen on two pages", 600, 500, true, 500, []page{{1, 250}, {2, 249}, {3, 1}}, "250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{}, tt.available)
			b.gecko.shift = tt.shift
			var pages []page
			got, err := b.client.TopMarkets(t.Context(), tt.n, func(p int, ms []Market) error {
				pages = append(pages, page{p, len(ms)})
				return nil
			})
			if err != nil {
				t.Fatalf("TopMarkets: %v", err)
			}
			if len(got) != tt.wantLen {
				t.Fatalf("TopMarkets returned %d markets, want %d", len(got), tt.wantLen)
			}
			for i, m := range got {
				if m.MarketCapRank == nil || *m.MarketCapRank != i+1 {
					t.Fatalf("market %d has rank %v, want %d (order or dedup broken)", i, deref(m.MarketCapRank), i+1)
				}
			}
			if fmt.Sprint(pages) != fmt.Sprint(tt.wantPages) {
				t.Errorf("onPage calls = %v, want %v", pages, tt.wantPages)
			}
			if b.gecko.hits() != len(tt.wantPages) {
				t.Errorf("requests = %d, want %d", b.gecko.hits(), len(tt.wantPages))
			}
			for i := range b.gecko.hits() {
				q := b.gecko.request(i).URL.Query()
				if q.Get("page") != fmt.Sprint(i+1) || q.Get("per_page") != tt.wantPer {
					t.Errorf("request %d: page=%s per_page=%s, want %d and %s", i, q.Get("page"), q.Get("per_page"), i+1, tt.wantPer)
				}
			}
		})
	}
}

func TestTopMarketsCallbackError(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 600)
	stop := errors.New("stop")
	_, err := b.client.TopMarkets(t.Context(), 600, func(p int, ms []Market) error {
		if p == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	if b.gecko.hits() != 2 {
		t.Errorf("requests = %d, want 2 (no page after the callback failed)", b.gecko.hits())
	}
}

func TestMarketChartSample(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	ch, err := b.client.MarketChart(t.Context(), "ethereum", "max")
	if err != nil {
		t.Fatalf("MarketChart: %v", err)
	}
	// Values from testdata/coingecko-GetMarketChart.txt.
	want := Chart{
		Prices:     []Point{{1711843200000, 69702.3087473573}, {1711929600000, 71246.9514406015}, {1711983682000, 68887.7495158568}},
		MarketCaps: []Point{{1711843200000, 1370247487960.09}, {1711929600000, 1401370211582.37}, {1711983682000, 1355701979725.16}},
		Volumes:    []Point{{1711843200000, 16408802301.8374}, {1711929600000, 19723005998.215}, {1711983682000, 30137418199.6431}},
	}
	if fmt.Sprint(ch) != fmt.Sprint(want) {
		t.Errorf("chart = %v\nwant    %v", ch, want)
	}
	r := b.gecko.request(0)
	if r.URL.Path != "/api/v3/coins/ethereum/market_chart" {
		t.Errorf("path = %s", r.URL.Path)
	}
	q := r.URL.Query()
	for k, v := range map[string]string{"vs_currency": "usd", "days": "max", "interval": "daily"} {
		if q.Get(k) != v {
			t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
		}
	}
	rows := ch.Daily()
	wantRows := []DailyRow{
		{time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC), 69702.3087473573, 1370247487960.09, 16408802301.8374},
		{time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), 71246.9514406015, 1401370211582.37, 19723005998.215},
	}
	if fmt.Sprint(rows) != fmt.Sprint(wantRows) {
		t.Errorf("Daily() = %v\nwant      %v", rows, wantRows)
	}
}

func TestMarketChartArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	for _, days := range []string{"", "0", "-5", "all", "1.5"} {
		if _, err := b.client.MarketChart(t.Context(), "ethereum", days); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("days %q: err = %v, want invalid", days, err)
		}
	}
	if _, err := b.client.MarketChart(t.Context(), "", "30"); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("empty coin id: err = %v, want invalid", err)
	}
	if b.gecko.hits() != 0 {
		t.Fatalf("invalid arguments reached the server")
	}
	if _, err := b.client.MarketChart(t.Context(), "ethereum", "365"); err != nil {
		t.Errorf("days 365: %v", err)
	}
	if _, err := b.client.MarketChart(t.Context(), "no-such-coin", "30"); tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND || contains(err.Error(), "coin not found", "HTTP 404") != "" {
		t.Errorf("unknown coin: err = %v, want not_found quoting CoinGecko's message", err)
	}
	if _, err := b.client.MarketChart(t.Context(), "a/b?c", "30"); err == nil {
		t.Errorf("coin id with / and ?: no error")
	} else if p := b.gecko.request(b.gecko.hits() - 1).URL.EscapedPath(); p != "/api/v3/coins/a%2Fb%3Fc/market_chart" {
		t.Errorf("coin id not escaped: path %s", p)
	}
}

func TestCategoriesSample(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	got, err := b.client.Categories(t.Context())
	if err != nil {
		t.Fatalf("Categories: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d categories, want 1", len(got))
	}
	c := got[0]
	// Values from testdata/coingecko-GetMarketDataCategories.txt.
	if c.ID != "layer-1" || c.Name != "Layer 1 (L1)" || fmt.Sprint(c.Top3CoinsID) != "[bitcoin ethereum binancecoin]" || len(c.Top3Coins) != 3 {
		t.Errorf("category = %+v", c)
	}
	checkFloat(t, "market_cap", c.MarketCap, 2061406861196.14)
	checkFloat(t, "market_cap_change_24h", c.MarketCapChange24h, -0.66091235190398)
	checkFloat(t, "volume_24h", c.Volume24h, 61146432400.1739)
	if want := time.Date(2024, 4, 6, 8, 25, 46, 402e6, time.UTC); c.UpdatedAt == nil || !c.UpdatedAt.Equal(want) {
		t.Errorf("updated_at = %v, want %v", c.UpdatedAt, want)
	}
	if b.gecko.request(0).URL.Path != "/api/v3/coins/categories" {
		t.Errorf("path = %s", b.gecko.request(0).URL.Path)
	}
}

func TestAPIKeyHeaderPerPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		plan       Plan
		key        string
		wantHeader string
	}{
		{PlanPublic, "", ""},
		{PlanDemo, "CG-demo", "x-cg-demo-api-key"},
		{PlanPro, "CG-pro", "x-cg-pro-api-key"},
	}
	for _, tt := range tests {
		t.Run(string(tt.plan), func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{Plan: tt.plan, APIKey: tt.key}, 1)
			if _, err := b.client.Categories(t.Context()); err != nil {
				t.Fatal(err)
			}
			h := b.gecko.request(0).Header
			for _, name := range []string{"x-cg-demo-api-key", "x-cg-pro-api-key"} {
				want := ""
				if name == tt.wantHeader {
					want = tt.key
				}
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestNewDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	budget := NewRedisBudget(rdb, testPrefix(t, rdb))
	defaults := []struct {
		cfg         Config
		wantBase    string
		wantRate    int
		wantMonthly int
	}{
		{Config{}, "https://api.coingecko.com/api/v3", 10, 10_000},
		{Config{Plan: PlanDemo, APIKey: "k"}, "https://api.coingecko.com/api/v3", 30, 10_000},
		{Config{Plan: PlanPro, APIKey: "k"}, "https://pro-api.coingecko.com/api/v3", 500, 500_000},
		{Config{Plan: PlanPro, APIKey: "k", BaseURL: "http://127.0.0.1:1/v3/", RatePerMinute: 7, MonthlyBudget: 99}, "http://127.0.0.1:1/v3", 7, 99},
		{Config{Plan: PlanDemo, APIKey: "k", MonthlyBudget: Unlimited}, "https://api.coingecko.com/api/v3", 30, Unlimited},
	}
	for _, tt := range defaults {
		c, err := New(tt.cfg, budget)
		if err != nil {
			t.Errorf("New(%+v): %v", tt.cfg, err)
			continue
		}
		if c.baseURL != tt.wantBase || c.cfg.RatePerMinute != tt.wantRate || c.cfg.MonthlyBudget != tt.wantMonthly {
			t.Errorf("New(%+v): base %q rate %d monthly %d; want %q %d %d", tt.cfg, c.baseURL, c.cfg.RatePerMinute, c.cfg.MonthlyBudget, tt.wantBase, tt.wantRate, tt.wantMonthly)
		}
	}

	invalid := []struct {
		name   string
		cfg    Config
		budget Budget
		field  string
	}{
		{"demo without key", Config{Plan: PlanDemo}, budget, "api_key"},
		{"pro without key", Config{Plan: PlanPro}, budget, "api_key"},
		{"public with key", Config{Plan: PlanPublic, APIKey: "k"}, budget, "api_key"},
		{"unknown plan", Config{Plan: "enterprise", APIKey: "k"}, budget, "plan"},
		{"negative rate", Config{RatePerMinute: -1}, budget, "rate_per_minute"},
		{"budget below unlimited", Config{MonthlyBudget: -2}, budget, "monthly_budget"},
		{"budget without a store", Config{}, nil, "budget"},
		{"bad base URL", Config{BaseURL: "ftp://x"}, budget, "base_url"},
	}
	for _, tt := range invalid {
		_, err := New(tt.cfg, tt.budget)
		if tokenlysis.ErrorCode(err) != tokenlysis.EINVALID || tokenlysis.ErrorField(err) != tt.field {
			t.Errorf("%s: err = %v, want invalid on field %s", tt.name, err, tt.field)
		}
	}
	if _, err := New(Config{MonthlyBudget: Unlimited}, nil); err != nil {
		t.Errorf("unlimited budget without a store: %v", err)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fail     []http.HandlerFunc
		wantHits int
	}{
		{"429 json then success", []http.HandlerFunc{respond(429, "application/json", rateLimited, "retry-after", "0")}, 2},
		{"429 html then success", []http.HandlerFunc{respond(429, "text/html", rateLimitedHTML)}, 2},
		{"500 then success", []http.HandlerFunc{respond(500, "application/json", `{"error":"internal"}`)}, 2},
		{"truncated json then success", []http.HandlerFunc{respond(200, "application/json", `[{"id":"bitcoin","symbol":"bt`)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{}, 1)
			b.gecko.then(tt.fail...)
			got, err := b.client.Markets(t.Context(), 1, 250)
			if err != nil {
				t.Fatalf("Markets: %v", err)
			}
			if len(got) != 1 || got[0].ID != "bitcoin" {
				t.Errorf("Markets = %+v, want the bitcoin sample", got)
			}
			if b.gecko.hits() != tt.wantHits {
				t.Errorf("requests = %d, want %d", b.gecko.hits(), tt.wantHits)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RetryMaxDelay: 5 * time.Second}, 1)
	b.gecko.then(respond(429, "application/json", rateLimited, "retry-after", "1"))
	start := time.Now()
	if _, err := b.client.Categories(t.Context()); err != nil {
		t.Fatalf("Categories: %v", err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, want at least the 1s retry-after", elapsed)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	repeat := func(n int, h http.HandlerFunc) []http.HandlerFunc {
		hs := make([]http.HandlerFunc, n)
		for i := range hs {
			hs[i] = h
		}
		return hs
	}
	tests := []struct {
		name     string
		cfg      Config
		fail     []http.HandlerFunc
		wantCode string
		wantMsg  []string
		wantHits int
	}{
		{"429 json until retries run out", Config{MaxRetries: 2}, repeat(3, respond(429, "application/json", rateLimited, "retry-after", "0")),
			tokenlysis.EUNAVAILABLE, []string{"CoinGecko", "HTTP 429", "You've exceeded the Rate Limit", "3 attempts"}, 3},
		{"429 html until retries run out", Config{MaxRetries: 1}, repeat(2, respond(429, "text/html", rateLimitedHTML)),
			tokenlysis.EUNAVAILABLE, []string{"HTTP 429", "HTML page", "2 attempts"}, 2},
		{"truncated json twice", Config{}, repeat(2, respond(200, "application/json", `[{"id":"bitcoin","symbol":"bt`)),
			tokenlysis.EUNAVAILABLE, []string{"invalid JSON", `[{"id":"bitcoin","symbol":"bt`}, 2},
		{"401 status error message", Config{}, []http.HandlerFunc{respond(401, "application/json", `{"status":{"error_code":10002,"error_message":"API Key Missing"}}`)},
			tokenlysis.EUNAVAILABLE, []string{"HTTP 401", "API Key Missing"}, 1},
		{"400 error field", Config{}, []http.HandlerFunc{respond(400, "application/json", `{"error":"invalid vs_currency"}`)},
			tokenlysis.EINVALID, []string{"HTTP 400", "invalid vs_currency"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.cfg, 1)
			b.gecko.then(tt.fail...)
			_, err := b.client.Markets(t.Context(), 1, 250)
			if code := tokenlysis.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("code = %q, want %q (err: %v)", code, tt.wantCode, err)
			}
			if missing := contains(err.Error(), tt.wantMsg...); missing != "" {
				t.Errorf("error %q does not mention %q", err, missing)
			}
			if b.gecko.hits() != tt.wantHits {
				t.Errorf("requests = %d, want %d", b.gecko.hits(), tt.wantHits)
			}
		})
	}
}

func TestSlowResponsePastDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.gecko.then(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.client.MarketChart(ctx, "ethereum", "max")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("returned after %v", elapsed)
	}
	if b.gecko.hits() != 1 {
		t.Errorf("requests = %d, want 1", b.gecko.hits())
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RatePerMinute: 600}, 1) // one call every 100ms
	start := time.Now()
	for range 4 {
		if _, err := b.client.Categories(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed < 290*time.Millisecond {
		t.Errorf("4 calls at 600/min took %v, want at least 300ms", elapsed)
	}
}

func TestDaily(t *testing.T) {
	t.Parallel()
	const day = int64(24 * time.Hour / time.Millisecond)
	d0 := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	ms := func(days int, extra time.Duration) int64 {
		return d0.UnixMilli() + int64(days)*day + extra.Milliseconds()
	}
	date := func(days int) time.Time { return d0.AddDate(0, 0, days) }
	nan := math.NaN()
	tests := []struct {
		name  string
		chart Chart
		want  []DailyRow
	}{
		{"empty", Chart{}, []DailyRow{}},
		{"midnights only",
			Chart{Prices: []Point{{ms(0, 0), 1}, {ms(1, 0), 2}}, MarketCaps: []Point{{ms(0, 0), 10}, {ms(1, 0), 20}}, Volumes: []Point{{ms(0, 0), 100}, {ms(1, 0), 200}}},
			[]DailyRow{{date(0), 1, 10, 100}, {date(1), 2, 20, 200}}},
		{"current point on a day already snapped is ignored",
			Chart{Prices: []Point{{ms(0, 0), 1}, {ms(1, 0), 2}, {ms(1, 15*time.Hour), 3}}, MarketCaps: []Point{{ms(0, 0), 10}, {ms(1, 0), 20}, {ms(1, 15*time.Hour), 30}}, Volumes: []Point{{ms(0, 0), 100}, {ms(1, 0), 200}, {ms(1, 15*time.Hour), 300}}},
			[]DailyRow{{date(0), 1, 10, 100}, {date(1), 2, 20, 200}}},
		{"current point on a new day is dropped",
			Chart{Prices: []Point{{ms(0, 0), 1}, {ms(1, 0), 2}, {ms(2, 20*time.Minute), 3}}, MarketCaps: []Point{{ms(0, 0), 10}, {ms(1, 0), 20}, {ms(2, 20*time.Minute), 30}}, Volumes: []Point{{ms(0, 0), 100}, {ms(1, 0), 200}, {ms(2, 20*time.Minute), 300}}},
			[]DailyRow{{date(0), 1, 10, 100}, {date(1), 2, 20, 200}}},
		{"a late snapshot inside the range is kept",
			Chart{Prices: []Point{{ms(0, 0), 1}, {ms(1, 3*time.Minute), 2}, {ms(2, 0), 3}}, MarketCaps: []Point{{ms(0, 0), 10}, {ms(1, 3*time.Minute), 20}, {ms(2, 0), 30}}, Volumes: []Point{{ms(0, 0), 100}, {ms(1, 3*time.Minute), 200}, {ms(2, 0), 300}}},
			[]DailyRow{{date(0), 1, 10, 100}, {date(1), 2, 20, 200}, {date(2), 3, 30, 300}}},
		{"unsorted input, nulls and a missing market cap",
			Chart{Prices: []Point{{ms(1, 0), 2}, {ms(0, 0), 1}}, MarketCaps: []Point{{ms(1, 0), nan}}, Volumes: []Point{{ms(0, 0), 0}, {ms(1, 0), 200}}},
			[]DailyRow{{date(0), 1, nan, 0}, {date(1), 2, nan, 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.chart.Daily()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Daily() = %v\nwant      %v", got, tt.want)
			}
			for _, r := range got {
				if r.Date.Location() != time.UTC {
					t.Errorf("date %v not in UTC", r.Date)
				}
			}
		})
	}
}
