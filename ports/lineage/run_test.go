package lineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// recorder is a Transport that keeps what it is sent, as bytes on the wire.
// fail, when set, decides per call (0-based) whether delivery fails.
type recorder struct {
	mu    sync.Mutex
	sent  [][]byte
	calls int
	fail  func(call int) error
}

func (r *recorder) Emit(_ context.Context, ev *RunEvent) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	r.mu.Lock()
	call := r.calls
	r.calls++
	if r.fail != nil {
		err = r.fail(call)
	}
	if err == nil {
		r.sent = append(r.sent, raw)
	}
	r.mu.Unlock()
	return err
}

func (r *recorder) raw(i int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[i]
}

func (r *recorder) events(t testing.TB) []RunEvent {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RunEvent, len(r.sent))
	for i, raw := range r.sent {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return out
}

func (r *recorder) types(t testing.TB) []EventType {
	var out []EventType
	for _, ev := range r.events(t) {
		out = append(out, ev.EventType)
	}
	return out
}

// clock is a hand-moved clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("CET", 3600))}
}

const bootstrap = "broker-1:9092,broker-2:9092"

func testJob() Job {
	return Job{
		Namespace: "sales",
		Name:      "orders-enriched",
		Inputs: []Dataset{
			Kafka(bootstrap, "orders",
				Field{Name: "order_id", Type: "string", Doc: "the order's key"},
				Field{Name: "customer_id", Type: "string"},
				Field{Name: "amount", Type: "double"}),
			Kafka(bootstrap, "customers",
				Field{Name: "customer_id", Type: "string"},
				Field{Name: "name", Type: `["null","string"]`}),
		},
		Outputs: []Dataset{
			Kafka(bootstrap, "orders_enriched",
				Field{Name: "order_id", Type: "string"},
				Field{Name: "customer_id", Type: "string"},
				Field{Name: "name", Type: `["null","string"]`},
				Field{Name: "amount", Type: "double"},
				Field{Name: "score", Type: "int", Doc: "computed"}),
			Kafka(bootstrap, "orders_audit"),
		},
	}
}

func startTestRun(t testing.TB, tr Transport, opts ...Option) *Run {
	t.Helper()
	opts = append([]Option{WithClock(newClock().Now), WithEngineVersion("v0.9.0-test")}, opts...)
	r, err := Start(t.Context(), tr, testJob(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readStateFile(t testing.TB, dir string) runState {
	t.Helper()
	st, err := readState(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEveryEventConformsToTheSpec drives a Run through every event it can
// emit and validates each one, as sent, against the official schemas.
func TestEveryEventConformsToTheSpec(t *testing.T) {
	v := loadSpec(t)
	stats := Stats{
		Inputs:  map[string]Counts{"orders": {Rows: 1200, Bytes: 96_000}, "customers": {Rows: 40, Bytes: 2_000}},
		Outputs: map[string]Counts{"orders_enriched": {Rows: 1190, Bytes: 120_000}},
	}
	scenarios := []struct {
		name string
		want []EventType
		run  func(t *testing.T, tr *recorder)
	}{
		{"START RUNNING ABORT", []EventType{EventStart, EventRunning, EventAbort}, func(t *testing.T, tr *recorder) {
			r := startTestRun(t, tr)
			if err := r.Running(t.Context(), stats); err != nil {
				t.Fatal(err)
			}
			if err := r.Stop(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"START FAIL", []EventType{EventStart, EventFail}, func(t *testing.T, tr *recorder) {
			r := startTestRun(t, tr)
			if err := r.Stop(t.Context(), errors.New("output topic orders_enriched: authorization failed")); err != nil {
				t.Fatal(err)
			}
		}},
		{"leftover FAIL then START", []EventType{EventFail, EventStart}, func(t *testing.T, tr *recorder) {
			dir := t.TempDir()
			startTestRun(t, &recorder{}, WithStateDir(dir)) // never stopped
			startTestRun(t, tr, WithStateDir(dir))
		}},
		{"undelivered ABORT sent by the next Start", []EventType{EventAbort, EventStart}, func(t *testing.T, tr *recorder) {
			dir := t.TempDir()
			down := &recorder{fail: func(call int) error {
				if call > 0 {
					return errors.New("backend down")
				}
				return nil
			}}
			r := startTestRun(t, down, WithStateDir(dir))
			if err := r.Stop(t.Context(), context.Canceled); err == nil {
				t.Fatal("Stop through a failing transport reported no error")
			}
			startTestRun(t, tr, WithStateDir(dir))
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			tr := &recorder{}
			sc.run(t, tr)
			if got := tr.types(t); !slices.Equal(got, sc.want) {
				t.Fatalf("events %v, want %v", got, sc.want)
			}
			for i := range sc.want {
				if err := v.validate(tr.raw(i)); err != nil {
					t.Errorf("event %d (%s): %v\n%s", i, sc.want[i], err, tr.raw(i))
				}
			}
		})
	}
}

func TestStartDescribesJobAndDatasets(t *testing.T) {
	tr := &recorder{}
	r := startTestRun(t, tr)
	ev := tr.events(t)[0]
	if ev.Job.Namespace != "sales" || ev.Job.Name != "orders-enriched" {
		t.Errorf("job %s/%s", ev.Job.Namespace, ev.Job.Name)
	}
	jt := ev.Job.Facets.JobType
	if jt.ProcessingType != "STREAMING" || jt.Integration != "MESHLET" || jt.JobType != "DATA_PRODUCT" {
		t.Errorf("jobType %+v", jt)
	}
	pe := ev.Run.Facets.ProcessingEngine
	if pe.Name != "meshlet" || pe.Version != "v0.9.0-test" {
		t.Errorf("processing_engine %+v", pe)
	}
	if ev.Run.RunID != r.ID().String() || ev.Producer != DefaultProducer || ev.SchemaURL != RunEventSchemaURL {
		t.Errorf("run %s producer %s schemaURL %s", ev.Run.RunID, ev.Producer, ev.SchemaURL)
	}
	orders := ev.Inputs[0]
	if orders.Namespace != "kafka://broker-1:9092" || orders.Name != "orders" {
		t.Errorf("input %s %s", orders.Namespace, orders.Name)
	}
	if ds := orders.Facets.DataSource; ds.Name != "kafka://broker-1:9092" || ds.URI != "kafka://broker-1:9092/orders" {
		t.Errorf("dataSource %+v", ds)
	}
	wantFields := []SchemaField{{"order_id", "string", "the order's key"}, {"customer_id", "string", ""}, {"amount", "double", ""}}
	if got := orders.Facets.Schema.Fields; !slices.Equal(got, wantFields) {
		t.Errorf("schema fields %+v", got)
	}
	audit := ev.Outputs[1]
	if audit.Facets.Schema != nil || audit.Facets.ColumnLineage != nil || audit.Facets.DataSource == nil {
		t.Errorf("a dataset without fields has no schema or lineage facet: %+v", audit.Facets)
	}
	for _, f := range []BaseFacet{jt.BaseFacet, pe.BaseFacet, orders.Facets.DataSource.BaseFacet, orders.Facets.Schema.BaseFacet} {
		if f.Producer != DefaultProducer || f.SchemaURL == "" {
			t.Errorf("facet base %+v", f)
		}
	}
}

// TestRunningNamesEveryDatasetWithStatistics: RUNNING lists every input and
// output; those with counts carry them as statistics facets.
func TestRunningNamesEveryDatasetWithStatistics(t *testing.T) {
	v := loadSpec(t)
	tr := &recorder{}
	r := startTestRun(t, tr)
	stats := Stats{
		Inputs:  map[string]Counts{"orders": {Rows: 1200, Bytes: 96_000}},
		Outputs: map[string]Counts{"orders_enriched": {Rows: 1190, Bytes: 120_000}},
	}
	if err := r.Running(t.Context(), stats); err != nil {
		t.Fatal(err)
	}
	ev := tr.events(t)[1]
	if ev.EventType != EventRunning {
		t.Fatalf("event %s", ev.EventType)
	}
	if err := v.validate(tr.raw(1)); err != nil {
		t.Fatal(err)
	}
	var ins, outs []string
	for _, d := range ev.Inputs {
		ins = append(ins, d.Name)
		if d.Facets != nil {
			t.Errorf("RUNNING repeats the static facets of %s", d.Name)
		}
	}
	for _, d := range ev.Outputs {
		outs = append(outs, d.Name)
	}
	if !slices.Equal(ins, []string{"orders", "customers"}) || !slices.Equal(outs, []string{"orders_enriched", "orders_audit"}) {
		t.Fatalf("inputs %v outputs %v", ins, outs)
	}
	in := ev.Inputs[0].InputFacets.InputStatistics
	if in.RowCount != 1200 || in.Size != 96_000 || in.SchemaURL != inputStatisticsSchemaURL {
		t.Errorf("orders inputStatistics %+v", in)
	}
	out := ev.Outputs[0].OutputFacets.OutputStatistics
	if out.RowCount != 1190 || out.Size != 120_000 || out.SchemaURL != outputStatisticsSchemaURL {
		t.Errorf("orders_enriched outputStatistics %+v", out)
	}
	if ev.Inputs[1].InputFacets != nil || ev.Outputs[1].OutputFacets != nil {
		t.Errorf("datasets without counts carry statistics: %+v %+v", ev.Inputs[1], ev.Outputs[1])
	}

	err := r.Running(t.Context(), Stats{Inputs: map[string]Counts{"payments": {Rows: 1}}, Outputs: map[string]Counts{"orders": {Rows: 1}}})
	if !errors.Is(err, ErrUnknownDataset) || !strings.Contains(err.Error(), "input payments") || !strings.Contains(err.Error(), "output orders") {
		t.Errorf("unknown datasets: %v", err)
	}
	if n := len(tr.events(t)); n != 2 {
		t.Errorf("an event was sent for unknown datasets (%d events)", n)
	}
}

func TestStopChoosesAbortOrFail(t *testing.T) {
	cases := []struct {
		cause error
		want  EventType
	}{
		{nil, EventAbort},
		{context.Canceled, EventAbort},
		{fmt.Errorf("shutting down: %w", context.Canceled), EventAbort},
		{errors.New("schema registry: subject orders_enriched-value: incompatible"), EventFail},
		{context.DeadlineExceeded, EventFail},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.cause), func(t *testing.T) {
			tr := &recorder{}
			r := startTestRun(t, tr)
			last := Stats{Outputs: map[string]Counts{"orders_enriched": {Rows: 7, Bytes: 700}}}
			if err := r.Running(t.Context(), last); err != nil {
				t.Fatal(err)
			}
			if err := r.Stop(t.Context(), tc.cause); err != nil {
				t.Fatal(err)
			}
			evs := tr.events(t)
			end := evs[len(evs)-1]
			if end.EventType != tc.want {
				t.Fatalf("Stop(%v) sent %s, want %s", tc.cause, end.EventType, tc.want)
			}
			em := end.Run.Facets.ErrorMessage
			switch {
			case tc.want == EventFail && (em == nil || em.Message != tc.cause.Error() || em.ProgrammingLanguage != "GO"):
				t.Errorf("FAIL errorMessage %+v", em)
			case tc.want == EventAbort && em != nil:
				t.Errorf("ABORT carries errorMessage %+v", em)
			}
			if got := end.Outputs[0].OutputFacets.OutputStatistics.RowCount; got != 7 {
				t.Errorf("terminal event rowCount %d, want the last 7", got)
			}
			if end.Inputs[0].Facets == nil || end.Inputs[0].Facets.Schema == nil {
				t.Error("terminal event lacks the static dataset facets")
			}
			if err := r.Running(t.Context(), Stats{}); !errors.Is(err, ErrStopped) {
				t.Errorf("Running after Stop: %v", err)
			}
			if err := r.Stop(t.Context(), nil); !errors.Is(err, ErrStopped) {
				t.Errorf("second Stop: %v", err)
			}
			if n := len(tr.events(t)); n != 3 {
				t.Errorf("%d events, want START RUNNING and one terminal", n)
			}
		})
	}
}

func TestEventTimeAndRunID(t *testing.T) {
	c := newClock()
	tr := &recorder{}
	r, err := Start(t.Context(), tr, testJob(), WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	c.advance(1500 * time.Millisecond)
	if err := r.Running(t.Context(), Stats{}); err != nil {
		t.Fatal(err)
	}
	var times []string
	for i := range 2 {
		var wire struct {
			EventTime string `json:"eventTime"`
		}
		if err := json.Unmarshal(tr.raw(i), &wire); err != nil {
			t.Fatal(err)
		}
		times = append(times, wire.EventTime)
	}
	// 05:06:07.891234567 CET is 04:06:07.891 UTC, truncated to the millisecond.
	if !slices.Equal(times, []string{"2026-03-04T04:06:07.891Z", "2026-03-04T04:06:09.391Z"}) {
		t.Errorf("event times %q", times)
	}
	id := r.ID()
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Errorf("run id %s: version %d variant %s", id, id.Version(), id.Variant())
	}
	sec, nsec := id.Time().UnixTime()
	if got, want := time.Unix(sec, nsec).UnixMilli(), newClock().Now().UnixMilli(); got != want {
		t.Errorf("run id time %d ms, start %d ms", got, want)
	}
	r2, err := Start(t.Context(), &recorder{}, testJob(), WithClock(newClock().Now))
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID() == id {
		t.Error("two runs started at the same instant share an id")
	}
}

func TestColumnLineage(t *testing.T) {
	lineageOf := func(t *testing.T, job Job) map[string][]InputField {
		t.Helper()
		tr := &recorder{}
		if _, err := Start(t.Context(), tr, job); err != nil {
			t.Fatal(err)
		}
		cl := tr.events(t)[0].Outputs[0].Facets.ColumnLineage
		if cl == nil {
			return nil
		}
		out := map[string][]InputField{}
		for f, src := range cl.Fields {
			out[f] = src.InputFields
		}
		return out
	}
	orders := func(f string) InputField { return InputField{"kafka://broker-1:9092", "orders", f} }
	customers := func(f string) InputField { return InputField{"kafka://broker-1:9092", "customers", f} }

	t.Run("identity by name", func(t *testing.T) {
		got := lineageOf(t, testJob())
		want := map[string][]InputField{
			"order_id":    {orders("order_id")},
			"customer_id": {orders("customer_id"), customers("customer_id")},
			"name":        {customers("name")},
			"amount":      {orders("amount")},
		}
		if !equalLineage(got, want) {
			t.Errorf("lineage %v, want %v (score has no source of its name)", got, want)
		}
	})
	t.Run("caller mapping", func(t *testing.T) {
		job := testJob()
		job.Outputs[0].Lineage = map[string][]FieldRef{
			"score":    {{Input: "orders", Field: "amount"}, {Input: "customers", Field: "name"}},
			"order_id": {{Input: "orders", Field: "order_id"}},
		}
		got := lineageOf(t, job)
		want := map[string][]InputField{
			"score":    {orders("amount"), customers("name")},
			"order_id": {orders("order_id")},
		}
		if !equalLineage(got, want) {
			t.Errorf("lineage %v, want %v", got, want)
		}
	})
	t.Run("empty mapping declares none", func(t *testing.T) {
		job := testJob()
		job.Outputs[0].Lineage = map[string][]FieldRef{}
		if got := lineageOf(t, job); got != nil {
			t.Errorf("lineage %v, want none", got)
		}
	})
}

func equalLineage(a, b map[string][]InputField) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestInvalidJobs(t *testing.T) {
	cases := map[string]func(j *Job){
		"no namespace":          func(j *Job) { j.Namespace = "" },
		"no name":               func(j *Job) { j.Name = "" },
		"dataset without name":  func(j *Job) { j.Inputs[0].Name = "" },
		"no bootstrap server":   func(j *Job) { j.Outputs[0] = Kafka(" ", "orders_enriched") },
		"duplicate input":       func(j *Job) { j.Inputs[1].Name = "orders" },
		"duplicate output":      func(j *Job) { j.Outputs[1].Name = "orders_enriched" },
		"lineage on an input":   func(j *Job) { j.Inputs[0].Lineage = map[string][]FieldRef{} },
		"lineage from no input": func(j *Job) { j.Outputs[0].Lineage = map[string][]FieldRef{"score": {{Input: "payments", Field: "x"}}} },
		"lineage from no field": func(j *Job) { j.Outputs[0].Lineage = map[string][]FieldRef{"score": {{Input: "orders", Field: "tax"}}} },
		"lineage to an unlisted": func(j *Job) {
			j.Outputs[0].Lineage = map[string][]FieldRef{"tax": {{Input: "orders", Field: "amount"}}}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			job := testJob()
			mutate(&job)
			tr := &recorder{}
			_, err := Start(t.Context(), tr, job)
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("Start: %v, want ErrInvalidJob", err)
			}
			if tr.calls != 0 {
				t.Error("an invalid job emitted an event")
			}
		})
	}
	if _, err := Start(t.Context(), &recorder{}, testJob(), WithProducer("meshlet")); err == nil {
		t.Error("a producer that is not an absolute URI was accepted")
	}
}

func TestKafkaNamespace(t *testing.T) {
	cases := map[string]string{
		"broker-1:9092":                   "kafka://broker-1:9092",
		"broker-1:9093,broker-2:9093":     "kafka://broker-1:9093",
		" broker-1:19092 , broker-2:9092": "kafka://broker-1:19092",
		"SASL_SSL://broker-1:9094":        "kafka://broker-1:9094",
		"broker-1":                        "kafka://broker-1:9092",
		"[::1]:9092":                      "kafka://[::1]:9092",
		"::1":                             "kafka://[::1]:9092",
		"":                                "",
	}
	for in, want := range cases {
		if got := KafkaNamespace(in); got != want {
			t.Errorf("KafkaNamespace(%q) = %q, want %q", in, got, want)
		}
	}
}

// logRecorder is a slog.Handler that keeps records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) levels() []slog.Level {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Level
	for _, r := range h.records {
		out = append(out, r.Level)
	}
	return out
}

// TestKeepLogsOncePerOutage ticks Keep by hand through two outages: each is
// logged when it begins and when it ends, and Keep never gives up.
func TestKeepLogsOncePerOutage(t *testing.T) {
	// Calls: 0 START, then one per tick. Ticks 1-3 fail, 4 succeeds, 5 fails, 6 succeeds.
	failing := map[int]bool{1: true, 2: true, 3: true, 5: true}
	tr := &recorder{fail: func(call int) error {
		if failing[call] {
			return errors.New("connection refused")
		}
		return nil
	}}
	logs := &logRecorder{}
	r := startTestRun(t, tr, WithLogger(slog.New(logs)))
	ticks := make(chan time.Time)
	r.newTicker = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	var snapshots int
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Keep(ctx, time.Minute, func() Stats {
			snapshots++
			return Stats{Outputs: map[string]Counts{"orders_enriched": {Rows: int64(snapshots)}}}
		})
	}()
	for range 6 {
		ticks <- time.Time{} // Keep takes a tick only after handling the one before
	}
	cancel()
	<-done

	want := []slog.Level{slog.LevelWarn, slog.LevelInfo, slog.LevelWarn, slog.LevelInfo}
	if got := logs.levels(); !slices.Equal(got, want) {
		t.Fatalf("log levels %v, want %v", got, want)
	}
	logs.mu.Lock()
	var missed []int64
	for _, rec := range logs.records {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "missed" {
				missed = append(missed, a.Value.Int64())
			}
			return true
		})
	}
	logs.mu.Unlock()
	if !slices.Equal(missed, []int64{3, 1}) {
		t.Errorf("recoveries report missed %v, want [3 1]", missed)
	}
	// START plus the two RUNNING that got through (ticks 4 and 6).
	evs := tr.events(t)
	if len(evs) != 3 || evs[1].EventType != EventRunning || evs[2].Outputs[0].OutputFacets.OutputStatistics.RowCount != 6 {
		t.Errorf("delivered %v", tr.types(t))
	}
}

func TestKeepEndsWhenTheRunStops(t *testing.T) {
	tr := &recorder{}
	r := startTestRun(t, tr)
	ticks := make(chan time.Time)
	r.newTicker = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Keep(t.Context(), 0, nil)
	}()
	ticks <- time.Time{}
	if err := r.Stop(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	ticks <- time.Time{}
	<-done
	if got := tr.types(t); !slices.Equal(got, []EventType{EventStart, EventRunning, EventAbort}) {
		t.Errorf("events %v", got)
	}
}

// TestLeftoverRunFileFailsPreviousRun: a run recorded and never stopped is
// closed with FAIL, under its own id, before the next run's START.
func TestLeftoverRunFileFailsPreviousRun(t *testing.T) {
	dir := t.TempDir()
	first := startTestRun(t, &recorder{}, WithStateDir(dir))
	if st := readStateFile(t, dir); st.RunID != first.ID().String() || st.Namespace != "sales" || st.Name != "orders-enriched" {
		t.Fatalf("state %+v after the first Start", st)
	}
	// The process dies here: no Stop.

	tr := &recorder{}
	second := startTestRun(t, tr, WithStateDir(dir))
	evs := tr.events(t)
	if len(evs) != 2 || evs[0].EventType != EventFail || evs[1].EventType != EventStart {
		t.Fatalf("events %v, want FAIL then START", tr.types(t))
	}
	assertLeftoverFail(t, evs[0], first.ID())
	if evs[1].Run.RunID != second.ID().String() || second.ID() == first.ID() {
		t.Errorf("START of %s, second run %s, first %s", evs[1].Run.RunID, second.ID(), first.ID())
	}
	if st := readStateFile(t, dir); st.RunID != second.ID().String() {
		t.Errorf("state names %s, want the new run", st.RunID)
	}
	if err := second.Stop(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
		t.Errorf("state file after Stop: %v", err)
	}
}

func assertLeftoverFail(t *testing.T, ev RunEvent, old uuid.UUID) {
	t.Helper()
	if ev.Run.RunID != old.String() {
		t.Errorf("FAIL for run %s, want the leftover %s", ev.Run.RunID, old)
	}
	if ev.Job.Namespace != "sales" || ev.Job.Name != "orders-enriched" {
		t.Errorf("FAIL for job %s/%s", ev.Job.Namespace, ev.Job.Name)
	}
	em := ev.Run.Facets.ErrorMessage
	if em == nil || !strings.Contains(em.Message, "ended without stopping the run") || em.ProgrammingLanguage != "GO" {
		t.Errorf("errorMessage %+v", em)
	}
}

func TestUndeliveredStopIsSentByTheNextStart(t *testing.T) {
	dir := t.TempDir()
	down := &recorder{fail: func(call int) error {
		if call > 0 {
			return errors.New("503")
		}
		return nil
	}}
	first := startTestRun(t, down, WithStateDir(dir))
	if err := first.Stop(t.Context(), errors.New("poison record at orders/3@1200")); err == nil {
		t.Fatal("Stop reported success through a failing transport")
	}
	st := readStateFile(t, dir)
	if st.Pending == nil || st.Pending.EventType != EventFail || st.Pending.Message != "poison record at orders/3@1200" {
		t.Fatalf("pending %+v", st.Pending)
	}

	tr := &recorder{}
	startTestRun(t, tr, WithStateDir(dir))
	evs := tr.events(t)
	if len(evs) != 2 || evs[0].EventType != EventFail || evs[0].Run.RunID != first.ID().String() {
		t.Fatalf("events %v", tr.types(t))
	}
	if em := evs[0].Run.Facets.ErrorMessage; em == nil || em.Message != "poison record at orders/3@1200" {
		t.Errorf("the original failure is lost: %+v", em)
	}
}

func TestStartFailures(t *testing.T) {
	t.Run("leftover not delivered: no START, leftover kept", func(t *testing.T) {
		dir := t.TempDir()
		first := startTestRun(t, &recorder{}, WithStateDir(dir))
		tr := &recorder{fail: func(int) error { return errors.New("down") }}
		if _, err := Start(t.Context(), tr, testJob(), WithStateDir(dir)); err == nil || !strings.Contains(err.Error(), first.ID().String()) {
			t.Fatalf("Start: %v", err)
		}
		if st := readStateFile(t, dir); st.RunID != first.ID().String() {
			t.Errorf("state %s, want the leftover %s kept", st.RunID, first.ID())
		}
	})
	t.Run("START not delivered: nothing recorded", func(t *testing.T) {
		dir := t.TempDir()
		tr := &recorder{fail: func(int) error { return errors.New("down") }}
		if _, err := Start(t.Context(), tr, testJob(), WithStateDir(dir)); err == nil {
			t.Fatal("Start succeeded through a failing transport")
		}
		if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
			t.Errorf("state file of a run that never started: %v", err)
		}
	})
	t.Run("unreadable state moved aside", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, StateFile)
		if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
		logs := &logRecorder{}
		tr := &recorder{}
		startTestRun(t, tr, WithStateDir(dir), WithLogger(slog.New(logs)))
		if got := tr.types(t); !slices.Equal(got, []EventType{EventStart}) {
			t.Errorf("events %v", got)
		}
		if b, err := os.ReadFile(path + ".corrupt"); err != nil || string(b) != "{not json" {
			t.Errorf("moved-aside file: %q %v", b, err)
		}
		if got := logs.levels(); !slices.Equal(got, []slog.Level{slog.LevelWarn}) {
			t.Errorf("logs %v", got)
		}
	})
}
