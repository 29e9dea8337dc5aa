// Package snapshottest builds product data directories with real change
// logs for tests of snapshots (package snapshot and the commands on it),
// and reads Parquet files with DuckDB.
//
// A DataDir is laid out as the runtime lays out its DataDir: change logs
// under changelog/<topic>-<partition>/, published schemas under
// schemas/<id>.avsc, the checkpoint key pair beside them. Inventory fills
// one with the recorded Debezium capture run through the example product's
// handler; Orders with a synthetic stream of orders over several logs,
// with logical types, updates, deletes, re-inserts and back-dated
// corrections, and optionally a sealed pii field.
//
// DuckDB runs SQL through DuckDB's Node API (testdata/duckdb of package
// snapshot, installed by `make duckdb-deps`); a missing node or
// node_modules fails the test saying how to install it.
package snapshottest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// DataDir is a product's data directory with its logs open for appending.
type DataDir struct {
	Dir      string
	Product  string
	Signer   note.Signer
	Verifier note.Verifier
	logs     map[string]*auditlog.Log
}

// NewDataDir makes an empty data directory for product, with its key pair.
func NewDataDir(t testing.TB, product string) *DataDir {
	t.Helper()
	d := &DataDir{Dir: t.TempDir(), Product: product, logs: map[string]*auditlog.Log{}}
	var err error
	if d.Signer, d.Verifier, err = auditlog.LoadOrCreateKey(d.Dir, product); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, l := range d.logs {
			l.Close()
		}
	})
	return d
}

// SchemaDir is where the published schemas are.
func (d *DataDir) SchemaDir() string { return filepath.Join(d.Dir, "schemas") }

// SaveSchema saves s's published text as schemas/<id>.avsc, as the runtime does.
func (d *DataDir) SaveSchema(t testing.TB, id int, s *schemas.Schema) {
	t.Helper()
	if err := os.MkdirAll(d.SchemaDir(), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.SchemaDir(), strconv.Itoa(id)+".avsc"), []byte(s.Published()), 0o640); err != nil {
		t.Fatal(err)
	}
}

// Log returns the named log (changelog/<name>), opening it on first use.
func (d *DataDir) Log(t testing.TB, name string) *auditlog.Log {
	t.Helper()
	if l := d.logs[name]; l != nil {
		return l
	}
	l, err := auditlog.Open(filepath.Join(d.Dir, "changelog", name), auditlog.SyncEachAppend(false))
	if err != nil {
		t.Fatal(err)
	}
	d.logs[name] = l
	return l
}

// Checkpoint signs a checkpoint of every open log as it stands.
func (d *DataDir) Checkpoint(t testing.TB) {
	t.Helper()
	for name, l := range d.logs {
		if _, err := l.Checkpoint(d.Signer); err != nil {
			t.Fatalf("checkpoint %s: %v", name, err)
		}
	}
}

// Store opens the data directory's logs as a store, closed at cleanup.
func (d *DataDir) Store(t testing.TB) *auditlog.Store {
	t.Helper()
	st, err := auditlog.OpenStore(d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// InventoryURN and InventoryLog name the example product and its one log.
const (
	InventoryURN = "urn:dataproduct:inventory:products"
	InventoryLog = "dbserver1.inventory.products-0"
)

// Inventory runs the example product's recorded Debezium capture through
// its handler into a log, the way the runtime would: schema id 1, valid
// from each change's commit time, recorded one second after it (a
// consumer's lag), and checkpointed.
func Inventory(t testing.TB) *DataDir {
	t.Helper()
	p, err := products.New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OutputSchema()
	if err != nil {
		t.Fatal(err)
	}
	d := NewDataDir(t, InventoryURN)
	d.SaveSchema(t, 1, s)
	enc, err := schemas.NewEncoder(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	handle := transforms.Typed(products.Handle)
	var (
		batch []auditlog.Entry
		clock int64
		c     cdc.Change
		outs  []transforms.Output
	)
	for i, line := range bytes.Split(products.RecordedCDC(), []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := dec.Decode(nil, line, &c); err != nil {
			t.Fatalf("recorded CDC line %d: %v", i+1, err)
		}
		if outs, err = handle(context.Background(), &c, outs[:0]); err != nil {
			t.Fatalf("recorded CDC line %d: handler: %v", i+1, err)
		}
		for _, o := range outs {
			commit := c.CommitTime.UnixMicro()
			clock = max(clock+1, commit+1_000_000)
			meta := schemas.Meta{ValidFrom: commit, SystemFrom: clock, Deleted: o.Deleted}
			if !o.ValidFrom.IsZero() {
				meta.ValidFrom = o.ValidFrom.UnixMicro()
			}
			wire, err := enc.Append(nil, o.Value, meta)
			if err != nil {
				t.Fatal(err)
			}
			op := auditlog.OpAssert
			if o.Deleted {
				op = auditlog.OpRetract
			}
			batch = append(batch, auditlog.Entry{Seq: uint64(len(batch) + 1), SystemTime: clock, ValidFrom: meta.ValidFrom, Op: op,
				Key: []byte(o.Key), Payload: wire,
				Prov: auditlog.Provenance{Topic: "dbserver1.inventory.products", Offset: int64(i), SourcePosition: c.Source.Position.String(), SchemaID: 1}})
		}
	}
	l := d.Log(t, InventoryLog)
	if err := l.Append(batch); err != nil {
		t.Fatal(err)
	}
	d.Checkpoint(t)
	return d
}

// OrdersURN, OrdersPort and OrdersTopic name the synthetic product.
const (
	OrdersURN   = "urn:dataproduct:shop:orders"
	OrdersPort  = "orders"
	OrdersTopic = "shop.orders.v1"
)

// OrderSchema is the synthetic product's row schema: a decimal, a
// timestamp, a nullable date, an enum, a nullable double, an array, and a
// nullable e-mail the contract would classify pii.
const OrderSchema = `{"type":"record","name":"Order","namespace":"shop","doc":"An order.","fields":[
	{"name":"id","type":"string"},
	{"name":"customer","type":"string"},
	{"name":"email","type":["null","string"],"default":null},
	{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
	{"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"ship_date","type":["null",{"type":"int","logicalType":"date"}],"default":null},
	{"name":"status","type":{"type":"enum","name":"Status","symbols":["PLACED","PAID","SHIPPED","CANCELLED"]}},
	{"name":"quantity","type":"int"},
	{"name":"weight_kg","type":["null","double"],"default":null},
	{"name":"tags","type":{"type":"array","items":"string"},"default":[]}]}`

// Order is OrderSchema's row.
type Order struct {
	ID       string     `avro:"id"`
	Customer string     `avro:"customer"`
	Email    *string    `avro:"email"`
	Amount   *big.Rat   `avro:"amount"`
	PlacedAt time.Time  `avro:"placed_at"`
	ShipDate *time.Time `avro:"ship_date"`
	Status   string     `avro:"status"`
	Quantity int32      `avro:"quantity"`
	WeightKg *float64   `avro:"weight_kg"`
	Tags     []string   `avro:"tags"`
}

// OrdersSpec shapes a synthetic stream.
type OrdersSpec struct {
	Seed    uint64
	Keys    int // distinct orders
	Entries int // entries in all
	Logs    int // input partitions, one log each (key hash picks)
	// Start is the first entry's system time; entries are recorded one
	// millisecond apart, valid times around them.
	Start time.Time
	// Sealed seals the email field with KeyStore (package seal), as a product
	// whose contract classifies it pii does.
	Sealed   bool
	KeyStore governance.KeyStore
	// OnAppend sees each entry as appended, and the published wire bytes
	// of its record as the output topic would carry them.
	OnAppend func(log string, e *auditlog.Entry, wire []byte)
	// Batch is the entries per Append (default 64).
	Batch int
	// SchemaID is the registry id the payloads carry (default 7).
	SchemaID int
}

// Orders is a synthetic product's data directory being written: Append
// more entries with Next, checkpoint with DataDir.Checkpoint.
type Orders struct {
	*DataDir
	Schema *schemas.Schema
	spec   OrdersSpec
	enc    *schemas.Encoder
	sealer *governance.Sealer
	rng    *rand.Rand
	clock  int64
	n      int
	state  map[string]*orderState
	// Wrote counts entries per op kind, so a test can insist the stream
	// held each.
	Wrote map[string]int
}

type orderState struct {
	o       Order
	live    bool
	validTo int64 // latest valid-from asserted, for back-dating
}

// NewOrders makes the data directory and writes
// spec.Entries entries.
func NewOrders(t testing.TB, spec OrdersSpec) *Orders {
	t.Helper()
	if spec.Logs == 0 {
		spec.Logs = 2
	}
	if spec.Keys == 0 {
		spec.Keys = 20
	}
	if spec.Batch == 0 {
		spec.Batch = 64
	}
	if spec.SchemaID == 0 {
		spec.SchemaID = 7
	}
	if spec.Start.IsZero() {
		spec.Start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	}
	s, err := schemas.Parse("order.avsc", OrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	o := &Orders{DataDir: NewDataDir(t, OrdersURN), Schema: s, spec: spec,
		rng:   rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x5eed)),
		clock: spec.Start.UnixMicro(), state: map[string]*orderState{}, Wrote: map[string]int{}}
	o.SaveSchema(t, spec.SchemaID, s)
	if o.enc, err = schemas.NewEncoder(s, spec.SchemaID); err != nil {
		t.Fatal(err)
	}
	if spec.Sealed {
		if spec.KeyStore == nil {
			t.Fatal("snapshottest: Sealed needs KeyStore")
		}
		if o.sealer, err = governance.NewSealer(spec.KeyStore, Order{}, []string{"email"}); err != nil {
			t.Fatal(err)
		}
	}
	o.Next(t, spec.Entries)
	return o
}

// LogName is the log of partition p.
func LogName(p int) string { return fmt.Sprintf("shop.orders.cdc-%d", p) }

// Next appends n more entries.
func (o *Orders) Next(t testing.TB, n int) {
	t.Helper()
	pending := map[int][]auditlog.Entry{}
	wires := map[int][][]byte{}
	flush := func(p int) {
		l := o.Log(t, LogName(p))
		seq, _, _ := l.Tail()
		es := pending[p]
		for i := range es {
			es[i].Seq = seq + 1 + uint64(i)
		}
		if err := l.Append(es); err != nil {
			t.Fatal(err)
		}
		if o.spec.OnAppend != nil {
			for i := range es {
				o.spec.OnAppend(LogName(p), &es[i], wires[p][i])
			}
		}
		pending[p], wires[p] = nil, nil
	}
	for range n {
		p, e, wire := o.entry(t)
		pending[p] = append(pending[p], e)
		wires[p] = append(wires[p], wire)
		if len(pending[p]) >= o.spec.Batch {
			flush(p)
		}
	}
	for p := range pending {
		if len(pending[p]) > 0 {
			flush(p)
		}
	}
}

var statuses = []string{"PLACED", "PAID", "SHIPPED", "CANCELLED"}

// entry makes the next entry: an order placed, changed, deleted, placed
// again, or corrected back in valid time.
func (o *Orders) entry(t testing.TB) (int, auditlog.Entry, []byte) {
	r := o.rng
	o.n++
	o.clock += 1000 // one millisecond per entry: system time rises across logs
	sys := o.clock
	key := fmt.Sprintf("order-%05d", r.IntN(o.spec.Keys))
	st := o.state[key]
	meta := schemas.Meta{SystemFrom: sys}
	kind := "insert"
	switch {
	case st == nil:
		st = &orderState{}
		o.state[key] = st
	case !st.live:
		kind = "reinsert"
	default:
		switch x := r.IntN(10); {
		case x < 6:
			kind = "update"
		case x < 8:
			kind = "correction"
		default:
			kind = "delete"
		}
	}
	// Valid time: the business event happened up to a second before it
	// was recorded; a correction reaches back before the latest one.
	vf := sys - int64(r.IntN(1000))*1000
	switch kind {
	case "insert", "reinsert":
		email := key + "@example.com"
		st.o = Order{ID: key, Customer: fmt.Sprintf("customer-%03d", r.IntN(50)), Email: &email,
			Amount: big.NewRat(int64(100+r.IntN(100000)), 100), PlacedAt: time.UnixMilli(vf / 1000).UTC(),
			Status: "PLACED", Quantity: int32(1 + r.IntN(9)), Tags: []string{"web"}}
		if r.IntN(3) > 0 {
			w := float64(r.IntN(5000)) / 100
			st.o.WeightKg = &w
		}
		st.live = true
	case "update":
		st.o.Status = statuses[min(len(statuses)-1, 1+r.IntN(3))]
		st.o.Amount = new(big.Rat).Add(st.o.Amount, big.NewRat(int64(r.IntN(2000))-1000, 100))
		if st.o.Amount.Sign() < 0 {
			st.o.Amount = new(big.Rat).Neg(st.o.Amount) // negatives stay: refunds
		}
		if st.o.Status == "SHIPPED" {
			d := time.UnixMicro(vf).UTC().Truncate(24 * time.Hour)
			st.o.ShipDate = &d
		}
		st.o.Tags = append(st.o.Tags[:len(st.o.Tags):len(st.o.Tags)], st.o.Status)
	case "correction":
		// A corrected quantity, valid over a stretch before the latest change.
		vf = st.validTo - int64(1+r.IntN(3600))*1_000_000
		st.o.Quantity = int32(1 + r.IntN(20))
		if r.IntN(2) == 0 {
			meta.ValidTo = st.validTo
		}
	case "delete":
		st.live = false
		meta.Deleted = true
	}
	o.Wrote[kind]++
	meta.ValidFrom = vf
	st.validTo = max(st.validTo, vf)
	row := st.o
	var sealed []byte
	if o.sealer != nil {
		cleared, s, err := o.sealer.Seal(context.Background(), key, row)
		if err != nil {
			t.Fatal(err)
		}
		row, sealed = cleared.(Order), s
	}
	wire, err := o.enc.Append(nil, row, meta)
	if err != nil {
		t.Fatal(err)
	}
	payload := wire
	if sealed != nil {
		payload = governance.Frame(nil, sealed, wire)
		if wire, err = o.enc.Append(nil, st.o, meta); err != nil {
			t.Fatal(err)
		}
	}
	op := auditlog.OpAssert
	if meta.Deleted {
		op = auditlog.OpRetract
	}
	p := partition(key, o.spec.Logs)
	return p, auditlog.Entry{SystemTime: sys, ValidFrom: meta.ValidFrom, ValidTo: meta.ValidTo, Op: op, Key: []byte(key), Payload: payload,
		Prov: auditlog.Provenance{Topic: "shop.orders.cdc", Partition: int32(p), Offset: int64(o.n), SourcePosition: fmt.Sprintf("lsn=%d", o.n), SchemaID: uint32(o.spec.SchemaID)}}, wire
}

func partition(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % uint32(n))
}

// Result is one query's answer: DuckDB's column names and rows, each value
// as DuckDB's JSON conversion gives it (numbers beyond int32 and decimals
// as strings; cast in SQL to fix the form).
type Result struct {
	Columns []string
	Rows    [][]any
}

// DuckDB runs the queries, in one DuckDB session, and returns their results.
func DuckDB(t testing.TB, queries ...string) []Result {
	t.Helper()
	dir := duckDBDir(t)
	in, err := json.Marshal(queries)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "query.mjs"))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, stderr.String())
	}
	var res []struct {
		Columns []string `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("duckdb: output %q: %v", out, err)
	}
	rs := make([]Result, len(res))
	for i, r := range res {
		rs[i] = Result{Columns: r.Columns, Rows: r.Rows}
	}
	return rs
}

// DuckDBDirEnv overrides where the Node project with query.mjs lives.
const DuckDBDirEnv = "MESHLET_DUCKDB_NODE_DIR"

const duckFix = "run make duckdb-deps (npm ci --prefix snapshot/testdata/duckdb --no-audit --no-fund)"

func duckDBDir(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("duckdb: node is not on PATH: install Node.js (apt-get install nodejs npm), then %s", duckFix)
	}
	dir := os.Getenv(DuckDBDirEnv)
	if dir == "" {
		_, file, _, ok := goruntime.Caller(0)
		if !ok {
			t.Fatal("duckdb: cannot locate the snapshot package's sources")
		}
		dir = filepath.Join(filepath.Dir(filepath.Dir(file)), "testdata", "duckdb")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json")); err != nil {
		t.Fatalf("duckdb: @duckdb/node-api is not installed in %s: %s", dir, duckFix)
	}
	return dir
}

// Quote makes s a SQL string literal.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
