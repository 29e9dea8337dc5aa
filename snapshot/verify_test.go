package snapshot_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

func readManifest(t *testing.T, dir string) *snapshot.Manifest {
	t.Helper()
	m, err := snapshot.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeManifest(t *testing.T, dir string, m *snapshot.Manifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapshot.ManifestName), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func wantMismatch(t *testing.T, err error, file string, reason string) *snapshot.MismatchError {
	t.Helper()
	var me *snapshot.MismatchError
	if !errors.As(err, &me) || !errors.Is(err, snapshot.ErrMismatch) {
		t.Fatalf("Verify: %v, want a *MismatchError", err)
	}
	if me.File != file || !strings.Contains(me.Reason, reason) {
		t.Fatalf("Verify: %v, want one about %s saying %q", err, file, reason)
	}
	return me
}

// TestVerifyFailsOnChangedFile changes a snapshot's Parquet files in
// ways a careless or dishonest hand would, and Verify names each.
func TestVerifyFailsOnChangedFile(t *testing.T) {
	f, o := ordersFixture(t, snapshottest.OrdersSpec{Seed: 3, Keys: 20, Entries: 500, Logs: 2})
	when := moments(t, f.st, snapshottest.LogName(0))
	dir, _ := f.take(t)
	earlier, _ := f.take(t, snapshot.AsOf(when[0]))
	if _, err := snapshot.Verify(ctx, earlier, f.source(), o.Verifier); err != nil {
		t.Fatalf("Verify of the earlier snapshot: %v", err)
	}
	fresh := func(t *testing.T) string {
		t.Helper()
		cp := filepath.Join(t.TempDir(), "snap")
		if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		return cp
	}

	t.Run("a flipped byte", func(t *testing.T) {
		d := fresh(t)
		path := filepath.Join(d, "history.parquet")
		b, _ := os.ReadFile(path)
		b[len(b)/2] ^= 0x01
		os.WriteFile(path, b, 0o640)
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, "history.parquet", "SHA-256")
		if _, err := snapshot.Open(d); !errors.Is(err, snapshot.ErrMismatch) {
			t.Fatalf("Open of a changed file: %v", err)
		}
	})

	t.Run("another table with a manifest made to match", func(t *testing.T) {
		// The earlier snapshot's table is a well-formed file of the same
		// layout; the manifest is edited so every hash it states agrees.
		// Only the change log can tell.
		d := fresh(t)
		src := filepath.Join(earlier, "table.parquet")
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(d, "table.parquet"), b, 0o640)
		m := readManifest(t, d)
		em := readManifest(t, earlier)
		sum := sha256.Sum256(b)
		m.Files[0].SHA256, m.Files[0].Bytes = hex.EncodeToString(sum[:]), int64(len(b))
		m.Files[0].Rows, m.Files[0].Digest = em.Files[0].Rows, em.Files[0].Digest
		m.Digest = contentDigest(m.Files)
		writeManifest(t, d, m)
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		me := wantMismatch(t, err, "table.parquet", "")
		if me.Row < 0 || me.Column == "" || me.Key == "" {
			t.Fatalf("Verify: %v, want the first differing row, its key and column named", err)
		}
		t.Logf("caught: %v", err)
	})

	t.Run("a rows digest", func(t *testing.T) {
		d := fresh(t)
		m := readManifest(t, d)
		m.Files[1].Digest = strings.Repeat("0", 64)
		m.Digest = contentDigest(m.Files)
		writeManifest(t, d, m)
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, "history.parquet", "rows digest")
	})

	t.Run("the content digest", func(t *testing.T) {
		d := fresh(t)
		m := readManifest(t, d)
		m.Digest = strings.Repeat("1", 64)
		writeManifest(t, d, m)
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, snapshot.ManifestName, "contentSha256")
	})

	t.Run("the manifest's T", func(t *testing.T) {
		d := fresh(t)
		m := readManifest(t, d)
		m.System = when[1]
		writeManifest(t, d, m)
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, snapshot.ManifestName, "entries recorded by")
	})
}

// contentDigest is the manifest's contentSha256 as the package doc defines it.
func contentDigest(files []snapshot.File) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(string(f.Kind) + " " + f.Digest + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestVerifyFailsOnWrongCheckpoint: a manifest that names another log's
// checkpoint, one that does not cover the snapshot, or one a different
// key signed, does not prove the snapshot.
func TestVerifyFailsOnWrongCheckpoint(t *testing.T) {
	o := snapshottest.NewOrders(t, snapshottest.OrdersSpec{Seed: 4, Keys: 20, Entries: 300, Logs: 2})
	o.Checkpoint(t)
	log0 := filepath.Join(o.Dir, "changelog", snapshottest.LogName(0))
	old, err := auditlog.Checkpoints(log0)
	if err != nil || len(old) != 1 {
		t.Fatalf("checkpoints of %s: %v %v", log0, old, err)
	}
	o.Next(t, 200)
	o.Checkpoint(t)
	f := newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols)
	dir, m := f.take(t)
	if m.Logs[0].Checkpoint.Size <= old[0] {
		t.Fatalf("the snapshot names checkpoint %d of log 0, want a newer one than %d", m.Logs[0].Checkpoint.Size, old[0])
	}
	if _, err := snapshot.Verify(ctx, dir, f.source(), o.Verifier); err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, change func(m *snapshot.Manifest)) string {
		t.Helper()
		d := filepath.Join(t.TempDir(), "snap")
		if err := os.CopyFS(d, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		m := readManifest(t, d)
		change(m)
		writeManifest(t, d, m)
		return d
	}

	t.Run("another log's", func(t *testing.T) {
		d := edit(t, func(m *snapshot.Manifest) {
			m.Logs[0].Checkpoint, m.Logs[1].Checkpoint = m.Logs[1].Checkpoint, m.Logs[0].Checkpoint
		})
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		if !errors.Is(err, snapshot.ErrNotProven) || !strings.Contains(err.Error(), "origin") {
			t.Fatalf("Verify: %v, want ErrNotProven about the checkpoint's origin", err)
		}
	})

	t.Run("an older one", func(t *testing.T) {
		note, err := os.ReadFile(auditlog.NotePath(log0, old[0]))
		if err != nil {
			t.Fatal(err)
		}
		cp, _ := auditlog.ParseCheckpoint(string(note))
		d := edit(t, func(m *snapshot.Manifest) {
			m.Logs[0].Checkpoint = &snapshot.CheckpointRef{Size: cp.Size, Root: strings.Split(cp.Text(), "\n")[2], Note: string(note)}
		})
		_, err = snapshot.Verify(ctx, d, f.source(), o.Verifier)
		if !errors.Is(err, snapshot.ErrNotProven) || !strings.Contains(err.Error(), "covers") {
			t.Fatalf("Verify: %v, want ErrNotProven: the checkpoint does not cover the snapshot", err)
		}
	})

	t.Run("signed by another key", func(t *testing.T) {
		// A forger with their own key signs a checkpoint of the right log
		// and size with a root of their choosing.
		skey, _, err := note.GenerateKey(rand.Reader, o.Product)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		d := edit(t, func(m *snapshot.Manifest) {
			cp, _ := auditlog.ParseCheckpoint(m.Logs[0].Checkpoint.Note)
			cp.Root[0] ^= 1
			msg, err := note.Sign(&note.Note{Text: cp.Text()}, signer)
			if err != nil {
				t.Fatal(err)
			}
			m.Logs[0].Checkpoint = &snapshot.CheckpointRef{Size: cp.Size, Root: strings.Split(cp.Text(), "\n")[2], Note: string(msg)}
		})
		_, err = snapshot.Verify(ctx, d, f.source(), o.Verifier)
		if !errors.Is(err, snapshot.ErrNotProven) || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("Verify: %v, want ErrNotProven: the signature does not verify", err)
		}
	})

	t.Run("fields that disagree with the note", func(t *testing.T) {
		d := edit(t, func(m *snapshot.Manifest) { m.Logs[0].Checkpoint.Size++ })
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, snapshot.ManifestName, "size and root")
	})

	t.Run("none", func(t *testing.T) {
		d := edit(t, func(m *snapshot.Manifest) { m.Logs[1].Checkpoint = nil })
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		if !errors.Is(err, snapshot.ErrNotProven) {
			t.Fatalf("Verify: %v, want ErrNotProven", err)
		}
	})

	t.Run("a log left out", func(t *testing.T) {
		d := edit(t, func(m *snapshot.Manifest) { m.Logs = m.Logs[:1] })
		_, err := snapshot.Verify(ctx, d, f.source(), o.Verifier)
		wantMismatch(t, err, snapshot.ManifestName, "leaves out")
	})
}

// TestVerifyFailsOnDamagedLog: the same snapshot against a copy of the
// data directory in which one entry's bytes were changed after the
// checkpoint signed them.
func TestVerifyFailsOnDamagedLog(t *testing.T) {
	f, o := ordersFixture(t, snapshottest.OrdersSpec{Seed: 13, Keys: 10, Entries: 200, Logs: 1})
	dir, _ := f.take(t)
	cp := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(cp, os.DirFS(o.Dir)); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(cp, "changelog", snapshottest.LogName(0), "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	b, _ := os.ReadFile(segs[0])
	b[len(b)/2] ^= 0x20
	os.WriteFile(segs[0], b, 0o640)
	st, err := auditlog.OpenStore(cp, auditlog.IndexDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = snapshot.Verify(ctx, dir, snapshot.Source{Store: st, SchemaDir: filepath.Join(cp, "schemas")}, o.Verifier)
	if !errors.Is(err, snapshot.ErrNotProven) || !errors.Is(err, auditlog.ErrCorrupt) {
		t.Fatalf("Verify against a damaged log: %v, want ErrNotProven wrapping the log's CorruptError", err)
	}
}
