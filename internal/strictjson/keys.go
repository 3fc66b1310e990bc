package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkKeys walks data, a JSON document that decoded into a value of type
// t, and refuses a key given twice in one object, or written in another
// case than the struct field it decoded into.
//
// It reads the bytes itself rather than through json.Decoder.Token, which
// allocates for every token: on a request body that made Decode four
// times slower. data is valid JSON (it decoded), which keeps the scanner
// small.
func checkKeys(data []byte, t reflect.Type) error {
	s := keyScanner{data: data}
	return s.value(t)
}

type keyScanner struct {
	data []byte
	i    int
	path []pathStep // to the value being read; spelt out for an error only
	raw  int        // > 0 inside a json.RawMessage: nothing is checked
}

// pathStep is one step of the path to a value: a key or an array index.
type pathStep struct {
	key   []byte
	index int // when key is nil
}

// at returns the dotted path of the value being read, then key if there
// is one.
func (s *keyScanner) at(key []byte) string {
	var b strings.Builder
	for i, p := range s.path {
		if i > 0 {
			b.WriteByte('.')
		}
		if p.key == nil {
			b.WriteString(strconv.Itoa(p.index))
		} else {
			b.Write(p.key)
		}
	}
	if key != nil {
		if len(s.path) > 0 {
			b.WriteByte('.')
		}
		b.Write(key)
	}
	return b.String()
}

func (s *keyScanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads the string at s.i (its opening quote) and returns its bytes
// between the quotes, whether they hold an escape, and whether one of
// those is \u0000 (JSON has no raw NUL: control characters are escaped).
func (s *keyScanner) str() (raw []byte, escaped, nul bool) {
	s.i++ // '"'
	start := s.i
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '\\':
			escaped = true
			if s.i+5 < len(s.data) && s.data[s.i+1] == 'u' && string(s.data[s.i+2:s.i+6]) == "0000" {
				nul = true
			}
			s.i += 2
			continue
		case '"':
			raw = s.data[start:s.i]
			s.i++
			return raw, escaped, nul
		}
		s.i++
	}
	return s.data[start:], escaped, nul
}

// errNUL is the error of a string holding U+0000, which PostgreSQL cannot
// store (in text or jsonb): refused on every engine alike.
func (s *keyScanner) errNUL(key []byte) error {
	return &Error{Kind: NUL, Field: s.at(key), Message: "Must not contain the NUL character (\\u0000)."}
}

// decodeKey returns the text of an object key as encoding/json reads it:
// escapes decoded, invalid UTF-8 replaced by U+FFFD.
func decodeKey(raw []byte) string {
	var k string
	_ = json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k) // valid: it decoded
	return k
}

// value reads one value of Go type t (nil: a type whose keys are not
// known, such as any or json.RawMessage) at s.path.
func (s *keyScanner) value(t reflect.Type) error {
	s.skipSpace()
	if s.i >= len(s.data) {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer && t.Elem() == rawMessage {
		t = t.Elem()
	}
	if t == rawMessage {
		// Left to whoever decodes it (a job's params, with their own
		// Decode and their own status code).
		s.raw++
		defer func() { s.raw-- }()
	}
	t = deref(t)
	switch s.data[s.i] {
	case '{':
		return s.object(t)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		s.i++
		for n := 0; ; n++ {
			s.skipSpace()
			if s.i >= len(s.data) || s.data[s.i] == ']' {
				s.i++
				return nil
			}
			if s.data[s.i] == ',' {
				s.i++
			}
			s.path = append(s.path, pathStep{index: n})
			err := s.value(elem)
			s.path = s.path[:len(s.path)-1]
			if err != nil {
				return err
			}
		}
	case '"':
		if _, _, nul := s.str(); nul && s.raw == 0 {
			return s.errNUL(nil)
		}
	default: // a number, true, false or null
		for s.i < len(s.data) && strings.IndexByte(",]} \t\n\r", s.data[s.i]) < 0 {
			s.i++
		}
	}
	return nil
}

func (s *keyScanner) object(t reflect.Type) error {
	var elem reflect.Type
	isStruct := t != nil && t.Kind() == reflect.Struct
	if t != nil && t.Kind() == reflect.Map {
		elem = t.Elem()
	}
	var small [16][]byte
	seen := small[:0]        // keys so far, as sent
	var many map[string]bool // instead, once there are more
	s.i++                    // '{'
	for {
		s.skipSpace()
		if s.i >= len(s.data) || s.data[s.i] == '}' {
			s.i++
			return nil
		}
		if s.data[s.i] == ',' {
			s.i++
			s.skipSpace()
		}
		raw, escaped, nul := s.str()
		if s.raw > 0 {
			s.skipSpace()
			s.i++ // ':'
			if err := s.value(nil); err != nil {
				return err
			}
			continue
		}
		if nul {
			return s.errNUL(raw)
		}
		if escaped || !utf8.Valid(raw) {
			raw = []byte(decodeKey(raw))
		}
		dup := false
		switch {
		case many != nil:
			dup = many[string(raw)]
			many[string(raw)] = true
		case slices.ContainsFunc(seen, func(k []byte) bool { return bytes.Equal(k, raw) }):
			dup = true
		case len(seen) < cap(seen):
			seen = append(seen, raw)
		default:
			many = map[string]bool{string(raw): true}
			for _, k := range seen {
				many[string(k)] = true
			}
		}
		if dup {
			return &Error{Kind: Duplicate, Field: s.at(raw), Message: "Given twice in the same object."}
		}
		vt := elem
		if isStruct {
			ft, ok := field(t, raw)
			if !ok {
				if name := foldField(t, string(raw)); name != "" {
					return &Error{Kind: Unknown, Field: s.at(raw), Message: fmt.Sprintf("Unknown field; did you mean %q?", name)}
				}
			}
			vt = ft
		}
		s.skipSpace()
		s.i++ // ':'
		s.path = append(s.path, pathStep{key: raw})
		err := s.value(vt)
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // keys of its own, or none known
	}
	return t
}

var (
	unmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rawMessage  = reflect.TypeFor[json.RawMessage]()
)

// jsonName is the JSON name of a struct field as encoding/json gives it,
// and whether it is an untagged embedded struct, whose fields are promoted.
func jsonName(f reflect.StructField) (name string, embedded bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, _, _ = strings.Cut(tag, ",")
	if f.Anonymous && name == "" {
		et := f.Type
		if et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		if et.Kind() == reflect.Struct {
			return "", true
		}
	}
	if !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, false
}

// field finds the field of struct type t that key names exactly, fields
// of t itself before promoted ones, and returns its type.
func field(t reflect.Type, key []byte) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _ := jsonName(f); name != "" && name == string(key) {
			return f.Type, true
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if _, embedded := jsonName(f); embedded {
			if et := deref(f.Type); et != nil {
				if ft, ok := field(et, key); ok {
					return ft, true
				}
			}
		}
	}
	return nil, false
}

// foldField returns the name of a field of t that key names in another
// case, or "".
func foldField(t reflect.Type, key string) string {
	for i := range t.NumField() {
		f := t.Field(i)
		name, embedded := jsonName(f)
		if embedded {
			if et := deref(f.Type); et != nil {
				if n := foldField(et, key); n != "" {
					return n
				}
			}
		} else if name != "" && strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}
