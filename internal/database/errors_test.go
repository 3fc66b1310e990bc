package database_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
)

const insertUser = `INSERT INTO users (email, full_name, created_at) VALUES (?, ?, ?)`

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		if _, err := db.ExecContext(ctx, db.Rebind(insertUser), "ada@example.com", "Ada", now); err != nil {
			t.Fatalf("first insert: %v", err)
		}
		_, err := db.ExecContext(ctx, db.Rebind(insertUser), "ada@example.com", "Ada again", now)
		if err == nil {
			t.Fatal("duplicate email inserted without error")
		}
		if !database.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = false, want true", err)
		}
		if !database.IsUniqueViolation(fmt.Errorf("store: create user: %w", err)) {
			t.Errorf("IsUniqueViolation does not see through wrapping")
		}
		if database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true for a unique violation", err)
		}

		// A primary key collision is a unique violation on both engines.
		var id int64
		if err := db.GetContext(ctx, &id, db.Rebind(`SELECT id FROM users WHERE email = ?`), "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err = db.ExecContext(ctx, db.Rebind(`INSERT INTO users (id, email, created_at) VALUES (?, ?, ?)`), id, "other@example.com", now)
		if !database.IsUniqueViolation(err) {
			t.Errorf("primary key collision: IsUniqueViolation(%v) = false, want true", err)
		}

		// Other constraint violations are not.
		_, err = db.ExecContext(ctx, db.Rebind(`INSERT INTO users (email, created_at) VALUES (?, ?)`), nil, now)
		if err == nil {
			t.Fatal("NULL email inserted without error")
		}
		if database.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = true for a NOT NULL violation", err)
		}
		_, err = db.ExecContext(ctx, `SELEKT 1`)
		if err == nil || database.IsUniqueViolation(err) || database.IsUnavailable(err) {
			t.Errorf("syntax error %v: IsUniqueViolation=%t IsUnavailable=%t, want both false",
				err, database.IsUniqueViolation(err), database.IsUnavailable(err))
		}
	})
}

func TestIsUniqueViolation_NotDatabaseErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("unique constraint failed"), sql.ErrNoRows} {
		if database.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = true", err)
		}
	}
}

func TestIsUnavailable_Generic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{sql.ErrNoRows, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{driver.ErrBadConn, true},
		{fmt.Errorf("store: %w", driver.ErrBadConn), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}, true},
	}
	for _, tt := range tests {
		if got := database.IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestIsUnavailable_SQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("cannot open", func(t *testing.T) {
		t.Parallel()
		// Bypass Open (which would create the directory) to reach the driver's own error.
		raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "missing", "dir", "x.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		err = raw.PingContext(ctx)
		if err == nil {
			t.Fatal("Ping of a database in a missing directory succeeded")
		}
		if !database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false, want true", err)
		}
	})

	t.Run("database is locked is not unavailable", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "locked.db")
		db, err := database.Open(ctx, database.SQLiteURL(path))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// One connection holds the write lock...
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// ...while a second one, with a short busy timeout, tries to write.
		other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(50)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_, err = other.BeginTx(ctx, nil)
		if err == nil {
			t.Fatal("second writer got the lock")
		}
		if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
			t.Fatalf("unexpected error: %v", err)
		}
		if database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true, want false: a busy database is contention, not an outage", err)
		}
	})
}

func TestIsUnavailable_Postgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there any more
		db, err := database.Open(ctx, "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=5")
		if err == nil {
			db.Close()
			t.Fatal("Open to a closed port succeeded")
		}
		if !database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false, want true", err)
		}
	})

	t.Run("server does not answer before the deadline", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() { // accept and stay silent, like a hung server
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		db, err := database.Open(ctx, "postgres://postgres@"+l.Addr().String()+"/x?sslmode=disable")
		if err == nil {
			db.Close()
			t.Fatal("Open to a silent server succeeded")
		}
		if !database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false, want true", err)
		}
	})

	t.Run("backend terminated", func(t *testing.T) {
		t.Parallel()
		db := databasetest.New(t, database.Postgres)
		conn, err := db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pid int
		if err := conn.GetContext(ctx, &pid, `SELECT pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if err := db.GetContext(ctx, &ok, `SELECT pg_terminate_backend($1)`, pid); err != nil || !ok {
			t.Fatalf("pg_terminate_backend: %t, %v", ok, err)
		}
		var one int
		err = conn.GetContext(ctx, &one, `SELECT 1`)
		if err == nil {
			t.Fatal("query on a terminated backend succeeded")
		}
		if !database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false, want true", err)
		}
	})

	t.Run("missing database is a misconfiguration", func(t *testing.T) {
		t.Parallel()
		databasetest.New(t, database.Postgres) // PostgreSQL answers, so the error below is about the name
		u, err := url.Parse(databasetest.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/tokenlysis_no_such_database"
		db, err := database.Open(ctx, u.String())
		if err == nil {
			db.Close()
			t.Fatalf("Open(%s) succeeded", u)
		}
		if database.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true, want false", err)
		}
	})
}
