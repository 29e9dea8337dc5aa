package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/ports"
	"github.com/prometheus/client_golang/prometheus"
)

// The test principals and their tokens.
const (
	consumerTok   = "tok-consumer-c0ffee-0001"
	auditorTok    = "tok-auditor-beef-0002"
	ownerTok      = "tok-owner-f00d-0003"
	governanceTok = "tok-governance-d00d-0004"
)

var tokenOf = map[Role]string{
	RoleConsumer: consumerTok, RoleAuditor: auditorTok, RoleOwner: ownerTok, RoleGovernance: governanceTok,
}

var allTokens = []string{consumerTok, auditorTok, ownerTok, governanceTok}

// clock advances by step on every reading, so durations are exact.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// fakeController records what it was asked.
type fakeController struct {
	mu       sync.Mutex
	issued   []ControlRequest
	by       []Principal
	err      error
	outcomes map[string][]Outcome
}

func (f *fakeController) Issue(ctx context.Context, cmd ControlRequest, by Principal) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.issued = append(f.issued, cmd)
	f.by = append(f.by, by)
	if cmd.ID != "" {
		return cmd.ID, nil
	}
	return "cmd-" + strconv.Itoa(len(f.issued)), nil
}

func (f *fakeController) Outcomes(ctx context.Context, id string) ([]Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.outcomes[id]
	if !ok {
		return nil, ErrUnknownCommand
	}
	return o, nil
}

func (f *fakeController) calls() []ControlRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ControlRequest(nil), f.issued...)
}

// fakeQuery stands in for the query port and says what it was asked.
type fakeQuery struct{}

func (fakeQuery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path, "principal": p.Name})
}

type fakeSink struct {
	mu  sync.Mutex
	got []Access
}

func (f *fakeSink) Record(ctx context.Context, a Access) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, a)
	return nil
}

type fixture struct {
	s       *Server
	h       http.Handler
	ctl     *fakeController
	sink    *fakeSink
	logs    *syncBuffer
	reg     *prometheus.Registry
	clock   *clock
	started time.Time
}

// syncBuffer is a bytes.Buffer slog may write from request goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func loadOrders(t *testing.T) *contracts.Contract {
	t.Helper()
	c, err := contracts.Load("../../contracts/testdata/orders.odcs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const ordersAvsc = `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"order_id","type":"string"}]}`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tokens, err := ParseTokenList("cathy:consumer:" + consumerTok + ",audrey:auditor:" + auditorTok +
		",olga:owner:" + ownerTok + ",gina:governance:" + governanceTok)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f := &fixture{
		ctl:     &fakeController{outcomes: map[string][]Outcome{"cmd-1": {{Replica: "r0", State: "done", At: started}}}},
		sink:    &fakeSink{},
		logs:    &syncBuffer{},
		reg:     prometheus.NewRegistry(),
		clock:   &clock{t: started.Add(time.Hour), step: time.Millisecond},
		started: started,
	}
	f.s = &Server{
		Tokens:   tokens,
		Manifest: map[string]any{"id": "shop.orders", "kind": "DataProduct"},
		Product: Product{
			ID: "shop.orders", Name: "Shop orders", Version: "2.1.0", Domain: "shop",
			Description: "Every order placed in the web shop, as versioned events.",
			Team:        Team{Name: "Checkout", Email: "checkout@example.com"},
			Inputs:      []Input{{Name: "orders-cdc", Topic: "pg.public.orders", Format: "debezium-json"}},
			Outputs: []Output{{Name: "orders", Topic: "shop.orders.v2", Subject: "shop.orders.v2-value",
				Contract: loadOrders(t), Schema: []byte(ordersAvsc)}},
		},
		Query: fakeQuery{},
		DeadLetters: func(ctx context.Context, limit int) ([]ports.Dead, error) {
			return []ports.Dead{{Class: "malformed", OriginTopic: "pg.public.orders", OriginOffset: 9, Key: "o-9"}}[:min(limit, 1)], nil
		},
		Mesh: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"mesh": r.URL.Path})
		}),
		UI: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!doctype html><title>page</title>"))
		}),
		Control:    f.ctl,
		Sink:       f.sink,
		Gatherer:   f.reg,
		Registerer: f.reg,
		Log:        slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        f.clock.Now,
		Started:    started,
	}
	f.h = f.s.Handler()
	return f
}

// do sends a request with token (none when empty) and returns the answer.
func (f *fixture) do(t *testing.T, method, target, token, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, w.Body)
	}
	return v
}
