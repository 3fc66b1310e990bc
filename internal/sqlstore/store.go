package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Store is the SQL store. It is safe for concurrent use.
type Store struct {
	db  *database.DB
	now func() time.Time
	// sqliteWrites serialises this process's job writes on SQLite, which
	// has one writer: waiting on a mutex costs nothing, while contending
	// writers would sleep in SQLite's busy handler.
	sqliteWrites sync.Mutex
	stmts        sync.Map // query → *sqlx.Stmt (SQLite job writes)
}

// New returns a Store over db, whose schema the migrations have built.
func New(db *database.DB) *Store {
	// Microseconds: PostgreSQL keeps no more, so what a method returns is
	// what a later read returns.
	return &Store{db: db, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// Ping checks that the database answers. It returns EUNAVAILABLE when not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

func (s *Store) rebind(q string) string { return s.db.Rebind(q) }

// wrap prefixes err with the operation and classifies it: a database that
// cannot be reached becomes EUNAVAILABLE so that callers answer 503.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *tokenlysis.Error
	if errors.As(err, &te) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if database.IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "The database is unavailable."), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (s *Store) begin(ctx context.Context) (*sqlx.Tx, error) {
	return s.db.BeginTxx(ctx, nil)
}
