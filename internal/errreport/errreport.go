// Package errreport sends internal errors to Sentry. Without a DSN it is a
// no-op, so call sites never check whether reporting is configured. It
// uses its own sentry.Client and Hub, never the SDK's global hub.
package errreport

import (
	"net/http"
	"time"

	"github.com/getsentry/sentry-go"
)

// Reporter reports errors. The zero value and nil report nothing.
type Reporter struct {
	hub *sentry.Hub
}

// New returns a Reporter for dsn ("" = disabled).
func New(dsn, environment, release string) (*Reporter, error) {
	if dsn == "" {
		return &Reporter{}, nil
	}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: dsn, Environment: environment, Release: release})
	if err != nil {
		return nil, err
	}
	return &Reporter{hub: sentry.NewHub(client, sentry.NewScope())}, nil
}

// Enabled reports whether errors are sent anywhere.
func (r *Reporter) Enabled() bool { return r != nil && r.hub != nil }

// Report sends an error raised while serving req.
func (r *Reporter) Report(req *http.Request, err error) {
	if !r.Enabled() {
		return
	}
	hub := r.hub.Clone()
	hub.Scope().SetRequest(req)
	hub.CaptureException(err)
}

// Capture sends an error with tags (job id, job type…).
func (r *Reporter) Capture(err error, tags map[string]string) {
	if !r.Enabled() {
		return
	}
	hub := r.hub.Clone()
	hub.Scope().SetTags(tags)
	hub.CaptureException(err)
}

// Flush waits up to d for queued reports to be sent.
func (r *Reporter) Flush(d time.Duration) {
	if r.Enabled() {
		r.hub.Flush(d)
	}
}
