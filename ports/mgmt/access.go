package mgmt

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
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

// accessRing keeps the newest size accesses.
type accessRing struct {
	size  int
	mu    sync.Mutex
	buf   []Access
	next  int    // where the next access goes
	total uint64 // accesses ever recorded
}

func newAccessRing(size int) *accessRing {
	return &accessRing{size: size, buf: make([]Access, 0, size)}
}

func (r *accessRing) add(a Access) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, a)
	} else {
		r.buf[r.next] = a
	}
	r.next = (r.next + 1) % cap(r.buf)
}

// list returns up to limit accesses, newest first; principal, when not
// empty, keeps only that principal's.
func (r *accessRing) list(limit int, principal string) ([]Access, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []Access{}
	n := len(r.buf)
	for i := 0; i < n && len(out) < limit; i++ {
		a := r.buf[(r.next-1-i+2*n)%n] // newest is just before next
		if principal != "" && a.Principal != principal {
			continue
		}
		out = append(out, a)
	}
	return out, r.total
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
		a := Access{Time: start, Method: r.Method, Remote: r.RemoteAddr, Target: redact(r.URL, token)}
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
