package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	migrate "github.com/rubenv/sql-migrate"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/migrations"
)

type testBundle struct {
	dir    string            // working directory for relative paths
	env    map[string]string // the process environment seen by run
	stdout *bytes.Buffer
	stderr *bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{
		dir:    t.TempDir(),
		env:    map[string]string{},
		stdout: &bytes.Buffer{},
		stderr: &bytes.Buffer{},
	}
}

func (b *testBundle) getenv(name string) string { return b.env[name] }

func (b *testBundle) run(args ...string) error {
	b.stdout.Reset()
	b.stderr.Reset()
	return run(context.Background(), args, b.getenv, b.stdout, b.stderr)
}

// writeConfig writes a dbconfig.yml in the bundle's directory and returns its path.
func (b *testBundle) writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(b.dir, "dbconfig.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const testConfig = `
development:
  dialect: sqlite3
  datasource: ${DEV_DB_URL}
  dir: migrations/sqlite
  table: schema_migrations
production:
  dialect: postgres
  datasource: ${PROD_DB_URL}
  dir: migrations/postgres
  table: schema_migrations
`

func TestResolveURL(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	defaultURL := database.SQLiteURL(filepath.Join(dataDir, "tokenlysis.db"))
	tests := []struct {
		name       string
		env        map[string]string
		config     string // dbconfig.yml body; "" = no file
		envName    string
		wantSource string
		wantURL    string
	}{
		{
			name: "migrate URL wins over everything",
			env: map[string]string{"TOKENLYSIS_MIGRATE_DATABASE_URL": "sqlite:///m.db", "TOKENLYSIS_DATABASE_URL": "sqlite:///app.db",
				"DEV_DB_URL": "sqlite:///dev.db", "TOKENLYSIS_DATA_DIR": dataDir},
			config: testConfig, wantSource: "TOKENLYSIS_MIGRATE_DATABASE_URL", wantURL: "sqlite:///m.db",
		},
		{
			name:   "app URL wins over dbconfig.yml",
			env:    map[string]string{"TOKENLYSIS_DATABASE_URL": "sqlite:///app.db", "DEV_DB_URL": "sqlite:///dev.db", "TOKENLYSIS_DATA_DIR": dataDir},
			config: testConfig, wantSource: "TOKENLYSIS_DATABASE_URL", wantURL: "sqlite:///app.db",
		},
		{
			name:   "empty and blank variables fall through",
			env:    map[string]string{"TOKENLYSIS_MIGRATE_DATABASE_URL": "", "TOKENLYSIS_DATABASE_URL": "  ", "DEV_DB_URL": "sqlite:///dev.db"},
			config: testConfig, wantSource: `dbconfig.yml environment "development"`, wantURL: "sqlite:///dev.db",
		},
		{
			name:   "dbconfig.yml wins over the default",
			env:    map[string]string{"DEV_DB_URL": "sqlite:///dev.db", "TOKENLYSIS_DATA_DIR": dataDir},
			config: testConfig, wantSource: `dbconfig.yml environment "development"`, wantURL: "sqlite:///dev.db",
		},
		{
			name:   "chosen environment",
			env:    map[string]string{"PROD_DB_URL": "postgres://app:pw@db/prod"},
			config: testConfig, envName: "production",
			wantSource: `dbconfig.yml environment "production"`, wantURL: "postgres://app:pw@db/prod",
		},
		{
			name:   "datasource expanding to nothing falls through to the default",
			env:    map[string]string{"TOKENLYSIS_DATA_DIR": dataDir},
			config: testConfig, wantSource: "default", wantURL: defaultURL,
		},
		{
			name:       "no dbconfig.yml: the default",
			env:        map[string]string{"TOKENLYSIS_DATA_DIR": dataDir},
			wantSource: "default", wantURL: defaultURL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.env = tt.env
			cfgPath := filepath.Join(b.dir, "dbconfig.yml")
			if tt.config != "" {
				cfgPath = b.writeConfig(t, tt.config)
			}
			src, u, err := resolveURL(cfgPath, false, cmp.Or(tt.envName, "development"), b.getenv)
			if err != nil {
				t.Fatalf("resolveURL: %v", err)
			}
			if !strings.HasPrefix(src, strings.Replace(tt.wantSource, "dbconfig.yml", cfgPath, 1)) || u != tt.wantURL {
				t.Errorf("resolveURL = %q, %q; want %q, %q", src, u, tt.wantSource, tt.wantURL)
			}
		})
	}
}

func TestResolveURL_DefaultDataDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	src, u, err := resolveURL(filepath.Join(b.dir, "dbconfig.yml"), false, "development", b.getenv)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("var")
	if want := "sqlite:///" + filepath.Join(abs, "tokenlysis.db"); u != want || !strings.HasPrefix(src, "default") {
		t.Errorf("resolveURL = %q, %q; want default %q", src, u, want)
	}
	if !strings.HasPrefix(u, "sqlite:////") {
		t.Errorf("default URL %q is not absolute", u)
	}
}

func TestResolveURL_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		config   string
		explicit bool
		envName  string
		env      map[string]string
		want     string
	}{
		{name: "explicit config file missing", explicit: true, envName: "development", want: "no such file"},
		{name: "environment not in the file", config: testConfig, envName: "staging", want: `no environment "staging"`},
		{name: "postgres environment without a URL", config: testConfig, envName: "production", want: "expands to nothing"},
		{name: "dialect disagrees with the URL", config: testConfig, envName: "development",
			env: map[string]string{"DEV_DB_URL": "postgres://db/x"}, want: "dialect"},
		{name: "unsupported dialect", config: "development:\n  dialect: mysql\n  datasource: x\n", envName: "development", want: "mysql"},
		{name: "another migrations table", config: "development:\n  dialect: sqlite3\n  datasource: sqlite:///x.db\n  table: gorp_migrations\n",
			envName: "development", want: "schema_migrations"},
		{name: "malformed file", config: "development: [", envName: "development", want: "dbconfig.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if tt.env != nil {
				b.env = tt.env
			}
			cfgPath := filepath.Join(b.dir, "dbconfig.yml")
			if tt.config != "" {
				cfgPath = b.writeConfig(t, tt.config)
			}
			_, u, err := resolveURL(cfgPath, tt.explicit, tt.envName, b.getenv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("resolveURL = %q, %v; want an error mentioning %q", u, err, tt.want)
			}
		})
	}
}

// TestRepoDBConfig checks the dbconfig.yml at the repository root: both
// environments expand ${TOKENLYSIS_MIGRATE_DATABASE_URL} and agree with
// the dialect of the URL they get.
func TestRepoDBConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "dbconfig.yml")
	for envName, u := range map[string]string{
		"development": "sqlite:///var/dev.db",
		"production":  "postgres://app:pw@db/tokenlysis",
	} {
		getenv := func(name string) string {
			if name == "TOKENLYSIS_MIGRATE_DATABASE_URL" {
				return u
			}
			return ""
		}
		entry, err := readDBConfig(path, true, envName)
		if err != nil {
			t.Fatalf("%s: %v", envName, err)
		}
		if got := expandDataSource(entry.DataSource, getenv); got != u {
			t.Errorf("%s: datasource %q expands to %q, want %q", envName, entry.DataSource, got, u)
		}
		if err := checkEntry(entry, envName, u); err != nil {
			t.Errorf("%s: %v", envName, err)
		}
	}
}

func TestRun_PrintsSourceWithMaskedPassword(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Trust authentication ignores the password: it only has to be hidden.
	u := withPassword(t, databasetest.NewURL(t, database.Postgres), "s3cret-pw")
	b.env["TOKENLYSIS_DATABASE_URL"] = u
	if err := b.run("status"); err != nil {
		t.Fatalf("status: %v\n%s", err, b.stderr)
	}
	out := b.stdout.String() + b.stderr.String()
	if strings.Contains(out, "s3cret-pw") {
		t.Errorf("password printed:\n%s", out)
	}
	if want := "migrate: using TOKENLYSIS_DATABASE_URL: " + database.MaskURL(u); !strings.Contains(b.stderr.String(), want) {
		t.Errorf("stderr %q does not contain %q", b.stderr, want)
	}
	if !strings.Contains(database.MaskURL(u), ":***@") {
		t.Errorf("MaskURL(%q) did not mask", u)
	}
}

func TestRun_Commands(t *testing.T) {
	t.Parallel()
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			u := databasetest.NewURL(t, d)
			b.env["TOKENLYSIS_MIGRATE_DATABASE_URL"] = u
			ids := recordIDs(t, d)
			last := ids[len(ids)-1]

			mustRun(t, b, "status")
			if !strings.Contains(b.stdout.String(), ids[0]) || !strings.Contains(b.stdout.String(), "pending") {
				t.Errorf("status before up:\n%s", b.stdout)
			}
			if !strings.Contains(b.stderr.String(), "migrate: using TOKENLYSIS_MIGRATE_DATABASE_URL: "+database.MaskURL(u)) {
				t.Errorf("stderr does not name the source: %q", b.stderr)
			}
			if err := b.run("redo"); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
				t.Errorf("redo with nothing applied: %v", err)
			}

			mustRun(t, b, "up")
			if want := appliedMessage(len(ids)); !strings.Contains(b.stdout.String(), want) {
				t.Errorf("up printed %q, want %q", b.stdout, want)
			}
			assertApplied(t, u, len(ids))
			mustRun(t, b, "up")
			if !strings.Contains(b.stdout.String(), "up to date") {
				t.Errorf("second up printed %q", b.stdout)
			}

			mustRun(t, b, "status")
			if strings.Contains(b.stdout.String(), "pending") || !strings.Contains(b.stdout.String(), last) {
				t.Errorf("status after up:\n%s", b.stdout)
			}

			mustRun(t, b, "redo")
			if !strings.Contains(b.stdout.String(), "redid "+last) {
				t.Errorf("redo printed %q", b.stdout)
			}
			assertApplied(t, u, len(ids))

			mustRun(t, b, "down")
			if !strings.Contains(b.stdout.String(), "rolled back 1 migration") {
				t.Errorf("down printed %q", b.stdout)
			}
			assertApplied(t, u, len(ids)-1)

			mustRun(t, b, "up")
			mustRun(t, b, "down", "-n", "100")
			assertApplied(t, u, 0)
			if err := b.run("down", "-n", "0"); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
				t.Errorf("down -n 0: %v, want invalid", err)
			}
			mustRun(t, b, "up")
			mustRun(t, b, "-env", "development", "down", "-all")
			assertApplied(t, u, 0)
		})
	}
}

func TestRun_DefaultSQLiteInDataDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env["TOKENLYSIS_DATA_DIR"] = filepath.Join(b.dir, "data")
	if err := b.run("-config", filepath.Join("testdata", "empty.yml"), "up"); err != nil {
		t.Fatalf("up: %v\n%s", err, b.stderr)
	}
	path := filepath.Join(b.dir, "data", "tokenlysis.db")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("default database not created: %v", err)
	}
	if !strings.Contains(b.stderr.String(), "migrate: using default") {
		t.Errorf("stderr = %q", b.stderr)
	}
	assertApplied(t, database.SQLiteURL(path), len(recordIDs(t, database.SQLite)))
}

func TestRun_New(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := filepath.Join(b.dir, "migrations")
	for _, sub := range []string{"sqlite", "postgres"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The highest number in either directory counts.
	writeFile(t, filepath.Join(dir, "sqlite", "001_core.sql"), "")
	writeFile(t, filepath.Join(dir, "postgres", "001_core.sql"), "")
	writeFile(t, filepath.Join(dir, "postgres", "007_scores.sql"), "")
	writeFile(t, filepath.Join(dir, "postgres", "README.md"), "")

	mustRun(t, b, "new", "-dir", dir, "add_coins")
	for _, sub := range []string{"sqlite", "postgres"} {
		path := filepath.Join(dir, sub, "008_add_coins.sql")
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s not written: %v", path, err)
		}
		if !strings.Contains(b.stdout.String(), path) {
			t.Errorf("stdout %q does not name %s", b.stdout, path)
		}
		m, err := migrate.ParseMigration("008_add_coins.sql", bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s does not parse as a migration: %v\n%s", path, err, body)
		} else if !strings.Contains(string(body), "-- +migrate Up") || !strings.Contains(string(body), "-- +migrate Down") {
			t.Errorf("%s lacks an Up or Down section:\n%s", path, body)
		} else if m.Id != "008_add_coins.sql" {
			t.Errorf("id %q", m.Id)
		}
	}

	mustRun(t, b, "-dir", dir, "new", "second")
	if _, err := os.Stat(filepath.Join(dir, "sqlite", "009_second.sql")); err != nil {
		t.Errorf("next number not used: %v", err)
	}

	for _, args := range [][]string{
		{"new", "-dir", dir},
		{"new", "-dir", dir, "Bad Name"},
		{"new", "-dir", dir, "a", "b"},
		{"new", "-dir", filepath.Join(b.dir, "nowhere"), "x"},
	} {
		if err := b.run(args...); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
	// A flag after NAME is not read as a flag: the error says so.
	if err := b.run("new", "add_z", "-dir", dir); err == nil || !strings.Contains(err.Error(), "flags come first") {
		t.Errorf("new NAME -dir DIR: %v, want a message that flags come first", err)
	}
}

func TestRun_Usage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"sideways"}, {"-nope", "up"}, {"status", "extra"}} {
		b := setup(t)
		err := b.run(args...)
		if err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

func mustRun(t *testing.T, b *testBundle, args ...string) {
	t.Helper()
	if err := b.run(args...); err != nil {
		t.Fatalf("run %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, b.stdout, b.stderr)
	}
}

// assertApplied opens the database directly and checks how many migrations are applied.
func assertApplied(t *testing.T, u string, want int) {
	t.Helper()
	db, err := database.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := migrations.Status(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, r := range recs {
		if r.Applied() {
			got++
		}
	}
	if got != want {
		t.Errorf("%d migrations applied, want %d", got, want)
	}
}

func recordIDs(t *testing.T, d database.Dialect) []string {
	t.Helper()
	ms, err := migrations.Source(d).FindMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(ms), err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.Id)
	}
	return ids
}

func withPassword(t *testing.T, raw, pw string) string {
	t.Helper()
	i := strings.Index(raw, "://")
	at := strings.Index(raw, "@")
	if i < 0 || at < 0 || strings.Contains(raw[i+3:at], ":") {
		t.Fatalf("cannot add a password to %q", raw)
	}
	return raw[:at] + ":" + pw + raw[at:]
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("TOKENLYSIS_DATABASE_URL: %w", tokenlysis.Errorf(tokenlysis.EINVALID, "bad URL"))
	if got, want := errorText(err), "TOKENLYSIS_DATABASE_URL: bad URL"; got != want {
		t.Errorf("errorText = %q, want %q", got, want)
	}
	if got := errorText(errors.New("plain")); got != "plain" {
		t.Errorf("errorText = %q", got)
	}
}
