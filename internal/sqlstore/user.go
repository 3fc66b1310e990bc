package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// CreateUser inserts u and sets its ID and CreatedAt.
// Errors: ECONFLICT when the email is taken.
func (s *Store) CreateUser(ctx context.Context, u *tokenlysis.User) error {
	u.CreatedAt = s.now()
	const q = `INSERT INTO users (email, full_name, created_at) VALUES (?, ?, ?) RETURNING id`
	err := s.db.QueryRowxContext(ctx, s.rebind(q), u.Email, u.FullName, u.CreatedAt).Scan(&u.ID)
	if database.IsUniqueViolation(err) {
		return &tokenlysis.Error{Code: tokenlysis.ECONFLICT, Field: "email", Message: "A user with this email already exists."}
	}
	return wrap("create user", err)
}

// ListUsers returns users ordered by ID, after the given ID, at most limit.
func (s *Store) ListUsers(ctx context.Context, afterID int64, limit int) ([]tokenlysis.User, error) {
	const q = `SELECT id, email, full_name, created_at FROM users WHERE id > ? ORDER BY id LIMIT ?`
	return queryRows(ctx, s, "list users", q, []any{afterID, limit}, func(row scanner) (tokenlysis.User, error) {
		var u tokenlysis.User
		err := row.Scan(&u.ID, &u.Email, &u.FullName, &u.CreatedAt)
		u.CreatedAt = u.CreatedAt.UTC()
		return u, err
	})
}

// FindUserByEmail returns the user with that email.
// Errors: ENOTFOUND.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (tokenlysis.User, error) {
	const q = `SELECT id, email, full_name, created_at FROM users WHERE email = ?`
	var u tokenlysis.User
	err := s.db.QueryRowxContext(ctx, s.rebind(q), email).Scan(&u.ID, &u.Email, &u.FullName, &u.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return u, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "User not found.")
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, wrap("find user", err)
}
