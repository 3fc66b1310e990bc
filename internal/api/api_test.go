package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tokenlysis/tokenlysis/internal/api"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/tasks"
)

// redisDB is this package's Redis database index.
const redisDB = 3

type testBundle struct {
	bus    *events.Bus
	srv    *api.Server
	url    string
	issuer *auth.DevIssuer
	store  *sqlstore.Store
}

func setup(t *testing.T, dialect database.Dialect) *testBundle {
	t.Helper()
	db := databasetest.New(t, dialect)
	rdb := redistest.Client(t, redisDB, "apitest")
	bus := events.NewBus(rdb, events.Config{Channel: redistest.Prefix() + "events"})
	store := sqlstore.New(db, sqlstore.Config{Announcer: job.NewAnnouncer(bus, nil)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go bus.Run(ctx)
	az, err := authz.New(authz.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := job.NewRegistry(tasks.Specs()...)
	if err != nil {
		t.Fatal(err)
	}
	svc := job.NewService(store, asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb), az, reg, job.ServiceConfig{})

	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	key, err := auth.LoadOrCreateDevKey(filepath.Join(t.TempDir(), "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	issuer := auth.NewDevIssuer(key, ts.URL, "tokenlysis")
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: ts.URL, Audience: "tokenlysis"})
	if err != nil {
		t.Fatal(err)
	}
	redisOpt, _ := asynq.ParseRedisURI(redistest.URL(t, redisDB))
	srv := api.New(svc, store, bus, verifier, az, api.Config{
		Registry: prometheus.NewRegistry(), DevIssuer: issuer, MaxBodyBytes: 4096, Heartbeat: 200 * time.Millisecond,
		QueuesUI: asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: redisOpt}),
		Checks:   []api.Checker{{Name: "database", Check: store.Ping}},
	})
	handler = srv
	return &testBundle{bus: bus, srv: srv, url: ts.URL, issuer: issuer, store: store}
}

func (tb *testBundle) token(t *testing.T, subject string, roles ...string) string {
	t.Helper()
	tok, err := tb.issuer.Mint(auth.TokenRequest{Subject: subject, Roles: roles, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
	return m
}

// do sends a request and reads the whole answer; for a stream (SSE,
// WebSocket) that stays open, it reads only the status and headers.
func (tb *testBundle) do(t *testing.T, method, path, token string, body string, header ...string) response {
	t.Helper()
	return tb.send(t, false, method, path, token, body, header...)
}

func (tb *testBundle) doStream(t *testing.T, method, path, token string) response {
	t.Helper()
	return tb.send(t, true, method, path, token, "")
}

func (tb *testBundle) send(t *testing.T, headersOnly bool, method, path, token string, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, tb.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if headersOnly && res.StatusCode == http.StatusOK {
		return response{status: res.StatusCode, header: res.Header}
	}
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestEveryRouteIsInTheTable fails when a route is registered outside the
// route table, or is in the table without a permission while not on the
// public list.
func TestEveryRouteIsInTheTable(t *testing.T) {
	tb := setup(t, database.SQLite)
	table := map[string]api.Route{}
	for _, r := range tb.srv.Routes() {
		table[r.Method+" "+r.Path] = r
		if r.Permission == nil && !api.PublicPaths[r.Path] {
			t.Errorf("route %s %s has no permission and is not public", r.Method, r.Path)
		}
	}
	for _, r := range tb.srv.Engine().Routes() {
		_, exact := table[r.Method+" "+r.Path]
		_, any := table["* "+r.Path]
		if !exact && !any {
			t.Errorf("route %s %s is registered but not in the route table", r.Method, r.Path)
		}
	}
}

// TestGuardedRoutesRefuseMissingAndBadTokens walks every guarded route.
func TestGuardedRoutesRefuseMissingAndBadTokens(t *testing.T) {
	tb := setup(t, database.SQLite)
	expired, _ := tb.issuer.Mint(auth.TokenRequest{Subject: "x", Roles: []string{"admin"}, TTL: -time.Hour})
	otherKey, _ := auth.LoadOrCreateDevKey(filepath.Join(t.TempDir(), "other.pem"))
	forged, _ := auth.NewDevIssuer(otherKey, tb.url, "tokenlysis").Mint(auth.TokenRequest{Subject: "x", Roles: []string{"admin"}, TTL: time.Hour})
	for _, r := range tb.srv.Routes() {
		if r.Permission == nil {
			continue
		}
		method := r.Method
		if method == "*" {
			method = "GET"
		}
		path := strings.NewReplacer(":id", "01a2", "*any", "").Replace(r.Path)
		for name, tok := range map[string]string{"none": "", "garbage": "not-a-jwt", "expired": expired, "forged": forged} {
			res := tb.do(t, method, path, tok, "")
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %s token: status %d, want 401", method, path, name, res.status)
			}
			// RFC 6750 §3.1: no error code when no token came at all.
			want := `Bearer realm="tokenlysis", error="invalid_token"`
			if tok == "" {
				want = `Bearer realm="tokenlysis"`
			}
			if got := res.header.Get("WWW-Authenticate"); got != want {
				t.Errorf("%s %s with %s token: WWW-Authenticate = %q, want %q", method, path, name, got, want)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s %s: Content-Type %q, want problem+json", method, path, ct)
			}
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/.well-known/openid-configuration", "/oauth/jwks"} {
		if res := tb.do(t, "GET", p, "", ""); res.status != http.StatusOK {
			t.Errorf("public %s: status %d", p, res.status)
		}
	}
}

// TestRolesPerRoute checks each guarded route for each role: 403 exactly
// when the seed's policy does not grant the route's permission.
func TestRolesPerRoute(t *testing.T) {
	tb := setup(t, database.SQLite)
	// The seed's policy, written out: which roles may use which permission.
	allowed := map[string][]string{
		"jobs:submit":      {"user", "analyst", "admin"},
		"jobs:read":        {"user", "analyst", "admin"},
		"scores:read":      {"user", "analyst", "admin"},
		"analytics:submit": {"analyst", "admin"},
		"users:manage":     {"admin"},
		"metrics:read":     {"admin"},
		"queues:manage":    {"admin"},
		"schedules:manage": {"admin"},
		"uploads:sign":     {"admin"},
	}
	for _, r := range tb.srv.Routes() {
		if r.Permission == nil {
			continue
		}
		roles, ok := allowed[r.Permission.String()]
		if !ok {
			t.Fatalf("route %s needs %s, which this test does not know", r.Path, r.Permission)
		}
		method := r.Method
		if method == "*" {
			method = "GET"
		}
		path := strings.NewReplacer(":id", "01a2", "*any", "").Replace(r.Path)
		for _, role := range []string{"user", "analyst", "admin", "nobody"} {
			res := tb.doStream(t, method, path, tb.token(t, "rt-"+role, role))
			want403 := !contains(roles, role)
			if got403 := res.status == http.StatusForbidden; got403 != want403 || res.status == http.StatusUnauthorized || res.status >= 500 {
				t.Errorf("%s %s as %s: status %d (want 403: %v) %s", method, path, role, res.status, want403, res.body)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestSubmitValidation(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "validator", "user")
	big := `{"type":"system:probe","params":{"steps":1,"pad":"` + strings.Repeat("x", 5000) + `"}}`
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
		detail     string // when set, the problem's detail exactly
	}{
		{"unknown type", `{"type":"nope:nope","params":{}}`, 422, "type", ""},
		{"missing type", `{"params":{}}`, 422, "type", ""},
		{"steps out of range", `{"type":"system:probe","params":{"steps":0}}`, 422, "params.steps", ""},
		{"negative step_ms", `{"type":"system:probe","params":{"steps":1,"step_ms":-1}}`, 422, "params.step_ms", ""},
		{"fail_at past steps", `{"type":"system:probe","params":{"steps":2,"fail_at":3}}`, 422, "params.fail_at", ""},
		{"unknown param", `{"type":"system:probe","params":{"steps":1,"colour":"red"}}`, 422, "params.colour", ""},
		{"param of the wrong type", `{"type":"system:probe","params":{"steps":"two"}}`, 422, "params.steps", "Must be an integer, not a string."},
		{"params not an object", `{"type":"system:probe","params":[1]}`, 422, "params", "Must be an object, not an array."},
		{"type not a string", `{"type":5,"params":{}}`, 400, "type", "Must be a string, not a number."},
		{"unknown top-level field", `{"type":"system:probe","params":{"steps":1},"priority":9}`, 400, "priority", ""},
		{"param given twice", `{"type":"system:probe","params":{"steps":1,"steps":2}}`, 422, "params.steps", "Given twice in the same object."},
		{"param in another case", `{"type":"system:probe","params":{"Steps":1}}`, 422, "params.Steps", `Unknown field; did you mean "steps"?`},
		{"field given twice", `{"type":"nope:nope","params":{"steps":1},"type":"system:probe"}`, 400, "type", "Given twice in the same object."},
		{"field in another case", `{"Type":"system:probe","params":{"steps":1}}`, 400, "Type", `Unknown field; did you mean "type"?`},
		{"max_retry out of range", `{"type":"system:probe","params":{"steps":1},"max_retry":99}`, 422, "max_retry", ""},
		{"malformed JSON", `{"type":`, 400, "", ""},
		{"trailing data", `{"type":"system:probe","params":{"steps":1}} {}`, 400, "", ""},
		{"analytics type needs analyst", `{"type":"scores:recalculate","params":{}}`, 403, "", ""},
		{"oversize body", big, 413, "", ""},
		{"oversize body, not even JSON", strings.Repeat("x", 5000), 413, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tb.do(t, "POST", "/api/jobs", tok, tc.body)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			p := res.json(t)
			if p["status"] != float64(tc.status) || p["detail"] == "" || p["title"] == "" {
				t.Fatalf("not a problem body: %s", res.body)
			}
			if tc.field != "" && p["field"] != tc.field {
				t.Fatalf("field = %v, want %q: %s", p["field"], tc.field, res.body)
			}
			if tc.detail != "" && p["detail"] != tc.detail {
				t.Fatalf("detail = %q, want %q", p["detail"], tc.detail)
			}
		})
	}
	// Nothing was recorded (and so nothing enqueued) for any refusal.
	res := tb.do(t, "GET", "/api/jobs", tok, "")
	if items := res.json(t)["items"].([]any); len(items) != 0 {
		t.Fatalf("refused submissions left %d jobs", len(items))
	}
}

func TestJobsAcrossEngines(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d)
			alice, bob, admin := tb.token(t, "alice", "user"), tb.token(t, "bob", "user"), tb.token(t, "root", "admin")
			probe := `{"type":"system:probe","params":{"steps":1}}`

			res := tb.do(t, "POST", "/api/jobs", alice, probe, "Idempotency-Key", "abc")
			if res.status != 202 {
				t.Fatalf("submit: %d %s", res.status, res.body)
			}
			j := res.json(t)
			id := j["id"].(string)
			if res.header.Get("Location") != "/api/jobs/"+id || j["status"] != "queued" || j["submitted_by"] != "alice" {
				t.Fatalf("submit answer: %v %s", res.header, res.body)
			}
			again := tb.do(t, "POST", "/api/jobs", alice, probe, "Idempotency-Key", "abc")
			if again.status != 202 || again.json(t)["id"] != id || again.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("idempotent replay: %d %s", again.status, again.body)
			}
			bobs := tb.do(t, "POST", "/api/jobs", bob, probe, "Idempotency-Key", "abc")
			if bobs.json(t)["id"] == id {
				t.Fatal("another user's idempotency key returned alice's job")
			}

			if res := tb.do(t, "GET", "/api/jobs/"+id, bob, ""); res.status != 404 {
				t.Fatalf("bob reads alice's job: %d", res.status)
			}
			if res := tb.do(t, "POST", "/api/jobs/"+id+"/cancel", bob, ""); res.status != 404 {
				t.Fatalf("bob cancels alice's job: %d", res.status)
			}
			if n := len(tb.do(t, "GET", "/api/jobs", bob, "").json(t)["items"].([]any)); n != 1 {
				t.Fatalf("bob lists %d jobs, want his 1", n)
			}
			if n := len(tb.do(t, "GET", "/api/jobs", admin, "").json(t)["items"].([]any)); n != 2 {
				t.Fatalf("admin lists %d jobs, want 2", n)
			}
			if res := tb.do(t, "GET", "/api/jobs/"+id, admin, ""); res.status != 200 {
				t.Fatalf("admin reads alice's job: %d", res.status)
			}

			// Pagination with a cursor.
			for i := 0; i < 3; i++ {
				tb.do(t, "POST", "/api/jobs", alice, probe)
			}
			page := tb.do(t, "GET", "/api/jobs?limit=3", alice, "").json(t)
			next, _ := page["next_cursor"].(string)
			if len(page["items"].([]any)) != 3 || next == "" {
				t.Fatalf("page 1: %v", page)
			}
			page2 := tb.do(t, "GET", "/api/jobs?limit=3&cursor="+next, alice, "").json(t)
			if items := page2["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
				t.Fatalf("page 2: %v", page2)
			}
			if res := tb.do(t, "GET", "/api/jobs?status=bogus", alice, ""); res.status != 422 || res.json(t)["field"] != "status" {
				t.Fatalf("bad status filter: %d %s", res.status, res.body)
			}
			// A cursor that no page gave is refused, not read as a position
			// ("zzz" sorts after every ID: it gave the first page again).
			for _, bad := range []string{"zzz", "0", "not-a-job-id"} {
				if res := tb.do(t, "GET", "/api/jobs?limit=3&cursor="+bad, alice, ""); res.status != 422 || res.json(t)["field"] != "cursor" {
					t.Fatalf("cursor %q: %d %s", bad, res.status, res.body)
				}
			}

			// Cancel a queued job: final, and events close with "canceled".
			res = tb.do(t, "POST", "/api/jobs/"+id+"/cancel", alice, "")
			if res.status != 200 || res.json(t)["status"] != "canceled" {
				t.Fatalf("cancel: %d %s", res.status, res.body)
			}
			if res := tb.do(t, "POST", "/api/jobs/"+id+"/cancel", alice, ""); res.status != 409 {
				t.Fatalf("second cancel: %d", res.status)
			}
			stream := tb.do(t, "GET", "/api/jobs/"+id+"/events", alice, "")
			if stream.header.Get("Content-Type") != "text/event-stream" || stream.header.Get("X-Accel-Buffering") != "no" {
				t.Fatalf("stream headers: %v", stream.header)
			}
			body := string(stream.body)
			if !strings.Contains(body, "id: 1\nevent: queued\n") || !strings.Contains(body, "id: 2\nevent: canceled\n") {
				t.Fatalf("stream body:\n%s", body)
			}
			if res := tb.do(t, "GET", "/api/jobs/"+id+"/events", alice, "", "Last-Event-ID", "1"); strings.Contains(string(res.body), "id: 1\n") || !strings.Contains(string(res.body), "id: 2\n") {
				t.Fatalf("resume after 1:\n%s", res.body)
			}
			if res := tb.do(t, "GET", "/api/jobs/"+id+"/events", alice, "", "Last-Event-ID", "x"); res.status != 400 {
				t.Fatalf("bad Last-Event-ID: %d", res.status)
			}
			// Retry puts it back in the queue under the same ID.
			res = tb.do(t, "POST", "/api/jobs/"+id+"/retry", alice, "")
			if res.status != 202 || res.json(t)["status"] != "queued" || res.json(t)["id"] != id {
				t.Fatalf("retry: %d %s", res.status, res.body)
			}
		})
	}
}

// Concurrent submissions with the same Idempotency-Key, on both engines,
// make one job: every answer names it, one of them as created.
func TestConcurrentIdempotentSubmissions(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d)
			tok := tb.token(t, "concurrent-"+string(d), "user")
			const n = 20
			type answer struct {
				status   int
				id       string
				replayed bool
				err      error
			}
			answers := make(chan answer, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					<-start
					req, _ := http.NewRequest("POST", tb.url+"/api/jobs", strings.NewReader(`{"type":"system:probe","params":{"steps":1}}`))
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", "same-key")
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						answers <- answer{err: err}
						return
					}
					defer res.Body.Close()
					var j struct{ ID string }
					err = json.NewDecoder(res.Body).Decode(&j)
					answers <- answer{status: res.StatusCode, id: j.ID, replayed: res.Header.Get("Idempotent-Replayed") == "true", err: err}
				})
			}
			close(start)
			wg.Wait()
			close(answers)
			ids := map[string]int{}
			created := 0
			for a := range answers {
				if a.err != nil || a.status != http.StatusAccepted {
					t.Fatalf("answer: %d %v", a.status, a.err)
				}
				ids[a.id]++
				if !a.replayed {
					created++
				}
			}
			if len(ids) != 1 || created != 1 {
				t.Fatalf("%d submissions named jobs %v, %d of them as created; want one job, created once", n, ids, created)
			}
			list := tb.do(t, "GET", "/api/jobs", tok, "").json(t)
			if items := list["items"].([]any); len(items) != 1 {
				t.Fatalf("the submitter has %d jobs, want 1", len(items))
			}
		})
	}
}

// A client that already has a job's last event (a browser's EventSource
// reconnects by itself as soon as the stream ends) is told with 204 that
// nothing more will come, so that it stops; one that claims an event the
// job never had is refused. Both used to get an open stream of heartbeats
// that never ended.
func TestEventStreamResumePoints(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "resumer", "user")
	res := tb.do(t, "POST", "/api/jobs", tok, `{"type":"system:probe","params":{"steps":1}}`)
	id := res.json(t)["id"].(string)
	if res := tb.do(t, "POST", "/api/jobs/"+id+"/cancel", tok, ""); res.status != 200 {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	// Events: 1 queued, 2 canceled.
	if res := tb.do(t, "GET", "/api/jobs/"+id+"/events", tok, "", "Last-Event-ID", "1"); res.status != 200 ||
		!strings.Contains(string(res.body), "id: 2\nevent: canceled\n") {
		t.Fatalf("resume after 1: %d\n%s", res.status, res.body)
	}
	if res := tb.do(t, "GET", "/api/jobs/"+id+"/events", tok, "", "Last-Event-ID", "2"); res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("resume after the terminal event: %d %q, want 204 and no body", res.status, res.body)
	}
	if res := tb.do(t, "GET", "/api/jobs/"+id+"/events?last_event_id=2", tok, ""); res.status != http.StatusNoContent {
		t.Fatalf("resume after the terminal event (query parameter): %d", res.status)
	}
	res = tb.do(t, "GET", "/api/jobs/"+id+"/events", tok, "", "Last-Event-ID", "3")
	if res.status != 400 || res.json(t)["field"] != "Last-Event-ID" {
		t.Fatalf("resume after an event the job never had: %d %s", res.status, res.body)
	}
	// A job still going: an id past its last event is refused too.
	res = tb.do(t, "POST", "/api/jobs", tok, `{"type":"system:probe","params":{"steps":1}}`)
	queued := res.json(t)["id"].(string)
	res = tb.do(t, "GET", "/api/jobs/"+queued+"/events", tok, "", "Last-Event-ID", "99")
	if res.status != 400 || res.json(t)["field"] != "Last-Event-ID" {
		t.Fatalf("resume of a queued job after event 99: %d %s", res.status, res.body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "alice", "admin")
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/api/jobs", "GET, POST"},
		{"PUT", "/api/users", "GET, POST"},
		{"GET", "/api/jobs/x/cancel", "POST"},
	} {
		res := tb.do(t, tc.method, tc.path, tok, "")
		if res.status != 405 || res.header.Get("Allow") != tc.allow {
			t.Fatalf("%s %s: %d, Allow %q; want 405, Allow %q: %s", tc.method, tc.path, res.status, res.header.Get("Allow"), tc.allow, res.body)
		}
		if p := res.json(t); p["status"] != float64(405) || p["code"] != "method_not_allowed" || res.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s: not a 405 problem: %s", tc.method, tc.path, res.body)
		}
	}
}

func TestRecalculateCompatibilityRoute(t *testing.T) {
	tb := setup(t, database.SQLite)
	res := tb.do(t, "POST", "/api/tasks/recalculate", tb.token(t, "ana", "analyst"), "")
	if res.status != 202 || res.json(t)["type"] != tasks.TypeRecalculate {
		t.Fatalf("recalculate: %d %s", res.status, res.body)
	}
	if res := tb.do(t, "POST", "/api/tasks/recalculate", tb.token(t, "usr", "user"), ""); res.status != 403 {
		t.Fatalf("user recalculate: %d", res.status)
	}
}

func TestUsers(t *testing.T) {
	tb := setup(t, database.SQLite)
	admin := tb.token(t, "root", "admin")
	res := tb.do(t, "POST", "/api/users", admin, `{"email":"Ada@Example.com","full_name":"Ada Lovelace"}`)
	if res.status != 201 || res.json(t)["email"] != "ada@example.com" {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	if res := tb.do(t, "POST", "/api/users", admin, `{"email":"ada@example.com"}`); res.status != 409 || res.json(t)["field"] != "email" {
		t.Fatalf("duplicate: %d %s", res.status, res.body)
	}
	if res := tb.do(t, "POST", "/api/users", admin, `{"email":"not an email"}`); res.status != 422 || res.json(t)["field"] != "email" {
		t.Fatalf("bad email: %d %s", res.status, res.body)
	}
	list := tb.do(t, "GET", "/api/users", admin, "").json(t)
	if items := list["items"].([]any); len(items) != 1 {
		t.Fatalf("list: %v", list)
	}
	if res := tb.do(t, "GET", "/api/users", tb.token(t, "u", "user"), ""); res.status != 403 {
		t.Fatalf("user lists users: %d", res.status)
	}
}

// A finished job whose replay is a whole number of SQL pages (500 events)
// ends its stream after the terminal event, as every other does.
func TestEventStreamEndsOnAPageBoundary(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "pager", "user")
	res := tb.do(t, "POST", "/api/jobs", tok, `{"type":"system:probe","params":{"steps":1}}`)
	id := res.json(t)["id"].(string)
	ctx := t.Context()
	if _, err := tb.store.StartAttempt(ctx, id); err != nil {
		t.Fatal(err)
	}
	for i := range 497 { // queued, started, 497 × progress, succeeded: 500
		if _, err := tb.store.Progress(ctx, id, tokenlysis.JobEvent{Kind: tokenlysis.EventProgress, Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.store.Succeed(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"0", "250"} {
		res := tb.do(t, "GET", "/api/jobs/"+id+"/events", tok, "", "Last-Event-ID", from)
		if res.status != 200 {
			t.Fatalf("from %s: %d %s", from, res.status, tail(res.body))
		}
		if !strings.Contains(string(res.body), "id: 500\nevent: succeeded\n") || strings.Contains(string(res.body), "heartbeat") {
			t.Fatalf("from %s: the stream did not end after event 500: %q", from, tail(res.body))
		}
	}
}

func tail(b []byte) string { return string(b[max(0, len(b)-300):]) }

// Retrying a job needs the permission its type needs to be submitted: a
// subject who lost the analyst role cannot re-run its analytics jobs.
func TestRetryNeedsTheTypesPermission(t *testing.T) {
	tb := setup(t, database.SQLite)
	analyst, demoted := tb.token(t, "dana", "analyst"), tb.token(t, "dana", "user")
	res := tb.do(t, "POST", "/api/jobs", analyst, `{"type":"market:ingest","params":{}}`)
	if res.status != 202 {
		t.Fatalf("submit: %d %s", res.status, res.body)
	}
	id := res.json(t)["id"].(string)
	if res := tb.do(t, "POST", "/api/jobs/"+id+"/cancel", analyst, ""); res.status != 200 {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	if res := tb.do(t, "POST", "/api/jobs/"+id+"/retry", demoted, ""); res.status != 403 {
		t.Fatalf("retry as user: %d %s, want 403", res.status, res.body)
	}
	if res := tb.do(t, "POST", "/api/jobs/"+id+"/retry", analyst, ""); res.status != 202 {
		t.Fatalf("retry as analyst: %d %s, want 202", res.status, res.body)
	}
}

// Media types are matched without regard to case; a body of another type
// is 415, and nothing is submitted.
func TestSubmitContentType(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "typist", "user")
	body := `{"type":"system:probe","params":{"steps":1}}`
	for _, tc := range []struct {
		ct     string
		status int
	}{
		{"Application/JSON", 202},
		{"application/json; charset=utf-8", 202},
		{"application/problem+JSON", 202},
		{"text/plain", 415},
		{"application/xml", 415},
	} {
		res := tb.do(t, "POST", "/api/jobs", tok, body, "Content-Type", tc.ct)
		if res.status != tc.status {
			t.Errorf("Content-Type %q: %d %s, want %d", tc.ct, res.status, res.body, tc.status)
		}
		if tc.status == 415 && (res.json(t)["code"] != "unsupported_media_type" || res.json(t)["field"] != "Content-Type") {
			t.Errorf("Content-Type %q: body %s", tc.ct, res.body)
		}
	}
	if res := tb.do(t, "GET", "/api/jobs", tok, ""); !strings.Contains(string(res.body), `"id"`) || strings.Count(string(res.body), `"id"`) != 3 {
		t.Errorf("jobs after the submissions: %s, want the 3 accepted", res.body)
	}
}

// An Idempotency-Key names one request: the same key from the same user
// with another request is refused (422, as the IETF draft on the header
// says), and nothing is created; the same request written differently is
// a replay. On PostgreSQL the stored params come back from jsonb, spaced
// and ordered otherwise than sent.
func TestIdempotencyKeyReusedForAnotherRequest(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d)
			alice := tb.token(t, "alice", "analyst")
			first := tb.do(t, "POST", "/api/jobs", alice, `{"type":"system:probe","params":{"steps":2,"step_ms":5}}`, "Idempotency-Key", "k1")
			if first.status != 202 {
				t.Fatalf("submit: %d %s", first.status, first.body)
			}
			id := first.json(t)["id"]
			same := tb.do(t, "POST", "/api/jobs", alice, `{"params":{"step_ms":5, "steps":2},"type":"system:probe"}`, "Idempotency-Key", "k1")
			if same.status != 202 || same.json(t)["id"] != id || same.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("the same request reordered: %d %s", same.status, same.body)
			}
			for _, other := range []string{
				`{"type":"system:probe","params":{"steps":3,"step_ms":5}}`,
				`{"type":"system:probe","params":{"steps":2,"step_ms":5},"max_retry":0}`,
				`{"type":"scores:recalculate","params":{}}`,
			} {
				res := tb.do(t, "POST", "/api/jobs", alice, other, "Idempotency-Key", "k1")
				p := res.json(t)
				if res.status != 422 || p["field"] != "Idempotency-Key" || !strings.Contains(p["detail"].(string), id.(string)) {
					t.Errorf("%s with a used key: %d %s", other, res.status, res.body)
				}
			}
			if n := len(tb.do(t, "GET", "/api/jobs", alice, "").json(t)["items"].([]any)); n != 1 {
				t.Fatalf("%d jobs, want the first only", n)
			}
			long := strings.Repeat("é", 101) // 202 bytes
			if res := tb.do(t, "POST", "/api/jobs", alice, `{"type":"system:probe","params":{"steps":1}}`, "Idempotency-Key", long); res.status != 400 || !strings.Contains(res.json(t)["detail"].(string), "200 bytes") {
				t.Errorf("a 202-byte key: %d %s", res.status, res.body)
			}
		})
	}
}

// The list's type filter takes a registered type only: a misspelt one
// would list nothing, which reads as "no such jobs".
func TestListTypeFilter(t *testing.T) {
	tb := setup(t, database.SQLite)
	tok := tb.token(t, "lister", "user")
	if res := tb.do(t, "POST", "/api/jobs", tok, `{"type":"system:probe","params":{"steps":1}}`); res.status != 202 {
		t.Fatalf("submit: %d %s", res.status, res.body)
	}
	if res := tb.do(t, "GET", "/api/jobs?type=system:probe", tok, ""); res.status != 200 || len(res.json(t)["items"].([]any)) != 1 {
		t.Fatalf("type=system:probe: %d %s", res.status, res.body)
	}
	res := tb.do(t, "GET", "/api/jobs?type=system:prob", tok, "")
	if p := res.json(t); res.status != 422 || p["field"] != "type" || !strings.Contains(p["detail"].(string), "system:probe") {
		t.Fatalf("type=system:prob: %d %s", res.status, res.body)
	}
}

// U+0000, which PostgreSQL stores in neither text nor jsonb, is refused
// in params and bodies on both engines alike (a 500 on PostgreSQL and a
// 202 on SQLite before).
func TestNULIsRefused(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d)
			analyst, admin := tb.token(t, "nul", "analyst"), tb.token(t, "root", "admin")
			res := tb.do(t, "POST", "/api/jobs", analyst, `{"type":"market:import","params":{"path":"a\u0000.csv","coin":"bitcoin"}}`)
			if p := res.json(t); res.status != 422 || p["field"] != "params.path" || !strings.Contains(p["detail"].(string), "NUL") {
				t.Errorf("NUL in params: %d %s", res.status, res.body)
			}
			res = tb.do(t, "POST", "/api/users", admin, `{"email":"a\u0000@example.com","full_name":"N"}`)
			if p := res.json(t); res.status != 400 || p["field"] != "email" {
				t.Errorf("NUL in a body: %d %s", res.status, res.body)
			}
			if n := len(tb.do(t, "GET", "/api/jobs", admin, "").json(t)["items"].([]any)); n != 0 {
				t.Errorf("%d jobs recorded", n)
			}
		})
	}
}
