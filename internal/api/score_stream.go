package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// recalcNotice is what a finished recalculation publishes.
type recalcNotice struct {
	RunID string `json:"run_id"`
}

// scoresEvent is one push of the score stream.
type scoresEvent struct {
	RunID string      `json:"run_id"`
	Items []latestOut `json:"items"`
}

// scoreStream pushes the latest scores (same filters as GET /api/scores)
// over SSE each time a recalculation finishes, never on a timer. The
// event id is the recalculation run's ID: on connect the current scores
// are sent unless Last-Event-ID is already the latest run.
func (s *Server) scoreStream(c *gin.Context) {
	ctx := c.Request.Context()
	limit, err := queryInt(c, "limit", sqlstore.DefaultScoreLimit, 1, sqlstore.MaxScoreLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	f := sqlstore.ScoreFilter{Sort: c.DefaultQuery("sort", "global"), Limit: limit, Category: c.Query("category")}
	if !containsString(sqlstore.ScoreSorts(), f.Sort) {
		s.writeError(c, tokenlysis.FieldErrorf("sort", "Must be one of the sort keys of GET /api/scores."))
		return
	}
	sub := s.bus.Subscribe(tokenlysis.TopicScores)
	defer sub.Close()
	latest, err := s.latestRunID(ctx)
	if err != nil {
		s.writeError(c, err)
		return
	}
	w := startSSE(c)

	sent := c.GetHeader("Last-Event-ID")
	push := func(runID string) error {
		if runID == "" || runID == sent {
			return nil
		}
		page, err := s.store.LatestScores(ctx, f)
		if err != nil {
			return err
		}
		ev := scoresEvent{RunID: runID, Items: make([]latestOut, len(page.Items))}
		for i, l := range page.Items {
			ev.Items[i] = latestDTO(l)
		}
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "id: %s\nevent: scores\ndata: %s\n\n", runID, b); err != nil {
			return err
		}
		w.Flush()
		sent = runID
		return nil
	}
	if push(latest) != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	expired, stop := tokenExpiry(c)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expired:
			sseTokenExpired(w)
			return
		case payload := <-sub.C:
			var n recalcNotice
			if json.Unmarshal(payload, &n) != nil || push(n.RunID) != nil {
				return
			}
		case <-sub.Resync:
			id, err := s.latestRunID(ctx)
			if err != nil || push(id) != nil {
				return
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

// latestRunID is the ID of the newest successful recalculation, "" if none.
func (s *Server) latestRunID(ctx context.Context) (string, error) {
	runs, err := s.store.ListRecalcRuns(ctx, 20)
	if err != nil {
		return "", err
	}
	for _, r := range runs {
		if r.Status == sqlstore.RecalcSucceeded {
			return r.ID, nil
		}
	}
	return "", nil
}

// wsIn is a client message of /ws/scores.
type wsIn struct {
	Type  string   `json:"type"` // subscribe | unsubscribe
	Coins []string `json:"coins"`
}

// wsOut is a server message of /ws/scores.
type wsOut struct {
	Type  string     `json:"type"` // subscribed | scores | error
	Coins []string   `json:"coins,omitempty"`
	RunID string     `json:"run_id,omitempty"`
	Items []scoreOut `json:"items,omitempty"`
	Error string     `json:"error,omitempty"`
}

const maxWSCoins = 500

// scoreSocket is /ws/scores: a client subscribes to and unsubscribes from
// coins with JSON messages; it receives their latest scores on
// subscription and again whenever a recalculation finishes. A bad message
// gets an error message; the connection stays open.
func (s *Server) scoreSocket(c *gin.Context) {
	conn, err := websocket.Accept(c.Writer, c.Request, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 10)
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	sub := s.bus.Subscribe(tokenlysis.TopicScores)
	defer sub.Close()

	in := make(chan wsIn)
	bad := make(chan string)
	go func() {
		defer cancel()
		for {
			var m wsIn
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if err := json.Unmarshal(data, &m); err != nil {
				select {
				case bad <- "Messages must be JSON objects: {\"type\":\"subscribe\",\"coins\":[\"bitcoin\"]}.":
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	coins := []string{}
	send := func(m wsOut) error {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		return wsjson.Write(wctx, conn, m)
	}
	scores := func(runID string, of []string) error {
		rows, err := s.store.LatestScoresOf(ctx, of)
		if err != nil {
			return send(wsOut{Type: "error", Error: tokenlysis.ErrorMessage(err)})
		}
		out := wsOut{Type: "scores", RunID: runID, Items: make([]scoreOut, len(rows))}
		for i, r := range rows {
			out.Items[i] = scoreDTO(r)
		}
		return send(out)
	}
	expired, stop := tokenExpiry(c)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return
		case <-expired:
			conn.Close(websocket.StatusPolicyViolation, "token expired")
			return
		case msg := <-bad:
			if send(wsOut{Type: "error", Error: msg}) != nil {
				return
			}
		case m := <-in:
			var added []string
			switch m.Type {
			case "subscribe":
				for _, id := range m.Coins {
					if id != "" && !slices.Contains(coins, id) && len(coins) < maxWSCoins {
						coins, added = append(coins, id), append(added, id)
					}
				}
			case "unsubscribe":
				coins = slices.DeleteFunc(coins, func(id string) bool { return slices.Contains(m.Coins, id) })
			default:
				if send(wsOut{Type: "error", Error: `Unknown message type; use "subscribe" or "unsubscribe".`}) != nil {
					return
				}
				continue
			}
			if send(wsOut{Type: "subscribed", Coins: slices.Clone(coins)}) != nil {
				return
			}
			if len(added) > 0 && scores("", added) != nil {
				return
			}
		case payload := <-sub.C:
			var n recalcNotice
			if json.Unmarshal(payload, &n) == nil && len(coins) > 0 && scores(n.RunID, coins) != nil {
				return
			}
		case <-sub.Resync:
		}
	}
}
