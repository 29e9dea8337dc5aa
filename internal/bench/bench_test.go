package bench

import (
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/schemas"
)

func TestParseProc(t *testing.T) {
	// A command name with a space and a parenthesis must not shift fields.
	stat := []byte("4242 (bench (x) y) S 1 4242 4242 0 -1 4194560 1201 0 0 0 250 75 0 0 20 0 9 0 12345 1000 200 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3.25 {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25 s (250+75 ticks)", cpu, err)
	}
	status := []byte("Name:\tbench\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n")
	if b, err := parseStatusKB(status, "VmHWM:"); err != nil || b != 50<<20 {
		t.Fatalf("VmHWM = %d, %v; want %d", b, err, 50<<20)
	}
	if _, err := parseStatusKB(status, "VmSwap:"); err == nil {
		t.Fatal("a missing line must be an error")
	}
	// This process is real: both readers work on it.
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if b, err := peakRSS(os.Getpid()); err != nil || b <= 0 {
		t.Fatalf("peakRSS of self = %d, %v", b, err)
	}
}

func TestStats(t *testing.T) {
	if m := median([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing must be NaN")
	}
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for _, c := range []struct{ p, want float64 }{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestEvents(t *testing.T) {
	for _, i := range []int{0, 1, 99, 10_001, 2_999_999} {
		k, v := Event(i)
		if !json.Valid(v) || !json.Valid(k) {
			t.Fatalf("event %d is not JSON: %s", i, v)
		}
		if err := checkCopy(&kgo.Record{Key: k, Value: v}); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		e := expectFor(i)
		if eventIndex(e.validFrom) != i {
			t.Errorf("event %d: valid time %d names event %d", i, e.validFrom, eventIndex(e.validFrom))
		}
	}
	k, v := Event(7)
	v[len(v)-3] = 'X'
	if checkCopy(&kgo.Record{Key: k, Value: v}) == nil {
		t.Error("a changed copy must not pass")
	}
	ts := time.Date(2026, 11, 1, 12, 0, 0, 123456000, time.UTC).UnixMicro()
	_, v = TimedEvent(3, ts)
	if !json.Valid(v) {
		t.Fatalf("timed event is not JSON: %s", v)
	}
	if got, ok := rawTimestamp(v); !ok || got != ts {
		t.Errorf("rawTimestamp = %d, %v; want %d", got, ok, ts)
	}
}

// The check of Avro outputs accepts the product's own encoding of an event
// and refuses a wrong field, schema id or key.
func TestCheckAvro(t *testing.T) {
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	p, err := products.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OutputSchema()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{schema: s}
	if h.reg, err = schemas.NewRegistry([]string{reg.URL()}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := h.reg.Register(ctx, "out-value", s, schemas.Compat("BACKWARD"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, id)
	if err != nil {
		t.Fatal(err)
	}
	record := func(i int, mutate func(*products.Product)) *kgo.Record {
		e := expectFor(i)
		w, desc := e.weightKg, e.description
		row := products.Product{ID: e.id, Name: e.name, Description: &desc, WeightKg: &w}
		if mutate != nil {
			mutate(&row)
		}
		wire, err := enc.Append(nil, row, schemas.Meta{ValidFrom: e.validFrom, SystemFrom: time.Now().UnixMicro()})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Key: []byte(strconv.Itoa(int(e.id))), Value: wire}
	}
	if err := h.checkAvro(ctx, record(12345, nil), id); err != nil {
		t.Fatalf("the product's encoding is refused: %v", err)
	}
	if err := h.checkAvro(ctx, record(12345, func(p *products.Product) { p.Name = " hammer " }), id); err == nil {
		t.Error("an untrimmed name passes")
	}
	if err := h.checkAvro(ctx, record(12345, nil), id+1); err == nil {
		t.Error("a foreign schema id passes")
	}
	r := record(12345, nil)
	r.Key = []byte(`{"id":3345}`)
	if err := h.checkAvro(ctx, r, id); err == nil {
		t.Error("the input key passes as the output key")
	}
}

func TestRPConnectConfig(t *testing.T) {
	y, err := rpcConfig{
		Brokers: []string{"127.0.0.1:39092"}, Registry: "http://127.0.0.1:39081", In: "in", Out: "out", Group: "g",
		Subject: "out-value", BatchCount: 1024, BatchPeriod: "1ms", MaxInFlight: 64, CheckpointLimit: 81920,
	}.yaml()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kafka_franz:", `topics: ["in"]`, `consumer_group: "g"`, "checkpoint_limit: 81920", "count: 1024",
		"        root.name = $row.name.trim()", "        root._valid_from = this.source.ts_us.or(this.source.ts_ms * 1000)",
		`subject: "out-value"`, "raw_json: true", `topic: "out"`, "key: '${! @kafka_key }'", "max_in_flight: 64",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "\t") {
		t.Error("YAML must not hold tabs")
	}
}

func TestReport(t *testing.T) {
	r := &Results{
		Started: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), TotalSeconds: 600,
		Machine: Machine{CPU: "AMD EPYC", Cores: 2, MemoryGB: "23.5"},
		Options: map[string]string{"runs": "5", "backlog": "3000000"},
	}
	for i, c := range contenders {
		eps := 100_000 / float64(i+1)
		cr := &ContenderResult{ID: c.ID, Name: c.Name, What: c.What, Runs: []RunResult{{EventsPerSec: eps, CPUMicrosPerEvent: 5, PeakRSSMB: 50}}}
		cr.summarize()
		cr.Latency = &LatencyResult{AchievedRate: eps / 2, Samples: 10, P50Ms: float64(i + 1), P99Ms: 10 * float64(i+1), MaxMs: 100}
		r.Contenders = append(r.Contenders, cr)
	}
	r.finish()
	dir := t.TempDir()
	if err := WriteReport(r, dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Meshlet exactly-once | **25000** |", "| Meshlet exactly-once >= 3x Redpanda Connect | 1.25x | **no** |", "BENCHMARKS.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("BENCHMARKS.md lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(dir, "BENCHMARKS.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("chart is %v", b)
	}
}

func TestGlyphs(t *testing.T) {
	for r, g := range glyphs {
		for _, row := range g {
			if row > 0x1F {
				t.Errorf("glyph %q is wider than 5 pixels", r)
			}
		}
	}
	for _, s := range []string{"Meshlet exactly-once", "Redpanda Connect v4.105.0", "raw pipe, at-least-once", "p99 < 50 ms", "60%"} {
		for _, r := range s {
			if _, ok := glyphs[r]; !ok {
				t.Errorf("no glyph for %q", r)
			}
		}
	}
}
