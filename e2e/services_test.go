package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// ownRedis is a redis-server of the test's own, which the test may kill
// and start again on the same port.
type ownRedis struct {
	t    *testing.T
	port int
	dir  string // its working directory
	proc *proc
	runs int
}

// startOwnRedis starts a redis-server without persistence on a free port.
func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	r := &ownRedis{t: t, port: freePort(t), dir: t.TempDir()}
	r.start(path)
	return r
}

func (r *ownRedis) start(path string) {
	r.t.Helper()
	r.runs++
	// --dir: a replica saves the copy its master sends, whatever --save
	// says; it must not land in the source tree.
	r.proc = startProc(r.t, fmt.Sprintf("redis-%d", r.runs), path, os.Environ(), nil,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	waitTCP(r.t, r.addr(), startTimeout)
}

// restart starts the server again on the same port after kill.
func (r *ownRedis) restart() {
	r.t.Helper()
	path, _ := exec.LookPath("redis-server")
	r.start(path)
}

func (r *ownRedis) kill() { r.proc.kill(r.t) }

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// url is the Redis URL of database 0.
func (r *ownRedis) url() string { return "redis://" + r.addr() + "/0" }

// ownPostgres is a PostgreSQL 15 cluster of the test's own, in a temp dir
// owned by the postgres user (initdb refuses root).
type ownPostgres struct {
	t    *testing.T
	dir  string
	port int
}

const pgBin = "/usr/lib/postgresql/15/bin"

// startOwnPostgres creates a cluster, starts it on a free port and creates
// the database "tokenlysis". The cluster is stopped and removed when the
// test ends.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Fatalf("PostgreSQL 15 server binaries are missing (%v): apt-get install -y postgresql-15", err)
	}
	// t.TempDir is private to root; postgres needs its own directory.
	dir, err := os.MkdirTemp("", "tokenlysis-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &ownPostgres{t: t, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		// Stopped whatever its state; then removed.
		pg.ctl(30*time.Second, "stop", "-m", "immediate")
		if t.Failed() {
			t.Logf("--- last lines of the PostgreSQL log ---\n%s", tail(filepath.Join(dir, "log"), 30))
		}
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s to postgres: %v\n%s", dir, err, out)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", filepath.Join(pgBin, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pg.start()
	psql := exec.CommandContext(ctx, filepath.Join(pgBin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(pg.port),
		"-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE tokenlysis")
	if out, err := psql.CombinedOutput(); err != nil {
		t.Fatalf("create database: %v\n%s", err, out)
	}
	return pg
}

// ctl runs pg_ctl as postgres and returns its error and output.
func (pg *ownPostgres) ctl(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"-u", "postgres", "--", filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(pg.dir, "data")}, args...)
	return exec.CommandContext(ctx, "runuser", full...).CombinedOutput()
}

// start starts the server and waits until it accepts connections.
func (pg *ownPostgres) start() {
	pg.t.Helper()
	// fsync=off only saves the disk flushes an OS crash would need; a
	// commit still reaches the OS before it returns (synchronous_commit
	// stays on, as on a real server), so it survives stopImmediate.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", pg.port, pg.dir)
	if out, err := pg.ctl(startTimeout, "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		pg.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(filepath.Join(pg.dir, "log"), 20))
	}
}

// stopImmediate stops the server the hard way (no shutdown checkpoint,
// clients cut off), as a crash would.
func (pg *ownPostgres) stopImmediate() {
	pg.t.Helper()
	if out, err := pg.ctl(startTimeout, "stop", "-m", "immediate", "-w"); err != nil {
		pg.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// url is the URL of the database "tokenlysis".
func (pg *ownPostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/tokenlysis?sslmode=disable", pg.port)
}
