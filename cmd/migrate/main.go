// Command migrate applies, rolls back and lists Tokenlysis' database
// migrations, which are embedded in the binary (package migrations), and
// creates new migration files.
//
//	migrate [-config dbconfig.yml] [-env development] up
//	migrate [...] down [-n 1 | -all]
//	migrate [...] status
//	migrate [...] redo              roll back the last migration and apply it again
//	migrate [...] new [-dir migrations] NAME
//
// Flags may come before or after the command. The database URL (see
// package database for the accepted forms; the dialect follows the URL) is
// taken from the first of:
//
//  1. TOKENLYSIS_MIGRATE_DATABASE_URL
//  2. TOKENLYSIS_DATABASE_URL
//  3. the datasource of the -env entry of the -config file, in
//     rubenv/sql-migrate's own dbconfig.yml format (dialect, datasource,
//     dir, table), with ${VAR} references expanded from the environment;
//     the datasource must be one of the URLs below (not the upstream
//     CLI's key=value DSNs or bare file paths)
//  4. the SQLite file $TOKENLYSIS_DATA_DIR/tokenlysis.db (default ./var),
//     the application's own default database
//
// A variable that is unset, empty or blank counts as missing, and so does a
// datasource that expands to nothing, unless its entry's dialect is
// postgres: falling back to a local SQLite file would then migrate the
// wrong database. A missing dbconfig.yml is skipped unless -config names it.
// -env defaults to "development"; it is a flag only (TOKENLYSIS_ENV means
// local/production to the services, not a dbconfig.yml entry). The entry's
// dialect, when given, must agree with the URL; its table, when given, must
// be schema_migrations; its dir is for the upstream sql-migrate CLI only,
// since this tool runs the embedded migrations.
//
// The tool prints the source it used and the URL, password masked, on
// stderr: "migrate: using TOKENLYSIS_DATABASE_URL: postgres://app:***@db/x".
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", errorText(err))
		os.Exit(1)
	}
}

// errorText is err's text with the *tokenlysis.Error in its chain shown as
// its bare message: "code=… message=…" is for logs, not for a terminal.
func errorText(err error) string {
	msg := err.Error()
	var e *tokenlysis.Error
	if errors.As(err, &e) {
		msg = strings.Replace(msg, e.Error(), e.Message, 1)
	}
	return msg
}

const usage = `usage: migrate [-config dbconfig.yml] [-env development] COMMAND

commands:
  up                  apply every pending migration
  down [-n N | -all]  roll back the last N migrations (default 1), or all
  status              list migrations, applied or pending
  redo                roll back the last migration and apply it again
  new [-dir DIR] NAME create DIR/sqlite/NNN_NAME.sql and DIR/postgres/NNN_NAME.sql

The database URL comes from TOKENLYSIS_MIGRATE_DATABASE_URL, then
TOKENLYSIS_DATABASE_URL, then the -env entry of the -config file, then
sqlite:///$TOKENLYSIS_DATA_DIR/tokenlysis.db (TOKENLYSIS_DATA_DIR=./var).
`

// options are the flags; common ones may come before or after the command.
type options struct {
	config string
	env    string
	dir    string
	n      int
	all    bool
	set    map[string]bool // flags given explicitly
}

func (o *options) common(fs *flag.FlagSet) {
	fs.StringVar(&o.config, "config", o.config, "sql-migrate configuration `file`")
	fs.StringVar(&o.env, "env", o.env, "`environment` (entry) of the configuration file")
}

// run executes the command line args (without the program name), reading
// the environment through getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o := &options{config: "dbconfig.yml", env: "development", dir: "migrations", n: 1, set: map[string]bool{}}
	global := flag.NewFlagSet("migrate", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage); global.PrintDefaults() }
	o.common(global)
	global.StringVar(&o.dir, "dir", o.dir, "migrations `directory` written by new")
	if err := global.Parse(args); err != nil {
		return err
	}
	global.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if global.NArg() == 0 {
		global.Usage()
		return errors.New("no command given")
	}
	cmd, rest := global.Arg(0), global.Args()[1:]

	fs := flag.NewFlagSet("migrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.common(fs)
	wantArgs := 0
	switch cmd {
	case "up", "status", "redo":
	case "down":
		fs.IntVar(&o.n, "n", o.n, "number of migrations to roll back")
		fs.BoolVar(&o.all, "all", false, "roll back every migration")
	case "new":
		fs.StringVar(&o.dir, "dir", o.dir, "migrations `directory`")
		wantArgs = 1
	default:
		global.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() != wantArgs {
		for _, a := range fs.Args()[min(1, fs.NArg()):] {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("%s: flag %s after the arguments: flags come first, e.g. migrate %s -dir migrations NAME", cmd, a, cmd)
			}
		}
		if cmd == "new" {
			return errors.New("new: want exactly one NAME, e.g. migrate new add_scores")
		}
		return fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	}

	if cmd == "new" {
		return newMigration(o.dir, fs.Arg(0), stdout)
	}

	source, rawURL, err := resolveURL(o.config, o.set["config"], o.env, getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "migrate: using %s: %s\n", source, database.MaskURL(rawURL))
	db, err := database.Open(ctx, rawURL)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	defer db.Close()

	switch cmd {
	case "up":
		n, err := migrations.Up(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, appliedMessage(n))
	case "down":
		var n int
		if o.all {
			n, err = migrations.DownAll(ctx, db)
		} else {
			n, err = migrations.Down(ctx, db, o.n)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrate: rolled back %d %s\n", n, plural(n, "migration"))
	case "redo":
		id, err := migrations.Redo(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrate: redid %s\n", id)
	case "status":
		recs, err := migrations.Status(ctx, db)
		if err != nil {
			return err
		}
		return printStatus(stdout, recs)
	}
	return nil
}

func appliedMessage(n int) string {
	if n == 0 {
		return "migrate: applied 0 migrations, the database is up to date"
	}
	return fmt.Sprintf("migrate: applied %d %s", n, plural(n, "migration"))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func printStatus(w io.Writer, recs []migrations.Record) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MIGRATION\tAPPLIED AT")
	for _, r := range recs {
		state := "pending"
		if r.Applied() {
			state = r.AppliedAt.UTC().Format(time.DateTime + " UTC")
		}
		if r.Unknown {
			state += " (not in this binary)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", r.ID, state)
	}
	return tw.Flush()
}

// Sources of the database URL, as printed.
const (
	envMigrateURL = "TOKENLYSIS_MIGRATE_DATABASE_URL"
	envAppURL     = "TOKENLYSIS_DATABASE_URL"
	envDataDir    = "TOKENLYSIS_DATA_DIR"
)

// resolveURL picks the database URL (see the package documentation) and
// says where it came from.
func resolveURL(configPath string, configExplicit bool, envName string, getenv func(string) string) (source, rawURL string, err error) {
	for _, name := range []string{envMigrateURL, envAppURL} {
		if u := strings.TrimSpace(getenv(name)); u != "" {
			return name, u, nil
		}
	}

	entry, err := readDBConfig(configPath, configExplicit, envName)
	if err != nil {
		return "", "", err
	}
	if entry != nil {
		source := fmt.Sprintf("%s environment %q", configPath, envName)
		u := expandDataSource(entry.DataSource, getenv)
		if err := checkEntry(entry, envName, u); err != nil {
			return "", "", fmt.Errorf("%s: %w", configPath, err)
		}
		if u != "" {
			return source, u, nil
		}
	}

	dataDir, err := filepath.Abs(cmp.Or(strings.TrimSpace(getenv(envDataDir)), "./var"))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", envDataDir, err)
	}
	return "default (" + envDataDir + "/tokenlysis.db)", database.SQLiteURL(filepath.Join(dataDir, "tokenlysis.db")), nil
}

// dbEnv is one environment of a dbconfig.yml, in rubenv/sql-migrate's format.
type dbEnv struct {
	Dialect    string `yaml:"dialect"`
	DataSource string `yaml:"datasource"`
	Dir        string `yaml:"dir"`
	Table      string `yaml:"table"`
}

// readDBConfig returns the envName entry of the file at path; nil when the
// file does not exist and was not named explicitly.
func readDBConfig(path string, explicit bool, envName string) (*dbEnv, error) {
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var envs map[string]*dbEnv
	if err := yaml.Unmarshal(body, &envs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	entry := envs[envName]
	if entry == nil {
		return nil, fmt.Errorf("%s: no environment %q", path, envName)
	}
	return entry, nil
}

// expandDataSource expands ${VAR} and $VAR references from getenv.
func expandDataSource(ds string, getenv func(string) string) string {
	return strings.TrimSpace(os.Expand(ds, getenv))
}

// checkEntry checks a dbconfig.yml entry against the URL it expanded to
// ("" when it expanded to nothing).
func checkEntry(e *dbEnv, envName, rawURL string) error {
	var want database.Dialect
	switch e.Dialect {
	case "":
	case "sqlite3", "sqlite":
		want = database.SQLite
	case "postgres", "postgresql", "pgx":
		want = database.Postgres
	default:
		return fmt.Errorf("environment %q: unsupported dialect %q (want sqlite3 or postgres)", envName, e.Dialect)
	}
	if e.Table != "" && e.Table != migrations.TableName {
		return fmt.Errorf("environment %q: table %q: this tool records migrations in %s only", envName, e.Table, migrations.TableName)
	}
	if rawURL == "" {
		if want == database.Postgres {
			return fmt.Errorf("environment %q: datasource %q expands to nothing; set %s (a postgres environment never falls back to the local SQLite file)", envName, e.DataSource, envMigrateURL)
		}
		return nil
	}
	cfg, err := database.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("environment %q: %w", envName, err)
	}
	if want != "" && cfg.Dialect != want {
		return fmt.Errorf("environment %q: dialect %s does not match the datasource %s", envName, e.Dialect, database.MaskURL(rawURL))
	}
	return nil
}

// migrationName is what `new` accepts: lowercase words joined by underscores.
var migrationName = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

// migrationFile matches NNN_name.sql.
var migrationFile = regexp.MustCompile(`^(\d+)_.*\.sql$`)

var templates = map[database.Dialect]string{
	database.SQLite: `-- %s (SQLite). Keep in step with ../postgres/%s.

-- +migrate Up

-- +migrate Down
`,
	database.Postgres: `-- %s (PostgreSQL). Keep in step with ../sqlite/%s.

-- +migrate Up

-- +migrate Down
`,
}

// newMigration writes dir/sqlite/NNN_name.sql and dir/postgres/NNN_name.sql
// with the next number after the highest found in either directory.
func newMigration(dir, name string, stdout io.Writer) error {
	if !migrationName.MatchString(name) {
		return tokenlysis.Errorf(tokenlysis.EINVALID, "new: name %q: use lowercase letters, digits and underscores, e.g. add_scores", name)
	}
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("new: no migrations directory %s (run from the repository root or pass -dir)", dir)
	}
	dialects := []database.Dialect{database.SQLite, database.Postgres}
	next := 1
	for _, d := range dialects {
		entries, err := os.ReadDir(filepath.Join(dir, string(d)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("new: %w", err)
		}
		for _, e := range entries {
			if m := migrationFile.FindStringSubmatch(e.Name()); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil && n >= next {
					next = n + 1
				}
			}
		}
	}
	file := fmt.Sprintf("%03d_%s.sql", next, name)
	var written []string
	for _, d := range dialects {
		sub := filepath.Join(dir, string(d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("new: %w", err)
		}
		path := filepath.Join(sub, file)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, templates[d], strings.TrimSuffix(file, ".sql"), file)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			return fmt.Errorf("new: %w", err)
		}
		written = append(written, path)
	}
	for _, p := range written {
		fmt.Fprintf(stdout, "migrate: created %s\n", p)
	}
	return nil
}
