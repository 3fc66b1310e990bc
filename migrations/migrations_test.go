package migrations_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	migrate "github.com/rubenv/sql-migrate"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/migrations"
)

// forEachEmpty runs fn on a fresh, unmigrated database of each dialect.
func forEachEmpty(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, databasetest.NewEmpty(t, d))
		})
	}
}

func migrationIDs(t *testing.T, d database.Dialect) []string {
	t.Helper()
	ms, err := migrations.Source(d).FindMigrations()
	if err != nil {
		t.Fatalf("FindMigrations(%s): %v", d, err)
	}
	var ids []string
	for _, m := range ms {
		if len(m.Up) == 0 || len(m.Down) == 0 {
			t.Errorf("%s/%s: needs both an Up and a Down section", d, m.Id)
		}
		ids = append(ids, m.Id)
	}
	return ids
}

func TestSource_SameMigrationsOnBothEngines(t *testing.T) {
	t.Parallel()
	lite, pg := migrationIDs(t, database.SQLite), migrationIDs(t, database.Postgres)
	if len(lite) == 0 {
		t.Fatal("no embedded migrations")
	}
	if !slices.Equal(lite, pg) {
		t.Errorf("migrations differ between engines:\nsqlite:   %v\npostgres: %v", lite, pg)
	}
	if lite[0] != "001_core.sql" {
		t.Errorf("first migration = %q, want 001_core.sql", lite[0])
	}
	if _, err := migrations.Source("oracle").FindMigrations(); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
		t.Errorf("Source(oracle): %v, want an invalid error", err)
	}
}

// TestMigrations_UpDownUp applies the migrations one at a time, recording
// the schema after each, then rolls them back one at a time checking that
// each Down restores the schema of the step before, then applies them all
// again and checks that the result is the same schema.
func TestMigrations_UpDownUp(t *testing.T) {
	t.Parallel()
	forEachEmpty(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		ids := migrationIDs(t, db.Dialect)
		snaps := []schema{snapshot(t, db)}
		if len(snaps[0]) != 0 {
			t.Fatalf("fresh database is not empty: %v", snaps[0])
		}
		for i, id := range ids {
			upOne(t, db, id)
			snaps = append(snaps, snapshot(t, db))
			if snaps[i+1].equal(snaps[i]) && !noOp(t, db.Dialect, id) {
				t.Errorf("%s changed nothing in the schema (and does not say %q)", id, noOpMarker)
			}
		}
		full := snaps[len(snaps)-1]
		for _, table := range []string{"users", "jobs", "job_events"} {
			if !full.hasTable(table) {
				t.Errorf("table %s missing after Up; schema:\n%s", table, full)
			}
		}

		for i := len(ids) - 1; i >= 0; i-- {
			if n, err := migrations.Down(ctx, db, 1); err != nil || n != 1 {
				t.Fatalf("Down %s: n=%d, err=%v", ids[i], n, err)
			}
			if got := snapshot(t, db); !got.equal(snaps[i]) {
				t.Errorf("after rolling back %s the schema is not what it was before it:\n%s", ids[i], diff(snaps[i], got))
			}
		}
		if n, err := migrations.Down(ctx, db, 1); err != nil || n != 0 {
			t.Errorf("Down with nothing applied: n=%d, err=%v", n, err)
		}

		if n, err := migrations.Up(ctx, db); err != nil || n != len(ids) {
			t.Fatalf("Up again: n=%d, err=%v", n, err)
		}
		if got := snapshot(t, db); !got.equal(full) {
			t.Errorf("schema after up/down/up differs from the first up:\n%s", diff(full, got))
		}
		if n, err := migrations.Up(ctx, db); err != nil || n != 0 {
			t.Errorf("second Up: n=%d, err=%v, want 0, nil", n, err)
		}

		if n, err := migrations.DownAll(ctx, db); err != nil || n != len(ids) {
			t.Errorf("DownAll: n=%d, err=%v", n, err)
		}
		if got := snapshot(t, db); len(got) != 0 {
			t.Errorf("schema after DownAll is not empty:\n%s", got)
		}
	})
}

// noOpMarker is the line of a migration that changes nothing on its
// engine, only to keep both engines' migrations numbered alike (a setting
// that only the other engine has).
const noOpMarker = "-- No schema change on this engine."

func noOp(t *testing.T, d database.Dialect, id string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(d), id))
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(strings.Split(string(b), "\n"), noOpMarker)
}

func TestMigrations_SameColumnsOnBothEngines(t *testing.T) {
	t.Parallel()
	lite := columns(t, databasetest.New(t, database.SQLite))
	pg := columns(t, databasetest.New(t, database.Postgres))
	if len(lite) == 0 {
		t.Fatal("no columns found")
	}
	if !slices.Equal(lite, pg) {
		t.Errorf("tables and columns differ between engines:\n%s", diff(lite, pg))
	}
}

func TestDown_RefusesZero(t *testing.T) {
	t.Parallel()
	db := databasetest.New(t, database.SQLite)
	for _, max := range []int{0, -1} {
		n, err := migrations.Down(context.Background(), db, max)
		if tokenlysis.ErrorCode(err) != tokenlysis.EINVALID || n != 0 {
			t.Errorf("Down(max=%d) = %d, %v; want 0 and an invalid error", max, n, err)
		}
	}
	if recs, err := migrations.Status(context.Background(), db); err != nil || !recs[0].Applied() {
		t.Errorf("Down(0) rolled something back: %v, %v", recs, err)
	}
}

func TestStatusAndCheck(t *testing.T) {
	t.Parallel()
	forEachEmpty(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		ids := migrationIDs(t, db.Dialect)

		recs, err := migrations.Status(ctx, db)
		if err != nil {
			t.Fatalf("Status on an empty database: %v", err)
		}
		if got := recordIDs(recs); !slices.Equal(got, ids) {
			t.Errorf("Status IDs = %v, want %v", got, ids)
		}
		for _, r := range recs {
			if r.Applied() || r.Unknown {
				t.Errorf("%+v: want pending", r)
			}
		}
		if s := snapshot(t, db); s.hasTable(migrations.TableName) || len(s) != 0 {
			t.Errorf("Status changed the schema: %v", s)
		}
		if hasTable(t, db, migrations.TableName) {
			t.Errorf("Status created %s", migrations.TableName)
		}
		err = migrations.Check(ctx, db)
		if tokenlysis.ErrorCode(err) != tokenlysis.EUNAVAILABLE || !strings.Contains(tokenlysis.ErrorMessage(err), ids[0]) {
			t.Errorf("Check on an empty database = %v, want unavailable naming %s", err, ids[0])
		}

		before := time.Now().Add(-time.Minute)
		if _, err := migrations.Up(ctx, db); err != nil {
			t.Fatal(err)
		}
		recs, err = migrations.Status(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if !r.Applied() || r.AppliedAt.Before(before) || r.AppliedAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("%+v: want applied just now", r)
			}
		}
		if err := migrations.Check(ctx, db); err != nil {
			t.Errorf("Check after Up: %v", err)
		}

		// A migration applied by a newer release is listed, and tolerated.
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)`), "999_future.sql", time.Now()); err != nil {
			t.Fatal(err)
		}
		recs, err = migrations.Status(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		last := recs[len(recs)-1]
		if last.ID != "999_future.sql" || !last.Unknown || !last.Applied() {
			t.Errorf("last record = %+v, want the unknown applied 999_future.sql", last)
		}
		if err := migrations.Check(ctx, db); err != nil {
			t.Errorf("Check with a newer migration applied: %v", err)
		}
	})
}

func TestRedo(t *testing.T) {
	t.Parallel()
	forEachEmpty(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		if _, err := migrations.Redo(ctx, db); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("Redo with nothing applied: %v, want invalid", err)
		}
		if _, err := migrations.Up(ctx, db); err != nil {
			t.Fatal(err)
		}
		ids := migrationIDs(t, db.Dialect)
		before := snapshot(t, db)
		// Rows in the redone migration's tables go: the migration really ran down and up.
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO users (email, created_at) VALUES (?, ?)`), "a@example.com", time.Now()); err != nil {
			t.Fatal(err)
		}
		id, err := migrations.Redo(ctx, db)
		if err != nil || id != ids[len(ids)-1] {
			t.Fatalf("Redo = %q, %v; want %q", id, err, ids[len(ids)-1])
		}
		if got := snapshot(t, db); !got.equal(before) {
			t.Errorf("schema after Redo differs:\n%s", diff(before, got))
		}
		if len(ids) == 1 {
			var n int
			if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM users`); err != nil || n != 0 {
				t.Errorf("users after redoing 001: %d rows, %v; want 0", n, err)
			}
		}
		if err := migrations.Check(ctx, db); err != nil {
			t.Errorf("Check after Redo: %v", err)
		}
	})
}

// TestUp_ConcurrentPostgres runs two migrators on one PostgreSQL database at
// once: the advisory lock makes one apply everything and the other nothing.
func TestUp_ConcurrentPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := databasetest.NewURL(t, database.Postgres)
	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, len(counts))
	for i := range counts {
		db, err := database.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		wg.Go(func() { counts[i], errs[i] = migrations.Up(ctx, db) })
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if want := len(migrationIDs(t, database.Postgres)); total != want {
		t.Errorf("migrations applied in total = %d (%v), want %d", total, counts, want)
	}
}

// upOne applies exactly one migration, which must be id.
func upOne(t *testing.T, db *database.DB, id string) {
	t.Helper()
	dialect := map[database.Dialect]string{database.SQLite: "sqlite3", database.Postgres: "postgres"}[db.Dialect]
	set := migrate.MigrationSet{TableName: migrations.TableName}
	planned, _, err := set.PlanMigration(db.DB.DB, dialect, migrations.Source(db.Dialect), migrate.Up, 1)
	if err != nil || len(planned) != 1 || planned[0].Id != id {
		t.Fatalf("plan to apply %s: %v, %v", id, planned, err)
	}
	if n, err := set.ExecMaxContext(context.Background(), db.DB.DB, dialect, migrations.Source(db.Dialect), migrate.Up, 1); err != nil || n != 1 {
		t.Fatalf("apply %s: n=%d, err=%v", id, n, err)
	}
}

func recordIDs(recs []migrations.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func hasTable(t *testing.T, db *database.DB, name string) bool {
	t.Helper()
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if db.Dialect == database.Postgres {
		q = `SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?`
	}
	var n int
	if err := db.GetContext(context.Background(), &n, db.Rebind(q), name); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// schema is a sorted description of every table, column, index and
// constraint of the database, except the migration bookkeeping table.
type schema []string

func (s schema) equal(o schema) bool { return slices.Equal(s, o) }
func (s schema) String() string      { return strings.Join(s, "\n") }
func (s schema) hasTable(name string) bool {
	return slices.ContainsFunc(s, func(line string) bool {
		return strings.HasPrefix(line, "table "+name+" ") || strings.HasPrefix(line, "column "+name+".")
	})
}

func snapshot(t *testing.T, db *database.DB) schema {
	t.Helper()
	var queries []string
	switch db.Dialect {
	case database.SQLite:
		queries = []string{
			`SELECT 'table ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
			  WHERE type = 'table' AND name NOT IN ('schema_migrations', 'sqlite_sequence')`,
			`SELECT 'column ' || m.name || '.' || p.name || ' ' || p.type || ' notnull=' || p."notnull" || ' default=' || COALESCE(p.dflt_value, '') || ' pk=' || p.pk
			   FROM sqlite_master m, pragma_table_info(m.name) p
			  WHERE m.type = 'table' AND m.name NOT IN ('schema_migrations', 'sqlite_sequence')`,
			`SELECT 'index ' || tbl_name || '.' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
			  WHERE type = 'index' AND tbl_name NOT IN ('schema_migrations')`,
			`SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master WHERE type IN ('view', 'trigger')`,
		}
	case database.Postgres:
		queries = []string{
			`SELECT 'table ' || relname || ' ' || COALESCE(array_to_string(reloptions, ','), '') FROM pg_class
			  WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations'`,
			`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable ||
			        ' default=' || COALESCE(column_default, '') || ' identity=' || is_identity || ' collation=' || COALESCE(collation_name, '')
			   FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'`,
			`SELECT 'index ' || tablename || '.' || indexname || ' ' || indexdef FROM pg_indexes
			  WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`,
			`SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
			  WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text <> 'schema_migrations'`,
			`SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = current_schema()`,
			`SELECT 'view ' || viewname FROM pg_views WHERE schemaname = current_schema()`,
			`SELECT 'type ' || typname FROM pg_type WHERE typnamespace = current_schema()::regnamespace AND typtype IN ('e', 'd', 'c') AND typrelid = 0`,
		}
	}
	var s schema
	for _, q := range queries {
		var lines []string
		if err := db.SelectContext(context.Background(), &lines, q); err != nil {
			t.Fatalf("snapshot %s: %v\n%s", db.Dialect, err, q)
		}
		s = append(s, lines...)
	}
	slices.Sort(s)
	return s
}

// columns lists "table.column nullable" for every application table, in a
// form comparable across engines.
func columns(t *testing.T, db *database.DB) schema {
	t.Helper()
	q := `SELECT m.name || '.' || p.name || ' nullable=' || CASE WHEN p."notnull" = 0 AND p.pk = 0 THEN 'YES' ELSE 'NO' END
	        FROM sqlite_master m, pragma_table_info(m.name) p
	       WHERE m.type = 'table' AND m.name NOT IN ('schema_migrations', 'sqlite_sequence')`
	if db.Dialect == database.Postgres {
		q = `SELECT table_name || '.' || column_name || ' nullable=' || is_nullable
		       FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'`
	}
	var s schema
	if err := db.SelectContext(context.Background(), &s, q); err != nil {
		t.Fatal(err)
	}
	slices.Sort(s)
	return s
}

func diff(want, got schema) string {
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
