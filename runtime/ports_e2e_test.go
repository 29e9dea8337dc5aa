package runtime_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

type fanRow struct {
	ID    int64  `json:"id"`
	First string `json:"first_name"`
	Last  string `json:"last_name"`
	Email string `json:"email"`
}

// fanOut is both ports' record type (the schemas have the same fields).
type fanOut struct {
	ID    int64  `avro:"id"`
	Name  string `avro:"name"`
	Email string `avro:"email"`
}

// fanHandler publishes each customer to the first port (unaddressed) and
// its name to port names; a row named "misrouted" addresses a port the
// manifest does not declare.
func fanHandler(_ context.Context, c *cdc.Change, out []transforms.Output) ([]transforms.Output, error) {
	var row fanRow
	if err := json.Unmarshal(c.After, &row); err != nil {
		return out, err
	}
	key := strconv.FormatInt(row.ID, 10)
	v := fanOut{ID: row.ID, Name: strings.TrimSpace(row.First + " " + row.Last), Email: row.Email}
	port := "names"
	if row.First == "misrouted" {
		port = "nowhere"
	}
	return append(out, transforms.Output{Key: key, Value: v}, transforms.Output{Port: port, Key: key, Value: v}), nil
}

func customerChange(op string, lsn int64, row fanRow) *kgo.Record {
	src := map[string]any{"version": "1.2.1.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": 1700000000000 + lsn,
		"snapshot": "false", "db": "postgres", "schema": "inventory", "table": "customers", "txId": 600 + lsn, "lsn": lsn, "xmin": nil}
	v, _ := json.Marshal(map[string]any{"before": nil, "after": row, "source": src, "op": op, "ts_ms": 1700000000000 + lsn, "transaction": nil})
	k, _ := json.Marshal(map[string]any{"id": row.ID})
	return &kgo.Record{Topic: "db.inventory.customers", Key: k, Value: v}
}

// TestSeveralOutputPorts runs a product with two stream ports: each
// record reaches its port's topic under its port's schema id, each port's
// policy and contract apply to its own records only, a violation on one
// port takes back the event's records on the other, a record addressed to
// an unknown port is a dead letter, and the change log names the port of
// each entry.
func TestSeveralOutputPorts(t *testing.T) {
	broker, reg := brokerAndRegistry(t)
	var err error
	p, err := runtime.NewProduct(os.DirFS("testdata/fanout"), "product.yaml", fanHandler)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	err = kafka.EnsureTopics(ctx, cl, map[string]int32{"db.inventory.customers": 2, "sales.customers.v1": 2, "sales.customer-names.v1": 2, "sales.customers.dlq": 1})
	if err != nil {
		t.Fatal(err)
	}
	in := []*kgo.Record{
		customerChange("c", 1, fanRow{1001, "Sally", "Thomas", "sally.thomas@acme.com"}),
		customerChange("c", 2, fanRow{1002, "George", "Bailey", "gbailey@foobar.com"}),
		customerChange("c", 3, fanRow{1003, " ", "", "blank@example.com"}), // names' contract refuses it
		customerChange("c", 4, fanRow{1004, "misrouted", "Kretchmar", "annek@noanswer.org"}),
		customerChange("u", 5, fanRow{1001, "Sally", "Thomas", "sally@new.example"}),
	}
	if err := cl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	r, err := runtime.Start(ctx, p, runtime.SeedBrokers(broker.ListenAddrs()...), runtime.SchemaRegistry(reg.URL()),
		runtime.DataDir(dataDir), runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	deadline := time.Now().Add(time.Minute)
	for r.Stats().EventsIn.Load() < int64(len(in)) {
		if time.Now().After(deadline) {
			t.Fatalf("processed %d of %d events", r.Stats().EventsIn.Load(), len(in))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ps := r.Ports()
	if len(ps) != 2 || ps[0].Name != "customers" || ps[1].Name != "names" || ps[0].SchemaID == ps[1].SchemaID ||
		ps[0].Subject != "sales.customers.v1-value" || ps[1].Subject != "sales.customer-names.v1-value" {
		t.Fatalf("ports %+v: want customers and names, each under its own subject and schema id", ps)
	}
	if ps[0].Records != 3 || ps[1].Records != 3 {
		t.Fatalf("ports published %d and %d records, want 3 each (1001 twice, 1002)", ps[0].Records, ps[1].Records)
	}
	regc, err := schemas.NewRegistry([]string{reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	for i, port := range ps {
		versions, err := regc.Client().SubjectVersions(ctx, port.Subject)
		if err != nil || len(versions) != 1 {
			t.Errorf("subject %s: versions %v, %v; want the port's schema registered once", port.Subject, versions, err)
		}
		schemaText, _ := os.ReadFile(filepath.Join("testdata/fanout", p.Manifest.OutputPorts[i].Schema))
		sch := avro.MustParse(withMeta(t, string(schemaText)))
		got := map[string][]string{}
		for _, rec := range consumeN(t, broker.ListenAddrs(), port.Topic, 3) {
			if id := int(binary.BigEndian.Uint32(rec.Value[1:5])); id != port.SchemaID {
				t.Errorf("%s@%d carries schema id %d, want port %s's %d", rec.Topic, rec.Offset, id, port.Name, port.SchemaID)
			}
			var v fanOut
			if err := avro.Unmarshal(sch, rec.Value[5:], &v); err != nil {
				t.Fatalf("decode %s@%d: %v", rec.Topic, rec.Offset, err)
			}
			got[string(rec.Key)] = append(got[string(rec.Key)], v.Name+" <"+v.Email+">")
		}
		want := map[string][]string{
			"1001": {"Sally Thomas <sally.thomas@acme.com>", "Sally Thomas <sally@new.example>"},
			"1002": {"George Bailey <gbailey@foobar.com>"},
		}
		if port.Name == "customers" { // restricted: mask, on this port only
			want = map[string][]string{"1001": {"Sally Thomas <****>", "Sally Thomas <****>"}, "1002": {"George Bailey <****>"}}
		}
		if !equalLists(got, want) {
			t.Errorf("port %s published %v, want %v", port.Name, got, want)
		}
	}

	dls := consumeN(t, broker.ListenAddrs(), "sales.customers.dlq", 2)
	classes := map[string]string{}
	for _, d := range dls {
		classes[kafka.Header(d, ports.HeaderOriginOffset)] = kafka.Header(d, ports.HeaderErrorClass) + ": " + kafka.Header(d, ports.HeaderErrorMessage)
	}
	for _, rec := range in[2:4] {
		msg := classes[strconv.FormatInt(rec.Offset, 10)]
		wantClass, wantText := "contract", "name"
		if strings.Contains(string(rec.Value), "misrouted") {
			wantClass, wantText = "handler", `output port "nowhere", which the manifest does not declare (output ports: customers, names)`
		}
		if !strings.HasPrefix(msg, wantClass+": ") || !strings.Contains(msg, wantText) {
			t.Errorf("dead letter of offset %d: %q, want class %s naming %q", rec.Offset, msg, wantClass, wantText)
		}
	}

	// The change log holds both ports' records; entries of the second
	// port name it, the first port's carry no port.
	byPort := map[string]int{}
	logs, err := filepath.Glob(filepath.Join(dataDir, "changelog", "db.inventory.customers-*"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("change logs %v, %v", logs, err)
	}
	for _, dir := range logs {
		l, err := auditlog.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Scan(1, func(e *auditlog.Entry) error {
			if id := int(e.Prov.SchemaID); (e.Port == "" && id != ps[0].SchemaID) || (e.Port == "names" && id != ps[1].SchemaID) {
				t.Errorf("%s seq %d of port %q has schema id %d", dir, e.Seq, e.Port, id)
			}
			byPort[e.Port]++
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if byPort[""] != 3 || byPort["names"] != 3 || len(byPort) != 2 {
		t.Fatalf("change-log entries by port %v, want 3 of the first (\"\") and 3 of names", byPort)
	}
}

func TestManifestRefusesSamePortTwice(t *testing.T) {
	base, err := os.ReadFile("testdata/fanout/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, field string }{
		{"name: names", "name: customers", "outputPorts[1].name"},
		{"topic: sales.customer-names.v1", "topic: sales.customers.v1", "outputPorts[1].topic"},
	} {
		_, err := runtime.ParseManifest("product.yaml", []byte(strings.Replace(string(base), c.from, c.to, 1)))
		var me *runtime.ManifestError
		if !errors.As(err, &me) || me.Field != c.field {
			t.Errorf("%s -> %s: %v, want an error on %s", c.from, c.to, err, c.field)
		}
	}
}

// withMeta adds the fields Meshlet appends to every published schema, so
// the test decodes the records as any consumer would.
func withMeta(t *testing.T, text string) string {
	t.Helper()
	s, err := schemas.Parse("test.avsc", text)
	if err != nil {
		t.Fatal(err)
	}
	return s.Published()
}

func equalLists(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}
