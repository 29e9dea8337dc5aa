package query

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshlet/meshlet/auditlog"
)

// Bounds of the browsing routes, in one place.
const (
	DefaultListLimit        = 50      // keys a page of /v1/entities holds without ?limit
	MaxListLimit            = 1000    // and at most
	DefaultCorrectionsLimit = 100     // corrections /v1/corrections answers without ?limit
	MaxCorrectionsLimit     = 1000    // and at most
	maxListedKeys           = 500_000 // keys the entity list keeps; past that it says capped
	keyListMaxAge           = 5 * time.Second
)

// keyList is the sorted list of the keys believed now, rebuilt when the
// logs grew or it is older than keyListMaxAge (valid periods end as time
// passes), so paging through thousands of entities scans the index once.
type keyList struct {
	mu     sync.Mutex
	built  time.Time
	heads  []uint64 // entries per log when built
	keys   []listedKey
	capped bool
}

type listedKey struct {
	key                   string
	validFrom, systemFrom int64
}

func (l *keyList) get(st *auditlog.Store, now time.Time) ([]listedKey, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var heads []uint64
	for _, li := range st.Logs() {
		heads = append(heads, li.Entries)
	}
	if l.keys != nil && slices.Equal(heads, l.heads) && now.Sub(l.built) < keyListMaxAge && !now.Before(l.built) {
		return l.keys, l.capped, nil
	}
	keys := []listedKey{}
	capped := false
	err := st.Scan(auditlog.Latest, now.UnixMicro(), func(v *auditlog.Version) error {
		if len(keys) >= maxListedKeys {
			capped = true
			return nil
		}
		keys = append(keys, listedKey{key: string(v.Fact.Key), validFrom: v.ValidFrom, systemFrom: v.SystemFrom})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(keys, func(a, b listedKey) int { return strings.Compare(a.key, b.key) })
	l.keys, l.capped, l.heads, l.built = keys, capped, heads, now
	return keys, capped, nil
}

// ListedJSON is one entity of the list: its key and when its current
// version began, in both times.
type ListedJSON struct {
	Key        string `json:"key"`
	ValidFrom  string `json:"_valid_from"`
	SystemFrom string `json:"_system_from"`
}

type listAnswer struct {
	Query    string       `json:"q"`
	After    string       `json:"after"`
	Limit    int          `json:"limit"`
	Matching int          `json:"matching"` // keys that match q, on every page
	Entities []ListedJSON `json:"entities"`
	// Next is the after of the next page; empty on the last.
	Next string `json:"next,omitempty"`
	// Capped says the product holds more entities than the list keeps.
	Capped bool `json:"capped,omitempty"`
}

// list answers the keys believed now, in byte order of the key; q keeps
// those that contain it (ignoring case), after skips to the keys past it.
// Only keys and times are read: no payload is decoded.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := h.intParam(w, q, "limit", DefaultListLimit, 1, MaxListLimit)
	if !ok {
		return
	}
	if !h.fresh(w) {
		return
	}
	keys, capped, err := h.keys.get(h.Store, h.now())
	if err != nil {
		h.fail(w, err)
		return
	}
	ans := listAnswer{Query: q.Get("q"), After: q.Get("after"), Limit: limit, Entities: []ListedJSON{}, Capped: capped}
	needle := strings.ToLower(ans.Query)
	for _, k := range keys {
		if needle != "" && !strings.Contains(strings.ToLower(k.key), needle) {
			continue
		}
		ans.Matching++
		if k.key <= ans.After && ans.After != "" {
			continue
		}
		if len(ans.Entities) == limit {
			if ans.Next == "" {
				ans.Next = ans.Entities[limit-1].Key
			}
			continue
		}
		ans.Entities = append(ans.Entities, ListedJSON{Key: k.key, ValidFrom: FormatTime(k.validFrom), SystemFrom: FormatTime(k.systemFrom)})
	}
	h.reply(w, http.StatusOK, ans)
}

// CorrectionJSON is one correction as the query port and `meshlet
// corrections --json` print it.
type CorrectionJSON struct {
	Key string `json:"key"`
	EntryJSON
	PriorValidFrom string `json:"prior_valid_from"`
}

type correctionsAnswer struct {
	From        string           `json:"from"`
	To          string           `json:"to"`
	Key         string           `json:"key,omitempty"`
	Total       int              `json:"total"` // corrections in the range (of key, when given)
	Corrections []CorrectionJSON `json:"corrections"`
	Truncated   bool             `json:"truncated"` // more than limit: narrow the range
}

// corrections answers Store.Corrections over [from, to), of one key when
// key is given, the first limit of them in system-time order.
func (h *Handler) corrections(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := h.now()
	if q.Get("from") == "" {
		h.reply(w, http.StatusBadRequest, errorAnswer{"from: required, an RFC 3339 system time the range starts at (inclusive)"})
		return
	}
	from, err := ParseTime(q.Get("from"), now)
	if err != nil {
		h.reply(w, http.StatusBadRequest, errorAnswer{"from: " + err.Error()})
		return
	}
	to, err := ParseTime(q.Get("to"), now)
	if err != nil {
		h.reply(w, http.StatusBadRequest, errorAnswer{"to: " + err.Error()})
		return
	}
	limit, ok := h.intParam(w, q, "limit", DefaultCorrectionsLimit, 1, MaxCorrectionsLimit)
	if !ok {
		return
	}
	if !h.fresh(w) {
		return
	}
	cs, err := h.Store.Corrections(from, to)
	if err != nil {
		h.fail(w, err)
		return
	}
	key := q.Get("key")
	ans := correctionsAnswer{From: FormatTime(from), To: FormatTime(to), Key: key, Corrections: []CorrectionJSON{}}
	for i := range cs {
		c := &cs[i]
		if q.Has("key") && string(c.Key) != key {
			continue
		}
		ans.Total++
		if len(ans.Corrections) == limit {
			ans.Truncated = true
			continue
		}
		e, err := Entry(r.Context(), h.Decoder, &c.Fact)
		if err != nil {
			h.fail(w, err)
			return
		}
		ans.Corrections = append(ans.Corrections, CorrectionJSON{Key: string(c.Key), EntryJSON: e, PriorValidFrom: FormatTime(c.PriorValidFrom)})
	}
	h.reply(w, http.StatusOK, ans)
}

// MarkJSON is one entry of a key as recorded, without its fields: what a
// chart marks on the versions (a delete, a correction).
type MarkJSON struct {
	Op         string  `json:"op"`
	ValidFrom  string  `json:"_valid_from"`
	ValidTo    *string `json:"_valid_to"`
	SystemFrom string  `json:"_system_from"`
	Log        string  `json:"log"`
	Seq        uint64  `json:"seq"`
	// Correction: the entry's valid period starts before the latest
	// valid-from any earlier entry of the key recorded (PriorValidFrom),
	// as Store.Corrections decides.
	Correction     bool    `json:"correction"`
	PriorValidFrom *string `json:"prior_valid_from,omitempty"`
}

// marks renders a key's entries, given in merged order.
func marks(facts []auditlog.Fact) []MarkJSON {
	out := make([]MarkJSON, 0, len(facts))
	prior, seen := int64(math.MinInt64), false
	for i := range facts {
		f := &facts[i]
		m := MarkJSON{Op: OpName(f.Op), ValidFrom: FormatTime(f.ValidFrom), ValidTo: optTime(f.ValidTo),
			SystemFrom: FormatTime(f.SystemTime), Log: f.Log, Seq: f.Seq}
		if seen && f.ValidFrom < prior {
			m.Correction = true
			p := FormatTime(prior)
			m.PriorValidFrom = &p
		}
		if !seen || f.ValidFrom > prior {
			prior, seen = f.ValidFrom, true
		}
		out = append(out, m)
	}
	return out
}

// intParam reads a whole-number query parameter in [lo, hi], def when
// absent; a bad one is answered with a 400 naming it.
func (h *Handler) intParam(w http.ResponseWriter, q url.Values, name string, def, lo, hi int) (int, bool) {
	v := q.Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		msg := name + ": want a whole number from " + strconv.Itoa(lo)
		if hi != math.MaxInt {
			msg += " to " + strconv.Itoa(hi)
		}
		h.reply(w, http.StatusBadRequest, errorAnswer{msg})
		return 0, false
	}
	return n, true
}
