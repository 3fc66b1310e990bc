package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// statusOf maps error codes to HTTP statuses. It is the only such mapping.
var statusOf = map[string]int{
	tokenlysis.EMALFORMED:    http.StatusBadRequest,
	tokenlysis.EINVALID:      http.StatusUnprocessableEntity,
	tokenlysis.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	tokenlysis.EMEDIATYPE:    http.StatusUnsupportedMediaType,
	tokenlysis.EUNAUTHORIZED: http.StatusUnauthorized,
	tokenlysis.EFORBIDDEN:    http.StatusForbidden,
	tokenlysis.ENOTFOUND:     http.StatusNotFound,
	tokenlysis.ECONFLICT:     http.StatusConflict,
	tokenlysis.EUNAVAILABLE:  http.StatusServiceUnavailable,
	tokenlysis.EINTERNAL:     http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem details body, with the error code and the
// offending field as extensions.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	// Errors lists every invalid field (one entry today), so clients can
	// treat single and multiple validation failures alike.
	Errors []FieldProblem `json:"errors,omitempty"`
	// JobID names the existing job when a submission conflicts with one.
	JobID string `json:"job_id,omitempty"`
}

// FieldProblem names one invalid field.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// ErrorReporter receives internal errors (Sentry in production).
type ErrorReporter interface {
	Report(r *http.Request, err error)
}

// writeError answers with the problem for err. Internal errors are logged
// (once, here) and reported; their details never reach the client.
func (s *Server) writeError(c *gin.Context, err error) {
	code := tokenlysis.ErrorCode(err)
	status := statusOf[code]
	p := Problem{
		Type: "urn:tokenlysis:problem:" + code, Title: http.StatusText(status), Status: status,
		Detail: tokenlysis.ErrorMessage(err), Code: code, Field: tokenlysis.ErrorField(err),
	}
	if p.Field != "" {
		p.Errors = []FieldProblem{{Field: p.Field, Detail: p.Detail}}
	}
	var withJob *conflictWithJob
	if errors.As(err, &withJob) {
		p.JobID = withJob.jobID
	}
	switch code {
	case tokenlysis.EINTERNAL:
		s.log.Error("http: internal error", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		if s.reporter != nil {
			s.reporter.Report(c.Request, err)
		}
	case tokenlysis.EUNAVAILABLE:
		s.log.Warn("http: dependency unavailable", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		c.Header("Retry-After", "5")
	case tokenlysis.EUNAUTHORIZED:
		if c.Writer.Header().Get("WWW-Authenticate") == "" {
			c.Header("WWW-Authenticate", `Bearer realm="tokenlysis", error="invalid_token"`)
		}
	default:
		s.log.Debug("http: request refused", "method", c.Request.Method, "path", c.FullPath(), "code", code, "err", err)
	}
	writeProblem(c, p)
}

// writeProblem answers with p, its status, and ends the request.
func writeProblem(c *gin.Context, p Problem) {
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(p.Status, p)
}

// methodNotAllowed answers a request for a route that exists, with another
// method; gin has set Allow to the route's methods. It is HTTP's error, not
// one of the domain's, so it has no tokenlysis code.
func methodNotAllowed(c *gin.Context) {
	writeProblem(c, Problem{
		Type: "urn:tokenlysis:problem:method_not_allowed", Title: http.StatusText(http.StatusMethodNotAllowed),
		Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Detail: "This route does not take " + c.Request.Method + "; Allow lists the methods it takes.",
	})
}

// conflictWithJob is an ECONFLICT error that names the job in the way.
type conflictWithJob struct {
	err   error
	jobID string
}

func (e *conflictWithJob) Error() string { return e.err.Error() }
func (e *conflictWithJob) Unwrap() error { return e.err }
