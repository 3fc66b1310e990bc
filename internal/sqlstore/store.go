package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/tokenlysis/tokenlysis/internal/batch"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Store is the SQL store. It is safe for concurrent use.
type Store struct {
	db        *database.DB
	now       func() time.Time
	announcer Announcer
	// journal commits the job writes in groups (see journal.go).
	journal         *batch.Group[*jobWrite]
	writes, commits atomic.Int64
	stmts           sync.Map // SQL → *sql.Stmt (SQLite job writes)
}

// Config configures a Store. The zero value is valid.
type Config struct {
	// Announcer is told of the job events each commit made durable
	// (optional): the API and the worker publish them on the events bus.
	Announcer Announcer
	// AsyncLinger is how long at most a group of job writes led by a
	// queued write (StartAttemptAsync, ProgressAsync, SucceedAsync: nobody
	// waits on it) gathers more writes before it commits, and
	// AsyncLingerIdle ends that wait as soon as a step of it brings no new
	// write (or brings one whose caller waits). Defaults 6 ms and 1 ms;
	// a negative AsyncLinger: none. Under load writes keep coming and a
	// group lingers up to AsyncLinger: fewer, larger commits for the same
	// writes (on the worker in the P1 benchmark, about 29 jobs per commit
	// instead of 16 with a fixed 2 ms); a lone write waits one idle step.
	// A write whose caller waits never lingers itself, but may join a
	// lingering group.
	AsyncLinger     time.Duration
	AsyncLingerIdle time.Duration
}

// Defaults of Config.AsyncLinger and Config.AsyncLingerIdle.
const (
	DefaultAsyncLinger     = 6 * time.Millisecond
	DefaultAsyncLingerIdle = time.Millisecond
)

// Announcer is told of the job events a commit made durable, in commit
// order, by the goroutine that committed them, before the next commit
// starts: it must not block (an events bus queues them). A new job's
// "queued" event is not announced: nobody can follow a job whose ID was
// not returned yet.
type Announcer interface {
	Announce(ctx context.Context, evs []tokenlysis.JobEvent)
}

// New returns a Store over db, whose schema the migrations have built.
func New(db *database.DB, cfg Config) *Store {
	// Microseconds: PostgreSQL keeps no more, so what a method returns is
	// what a later read returns.
	s := &Store{db: db, announcer: cfg.Announcer, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	linger := cmp.Or(cfg.AsyncLinger, DefaultAsyncLinger)
	s.journal = batch.New(s.commitGroup, batch.Config{Concurrent: 1, Linger: max(linger, 0),
		LingerIdle: cmp.Or(cfg.AsyncLingerIdle, DefaultAsyncLingerIdle)})
	return s
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

// scanner is one row of a query: *sql.Rows or *sql.Row.
type scanner interface {
	Scan(dest ...any) error
}

// queryRows runs q (rebound for the dialect) and turns every row into a T
// with scan. Errors are wrapped with op.
func queryRows[T any](ctx context.Context, s *Store, op, q string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, v)
	}
	return out, wrap(op, rows.Err())
}
