package database_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

const sqlitePragmas = "?_pragma=journal_mode(WAL)&_pragma=journal_size_limit(67108864)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_time_format=sqlite&_txlock=immediate"

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want database.Config
	}{
		{"postgres://app:pw@db.example:5432/tokenlysis?sslmode=disable", database.Config{
			Dialect: database.Postgres, DriverName: "pgx", DSN: "postgres://app:pw@db.example:5432/tokenlysis?sslmode=disable"}},
		{"postgresql://app@db/tokenlysis", database.Config{
			Dialect: database.Postgres, DriverName: "pgx", DSN: "postgresql://app@db/tokenlysis"}},
		{"sqlite:///var/tokenlysis.db", database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", Path: "var/tokenlysis.db", DSN: "file:var/tokenlysis.db" + sqlitePragmas}},
		{"sqlite:////srv/data/tokenlysis.db", database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", Path: "/srv/data/tokenlysis.db", DSN: "file:/srv/data/tokenlysis.db" + sqlitePragmas}},
		{"sqlite://:memory:", database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", DSN: "file::memory:" + sqlitePragmas}},
		// The path is percent-decoded once, and escaped again for
		// SQLite's file: URI, which decodes %XX itself.
		{"sqlite:////d/a%23b%3Fc%25d 1.db", database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", Path: "/d/a#b?c%d 1.db", DSN: "file:/d/a%23b%3Fc%25d 1.db" + sqlitePragmas}},
		{database.SQLiteURL("/d/a#b?c%41d.db"), database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", Path: "/d/a#b?c%41d.db", DSN: "file:/d/a%23b%3Fc%2541d.db" + sqlitePragmas}},
		{database.SQLiteURL("rel/x.db"), database.Config{
			Dialect: database.SQLite, DriverName: "sqlite", Path: "rel/x.db", DSN: "file:rel/x.db" + sqlitePragmas}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := database.ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseURL_Invalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw       string
		wantInMsg string
		notInMsg  string
	}{
		{"", "empty", ""},
		{"mysql://root:secret@db/x", "unsupported", "secret"},
		{"/var/tokenlysis.db", "unsupported", ""},
		{"sqlite:///", "no file path", ""},
		{"sqlite://", "no file path", ""},
		{"sqlite://host/x.db", "host", ""},
		{"sqlite:///x.db?mode=ro", "query", ""},
		{"sqlite:///x%zz.db", "percent", ""},
		{"postgres://app:secret@db:notaport/x", "postgres", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := database.ParseURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseURL(%q): no error", tt.raw)
			}
			if code := tokenlysis.ErrorCode(err); code != tokenlysis.EINVALID {
				t.Errorf("ParseURL(%q): code %q, want %q (%v)", tt.raw, code, tokenlysis.EINVALID, err)
			}
			msg := tokenlysis.ErrorMessage(err)
			if !containsFold(msg, tt.wantInMsg) {
				t.Errorf("ParseURL(%q): message %q does not mention %q", tt.raw, msg, tt.wantInMsg)
			}
			if tt.notInMsg != "" && containsFold(err.Error(), tt.notInMsg) {
				t.Errorf("ParseURL(%q): error %q leaks %q", tt.raw, err, tt.notInMsg)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ raw, want string }{
		{"postgres://app:s3cret@db.example:5432/tokenlysis?sslmode=disable", "postgres://app:***@db.example:5432/tokenlysis?sslmode=disable"},
		{"postgresql://app@db/tokenlysis", "postgresql://app@db/tokenlysis"},
		{"postgres://db/tokenlysis?user=app&password=s3cret", "postgres://db/tokenlysis?user=app&password=***"},
		{"postgres://app:p@ss/w0rd@db/x", "postgres://app:***@db/x"},
		{"sqlite:////srv/data/tokenlysis.db", "sqlite:////srv/data/tokenlysis.db"},
		{"sqlite://:memory:", "sqlite://:memory:"},
		{"host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"},
		{"not a url", "not a url"},
		// A ? or / in the password, which pgconn takes as it is.
		{"postgres://app:pa?ss@127.0.0.1:1/x", "postgres://app:***@127.0.0.1:1/x"},
		{"postgres://app:pa/ss@db/x", "postgres://app:***@db/x"},
		{"redis://:p@ss@h/0", "redis://:***@h/0"},
		{"postgres://db/x?sslmode=require&sslpassword=KEYPASS", "postgres://db/x?sslmode=require&sslpassword=***"},
		{"postgres://db/x?%70assword=ENCPW&sslmode=disable", "postgres://db/x?%70assword=***&sslmode=disable"},
		{"host=db user=app password = secretkv dbname=x", "host=db user=app password = *** dbname=x"},
		{"host=db sslpassword='a b' dbname=x", "host=db sslpassword=*** dbname=x"},
		{`host=db password='a b\' c d' dbname=x`, "host=db password=*** dbname=x"},
		{"host=db password=SECRET5&x dbname=x", "host=db password=*** dbname=x"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := database.MaskURL(tt.raw); got != tt.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestOpen_SQLiteCreatesParentDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "tokenlysis.db")
	db, err := database.Open(ctx, database.SQLiteURL(path))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if db.Dialect != database.SQLite {
		t.Errorf("Dialect = %q, want %q", db.Dialect, database.SQLite)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not created: %v", err)
	}

	// The DSN pragmas apply to every connection of the pool.
	var fk, timeout int
	var mode string
	if err := db.GetContext(ctx, &fk, "PRAGMA foreign_keys"); err != nil {
		t.Fatal(err)
	}
	if err := db.GetContext(ctx, &timeout, "PRAGMA busy_timeout"); err != nil {
		t.Fatal(err)
	}
	if err := db.GetContext(ctx, &mode, "PRAGMA journal_mode"); err != nil {
		t.Fatal(err)
	}
	if fk != 1 || timeout != 5000 || mode != "wal" {
		t.Errorf("pragmas: foreign_keys=%d busy_timeout=%d journal_mode=%q, want 1, 5000, wal", fk, timeout, mode)
	}
	var walLimit int64
	if err := db.GetContext(ctx, &walLimit, "PRAGMA journal_size_limit"); err != nil {
		t.Fatal(err)
	}
	if walLimit != 64<<20 {
		t.Errorf("journal_size_limit = %d, want %d", walLimit, 64<<20)
	}
	if got := db.Stats().MaxOpenConnections; got < 2 {
		t.Errorf("MaxOpenConnections = %d, want a pool of several connections for a file database", got)
	}
}

// A data directory whose name holds #, ? or % works: the file is made
// where its name says, not where a decoding of it points.
func TestOpen_SQLitePathWithURLCharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a#b?c%41d")
	db, err := database.Open(context.Background(), database.SQLiteURL(filepath.Join(dir, "t.db")))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t.db")); err != nil {
		t.Fatalf("the database file is not where its URL says: %v", err)
	}
}

func TestOpen_SQLiteMemoryIsOneConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := database.Open(ctx, "sqlite://:memory:", database.Options{MaxOpenConns: 10})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("MaxOpenConnections = %d, want 1 (every connection to :memory: is a different database)", got)
	}
	// sqlx knows the "sqlite" driver's bind style.
	if got := db.Rebind("SELECT ?"); got != "SELECT ?" {
		t.Errorf("Rebind = %q", got)
	}
	var n int
	if err := db.GetContext(ctx, &n, "SELECT ? + 1", 41); err != nil || n != 42 {
		t.Errorf("SELECT ? + 1 = %d, %v", n, err)
	}
}

func TestOpen_Postgres(t *testing.T) {
	t.Parallel()
	db := databasetest.New(t, database.Postgres)
	if db.Dialect != database.Postgres {
		t.Errorf("Dialect = %q", db.Dialect)
	}
	if got := db.Rebind("SELECT ?, ?"); got != "SELECT $1, $2" {
		t.Errorf("Rebind = %q", got)
	}
	if got := db.Stats().MaxOpenConnections; got != 20 {
		t.Errorf("MaxOpenConnections = %d, want 20", got)
	}
}

func TestOpen_Options(t *testing.T) {
	t.Parallel()
	db, err := database.Open(context.Background(), database.SQLiteURL(filepath.Join(t.TempDir(), "x.db")), database.Options{MaxOpenConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("MaxOpenConnections = %d, want 3", got)
	}
}

func TestOpen_InvalidURL(t *testing.T) {
	t.Parallel()
	_, err := database.Open(context.Background(), "mysql://x")
	if code := tokenlysis.ErrorCode(err); code != tokenlysis.EINVALID {
		t.Errorf("Open(mysql://x): code %q, want invalid (%v)", code, err)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// TestRoundTrip checks that the driver settings keep times and JSON intact
// on both engines, as the stores need them.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		ctx := context.Background()
		paris := time.FixedZone("CET", 3600)
		// PostgreSQL keeps microseconds.
		created := time.Date(2026, 3, 1, 12, 30, 45, 123456000, paris)
		params := json.RawMessage(`{"coin": "btc", "days": 30}`)
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO jobs (id, type, queue, params, status, submitted_by, created_at, updated_at)
			VALUES (?, 'score:compute', 'default', ?, 'queued', 'u1', ?, ?)`), "j1", params, created, created.UTC())
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Params    json.RawMessage `db:"params"`
			CreatedAt time.Time       `db:"created_at"`
			UpdatedAt time.Time       `db:"updated_at"`
			StartedAt *time.Time      `db:"started_at"`
		}
		if err := db.GetContext(ctx, &got, db.Rebind(`SELECT params, created_at, updated_at, started_at FROM jobs WHERE id = ?`), "j1"); err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(created) || got.StartedAt != nil {
			t.Errorf("times: created %v, updated %v, started %v; want %v, %v, nil", got.CreatedAt, got.UpdatedAt, got.StartedAt, created, created)
		}
		var m map[string]any
		if err := json.Unmarshal(got.Params, &m); err != nil || m["coin"] != "btc" || m["days"] != float64(30) {
			t.Errorf("params = %s (%v)", got.Params, err)
		}

		// Times written in UTC compare correctly in SQL on both engines.
		var n int
		if err := db.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM jobs WHERE updated_at > ? AND updated_at < ?`),
			created.Add(-time.Second).UTC(), created.Add(time.Second).UTC()); err != nil || n != 1 {
			t.Errorf("range on updated_at: %d, %v; want 1", n, err)
		}
	})
}
