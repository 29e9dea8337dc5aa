package auditlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Proofs against signed checkpoints: computed from the stored tree, their
// roots must be the signed ones, and a checkpoint of another log is refused.
func TestProveAgainstCheckpoints(t *testing.T) {
	dir, _, _, v := checkpointed(t, 10, 40, 30)
	root := filepath.Dir(dir)
	st := openStore(t, root)
	read := func(size uint64) Checkpoint {
		t.Helper()
		cp, _, err := ReadCheckpoint(NotePath(dir, size), v)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	cp10, cp50, cp80 := read(10), read(50), read(80)
	bs := bodies(t, dir)

	p, err := st.ProveInCheckpoint("orders-0", 7, cp50)
	if err != nil || p.Root != cp50.Root || p.LeafHash != [32]byte(hasher.HashLeaf(bs[6])) || p.Verify() != nil {
		t.Fatalf("inclusion of 7 in 50: %+v, %v", p, err)
	}
	for _, seq := range []uint64{0, 51} {
		if _, err := st.ProveInCheckpoint("orders-0", seq, cp50); err == nil || !strings.Contains(err.Error(), "is not in checkpoint 50, which covers seq 1..50") {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	c, err := st.ProveCheckpointsConsistent("orders-0", cp10, cp80)
	if err != nil || c.Root1 != cp10.Root || c.Root2 != cp80.Root || c.Verify() != nil {
		t.Fatalf("consistency 10 -> 80: %+v, %v", c, err)
	}

	// A root the stored tree does not give: the tree changed after signing.
	forged := cp50
	forged.Root[0] ^= 1
	if _, err := st.ProveInCheckpoint("orders-0", 7, forged); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the tree was changed after it was signed") {
		t.Fatalf("inclusion against another root: %v", err)
	}
	if _, err := st.ProveCheckpointsConsistent("orders-0", cp10, forged); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "after checkpoint 10 was signed") {
		t.Fatalf("consistency against another root: %v", err)
	}
	// Checkpoints of another log, or of two logs.
	other := cp50
	other.Origin = "urn:dataproduct:test:orders/orders-9"
	if _, err := st.ProveInCheckpoint("orders-0", 7, other); err == nil || !strings.Contains(err.Error(), "is not for the log") {
		t.Fatalf("checkpoint of another log: %v", err)
	}
	if _, err := st.ProveCheckpointsConsistent("orders-0", cp10, other); err == nil || !strings.Contains(err.Error(), "different logs") {
		t.Fatalf("checkpoints of two logs: %v", err)
	}
	if _, err := st.ProveInCheckpoint("orders-9", 7, other); err == nil || !strings.Contains(err.Error(), `no log named "orders-9"`) {
		t.Fatalf("unknown log: %v", err)
	}

	// Which log a checkpoint is about.
	if l, err := st.LogOf(cp50); err != nil || l.Dir != dir {
		t.Fatalf("LogOf: %+v, %v", l, err)
	}
	if _, err := st.LogOf(other); err == nil || !strings.Contains(err.Error(), `matches checkpoint origin "urn:dataproduct:test:orders/orders-9"`) {
		t.Fatalf("LogOf another log: %v", err)
	}
	for _, under := range []string{root, dir} {
		if d, err := LogDirOf(under, cp50); err != nil || d != dir {
			t.Fatalf("LogDirOf(%s): %s, %v", under, d, err)
		}
	}
	if _, err := LogDirOf(root, other); err == nil || !strings.Contains(err.Error(), "no log under") {
		t.Fatalf("LogDirOf another log: %v", err)
	}
}

func TestReadCheckpointAndFindVerifier(t *testing.T) {
	dir, notes, _, v := checkpointed(t, 10)
	root := filepath.Dir(dir)
	if _, _, err := ReadCheckpoint(filepath.Join(root, "nope.note"), v); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing note: %v", err)
	}
	big := filepath.Join(root, "big.note")
	os.WriteFile(big, bytes.Repeat([]byte("x"), maxNoteSize+1), 0o644)
	if _, _, err := ReadCheckpoint(big, v); err == nil || !strings.Contains(err.Error(), "not a checkpoint note") {
		t.Fatalf("huge note: %v", err)
	}
	_, stranger := testKey(t, t.TempDir())
	if _, _, err := ReadCheckpoint(NotePath(dir, 10), stranger); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("note checked with another key: %v", err)
	}
	cp, msg, err := ReadCheckpoint(NotePath(dir, 10), v)
	if err != nil || cp.Size != 10 || cp.Log() != "orders-0" || !bytes.Equal(msg, notes[10]) {
		t.Fatalf("ReadCheckpoint: %+v, %v", cp, err)
	}
	if p, ok, err := NewestCheckpoint(dir); err != nil || !ok || p != NotePath(dir, 10) {
		t.Fatalf("NewestCheckpoint: %s %v %v", p, ok, err)
	}
	if _, ok, err := NewestCheckpoint(root); err != nil || ok {
		t.Fatalf("NewestCheckpoint of a directory without checkpoints: %v %v", ok, err)
	}

	// The key is found from the log, from beside it, and from two levels down.
	deep := filepath.Join(root, "changelog", "orders-1")
	os.MkdirAll(deep, 0o750)
	for _, from := range []string{root, dir, deep} {
		got, path, err := FindVerifier(from)
		if err != nil || path != filepath.Join(root, VerifierFile) || got.KeyHash() != v.KeyHash() {
			t.Fatalf("FindVerifier(%s): %s, %v", from, path, err)
		}
	}
	if _, _, err := FindVerifier(filepath.Join(deep, "a", "b")); !errors.Is(err, ErrNoVerifier) {
		t.Fatalf("three levels down: %v", err)
	}
}

// CheckpointTree signs every log under a product's data directory.
func TestCheckpointTree(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"orders-0", "orders-1"} {
		buildLog(t, filepath.Join(root, "changelog", name), 25, 5)
	}
	s, v := testKey(t, root)
	signed, err := CheckpointTree(root, s)
	if err != nil || len(signed) != 2 {
		t.Fatalf("CheckpointTree: %+v, %v", signed, err)
	}
	for i, sg := range signed {
		want := filepath.Join(root, "changelog", "orders-"+string(rune('0'+i)))
		cp, msg, err := ReadCheckpoint(sg.Note, v)
		if err != nil || sg.Dir != want || sg.Log != filepath.Base(want) || sg.Note != NotePath(want, 25) ||
			!bytes.Equal(msg, sg.Msg) || cp != sg.Checkpoint || cp.Log() != sg.Log {
			t.Fatalf("signed %d: %+v, %v", i, sg, err)
		}
		if rep, err := Verify(sg.Dir); err != nil || len(rep.Checkpoints) != 1 || !rep.Checkpoints[0].OK {
			t.Fatalf("verify after CheckpointTree: %+v, %v", rep, err)
		}
	}
	if _, err := CheckpointTree(t.TempDir(), s); err == nil || !strings.Contains(err.Error(), "no change log under") {
		t.Fatalf("empty tree: %v", err)
	}
}
