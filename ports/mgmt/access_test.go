package mgmt

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// routeClass is a kind of guarded request and the roles it admits.
type routeClass struct {
	name, method, target, body string
	ok                         int // the status a permitted role gets
	allowed                    []Role
}

var guarded = []routeClass{
	{"query current", "GET", "/v1/entities/o-1", "", 200, Roles},
	{"query asOf", "GET", "/v1/entities/o-1?asOf=2026-05-01T12:00:00Z", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"query validAt", "GET", "/v1/entities/o-1?validAt=now", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"query history", "GET", "/v1/entities/o-1/history", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"pause", "POST", "/v1/control/pause", "", 202, []Role{RoleOwner, RoleGovernance}},
	{"resume", "POST", "/v1/control/resume", `{"reason":"fixed"}`, 202, []Role{RoleOwner, RoleGovernance}},
	{"reprocess", "POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":0,"offset":10}`, 202, []Role{RoleOwner, RoleGovernance}},
	{"policies", "PUT", "/v1/control/policies", `{"actions":{"pii":"mask"}}`, 202, []Role{RoleGovernance}},
	{"forget", "POST", "/v1/control/forget", `{"subject":"customer-42"}`, 202, []Role{RoleGovernance}},
	{"snapshot", "POST", "/v1/control/snapshot", `{"port":"daily"}`, 202, []Role{RoleOwner, RoleGovernance}},
	{"outcomes", "GET", "/v1/control/commands/cmd-1", "", 200, []Role{RoleOwner, RoleGovernance, RoleAuditor}},
	{"accesses", "GET", "/v1/accesses", "", 200, []Role{RoleAuditor, RoleGovernance}},
	{"entity list", "GET", "/v1/entities?q=o-&limit=10", "", 200, Roles},
	{"entity list asOf", "GET", "/v1/entities?asOf=now", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"corrections", "GET", "/v1/corrections?from=2026-01-01T00:00:00Z", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"full verification", "GET", "/v1/changelog/verify", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"dead letters", "GET", "/v1/deadletters", "", 200, []Role{RoleAuditor, RoleOwner, RoleGovernance}},
	{"whoami", "GET", "/v1/whoami", "", 200, Roles},
}

func TestRolesPerRouteClass(t *testing.T) {
	for _, rc := range guarded {
		t.Run(rc.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, rc.method, rc.target, "", rc.body)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("no token: %d, want 401\n%s", w.Code, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="meshlet"`) {
				t.Errorf("no token: WWW-Authenticate %q", got)
			}
			w = f.do(t, rc.method, rc.target, "not-a-token-anyone-holds", rc.body)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), "invalid_token") {
				t.Fatalf("bad token: %d %q, want 401 invalid_token", w.Code, w.Header().Get("WWW-Authenticate"))
			}
			for _, role := range Roles {
				w := f.do(t, rc.method, rc.target, tokenOf[role], rc.body)
				if slices.Contains(rc.allowed, role) {
					if w.Code != rc.ok {
						t.Errorf("%s: %d, want %d\n%s", role, w.Code, rc.ok, w.Body)
					}
					continue
				}
				if w.Code != http.StatusForbidden {
					t.Errorf("%s: %d, want 403\n%s", role, w.Code, w.Body)
					continue
				}
				e := decode[errorBody](t, w)
				if e.Have != role || !slices.Equal(e.Need, rc.allowed) {
					t.Errorf("%s: 403 says need %v have %q; want need %v have %s", role, e.Need, e.Have, rc.allowed, role)
				}
				if !strings.Contains(e.Error, string(role)) || !strings.Contains(e.Error, string(rc.allowed[0])) {
					t.Errorf("%s: 403 error %q names neither the role held nor the role needed", role, e.Error)
				}
			}
		})
	}
}

func TestOpenRoutesNeedNoToken(t *testing.T) {
	f := newFixture(t)
	f.s.Observe = nil // status then answers 503, checked in its own test
	for _, p := range []string{"/v1/product", "/v1/contracts", "/v1/contracts/orders", "/v1/schemas", "/v1/schemas/orders",
		"/v1/docs", "/v1/owners", "/v1/lineage", "/metrics", "/healthz", "/v1/changelog", "/v1/mesh/products", "/ui/"} {
		if w := f.do(t, "GET", p, "", ""); w.Code != http.StatusOK {
			t.Errorf("%s: %d without a token, want 200\n%s", p, w.Code, w.Body)
		}
	}
	if got := f.s.Accesses(100, ""); len(got) != 0 {
		t.Errorf("open routes were logged as guarded accesses: %+v", got)
	}
}

// The query port's test for "the past" errs towards refusing consumers.
func TestConsumerSeesCurrentStateOnly(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		target string
		want   int
	}{
		{"/v1/entities/o-1", 200},
		{"/v1/entities/o-1?fields=all", 200},
		{"/v1/entities/o-1?asOf=", 403},
		{"/v1/entities/o-1?ASOF=now", 403},
		{"/v1/entities/o-1?validat=now", 403},
		{"/v1/entities/o-1?x=1;asOf=now", 403}, // unparseable query
		{"/v1/entities/o-1/history", 403},
		{"/v1/entities/o-1/histor%79", 403},
		{"/v1/entities/o-1/history/", 403},
	}
	for _, c := range cases {
		w := f.do(t, "GET", c.target, consumerTok, "")
		if w.Code != c.want {
			t.Errorf("consumer %s: %d, want %d\n%s", c.target, w.Code, c.want, w.Body)
		}
		if c.want == 403 {
			if w := f.do(t, "GET", c.target, auditorTok, ""); w.Code == 403 {
				t.Errorf("auditor %s: refused", c.target)
			}
		}
	}
	// The query port sees who asked.
	w := f.do(t, "GET", "/v1/entities/o-1", consumerTok, "")
	if got := decode[map[string]string](t, w); got["principal"] != "cathy" || got["path"] != "/v1/entities/o-1" {
		t.Errorf("query port got %v", got)
	}
}

func TestAccessLogRecordsEveryGuardedRequest(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		method, target, token string
		status                int
		decision              Decision
		principal             string
		role                  Role
	}{
		{"GET", "/v1/entities/o-1", consumerTok, 200, Allowed, "cathy", RoleConsumer},
		{"GET", "/v1/entities/o-1?asOf=now", consumerTok, 403, WrongRole, "cathy", RoleConsumer},
		{"GET", "/v1/entities/o-1", "", 401, NoToken, "", ""},
		{"GET", "/v1/entities/o-1", "guess-" + ownerTok, 401, BadToken, "", ""},
		{"POST", "/v1/control/pause", ownerTok, 202, Allowed, "olga", RoleOwner},
		{"GET", "/v1/control/pause", ownerTok, 405, Allowed, "olga", RoleOwner},
		{"GET", "/v1/control/secrets", "", 401, NoToken, "", ""},
		{"GET", "/v1/control/secrets", auditorTok, 404, Allowed, "audrey", RoleAuditor},
		{"POST", "/v1/control/forget", ownerTok, 403, WrongRole, "olga", RoleOwner},
	}
	for _, st := range steps {
		if w := f.do(t, st.method, st.target, st.token, ""); w.Code != st.status {
			t.Fatalf("%s %s: %d, want %d\n%s", st.method, st.target, w.Code, st.status, w.Body)
		}
	}
	got := f.s.Accesses(100, "")
	if len(got) != len(steps) {
		t.Fatalf("%d accesses recorded, want %d", len(got), len(steps))
	}
	for i, st := range steps {
		a := got[len(got)-1-i] // newest first
		if a.Method != st.method || a.Target != st.target || a.Status != st.status || a.Decision != st.decision ||
			a.Principal != st.principal || a.Role != st.role {
			t.Errorf("access %d = %+v\nwant %+v", i, a, st)
		}
		if a.Remote != "192.0.2.1:1234" { // httptest's
			t.Errorf("access %d: remote %q", i, a.Remote)
		}
		if a.Duration != f.clock.step {
			t.Errorf("access %d: duration %v, want one clock step %v", i, a.Duration, f.clock.step)
		}
		if a.Time.Before(f.started) {
			t.Errorf("access %d: time %v is not from the injected clock", i, a.Time)
		}
	}
	if len(f.sink.got) != len(steps) {
		t.Errorf("sink got %d accesses, want %d", len(f.sink.got), len(steps))
	}
	if n := strings.Count(f.logs.String(), `"msg":"mgmt access"`); n != len(steps) {
		t.Errorf("%d slog access lines, want %d", n, len(steps))
	}

	// And the auditor reads them over HTTP, filtered and limited.
	w := f.do(t, "GET", "/v1/accesses?principal=olga&limit=2", auditorTok, "")
	ans := decode[accessesAnswer](t, w)
	if len(ans.Accesses) != 2 || ans.Accesses[0].Target != "/v1/control/forget" || ans.Accesses[1].Target != "/v1/control/pause" ||
		ans.Accesses[1].Method != "GET" {
		t.Errorf("olga's last two: %+v", ans.Accesses)
	}
	if ans.Recorded != uint64(len(steps)) || ans.Kept != DefaultAccessLogSize {
		t.Errorf("recorded %d kept %d", ans.Recorded, ans.Kept)
	}
	for _, bad := range []string{"0", "-1", "x"} {
		if w := f.do(t, "GET", "/v1/accesses?limit="+bad, auditorTok, ""); w.Code != 400 || decode[errorBody](t, w).Field != "limit" {
			t.Errorf("limit=%s: %d %s", bad, w.Code, w.Body)
		}
	}
}

func TestTokenNeverLogged(t *testing.T) {
	f := newFixture(t)
	// Tokens where a careless client might put them, plus refused and
	// wrong-role uses of every token.
	for _, tok := range allTokens {
		f.do(t, "GET", "/v1/entities/"+tok+"?access_token="+tok, tok, "")
		f.do(t, "GET", "/v1/entities/o-1?asOf=now&token="+tok, tok, "")
		f.do(t, "POST", "/v1/control/forget", tok, `{"subject":"s"}`)
		f.do(t, "GET", "/v1/accesses", tok, "")
		f.do(t, "GET", "/v1/accesses", tok+"x", "")
	}
	f.do(t, "GET", "/v1/entities/o-1", "", "", "Authorization", "Basic "+ownerTok)
	all, _ := json.Marshal(f.s.Accesses(1000, ""))
	for _, where := range []struct{ name, text string }{{"access log", string(all)}, {"slog", f.logs.String()}} {
		for _, tok := range allTokens {
			if strings.Contains(where.text, tok) {
				t.Errorf("%s holds token %s", where.name, tok)
			}
		}
	}
	if !strings.Contains(string(all), "access_token=REDACTED") || !strings.Contains(string(all), "/v1/entities/REDACTED") {
		t.Errorf("targets not redacted as expected: %s", all)
	}
}

func TestAccessRingKeepsNewest(t *testing.T) {
	f := newFixture(t)
	s := &Server{Tokens: f.s.Tokens, AccessLogSize: 3, Log: f.s.Log, Now: f.clock.Now, Query: fakeQuery{}}
	h := s.Handler()
	for i := range 5 {
		r := newReq("GET", "/v1/entities/k"+string(rune('0'+i)), consumerTok)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	got := s.Accesses(10, "")
	var targets []string
	for _, a := range got {
		targets = append(targets, a.Target)
	}
	if want := []string{"/v1/entities/k4", "/v1/entities/k3", "/v1/entities/k2"}; !slices.Equal(targets, want) {
		t.Errorf("kept %v, want %v", targets, want)
	}
	if _, total := s.ring.list(1, ""); total != 5 {
		t.Errorf("total %d, want 5", total)
	}
}

func TestAccessCounterByDecision(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/v1/accesses", "", "")
	f.do(t, "GET", "/v1/accesses", consumerTok, "")
	f.do(t, "GET", "/v1/accesses", consumerTok, "")
	w := f.do(t, "GET", "/metrics", "", "")
	for _, want := range []string{
		`meshlet_mgmt_accesses_total{data_product="shop.orders",decision="no token"} 1`,
		`meshlet_mgmt_accesses_total{data_product="shop.orders",decision="wrong role"} 2`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s\n%s", want, w.Body)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ target, token, want string }{
		{"/v1/accesses?limit=5", "", "/v1/accesses?limit=5"},
		{"/v1/accesses?API_KEY=abc&limit=5", "", "/v1/accesses?API_KEY=REDACTED&limit=5"},
		{"/v1/entities/a%20b%2Fc?asOf=now", "", "/v1/entities/a%20b%2Fc?asOf=now"},
		{"/v1/entities/k?note=s3cr%2Bt", "s3cr+t", "/v1/entities/k?note=REDACTED"},
	} {
		r := newReq("GET", c.target, "")
		if got := redact(r.URL, c.token); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.target, got, c.want)
		}
	}
}

func newReq(method, target, token string) *http.Request {
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		panic(err)
	}
	r.RemoteAddr = "192.0.2.9:9"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}
