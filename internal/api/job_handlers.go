package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

type submitBody struct {
	Type     string          `json:"type"`
	Params   json.RawMessage `json:"params"`
	MaxRetry *int            `json:"max_retry"`
}

const maxIdempotencyKey = 200

func (s *Server) submitJob(c *gin.Context) {
	var body submitBody
	if err := s.decodeJSON(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	if body.Type == "" {
		s.writeError(c, tokenlysis.FieldErrorf("type", "Required."))
		return
	}
	s.submit(c, body)
}

// submit is shared by POST /api/jobs and the compatibility routes.
func (s *Server) submit(c *gin.Context, body submitBody) {
	key := c.GetHeader("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		s.writeError(c, &tokenlysis.Error{Code: tokenlysis.EMALFORMED, Field: "Idempotency-Key", Message: "At most 200 bytes."})
		return
	}
	j, created, err := s.jobs.Submit(c.Request.Context(), principal(c), job.SubmitRequest{
		Type: body.Type, Params: body.Params, IdempotencyKey: key, MaxRetry: body.MaxRetry,
	})
	if err != nil {
		if tokenlysis.ErrorCode(err) == tokenlysis.ECONFLICT && j.ID != "" {
			err = &conflictWithJob{err: err, jobID: j.ID}
			c.Header("Location", "/api/jobs/"+j.ID)
		}
		s.writeError(c, err)
		return
	}
	c.Header("Location", "/api/jobs/"+j.ID)
	if !created {
		c.Header("Idempotent-Replayed", "true")
	}
	c.JSON(http.StatusAccepted, j)
}

func (s *Server) getJob(c *gin.Context) {
	j, err := s.jobs.Find(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

type jobList struct {
	Items      []tokenlysis.Job `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

func (s *Server) listJobs(c *gin.Context) {
	limit, err := queryInt(c, "limit", 50, 1, 200)
	if err != nil {
		s.writeError(c, err)
		return
	}
	f := tokenlysis.JobFilter{Limit: limit + 1, After: c.Query("cursor")}
	if f.After != "" && !job.ValidID(f.After) {
		s.writeError(c, tokenlysis.FieldErrorf("cursor", "Must be a cursor returned by this endpoint."))
		return
	}
	if v := c.Query("status"); v != "" {
		st := tokenlysis.JobStatus(v)
		if !st.Valid() {
			s.writeError(c, tokenlysis.FieldErrorf("status", "Must be one of queued, running, retrying, succeeded, failed, canceled."))
			return
		}
		f.Status = &st
	}
	if v := c.Query("type"); v != "" {
		if _, err := s.jobs.Registry().Lookup(v); err != nil {
			s.writeError(c, err)
			return
		}
		f.Type = &v
	}
	jobs, err := s.jobs.List(c.Request.Context(), principal(c), f)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := jobList{Items: jobs}
	if len(jobs) > limit {
		out.Items = jobs[:limit]
		out.NextCursor = jobs[limit-1].ID
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) cancelJob(c *gin.Context) {
	j, err := s.jobs.Cancel(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) retryJob(c *gin.Context) {
	j, err := s.jobs.Retry(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Location", "/api/jobs/"+j.ID)
	c.JSON(http.StatusAccepted, j)
}

func (s *Server) jobTypes(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"types": s.jobs.Registry().Types()})
}

// recalculate is the Python system's POST /api/tasks/recalculate, kept for
// compatibility: its body (optional) is the recalculation's params.
func (s *Server) recalculate(c *gin.Context) {
	var params json.RawMessage
	if c.Request.ContentLength != 0 {
		if err := s.decodeJSON(c, &params); err != nil {
			s.writeError(c, err)
			return
		}
	}
	s.submit(c, submitBody{Type: "scores:recalculate", Params: params})
}
