// Package strictjson decodes one JSON object into a Go value strictly (no
// unknown fields, no trailing data) and says what is wrong in the terms of
// the JSON a client sent: the dotted path of the field, and the JSON type
// it must have, never a Go type name.
//
// encoding/json names a misplaced value by its full path ("inner.n"), a
// map's value by the map's field, and an unknown field by its key alone,
// wherever it stands.
//
// Two things encoding/json lets through are refused, because a client
// that sends them means something the server would not do: a key given
// twice in one object (encoding/json keeps the last), and a struct field
// written in another case ("Type" for "type", which encoding/json takes
// as "type"). Both are named by their full path.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// Kind is what kind of problem an Error reports.
type Kind int

// Kinds of Error.
const (
	Empty     Kind = iota + 1 // no document at all
	Syntax                    // not JSON
	Type                      // a value of the wrong JSON type (or out of range)
	Unknown                   // a field the Go type does not have
	Trailing                  // more data after the object
	Duplicate                 // a key given twice in one object
)

// Error is a document that does not decode. Field is the dotted path of
// the offending field, "" for the document itself.
type Error struct {
	Kind    Kind
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Decode decodes the one JSON document r holds into v. A document that
// does not decode is an *Error; an error of r itself (such as
// http.MaxBytesError) is returned as it is, as is an error of a type's own
// UnmarshalJSON.
func Decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err // r failed
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describe(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
	case err == nil, isSyntax(err):
		return &Error{Kind: Trailing, Message: "Unexpected data after the JSON object."}
	default:
		return err
	}
	return checkKeys(data, reflect.TypeOf(v))
}

// checkKeys walks the document data, which decoded into a value of type t,
// and refuses a key given twice in one object, or written in another case
// than the struct field it decoded into.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walk(dec, t, "")
	if _, ok := err.(*Error); ok {
		return err
	}
	return nil // the document decoded, so the walk cannot fail otherwise
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

// walk reads one value from dec, which decodes into type t (nil: a type
// whose fields are not known, such as any or json.RawMessage), at path.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage || (t != nil && t.Kind() == reflect.Interface) {
		t = nil
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t == nil:
		case t.Kind() == reflect.Struct:
			fields = map[string]reflect.Type{}
			jsonFields(t, fields)
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			at := join(path, key)
			if seen[key] {
				return &Error{Kind: Duplicate, Field: at, Message: "Given twice in the same object."}
			}
			seen[key] = true
			vt := elem
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return &Error{Kind: Unknown, Field: at, Message: fmt.Sprintf("Unknown field; did you mean %q?", name)}
						}
					}
				}
				vt = ft
			}
			if err := walk(dec, vt, at); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, join(path, strconv.Itoa(i))); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields adds the JSON names of struct type t's fields to fields, with
// their types, as encoding/json names them: the tag's name, else the Go
// name; fields of an untagged embedded struct are promoted unless a
// shallower field has their name. A type with its own UnmarshalJSON maps
// to nil: its keys are its own.
func jsonFields(t reflect.Type, fields map[string]reflect.Type) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if reflect.PointerTo(ft).Implements(unmarshaler) || ft.Implements(unmarshaler) {
			ft = nil
		}
		fields[name] = ft
	}
	for _, et := range embedded {
		promoted := map[string]reflect.Type{}
		jsonFields(et, promoted)
		for name, ft := range promoted {
			if _, ok := fields[name]; !ok {
				fields[name] = ft
			}
		}
	}
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

func describe(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &Error{Kind: Empty, Message: "A JSON object is expected; the document is empty."}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Kind: Syntax, Message: "Not valid JSON: unexpected end of the document."}
	case errors.As(err, &syntaxErr):
		return &Error{Kind: Syntax, Message: fmt.Sprintf("Not valid JSON: %s (at byte %d).", syntaxErr.Error(), syntaxErr.Offset)}
	case errors.As(err, &typeErr):
		return &Error{Kind: Type, Field: typeErr.Field, Message: "Must be " + want(typeErr.Type, typeErr.Value) + ", not " + got(typeErr.Value) + "."}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			return err
		}
		return &Error{Kind: Unknown, Field: name, Message: "Unknown field."}
	default:
		return err
	}
}

// want is the JSON a Go type takes. An integer that does not fit (value
// "number 300" for a uint8) is told the type's range.
func want(t reflect.Type, value string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n, ok := strings.CutPrefix(value, "number "); ok && isInteger(n) {
			lo, hi := intRange(t)
			return "an integer from " + lo + " to " + hi
		}
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "another JSON value"
	}
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return true
	}
	_, err = strconv.ParseUint(s, 10, 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

func intRange(t reflect.Type) (lo, hi string) {
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "0", strconv.FormatUint(1<<bits-1, 10)
	}
	return strconv.FormatInt(-1<<(bits-1), 10), strconv.FormatInt(1<<(bits-1)-1, 10)
}

// got is the JSON value encoding/json found, from its Value: "string",
// "number", "number 1.5", "bool", "array", "object".
func got(value string) string {
	if n, ok := strings.CutPrefix(value, "number "); ok {
		return n
	}
	switch value {
	case "bool":
		return "true or false"
	case "array", "object":
		return "an " + value
	case "":
		return "this value"
	}
	return "a " + value
}
