package mgmt

import (
	"context"
	"net/http"
	"strconv"

	"github.com/meshlet/meshlet/ports"
)

// whoami tells a client (the page) which principal and role its token is,
// so it shows only what that role may read.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	s.reply(w, http.StatusOK, p)
}

type deadLettersAnswer struct {
	Topic       string       `json:"topic,omitempty"`
	DeadLetters []ports.Dead `json:"dead_letters"`
}

// deadLetters lists the newest committed dead letters, newest first.
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	if s.DeadLetters == nil {
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "this product reports no dead letters"})
		return
	}
	limit := DefaultDeadLetters
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ports.MaxRecentDeadLetters {
			s.reply(w, http.StatusBadRequest, errorBody{Error: "limit: want a whole number from 1 to " + strconv.Itoa(ports.MaxRecentDeadLetters), Field: "limit"})
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadLetterWait)
	defer cancel()
	ds, err := s.DeadLetters(ctx, limit)
	if err != nil {
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "dead letters: " + err.Error()})
		return
	}
	s.reply(w, http.StatusOK, deadLettersAnswer{Topic: s.Product.DeadLetterTopic, DeadLetters: orEmpty(ds)})
}

// mesh serves the mesh registry's routes, or says there is none.
func (s *Server) mesh() http.Handler {
	if s.Mesh != nil {
		return s.Mesh
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "this product is not registered in a mesh registry (it runs without Redis)"})
	})
}
