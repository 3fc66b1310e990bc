package httpretry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxRetries   = 5
	DefaultBaseDelay    = time.Second
	DefaultMaxDelay     = 60 * time.Second
	DefaultMaxBodyBytes = 64 << 20
	DefaultTimeout      = 60 * time.Second
)

// maxQuoted bounds how much of a response body an error message quotes.
const maxQuoted = 200

// Config configures a Client. Zero fields take the documented defaults.
type Config struct {
	// Service names the API in error messages, e.g. "CoinGecko". Required.
	Service string
	// HTTPClient sends the requests. Default: a client with a 60s timeout.
	HTTPClient *http.Client
	// MaxRetries is the number of retries after the first attempt. Zero means
	// DefaultMaxRetries (5); a negative value disables retries.
	MaxRetries int
	// BaseDelay is the first backoff step (default 1s); tests use
	// milliseconds.
	BaseDelay time.Duration
	// MaxDelay caps every wait between attempts, Retry-After included
	// (default 60s).
	MaxDelay time.Duration
	// MaxBodyBytes bounds a response body (default 64 MiB).
	MaxBodyBytes int64
	// ErrorMessage extracts the API's own error message from an error body;
	// it returns "" when the body holds none. Optional.
	ErrorMessage func(body []byte) string
	// BeforeAttempt runs before every attempt, retries included. An error
	// aborts the request and is returned as is. Optional.
	BeforeAttempt func(ctx context.Context) error
	// Logger receives one warning per retry. Default: discard.
	Logger *slog.Logger
	// Now tells the time, to read Retry-After dates. Default: time.Now.
	Now func() time.Time
}

// Client sends GET requests with the retry policy described in the package
// documentation. It is safe for concurrent use.
type Client struct {
	cfg Config
}

// New returns a Client. It returns EINVALID when Service is empty or
// BaseDelay exceeds MaxDelay.
func New(cfg Config) (*Client, error) {
	if cfg.Service == "" {
		return nil, tokenlysis.FieldErrorf("service", "httpretry: a service name is required")
	}
	cfg.HTTPClient = cmp.Or(cfg.HTTPClient, &http.Client{Timeout: DefaultTimeout})
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, DefaultMaxRetries)
	cfg.MaxRetries = max(cfg.MaxRetries, 0)
	cfg.BaseDelay = cmp.Or(cfg.BaseDelay, DefaultBaseDelay)
	cfg.MaxDelay = cmp.Or(cfg.MaxDelay, DefaultMaxDelay)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BaseDelay < 0 || cfg.MaxDelay < 0 || cfg.BaseDelay > cfg.MaxDelay {
		return nil, tokenlysis.FieldErrorf("base_delay", "httpretry: BaseDelay (%v) must be positive and at most MaxDelay (%v)", cfg.BaseDelay, cfg.MaxDelay)
	}
	return &Client{cfg: cfg}, nil
}

// GetJSON sends GET url with header (plus Accept: application/json) and
// decodes the 2xx JSON body into v, retrying as the package documentation
// describes. Error codes: EINVALID (HTTP 400), ENOTFOUND (HTTP 404),
// EUNAVAILABLE (other 4xx, exhausted retries, invalid JSON); a done ctx
// returns an error wrapping ctx.Err(); errors from BeforeAttempt are
// returned as they are.
func (c *Client) GetJSON(ctx context.Context, url string, header http.Header, v any) error {
	attempts := 1 + c.cfg.MaxRetries
	badJSONRetried := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", c.cfg.Service, err)
		}
		if c.cfg.BeforeAttempt != nil {
			if err := c.cfg.BeforeAttempt(ctx); err != nil {
				return err
			}
		}
		res, err := c.do(ctx, url, header)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", c.cfg.Service, ctx.Err())
			}
			var final *tokenlysis.Error
			if errors.As(err, &final) {
				return err // a body too large or a bad URL: retrying cannot help
			}
			// A name that does not resolve (NXDOMAIN) rarely comes back
			// within a backoff: one retry, not the whole series, so that an
			// offline machine falls back (e.g. to the demo data) at once.
			var dnsErr *net.DNSError
			notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound
			if attempt >= attempts || (notFound && attempt >= 2) {
				return fmt.Errorf("%w: %w", tokenlysis.Errorf(tokenlysis.EUNAVAILABLE,
					"%s unreachable after %s", c.cfg.Service, plural(attempt, "attempt")), err)
			}
			if err := c.wait(ctx, attempt, c.backoff(attempt-1), "network error", slog.String("error", err.Error())); err != nil {
				return err
			}
			continue
		}

		switch {
		case res.status >= 200 && res.status < 300:
			err := json.Unmarshal(res.body, v)
			if err == nil {
				return nil
			}
			if badJSONRetried || attempt >= attempts {
				return tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "%s sent invalid JSON (HTTP %d, %s, %d bytes): %v; body starts %s",
					c.cfg.Service, res.status, cmp.Or(res.contentType, "no content type"), len(res.body), err, quote(res.body))
			}
			badJSONRetried = true
			if err := c.wait(ctx, attempt, c.backoff(attempt-1), "invalid JSON", slog.String("error", err.Error())); err != nil {
				return err
			}

		case res.status == http.StatusTooManyRequests || res.status >= 500:
			if attempt >= attempts {
				return tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "%s still answered %s after %s",
					c.cfg.Service, c.describe(res), plural(attempt, "attempt"))
			}
			d := c.backoff(attempt - 1)
			if ra, ok := retryAfter(res.header, c.cfg.Now()); ok {
				d = min(ra, c.cfg.MaxDelay)
			}
			if err := c.wait(ctx, attempt, d, "HTTP status", slog.Int("status", res.status)); err != nil {
				return err
			}

		default:
			code := tokenlysis.EUNAVAILABLE
			switch res.status {
			case http.StatusBadRequest:
				code = tokenlysis.EINVALID
			case http.StatusNotFound:
				code = tokenlysis.ENOTFOUND
			}
			return tokenlysis.Errorf(code, "%s answered %s", c.cfg.Service, c.describe(res))
		}
	}
}

// response is what one attempt brought back.
type response struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
}

// do sends one request and reads the whole body. Transport errors and bodies
// cut short are returned as errors (retried by the caller).
func (c *Client) do(ctx context.Context, url string, header http.Header) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, tokenlysis.Errorf(tokenlysis.EINTERNAL, "%s: bad request URL: %v", c.cfg.Service, err)
	}
	for k, vs := range header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := c.cfg.MaxBodyBytes
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		limit = 64 << 10 // error bodies only feed an error message
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the HTTP %d body: %w", resp.StatusCode, err)
	}
	if int64(len(body)) > limit {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "%s sent a body over %d bytes", c.cfg.Service, limit)
		}
		body = body[:limit]
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &response{status: resp.StatusCode, contentType: ct, header: resp.Header, body: body}, nil
}

// describe renders a non-2xx response for an error message: the status and
// the API's message, or a short quote of the body when it is not HTML.
func (c *Client) describe(res *response) string {
	s := fmt.Sprintf("HTTP %d %s", res.status, http.StatusText(res.status))
	if c.cfg.ErrorMessage != nil {
		if msg := strings.TrimSpace(c.cfg.ErrorMessage(res.body)); msg != "" {
			return s + ": " + truncate(msg)
		}
	}
	switch {
	case len(res.body) == 0:
	case res.contentType == "text/html":
		s += " (an HTML page)"
	default:
		s += ": " + quote(res.body)
	}
	return s
}

// wait sleeps d before retry number attempt, or returns early with an error
// wrapping ctx.Err() when ctx is done first.
func (c *Client) wait(ctx context.Context, attempt int, d time.Duration, reason string, attr slog.Attr) error {
	c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "retrying request",
		slog.String("service", c.cfg.Service), slog.Int("attempt", attempt),
		slog.String("reason", reason), attr, slog.Duration("wait", d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting to retry: %w", c.cfg.Service, ctx.Err())
	case <-t.C:
		return nil
	}
}

// backoff returns the jittered wait before retry number retry (0-based): a
// random duration in [d/2, d] where d = BaseDelay·2^retry, capped at MaxDelay.
func (c *Client) backoff(retry int) time.Duration {
	d := c.cfg.MaxDelay
	if retry < 32 {
		if step := c.cfg.BaseDelay << retry; step > 0 && step < d {
			d = step
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter reads a Retry-After header: delta-seconds or an HTTP date
// (RFC 9110 §10.2.3). A date in the past means "now". ok is false when the
// header is absent or unreadable.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// quote renders the start of a body for an error message: valid UTF-8, control
// characters (newlines of a pretty-printed payload) turned into spaces.
func quote(body []byte) string {
	s := strings.ToValidUTF8(truncate(string(body)), "?")
	return "`" + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s) + "`"
}

func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
