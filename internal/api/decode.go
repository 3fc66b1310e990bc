package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// decodeJSON strictly decodes the request body into v: a JSON object, no
// unknown fields, no trailing data, at most MaxBodyBytes.
// Errors: EMALFORMED (naming the field where there is one), ETOOLARGE.
func (s *Server) decodeJSON(c *gin.Context, v any) error {
	// curl -d sends application/x-www-form-urlencoded unless told
	// otherwise; the body is still read as JSON then.
	switch ct := c.ContentType(); {
	case ct == "", ct == "application/json", strings.HasSuffix(ct, "+json"), ct == "application/x-www-form-urlencoded":
	default:
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: "Content-Type", Message: "Content-Type must be application/json."}
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return nil
	}
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return tokenlysis.Errorf(tokenlysis.ETOOLARGE, "The request body exceeds %d bytes.", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Message: "The request body is empty; a JSON object is expected."}
	case errors.As(err, &typeErr):
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: typeErr.Field, Message: "Must be of type " + typeErr.Type.String() + "."}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Message: "The request body is not valid JSON: " + err.Error() + "."}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: name, Message: "Unknown field."}
	default:
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Message: "The request body is not a valid JSON object: " + err.Error() + "."}
	}
}
