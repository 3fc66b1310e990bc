// Package scripts_test tests the shell functions that start.sh and
// test.sh share (services.sh).
package scripts_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/database"
)

// svc_redact hides what database.MaskURL hides, and prints the same: the
// scripts print URLs that the programs print too.
func TestRedactAgreesWithMaskURL(t *testing.T) {
	for _, c := range []struct{ url, secret string }{
		{"postgres://app:s3cret@db:5432/x?sslmode=disable", "s3cret"},
		{"postgres://app:pa/ss@db/x", "pa/ss"},
		{"postgres://app:pa?ss@127.0.0.1:1/x", "pa?ss"},
		{"redis://:p@ss@h/0", "p@ss"},
		{"redis://user:pw@127.0.0.1:6379/3", "pw"},
		{"postgres://db/x?user=app&password=QSECRET&sslmode=disable", "QSECRET"},
		{"postgres://db/x?sslmode=require&sslpassword=KEYPASS", "KEYPASS"},
		{"postgres://db/x?%70assword=ENCPW", "ENCPW"},
		{"host=db user=app password = secretkv dbname=x", "secretkv"},
		{`host=db password='a b\' c d' dbname=x`, "c d"},
		{"host=db password=SECRET5&x dbname=x", "&x"},
		{"redis://127.0.0.1:6379/0", ""},
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", ""},
		{"sqlite:////srv/data/tokenlysis.db", ""},
	} {
		out, err := exec.Command("bash", "-c", `source ./services.sh && svc_redact "$1"`, "_", c.url).Output()
		if err != nil {
			t.Fatalf("svc_redact %q: %v", c.url, err)
		}
		got := strings.TrimSuffix(string(out), "\n")
		if c.secret != "" && strings.Contains(got, c.secret) {
			t.Errorf("svc_redact %q = %q: the password shows", c.url, got)
		}
		if want := database.MaskURL(c.url); got != want {
			t.Errorf("svc_redact %q = %q, MaskURL gives %q", c.url, got, want)
		}
	}
}
