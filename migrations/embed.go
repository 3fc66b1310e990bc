// Package migrations holds the database schema of Tokenlysis as numbered
// SQL files, one directory per engine, embedded into the binaries:
//
//	migrations/sqlite/NNN_name.sql
//	migrations/postgres/NNN_name.sql
//
// Both directories hold the same numbers and names; each file has a
// "-- +migrate Up" and a "-- +migrate Down" section (rubenv/sql-migrate
// format), and each Down drops exactly what its Up created. cmd/migrate
// applies them; `migrate new NAME` creates the next pair.
//
// The schema exists only through these files: no other Go code may create,
// alter or drop tables (TestNoSchemaChangesOutsideMigrations enforces it).
// Applied migrations are recorded in the schema_migrations table.
//
// Up, Down and Redo take a PostgreSQL advisory lock for their duration, so
// that several processes migrating the same database at once apply each
// migration once. On SQLite, the first writer holds the database; a second
// concurrent migrator may fail and can simply be run again.
package migrations

import (
	"context"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"time"

	migrate "github.com/rubenv/sql-migrate"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// TableName is the table recording applied migrations.
const TableName = "schema_migrations"

// advisoryLockKey identifies the PostgreSQL advisory lock held while
// migrating ("tkmigrat" as a 64-bit integer).
const advisoryLockKey int64 = 0x746b6d6967726174

// Record is the state of one migration.
type Record struct {
	ID        string    // file name, e.g. "001_core.sql"
	AppliedAt time.Time // zero while pending
	// Unknown marks a migration recorded in the database but absent from
	// this binary: a newer release applied it.
	Unknown bool
}

// Applied reports whether the migration has been applied.
func (r Record) Applied() bool { return !r.AppliedAt.IsZero() }

// Source returns the embedded migrations of dialect d. For an unknown
// dialect its FindMigrations returns an error.
func Source(d database.Dialect) migrate.MigrationSource {
	switch d {
	case database.SQLite, database.Postgres:
		return &migrate.EmbedFileSystemMigrationSource{FileSystem: files, Root: string(d)}
	}
	return errSource{d}
}

type errSource struct{ d database.Dialect }

func (s errSource) FindMigrations() ([]*migrate.Migration, error) {
	return nil, tokenlysis.Errorf(tokenlysis.EINVALID, "migrations: unknown dialect %q", s.d)
}

// migrationSet is built per call: sql-migrate's package-level setters
// would be process-wide state.
func migrationSet() migrate.MigrationSet {
	return migrate.MigrationSet{TableName: TableName}
}

// sqlMigrateDialect returns sql-migrate's name for d ("sqlite3" works on a
// *sql.DB opened with modernc's "sqlite" driver).
func sqlMigrateDialect(d database.Dialect) (string, error) {
	switch d {
	case database.SQLite:
		return "sqlite3", nil
	case database.Postgres:
		return "postgres", nil
	}
	return "", tokenlysis.Errorf(tokenlysis.EINVALID, "migrations: unknown dialect %q", d)
}

// Up applies every pending migration in order and returns how many it applied.
func Up(ctx context.Context, db *database.DB) (int, error) {
	return exec(ctx, db, migrate.Up, 0, "up")
}

// Down rolls back the last max applied migrations (fewer if fewer are
// applied) and returns how many it rolled back. max must be at least 1:
// sql-migrate reads 0 as "no limit", and a zero value that silently drops
// every table is too easy to write by accident; DownAll says it out loud.
//
// Errors: EINVALID when max < 1.
func Down(ctx context.Context, db *database.DB, max int) (int, error) {
	if max < 1 {
		return 0, tokenlysis.Errorf(tokenlysis.EINVALID, "migrations: down: the number of migrations to roll back must be at least 1, got %d (DownAll, or `migrate down -all`, rolls back everything)", max)
	}
	return exec(ctx, db, migrate.Down, max, "down")
}

// DownAll rolls back every applied migration, leaving only the empty
// schema_migrations table, and returns how many it rolled back.
func DownAll(ctx context.Context, db *database.DB) (int, error) {
	return exec(ctx, db, migrate.Down, 0, "down")
}

// Redo rolls back the last applied migration and applies it again, under
// one lock, and returns its ID. Useful while writing a migration.
//
// Errors: EINVALID when no migration is applied.
func Redo(ctx context.Context, db *database.DB) (string, error) {
	unlock, err := lock(ctx, db)
	if err != nil {
		return "", fmt.Errorf("migrations: redo: %w", err)
	}
	defer unlock()
	recs, err := Status(ctx, db)
	if err != nil {
		return "", err
	}
	last := ""
	for _, r := range recs {
		if r.Applied() && !r.Unknown {
			last = r.ID
		}
	}
	if last == "" {
		return "", tokenlysis.Errorf(tokenlysis.EINVALID, "migrations: redo: no migration is applied")
	}
	if _, err := execLocked(ctx, db, migrate.Down, 1); err != nil {
		return "", fmt.Errorf("migrations: redo %s: down: %w", last, err)
	}
	if _, err := execLocked(ctx, db, migrate.Up, 1); err != nil {
		return "", fmt.Errorf("migrations: redo %s: up: %w", last, err)
	}
	return last, nil
}

func exec(ctx context.Context, db *database.DB, dir migrate.MigrationDirection, max int, op string) (int, error) {
	unlock, err := lock(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("migrations: %s: %w", op, err)
	}
	defer unlock()
	n, err := execLocked(ctx, db, dir, max)
	if err != nil {
		return n, fmt.Errorf("migrations: %s: %w", op, err)
	}
	return n, nil
}

// execLocked runs sql-migrate; max 0 means no limit.
func execLocked(ctx context.Context, db *database.DB, dir migrate.MigrationDirection, max int) (int, error) {
	dialect, err := sqlMigrateDialect(db.Dialect)
	if err != nil {
		return 0, err
	}
	return migrationSet().ExecMaxContext(ctx, db.DB.DB, dialect, Source(db.Dialect), dir, max)
}

// lock takes the PostgreSQL advisory lock on a connection of its own and
// returns the function releasing it. On SQLite it does nothing.
func lock(ctx context.Context, db *database.DB) (unlock func(), err error) {
	if db.Dialect != database.Postgres {
		return func() {}, nil
	}
	conn, err := db.DB.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, advisoryLockKey); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		// Not ctx: the lock must be released even when ctx is done. Closing
		// the connection would release it too, but it may go back to the pool.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, advisoryLockKey); err != nil {
			// ErrBadConn makes the pool discard the connection: the session
			// ends and the lock with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}

// Status lists every embedded migration in order, applied or pending,
// followed by any migration recorded in the database that this binary does
// not know. It only reads: on a database never migrated (no
// schema_migrations table) every migration is pending.
func Status(ctx context.Context, db *database.DB) ([]Record, error) {
	dialect, err := sqlMigrateDialect(db.Dialect)
	if err != nil {
		return nil, err
	}
	known, err := Source(db.Dialect).FindMigrations()
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	applied := map[string]time.Time{}
	var order []string
	exists, err := tableExists(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	if exists {
		set := migrationSet()
		set.DisableCreateTable = true
		recs, err := set.GetMigrationRecords(db.DB.DB, dialect)
		if err != nil {
			return nil, fmt.Errorf("migrations: status: %w", err)
		}
		for _, r := range recs {
			applied[r.Id] = r.AppliedAt
			order = append(order, r.Id)
		}
	}
	out := make([]Record, 0, len(known))
	seen := map[string]bool{}
	for _, m := range known {
		out = append(out, Record{ID: m.Id, AppliedAt: applied[m.Id]})
		seen[m.Id] = true
	}
	for _, id := range order {
		if !seen[id] {
			out = append(out, Record{ID: id, AppliedAt: applied[id], Unknown: true})
		}
	}
	return out, nil
}

// Check returns nil when every embedded migration has been applied.
// Migrations unknown to this binary are tolerated: during a rolling deploy
// the previous release keeps running on the newer schema. Services call it
// at start-up to refuse a stale schema instead of creating one.
//
// Errors: EUNAVAILABLE naming the first pending migration.
func Check(ctx context.Context, db *database.DB) error {
	recs, err := Status(ctx, db)
	if err != nil {
		return err
	}
	var pending []string
	for _, r := range recs {
		if !r.Applied() {
			pending = append(pending, r.ID)
		}
	}
	if len(pending) > 0 {
		return tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "database schema is not up to date: %d pending migration(s) starting with %s; run `migrate up`", len(pending), pending[0])
	}
	return nil
}

// tableExists reports whether the schema_migrations table exists.
func tableExists(ctx context.Context, db *database.DB) (bool, error) {
	var q string
	switch db.Dialect {
	case database.SQLite:
		q = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	case database.Postgres:
		q = `SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?`
	default:
		return false, errors.New("unknown dialect")
	}
	var n int
	if err := db.GetContext(ctx, &n, db.Rebind(q), TableName); err != nil {
		return false, err
	}
	return n > 0, nil
}

// OpenCurrent opens the database at rawURL and checks that its schema is
// current: what the API and the worker do at start-up.
// Errors: those of database.Open and Check (the database is closed then).
func OpenCurrent(ctx context.Context, rawURL string) (*database.DB, error) {
	db, err := database.Open(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", database.MaskURL(rawURL), err)
	}
	if err := Check(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("database schema: %w", err)
	}
	return db, nil
}
