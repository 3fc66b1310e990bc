package authz

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

//go:embed model.conf
var modelText string

//go:embed policy.csv
var defaultPolicy []byte

// Roles known to the default policy.
const (
	RoleAdmin   = "admin"
	RoleAnalyst = "analyst"
	RoleUser    = "user"
)

// Permission is an action on an object, as the policy names them.
type Permission struct {
	Object string
	Action string
}

// String returns "object:action".
func (p Permission) String() string { return p.Object + ":" + p.Action }

// Permissions of the default policy, for the API's route table.
var (
	// ScoresRead: read scores and score streams (user).
	ScoresRead = Permission{"scores", "read"}
	// JobsSubmit: submit general jobs such as the system:probe canary (user).
	JobsSubmit = Permission{"jobs", "submit"}
	// JobsRead: read one's own jobs (user).
	JobsRead = Permission{"jobs", "read"}
	// AnalyticsSubmit: submit analytics jobs: recalculation, ingestion,
	// imports (analyst).
	AnalyticsSubmit = Permission{"analytics", "submit"}
	// UsersManage: manage users (admin).
	UsersManage = Permission{"users", "manage"}
	// SchedulesManage: manage periodic job schedules (admin).
	SchedulesManage = Permission{"schedules", "manage"}
	// UploadsSign: issue signed upload URLs (admin).
	UploadsSign = Permission{"uploads", "sign"}
	// MetricsRead: read operational metrics (admin).
	MetricsRead = Permission{"metrics", "read"}
	// JobsReadAll: see and cancel everyone's jobs (admin).
	JobsReadAll = Permission{"jobs", "read_all"}
	// QueuesManage: the queue dashboard (asynqmon) (admin).
	QueuesManage = Permission{"queues", "manage"}
)

// Permissions returns every permission the program asks about: a policy
// that grants another one has a typo.
func Permissions() []Permission {
	return []Permission{ScoresRead, JobsSubmit, JobsRead, AnalyticsSubmit, UsersManage,
		SchedulesManage, UploadsSign, MetricsRead, JobsReadAll, QueuesManage}
}

// Config configures an Enforcer.
type Config struct {
	// PolicyPath, when set, names a policy file (Casbin CSV: "p, role,
	// object, action" and "g, role, inherited role" lines, # comments)
	// that replaces the embedded default policy.
	PolicyPath string
}

// Enforcer answers authorization questions. It is safe for concurrent use.
type Enforcer struct {
	casbin *casbin.SyncedEnforcer

	// decisions remembers Casbin's answer per role and permission: the
	// policy never changes after New, and the API asks on every request.
	// Role names come from verified tokens; the cache stops growing at
	// maxDecisions entries all the same.
	decisions sync.Map // decisionKey → bool
	cached    atomic.Int64
}

type decisionKey struct {
	role string
	perm Permission
}

const maxDecisions = 4096

// New returns an Enforcer over the embedded model and either the embedded
// policy or the file cfg.PolicyPath. A policy that cannot be read, has a
// malformed line (the error names the file and line) or grants nothing is
// an error.
func New(cfg Config) (*Enforcer, error) {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("authz: model: %w", err)
	}
	src := &policySource{name: "embedded policy.csv", data: defaultPolicy}
	if cfg.PolicyPath != "" {
		data, err := os.ReadFile(cfg.PolicyPath)
		if err != nil {
			return nil, fmt.Errorf("authz: policy: %w", err)
		}
		src = &policySource{name: cfg.PolicyPath, data: data}
	}
	e, err := casbin.NewSyncedEnforcer(m, src)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return &Enforcer{casbin: e}, nil
}

// Allowed reports whether any of roles grants p. No roles, or only roles
// the policy does not know, grant nothing.
func (e *Enforcer) Allowed(roles []string, p Permission) bool {
	for _, role := range roles {
		if role == "" {
			continue
		}
		if e.allowed(role, p) {
			return true
		}
	}
	return false
}

func (e *Enforcer) allowed(role string, p Permission) bool {
	key := decisionKey{role, p}
	if ok, hit := e.decisions.Load(key); hit {
		return ok.(bool)
	}
	// Enforce fails only on a broken model, which the embedded one is not;
	// a failure denies (and is not remembered).
	ok, err := e.casbin.Enforce(role, p.Object, p.Action)
	if err != nil {
		return false
	}
	if e.cached.Load() < maxDecisions {
		if _, loaded := e.decisions.LoadOrStore(key, ok); !loaded {
			e.cached.Add(1)
		}
	}
	return ok
}

// policySource is a read-only Casbin adapter over policy text. Unlike
// Casbin's string adapter (which drops bad lines silently) and file adapter
// (which reports them without a line number, or panics on an empty rule
// type), it refuses any malformed line with its file and line number.
type policySource struct {
	name string
	data []byte
}

var _ persist.Adapter = (*policySource)(nil)

// ruleFields returns the number of fields after the rule type for the rule
// types of model.conf.
func ruleFields(ptype string) (int, bool) {
	switch ptype {
	case "p":
		return 3, true // role, object, action
	case "g":
		return 2, true // role, inherited role
	}
	return 0, false
}

// LoadPolicy implements persist.Adapter.
func (s *policySource) LoadPolicy(m model.Model) error {
	sc := bufio.NewScanner(bytes.NewReader(s.data))
	rules := 0
	known := map[Permission]bool{}
	for _, p := range Permissions() {
		known[p] = true
	}
	granted := map[string]bool{}     // roles a p rule grants something
	parents := map[string][]string{} // role → the roles it inherits (g)
	inherited := map[string]int{}    // role → the first line that inherits it
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rule, err := parseRule(line)
		if err != nil {
			return fmt.Errorf("policy %s line %d: %w", s.name, n, err)
		}
		switch rule[0] {
		case "p":
			if p := (Permission{rule[2], rule[3]}); !known[p] {
				return fmt.Errorf("policy %s line %d: unknown permission %q (object %q, action %q); the known ones are %s",
					s.name, n, p, p.Object, p.Action, permissionList())
			}
			granted[rule[1]] = true
		case "g":
			parents[rule[1]] = append(parents[rule[1]], rule[2])
			if _, ok := inherited[rule[2]]; !ok {
				inherited[rule[2]] = n
			}
		}
		if err := persist.LoadPolicyArray(rule, m); err != nil {
			return fmt.Errorf("policy %s line %d: %w", s.name, n, err)
		}
		rules++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("policy %s: %w", s.name, err)
	}
	if rules == 0 {
		return fmt.Errorf("policy %s: no rules (it would deny everything)", s.name)
	}
	byLine := slices.SortedFunc(maps.Keys(inherited), func(a, b string) int { return inherited[a] - inherited[b] })
	for _, role := range byLine {
		if n := inherited[role]; !grantsSomething(role, granted, parents, map[string]bool{}) {
			return fmt.Errorf("policy %s line %d: role %q is inherited but grants nothing: no p rule gives it, or a role it inherits, a permission", s.name, n, role)
		}
	}
	return nil
}

// grantsSomething reports whether a p rule grants role, or a role it
// inherits (through any number of g rules), a permission. seen breaks
// cycles (g, a, b with g, b, a grants nothing).
func grantsSomething(role string, granted map[string]bool, parents map[string][]string, seen map[string]bool) bool {
	if granted[role] {
		return true
	}
	if seen[role] {
		return false
	}
	seen[role] = true
	for _, p := range parents[role] {
		if grantsSomething(p, granted, parents, seen) {
			return true
		}
	}
	return false
}

func permissionList() string {
	var names []string
	for _, p := range Permissions() {
		names = append(names, p.String())
	}
	return strings.Join(names, ", ")
}

// parseRule splits a CSV policy line and checks its shape.
func parseRule(line string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(line))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		return nil, fmt.Errorf("column %d: %w", pe.Column, pe.Err)
	} else if err != nil {
		return nil, err
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	want, ok := ruleFields(fields[0])
	if !ok {
		return nil, fmt.Errorf("rule type %q: want p (role, object, action) or g (role, inherited role)", fields[0])
	}
	if got := len(fields) - 1; got != want {
		return nil, fmt.Errorf("%s rule has %d fields, want %d", fields[0], got, want)
	}
	for i, f := range fields {
		if f == "" {
			return nil, fmt.Errorf("%s rule: field %d is empty", fields[0], i)
		}
	}
	return fields, nil
}

var errReadOnly = errors.New("authz: the policy is read-only")

// SavePolicy implements persist.Adapter; the policy is read-only.
func (s *policySource) SavePolicy(model.Model) error { return errReadOnly }

// AddPolicy implements persist.Adapter; the policy is read-only.
func (s *policySource) AddPolicy(string, string, []string) error { return errReadOnly }

// RemovePolicy implements persist.Adapter; the policy is read-only.
func (s *policySource) RemovePolicy(string, string, []string) error { return errReadOnly }

// RemoveFilteredPolicy implements persist.Adapter; the policy is read-only.
func (s *policySource) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
}
