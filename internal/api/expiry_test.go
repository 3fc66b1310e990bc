package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/database"
)

// A stream ends when the token that opened it stops being accepted (exp
// plus the verifier's 30 s leeway): SSE streams with a comment saying so,
// the WebSocket with close code 1008. Before, a stream outlived its token
// for as long as the client kept it open.
func TestStreamsEndWhenTheTokenExpires(t *testing.T) {
	tb := setup(t, database.SQLite)
	res := tb.do(t, "POST", "/api/jobs", tb.token(t, "eve", "user"), `{"type":"system:probe","params":{"steps":1}}`)
	if res.status != 202 {
		t.Fatalf("submit: %d %s", res.status, res.body)
	}
	id := res.json(t)["id"].(string) // stays queued: no worker runs here
	// Expired 27 s ago: still accepted for 2 to 3 s.
	short, err := tb.issuer.Mint(auth.TokenRequest{Subject: "eve", Roles: []string{"user"}, TTL: -27 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Open all three while the token is valid, then read each to its end.
	var streams []*http.Response
	for _, path := range []string{"/api/jobs/" + id + "/events", "/api/stream/scores"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", tb.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+short)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("%s: status %d: %s", path, res.StatusCode, b)
		}
		streams = append(streams, res)
	}
	conn, _, err := websocket.Dial(ctx, strings.Replace(tb.url, "http", "ws", 1)+"/ws/scores", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + short}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	for _, res := range streams {
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%s: the stream did not end when its token expired: %v; read:\n%s", res.Request.URL.Path, err, body)
		}
		if !strings.HasSuffix(string(body), ": token expired\n\n") {
			t.Fatalf("%s: the stream ended otherwise:\n%s", res.Request.URL.Path, body)
		}
	}
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "token expired" {
			t.Fatalf("the socket ended with %v, want close 1008 \"token expired\"", err)
		}
		return
	}
}
