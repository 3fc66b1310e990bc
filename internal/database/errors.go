package database

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUniqueViolation reports whether err, anywhere in its chain, is a unique
// or primary key constraint violation: SQLSTATE 23505 on PostgreSQL,
// SQLITE_CONSTRAINT_UNIQUE or SQLITE_CONSTRAINT_PRIMARYKEY on SQLite.
// Stores map it to tokenlysis.ECONFLICT.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable reports whether err means that the database cannot be
// reached right now, so that callers answer 503 (tokenlysis.EUNAVAILABLE)
// rather than 500:
//
//   - driver.ErrBadConn, a refused, reset or broken connection, an
//     unexpected EOF, any failure to dial;
//   - a pgx connection attempt that failed for any reason other than a
//     server-side refusal that is a misconfiguration (authentication,
//     SQLSTATE class 28, or a missing database, class 3D), including a
//     context deadline reached while connecting;
//   - PostgreSQL SQLSTATE class 08 (connection exception), 57P01–57P03
//     (shutdown, crash, cannot connect now) and 53300 (too many connections);
//   - SQLite SQLITE_CANTOPEN (the file cannot be opened).
//
// A busy SQLite database ("database is locked", SQLITE_BUSY) is contention,
// not an outage, and reports false, as do a context deadline during a query,
// constraint violations and SQL errors.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	hasPgErr := errors.As(err, &pgErr)
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		class := sqlStateClass(pgErr, hasPgErr)
		return class != "28" && class != "3D"
	}
	if hasPgErr {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300":
			return true
		}
		return sqlStateClass(pgErr, true) == "08"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		return liteErr.Code()&0xff == sqlite3.SQLITE_CANTOPEN
	}
	if errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	// A context deadline is only an outage when it cut a connection attempt
	// short, which ConnectError and dial errors above already cover.
	return false
}

// sqlStateClass returns the two-character class of a SQLSTATE, or "".
func sqlStateClass(e *pgconn.PgError, ok bool) string {
	if !ok || len(e.Code) < 2 {
		return ""
	}
	return e.Code[:2]
}
