package api

import (
	"net/http"
	"net/mail"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

type userBody struct {
	Email    string `json:"email"`
	FullName string `json:"full_name"`
}

func (s *Server) createUser(c *gin.Context) {
	var body userBody
	if err := s.decodeJSON(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	email := strings.TrimSpace(body.Email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > 254 {
		s.writeError(c, tokenlysis.FieldErrorf("email", "Must be a valid email address."))
		return
	}
	if len(body.FullName) > 200 {
		s.writeError(c, tokenlysis.FieldErrorf("full_name", "At most 200 characters."))
		return
	}
	u := tokenlysis.User{Email: strings.ToLower(email), FullName: strings.TrimSpace(body.FullName)}
	if err := s.store.CreateUser(c.Request.Context(), &u); err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Location", "/api/users/"+strconv.FormatInt(u.ID, 10))
	c.JSON(http.StatusCreated, u)
}

type userList struct {
	Items      []tokenlysis.User `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func (s *Server) listUsers(c *gin.Context) {
	limit, err := queryInt(c, "limit", 50, 1, 200)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var after int64
	if v := c.Query("cursor"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			s.writeError(c, tokenlysis.FieldErrorf("cursor", "Must be a cursor returned by this endpoint."))
			return
		}
	}
	users, err := s.store.ListUsers(c.Request.Context(), after, limit+1)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := userList{Items: users}
	if len(users) > limit {
		out.Items = users[:limit]
		out.NextCursor = strconv.FormatInt(users[limit-1].ID, 10)
	}
	c.JSON(http.StatusOK, out)
}

// me returns the caller's identity as the API sees it.
func (s *Server) me(c *gin.Context) {
	c.JSON(http.StatusOK, principal(c))
}
