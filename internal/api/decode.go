package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/strictjson"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// decodeJSON strictly decodes the request body into v: a JSON object, no
// unknown fields, no trailing data, at most MaxBodyBytes.
// Errors: EMALFORMED (naming the field where there is one), ETOOLARGE,
// EMEDIATYPE.
func (s *Server) decodeJSON(c *gin.Context, v any) error {
	// curl -d sends application/x-www-form-urlencoded unless told
	// otherwise; the body is still read as JSON then. Media types are
	// case-insensitive.
	switch ct := strings.ToLower(c.ContentType()); {
	case ct == "", ct == "application/json", strings.HasSuffix(ct, "+json"), ct == "application/x-www-form-urlencoded":
	default:
		return &tokenlysis.Error{Code: tokenlysis.EMEDIATYPE, Field: "Content-Type", Message: "Content-Type must be application/json."}
	}
	tooLarge := func() error {
		return tokenlysis.Errorf(tokenlysis.ETOOLARGE, "The request body exceeds %d bytes.", s.cfg.MaxBodyBytes)
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		return tooLarge()
	}
	err := strictjson.Decode(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes), v)
	var maxErr *http.MaxBytesError
	var decErr *strictjson.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &maxErr):
		return tooLarge()
	case errors.As(err, &decErr):
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: decErr.Field, Message: decErr.Message}
	default:
		return &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Message: "The request body is not a valid JSON object: " + err.Error() + "."}
	}
}
