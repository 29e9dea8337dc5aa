package snapshot_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/seal"
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
		if string(fact.Key) != r.Key || fact.ValidFrom != r.ValidFrom || fact.ValidTo != r.ValidTo || fact.SystemTime != r.SystemFrom {
			t.Errorf("row %+v does not show entry %s#%d", r, fact.Log, fact.Seq)
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
	for _, opt := range []snapshot.Option{snapshot.Kinds(), snapshot.Kinds("csv"), snapshot.Kinds(snapshot.Table, snapshot.Table), snapshot.PII("no_such_field"), snapshot.SchemaID(99)} {
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
	ks := seal.MemoryKeys()
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
