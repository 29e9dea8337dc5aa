package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

type accepted struct {
	CommandID string  `json:"command_id"`
	Command   Command `json:"command"`
	Location  string  `json:"location"`
	Replayed  bool    `json:"replayed"`
}

func TestControlParsesRequests(t *testing.T) {
	cases := []struct {
		method, path, token, body string
		want                      ControlRequest
		by                        Principal
	}{
		{"POST", "/v1/control/pause", ownerTok, "", ControlRequest{Command: CommandPause}, Principal{"olga", RoleOwner}},
		{"POST", "/v1/control/resume", governanceTok, `{"reason": "upstream fixed"}`,
			ControlRequest{Command: CommandResume, Reason: "upstream fixed"}, Principal{"gina", RoleGovernance}},
		{"POST", "/v1/control/reprocess", ownerTok, `{"topic": "pg.public.orders", "partition": 2, "offset": 1500}`,
			ControlRequest{Command: CommandReprocess, Topic: "pg.public.orders", Partition: 2, Offset: 1500}, Principal{"olga", RoleOwner}},
		{"PUT", "/v1/control/policies", governanceTok, `{"actions": {"pii": "mask", "email": "drop"}}`,
			ControlRequest{Command: CommandPolicies, Actions: map[string]string{"pii": "mask", "email": "drop"}}, Principal{"gina", RoleGovernance}},
		{"POST", "/v1/control/forget", governanceTok, `{"subject": "customer-42", "reason": "GDPR art. 17"}`,
			ControlRequest{Command: CommandForget, Subject: "customer-42", Reason: "GDPR art. 17"}, Principal{"gina", RoleGovernance}},
		{"POST", "/v1/control/snapshot", ownerTok, "", ControlRequest{Command: CommandSnapshot}, Principal{"olga", RoleOwner}},
		{"POST", "/v1/control/snapshot", governanceTok, `{"port": "products-daily"}`,
			ControlRequest{Command: CommandSnapshot, Port: "products-daily"}, Principal{"gina", RoleGovernance}},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, c.method, c.path, c.token, c.body)
			if w.Code != http.StatusAccepted {
				t.Fatalf("%d\n%s", w.Code, w.Body)
			}
			calls := f.ctl.calls()
			if len(calls) != 1 || !reflect.DeepEqual(calls[0], c.want) || f.ctl.by[0] != c.by {
				t.Fatalf("controller got %+v by %+v\nwant %+v by %+v", calls, f.ctl.by, c.want, c.by)
			}
			ans := decode[accepted](t, w)
			if ans.CommandID != "cmd-1" || ans.Command != c.want.Command || w.Header().Get("Location") != "/v1/control/commands/cmd-1" {
				t.Errorf("answer %+v, Location %q", ans, w.Header().Get("Location"))
			}
			// The Location answers with the outcomes.
			w = f.do(t, "GET", w.Header().Get("Location"), c.token, "")
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"replica": "r0"`) {
				t.Errorf("outcomes: %d %s", w.Code, w.Body)
			}
		})
	}
}

func TestControlRefusesBadBodies(t *testing.T) {
	cases := []struct {
		method, path, body string
		field, msg         string
	}{
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":0,"offset":1,"bogus":true}`, "bogus", "unknown field"},
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":0}`, "offset", "missing"},
		{"POST", "/v1/control/reprocess", `{"partition":0,"offset":1}`, "topic", "missing"},
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":"0","offset":1}`, "partition", "want a whole number"},
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":-1,"offset":1}`, "partition", "0 or more"},
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":0,"offset":1.5}`, "offset", "want a whole number"},
		{"POST", "/v1/control/reprocess", `{"topic":"elsewhere","partition":0,"offset":1}`, "topic", "not an input topic of this product; want pg.public.orders"},
		{"POST", "/v1/control/reprocess", `{"topic":"pg.public.orders","partition":0,"offset":1} {}`, "", "more than one JSON value"},
		{"POST", "/v1/control/reprocess", `{"topic":`, "", "not valid JSON"},
		{"POST", "/v1/control/pause", `{"subject":"x"}`, "subject", "pause takes no subject; it takes reason"},
		{"POST", "/v1/control/pause", `[]`, "", "want an object"},
		{"PUT", "/v1/control/policies", `{}`, "actions", "missing"},
		{"PUT", "/v1/control/policies", `{"actions":{"pii":"shred"}}`, "actions.pii", `"shred" is not an action; want keep, mask, hash, drop`},
		{"PUT", "/v1/control/policies", `{"actions":{"pii":1}}`, "actions", "want a string"},
		{"POST", "/v1/control/forget", `{"subject":"  "}`, "subject", "missing"},
		{"POST", "/v1/control/forget", `{"Subject":"x","subjects":"y"}`, "subjects", "unknown field"},
		{"POST", "/v1/control/snapshot", `{"port":""}`, "port", "not a port name"},
		{"POST", "/v1/control/snapshot", `{"subject":"x"}`, "subject", "snapshot takes no subject; it takes port, reason"},
		{"POST", "/v1/control/pause", `{"port":"daily"}`, "port", "pause takes no port"},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.body, func(t *testing.T) {
			f := newFixture(t)
			w := f.do(t, c.method, c.path, governanceTok, c.body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%d, want 400\n%s", w.Code, w.Body)
			}
			e := decode[errorBody](t, w)
			if e.Field != c.field || !strings.Contains(e.Error, c.msg) {
				t.Errorf("error %q field %q; want field %q and %q", e.Error, e.Field, c.field, c.msg)
			}
			if n := len(f.ctl.calls()); n != 0 {
				t.Errorf("a bad request reached the controller %d times", n)
			}
		})
	}
	f := newFixture(t)
	big := `{"subject":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	if w := f.do(t, "POST", "/v1/control/forget", governanceTok, big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", w.Code)
	}
}

func TestIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	body := `{"subject":"customer-42"}`
	key := []string{"Idempotency-Key", "forget-42-2026-05-01"}
	first := f.do(t, "POST", "/v1/control/forget", governanceTok, body, key...)
	retry := f.do(t, "POST", "/v1/control/forget", governanceTok, body, key...)
	for _, w := range []*struct {
		name string
		code int
		ans  accepted
		loc  string
	}{
		{"first", first.Code, decode[accepted](t, first), first.Header().Get("Location")},
		{"retry", retry.Code, decode[accepted](t, retry), retry.Header().Get("Location")},
	} {
		if w.code != 202 || w.ans.CommandID != key[1] || w.loc != "/v1/control/commands/"+key[1] {
			t.Errorf("%s: %d %+v %q", w.name, w.code, w.ans, w.loc)
		}
	}
	if decode[accepted](t, first).Replayed || !decode[accepted](t, retry).Replayed {
		t.Error("replayed should be false first, true on the retry")
	}
	calls := f.ctl.calls()
	if len(calls) != 1 || calls[0].ID != key[1] {
		t.Fatalf("controller got %+v; want one command with ID %s", calls, key[1])
	}
	// The same key for another request is a conflict, not a retry.
	if w := f.do(t, "POST", "/v1/control/forget", governanceTok, `{"subject":"customer-43"}`, key...); w.Code != http.StatusConflict {
		t.Errorf("reused key, other body: %d", w.Code)
	}
	if w := f.do(t, "POST", "/v1/control/pause", governanceTok, "", key...); w.Code != http.StatusConflict {
		t.Errorf("reused key, other command: %d", w.Code)
	}
	// A key that would not survive a URL path or a log line is refused.
	for _, bad := range []string{"a/b", "a b", strings.Repeat("k", 129)} {
		w := f.do(t, "POST", "/v1/control/pause", ownerTok, "", "Idempotency-Key", bad)
		if w.Code != 400 || decode[errorBody](t, w).Field != "Idempotency-Key" {
			t.Errorf("key %q: %d %s", bad, w.Code, w.Body)
		}
	}
	if n := len(f.ctl.calls()); n != 1 {
		t.Errorf("controller called %d times in all, want 1", n)
	}
}

func TestControllerErrors(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("topic paused: %w", ErrInvalid): 400,
		fmt.Errorf("id taken: %w", ErrConflict):    409,
		errors.New("redis: connection refused"):    503,
	} {
		f := newFixture(t)
		f.ctl.err = err
		if w := f.do(t, "POST", "/v1/control/pause", ownerTok, ""); w.Code != want || !strings.Contains(w.Body.String(), err.Error()) {
			t.Errorf("%v: %d %s, want %d", err, w.Code, w.Body, want)
		}
	}
	f := newFixture(t)
	if w := f.do(t, "GET", "/v1/control/commands/nope", auditorTok, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown command: %d", w.Code)
	}
	f.s = &Server{Tokens: f.s.Tokens, Log: f.s.Log}
	f.h = f.s.Handler()
	if w := f.do(t, "POST", "/v1/control/pause", ownerTok, ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("no controller: %d", w.Code)
	}
	if w := f.do(t, "GET", "/v1/entities/k", ownerTok, ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("no query port: %d", w.Code)
	}
}
