package feargreed

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/httpretry"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// DefaultBaseURL is the alternative.me API.
const DefaultBaseURL = "https://api.alternative.me"

// Config configures a Client. Zero fields take the documented defaults.
type Config struct {
	// BaseURL of the API, without the /fng/ path. Default DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Default: a client with a 60s timeout.
	HTTPClient *http.Client
	// MaxRetries after the first attempt. Zero means 5; negative disables
	// retries.
	MaxRetries int
	// RetryBaseDelay is the first backoff step (default 1s).
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps each wait between attempts, Retry-After included
	// (default 60s).
	RetryMaxDelay time.Duration
	// Logger receives a warning per retry. Default: discard.
	Logger *slog.Logger
}

// Point is the index on one UTC day.
type Point struct {
	// Date is 00:00 UTC of the day the value was published.
	Date time.Time
	// Value is the index, 0 (extreme fear) to 100 (extreme greed).
	Value int
	// Classification is the API's label, e.g. "Neutral".
	Classification string
}

// Client reads the index. It is safe for concurrent use.
type Client struct {
	baseURL string
	http    *httpretry.Client
}

// New returns a Client. It returns EINVALID for an unusable BaseURL.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, tokenlysis.FieldErrorf("base_url", "feargreed: base URL %q is not an http(s) URL", base)
	}
	hc, err := httpretry.New(httpretry.Config{
		Service:      "alternative.me Fear & Greed API",
		HTTPClient:   cfg.HTTPClient,
		MaxRetries:   cfg.MaxRetries,
		BaseDelay:    cfg.RetryBaseDelay,
		MaxDelay:     cfg.RetryMaxDelay,
		ErrorMessage: errorMessage,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("feargreed: %w", err)
	}
	return &Client{baseURL: base, http: hc}, nil
}

// response is the body of GET /fng/.
type response struct {
	Data []struct {
		Value          string `json:"value"`
		Classification string `json:"value_classification"`
		Timestamp      string `json:"timestamp"`
	} `json:"data"`
	Metadata struct {
		Error any `json:"error"`
	} `json:"metadata"`
}

// History returns the last limit daily points, oldest first; limit 0 asks
// for the whole history (since 2018-02-01). Error codes: EINVALID (negative
// limit), ENOTFOUND, EUNAVAILABLE (HTTP failures, metadata.error, malformed
// points); a done ctx returns an error wrapping ctx.Err().
func (c *Client) History(ctx context.Context, limit int) ([]Point, error) {
	if limit < 0 {
		return nil, tokenlysis.FieldErrorf("limit", "feargreed: limit must be 0 (all) or positive, got %d", limit)
	}
	var resp response
	u := c.baseURL + "/fng/?limit=" + strconv.Itoa(limit)
	if err := c.http.GetJSON(ctx, u, nil, &resp); err != nil {
		return nil, fmt.Errorf("feargreed: history: %w", err)
	}
	if resp.Metadata.Error != nil {
		return nil, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "feargreed: history: the API reported an error: %v", resp.Metadata.Error)
	}
	byDay := make(map[time.Time]int, len(resp.Data)) // day → index in points
	points := make([]Point, 0, len(resp.Data))
	stamps := make([]int64, 0, len(resp.Data))
	for i, d := range resp.Data {
		v, err := strconv.Atoi(strings.TrimSpace(d.Value))
		if err != nil {
			return nil, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "feargreed: history: point %d: value %q is not an integer", i, d.Value)
		}
		if v < 0 || v > 100 {
			return nil, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "feargreed: history: point %d: value %d out of range 0..100", i, v)
		}
		ts, err := strconv.ParseInt(strings.TrimSpace(d.Timestamp), 10, 64)
		if err != nil {
			return nil, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "feargreed: history: point %d: timestamp %q is not Unix seconds", i, d.Timestamp)
		}
		p := Point{Date: time.Unix(ts, 0).UTC().Truncate(24 * time.Hour), Value: v, Classification: d.Classification}
		if j, ok := byDay[p.Date]; ok {
			if ts > stamps[j] {
				points[j], stamps[j] = p, ts
			}
			continue
		}
		byDay[p.Date] = len(points)
		points = append(points, p)
		stamps = append(stamps, ts)
	}
	slices.SortFunc(points, func(a, b Point) int { return a.Date.Compare(b.Date) })
	return points, nil
}

// errorMessage extracts metadata.error from an error body.
func errorMessage(body []byte) string {
	var r response
	if json.Unmarshal(body, &r) != nil || r.Metadata.Error == nil {
		return ""
	}
	return fmt.Sprint(r.Metadata.Error)
}
