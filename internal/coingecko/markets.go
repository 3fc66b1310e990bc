package coingecko

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// MaxPerPage is the largest page /coins/markets serves.
const MaxPerPage = 250

// Market is one coin of /coins/markets, priced in USD. CoinGecko sends null
// for what it does not know (new or dead coins), hence the pointers.
type Market struct {
	ID                       string     `json:"id"`
	Symbol                   string     `json:"symbol"`
	Name                     string     `json:"name"`
	Image                    string     `json:"image"`
	CurrentPrice             *float64   `json:"current_price"`
	MarketCap                *float64   `json:"market_cap"`
	TotalVolume              *float64   `json:"total_volume"`
	MarketCapRank            *int       `json:"market_cap_rank"`
	PriceChangePercentage24h *float64   `json:"price_change_percentage_24h"`
	LastUpdated              *time.Time `json:"last_updated"`
}

// Markets returns one page of coins by descending market cap, priced in USD
// (GET /coins/markets). page starts at 1; perPage is 1..250. Error codes:
// EINVALID (arguments, HTTP 400), EUNAVAILABLE (upstream failures and an
// exhausted budget, see *ExhaustedError); a done ctx returns an error
// wrapping ctx.Err().
func (c *Client) Markets(ctx context.Context, page, perPage int) ([]Market, error) {
	if page < 1 {
		return nil, tokenlysis.FieldErrorf("page", "coingecko: page must be 1 or more, got %d", page)
	}
	if perPage < 1 || perPage > MaxPerPage {
		return nil, tokenlysis.FieldErrorf("per_page", "coingecko: per page must be 1..%d, got %d", MaxPerPage, perPage)
	}
	q := url.Values{
		"vs_currency": {"usd"},
		"order":       {"market_cap_desc"},
		"per_page":    {strconv.Itoa(perPage)},
		"page":        {strconv.Itoa(page)},
	}
	var ms []Market
	if err := c.get(ctx, "/coins/markets", q, &ms); err != nil {
		return nil, fmt.Errorf("coingecko: markets page %d: %w", page, err)
	}
	return ms, nil
}

// TopMarkets returns the n largest coins by market cap, fetching pages of
// up to 250 (one page of n when n < 250) and calling onPage, when not nil,
// after each page with the coins it added. A coin already seen on an
// earlier page (ranks move between two requests) is dropped, and one more
// page is fetched if that leaves fewer than n; the listing stops early at
// the end of CoinGecko's list. An error from onPage stops the listing and
// is returned. Error codes: as Markets; EINVALID when n < 1.
func (c *Client) TopMarkets(ctx context.Context, n int, onPage func(page int, got []Market) error) ([]Market, error) {
	if n < 1 {
		return nil, tokenlysis.FieldErrorf("n", "coingecko: the number of markets must be 1 or more, got %d", n)
	}
	perPage := min(n, MaxPerPage)
	// Bound the pages so that a server repeating itself cannot drain the
	// budget: the pages n needs, plus one to make up for duplicates.
	maxPages := (n+perPage-1)/perPage + 1
	all := make([]Market, 0, n)
	seen := make(map[string]bool, n)
	for page := 1; page <= maxPages && len(all) < n; page++ {
		got, err := c.Markets(ctx, page, perPage)
		if err != nil {
			return nil, err
		}
		start := len(all)
		for _, m := range got {
			if len(all) == n {
				break
			}
			if !seen[m.ID] {
				seen[m.ID] = true
				all = append(all, m)
			}
		}
		if onPage != nil {
			if err := onPage(page, all[start:len(all):len(all)]); err != nil {
				return nil, fmt.Errorf("coingecko: top markets page %d: %w", page, err)
			}
		}
		if len(got) < perPage {
			break // the end of the list
		}
	}
	return all, nil
}

// Category is one entry of /coins/categories.
type Category struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	MarketCap          *float64   `json:"market_cap"`
	MarketCapChange24h *float64   `json:"market_cap_change_24h"`
	Content            string     `json:"content"`
	Top3CoinsID        []string   `json:"top_3_coins_id"`
	Top3Coins          []string   `json:"top_3_coins"`
	Volume24h          *float64   `json:"volume_24h"`
	UpdatedAt          *time.Time `json:"updated_at"`
}

// Categories returns every coin category with its market data (GET
// /coins/categories, one call). Error codes: as Markets.
func (c *Client) Categories(ctx context.Context) ([]Category, error) {
	var cs []Category
	if err := c.get(ctx, "/coins/categories", nil, &cs); err != nil {
		return nil, fmt.Errorf("coingecko: categories: %w", err)
	}
	return cs, nil
}
