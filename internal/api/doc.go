// Package api is the HTTP adapter: the Gin router with its one route table
// (every route and the permission it needs), bearer-token authentication,
// Casbin authorization, problem+json errors (RFC 9457), the job
// endpoints and their SSE event streams.
package api
