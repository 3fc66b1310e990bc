package coingecko

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/httpretry"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Plan is a CoinGecko API plan; it decides the base URL, the key header and
// the default limits.
type Plan string

// Plans.
const (
	PlanPublic Plan = "public" // keyless public API
	PlanDemo   Plan = "demo"   // free Demo key, header x-cg-demo-api-key
	PlanPro    Plan = "pro"    // paid key, header x-cg-pro-api-key
)

// Unlimited as Config.MonthlyBudget disables the monthly cap (calls are
// still counted when a Budget is given).
const Unlimited = -1

// planDefaults are the defaults of each plan. Rates follow CoinGecko's
// published limits (public: 5–15/min depending on load; Demo: 30/min; Pro
// Analyst: 500/min). Monthly budgets: Demo's 10,000 credits; Pro Analyst's
// 500,000; the keyless public API publishes no monthly cap, 10,000 guards
// against a runaway job all the same.
var planDefaults = map[Plan]struct {
	baseURL   string
	header    string
	perMinute int
	monthly   int
}{
	PlanPublic: {"https://api.coingecko.com/api/v3", "", 10, 10_000},
	PlanDemo:   {"https://api.coingecko.com/api/v3", "x-cg-demo-api-key", 30, 10_000},
	PlanPro:    {"https://pro-api.coingecko.com/api/v3", "x-cg-pro-api-key", 500, 500_000},
}

// Config configures a Client. Zero fields take the documented defaults.
type Config struct {
	// BaseURL of the API including /api/v3. Default: by plan,
	// https://api.coingecko.com/api/v3 (public, demo) or
	// https://pro-api.coingecko.com/api/v3 (pro).
	BaseURL string
	// Plan is public (default), demo or pro.
	Plan Plan
	// APIKey is required for demo and pro, refused for public.
	APIKey string
	// RatePerMinute limits the calls of every Client sharing Rate, or of
	// this Client alone when Rate is nil. Default by plan: public 10, demo
	// 30, pro 500.
	RatePerMinute int
	// Rate, normally NewRedisRate, shares RatePerMinute among the Clients
	// of every process on it. Nil: this Client keeps to it on its own.
	Rate RateStore
	// MonthlyBudget caps the calls per calendar month (UTC), shared by every
	// Client on the same Budget store. Zero means the plan's default
	// (public and demo 10,000, pro 500,000); Unlimited disables the cap.
	MonthlyBudget int
	// MaxRetries after the first attempt; zero means 5, negative disables.
	MaxRetries int
	// RetryBaseDelay is the first backoff step (default 1s).
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps every wait between attempts, Retry-After included
	// (default 60s).
	RetryMaxDelay time.Duration
	// HTTPClient sends the requests. Default: a client with a 60s timeout.
	HTTPClient *http.Client
	// Logger receives one warning per retry. Default: discard.
	Logger *slog.Logger
	// Now tells the time; the budget month is Now().UTC(). Default time.Now.
	Now func() time.Time
}

// Client calls the CoinGecko API within a rate limit and a monthly call
// budget. It is safe for concurrent use.
type Client struct {
	cfg     Config
	baseURL string
	header  http.Header
	budget  Budget
	wait    func(ctx context.Context) error // the rate limit
	http    *httpretry.Client
}

// New returns a Client. budget stores the monthly count; it may be nil only
// when cfg.MonthlyBudget is Unlimited. Error code: EINVALID, naming the
// offending field (plan, api_key, base_url, rate_per_minute, monthly_budget,
// budget).
func New(cfg Config, budget Budget) (*Client, error) {
	cfg.Plan = cmp.Or(cfg.Plan, PlanPublic)
	def, ok := planDefaults[cfg.Plan]
	switch {
	case !ok:
		return nil, tokenlysis.FieldErrorf("plan", "coingecko: unknown plan %q (want public, demo or pro)", cfg.Plan)
	case cfg.Plan == PlanPublic && cfg.APIKey != "":
		return nil, tokenlysis.FieldErrorf("api_key", "coingecko: an API key was given for the public plan; set the plan to demo or pro")
	case cfg.Plan != PlanPublic && cfg.APIKey == "":
		return nil, tokenlysis.FieldErrorf("api_key", "coingecko: the %s plan needs an API key", cfg.Plan)
	case cfg.RatePerMinute < 0:
		return nil, tokenlysis.FieldErrorf("rate_per_minute", "coingecko: rate per minute must be positive, got %d", cfg.RatePerMinute)
	case cfg.MonthlyBudget < Unlimited:
		return nil, tokenlysis.FieldErrorf("monthly_budget", "coingecko: monthly budget must be positive or Unlimited (-1), got %d", cfg.MonthlyBudget)
	}
	cfg.BaseURL = strings.TrimRight(cmp.Or(cfg.BaseURL, def.baseURL), "/")
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, tokenlysis.FieldErrorf("base_url", "coingecko: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	cfg.RatePerMinute = cmp.Or(cfg.RatePerMinute, def.perMinute)
	cfg.MonthlyBudget = cmp.Or(cfg.MonthlyBudget, def.monthly)
	if budget == nil && cfg.MonthlyBudget != Unlimited {
		return nil, tokenlysis.FieldErrorf("budget", "coingecko: a monthly budget of %d calls needs a Budget store", cfg.MonthlyBudget)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{
		cfg:     cfg,
		baseURL: cfg.BaseURL,
		header:  http.Header{"User-Agent": {"tokenlysis (+https://github.com/tokenlysis/tokenlysis)"}},
		budget:  budget,
	}
	if cfg.Rate != nil {
		c.wait = func(ctx context.Context) error { return cfg.Rate.Wait(ctx, cfg.RatePerMinute) }
	} else {
		c.wait = newProcessRate(cfg.RatePerMinute).Wait
	}
	if def.header != "" {
		c.header.Set(def.header, cfg.APIKey)
	}
	hc, err := httpretry.New(httpretry.Config{
		Service:       "CoinGecko",
		HTTPClient:    cfg.HTTPClient,
		MaxRetries:    cfg.MaxRetries,
		BaseDelay:     cfg.RetryBaseDelay,
		MaxDelay:      cfg.RetryMaxDelay,
		ErrorMessage:  errorMessage,
		BeforeAttempt: c.beforeAttempt,
		Logger:        cfg.Logger,
		Now:           cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("coingecko: %w", err)
	}
	c.http = hc
	return c, nil
}

// beforeAttempt pays for one call: it reserves it in the monthly budget,
// then waits for the rate limiter. The budget comes first so that an
// exhausted budget fails at once; a call reserved and then abandoned
// (ctx done while waiting) stays counted, which errs on the safe side.
func (c *Client) beforeAttempt(ctx context.Context) error {
	if c.budget != nil {
		month := c.cfg.Now().UTC().Format("2006-01")
		limit := c.cfg.MonthlyBudget
		if limit == Unlimited {
			limit = math.MaxInt64
		}
		ok, used, err := c.budget.Spend(ctx, month, 1, limit)
		if err != nil {
			return fmt.Errorf("coingecko: %w", err)
		}
		if !ok {
			return newExhaustedError(month, used, limit)
		}
	}
	if err := c.wait(ctx); err != nil {
		return fmt.Errorf("coingecko: waiting for the rate limiter: %w", err)
	}
	return nil
}

// get calls path (with query) and decodes the JSON answer into v.
func (c *Client) get(ctx context.Context, path string, query url.Values, v any) error {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return c.http.GetJSON(ctx, u, c.header, v)
}

// errorMessage extracts CoinGecko's message from an error body, in either
// of its shapes: {"status":{"error_code":…,"error_message":"…"}} or
// {"error":"…"}.
func errorMessage(body []byte) string {
	var e struct {
		Status struct {
			ErrorCode    any    `json:"error_code"`
			ErrorMessage string `json:"error_message"`
		} `json:"status"`
		Error any `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	switch {
	case e.Status.ErrorMessage != "":
		return e.Status.ErrorMessage
	case e.Error != nil:
		if s, ok := e.Error.(string); ok {
			return s
		}
		b, _ := json.Marshal(e.Error)
		return string(b)
	}
	return ""
}
