package snapshot_test

import (
	"testing"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

// TestSnapshotOfOnePort: a product with two output ports keeps both in
// one log; a snapshot of either holds that port's entities only, and
// verifies against the log.
func TestSnapshotOfOnePort(t *testing.T) {
	d := snapshottest.NewDataDir(t, "urn:dataproduct:test:two-ports")
	s, err := schemas.Parse("row.avsc", `{"type":"record","name":"Row","namespace":"test","fields":[{"name":"id","type":"long"},{"name":"what","type":"string"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	d.SaveSchema(t, 3, s)
	enc, err := schemas.NewEncoder(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	var entries []auditlog.Entry
	for i, e := range []struct {
		key, port, what string
	}{{"1", "", "first"}, {"1", "totals", "total of 1"}, {"2", "", "second"}, {"3", "totals", "total of 3"}, {"1", "", "first again"}} {
		at := int64(1_700_000_000_000_000 + i*1000)
		payload, err := enc.Append(nil, map[string]any{"id": int64(i), "what": e.what}, schemas.Meta{ValidFrom: at, SystemFrom: at})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, auditlog.Entry{Seq: uint64(i + 1), SystemTime: at, ValidFrom: at, Op: auditlog.OpAssert,
			Key: []byte(e.key), Payload: payload, Port: e.port, Prov: auditlog.Provenance{Topic: "in", SchemaID: 3}})
	}
	if err := d.Log(t, "in-0").Append(entries); err != nil {
		t.Fatal(err)
	}
	d.Checkpoint(t)
	st := d.Store(t)
	src := snapshot.Source{Store: st, SchemaDir: d.SchemaDir()}
	for _, c := range []struct {
		port, logPort string
		rows          int64
	}{{"rows", "", 2}, {"totals", "totals", 2}} {
		dir := t.TempDir() + "/" + c.port
		m, err := snapshot.Take(ctx, src, snapshot.Product{URN: d.Product, Port: c.port, Topic: "out." + c.port, LogPort: c.logPort}, dir, snapshot.Kinds(snapshot.Table))
		if err != nil {
			t.Fatal(err)
		}
		if m.Files[0].Rows != c.rows || m.LogPort != c.logPort {
			t.Errorf("snapshot of port %s: %d table rows, log port %q; want %d, %q", c.port, m.Files[0].Rows, m.LogPort, c.rows, c.logPort)
		}
		if _, err := snapshot.Verify(ctx, dir, src, d.Verifier); err != nil {
			t.Errorf("verify the snapshot of port %s: %v", c.port, err)
		}
	}
}
