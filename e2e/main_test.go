package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// binDir holds the api, worker and migrate binaries built by TestMain.
var binDir string

// bin returns the path of a binary built by TestMain.
func bin(name string) string { return filepath.Join(binDir, name) }

// minParallel is how many tests run at once unless -parallel says
// otherwise. These tests spend their time waiting (on asynq's recoverer,
// on outages), not computing, so GOMAXPROCS (2 here) would only make the
// package slower: the two minute-long worker-crash subtests must overlap.
const minParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !explicit && p != nil {
		if n, err := strconv.Atoi(p.Value.String()); err == nil && n < minParallel {
			p.Value.Set(strconv.Itoa(minParallel))
		}
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tokenlysis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The test runs in e2e/; the module root is its parent.
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/... failed: %v\n%s", err, out)
		return 1
	}
	for _, name := range []string{"api", "worker", "migrate"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/... did not produce %s: %v\n", name, err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}
