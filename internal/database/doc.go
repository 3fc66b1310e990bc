// Package database opens Tokenlysis' SQL database, SQLite or PostgreSQL,
// from one URL, and classifies the errors of both drivers.
//
// Accepted URLs (ParseURL):
//
//	postgres://user:password@host:5432/name?sslmode=disable   (also postgresql://), handed to pgx
//	sqlite:///relative/path.db    relative to the working directory (SQLAlchemy convention)
//	sqlite:////absolute/path.db   absolute path
//	sqlite://:memory:             a private in-memory database, for tests
//
// SQLite runs on modernc.org/sqlite (driver "sqlite", pure Go, no cgo) in
// WAL mode with foreign keys on, a 5 s busy timeout and BEGIN IMMEDIATE
// transactions, so that writers queue on the busy timeout instead of
// failing on lock upgrades. PostgreSQL runs on pgx's database/sql driver
// ("pgx").
//
// The schema is not this package's business: it exists only through the
// migrations in the top-level migrations package (run by cmd/migrate).
// Nothing here creates or alters tables.
//
// IsUniqueViolation and IsUnavailable let stores map driver errors to
// tokenlysis.ECONFLICT and tokenlysis.EUNAVAILABLE (HTTP 409 and 503).
package database
