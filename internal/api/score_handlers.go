package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// num is a float for JSON: null when unknown (NaN or ±Inf).
func num(x float64) *float64 {
	if x-x != 0 {
		return nil
	}
	return &x
}

// scoreOut is one day of a coin's indicators and scores. Every value says
// the day it belongs to and where its data came from.
type scoreOut struct {
	Coin          string   `json:"coin"`
	Date          string   `json:"date"`
	RSI           *float64 `json:"rsi"`
	VolumeChange  *float64 `json:"volume_change"`
	Volatility30d *float64 `json:"volatility_30d"`
	Drawdown      *float64 `json:"drawdown"`
	Momentum7d    *float64 `json:"momentum_7d"`
	Momentum30d   *float64 `json:"momentum_30d"`
	EMA20         *float64 `json:"ema_20"`
	Liquidity     *float64 `json:"liquidity"`
	Opportunity   *float64 `json:"opportunity"`
	Global        *float64 `json:"global"`
	Source        string   `json:"source"`
	RunID         string   `json:"run_id"`
}

func scoreDTO(s sqlstore.Score) scoreOut {
	return scoreOut{Coin: s.CoinID, Date: s.Day.Format(time.DateOnly), RSI: num(s.RSI), VolumeChange: num(s.VolumeChange),
		Volatility30d: num(s.Volatility30d), Drawdown: num(s.Drawdown), Momentum7d: num(s.Momentum7d),
		Momentum30d: num(s.Momentum30d), EMA20: num(s.EMA20), Liquidity: num(s.Liquidity),
		Opportunity: num(s.Opportunity), Global: num(s.Global), Source: s.Source, RunID: s.RunID}
}

type latestOut struct {
	scoreOut
	Symbol     string   `json:"symbol"`
	Name       string   `json:"name"`
	LogoURL    string   `json:"logo_url"`
	Categories []string `json:"categories"`
	Price      *float64 `json:"price"`
	MarketCap  *float64 `json:"market_cap"`
	Volume     *float64 `json:"volume"`
}

func latestDTO(l sqlstore.LatestScore) latestOut {
	cats := l.Categories
	if cats == nil {
		cats = []string{}
	}
	return latestOut{scoreOut: scoreDTO(l.Score), Symbol: l.Symbol, Name: l.Name, LogoURL: l.LogoURL, Categories: cats,
		Price: num(l.Price), MarketCap: num(l.MarketCap), Volume: num(l.Volume)}
}

type latestPage struct {
	Items      []latestOut `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (s *Server) latestScores(c *gin.Context) {
	now := time.Now()
	key := c.Request.URL.RawQuery
	if body, ok := s.scores.get(key, now); ok {
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
		return
	}
	limit, err := queryInt(c, "limit", sqlstore.DefaultScoreLimit, 1, sqlstore.MaxScoreLimit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	f := sqlstore.ScoreFilter{Sort: c.DefaultQuery("sort", "global"), Limit: limit, Cursor: c.Query("cursor"),
		Category: c.Query("category")}
	if f.Category == "" {
		f.Category = c.Query("theme")
	}
	if !containsString(sqlstore.ScoreSorts(), f.Sort) {
		s.writeError(c, tokenlysis.FieldErrorf("sort", "Must be one of %s.", strings.Join(sqlstore.ScoreSorts(), ", ")))
		return
	}
	page, err := s.store.LatestScores(c.Request.Context(), f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := latestPage{Items: make([]latestOut, len(page.Items)), NextCursor: page.NextCursor}
	for i, l := range page.Items {
		out.Items[i] = latestDTO(l)
	}
	body, err := json.Marshal(out)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.scores.put(key, body, now)
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

func containsString(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// dateRange reads ?range=7d|1m|3m|1y|max or ?from=&to= (YYYY-MM-DD).
// A named range counts back from the last day of the data (history may end
// before today), so it is applied by trim after the read.
func dateRange(c *gin.Context) (from, to time.Time, days int, err error) {
	parse := func(name string) (time.Time, error) {
		v := c.Query(name)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return t, tokenlysis.FieldErrorf(name, "Must be a date YYYY-MM-DD.")
		}
		return t, nil
	}
	if from, err = parse("from"); err != nil {
		return
	}
	if to, err = parse("to"); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return from, to, 0, tokenlysis.FieldErrorf("to", "Must not be before from.")
	}
	r := c.Query("range")
	if r != "" && (!from.IsZero() || !to.IsZero()) {
		return from, to, 0, tokenlysis.FieldErrorf("range", "Give either range or from/to, not both.")
	}
	switch r {
	case "", "max":
	case "7d":
		days = 7
	case "1m":
		days = 30
	case "3m":
		days = 91
	case "1y":
		days = 365
	default:
		return from, to, 0, tokenlysis.FieldErrorf("range", "Must be 7d, 1m, 3m, 1y or max.")
	}
	return from, to, days, nil
}

// lastDays keeps the items of the last n days of the series (n = 0: all).
func lastDays[T any](items []T, day func(T) time.Time, n int) []T {
	if n == 0 || len(items) == 0 {
		return items
	}
	first := day(items[len(items)-1]).AddDate(0, 0, -(n - 1))
	i := len(items)
	for i > 0 && !day(items[i-1]).Before(first) {
		i--
	}
	return items[i:]
}

type scoreHistoryOut struct {
	Coin  string     `json:"coin"`
	Range string     `json:"range"`
	Items []scoreOut `json:"items"`
}

func (s *Server) scoreHistory(c *gin.Context) {
	from, to, days, err := dateRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows, err := s.store.ScoreHistory(c.Request.Context(), c.Param("coin"), from, to)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows = lastDays(rows, func(r sqlstore.Score) time.Time { return r.Day }, days)
	out := scoreHistoryOut{Coin: c.Param("coin"), Range: c.DefaultQuery("range", "max"), Items: make([]scoreOut, len(rows))}
	for i, r := range rows {
		out.Items[i] = scoreDTO(r)
	}
	c.JSON(http.StatusOK, out)
}

type priceOut struct {
	Date      string   `json:"date"`
	Price     *float64 `json:"price"`
	MarketCap *float64 `json:"market_cap"`
	Volume    *float64 `json:"volume"`
	Source    string   `json:"source"`
}

func (s *Server) priceHistory(c *gin.Context) {
	from, to, days, err := dateRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows, err := s.store.PriceHistory(c.Request.Context(), c.Param("coin"), from, to)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows = lastDays(rows, func(r sqlstore.PricePoint) time.Time { return r.Day }, days)
	items := make([]priceOut, len(rows))
	for i, r := range rows {
		items[i] = priceOut{Date: r.Day.Format(time.DateOnly), Price: num(r.Price), MarketCap: num(r.MarketCap), Volume: num(r.Volume), Source: r.Source}
	}
	c.JSON(http.StatusOK, gin.H{"coin": c.Param("coin"), "items": items})
}

type marketOut struct {
	Coin       string   `json:"coin"`
	Symbol     string   `json:"symbol"`
	Name       string   `json:"name"`
	LogoURL    string   `json:"logo_url"`
	Categories []string `json:"categories"`
	Price      *float64 `json:"price"`
	MarketCap  *float64 `json:"market_cap"`
	Volume24h  *float64 `json:"volume_24h"`
	Rank       int      `json:"rank,omitempty"`
	Change24h  *float64 `json:"change_24h"`
	AsOf       string   `json:"as_of"`
	Source     string   `json:"source"`
}

func (s *Server) topMarkets(c *gin.Context) {
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ms, err := s.store.TopMarkets(c.Request.Context(), limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	items := make([]marketOut, len(ms))
	for i, m := range ms {
		cats := m.Coin.Categories
		if cats == nil {
			cats = []string{}
		}
		items[i] = marketOut{Coin: m.Coin.ID, Symbol: m.Coin.Symbol, Name: m.Coin.Name, LogoURL: m.Coin.LogoURL, Categories: cats,
			Price: num(m.Snapshot.Price), MarketCap: num(m.Snapshot.MarketCap), Volume24h: num(m.Snapshot.Volume24h),
			Rank: m.Snapshot.Rank, Change24h: num(m.Snapshot.Change24h), AsOf: m.Snapshot.AsOf.Format(time.RFC3339), Source: m.Snapshot.Source}
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

type fngOut struct {
	Date           string `json:"date"`
	Value          int    `json:"value"`
	Classification string `json:"classification"`
	Source         string `json:"source"`
}

func fngDTO(f sqlstore.FNG) fngOut {
	return fngOut{Date: f.Day.Format(time.DateOnly), Value: f.Value, Classification: f.Classification, Source: f.Source}
}

func (s *Server) fngLatest(c *gin.Context) {
	f, err := s.store.LatestFNG(c.Request.Context())
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, fngDTO(f))
}

func (s *Server) fngHistory(c *gin.Context) {
	from, to, days, err := dateRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows, err := s.store.FNGHistory(c.Request.Context(), from, to, 0)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows = lastDays(rows, func(r sqlstore.FNG) time.Time { return r.Day }, days)
	items := make([]fngOut, len(rows))
	for i, r := range rows {
		items[i] = fngDTO(r)
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}
