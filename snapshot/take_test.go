package snapshot_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

// TestTakeStopsAtTheCheckpoints: entries no signed checkpoint covers are
// not in a snapshot taken "now", and cannot be asked for.
func TestTakeStopsAtTheCheckpoints(t *testing.T) {
	o := snapshottest.NewOrders(t, snapshottest.OrdersSpec{Seed: 5, Keys: 20, Entries: 300, Logs: 2})
	o.Checkpoint(t)
	f := newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols)
	proven := map[string]uint64{}
	var lastProven int64
	for _, l := range f.st.Logs() {
		proven[l.Name] = l.Entries
		lastProven = max(lastProven, l.LastSystem)
	}
	o.Next(t, 100) // recorded, never checkpointed
	if err := f.st.Refresh(); err != nil {
		t.Fatal(err)
	}

	_, m := f.take(t)
	if m.System != lastProven {
		t.Fatalf("T = %d, want %d: the last checkpointed entry", m.System, lastProven)
	}
	for _, l := range m.Logs {
		if l.Entries != proven[l.Name] || l.Checkpoint == nil || l.Checkpoint.Size != proven[l.Name] {
			t.Fatalf("log %s: %+v, want the %d checkpointed entries", l.Name, l, proven[l.Name])
		}
	}
	sameRows(t, "table", tableOf(t, f, m), f.asOfRows(t, m.System, m.Valid))

	_, err := snapshot.Take(ctx, f.source(), f.product, t.TempDir()+"/now", snapshot.AsOf(auditlog.Latest))
	if !errors.Is(err, snapshot.ErrNotProven) {
		t.Fatalf("Take as of every entry recorded: %v, want ErrNotProven", err)
	}

	// Ragged checkpoints: log 1 signs only a prefix of what it recorded
	// after the first checkpoint, log 0 all of it. T stops before log 1's
	// first unproven entry, whatever log 0 has proven since.
	o.Log(t, snapshottest.LogName(0)).Checkpoint(o.Signer)
	l1 := o.Log(t, snapshottest.LogName(1))
	seq1, _, _ := l1.Tail()
	part := proven[snapshottest.LogName(1)] + (seq1-proven[snapshottest.LogName(1)])/2
	if _, err := l1.CheckpointAt(o.Signer, part); err != nil {
		t.Fatal(err)
	}
	next, err := f.st.Fact(snapshottest.LogName(1), part+1)
	if err != nil {
		t.Fatal(err)
	}
	_, m = f.take(t)
	if m.System != next.SystemTime-1 {
		t.Fatalf("T = %d, want %d: just before log 1's first unproven entry", m.System, next.SystemTime-1)
	}
	for _, l := range m.Logs {
		if n, _ := f.st.Position(l.Name, m.System); l.Entries != n || l.Checkpoint.Size < n {
			t.Fatalf("log %s: %+v, want %d entries under a checkpoint covering them", l.Name, l, n)
		}
	}
	if _, err := snapshot.Verify(ctx, m2dir(t, f, m), f.source(), o.Verifier); err != nil {
		t.Fatal(err)
	}
}

// m2dir retakes a snapshot at m's T and V and returns where it is.
func m2dir(t *testing.T, f *fixture, m *snapshot.Manifest) string {
	dir, _ := f.take(t, snapshot.AsOf(m.System), snapshot.ValidAt(m.Valid))
	return dir
}

// tableOf reads a snapshot's table file back through Open and Rows, in
// the shape asOfRows has.
func tableOf(t *testing.T, f *fixture, m *snapshot.Manifest) [][]any {
	t.Helper()
	dir := m2dir(t, f, m)
	s, err := snapshot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	err = s.Rows(snapshot.Table, func(r *snapshot.Row) error {
		fact, err := f.st.Fact(r.Log, r.Seq)
		if err != nil {
			return err
		}
		// The row is the version asof answers at (T, V), with its periods.
		v, ok, err := f.st.AsOf(m.System).ValidAt(m.Valid).Get([]byte(r.Key))
		if err != nil {
			return err
		}
		if !ok || v.Fact.Log != r.Log || v.Fact.Seq != r.Seq || v.ValidFrom != r.ValidFrom || v.ValidTo != r.ValidTo || v.SystemFrom != r.SystemFrom {
			t.Errorf("row %+v is not the version asof answers: %+v (ok %v)", r, v, ok)
		}
		row := []any{r.Key, r.Log, f.storeRow(t, &fact)[2]}
		for _, c := range f.cols {
			if v := r.Fields[c.name]; v == nil {
				row = append(row, nil)
			} else {
				row = append(row, c.want(v))
			}
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b []any) int { return strings.Compare(a[0].(string), b[0].(string)) })
	return rows
}

func TestTakeRefuses(t *testing.T) {
	o := snapshottest.NewOrders(t, snapshottest.OrdersSpec{Seed: 6, Keys: 5, Entries: 60, Logs: 1})
	f := newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols)
	_, err := snapshot.Take(ctx, f.source(), f.product, t.TempDir()+"/a")
	if !errors.Is(err, snapshot.ErrNotProven) || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("Take of a log never checkpointed: %v", err)
	}
	o.Checkpoint(t)
	exists := t.TempDir()
	if _, err := snapshot.Take(ctx, f.source(), f.product, exists); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("Take into an existing directory: %v", err)
	}
	for _, opt := range []snapshot.Option{snapshot.Kinds(), snapshot.Kinds("csv"), snapshot.Kinds(snapshot.Table, snapshot.Table), snapshot.PII("no_such_field"), snapshot.SchemaID(99),
		snapshot.Offsets(snapshot.Offset{Topic: "another.topic"}), snapshot.Offsets(snapshot.Offset{Offset: -1}),
		snapshot.Offsets(snapshot.Offset{Partition: 1}, snapshot.Offset{Partition: 1, Offset: 4}), snapshot.RowGroupRows(0)} {
		if _, err := snapshot.Take(ctx, f.source(), f.product, t.TempDir()+"/x", opt); err == nil {
			t.Fatal("Take with a bad option: no error")
		}
	}
	if _, err := snapshot.Take(ctx, f.source(), snapshot.Product{URN: "u"}, t.TempDir()+"/y"); err == nil {
		t.Fatal("Take without port and topic: no error")
	}
}

// TestSealedPII: a product whose contract seals the e-mail. Without
// keys the column reads null and _sealed names it; with keys it reads in
// clear; after a subject is forgotten, a new snapshot shows it erased and
// the one that still holds it no longer verifies.
func TestSealedPII(t *testing.T) {
	ks := governance.MemoryKeys()
	o := snapshottest.NewOrders(t, snapshottest.OrdersSpec{Seed: 7, Keys: 10, Entries: 150, Logs: 2, Sealed: true, KeyStore: ks})
	o.Checkpoint(t)
	f := newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols)

	if _, err := snapshot.Take(ctx, f.source(), f.product, t.TempDir()+"/s"); !errors.Is(err, snapshot.ErrSealed) {
		t.Fatalf("Take of sealed entries without PII: %v, want ErrSealed", err)
	}
	closed, _ := f.take(t, snapshot.PII("email"))
	src := f.source()
	src.Keys = ks
	openDir := t.TempDir() + "/open"
	if _, err := snapshot.Take(ctx, src, f.product, openDir, snapshot.PII("email")); err != nil {
		t.Fatal(err)
	}

	rows := func(dir string) map[string]*snapshot.Row {
		s, err := snapshot.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*snapshot.Row{}
		err = s.Rows(snapshot.Table, func(r *snapshot.Row) error {
			c := *r
			out[r.Key] = &c
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 {
			t.Fatal("no rows")
		}
		return out
	}
	for k, r := range rows(closed) {
		if r.Fields["email"] != nil || !slices.Equal(r.Sealed, []string{"email"}) || r.Erased != nil {
			t.Fatalf("without keys, %s reads email %v sealed %v erased %v", k, r.Fields["email"], r.Sealed, r.Erased)
		}
	}
	var victim string
	for k, r := range rows(openDir) {
		if r.Fields["email"] != k+"@example.com" || r.Sealed != nil {
			t.Fatalf("with keys, %s reads email %v sealed %v", k, r.Fields["email"], r.Sealed)
		}
		victim = k
	}
	res := snapshottest.DuckDB(t, "SELECT count(*)::VARCHAR, count(email)::VARCHAR, count(*) FILTER (WHERE _sealed = 'email')::VARCHAR FROM "+
		snapshottest.Quote(closed+"/table.parquet"))
	if r := res[0].Rows[0]; r[1] != "0" || r[0] != r[2] {
		t.Fatalf("DuckDB on the sealed table: rows, emails, sealed = %v", r)
	}

	if _, err := snapshot.Verify(ctx, openDir, src, o.Verifier); err != nil {
		t.Fatalf("Verify with the keys: %v", err)
	}
	if _, err := snapshot.Verify(ctx, openDir, f.source(), o.Verifier); err == nil {
		t.Fatal("Verify of an opened snapshot without the keys: no error")
	}
	if err := ks.Destroy(ctx, victim); err != nil {
		t.Fatal(err)
	}
	_, err := snapshot.Verify(ctx, openDir, src, o.Verifier)
	var me *snapshot.MismatchError
	if !errors.As(err, &me) || me.Key != victim {
		t.Fatalf("Verify after forgetting %s: %v, want a mismatch on that key", victim, err)
	}
	after := t.TempDir() + "/after"
	if _, err := snapshot.Take(ctx, src, f.product, after, snapshot.PII("email")); err != nil {
		t.Fatal(err)
	}
	if r := rows(after)[victim]; r.Fields["email"] != nil || !slices.Equal(r.Erased, []string{"email"}) {
		t.Fatalf("after forgetting %s: email %v erased %v", victim, r.Fields["email"], r.Erased)
	}
}

// TestSchemaEvolution: entries written with an older schema fill the
// newest schema's columns by name, a field they lack taking its default;
// asked for the older schema, newer entries keep the fields it has.
func TestSchemaEvolution(t *testing.T) {
	v1, err := schemas.Parse("item.avsc", `{"type":"record","name":"Item","fields":[{"name":"id","type":"string"},{"name":"qty","type":"int"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := schemas.Parse("item.avsc", `{"type":"record","name":"Item","fields":[{"name":"id","type":"string"},{"name":"qty","type":"long"},
		{"name":"color","type":"string","default":"none"},{"name":"size","type":["null","int"],"default":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	type item1 struct {
		ID  string `avro:"id"`
		Qty int32  `avro:"qty"`
	}
	type item2 struct {
		ID    string `avro:"id"`
		Qty   int64  `avro:"qty"`
		Color string `avro:"color"`
		Size  *int32 `avro:"size"`
	}
	dd := snapshottest.NewDataDir(t, "urn:dataproduct:shop:items")
	dd.SaveSchema(t, 1, v1)
	dd.SaveSchema(t, 2, v2)
	e1, _ := schemas.NewEncoder(v1, 1)
	e2, _ := schemas.NewEncoder(v2, 2)
	size := int32(3)
	var entries []auditlog.Entry
	for i, r := range []struct {
		key string
		enc *schemas.Encoder
		row any
		id  uint32
	}{{"a", e1, item1{"a", 5}, 1}, {"b", e2, item2{"b", 1 << 40, "red", &size}, 2}} {
		sys := int64(1_000_000 * (i + 1))
		wire, err := r.enc.Append(nil, r.row, schemas.Meta{ValidFrom: sys, SystemFrom: sys})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, auditlog.Entry{Seq: uint64(i + 1), SystemTime: sys, ValidFrom: sys, Op: auditlog.OpAssert,
			Key: []byte(r.key), Payload: wire, Prov: auditlog.Provenance{SchemaID: r.id}})
	}
	if err := dd.Log(t, "items-0").Append(entries); err != nil {
		t.Fatal(err)
	}
	dd.Checkpoint(t)
	f := newFixture(t, dd, snapshot.Product{URN: "urn:dataproduct:shop:items", Port: "items", Topic: "shop.items.v1"}, nil)

	read := func(dir string) map[string]map[string]any {
		s, err := snapshot.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]any{}
		if err := s.Rows(snapshot.Table, func(r *snapshot.Row) error { out[r.Key] = r.Fields; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	dir, m := f.take(t, snapshot.ValidAt(5_000_000))
	if m.Schema.ID != 2 {
		t.Fatalf("schema id %d, want 2: the newest entry's", m.Schema.ID)
	}
	got := read(dir)
	if a := got["a"]; a["qty"] != int64(5) || a["color"] != "none" || a["size"] != nil {
		t.Fatalf("the v1 entry under v2: %v", a)
	}
	if b := got["b"]; b["qty"] != int64(1<<40) || b["color"] != "red" || b["size"] != 3 {
		t.Fatalf("the v2 entry: %v", b)
	}
	// Under v1, the v2 entry's qty of 2^40 does not fit an int: refused,
	// not wrapped; as of before it was recorded, v1 lays out a's row.
	_, err = snapshot.Take(ctx, f.source(), f.product, t.TempDir()+"/v1", snapshot.SchemaID(1))
	if err == nil || !strings.Contains(err.Error(), `field "qty"`) || !strings.Contains(err.Error(), "does not fit an int") {
		t.Fatalf("v2's long under v1's int: %v", err)
	}
	dir, _ = f.take(t, snapshot.AsOf(1_500_000), snapshot.ValidAt(5_000_000), snapshot.SchemaID(1))
	if a := read(dir)["a"]; len(a) != 2 || a["qty"] != 5 {
		t.Fatalf("the v1 entry under v1: %v", a)
	}
}

// TestRowGroupsAsTheyFill: rows go out in row groups of the size asked as
// they are derived, which is what bounds Take's memory; the files read
// back across groups, and the offsets land in the manifest in order.
func TestRowGroupsAsTheyFill(t *testing.T) {
	f, o := ordersFixture(t, snapshottest.OrdersSpec{Seed: 12, Keys: 25, Entries: 400, Logs: 2})
	dir, m := f.take(t, snapshot.RowGroupRows(50),
		snapshot.Offsets(snapshot.Offset{Partition: 2, Offset: 9}, snapshot.Offset{Partition: 0, Offset: 7}))
	if want := []snapshot.Offset{{Topic: snapshottest.OrdersTopic, Partition: 0, Offset: 7}, {Topic: snapshottest.OrdersTopic, Partition: 2, Offset: 9}}; !slices.Equal(m.Offsets, want) {
		t.Fatalf("offsets %v, want %v", m.Offsets, want)
	}
	hist, _ := m.File(snapshot.History)
	res := snapshottest.DuckDB(t, "SELECT count(DISTINCT row_group_id)::VARCHAR, max(row_group_num_rows)::VARCHAR FROM parquet_metadata("+
		snapshottest.Quote(filepath.Join(dir, hist.Path))+")")
	if groups := (hist.Rows + 49) / 50; res[0].Rows[0][0] != strconv.FormatInt(groups, 10) || res[0].Rows[0][1] != "50" {
		t.Fatalf("%d rows in row groups %v, want %d groups of at most 50", hist.Rows, res[0].Rows[0], groups)
	}
	if _, err := snapshot.Verify(ctx, dir, f.source(), o.Verifier); err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	if err := s.Rows(snapshot.History, func(*snapshot.Row) error { n++; return nil }); err != nil || n != hist.Rows {
		t.Fatalf("read %d rows back (%v), want %d", n, err, hist.Rows)
	}
}
