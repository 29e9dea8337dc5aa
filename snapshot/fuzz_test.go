package snapshot_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

// FuzzReadManifest: any bytes as manifest.json are refused or read,
// never a panic.
func FuzzReadManifest(f *testing.F) {
	o := snapshottest.NewOrders(f, snapshottest.OrdersSpec{Seed: 10, Keys: 4, Entries: 40, Logs: 1})
	o.Checkpoint(f)
	st := o.Store(f)
	dir := filepath.Join(f.TempDir(), "snap")
	if _, err := snapshot.Take(ctx, snapshot.Source{Store: st, SchemaDir: o.SchemaDir()},
		snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, dir); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, snapshot.ManifestName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":1,"files":[{"kind":"table","path":"../../etc/passwd"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, snapshot.ManifestName), b, 0o640); err != nil {
			t.Fatal(err)
		}
		m, err := snapshot.ReadManifest(d)
		if err != nil {
			return
		}
		for _, fl := range m.Files {
			if !filepath.IsLocal(fl.Path) {
				t.Fatalf("read a manifest whose file %q is outside its directory", fl.Path)
			}
		}
	})
}

// FuzzOpenRows: a snapshot whose Parquet file is any bytes, with a
// manifest made to match them, is refused or read, never a panic: a
// snapshot handed over is input like any other.
func FuzzOpenRows(f *testing.F) {
	o := snapshottest.NewOrders(f, snapshottest.OrdersSpec{Seed: 11, Keys: 4, Entries: 40, Logs: 1})
	o.Checkpoint(f)
	st := o.Store(f)
	dir := filepath.Join(f.TempDir(), "snap")
	if _, err := snapshot.Take(ctx, snapshot.Source{Store: st, SchemaDir: o.SchemaDir()},
		snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, dir,
		snapshot.Kinds(snapshot.Table)); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "table.parquet"))
	if err != nil {
		f.Fatal(err)
	}
	m, err := snapshot.ReadManifest(dir)
	if err != nil {
		f.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(dir, snapshot.SchemaName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "table.parquet"), b, 0o640)
		os.WriteFile(filepath.Join(d, snapshot.SchemaName), schema, 0o640)
		mm := *m
		mm.Files = []snapshot.File{m.Files[0]}
		sum := sha256.Sum256(b)
		mm.Files[0].SHA256, mm.Files[0].Bytes = hex.EncodeToString(sum[:]), int64(len(b))
		writeManifest(t, d, &mm)
		s, err := snapshot.Open(d)
		if err != nil {
			return
		}
		s.Rows(snapshot.Table, func(*snapshot.Row) error { return nil })
	})
}
