package tasks

import (
	"encoding/json"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// TestSpecsValidate checks each job type's params validation: canonical
// JSON for good params, an EINVALID naming the field for bad ones.
func TestSpecsValidate(t *testing.T) {
	reg, err := job.NewRegistry(Specs()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ, params string
		field       string // "" = valid
		want        string // canonical params when valid ("" = not checked)
	}{
		{TypeProbe, `{"steps":2}`, "", `{"steps":2,"step_ms":0}`},
		{TypeProbe, `{"steps":2,"fail_at":0}`, "params.fail_at", ""},
		{TypeProbe, `{"steps":119,"step_ms":60000}`, "", ""},               // 1 h 59 min: a minute left for the reports
		{TypeProbe, `{"steps":120,"step_ms":60000}`, "params.step_ms", ""}, // 2 h: the timeout would end it
		{TypeProbe, `{"steps":10000,"step_ms":715}`, "params.step_ms", ""}, // 1 h 59 min 10 s
		{TypeProbe, `{"Steps":2}`, "params.Steps", ""},                     // wrong case
		{TypeProbe, `{"steps":2,"steps":3}`, "params.steps", ""},           // given twice
		{TypeRecalculate, `{}`, "", `{}`},
		{TypeRecalculate, `{"coins":["bitcoin"],"since":"2024-01-01"}`, "", `{"coins":["bitcoin"],"since":"2024-01-01"}`},
		{TypeRecalculate, `{"coins":[]}`, "params.coins", ""},
		{TypeRecalculate, `{"coins":[""]}`, "params.coins[0]", ""},
		{TypeRecalculate, `{"since":"01/02/2024"}`, "params.since", ""},
		{TypeRecalculate, `{"scope":"all"}`, "params.scope", ""},
		{TypeMarketIngest, `{"limit":250}`, "", `{"limit":250}`},
		{TypeMarketIngest, `{"limit":-1}`, "params.limit", ""},
		{TypeMarketHistory, `{}`, "", `{"days":"max"}`},
		{TypeMarketHistory, `{"days":"30"}`, "", `{"days":"30"}`},
		{TypeMarketHistory, `{"days":"forever"}`, "params.days", ""},
		{TypeSentimentFNG, `{"limit":30}`, "", `{"limit":30}`},
		{TypeSentimentFNG, `{"limit":"30"}`, "params.limit", ""},
		{TypeMarketImport, `{"path":"btc.csv","coin":"bitcoin"}`, "", ""},
		{TypeMarketImport, `{"coin":"bitcoin"}`, "params.path", ""},
		{TypeMarketImport, `{"path":"btc.csv"}`, "params.coin", ""},
	} {
		spec, err := reg.Lookup(tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		got, err := spec.Validate(json.RawMessage(tc.params))
		if tc.field != "" {
			if tokenlysis.ErrorCode(err) != tokenlysis.EINVALID || tokenlysis.ErrorField(err) != tc.field {
				t.Errorf("%s %s: err %v, want invalid %s", tc.typ, tc.params, err, tc.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.typ, tc.params, err)
		} else if tc.want != "" && string(got) != tc.want {
			t.Errorf("%s %s: canonical %s, want %s", tc.typ, tc.params, got, tc.want)
		}
	}
}

// TestRecalculationDedupeKey: same scope, same key; another scope, another.
func TestRecalculationDedupeKey(t *testing.T) {
	key := RecalculateSpec().DedupeKey
	a := key(json.RawMessage(`{"coins":["b","a"]}`))
	if a != key(json.RawMessage(`{"coins":["a","b"]}`)) {
		t.Fatal("the same coins in another order make another scope")
	}
	if a == key(json.RawMessage(`{}`)) || a == key(json.RawMessage(`{"coins":["a","b"],"since":"2024-01-01"}`)) {
		t.Fatal("different scopes share a dedupe key")
	}
}
