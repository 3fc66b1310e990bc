package sqlstore

import (
	"context"

	"github.com/jmoiron/sqlx"
)

// LatestScoresOf returns the latest scores row of each of the given coins
// that has one, ordered by coin ID. Live subscriptions use it to send the
// scores of the coins a client follows.
func (s *Store) LatestScoresOf(ctx context.Context, coinIDs []string) ([]Score, error) {
	if len(coinIDs) == 0 {
		return []Score{}, nil
	}
	q, args, err := sqlx.In(`SELECT `+scoreColumns+` FROM latest_scores l WHERE l.coin_id IN (?) ORDER BY l.coin_id`, coinIDs)
	if err != nil {
		return nil, wrap("latest scores of coins", err)
	}
	return queryRows(ctx, s, "latest scores of coins", q, args, scanScore)
}
