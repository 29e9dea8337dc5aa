package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/transforms"
)

// snapshotProduct is the example product with a snapshot port writing to
// url every hour, keeping two.
func snapshotProduct(t *testing.T, url string) *runtime.Product {
	t.Helper()
	yml, err := os.ReadFile("../examples/inventory/products/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	avsc, err := os.ReadFile("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprintf("  - name: products-hourly\n    kind: snapshot\n    of: products\n    every: 1h\n    retain: 2\n    url: %s\n", url)
	text := strings.Replace(string(yml), "\ndeadLetter:", "\n"+port+"deadLetter:", 1)
	fsys := fstest.MapFS{"product.yaml": {Data: []byte(text)}, "schemas/product.avsc": {Data: avsc}}
	p, err := runtime.NewProduct(fsys, "product.yaml", transforms.Typed(products.Handle))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cdcLine is a Debezium change of the products table, shaped like the
// recorded capture's updates, with a fresh source position.
func cdcLine(t *testing.T, op string, id int, name string, weight float64, lsn int64) []byte {
	t.Helper()
	var tmpl map[string]any
	lines := bytes.Split(products.RecordedCDC(), []byte("\n"))
	for _, l := range lines {
		if bytes.Contains(l, []byte(`"op":"u"`)) {
			if err := json.Unmarshal(l, &tmpl); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if tmpl == nil {
		t.Fatal("the recorded capture has no update to copy")
	}
	p := tmpl["payload"].(map[string]any)
	row := map[string]any{"id": id, "name": name, "description": "made in a test", "weight": weight}
	p["op"], p["before"], p["after"] = op, row, row
	if op == "d" {
		p["after"] = nil
	}
	src := p["source"].(map[string]any)
	src["lsn"], src["ts_ms"] = lsn, 1_700_000_000_000+lsn
	p["ts_ms"] = 1_700_000_000_000 + lsn
	b, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeClock is the product's clock, moved by the test.
type fakeClock struct{ us atomic.Int64 }

func (c *fakeClock) now() int64              { return c.us.Load() }
func (c *fakeClock) advance(d time.Duration) { c.us.Add(d.Microseconds()) }

// snapshotsIn lists the whole snapshots in a snapshot port's directory.
func snapshotsIn(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dir, "*", snapshot.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, filepath.Base(filepath.Dir(m)))
	}
	slices.Sort(out)
	return out
}

// TestSnapshotPort runs the example product with a snapshot port on kfake
// (TCP) and the embedded registry (HTTP), its clock in the test's hands
// and checkpoints rare (an hour apart), so the snapshot port must sign
// what the commit markers prove committed. Each hour of product time with
// new input gives a snapshot, proven against the change log and holding
// every event committed before it; two are kept; the control command
// takes one at once; discovery and the contract announce the port.
// snapshotWorld is the example product with a snapshot port, running on
// kfake (TCP) and the embedded registry (HTTP) with its clock in the
// test's hands and checkpoints an hour apart.
type snapshotWorld struct {
	t      *testing.T
	r      *runtime.Runner
	clock  *fakeClock
	base   string // the management port
	data   string
	feed   func(n int)
	fed    int64
	stop   func() error
	client *kgo.Client
}

func startSnapshotProduct(t *testing.T, url string) *snapshotWorld {
	t.Helper()
	broker, reg := brokerAndRegistry(t)
	var err error
	p := snapshotProduct(t, url)
	m := p.Manifest
	if len(m.OutputPorts) != 1 || len(m.SnapshotPorts) != 1 {
		t.Fatalf("ports: %d stream, %d snapshot", len(m.OutputPorts), len(m.SnapshotPorts))
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	inTopic := m.InputPorts[0].Topic
	if err := kafka.EnsureTopics(context.Background(), client, map[string]int32{inTopic: 2, m.OutputPorts[0].Topic: 2, m.DeadLetter.Topic: 1}); err != nil {
		t.Fatal(err)
	}
	tokens, err := mgmt.ParseTokenList("olga:owner:" + ownerToken + ",audrey:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	w := &snapshotWorld{t: t, clock: &fakeClock{}, data: t.TempDir(), client: client}
	w.clock.us.Store(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
	w.r, err = runtime.Start(context.Background(), p,
		runtime.SeedBrokers(broker.ListenAddrs()...), runtime.SchemaRegistry(reg.URL()), runtime.DataDir(w.data),
		runtime.ManagementAddr("127.0.0.1:0"), runtime.Tokens(tokens), runtime.Clock(w.clock.now),
		runtime.CheckpointInterval(time.Hour), runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.r.Run(ctx) }()
	w.stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { w.stop() })
	w.base = "http://" + w.r.HTTPAddr().String()

	lsn := int64(40_000_000)
	w.feed = func(n int) {
		t.Helper()
		var lines [][]byte
		for i := range n {
			lsn++
			id := 200 + int(lsn%7)
			op := "u"
			if i%5 == 4 {
				op = "d"
			}
			lines = append(lines, cdcLine(t, op, id, fmt.Sprintf("thing %d", lsn), float64(lsn%100)/10, lsn))
		}
		recs, err := kafka.RecordedCDC(bytes.NewReader(bytes.Join(lines, []byte("\n"))), "test", inTopic, products.KeyFields)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		w.fed += int64(n)
		waitUntil(t, "the product to consume what was fed", func() bool { return w.r.Stats().EventsIn.Load() >= w.fed })
	}
	return w
}

// TestSnapshotPort: each hour of product time with new input gives a
// snapshot in the port's directory, proven against the change log and
// holding every event committed before it (with checkpoints an hour
// apart, the port signs what the commit markers prove committed); two
// are kept; an idle hour writes none; the control command takes one at
// once; discovery and the contract announce the port.
func TestSnapshotPort(t *testing.T) {
	out := t.TempDir()
	w := startSnapshotProduct(t, "file://"+out)
	r, clock, base, data := w.r, w.clock, w.base, w.data
	feed, stop := w.feed, w.stop

	// round feeds n events, lets an hour of product time pass, and
	// returns the snapshot that holds them all.
	round := func(n int) string {
		t.Helper()
		feed(n)
		clock.advance(time.Hour)
		var newest string
		waitUntil(t, "a snapshot of everything fed", func() bool {
			got := snapshotsIn(t, out)
			if len(got) == 0 {
				return false
			}
			newest = got[len(got)-1]
			sm, err := snapshot.ReadManifest(filepath.Join(out, newest))
			if err != nil {
				t.Fatal(err)
			}
			return entriesOf(sm) == r.Stats().Records.Load()
		})
		return newest
	}

	newest := round(6)
	proveHolds(t, data, filepath.Join(out, newest), r.Stats().Records.Load())
	round(6)
	newest = round(6)
	if got := snapshotsIn(t, out); len(got) != 2 || got[1] != newest {
		t.Fatalf("after three snapshots with retain: 2, the port holds %v", got)
	}
	proveHolds(t, data, filepath.Join(out, newest), r.Stats().Records.Load())

	if ents, err := os.ReadDir(out); err != nil || len(ents) != 2 {
		t.Fatalf("the port's directory holds %d entries (%v), want the two snapshots kept", len(ents), err)
	}
	if n := scrape(t, base, "meshlet_snapshot_writes_total", `port="products-hourly"`, `result="written"`); n < 3 {
		t.Fatalf("meshlet_snapshot_writes_total{result=written} = %v after three snapshots", n)
	}

	// An hour with nothing new is looked at, and writes no snapshot.
	clock.advance(time.Hour)
	waitUntil(t, "the idle hour's snapshot attempt", func() bool {
		return strings.Contains(httpGet(t, base+"/metrics"), `result="unchanged"} 1`)
	})
	if got := snapshotsIn(t, out); got[len(got)-1] != newest {
		t.Fatalf("an idle hour wrote snapshot %s", got[len(got)-1])
	}

	// The control command takes one now.
	feed(4)
	var issued struct {
		ID string `json:"command_id"`
	}
	if code := call(t, "POST", base+"/v1/control/snapshot", auditorToken, `{}`, nil); code != 403 {
		t.Fatalf("an auditor's snapshot command: %d, want 403", code)
	}
	if code := call(t, "POST", base+"/v1/control/snapshot", ownerToken, `{"port":"products-hourly","reason":"bootstrap a consumer"}`, &issued); code != 202 {
		t.Fatalf("snapshot command: %d", code)
	}
	waitOutcome(t, base, issued.ID, "applied")
	got := snapshotsIn(t, out)
	if len(got) != 2 || got[1] <= newest {
		t.Fatalf("after the command the port holds %v; the newest was %s before", got, newest)
	}
	proveHolds(t, data, filepath.Join(out, got[1]), r.Stats().Records.Load())
	if code := call(t, "POST", base+"/v1/control/snapshot", ownerToken, `{"port":"weekly"}`, &issued); code != 202 {
		t.Fatalf("snapshot command: %d", code)
	}
	if detail := waitOutcome(t, base, issued.ID, "rejected"); !strings.Contains(detail, `no such snapshot port "weekly"; the snapshot ports are products-hourly`) {
		t.Fatalf("a command for a port the product lacks: %q", detail)
	}

	// Discovery lists the port as product.yaml does; the contract names
	// where its snapshots are.
	var desc struct {
		OutputPorts []runtime.OutputPort `json:"outputPorts"`
	}
	if code := call(t, "GET", base+"/v1/product", "", "", &desc); code != 200 || len(desc.OutputPorts) != 2 ||
		desc.OutputPorts[1].Kind != "snapshot" || desc.OutputPorts[1].URL != "file://"+out || desc.OutputPorts[1].Every != "1h" {
		t.Fatalf("/v1/product output ports: %+v", desc.OutputPorts)
	}
	resp := httpGet(t, base+"/v1/contracts/products")
	for _, want := range []string{"servers:", "server: products-hourly", "type: local", "path: " + out + "/", "format: parquet"} {
		if !strings.Contains(resp, want) {
			t.Fatalf("the contract lacks %q:\n%s", want, resp)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// proveHolds verifies the snapshot in dir against the product's change
// log, and checks that it holds every one of the records the product had
// committed when it was taken, and no others.
func proveHolds(t *testing.T, data, dir string, committed int64) {
	t.Helper()
	v, _, err := auditlog.FindVerifier(filepath.Join(data, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := auditlog.OpenStore(filepath.Join(data, "changelog"), auditlog.IndexDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := snapshot.Verify(context.Background(), dir, snapshot.Source{Store: st, SchemaDir: query.SchemaDir(data)}, v)
	if err != nil {
		t.Fatalf("verify %s: %v", dir, err)
	}
	if entries := entriesOf(rep.Manifest); entries != committed {
		t.Fatalf("snapshot %s holds %d entries; the product had committed %d records when it was taken", filepath.Base(dir), entries, committed)
	}
	if len(rep.Manifest.Offsets) != 2 {
		t.Fatalf("snapshot offsets %+v: want both partitions of the output topic", rep.Manifest.Offsets)
	}
}

// waitOutcome waits until the command's outcome on the one replica is
// state, and returns its detail.
func waitOutcome(t *testing.T, base, id, state string) string {
	t.Helper()
	var detail string
	waitUntil(t, "command "+id+" "+state, func() bool {
		var ans struct {
			Outcomes []mgmt.Outcome `json:"outcomes"`
		}
		call(t, "GET", base+"/v1/control/commands/"+id, ownerToken, "", &ans)
		for _, o := range ans.Outcomes {
			if o.State == state {
				detail = o.Detail
				return true
			}
		}
		return false
	})
	return detail
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// entriesOf counts the change-log entries a snapshot holds.
func entriesOf(m *snapshot.Manifest) int64 {
	var n uint64
	for _, l := range m.Logs {
		n += l.Entries
	}
	return int64(n)
}
