package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/strictjson"
)

type inner struct {
	N int `json:"n"`
}

type doc struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Ratio float64           `json:"ratio"`
	On    bool              `json:"on"`
	Tags  []string          `json:"tags"`
	Inner inner             `json:"inner"`
	Meta  map[string]string `json:"meta"`
	Limit *uint8            `json:"limit"`
}

func TestDecodeAccepts(t *testing.T) {
	var d doc
	err := strictjson.Decode(strings.NewReader(`{"name":"a","count":2,"ratio":0.5,"on":true,"tags":["x"],"inner":{"n":3},"meta":{"k":"v"}}`+"\n"), &d)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.Name != "a" || d.Count != 2 || d.Ratio != 0.5 || !d.On || len(d.Tags) != 1 || d.Inner.N != 3 || d.Meta["k"] != "v" {
		t.Fatalf("decoded %+v", d)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct {
		name, body  string
		kind        strictjson.Kind
		field, want string // want: the message, exactly
	}{
		{"empty", "", strictjson.Empty, "", "A JSON object is expected; the document is empty."},
		{"blank", "  \n", strictjson.Empty, "", "A JSON object is expected; the document is empty."},
		{"syntax", `{"name":`, strictjson.Syntax, "", "Not valid JSON: unexpected end of the document."},
		{"bad character", `{"name" 1}`, strictjson.Syntax, "", "Not valid JSON: invalid character '1' after object key (at byte 9)."},
		{"array document", `[1]`, strictjson.Type, "", "Must be an object, not an array."},
		{"string document", `"x"`, strictjson.Type, "", "Must be an object, not a string."},
		{"string for integer", `{"count":"2"}`, strictjson.Type, "count", "Must be an integer, not a string."},
		{"fraction for integer", `{"count":1.5}`, strictjson.Type, "count", "Must be an integer, not 1.5."},
		{"out of range", `{"limit":300}`, strictjson.Type, "limit", "Must be an integer from 0 to 255, not 300."},
		{"object for string", `{"name":{}}`, strictjson.Type, "name", "Must be a string, not an object."},
		{"number for bool", `{"on":1}`, strictjson.Type, "on", "Must be true or false, not a number."},
		{"string for number", `{"ratio":"x"}`, strictjson.Type, "ratio", "Must be a number, not a string."},
		{"object for array", `{"tags":{}}`, strictjson.Type, "tags", "Must be an array, not an object."},
		{"nested", `{"inner":{"n":true}}`, strictjson.Type, "inner.n", "Must be an integer, not true or false."},
		{"array element", `{"tags":[1]}`, strictjson.Type, "tags", "Must be a string, not a number."},
		// encoding/json names a map's value by the map's field, and an
		// unknown field by its key alone (the package doc says so).
		{"map value", `{"meta":{"k":1}}`, strictjson.Type, "meta", "Must be a string, not a number."},
		{"unknown field", `{"nope":1}`, strictjson.Unknown, "nope", "Unknown field."},
		{"unknown nested field", `{"inner":{"m":1}}`, strictjson.Unknown, "m", "Unknown field."},
		{"wrong case", `{"Name":"a"}`, strictjson.Unknown, "Name", `Unknown field; did you mean "name"?`},
		{"nested wrong case", `{"inner":{"N":1}}`, strictjson.Unknown, "inner.N", `Unknown field; did you mean "n"?`},
		{"duplicate key", `{"name":"a","count":1,"name":"b"}`, strictjson.Duplicate, "name", "Given twice in the same object."},
		{"duplicate nested key", `{"inner":{"n":1,"n":2}}`, strictjson.Duplicate, "inner.n", "Given twice in the same object."},
		{"duplicate map key", `{"meta":{"k":"v","k":"w"}}`, strictjson.Duplicate, "meta.k", "Given twice in the same object."},
		{"trailing object", `{"name":"a"}{"name":"b"}`, strictjson.Trailing, "", "Unexpected data after the JSON object."},
		{"trailing garbage", `{"name":"a"} x`, strictjson.Trailing, "", "Unexpected data after the JSON object."},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d doc
			err := strictjson.Decode(strings.NewReader(c.body), &d)
			var se *strictjson.Error
			if !errors.As(err, &se) {
				t.Fatalf("Decode(%s) = %v, want a *strictjson.Error", c.body, err)
			}
			if se.Kind != c.kind || se.Field != c.field || se.Message != c.want {
				t.Fatalf("Decode(%s) = {kind %v, field %q, %q}, want {kind %v, field %q, %q}", c.body, se.Kind, se.Field, se.Message, c.kind, c.field, c.want)
			}
		})
	}
}

func TestDecodePassesReaderErrorsThrough(t *testing.T) {
	// A body over http.MaxBytesReader's limit is the caller's to report.
	big := `{"name":"` + strings.Repeat("a", 100) + `"}`
	body := http.MaxBytesReader(httptest.NewRecorder(), readCloser{strings.NewReader(big)}, 10)
	var d doc
	err := strictjson.Decode(body, &d)
	var maxErr *http.MaxBytesError
	if !errors.As(err, &maxErr) {
		t.Fatalf("Decode over the limit = %v, want the reader's *http.MaxBytesError", err)
	}
	var se *strictjson.Error
	if errors.As(err, &se) {
		t.Fatalf("Decode over the limit = %v, a decoding error: want the reader's error alone", err)
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

type Base struct {
	ID string `json:"id"`
}

type withEmbedded struct {
	Base
	Extra struct {
		Base
	} `json:"extra"`
	Raw  json.RawMessage  `json:"raw"`
	PRaw *json.RawMessage `json:"praw"`
	Any  any              `json:"any"`
	List []inner          `json:"list"`
}

// The key checks follow encoding/json's names: promoted fields of embedded
// structs, map keys (exact, so "k" and "K" are two keys), and values of
// unknown shape, where only a duplicate is refused.
func TestDecodeKeyChecks(t *testing.T) {
	var d withEmbedded
	ok := `{"id":"a\\u0000","extra":{"id":"b"},"raw":{"X":1,"x":2,"s":"\"x\":1,\"x\":2"},"any":{"Y":[{"y":1}],"Z":[[],{},[{"y":1}]]},"list":[{"n":1},{"n":2}]}`
	if err := strictjson.Decode(strings.NewReader(ok), &d); err != nil || d.ID != `a\u0000` || d.Extra.ID != "b" {
		t.Fatalf("Decode(%s) = %v, %+v", ok, err, d)
	}
	// A json.RawMessage is left to whoever decodes it: a job's params are
	// checked by their own Decode, and refused with their own status.
	var r withEmbedded
	if err := strictjson.Decode(strings.NewReader(`{"raw":{"a":1,"a":"\u0000","b":[{"c":1,"c":2}]},"praw":{"a":1,"a":2},"id":"x"}`), &r); err != nil || r.ID != "x" {
		t.Fatalf("a RawMessage's contents were checked: %v", err)
	}
	var m doc
	if err := strictjson.Decode(strings.NewReader(`{"meta":{"k":"v","K":"w"}}`), &m); err != nil || len(m.Meta) != 2 {
		t.Fatalf("map keys in two cases: %v, %v", err, m.Meta)
	}
	for _, c := range []struct {
		body, field string
		kind        strictjson.Kind
	}{
		{`{"ID":"a"}`, "ID", strictjson.Unknown},
		{`{"extra":{"Id":"b"}}`, "extra.Id", strictjson.Unknown},
		{`{"list":[{"n":1},{"N":2}]}`, "list.1.N", strictjson.Unknown},
		{`{"any":{"a":1,"a":2}}`, "any.a", strictjson.Duplicate},
		{`{"any":[{"b":1,"b":1}]}`, "any.0.b", strictjson.Duplicate},
		{`{"id":"a","id":"a"}`, "id", strictjson.Duplicate},
		// Escapes and structure inside strings do not fool the scanner.
		{`{"any":{"k\"}{":1,"k\u0022}{":2}}`, `any.k"}{`, strictjson.Duplicate},
		{`{"i\u0064":"a","id":"b"}`, "id", strictjson.Duplicate},
		{` { "any" : [ [ ] , { } , "}" , 1.5e3 , true , null , { "z" : 1 , "z" : 2 } ] } `, "any.6.z", strictjson.Duplicate},
		{`{"any":{"a":{"\\":1},"b":{"\\":1,"\\":2}}}`, `any.b.\`, strictjson.Duplicate},
		// U+0000, which PostgreSQL cannot store, in a value or a key; an
		// escaped backslash before "u0000" is no NUL.
		{`{"id":"a\u0000b"}`, "id", strictjson.NUL},
		{`{"list":[{"n":1}],"any":["x",{"k":["\u0000"]}]}`, "any.1.k.0", strictjson.NUL},
		{`{"any":{"\u0000":1}}`, `any.\u0000`, strictjson.NUL},
		// Past 16 keys the keys seen go in a map.
		{`{"any":{` + manyKeys(20) + `,"k3":0}}`, "any.k3", strictjson.Duplicate},
		{`{"any":{` + manyKeys(16) + `,"k15":0}}`, "any.k15", strictjson.Duplicate},
	} {
		var d withEmbedded
		err := strictjson.Decode(strings.NewReader(c.body), &d)
		var se *strictjson.Error
		if !errors.As(err, &se) || se.Kind != c.kind || se.Field != c.field {
			t.Errorf("Decode(%s) = %v, want kind %v at %q", c.body, err, c.kind, c.field)
		}
	}
}

type benchParams struct {
	Steps  int  `json:"steps"`
	StepMS int  `json:"step_ms"`
	FailAt *int `json:"fail_at,omitempty"`
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(keys, ",")
}

// BenchmarkDecode decodes a probe's params, as every submission does.
func BenchmarkDecode(b *testing.B) {
	for b.Loop() {
		var p benchParams
		if err := strictjson.Decode(strings.NewReader(`{"steps":1,"step_ms":0}`), &p); err != nil {
			b.Fatal(err)
		}
	}
}

// hasDuplicate is the reference for the scanner: a walk with
// json.Decoder.Token that reports whether any object repeats a key.
func hasDuplicate(t *testing.T, data string) bool {
	dec := json.NewDecoder(strings.NewReader(data))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reference walk of %q: %v", data, err)
		}
		switch tok {
		case json.Delim('{'):
			seen, dup := map[string]bool{}, false
			for dec.More() {
				k, _ := dec.Token()
				dup = dup || seen[k.(string)]
				seen[k.(string)] = true
				dup = walk() || dup
			}
			dec.Token()
			return dup
		case json.Delim('['):
			dup := false
			for dec.More() {
				dup = walk() || dup
			}
			dec.Token()
			return dup
		}
		return false
	}
	return walk()
}

// hasNUL reports whether a decoded JSON value holds U+0000 in a string or
// a key.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case []any:
		return slices.ContainsFunc(v, hasNUL)
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// The byte scanner refuses U+0000 exactly when the document holds one,
// and finds a duplicate key exactly when the Token walk does,
// whatever the document.
func FuzzDecodeDuplicates(f *testing.F) {
	for _, seed := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `{"k\"":1,"k\u0022":2}`, `{"s":"{\"a\":1,\"a\":2}"}`, `{"a":[1,2,{"b":{}}],"b":null}`, `{"a":"\u0000"}`, `{"a":"\\u0000"}`, `{"\u0000":1,"\u0000":2}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var v map[string]any
		if json.Unmarshal([]byte(data), &v) != nil {
			return
		}
		nul := hasNUL(v)
		err := strictjson.Decode(strings.NewReader(data), &v)
		var se *strictjson.Error
		if gotNUL := errors.As(err, &se) && se.Kind == strictjson.NUL; gotNUL || nul {
			if gotNUL != nul {
				t.Fatalf("Decode(%q) = %v; a NUL in the document: %v", data, err, nul)
			}
			return
		}
		gotDup := errors.As(err, &se) && se.Kind == strictjson.Duplicate
		if err != nil && !gotDup {
			t.Fatalf("Decode(%q) = %v", data, err)
		}
		if want := hasDuplicate(t, data); gotDup != want {
			t.Fatalf("Decode(%q): duplicate %v (%v), the reference says %v", data, gotDup, err, want)
		}
	})
}
