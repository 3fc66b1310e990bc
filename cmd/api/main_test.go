package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
	"github.com/tokenlysis/tokenlysis/migrations"
)

// TestRunServesAndMintsTokens runs the whole API through run on port 0,
// mints a token with "api token" and uses it.
func TestRunServesAndMintsTokens(t *testing.T) {
	dbURL := databasetest.NewURL(t, database.SQLite)
	db, err := database.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Up(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	db.Close()
	env := map[string]string{
		"TOKENLYSIS_DATA_DIR":     t.TempDir(),
		"TOKENLYSIS_DATABASE_URL": dbURL,
		"TOKENLYSIS_REDIS_URL":    redistest.URL(t, 5),
		"TOKENLYSIS_REDIS_PREFIX": redistest.Prefix(),
		"TOKENLYSIS_HTTP_ADDR":    "127.0.0.1:0",
	}
	getenv := func(k string) string { return env[k] }
	redistest.Client(t, 5, "apimain") // fails clearly when Redis is missing

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, getenv, pw, io.Discard); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("api did not start: %v (%v)", err, <-errc)
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(line[strings.Index(line, "http://"):])

	// Tokens are minted for the issuer the API is: the same address.
	env["TOKENLYSIS_HTTP_ADDR"] = strings.TrimPrefix(base, "http://")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "--role", "analyst,user", "--subject", "alice"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out.String()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var me struct {
		Subject string
		Roles   []string
	}
	json.NewDecoder(res.Body).Decode(&me)
	res.Body.Close()
	if res.StatusCode != 200 || me.Subject != "alice" || len(me.Roles) != 2 {
		t.Fatalf("/api/me = %d %+v", res.StatusCode, me)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run returned %v on shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRunRefusesBadConfigAndProductionDevTokens(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"TOKENLYSIS_HTTP_ADDR": "nope"}, nil, "TOKENLYSIS_HTTP_ADDR"},
		{map[string]string{"TOKENLYSIS_AUTH_MODE": "oidc", "TOKENLYSIS_OIDC_ISSUER": "https://id.example.com"}, []string{"token", "--subject", "x"}, "only in dev mode"},
		{map[string]string{"TOKENLYSIS_DATA_DIR": t.TempDir()}, []string{"token"}, "--subject is required"},
		{nil, []string{"serve-everything"}, "unknown command"},
	} {
		err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%v, %v) = %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
}
