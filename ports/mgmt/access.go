package mgmt

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Decision is what the access check made of a request.
type Decision string

// The decisions an Access records.
const (
	Allowed   Decision = "allowed"
	NoToken   Decision = "no token"
	BadToken  Decision = "bad token"
	WrongRole Decision = "wrong role"
)

// Access is one request to a token-guarded route, allowed or refused.
// It never holds the token: Target is the path and query with any
// credential-looking parameter, and the presented token wherever it
// appears, replaced by "REDACTED".
type Access struct {
	Time      time.Time     `json:"time"`
	Principal string        `json:"principal"` // "" when no valid token was presented
	Role      Role          `json:"role"`
	Method    string        `json:"method"`
	Target    string        `json:"target"` // path and query
	Status    int           `json:"status"`
	Decision  Decision      `json:"decision"`
	Remote    string        `json:"remote"`
	Duration  time.Duration `json:"duration_ns"`
}

// Sink receives every Access after it is recorded in memory, e.g. to keep
// the log in Redis. It is called on the request's goroutine once the
// handler is done, so a slow sink should buffer; an error is logged and
// the request is unaffected.
type Sink interface {
	Record(ctx context.Context, a Access) error
}

// accessRing keeps the newest accesses: at most size of them, holding at
// most maxBytes together (accessCost), so memory stays bounded whatever
// the requests carry. Its storage grows as accesses come, up to size.
type accessRing struct {
	size, maxBytes int

	mu    sync.Mutex
	buf   []Access // a ring: the oldest at head
	head  int
	n     int    // accesses kept
	bytes int    // what they hold
	total uint64 // accesses ever recorded
}

func newAccessRing(size, maxBytes int) *accessRing {
	return &accessRing{size: size, maxBytes: maxBytes}
}

// accessSlot is what an Access takes in the ring besides its strings.
const accessSlot = int(unsafe.Sizeof(Access{}))

// accessCost is the memory an access holds in the ring.
func accessCost(a *Access) int {
	return accessSlot + len(a.Principal) + len(a.Role) + len(a.Method) + len(a.Target) + len(a.Decision) + len(a.Remote)
}

func (r *accessRing) add(a Access) {
	cost := accessCost(&a)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if cost > r.maxBytes {
		return // cannot be kept whatever goes; targets are cut well below any sane bound
	}
	for r.n > 0 && (r.n >= r.size || r.bytes+cost > r.maxBytes) {
		r.bytes -= accessCost(&r.buf[r.head])
		r.buf[r.head] = Access{} // let its strings go
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = a
	r.n++
	r.bytes += cost
}

// grow makes room for one more access, in order from the oldest.
func (r *accessRing) grow() {
	buf := make([]Access, min(r.size, max(16, 2*len(r.buf))))
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

// held is what the kept accesses hold, as the bound counts it.
func (r *accessRing) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// list returns up to limit accesses, newest first; principal, when not
// empty, keeps only that principal's.
func (r *accessRing) list(limit int, principal string) ([]Access, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Access{}
	for i := r.n - 1; i >= 0 && len(out) < limit; i-- {
		a := r.buf[(r.head+i)%len(r.buf)]
		if principal != "" && a.Principal != principal {
			continue
		}
		out = append(out, a)
	}
	return out, r.total
}

// clip returns s cut to at most n bytes on a character boundary, as a copy
// (a substring would keep the whole request line alive), saying how long
// it was when it was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return strings.Clone(s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...[cut: %d bytes]", len(s)) // the concatenation copies
}

// need says which roles a request requires; it may look at the request,
// as the query port's does.
type need func(r *http.Request) []Role

func roles(rs ...Role) need { return func(*http.Request) []Role { return rs } }

// guard is the middleware in front of every token-guarded route: it
// authenticates, authorizes, runs h when both pass, and records the
// request whatever happened.
func (s *Server) guard(needs need, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rec := &statusRecorder{ResponseWriter: w}
		token, presented := bearer(r)
		lim := s.limits()
		a := Access{Time: start, Method: clip(r.Method, maxMethodBytes), Remote: clip(r.RemoteAddr, 64),
			Target: clip(redact(r.URL, token), lim.MaxTargetBytes)}
		defer func() {
			p := recover()
			if p != nil && rec.status == 0 {
				rec.status = http.StatusInternalServerError
			}
			a.Status = rec.code()
			a.Duration = s.now().Sub(start)
			s.record(r.Context(), a)
			if p != nil {
				panic(p)
			}
		}()

		want := needs(r)
		if !presented {
			a.Decision = NoToken
			s.deny(rec, http.StatusUnauthorized, "", errorBody{Error: "this route needs a bearer token (Authorization: Bearer <token>)", Need: want})
			return
		}
		p, ok := s.Tokens.Lookup(token)
		if !ok {
			a.Decision = BadToken
			s.deny(rec, http.StatusUnauthorized, `, error="invalid_token"`, errorBody{Error: "the bearer token is not valid here", Need: want})
			return
		}
		a.Principal, a.Role = p.Name, p.Role
		if !containsRole(want, p.Role) {
			a.Decision = WrongRole
			s.reply(rec, http.StatusForbidden, errorBody{
				Error: "this request needs role " + roleList(want) + "; " + p.Name + " holds " + string(p.Role),
				Need:  want, Have: p.Role,
			})
			return
		}
		a.Decision = Allowed
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func containsRole(rs []Role, r Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func (s *Server) deny(w http.ResponseWriter, code int, extra string, body errorBody) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="meshlet"`+extra)
	s.reply(w, code, body)
}

// record keeps a in the ring, logs it and hands it to the sink.
func (s *Server) record(ctx context.Context, a Access) {
	s.ring.add(a)
	if s.decisions != nil {
		s.decisions.WithLabelValues(string(a.Decision)).Inc()
	}
	level := slog.LevelInfo
	if a.Decision != Allowed {
		level = slog.LevelWarn
	}
	s.log().LogAttrs(ctx, level, "mgmt access",
		slog.String("principal", a.Principal), slog.String("role", string(a.Role)),
		slog.String("method", a.Method), slog.String("target", a.Target),
		slog.Int("status", a.Status), slog.String("decision", string(a.Decision)),
		slog.String("remote", a.Remote), slog.Duration("duration", a.Duration))
	if s.Sink != nil {
		if err := s.Sink.Record(context.WithoutCancel(ctx), a); err != nil {
			s.log().Warn("mgmt access sink", "err", err)
		}
	}
}

// bearer returns the request's bearer token; presented is false when the
// request carries none (no header, another scheme, or an empty token).
func bearer(r *http.Request) (token string, presented bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(rest)
	return token, token != ""
}

// secretParams are query parameters a client might put a credential in;
// the access log keeps their names and drops their values.
var secretParams = []string{"access_token", "token", "api_key", "apikey", "password", "secret"}

// redact renders u's path and query for the access log, with credential
// parameters' values and the presented token itself removed.
func redact(u *url.URL, token string) string {
	target := u.EscapedPath()
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, hasValue := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			for _, s := range secretParams {
				if hasValue && strings.EqualFold(name, s) {
					parts[i] = k + "=REDACTED"
				}
			}
		}
		target += "?" + strings.Join(parts, "&")
	}
	if token != "" {
		target = strings.ReplaceAll(target, token, "REDACTED")
		if esc := url.QueryEscape(token); esc != token {
			target = strings.ReplaceAll(target, esc, "REDACTED")
		}
		if esc := url.PathEscape(token); esc != token {
			target = strings.ReplaceAll(target, esc, "REDACTED")
		}
	}
	return target
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) code() int {
	if w.status == 0 {
		return http.StatusOK // net/http's answer when a handler writes nothing
	}
	return w.status
}

type principalKey struct{}

// PrincipalFrom returns the principal a guarded route's request was
// allowed for, so a caller-provided handler (the query port) can see who
// is asking.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
