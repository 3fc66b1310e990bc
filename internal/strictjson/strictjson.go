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
	NUL                       // a string holding U+0000
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
