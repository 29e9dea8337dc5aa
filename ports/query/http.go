package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
)

// Handler serves the query port:
//
//	GET /v1/entities/{key}                        current version, from Redis
//	GET /v1/entities/{key}?asOf=T&validAt=V       the version believed at system time T about valid time V, from the log index
//	GET /v1/entities/{key}/history                every version with both periods, from the log index
//	GET /v1/entities/{key}/history?asOf=T         the versions believed at T: the valid-time history as it stood then
//	    ?offset=N&limit=M                         a page of them; ?entries=true adds every entry's op and times
//	GET /v1/entities?q=TEXT&after=KEY&limit=N     the keys believed now, in key order, filtered and paged
//	GET /v1/corrections?from=T1&to=T2&key=K       back-dated entries recorded in [T1, T2)
//	GET /v1/changelog                             each log's size and latest signed checkpoint, checked
//	GET /v1/changelog/verify                      the full check: every log walked against its checkpoint
//
// T and V are RFC 3339 times or "now"; either may be given alone (the
// other is now). As a system time, now means every entry recorded
// (auditlog.Latest), as `meshlet asof --system now` does; as a valid time
// it is the clock. Every answer is a version with both periods, as
// auditlog's "Bitemporal queries" defines them, so the as-of answer is
// the row of the history as of T whose valid period holds V. Answers are
// JSON; an absent entity is a 404 whose body still says what was asked.
type Handler struct {
	Store   *auditlog.Store // as-of and history; nil: those answer 503
	Current *RedisStore     // current state; nil: current reads go to Store
	Decoder *Decoder        // payload fields; nil: payloads as base64
	// Verifier checks the change logs' signed checkpoints for
	// /v1/changelog; nil: they are listed unchecked.
	Verifier note.Verifier
	// Staleness bounds how old the Store's view of the logs may be: a
	// query refreshes it first when the last refresh is older (default 1s).
	Staleness time.Duration
	Log       *slog.Logger
	Now       func() time.Time
	// Ports are the product's output ports in manifest order. An entity
	// query names one with ?port= (default: the first), whose entities the
	// change log keeps apart from the other ports' (auditlog.EntityKey).
	Ports []string

	mu        sync.Mutex
	refreshed time.Time
	keys      keyList    // the entity list, kept between pages
	verifying sync.Mutex // one full verification at a time
}

// Register adds the query routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/entities/{key}", h.entity)
	mux.HandleFunc("GET /v1/entities/{key}/history", h.history)
	mux.HandleFunc("GET /v1/entities", h.list)
	mux.HandleFunc("GET /v1/corrections", h.corrections)
	mux.HandleFunc("GET /v1/changelog", h.changelog)
	mux.HandleFunc("GET /v1/changelog/verify", h.verify)
}

// ServeHTTP serves the query routes on their own.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	h.Register(mux)
	mux.ServeHTTP(w, r)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// EntryJSON is one change-log entry as the query port and `meshlet --json`
// print it: _system_from is when it was recorded.
type EntryJSON struct {
	ValidFrom  string         `json:"_valid_from"`
	ValidTo    *string        `json:"_valid_to"` // null: open
	SystemFrom string         `json:"_system_from"`
	Op         string         `json:"op"` // "assert" or "retract"
	Log        string         `json:"log"`
	Seq        uint64         `json:"seq"`
	SchemaID   uint32         `json:"schema_id,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
	Payload    []byte         `json:"payload,omitempty"` // when no schema decoder is configured
}

// VersionJSON is one rectangle of an entity's history: the entry's fields,
// believed valid over [_valid_from, _valid_to) (null: until further
// notice) from _system_from until _system_to (null: still believed).
// recorded is when the entry was; _system_from is later when a later entry
// cut the entry's valid period down to this one.
type VersionJSON struct {
	ValidFrom  string         `json:"_valid_from"`
	ValidTo    *string        `json:"_valid_to"`
	SystemFrom string         `json:"_system_from"`
	SystemTo   *string        `json:"_system_to"`
	Log        string         `json:"log"`
	Seq        uint64         `json:"seq"`
	Recorded   string         `json:"recorded"`
	SchemaID   uint32         `json:"schema_id,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
	Payload    []byte         `json:"payload,omitempty"`
}

// FormatTime renders unix microseconds as RFC 3339 with microseconds, UTC.
func FormatTime(us int64) string {
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

func optTime(us int64) *string {
	if us == 0 {
		return nil
	}
	s := FormatTime(us)
	return &s
}

// ParseSystemTime reads a system time: an RFC 3339 time, or "now" (or
// nothing) for auditlog.Latest, every entry recorded whatever the clocks
// said.
func ParseSystemTime(s string) (int64, error) {
	if s == "" || strings.EqualFold(s, "now") {
		return auditlog.Latest, nil
	}
	return ParseTime(s, time.Time{})
}

// FormatSystemTime prints a system time, "now" for auditlog.Latest.
func FormatSystemTime(us int64) string {
	if us == auditlog.Latest {
		return "now"
	}
	return FormatTime(us)
}

// ParseTime reads an RFC 3339 time, or "now" (now).
func ParseTime(s string, now time.Time) (int64, error) {
	if s == "" || strings.EqualFold(s, "now") {
		return now.UnixMicro(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time (like 2026-05-01T12:00:00Z) or \"now\"", s)
	}
	return t.UnixMicro(), nil
}

// Version renders a version; fields decoded when d is set.
func Version(ctx context.Context, d *Decoder, v auditlog.Version) (VersionJSON, error) {
	j := VersionJSON{
		ValidFrom: FormatTime(v.ValidFrom), ValidTo: optTime(v.ValidTo),
		SystemFrom: FormatTime(v.SystemFrom), SystemTo: optTime(v.SystemTo),
		Log: v.Fact.Log, Seq: v.Fact.Seq, Recorded: FormatTime(v.Fact.SystemTime), SchemaID: v.Fact.Prov.SchemaID,
	}
	var err error
	j.Fields, j.Payload, err = fields(ctx, d, &v.Fact)
	return j, err
}

// Entry renders an entry; fields decoded when d is set (none for a retraction).
func Entry(ctx context.Context, d *Decoder, f *auditlog.Fact) (EntryJSON, error) {
	j := EntryJSON{
		ValidFrom: FormatTime(f.ValidFrom), ValidTo: optTime(f.ValidTo), SystemFrom: FormatTime(f.SystemTime),
		Op: OpName(f.Op), Log: f.Log, Seq: f.Seq, SchemaID: f.Prov.SchemaID,
	}
	if f.Op == auditlog.OpRetract {
		return j, nil
	}
	var err error
	j.Fields, j.Payload, err = fields(ctx, d, f)
	return j, err
}

// OpName spells an entry's op.
func OpName(op byte) string {
	switch op {
	case auditlog.OpAssert:
		return "assert"
	case auditlog.OpRetract:
		return "retract"
	}
	return fmt.Sprintf("0x%02x", op)
}

func fields(ctx context.Context, d *Decoder, f *auditlog.Fact) (map[string]any, []byte, error) {
	if d == nil {
		return nil, f.Payload, nil
	}
	m, err := d.Fields(ctx, f.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
	}
	return m, nil, nil
}

type entityAnswer struct {
	Key     string `json:"key"`
	Found   bool   `json:"found"`
	Source  string `json:"source"` // "redis" or "index"
	AsOf    string `json:"asOf"`
	ValidAt string `json:"validAt"`
	// Entry is the version that held then (named entry since before it
	// carried its periods).
	Entry *VersionJSON `json:"entry,omitempty"`
}

type historyAnswer struct {
	Key      string        `json:"key"`
	AsOf     string        `json:"asOf,omitempty"` // when only the versions believed then were asked for
	Versions []VersionJSON `json:"versions"`
	// Total is every version of the key; Offset is where Versions start
	// in them, so a page is Versions[0] = version Offset.
	Total   int        `json:"total"`
	Offset  int        `json:"offset"`
	Entries []MarkJSON `json:"entries,omitempty"` // with ?entries=true
}

type errorAnswer struct {
	Error string `json:"error"`
}

// entityKey is the entity the request's key and ?port= name, false when
// the port is unknown (the answer is written).
func (h *Handler) entityKey(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	key, port := r.PathValue("key"), r.URL.Query().Get("port")
	if port == "" || (len(h.Ports) > 0 && port == h.Ports[0]) {
		return []byte(key), true
	}
	if !slices.Contains(h.Ports, port) {
		h.reply(w, http.StatusBadRequest, errorAnswer{fmt.Sprintf("port: no output port %q (output ports: %s)", port, strings.Join(h.Ports, ", "))})
		return nil, false
	}
	return auditlog.EntityKey(port, []byte(key)), true
}

func (h *Handler) entity(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	entity, ok := h.entityKey(w, r)
	if !ok {
		return
	}
	now := h.now()
	q := r.URL.Query()
	asOf, err := ParseSystemTime(q.Get("asOf"))
	if err != nil {
		h.reply(w, http.StatusBadRequest, errorAnswer{"asOf: " + err.Error()})
		return
	}
	validAt, err := ParseTime(q.Get("validAt"), now)
	if err != nil {
		h.reply(w, http.StatusBadRequest, errorAnswer{"validAt: " + err.Error()})
		return
	}
	ans := entityAnswer{Key: key, AsOf: FormatSystemTime(asOf), ValidAt: FormatTime(validAt)}
	current := !q.Has("asOf") && !q.Has("validAt")
	if current && h.Current != nil {
		ans.Source = "redis"
		c, ok, err := h.Current.Get(r.Context(), entity, validAt)
		if err != nil {
			h.fail(w, err)
			return
		}
		if ok {
			// Redis keeps only what is believed now: the piece's bounds and
			// since when, from the entry's recording time on.
			v := auditlog.Version{ValidFrom: c.ValidFrom, ValidTo: c.ValidTo, SystemFrom: c.SystemFrom,
				Fact: auditlog.Fact{Log: c.Log, Entry: auditlog.Entry{Seq: c.Seq, SystemTime: c.SystemTime, ValidFrom: c.ValidFrom,
					ValidTo: c.ValidTo, Op: auditlog.OpAssert, Key: []byte(key), Payload: c.Payload}}}
			j, err := Version(r.Context(), h.Decoder, v)
			if err != nil {
				h.fail(w, err)
				return
			}
			ans.Found, ans.Entry = true, &j
		}
	} else {
		if !h.fresh(w) {
			return
		}
		ans.Source = "index"
		v, ok, err := h.Store.AsOf(asOf).ValidAt(validAt).Get(entity)
		if err != nil {
			h.fail(w, err)
			return
		}
		if ok {
			j, err := Version(r.Context(), h.Decoder, v)
			if err != nil {
				h.fail(w, err)
				return
			}
			ans.Found, ans.Entry = true, &j
		}
	}
	code := http.StatusOK
	if !ans.Found {
		code = http.StatusNotFound
	}
	h.reply(w, code, ans)
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, ok := h.intParam(w, q, "offset", 0, 0, math.MaxInt)
	if !ok {
		return
	}
	limit, ok := h.intParam(w, q, "limit", math.MaxInt, 1, math.MaxInt)
	if !ok {
		return
	}
	withEntries := false
	if v := q.Get("entries"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			h.reply(w, http.StatusBadRequest, errorAnswer{"entries: want true or false"})
			return
		}
		withEntries = b
	}
	if !h.fresh(w) {
		return
	}
	key := r.PathValue("key")
	entity, ok := h.entityKey(w, r)
	if !ok {
		return
	}
	ans := historyAnswer{Key: key, Versions: []VersionJSON{}}
	var (
		vs  []auditlog.Version
		err error
	)
	if q := r.URL.Query(); q.Has("asOf") {
		asOf, perr := ParseSystemTime(q.Get("asOf"))
		if perr != nil {
			h.reply(w, http.StatusBadRequest, errorAnswer{"asOf: " + perr.Error()})
			return
		}
		ans.AsOf = FormatSystemTime(asOf)
		vs, err = h.Store.AsOf(asOf).History(entity)
	} else {
		vs, err = h.Store.History(entity)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	ans.Total, ans.Offset = len(vs), offset
	page := vs[min(offset, len(vs)):]
	page = page[:min(limit, len(page))]
	for _, v := range page {
		j, err := Version(r.Context(), h.Decoder, v)
		if err != nil {
			h.fail(w, err)
			return
		}
		ans.Versions = append(ans.Versions, j)
	}
	if withEntries {
		facts, err := h.Store.Entries(entity)
		if err != nil {
			h.fail(w, err)
			return
		}
		ans.Entries = marks(facts)
	}
	code := http.StatusOK
	if len(vs) == 0 {
		code = http.StatusNotFound
	}
	h.reply(w, code, ans)
}

// fresh refreshes the store when its view is older than Staleness.
func (h *Handler) fresh(w http.ResponseWriter) bool {
	if h.Store == nil {
		h.reply(w, http.StatusServiceUnavailable, errorAnswer{"no change-log index on this replica"})
		return false
	}
	stale := h.Staleness
	if stale == 0 {
		stale = time.Second
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.refreshed) >= stale {
		if err := h.Store.Refresh(); err != nil {
			h.fail(w, err)
			return false
		}
		h.refreshed = now
	}
	return true
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	if h.Log != nil {
		h.Log.Error("query port", "err", err)
	}
	code := http.StatusInternalServerError
	if errors.Is(err, context.Canceled) {
		code = 499
	}
	h.reply(w, code, errorAnswer{err.Error()})
}

func (h *Handler) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
