package mgmt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshlet/meshlet/ports"
)

// Defaults, in one place.
const (
	DefaultAccessLogSize = 10_000 // accesses kept in memory
	DefaultAccessLimit   = 100    // accesses GET /v1/accesses answers without ?limit
	DefaultDeadLetters   = 20     // dead letters GET /v1/deadletters answers without ?limit
	deadLetterWait       = 5 * time.Second
	maxBodyBytes         = 64 << 10
	idempotencyMemo      = 1024 // Idempotency-Keys remembered per replica
)

// Server is a product's management listener. The runtime fills in what it
// has and mounts Handler; every field may be left zero, and a route whose
// source is missing answers 503 (or, for discovery, what it can).
// Set the fields before the first call to Handler and do not change them.
type Server struct {
	// Tokens authenticate the guarded routes; nil refuses every token.
	Tokens *Tokens

	// Product describes the product for discovery, docs, lineage and
	// status; Manifest is served as is by /v1/product (Product when nil).
	Product  Product
	Manifest any
	// Schemas answers /v1/schemas from the registry; nil: the subjects
	// and .avsc files in Product, without registry ids.
	Schemas SchemaSource
	// Lineage, when set, adds the mesh's upstream and downstream
	// products to /v1/lineage.
	Lineage func(ctx context.Context) (Neighbors, error)

	// Observe reports the product's state and per-port measurements for
	// /v1/status and /healthz.
	Observe func(ctx context.Context) (Observation, error)
	// Gatherer is served by /metrics (prometheus.DefaultGatherer if nil).
	Gatherer prometheus.Gatherer
	// Registerer, when set, gets meshlet_mgmt_accesses_total{data_product,decision}.
	Registerer prometheus.Registerer

	// Query serves /v1/entities/... (the query port), /v1/corrections and
	// /v1/changelog; nil answers 503.
	Query http.Handler
	// DeadLetters returns up to limit of the newest dead letters for
	// /v1/deadletters (ports.RecentDeadLetters); nil answers 503.
	DeadLetters func(ctx context.Context, limit int) ([]ports.Dead, error)
	// Mesh serves /v1/mesh/... (the mesh registry, ports/mesh.Handler);
	// nil answers 503.
	Mesh http.Handler
	// UI serves the page under /ui/ (ports/web); / redirects to it. Nil:
	// no page.
	UI http.Handler
	// Control carries control commands to the runtime; nil answers 503.
	Control Controller
	// PolicyActions are the actions PUT /v1/control/policies accepts
	// (DefaultPolicyActions when nil).
	PolicyActions []string

	// AccessLogSize bounds the in-memory access log's entries
	// (DefaultAccessLogSize when 0), Limits.AccessLogBytes its bytes;
	// Sink, when set, also gets every access.
	AccessLogSize int
	Sink          Sink

	// Limits bound header and body sizes, timeouts and the access log's
	// memory (see Limits for the defaults).
	Limits Limits
	// TLS, when set, makes Listen serve HTTPS only (LoadTLS reads a
	// certificate and key from files).
	TLS *tls.Config

	Log     *slog.Logger     // slog.Default() when nil
	Now     func() time.Time // time.Now when nil; tests inject a clock
	Started time.Time        // for uptime; the first Handler call when zero

	once      sync.Once
	handler   http.Handler
	ring      *accessRing
	idem      *idempotency
	decisions *prometheus.CounterVec
}

// Handler returns the routes; it is built once.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.build)
	return s.handler
}

// Accesses returns up to limit recorded accesses, newest first, only
// principal's when principal is not empty.
func (s *Server) Accesses(limit int, principal string) []Access {
	s.once.Do(s.build)
	a, _ := s.ring.list(limit, principal)
	return a
}

func (s *Server) build() {
	size := s.AccessLogSize
	if size <= 0 {
		size = DefaultAccessLogSize
	}
	lim := s.limits()
	s.ring = newAccessRing(size, lim.AccessLogBytes)
	s.idem = newIdempotency(idempotencyMemo)
	if s.Started.IsZero() {
		s.Started = s.now()
	}
	if s.Registerer != nil {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "meshlet_mgmt_accesses_total",
			Help:        "Requests to token-guarded management routes, by access decision.",
			ConstLabels: prometheus.Labels{"data_product": s.Product.ID},
		}, []string{"decision"})
		if err := s.Registerer.Register(c); err != nil {
			s.log().Warn("mgmt: access counter not registered", "err", err)
		} else {
			s.decisions = c
		}
	}
	gatherer := s.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}

	mux := http.NewServeMux()
	// Open: discovery and observability.
	mux.HandleFunc("GET /v1/product", s.product)
	mux.HandleFunc("GET /v1/contracts", s.contractList)
	mux.HandleFunc("GET /v1/contracts/{port}", s.contract)
	mux.HandleFunc("GET /v1/schemas", s.schemaList)
	mux.HandleFunc("GET /v1/schemas/{port}", s.schema)
	mux.HandleFunc("GET /v1/docs", s.docs)
	mux.HandleFunc("GET /v1/owners", s.owners)
	mux.HandleFunc("GET /v1/lineage", s.lineage)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /v1/changelog", s.query)
	mux.Handle("GET /v1/mesh/", s.mesh())
	if s.UI != nil {
		mux.Handle("GET /ui/", s.UI)
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}

	// Guarded: registered without a method so that a request with the
	// wrong one is still authenticated and logged before its 405.
	mux.Handle("/v1/entities/", s.guard(queryNeed, http.HandlerFunc(s.query)))
	mux.Handle("/v1/entities", s.guard(queryNeed, only(http.MethodGet, http.HandlerFunc(s.query))))
	past := roles(RoleAuditor, RoleOwner, RoleGovernance)
	mux.Handle("/v1/corrections", s.guard(past, only(http.MethodGet, http.HandlerFunc(s.query))))
	mux.Handle("/v1/changelog/verify", s.guard(past, only(http.MethodGet, http.HandlerFunc(s.query))))
	mux.Handle("/v1/deadletters", s.guard(past, only(http.MethodGet, http.HandlerFunc(s.deadLetters))))
	mux.Handle("/v1/whoami", s.guard(roles(Roles...), only(http.MethodGet, http.HandlerFunc(s.whoami))))
	operators := roles(RoleOwner, RoleGovernance)
	governance := roles(RoleGovernance)
	mux.Handle("/v1/control/pause", s.guard(operators, only(http.MethodPost, s.control(CommandPause))))
	mux.Handle("/v1/control/resume", s.guard(operators, only(http.MethodPost, s.control(CommandResume))))
	mux.Handle("/v1/control/reprocess", s.guard(operators, only(http.MethodPost, s.control(CommandReprocess))))
	mux.Handle("/v1/control/policies", s.guard(governance, only(http.MethodPut, s.control(CommandPolicies))))
	mux.Handle("/v1/control/forget", s.guard(governance, only(http.MethodPost, s.control(CommandForget))))
	mux.Handle("/v1/control/snapshot", s.guard(operators, only(http.MethodPost, s.control(CommandSnapshot))))
	mux.Handle("/v1/control/commands/{id}", s.guard(roles(RoleOwner, RoleGovernance, RoleAuditor), only(http.MethodGet, http.HandlerFunc(s.outcomes))))
	// Any other control path: a probe is logged, then told 404.
	mux.Handle("/v1/control/", s.guard(roles(Roles...), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, http.StatusNotFound, errorBody{Error: "no control route " + r.URL.Path + "; see the package routes in /v1/docs"})
	})))
	mux.Handle("/v1/accesses", s.guard(roles(RoleAuditor, RoleGovernance), only(http.MethodGet, http.HandlerFunc(s.accesses))))
	s.handler = limitBody(lim.MaxBodyBytes, mux)
}

// limitBody caps every request body at n bytes, whatever the route: a
// handler reading more gets a *http.MaxBytesError (control answers 413).
func limitBody(n int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, r)
	})
}

// queryNeed: current state for every role; the past (asOf or validAt
// given, or a history path) for auditor, owner and governance only. The
// test is deliberately broader than what the query port reads: any
// spelling of those parameters, an unparseable query, or a path that
// ends in /history once unescaped count as the past.
func queryNeed(r *http.Request) []Role {
	past := []Role{RoleAuditor, RoleOwner, RoleGovernance}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasSuffix(path, "/history") {
		return past
	}
	q, err := url.ParseQuery(r.URL.RawQuery) // refuses ';', which the query port would drop
	if err != nil {
		return past
	}
	for k := range q {
		if strings.EqualFold(k, "asOf") || strings.EqualFold(k, "validAt") {
			return past
		}
	}
	return Roles
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	if s.Query == nil {
		s.reply(w, http.StatusServiceUnavailable, errorBody{Error: "this product has no query port"})
		return
	}
	s.Query.ServeHTTP(w, r)
}

// only answers 405 to any method but m.
func only(m string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", m)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "use " + m + " on " + r.URL.Path})
			return
		}
		h.ServeHTTP(w, r)
	})
}

type accessesAnswer struct {
	Accesses []Access `json:"accesses"`
	Recorded uint64   `json:"recorded"`  // since the process started, including those no longer kept
	Kept     int      `json:"kept"`      // the in-memory bound on entries
	Bytes    int      `json:"bytes"`     // what the kept entries hold
	MaxBytes int      `json:"max_bytes"` // the in-memory bound on bytes
}

func (s *Server) accesses(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultAccessLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.reply(w, http.StatusBadRequest, errorBody{Error: "limit: want a whole number from 1", Field: "limit"})
			return
		}
		limit = n
	}
	list, total := s.ring.list(limit, q.Get("principal"))
	s.reply(w, http.StatusOK, accessesAnswer{Accesses: list, Recorded: total, Kept: s.ring.size,
		Bytes: s.ring.held(), MaxBytes: s.ring.maxBytes})
}

// errorBody is every error answer: what is wrong, and for refusals the
// roles needed and held, for bad requests the field.
type errorBody struct {
	Error string `json:"error"`
	Need  []Role `json:"need,omitempty"`
	Have  Role   `json:"have,omitempty"`
	Field string `json:"field,omitempty"`
}

func (s *Server) reply(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}
