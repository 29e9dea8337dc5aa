package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/internal/interop"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

const ordersSchema = `{"type":"record","name":"Order","namespace":"test.shop","fields":[
	{"name":"id","type":"string"},
	{"name":"item","type":"string"},
	{"name":"qty","type":"int"}]}`

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

type order struct {
	log     int
	sys, vf string
	vt      string
	key     string
	item    string
	qty     int
	retract bool
}

// shopDir writes a product data directory as the runtime leaves it: two
// partition logs of Avro events and the writer schema in schemas/1.avsc.
func shopDir(t *testing.T, orders []order) string {
	t.Helper()
	root := t.TempDir()
	s, err := schemas.Parse("order.avsc", ordersSchema)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "schemas"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "schemas", "1.avsc"), []byte(s.Published()), 0o644); err != nil {
		t.Fatal(err)
	}
	appendOrders(t, root, orders)
	return root
}

func appendOrders(t *testing.T, root string, orders []order) {
	t.Helper()
	s, _ := schemas.Parse("order.avsc", ordersSchema)
	enc, err := schemas.NewEncoder(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[int]*auditlog.Log{}
	for _, o := range orders {
		l := logs[o.log]
		if l == nil {
			if l, err = auditlog.Open(filepath.Join(root, "changelog", "orders-"+string(rune('0'+o.log))), auditlog.SyncEachAppend(false)); err != nil {
				t.Fatal(err)
			}
			logs[o.log] = l
		}
		seq, _, _ := l.Tail()
		e := auditlog.Entry{Seq: seq + 1, SystemTime: at(o.sys), ValidFrom: at(o.vf), Op: auditlog.OpAssert, Key: []byte(o.key),
			Prov: auditlog.Provenance{Topic: "shop.orders", Partition: int32(o.log), Offset: int64(seq), SourcePosition: "lsn=1", SchemaID: 1}}
		if o.vt != "" {
			e.ValidTo = at(o.vt)
		}
		if o.retract {
			e.Op = auditlog.OpRetract
		}
		e.Payload, err = enc.Append(nil, map[string]any{"id": o.key, "item": o.item, "qty": o.qty},
			schemas.Meta{ValidFrom: e.ValidFrom, ValidTo: e.ValidTo, SystemFrom: e.SystemTime, Deleted: o.retract})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append([]auditlog.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range logs {
		l.Close()
	}
}

var shopOrders = []order{
	{0, "2026-01-01T00:00:01Z", "2026-01-01T00:00:00Z", "", "A", "apples", 1, false},
	{1, "2026-01-02T00:00:01Z", "2026-01-02T00:00:00Z", "", "B", "bread", 2, false},
	{0, "2026-02-01T00:00:01Z", "2026-02-01T00:00:00Z", "", "A", "apples", 5, false},
	// A back-dated correction of January, recorded in the other partition.
	{1, "2026-02-15T00:00:01Z", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z", "A", "pears", 3, false},
	{1, "2026-03-01T00:00:01Z", "2026-03-01T00:00:00Z", "", "B", "bread", 2, true},
}

func run0(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := meshlet(t, args...)
	if code != 0 {
		t.Fatalf("meshlet %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Fatalf("output lacks %q:\n%s", p, out)
		}
	}
}

func TestAsOfHistoryCorrections(t *testing.T) {
	root := shopDir(t, shopOrders)

	// The table as it stood on January 20, as believed then and as believed
	// now. Then A's apples were valid until further notice; that belief
	// ended when the February update was recorded.
	out := run0(t, "asof", root, "--system", "2026-01-20T00:00:00Z", "--valid", "2026-01-20T00:00:00Z")
	wantLines(t, out,
		`as of 2026-01-20T00:00:00.000000Z, valid at 2026-01-20T00:00:00.000000Z: 2 row\(s\)`,
		`KEY\s+id\s+item\s+qty\s+_VALID_FROM\s+_VALID_TO\s+_SYSTEM_FROM\s+_SYSTEM_TO\s+LOG\s+SEQ`,
		`A\s+"A"\s+"apples"\s+1\s+2026-01-01T00:00:00.000000Z\s+-\s+2026-01-01T00:00:01.000000Z\s+2026-02-01T00:00:01.000000Z\s+orders-0\s+1`,
		`B\s+"B"\s+"bread"\s+2\s+.*orders-1\s+1`)
	out = run0(t, "asof", root, "--valid", "2026-01-20T00:00:00Z")
	wantLines(t, out, `A\s+"A"\s+"pears"\s+3\s+2026-01-15T00:00:00.000000Z\s+2026-02-01T00:00:00.000000Z\s+2026-02-15T00:00:01.000000Z\s+-\s+orders-1\s+2`)
	// Early January as believed now: what the correction left of the apples.
	out = run0(t, "asof", root, "A", "--valid", "2026-01-05T00:00:00Z")
	wantLines(t, out, `A\s+"A"\s+"apples"\s+1\s+2026-01-01T00:00:00.000000Z\s+2026-01-15T00:00:00.000000Z\s+2026-02-15T00:00:01.000000Z\s+-\s+orders-0\s+1`)
	// Now, B is deleted.
	out = run0(t, "asof", root, "B", "--valid", "2026-03-02T00:00:00Z")
	wantLines(t, out, `B: absent as of now .* retracted by log orders-1 seq 3`)

	var doc struct {
		Rows []struct {
			Key    string
			Fields map[string]any
			Seq    int
		}
	}
	if err := json.Unmarshal([]byte(run0(t, "asof", "--json", root, "A", "--system", "now", "--valid", "2026-02-10T00:00:00Z")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rows) != 1 || doc.Rows[0].Fields["qty"] != 5.0 || doc.Rows[0].Seq != 2 {
		t.Fatalf("asof --json: %+v", doc)
	}

	out = run0(t, "history", root, "A")
	wantLines(t, out, `A: 5 version\(s\)`,
		`"apples"\s+1\s+2026-01-01T00:00:00.000000Z\s+-\s+2026-01-01T00:00:01.000000Z\s+2026-02-01T00:00:01.000000Z\s+orders-0\s+1`,
		`"pears"\s+3\s+2026-01-15T00:00:00.000000Z\s+2026-02-01T00:00:00.000000Z\s+2026-02-15T00:00:01.000000Z\s+-\s+orders-1\s+2`)
	out = run0(t, "history", root, "A", "--entries")
	wantLines(t, out, `A: 3 entr`, `assert\s+2026-02-15T00:00:01.000000Z`)

	out = run0(t, "corrections", root, "--from", "2026-01-01T00:00:00Z", "--to", "now")
	wantLines(t, out, `: 1\n`, `A\s+"A"\s+"pears"\s+3\s+assert\s+2026-02-15T00:00:01.000000Z\s+2026-01-15T00:00:00.000000Z\s+2026-02-01T00:00:00.000000Z\s+2026-02-01T00:00:00.000000Z\s+orders-1\s+2`)
	out = run0(t, "corrections", root, "--from", "2026-02-16T00:00:00Z")
	wantLines(t, out, `: 0\n`)

	// Errors a user makes, named.
	_, errOut, code := meshlet(t, "asof", root, "--system", "yesterday")
	if code != 2 || !strings.Contains(errOut, `"yesterday" is not an RFC 3339 time`) {
		t.Fatalf("bad time: exit %d, %s", code, errOut)
	}
	os.Rename(filepath.Join(root, "schemas"), filepath.Join(root, "elsewhere"))
	_, errOut, code = meshlet(t, "asof", root)
	if code != 1 || !strings.Contains(errOut, "schema id 1: not in "+filepath.Join(root, "schemas", "1.avsc")) {
		t.Fatalf("missing schema: exit %d, %s", code, errOut)
	}
	run0(t, "asof", root, "--schemas", filepath.Join(root, "elsewhere"))
}

func TestReplay(t *testing.T) {
	root := shopDir(t, shopOrders)
	out := run0(t, "replay", root, "--to", "jsonl")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("jsonl: %d lines\n%s", len(lines), out)
	}
	var first struct {
		Log, Key, Op string
		Seq          int
		Fields       map[string]any
		Source       struct{ Topic string }
		Hash         string
	}
	json.Unmarshal([]byte(lines[3]), &first)
	if first.Log != "orders-1" || first.Seq != 2 || first.Fields["item"] != "pears" || first.Source.Topic != "shop.orders" || len(first.Hash) != 64 {
		t.Fatalf("4th line: %s", lines[3])
	}
	out = run0(t, "replay", root, "--to", "jsonl", "--from", "2026-02-01T00:00:00Z", "--until", "2026-03-01T00:00:00Z")
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("jsonl in range: %d lines\n%s", n, out)
	}

	// An Avro container any Avro library reads: here JavaScript's avsc.
	file := filepath.Join(t.TempDir(), "orders.avro")
	run0(t, "replay", root, "--to", "avro-ocf", "--out", file)
	if err := interop.NodeAvailable(); err != nil {
		t.Fatalf("%v\n(this test reads the container with Node's avsc; make test installs it)", err)
	}
	dir, _ := interop.NodeDir()
	script := `const avro = require("avsc"); const out = [];
avro.createFileDecoder(process.argv[1]).on("data", r => out.push(r)).on("end", () => console.log(JSON.stringify(out)));`
	cmd := exec.Command("node", "-e", script, file)
	cmd.Dir = dir
	js, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("avsc: %v\n%s", err, js)
	}
	var recs []map[string]any
	if err := json.Unmarshal(js, &recs); err != nil {
		t.Fatalf("avsc output: %v\n%s", err, js)
	}
	if len(recs) != 5 || recs[3]["item"] != "pears" || recs[4]["_deleted"] != true || recs[3]["_valid_to"] == nil {
		t.Fatalf("avsc read %v", recs)
	}

	// Into a Kafka topic, re-registered in another registry.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders.replayed"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	out = run0(t, "replay", root, "--to", "kafka", "--brokers", cluster.ListenAddrs()[0], "--topic", "orders.replayed", "--registry", reg.URL())
	wantLines(t, out, `replayed 5 entries .* to kafka`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("orders.replayed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r, err := schemas.NewRegistry([]string{reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var items []string
	for len(items) < 5 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			_, fields, err := r.DecodeMap(ctx, rec.Value)
			if err != nil {
				t.Fatalf("decode replayed record: %v", err)
			}
			items = append(items, string(rec.Key)+":"+fields["item"].(string))
		})
	}
	if strings.Join(items, ",") != "A:apples,B:bread,A:apples,A:pears,B:bread" {
		t.Fatalf("replayed to kafka: %v", items)
	}
}

func TestAuditProofs(t *testing.T) {
	root := shopDir(t, shopOrders)
	out := run0(t, "audit", "checkpoint", root, "--name", "urn:dataproduct:shop:orders")
	wantLines(t, out, `orders-0\s+2\s`, `orders-1\s+3\s`, `signed by urn:dataproduct:shop:orders`)
	key := strings.TrimSpace(run0(t, "audit", "key", root))
	if !strings.HasPrefix(key, "urn:dataproduct:shop:orders+") {
		t.Fatalf("verifier key %q", key)
	}
	log1 := filepath.Join(root, "changelog", "orders-1")
	old := filepath.Join(t.TempDir(), "orders-1-at-3.note")
	b, _ := os.ReadFile(auditlog.NotePath(log1, 3))
	os.WriteFile(old, b, 0o644)

	out = run0(t, "audit", "prove", root, "--log", "orders-1", "--seq", "2", "--key", key)
	wantLines(t, out, `entry\s+orders-1 seq 2 \(leaf index 1\)`, `proof\s+2 hash`, `verified: entry 2 is in the tree of checkpoint 3`)

	var more []order
	for i := range 20 {
		more = append(more, order{1, time.Date(2026, 4, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339), "2026-04-01T00:00:00Z", "", "C", "cheese", i, false})
	}
	appendOrders(t, root, more)
	run0(t, "audit", "checkpoint", root)
	out = run0(t, "audit", "prove", log1, "--from-checkpoint", old, "--to-checkpoint", auditlog.NotePath(log1, 23), "--key", key, "--json")
	var cons struct {
		Size1, Size2 int
		Verified     bool
	}
	if err := json.Unmarshal([]byte(out), &cons); err != nil || !cons.Verified || cons.Size1 != 3 || cons.Size2 != 23 {
		t.Fatalf("consistency: %s", out)
	}
	out = run0(t, "audit", "verify-since", old, root, "--key", key)
	wantLines(t, out, `log now\s+.*orders-1: 23 entries`, `consistency\s+3 -> 23`, `the log extends checkpoint 3`)

	// Rewrite entry 2 (the correction) and every hash after it.
	l, err := auditlog.Open(log1)
	if err != nil {
		t.Fatal(err)
	}
	var es []auditlog.Entry
	l.Scan(1, func(e *auditlog.Entry) error {
		c := *e
		c.Key, c.Payload = append([]byte(nil), e.Key...), append([]byte(nil), e.Payload...)
		es = append(es, c)
		return nil
	})
	l.Close()
	es[1].ValidFrom -= 1000
	segs, _ := filepath.Glob(filepath.Join(log1, "*.seg"))
	for _, s := range segs {
		os.Remove(s)
	}
	l, err = auditlog.Open(log1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(es); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// The chain alone cannot tell, but plain verify checks the newest
	// checkpoint stored beside the log, and names it.
	out, errOut, code := meshlet(t, "audit", "verify", root)
	if code != 1 || !regexp.MustCompile(`log orders-1: change log corrupt: .*entries 1\.\.23 no longer hash to the root of checkpoint 23 \(\S+00023\.note\): the log was rewritten behind it`).MatchString(errOut) {
		t.Fatalf("verify after a rewrite: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, out, `orders-0\s.*\s2\s+ok\s`, `orders-1\s.*\s23 FAILED\s+FAILED\s`)
	_, errOut, code = meshlet(t, "audit", "verify-since", old, root, "--key", key)
	if code != 1 || !regexp.MustCompile(`entry seq 1: entries 1\.\.3 no longer hash to the root of checkpoint 3: the log was rewritten behind it .* in seq 1\.\.3`).MatchString(errOut) {
		t.Fatalf("verify-since after a rewrite: exit %d\n%s", code, errOut)
	}
	// A checkpoint signed by another key is refused.
	_, other, err := note.GenerateKey(nil, "urn:dataproduct:shop:orders")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code = meshlet(t, "audit", "verify-since", old, root, "--key", other)
	if code != 1 || !strings.Contains(errOut, "does not verify") {
		t.Fatalf("foreign key: exit %d\n%s", code, errOut)
	}
}

// inventoryDir writes a data directory as the example product leaves it
// after the recorded Postgres capture: its handler's records, Avro-encoded
// with its schema, valid from each change's commit time, recorded a second
// after it.
func inventoryDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	avsc, err := os.ReadFile("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.Parse("product.avsc", string(avsc))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "schemas"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "schemas", "1.avsc"), []byte(s.Published()), 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.RecordedCDC(bytes.NewReader(products.RecordedCDC()), "recorded", "dbserver1.inventory.products", products.KeyFields)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	handle := transforms.Typed(products.Handle)
	var (
		entries []auditlog.Entry
		out     []transforms.Output
		clock   int64
	)
	for i, r := range recs {
		var c cdc.Change
		if err := dec.Decode(r.Key, r.Value, &c); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if out, err = handle(context.Background(), &c, out[:0]); err != nil || len(out) != 1 {
			t.Fatalf("message %d: %d records, %v", i+1, len(out), err)
		}
		commit := c.CommitTime.UnixMicro()
		clock = max(clock+1, commit+1_000_000)
		e := auditlog.Entry{Seq: uint64(i + 1), SystemTime: clock, ValidFrom: commit, Op: auditlog.OpAssert, Key: []byte(out[0].Key),
			Prov: auditlog.Provenance{Topic: r.Topic, Offset: int64(i), SourcePosition: c.Source.Position.String(), SchemaID: 1}}
		if out[0].Deleted {
			e.Op = auditlog.OpRetract
		}
		if e.Payload, err = enc.Append(nil, out[0].Value, schemas.Meta{ValidFrom: commit, SystemFrom: clock, Deleted: out[0].Deleted}); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	l, err := auditlog.Open(filepath.Join(root, "changelog", "dbserver1.inventory.products-0"), auditlog.SyncEachAppend(false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAsOf106AgreesWithHistory runs the commands: asked now about
// 07:00, product 106 is its snapshot row, with the periods of the row of
// `history 106` believed now that holds 07:00: valid until the update's
// commit at 08:21:29.629, believed since the update was recorded.
func TestAsOf106AgreesWithHistory(t *testing.T) {
	root := inventoryDir(t)
	out := run0(t, "asof", root, "--system", "now", "--valid", "2020-07-29T07:00:00Z", "106")
	wantLines(t, out, `106\s+106\s+"hammer"\s+"16oz carpenter's hammer"\s+1\s+2020-07-29T05:38:19.436000Z\s+2020-07-29T08:21:29.629000Z\s+2020-07-29T08:21:30.629000Z\s+-\s+dbserver1.inventory.products-0\s+6`)

	type version struct {
		ValidFrom  string  `json:"_valid_from"`
		ValidTo    *string `json:"_valid_to"`
		SystemFrom string  `json:"_system_from"`
		SystemTo   *string `json:"_system_to"`
		Log        string
		Seq        int
		Recorded   string
	}
	var asof struct{ Rows []version }
	if err := json.Unmarshal([]byte(run0(t, "asof", "--json", root, "--system", "now", "--valid", "2020-07-29T07:00:00Z", "106")), &asof); err != nil {
		t.Fatal(err)
	}
	var hist struct{ Versions []version }
	if err := json.Unmarshal([]byte(run0(t, "history", "--json", root, "106")), &hist); err != nil {
		t.Fatal(err)
	}
	const v = "2020-07-29T07:00:00.000000Z"
	var now []version
	for _, h := range hist.Versions {
		if h.SystemTo == nil && h.ValidFrom <= v && (h.ValidTo == nil || v < *h.ValidTo) {
			now = append(now, h)
		}
	}
	if len(asof.Rows) != 1 || len(now) != 1 {
		t.Fatalf("asof rows %+v, history rows believed now holding 07:00 %+v", asof.Rows, now)
	}
	a, h := asof.Rows[0], now[0]
	if a.ValidTo == nil || h.ValidTo == nil || *a.ValidTo != *h.ValidTo || a.ValidFrom != h.ValidFrom || a.SystemFrom != h.SystemFrom ||
		a.SystemTo != nil || a.Seq != h.Seq || a.Log != h.Log || a.Recorded != h.Recorded {
		t.Fatalf("asof says %+v, history %+v", a, h)
	}
}
