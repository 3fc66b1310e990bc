package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// TypeMarketImport imports a coin's daily history from a CSV file the
// worker can read, under TOKENLYSIS_IMPORT_DIR.
const TypeMarketImport = "market:import"

// ImportPayload: Path is relative to the import directory (an absolute
// path must lie inside it); Coin is the coin's ID (created when unknown).
type ImportPayload struct {
	Path   string `json:"path"`
	Coin   string `json:"coin"`
	Symbol string `json:"symbol,omitempty"`
	Name   string `json:"name,omitempty"`
}

// ImportSpec is the job type of the CSV import.
func ImportSpec() job.Spec {
	return job.Spec{
		Type: TypeMarketImport, Queue: job.QueueDefault, Permission: authz.AnalyticsSubmit, MaxRetry: 1, Timeout: 30 * time.Minute,
		Validate: func(raw json.RawMessage) (json.RawMessage, error) {
			var p ImportPayload
			if err := job.DecodeParams(raw, &p); err != nil {
				return nil, err
			}
			switch {
			case strings.TrimSpace(p.Path) == "":
				return nil, tokenlysis.FieldErrorf("params.path", "Required: the CSV file, relative to the import directory.")
			case strings.TrimSpace(p.Coin) == "":
				return nil, tokenlysis.FieldErrorf("params.coin", "Required: the coin ID.")
			}
			return json.Marshal(p)
		},
		DedupeKey: func(raw json.RawMessage) string {
			var p ImportPayload
			json.Unmarshal(raw, &p)
			return TypeMarketImport + ":" + p.Coin
		},
	}
}

// ImportHandler runs CSV imports.
type ImportHandler struct {
	Store marketimport.Store
	Dir   string // the import directory, absolute
}

// resolve returns the file's absolute path, refusing any path that leaves
// the import directory (.., symlinks).
func (h ImportHandler) resolve(p string) (string, error) {
	path := p
	if !filepath.IsAbs(path) {
		path = filepath.Join(h.Dir, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", tokenlysis.FieldErrorf("params.path", "Cannot read %q in the import directory.", p)
	}
	dir, err := filepath.EvalSymlinks(h.Dir)
	if err != nil {
		return "", tokenlysis.FieldErrorf("params.path", "The import directory does not exist.")
	}
	if rel, err := filepath.Rel(dir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", tokenlysis.FieldErrorf("params.path", "The file must be inside the import directory.")
	}
	return real, nil
}

// ProcessTask imports the file in one transaction: it lands whole or not
// at all, and a malformed line fails the job naming line and column.
func (h ImportHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ImportPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("import payload: %v: %w", err, asynq.SkipRetry)
	}
	path, err := h.resolve(p.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.Path, err)
	}
	defer f.Close()
	job.Report(ctx, 10, "importing "+filepath.Base(path), nil)
	sum, err := marketimport.Import(ctx, h.Store, p.Coin, f, marketimport.Meta{Symbol: p.Symbol, Name: p.Name})
	if err != nil {
		if code := tokenlysis.ErrorCode(err); code == tokenlysis.EINVALID || code == tokenlysis.ETOOLARGE {
			return fmt.Errorf("%s: %w: %w", tokenlysis.ErrorMessage(err), err, asynq.SkipRetry)
		}
		return err
	}
	return job.SetResult(ctx, sum)
}
