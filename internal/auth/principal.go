package auth

// Principal is the authenticated caller a verified token describes. Roles
// are the raw role names from the token; package authz decides what they
// allow.
type Principal struct {
	Subject string
	Email   string
	Name    string
	Roles   []string
}
