package tasks

import (
	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/job"
)

// Specs returns the spec of every job type, for the API and the worker.
func Specs() []job.Spec {
	return append([]job.Spec{ProbeSpec(), RecalculateSpec(), ImportSpec()}, MarketSpecs()...)
}

// Handlers are the worker's task handlers with their dependencies.
type Handlers struct {
	Recalculate RecalculateHandler
	Market      MarketHandler
	Import      ImportHandler
}

// Register adds every handler to the worker's mux.
func (h Handlers) Register(mux *asynq.ServeMux) {
	mux.Handle(TypeProbe, ProbeHandler{})
	mux.Handle(TypeRecalculate, h.Recalculate)
	mux.HandleFunc(TypeMarketIngest, h.Market.Ingest)
	mux.HandleFunc(TypeMarketHistory, h.Market.History)
	mux.HandleFunc(TypeSentimentFNG, h.Market.FearGreed)
	mux.Handle(TypeMarketImport, h.Import)
}
