package migrations_test

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ddl matches statements that change the schema. Temporary tables
// (CREATE TEMP TABLE) are per-session scratch space and stay allowed, as do
// CREATE/DROP DATABASE in test helpers.
var ddl = regexp.MustCompile(`(?i)\b(create|alter|drop)\s+(unique\s+)?(table|index|view|trigger|sequence)\b`)

// TestNoSchemaChangesOutsideMigrations walks every Go source of the module
// (tests included) and fails if a string literal outside migrations/
// creates, alters or drops a table (or an index, view, trigger or
// sequence): the schema exists only through migrations, never through
// code run at start-up. SQL files outside migrations/ are checked whole,
// since go:embed could smuggle DDL in through them.
func TestNoSchemaChangesOutsideMigrations(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == "migrations", rel == "vendor", d.Name() == ".git", d.Name() == "node_modules":
				return filepath.SkipDir
			case path != root && fileExists(filepath.Join(path, "go.mod")):
				return filepath.SkipDir // another module
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go":
			checked++
			for _, f := range goStringDDL(t, path) {
				t.Errorf("%s:%d: schema change outside migrations/: %s", rel, f.line, f.text)
			}
		case ".sql":
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if m := ddl.Find(src); m != nil {
				t.Errorf("%s: schema change outside migrations/: %s", rel, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatalf("no Go file found under %s", root)
	}
}

// TestDDLPattern keeps the guard honest: it must see what it is meant to
// see, and only that.
func TestDDLPattern(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"CREATE TABLE x", "create table if not exists x", "ALTER  TABLE jobs", "drop\ntable users", "CREATE UNIQUE INDEX i", "DROP INDEX i"} {
		if !ddl.MatchString(s) {
			t.Errorf("%q not detected", s)
		}
	}
	for _, s := range []string{"CREATE DATABASE tokenlysis_test_1", "DROP DATABASE x WITH (FORCE)", "CREATE TEMP TABLE t", "SELECT * FROM tables", "created table"} {
		if ddl.MatchString(s) {
			t.Errorf("%q wrongly detected", s)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.go")
	src := "package x\n// CREATE TABLE in a comment is fine\nconst q = `\n  create table users (id int)`\nvar s = \"ALTER TABLE \" + \"x\"\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	found := goStringDDL(t, path)
	if len(found) != 2 || found[0].line != 3 || found[1].line != 5 {
		t.Errorf("goStringDDL = %+v, want the raw string at line 3 and the string at line 5", found)
	}
}

type finding struct {
	line int
	text string
}

// goStringDDL returns the string literals of a Go file that contain DDL. It
// tokenizes rather than parses, so that a file someone is in the middle of
// editing is still checked.
func goStringDDL(t *testing.T, path string) []finding {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	file := fset.AddFile(path, -1, len(src))
	var s scanner.Scanner
	s.Init(file, src, func(token.Position, string) {}, 0) // comments skipped
	var out []finding
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok == token.STRING {
			if m := ddl.FindString(lit); m != "" {
				out = append(out, finding{fset.Position(pos).Line, strings.Join(strings.Fields(m), " ")})
			}
		}
	}
}

// moduleRoot walks up from the test's working directory to go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
