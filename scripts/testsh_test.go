package scripts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// test.sh stops at once on TERM: it ends the Go step it is running and
// cleans up. Bash runs a trap only once the foreground command has ended,
// so test.sh used to wait for the whole test run (up to its 45 min
// timeout), with what it had started still up. A fake go on PATH stands
// for a long step: it sleeps on vet and writes its pid.
func TestTestScriptStopsOnTerm(t *testing.T) {
	// Under test.sh, TOKENLYSIS_TEST_*_URL name the services it provided,
	// and the inner test.sh only checks them.
	bin := t.TempDir()
	pidFile := filepath.Join(bin, "go.pid")
	fake := "#!/bin/sh\ncase $1 in\nversion) echo 'go version fake' ;;\n*) echo $$ > " + pidFile + "; exec sleep 60 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "../test.sh")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	var goPid int
	for deadline := time.Now().Add(20 * time.Second); goPid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the fake go vet never started:\n%s", out.String())
		}
		b, _ := os.ReadFile(pidFile)
		goPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
			t.Errorf("test.sh ended with %v, want exit 143", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("test.sh still runs 10 s after TERM:\n%s", out.String())
	}
	if err := syscall.Kill(goPid, 0); err == nil {
		t.Errorf("the go step (pid %d) outlived test.sh", goPid)
	}
	if !strings.Contains(out.String(), "[test] FAIL: go vet failed (exit 143") {
		t.Errorf("test.sh did not say how it ended:\n%s", out.String())
	}
	t.Logf("test.sh ended %s after TERM", time.Since(start).Round(time.Millisecond))
}
