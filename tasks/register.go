package tasks

import (
	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/job"
)

// Specs returns the spec of every job type, for the API and the worker.
func Specs() []job.Spec {
	return []job.Spec{ProbeSpec(), RecalculateSpec()}
}

// Register adds every handler to the worker's mux.
func Register(mux *asynq.ServeMux) {
	mux.Handle(TypeProbe, ProbeHandler{})
	mux.Handle(TypeRecalculate, NotImplementedHandler{})
}
