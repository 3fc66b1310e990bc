package scripts_test

import (
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// start.sh waits TOKENLYSIS_SHUTDOWN_TIMEOUT (plus 5 s) for the api and
// the worker to stop before it kills them, so it must read every duration
// the programs accept as they do. It read only whole numbers of h, m, s
// and ms: with 1.5m it waited 35 s and killed the programs in the middle
// of their 90 s shutdown.
func TestStartScriptReadsDurationsAsGoDoes(t *testing.T) {
	script := `eval "$(sed -n '/^duration_secs() {/,/^}/p' ../start.sh)"; for d in "$@"; do printf '%s\n' "$(duration_secs "$d")"; done`
	valid := []string{"30s", "2m", "1m30s", "1.5m", "2m30.5s", "2us", "3µs", "250ms", "1h", "0", ".5s", "1h2m3.5s", "100ns", "1.h", "90m"}
	invalid := []string{"bogus", "5", "", "1d", "-1s", "1 s"}
	out, err := exec.Command("bash", append([]string{"-c", script, "_"}, append(valid, invalid...)...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(valid)+len(invalid) {
		t.Fatalf("%d answers for %d durations: %q", len(got), len(valid)+len(invalid), got)
	}
	for i, d := range valid {
		pd, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("Go refuses %q: %v", d, err)
		}
		if want := strconv.Itoa(int(math.Ceil(pd.Seconds()))); got[i] != want {
			t.Errorf("duration_secs %q = %q, want %s", d, got[i], want)
		}
	}
	for i, d := range invalid {
		if g := got[len(valid)+i]; g != "" {
			t.Errorf("duration_secs %q = %q, want nothing", d, g)
		}
	}
}
