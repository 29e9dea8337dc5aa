package mgmt

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/ports"
)

func TestWhoamiNamesThePrincipal(t *testing.T) {
	f := newFixture(t)
	for role, name := range map[Role]string{RoleConsumer: "cathy", RoleAuditor: "audrey", RoleOwner: "olga", RoleGovernance: "gina"} {
		w := f.do(t, "GET", "/v1/whoami", tokenOf[role], "")
		if p := decode[Principal](t, w); w.Code != 200 || p != (Principal{Name: name, Role: role}) {
			t.Errorf("%s: %d %+v", role, w.Code, p)
		}
	}
}

func TestDeadLettersRoute(t *testing.T) {
	f := newFixture(t)
	f.s.Product.DeadLetterTopic = "shop.orders.v2.dlq"
	var asked int
	f.s.DeadLetters = func(ctx context.Context, limit int) ([]ports.Dead, error) {
		asked = limit
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the dead-letter source was given no deadline")
		}
		return []ports.Dead{{Class: "schema", OriginTopic: "pg.public.orders", OriginPartition: 1, OriginOffset: 77}}, nil
	}
	w := f.do(t, "GET", "/v1/deadletters", auditorTok, "")
	ans := decode[deadLettersAnswer](t, w)
	if w.Code != 200 || asked != DefaultDeadLetters || ans.Topic != "shop.orders.v2.dlq" || len(ans.DeadLetters) != 1 || ans.DeadLetters[0].OriginOffset != 77 {
		t.Fatalf("%d asked %d: %+v", w.Code, asked, ans)
	}
	f.do(t, "GET", "/v1/deadletters?limit=3", ownerTok, "")
	if asked != 3 {
		t.Errorf("limit 3 asked %d", asked)
	}
	for _, bad := range []string{"0", "-1", "x", "501"} {
		if w := f.do(t, "GET", "/v1/deadletters?limit="+bad, auditorTok, ""); w.Code != 400 || decode[errorBody](t, w).Field != "limit" {
			t.Errorf("limit=%s: %d %s", bad, w.Code, w.Body)
		}
	}
	f.s.DeadLetters = func(context.Context, int) ([]ports.Dead, error) { return nil, errors.New("brokers unreachable") }
	if w := f.do(t, "GET", "/v1/deadletters", auditorTok, ""); w.Code != 503 || !strings.Contains(w.Body.String(), "brokers unreachable") {
		t.Errorf("failing source: %d %s", w.Code, w.Body)
	}
	f.s.DeadLetters = func(context.Context, int) ([]ports.Dead, error) { return nil, nil }
	if w := f.do(t, "GET", "/v1/deadletters", auditorTok, ""); !strings.Contains(w.Body.String(), `"dead_letters": []`) {
		t.Errorf("no dead letters is not []: %s", w.Body)
	}
}

func TestNewRoutesReachTheirHandlers(t *testing.T) {
	f := newFixture(t)
	for target, want := range map[string]string{
		"/v1/entities?q=x":         "/v1/entities",
		"/v1/corrections?from=now": "/v1/corrections",
		"/v1/changelog/verify":     "/v1/changelog/verify",
	} {
		w := f.do(t, "GET", target, auditorTok, "")
		if got := decode[map[string]string](t, w); got["path"] != want || got["principal"] != "audrey" {
			t.Errorf("%s reached %v", target, got)
		}
	}
	if got := decode[map[string]string](t, f.do(t, "GET", "/v1/changelog", "", "")); got["path"] != "/v1/changelog" {
		t.Errorf("changelog reached %v", got)
	}
	if got := decode[map[string]string](t, f.do(t, "GET", "/v1/mesh/lineage", "", "")); got["mesh"] != "/v1/mesh/lineage" {
		t.Errorf("mesh reached %v", got)
	}
	if w := f.do(t, "POST", "/v1/corrections?from=now", auditorTok, ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST corrections: %d", w.Code)
	}
	if w := f.do(t, "GET", "/", "", ""); w.Code != http.StatusFound || w.Header().Get("Location") != "/ui/" {
		t.Errorf("/: %d to %q, want a redirect to /ui/", w.Code, w.Header().Get("Location"))
	}

	f = newFixture(t)
	f.s.Mesh, f.s.UI, f.s.DeadLetters = nil, nil, nil
	f.h = nil
	s := &Server{Tokens: f.s.Tokens, Product: f.s.Product}
	f.h = s.Handler()
	if w := f.do(t, "GET", "/v1/mesh/products", "", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "mesh registry") {
		t.Errorf("no mesh: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "GET", "/v1/deadletters", auditorTok, ""); w.Code != 503 {
		t.Errorf("no dead-letter source: %d", w.Code)
	}
	if w := f.do(t, "GET", "/v1/changelog", "", ""); w.Code != 503 {
		t.Errorf("no query port, changelog: %d", w.Code)
	}
	if w := f.do(t, "GET", "/ui/", "", ""); w.Code != 404 {
		t.Errorf("no page: /ui/ %d", w.Code)
	}
}
