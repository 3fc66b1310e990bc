package database

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Driver names registered with database/sql.
const (
	sqliteDriver   = "sqlite"
	postgresDriver = "pgx"
)

// sqlitePragmas are applied by modernc.org/sqlite to every new connection.
// _time_format=sqlite stores times as "YYYY-MM-DD HH:MM:SS.SSS±HH:MM" text,
// which sorts, compares and reads back as time.Time. journal_size_limit
// trims the WAL file back to 64 MB when it starts over: a recalculation,
// which checkpoints beside its writes (sqlstore.WriteScores), grows it to
// the size of its whole write, and SQLite never shrinks it by itself.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=journal_size_limit(67108864)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_time_format=sqlite&_txlock=immediate"

// Config is a parsed database URL: what to hand to sql.Open.
type Config struct {
	Dialect    Dialect
	DriverName string // "sqlite" or "pgx"
	DSN        string // data source name for DriverName
	Path       string // SQLite file path as given (relative paths are relative to the working directory); "" for :memory: and PostgreSQL
}

// Memory reports whether c is a SQLite in-memory database.
func (c Config) Memory() bool { return c.Dialect == SQLite && c.Path == "" }

// ParseURL parses a database URL of one of the forms listed in the package
// documentation. Any other form is an EINVALID *tokenlysis.Error naming the
// problem; its message never contains the password.
func ParseURL(raw string) (Config, error) {
	switch {
	case strings.TrimSpace(raw) == "":
		return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "database URL is empty: want postgres://…, postgresql://… or sqlite:///path.db")
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgconn.ParseConfig(raw); err != nil {
			// pgconn redacts the password in its errors; mask the URL anyway.
			return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "invalid postgres database URL %s: %s", MaskURL(raw), pgErrorMessage(err, raw))
		}
		return Config{Dialect: Postgres, DriverName: postgresDriver, DSN: raw}, nil
	case strings.HasPrefix(raw, "sqlite://"):
		return parseSQLite(raw)
	}
	scheme := "no scheme"
	if i := strings.Index(raw, "://"); i > 0 {
		scheme = "scheme " + raw[:i]
	}
	return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "unsupported database URL (%s): want postgres://…, postgresql://… or sqlite:///path.db", scheme)
}

// pgErrorMessage returns err's text with any occurrence of raw's password removed.
func pgErrorMessage(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	return msg
}

func parseSQLite(raw string) (Config, error) {
	rest := strings.TrimPrefix(raw, "sqlite://")
	if rest == ":memory:" {
		return Config{Dialect: SQLite, DriverName: sqliteDriver, DSN: "file::memory:?" + sqlitePragmas}, nil
	}
	if strings.ContainsAny(rest, "?#") {
		// A ? or # in a file name is written %3F or %23 (SQLiteURL does).
		return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "sqlite database URL %q: query parameters and fragments are not supported (the driver options are fixed)", raw)
	}
	if !strings.HasPrefix(rest, "/") {
		if rest == "" {
			return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "sqlite database URL %q has no file path: use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:", raw)
		}
		return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "sqlite database URL %q names a host: use sqlite:///relative/path.db or sqlite:////absolute/path.db", raw)
	}
	path, err := url.PathUnescape(rest[1:]) // sqlite:///a.db → "a.db"; sqlite:////srv/a.db → "/srv/a.db"
	if err != nil {
		return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "sqlite database URL %q: bad percent-escape in the path (write %% as %%25)", raw)
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return Config{}, tokenlysis.Errorf(tokenlysis.EINVALID, "sqlite database URL %q has no file path: use sqlite:///relative/path.db or sqlite:////absolute/path.db", raw)
	}
	// SQLite's file: URI decodes %XX and ends the name at ? or #.
	return Config{Dialect: SQLite, DriverName: sqliteDriver, DSN: "file:" + escapeSQLitePath(path) + "?" + sqlitePragmas, Path: path}, nil
}

// SQLiteURL returns the sqlite:// URL of the database file at path
// (relative to the working directory, or absolute), which ParseURL reads
// back as path whatever characters it holds.
func SQLiteURL(path string) string {
	return "sqlite:///" + escapeSQLitePath(path)
}

// escapeSQLitePath escapes the characters that end or change a path in a
// URL: %, ? and #.
func escapeSQLitePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
}

// DB is a connection pool with the dialect it speaks. Queries are written
// with ? placeholders and passed through Rebind (sqlx), which turns them
// into $1, $2… for PostgreSQL.
type DB struct {
	*sqlx.DB
	Dialect Dialect
}

// Options tunes the connection pool. Zero fields take the defaults below,
// chosen per engine:
//
//	             MaxOpenConns  MaxIdleConns  ConnMaxLifetime  ConnMaxIdleTime
//	PostgreSQL   20            20            30m              5m
//	SQLite file  4             4             none             none
//	:memory:     1 (forced)    1 (forced)    none (forced)    none (forced)
//
// SQLite has a single writer; a small pool serves concurrent WAL readers
// while writers queue on the busy timeout. Every connection to :memory:
// is a different database, so an in-memory pool is always one connection
// that is never recycled.
type Options struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
}

// bindOnce registers the "sqlite" driver name with sqlx, which only knows
// "sqlite3" for the question-mark bind style. sqlx keeps that registry
// itself (a process-wide map), so doing it once per process is enough.
var bindOnce sync.Once

// Open parses rawURL (see ParseURL), opens the pool, sizes it from opts
// (at most one Options; zero fields mean the documented defaults) and
// pings the database. For a SQLite file it creates the parent directory
// if missing.
//
// Errors: EINVALID for a bad URL; a database that does not answer returns
// the driver error wrapped (IsUnavailable reports true for it).
func Open(ctx context.Context, rawURL string, opts ...Options) (*DB, error) {
	bindOnce.Do(func() { sqlx.BindDriver(sqliteDriver, sqlx.QUESTION) })

	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	switch {
	case cfg.Memory():
		o = Options{MaxOpenConns: 1, MaxIdleConns: 1}
	case cfg.Dialect == SQLite:
		o.MaxOpenConns = cmp.Or(o.MaxOpenConns, 4)
		o.MaxIdleConns = cmp.Or(o.MaxIdleConns, o.MaxOpenConns)
	default:
		o.MaxOpenConns = cmp.Or(o.MaxOpenConns, 20)
		o.MaxIdleConns = cmp.Or(o.MaxIdleConns, o.MaxOpenConns) // idle ones expire after ConnMaxIdleTime; fewer would churn connections under load
		o.ConnMaxLifetime = cmp.Or(o.ConnMaxLifetime, 30*time.Minute)
		o.ConnMaxIdleTime = cmp.Or(o.ConnMaxIdleTime, 5*time.Minute)
	}

	if cfg.Path != "" {
		if dir := filepath.Dir(cfg.Path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("database: create directory of %s: %w", cfg.Path, err)
			}
		}
	}

	sqlDB, err := sql.Open(cfg.DriverName, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", MaskURL(rawURL), err)
	}
	sqlDB.SetMaxOpenConns(o.MaxOpenConns)
	sqlDB.SetMaxIdleConns(o.MaxIdleConns)
	sqlDB.SetConnMaxLifetime(o.ConnMaxLifetime)
	sqlDB.SetConnMaxIdleTime(o.ConnMaxIdleTime)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("database: connect to %s: %w", MaskURL(rawURL), err)
	}
	return &DB{DB: sqlx.NewDb(sqlDB, cfg.DriverName), Dialect: cfg.Dialect}, nil
}

// maskPasswordParam matches a key/value DSN's password (password, and
// keys ending in it such as sslpassword), spaces around = included.
// A quoted value may hold \' (libpq's escape); an unquoted one ends at
// white space only.
var maskPasswordParam = regexp.MustCompile(`(?i)(\b\w*password\s*=\s*)('(?:\\.|[^'\\])*'|\S*)`)

// MaskURL returns raw with any password replaced by "***", for logs and
// messages. It handles URLs with and without a password (also passwords
// with unescaped @, / or ?, which url.Parse rejects or misreads),
// password= and sslpassword= query parameters (their keys percent-encoded
// too), key/value DSNs, and strings that are not URLs at all (unchanged
// unless they contain password=). It errs on the side of hiding.
func MaskURL(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i > 0 {
		rest := s[i+3:]
		// The userinfo ends at the last @, so that a password holding @,
		// / or ? is hidden whole (an @ further on, in the query, hides
		// more than the password: never less).
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
				rest = rest[:colon+1] + "***" + rest[at:]
			}
		}
		if q := strings.IndexByte(rest, '?'); q >= 0 {
			rest = rest[:q+1] + maskQuery(rest[q+1:])
		}
		return s[:i+3] + rest
	}
	return maskPasswordParam.ReplaceAllString(s, "${1}***") // a key/value DSN
}

// maskQuery hides the value of every query parameter whose key, percent-
// decoded, names a password.
func maskQuery(q string) string {
	params := strings.Split(q, "&")
	for i, p := range params {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if strings.Contains(strings.ToLower(k), "password") {
			params[i] = p[:strings.IndexByte(p, '=')+1] + "***"
		}
	}
	return strings.Join(params, "&")
}
