package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testBundle holds an enforcer over the embedded default policy.
type testBundle struct {
	enforcer *Enforcer
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	e, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testBundle{enforcer: e}
}

func writePolicy(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)

	userPerms := []Permission{ScoresRead, JobsSubmit, JobsRead}
	analystPerms := []Permission{AnalyticsSubmit}
	adminPerms := []Permission{UsersManage, SchedulesManage, UploadsSign, MetricsRead, JobsReadAll, QueuesManage}
	all := append(append(append([]Permission{}, userPerms...), analystPerms...), adminPerms...)
	in := func(p Permission, sets ...[]Permission) bool {
		for _, s := range sets {
			for _, q := range s {
				if q == p {
					return true
				}
			}
		}
		return false
	}

	tests := []struct {
		role    string
		allowed func(Permission) bool
	}{
		{RoleUser, func(p Permission) bool { return in(p, userPerms) }},
		{RoleAnalyst, func(p Permission) bool { return in(p, userPerms, analystPerms) }},
		{RoleAdmin, func(p Permission) bool { return in(p, userPerms, analystPerms, adminPerms) }},
		{"", func(Permission) bool { return false }},
		{"guest", func(Permission) bool { return false }},
		{"Admin", func(Permission) bool { return false }}, // role names are case-sensitive
		{"admin ", func(Permission) bool { return false }},
		{"*", func(Permission) bool { return false }},
	}
	for _, tt := range tests {
		for _, p := range all {
			t.Run(tt.role+"/"+p.String(), func(t *testing.T) {
				want := tt.allowed(p)
				if got := b.enforcer.Allowed([]string{tt.role}, p); got != want {
					t.Fatalf("Allowed(%q, %s) = %v, want %v", tt.role, p, got, want)
				}
			})
		}
	}

	// A few spelled out, so that a wrong table above cannot hide a hole.
	spelled := []struct {
		roles []string
		p     Permission
		want  bool
	}{
		{[]string{"user"}, Permission{"scores", "read"}, true},
		{[]string{"user"}, Permission{"analytics", "submit"}, false},
		{[]string{"analyst"}, Permission{"analytics", "submit"}, true},
		{[]string{"analyst"}, Permission{"jobs", "read_all"}, false},
		{[]string{"admin"}, Permission{"queues", "manage"}, true},
		{[]string{"admin"}, Permission{"scores", "read"}, true},
		{[]string{"admin"}, Permission{"scores", "write"}, false}, // not in the policy at all
		{[]string{"guest", "analyst"}, Permission{"analytics", "submit"}, true},
		{[]string{"offline_access", "user"}, Permission{"users", "manage"}, false},
		{nil, Permission{"scores", "read"}, false},
		{[]string{}, Permission{"scores", "read"}, false},
	}
	for _, s := range spelled {
		if got := b.enforcer.Allowed(s.roles, s.p); got != s.want {
			t.Errorf("Allowed(%q, %s) = %v, want %v", s.roles, s.p, got, s.want)
		}
	}
}

func TestPermissionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Permission
		want string
	}{
		{ScoresRead, "scores:read"},
		{JobsReadAll, "jobs:read_all"},
		{QueuesManage, "queues:manage"},
		{Permission{Object: "x", Action: "y"}, "x:y"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestOverridePolicy(t *testing.T) {
	t.Parallel()
	// Users may no longer submit jobs; analysts may read metrics; an
	// "auditor" role is introduced that inherits nothing.
	path := writePolicy(t, `# override
p, user, scores, read
p, user, jobs, read
p, analyst, analytics, submit
p, analyst, metrics, read
p, auditor, jobs, read_all
g, analyst, user
g, admin, analyst
`)
	e, err := New(Config{PolicyPath: path})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	def := setup(t).enforcer
	tests := []struct {
		role        string
		p           Permission
		def, custom bool
	}{
		{RoleUser, JobsSubmit, true, false},
		{RoleAnalyst, JobsSubmit, true, false},
		{RoleAnalyst, MetricsRead, false, true},
		{RoleAdmin, MetricsRead, true, true},
		{RoleAdmin, UsersManage, true, false},
		{"auditor", JobsReadAll, false, true},
		{"auditor", ScoresRead, false, false},
		{RoleUser, ScoresRead, true, true},
	}
	for _, tt := range tests {
		if got := def.Allowed([]string{tt.role}, tt.p); got != tt.def {
			t.Errorf("default: Allowed(%s, %s) = %v, want %v", tt.role, tt.p, got, tt.def)
		}
		if got := e.Allowed([]string{tt.role}, tt.p); got != tt.custom {
			t.Errorf("override: Allowed(%s, %s) = %v, want %v", tt.role, tt.p, got, tt.custom)
		}
	}
}

func TestMalformedPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string // in the error
	}{
		{"too few fields", "p, user, scores, read\np, admin, users\n", "line 2"},
		{"too many fields", "p, user, scores, read, extra\n", "line 1"},
		{"grouping too short", "p, user, scores, read\ng, admin\n", "line 2"},
		{"unknown rule type", "p, user, scores, read\n\nx, user, scores, read\n", "line 3"},
		{"empty type", ", user, scores, read\n", "line 1"},
		{"empty field", "p, user, , read\n", "line 1"},
		{"unbalanced quote", "p, \"user, scores, read\n", "line 1"},
		{"no rules", "# nothing but a comment\n\n", "no rules"},
		// Typos grant nothing, silently, unless refused.
		{"unknown object", "p, user, scores, read\np, admin, user, manage\n", `line 2: unknown permission "user:manage"`},
		{"unknown action", "p, user, scores, reads\n", `line 1: unknown permission "scores:reads"`},
		{"inherits a cycle that grants nothing", "p, user, scores, read\ng, admin, a\ng, a, b\ng, b, a\n", `role "a" is inherited but grants nothing`},
		{"inherits a role that grants nothing", "p, user, scores, read\ng, analyst, usr\ng, admin, usr\n", `line 2: role "usr" is inherited but grants nothing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writePolicy(t, tt.content)
			e, err := New(Config{PolicyPath: path})
			if err == nil {
				t.Fatalf("New accepted a malformed policy (enforcer %v)", e != nil)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q should name %s and say %q", err, path, tt.want)
			}
		})
	}

	_, err := New(Config{PolicyPath: filepath.Join(t.TempDir(), "missing.csv")})
	if err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Fatalf("missing file: %v", err)
	}
}

func BenchmarkAllowed(b *testing.B) {
	e := setup(b).enforcer
	roles := []string{"offline_access", "admin"}
	for b.Loop() {
		if !e.Allowed(roles, ScoresRead) {
			b.Fatal("admin denied scores:read")
		}
	}
}
