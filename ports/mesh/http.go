package mesh

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
)

// Handler serves the registry over HTTP:
//
//	GET /v1/mesh/products           {"products": [...]}, live products by URN
//	GET /v1/mesh/products/{urn}     the product, contracts included; 404 if not live
//	GET /v1/mesh/search?q=WORDS     {"query": "...", "products": [...]}, as Registry.Search
//	GET /v1/mesh/lineage            the Graph as JSON; ?format=dot for Graphviz text
//
// Listings leave out the contracts' text (Product.Summary); the product
// route has it. A URN goes into the path as it is ("/v1/mesh/products/
// urn:dataproduct:inventory:products") or percent-encoded. Errors are JSON
// {"error": "..."}: 404 for an unknown URN, 400 for a bad format, 503
// when Redis fails.
type Handler struct {
	Registry *Registry

	once sync.Once
	mux  *http.ServeMux
}

// Register adds the mesh routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/mesh/products", h.list)
	mux.HandleFunc("GET /v1/mesh/products/{urn...}", h.product)
	mux.HandleFunc("GET /v1/mesh/search", h.search)
	mux.HandleFunc("GET /v1/mesh/lineage", h.lineage)
}

// ServeHTTP serves the mesh routes on their own.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		h.mux = http.NewServeMux()
		h.Register(h.mux)
	})
	h.mux.ServeHTTP(w, r)
}

type productsJSON struct {
	Query    *string   `json:"query,omitempty"`
	Products []Product `json:"products"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	ps, err := h.Registry.List(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, productsJSON{Products: summaries(ps)})
}

func (h *Handler) product(w http.ResponseWriter, r *http.Request) {
	urn := r.PathValue("urn")
	if urn == "" {
		writeError(w, http.StatusNotFound, errors.New("no URN: ask /v1/mesh/products/{urn}, or /v1/mesh/products for the list"))
		return
	}
	p, err := h.Registry.Get(r.Context(), urn)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	ps, err := h.Registry.Search(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, productsJSON{Query: &q, Products: summaries(ps)})
}

func (h *Handler) lineage(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "dot" {
		writeError(w, http.StatusBadRequest, errors.New(`format is "json" (the default) or "dot"`))
		return
	}
	g, err := h.Registry.Lineage(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if format == "dot" {
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		w.Write([]byte(g.DOT()))
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// summaries is never nil, so an empty listing is [] rather than null.
func summaries(ps []Product) []Product {
	out := make([]Product, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Summary())
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent; a failed write has no one left to tell
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
