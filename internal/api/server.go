package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Verifier authenticates bearer tokens (an *auth.Verifier).
type Verifier interface {
	Verify(ctx context.Context, rawToken string) (auth.Principal, error)
}

// Checker is a dependency that /readyz checks.
type Checker struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	Logger         *slog.Logger
	Registry       *prometheus.Registry // required: metrics are never on the default registry
	Reporter       ErrorReporter        // optional
	MaxBodyBytes   int64                // default 1 MiB
	Heartbeat      time.Duration        // SSE heartbeat; default 15s
	ReadyTimeout   time.Duration        // per /readyz check; default 2s
	RequestTimeout time.Duration        // non-streaming requests; default 15s
	ScoreCacheTTL  time.Duration        // GET /api/scores answers; default 30s (emptied on every recalculation)
	DevIssuer      *auth.DevIssuer      // set in dev mode: serves discovery and JWKS
	QueuesUI       http.Handler         // asynqmon, mounted at /admin/queues
	Checks         []Checker
}

// Server is the HTTP API.
type Server struct {
	jobs     *job.Service
	store    *sqlstore.Store
	bus      *events.Bus
	verifier Verifier
	authz    *authz.Enforcer
	log      *slog.Logger
	reporter ErrorReporter
	cfg      Config
	engine   *gin.Engine
	metrics  *metrics
	scores   *scoreCache
}

// New builds the Server and its router.
func New(jobs *job.Service, store *sqlstore.Store, bus *events.Bus, verifier Verifier, az *authz.Enforcer, cfg Config) *Server {
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 1<<20)
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, 15*time.Second)
	cfg.ReadyTimeout = cmp.Or(cfg.ReadyTimeout, 2*time.Second)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, 15*time.Second)
	cfg.ScoreCacheTTL = cmp.Or(cfg.ScoreCacheTTL, 30*time.Second)
	s := &Server{
		jobs: jobs, store: store, bus: bus, verifier: verifier, authz: az,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), reporter: cfg.Reporter, cfg: cfg,
	}
	s.metrics = newMetrics(cfg.Registry, bus)
	s.scores = &scoreCache{ttl: cfg.ScoreCacheTTL, max: 1000}
	gin.SetMode(gin.ReleaseMode)
	s.engine = gin.New()
	s.engine.ContextWithFallback = true
	s.engine.HandleMethodNotAllowed = true
	s.engine.Use(s.recover, s.metrics.observe)
	s.engine.NoRoute(func(c *gin.Context) { s.writeError(c, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "No such route.")) })
	s.engine.NoMethod(methodNotAllowed)
	for _, r := range s.routes() {
		s.mount(r)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Engine returns the router, for tests that walk its routes.
func (s *Server) Engine() *gin.Engine { return s.engine }

// Route is one entry of the route table. A nil Permission means public.
type Route struct {
	Method     string // "*" mounts every method (asynqmon)
	Path       string
	Permission *authz.Permission
	Stream     bool // long-lived: no request timeout
	Handler    gin.HandlerFunc
}

func perm(p authz.Permission) *authz.Permission { return &p }

// routes is the route table: every endpoint and the permission it needs.
// Routes without a permission are public and listed in PublicPaths.
func (s *Server) routes() []Route {
	rs := []Route{
		{Method: "GET", Path: "/healthz", Handler: s.healthz},
		{Method: "GET", Path: "/readyz", Handler: s.readyz},

		{Method: "POST", Path: "/api/jobs", Permission: perm(authz.JobsSubmit), Handler: s.submitJob},
		{Method: "GET", Path: "/api/jobs", Permission: perm(authz.JobsRead), Handler: s.listJobs},
		{Method: "GET", Path: "/api/jobs/:id", Permission: perm(authz.JobsRead), Handler: s.getJob},
		{Method: "POST", Path: "/api/jobs/:id/cancel", Permission: perm(authz.JobsRead), Handler: s.cancelJob},
		{Method: "POST", Path: "/api/jobs/:id/retry", Permission: perm(authz.JobsSubmit), Handler: s.retryJob},
		{Method: "GET", Path: "/api/jobs/:id/events", Permission: perm(authz.JobsRead), Stream: true, Handler: s.jobEvents},
		{Method: "GET", Path: "/api/job-types", Permission: perm(authz.JobsRead), Handler: s.jobTypes},
		{Method: "POST", Path: "/api/tasks/recalculate", Permission: perm(authz.AnalyticsSubmit), Handler: s.recalculate},

		{Method: "GET", Path: "/api/scores", Permission: perm(authz.ScoresRead), Handler: s.latestScores},
		{Method: "GET", Path: "/api/scores/:coin", Permission: perm(authz.ScoresRead), Handler: s.scoreHistory},
		{Method: "GET", Path: "/api/markets/top", Permission: perm(authz.ScoresRead), Handler: s.topMarkets},
		{Method: "GET", Path: "/api/price/:coin/history", Permission: perm(authz.ScoresRead), Handler: s.priceHistory},
		{Method: "GET", Path: "/api/fng/latest", Permission: perm(authz.ScoresRead), Handler: s.fngLatest},
		{Method: "GET", Path: "/api/fng/history", Permission: perm(authz.ScoresRead), Handler: s.fngHistory},
		{Method: "GET", Path: "/api/stream/scores", Permission: perm(authz.ScoresRead), Stream: true, Handler: s.scoreStream},
		{Method: "GET", Path: "/ws/scores", Permission: perm(authz.ScoresRead), Stream: true, Handler: s.scoreSocket},

		{Method: "GET", Path: "/api/users", Permission: perm(authz.UsersManage), Handler: s.listUsers},
		{Method: "POST", Path: "/api/users", Permission: perm(authz.UsersManage), Handler: s.createUser},
		{Method: "GET", Path: "/api/me", Permission: perm(authz.JobsRead), Handler: s.me},

		{Method: "GET", Path: "/metrics", Permission: perm(authz.MetricsRead), Handler: gin.WrapH(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))},
	}
	if s.cfg.DevIssuer != nil {
		rs = append(rs,
			Route{Method: "GET", Path: "/.well-known/openid-configuration", Handler: gin.WrapF(s.cfg.DevIssuer.DiscoveryHandler())},
			Route{Method: "GET", Path: "/oauth/jwks", Handler: gin.WrapF(s.cfg.DevIssuer.JWKSHandler())},
		)
	}
	if s.cfg.QueuesUI != nil {
		rs = append(rs, Route{Method: "*", Path: "/admin/queues/*any", Permission: perm(authz.QueuesManage), Stream: true, Handler: gin.WrapH(s.cfg.QueuesUI)})
	}
	return rs
}

// PublicPaths are the only routes served without a token: health checks
// for load balancers, and the dev issuer's discovery and keys (an OIDC
// provider's are public by definition).
var PublicPaths = map[string]bool{
	"/healthz": true, "/readyz": true, "/.well-known/openid-configuration": true, "/oauth/jwks": true,
}

// Routes returns the route table, for tests.
func (s *Server) Routes() []Route { return s.routes() }

var allMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func (s *Server) mount(r Route) {
	var chain []gin.HandlerFunc
	if !r.Stream {
		chain = append(chain, s.timeout)
	}
	if r.Permission != nil {
		chain = append(chain, s.authenticate, s.authorize(*r.Permission))
	} else if !PublicPaths[r.Path] {
		panic("api: route " + r.Path + " has no permission and is not on the public list")
	}
	chain = append(chain, r.Handler)
	methods := []string{r.Method}
	if r.Method == "*" {
		methods = allMethods
	}
	for _, m := range methods {
		s.engine.Handle(m, r.Path, chain...)
	}
}

func (s *Server) timeout(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.writeError(c, tokenlysis.Errorf(tokenlysis.EINTERNAL, "panic: %v", v))
		}
	}()
	c.Next()
}

const principalKey = "tokenlysis.principal"

// authenticate verifies the bearer token and stores the principal.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		// No credentials at all: the challenge carries no error code
		// (RFC 6750 §3.1); writeError keeps it.
		c.Header("WWW-Authenticate", `Bearer realm="tokenlysis"`)
		s.writeError(c, tokenlysis.Errorf(tokenlysis.EUNAUTHORIZED, "A bearer token is required."))
		return
	}
	p, err := s.verifier.Verify(c.Request.Context(), h[len(prefix):])
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func (s *Server) authorize(p authz.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !s.authz.Allowed(principal(c).Roles, p) {
			s.writeError(c, tokenlysis.Errorf(tokenlysis.EFORBIDDEN, "This needs the %s permission.", p))
			return
		}
		c.Next()
	}
}

func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(auth.Principal)
	return pr
}

// tokenExpiry returns a channel that fires when the request's token stops
// being accepted (never, for a token without exp), and the function that
// releases its timer. A stream ends then: a client that reconnects with a
// fresh token and Last-Event-ID misses nothing, and one whose access was
// taken away is not served for good on a token it can no longer renew.
func tokenExpiry(c *gin.Context) (<-chan time.Time, func()) {
	until := principal(c).ValidUntil
	if until.IsZero() {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(until))
	return t.C, func() { t.Stop() }
}

// sseTokenExpired ends an SSE stream whose token has expired with a
// comment that says so.
func sseTokenExpired(w gin.ResponseWriter) {
	fmt.Fprint(w, ": token expired\n\n")
	w.Flush()
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 when every dependency answers, else 503 naming them.
func (s *Server) readyz(c *gin.Context) {
	failed := map[string]string{}
	for _, ch := range s.cfg.Checks {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.ReadyTimeout)
		if err := ch.Check(ctx); err != nil {
			failed[ch.Name] = "unavailable"
		}
		cancel()
	}
	if len(failed) > 0 {
		c.Header("Retry-After", "5")
		c.Header("Content-Type", "application/problem+json")
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{
			"type": "urn:tokenlysis:problem:unavailable", "title": "Service Unavailable", "status": 503,
			"code": tokenlysis.EUNAVAILABLE, "detail": "Some dependencies do not answer.", "checks": failed,
		})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func queryInt(c *gin.Context, name string, def, lo, hi int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, tokenlysis.FieldErrorf(name, "Must be a whole number from %d to %d.", lo, hi)
	}
	return n, nil
}
