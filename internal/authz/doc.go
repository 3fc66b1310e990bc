// Package authz decides what a role may do, with Casbin RBAC.
//
// The model (model.conf) and the default policy (policy.csv) are embedded.
// The policy grants permissions, each an object and an action such as
// scores:read, to the roles user, analyst and admin; analyst inherits user
// and admin inherits analyst. An operator may replace the policy with a file
// of the same format; the model never changes.
//
// Roles come from the caller's token (package auth); a role the policy does
// not know grants nothing.
package authz
