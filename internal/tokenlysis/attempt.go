package tokenlysis

import "context"

type attemptKey struct{}

// WithAttempt returns ctx carrying the run token of one attempt of a job.
// The store records it with the attempt's start, and refuses the
// attempt's later writes (progress, retrying, success, failure) once the
// job is no longer that attempt's: canceled and retried meanwhile, or
// started again by a later delivery of its task.
func WithAttempt(ctx context.Context, run string) context.Context {
	return context.WithValue(ctx, attemptKey{}, run)
}

// AttemptFrom returns the run token WithAttempt put in ctx, or "" (a write
// that no attempt owns, such as the reconciler's).
func AttemptFrom(ctx context.Context) string {
	run, _ := ctx.Value(attemptKey{}).(string)
	return run
}
