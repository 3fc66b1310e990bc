package sqlstore

import (
	"context"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// LastHistoryDay returns the last day of a coin's stored history, so that
// a history download can skip coins that are already up to date.
// Errors: ENOTFOUND when the coin has no history.
func (s *Store) LastHistoryDay(ctx context.Context, coinID string) (time.Time, error) {
	const q = `SELECT MAX(day) FROM price_history WHERE coin_id = ?`
	var d nullDay
	if err := s.db.QueryRowxContext(ctx, s.rebind(q), coinID).Scan(&d); err != nil {
		return time.Time{}, wrap("last history day", err)
	}
	if !d.Valid {
		return time.Time{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "No history for %s.", coinID)
	}
	return d.Day.Time(), nil
}
