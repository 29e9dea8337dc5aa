package auditlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func testKey(t testing.TB, dir string) (note.Signer, note.Verifier) {
	t.Helper()
	s, v, err := LoadOrCreateKey(dir, "urn:dataproduct:test:orders")
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// bodies reads every entry body with the test's own frame walker.
func bodies(t testing.TB, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, fl := range walkFrames(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, fl.seg))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b[fl.off+8:fl.off+fl.size-32]))
	}
	return out
}

// rootOf computes the RFC 6962 root of the first n bodies from scratch.
func rootOf(t testing.TB, bs [][]byte, n int) [32]byte {
	t.Helper()
	cr := factory.NewEmptyRange(0)
	for _, b := range bs[:n] {
		if err := cr.Append(hasher.HashLeaf(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	r, err := cr.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		r = hasher.EmptyRoot()
	}
	return [32]byte(r)
}

// checkpointed builds a log in batches, signing a checkpoint after each.
func checkpointed(t *testing.T, batches ...int) (dir string, notes map[uint64][]byte, s note.Signer, v note.Verifier) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "orders-0")
	s, v = testKey(t, root)
	l := mustOpen(t, dir, SegmentSize(4096), SyncEachAppend(false))
	defer l.Close()
	notes = map[uint64][]byte{}
	for _, n := range batches {
		appendN(t, l, n)
		msg, err := l.Checkpoint(s)
		if err != nil {
			t.Fatal(err)
		}
		seq, _, _ := l.Tail()
		notes[seq] = msg
	}
	return dir, notes, s, v
}

func TestCheckpointRootsMatchFromScratch(t *testing.T) {
	dir, notes, _, v := checkpointed(t, 1, 2, 13, 16, 100, 7, 33)
	bs := bodies(t, dir)
	for size, msg := range notes {
		cp, err := OpenCheckpoint(msg, v)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != size || cp.Origin != "urn:dataproduct:test:orders/orders-0" {
			t.Fatalf("checkpoint %d: %+v", size, cp)
		}
		if want := rootOf(t, bs, int(size)); cp.Root != want {
			t.Fatalf("checkpoint %d: root %x, from scratch %x", size, cp.Root, want)
		}
		saved, err := os.ReadFile(NotePath(dir, size))
		if err != nil || !bytes.Equal(saved, msg) {
			t.Fatalf("checkpoint %d not saved as returned: %v", size, err)
		}
	}
	// The note is a C2SP checkpoint: origin, size, base64 root, blank line, signature.
	lines := strings.Split(string(notes[172]), "\n")
	if lines[1] != "172" || lines[3] != "" || !strings.HasPrefix(lines[4], "— urn:dataproduct:test:orders ") {
		t.Fatalf("note layout:\n%s", notes[172])
	}
}

// A checkpoint reads only the entries after the last one: damage to an
// entry it already covered does not stop the next checkpoint (Verify and
// VerifySince are what read everything).
func TestCheckpointIsIncremental(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "orders-0")
	s, v := testKey(t, root)
	l := mustOpen(t, dir, SyncEachAppend(false))
	defer l.Close()
	appendN(t, l, 50)
	first, err := l.Checkpoint(s)
	if err != nil {
		t.Fatal(err)
	}
	fl := walkFrames(t, dir)[3]
	patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte { b[fl.off+60] ^= 0xff; return b })
	appendN(t, l, 5)
	if _, err := l.Checkpoint(s); err != nil {
		t.Fatalf("incremental checkpoint read an old entry: %v", err)
	}
	_, err = VerifySince(dir, first, v)
	wantCorrupt(t, err, fl.seg, 4, "checksum")
}

func TestCheckpointRefusesRewindBehindIt(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "orders-0")
	s, _ := testKey(t, root)
	l := mustOpen(t, dir, SyncEachAppend(false))
	defer l.Close()
	appendN(t, l, 20)
	if _, err := l.Checkpoint(s); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Rewind(func(e *Entry) bool { return e.Seq > 15 }); err != nil {
		t.Fatal(err)
	}
	_, err := l.Checkpoint(s)
	if ce := asCorrupt(t, err); ce.Seq != 16 || !strings.Contains(ce.Reason, "behind a checkpoint") {
		t.Fatalf("got %v", err)
	}
	// Rewound and re-appended to the same length, with other entries.
	b := entriesFor(16, 5)
	for i := range b {
		b[i].Payload = append(b[i].Payload, "other"...)
	}
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	_, err = l.Checkpoint(s)
	if ce := asCorrupt(t, err); ce.Seq != 20 || !strings.Contains(ce.Reason, "changed after it was checkpointed") {
		t.Fatalf("got %v", err)
	}
}

func TestProofsVerify(t *testing.T) {
	dir, notes, _, v := checkpointed(t, 1, 2, 13, 16, 100, 7, 33, 1)
	st := openStore(t, filepath.Dir(dir))
	bs := bodies(t, dir)
	var sizes []uint64
	for n := range notes {
		sizes = append(sizes, n)
	}
	for _, size := range sizes {
		cp, _ := OpenCheckpoint(notes[size], v)
		for seq := uint64(1); seq <= size; seq++ {
			p, err := st.ProveInclusion("orders-0", seq, size)
			if err != nil {
				t.Fatalf("inclusion of %d in %d: %v", seq, size, err)
			}
			if p.Root != cp.Root || p.LeafHash != [32]byte(hasher.HashLeaf(bs[seq-1])) {
				t.Fatalf("inclusion of %d in %d: root or leaf differ from the checkpoint", seq, size)
			}
		}
		for _, size2 := range sizes {
			if size2 < size {
				continue
			}
			p, err := st.ProveConsistency("orders-0", size, size2)
			if err != nil {
				t.Fatalf("consistency %d -> %d: %v", size, size2, err)
			}
			cp2, _ := OpenCheckpoint(notes[size2], v)
			if p.Root1 != cp.Root || p.Root2 != cp2.Root {
				t.Fatalf("consistency %d -> %d: roots differ from the checkpoints", size, size2)
			}
		}
	}
	// A tampered proof fails.
	p, err := st.ProveInclusion("orders-0", 40, 173)
	if err != nil {
		t.Fatal(err)
	}
	p.Hashes[2][0] ^= 1
	if p.Verify() == nil {
		t.Fatal("tampered inclusion proof verified")
	}
}

func TestVerifySince(t *testing.T) {
	dir, notes, s, v := checkpointed(t, 10, 40, 30)
	rep, err := VerifySince(dir, notes[50], v)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 80 || rep.Proof.Size1 != 50 || rep.Proof.Verify() != nil {
		t.Fatalf("report %+v", rep)
	}
	// Signed by someone else, or for another log: refused.
	other, _ := testKey(t, t.TempDir())
	forged, _ := note.Sign(&note.Note{Text: strings.SplitN(string(notes[50]), "\n\n", 2)[0] + "\n"}, other)
	if _, err := VerifySince(dir, forged, v); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("forged checkpoint: %v", err)
	}
	elsewhere, _ := note.Sign(&note.Note{Text: "urn:dataproduct:test:orders/orders-9\n50\n" + strings.Split(string(notes[50]), "\n")[2] + "\n"}, s)
	if _, err := VerifySince(dir, elsewhere, v); err == nil || !strings.Contains(err.Error(), "not for the log") {
		t.Fatalf("checkpoint of another log: %v", err)
	}
}

// rewriteLog rebuilds the log in dir from its entries with edit applied,
// recomputing every chain hash, CRC and segment header, as someone
// covering their tracks would. The checkpoints directory is left as is.
func rewriteLog(t *testing.T, dir string, edit func([]Entry) []Entry) {
	t.Helper()
	l := mustOpen(t, dir)
	es := scanAll(t, l, 1)
	l.Close()
	es = edit(es)
	tmp := filepath.Join(t.TempDir(), "rewritten")
	nl := mustOpen(t, tmp, SegmentSize(4096), SyncEachAppend(false))
	for i := range es {
		es[i].Seq = uint64(i + 1)
	}
	if err := nl.Append(es); err != nil {
		t.Fatal(err)
	}
	nl.Close()
	for _, name := range segFiles(t, dir) {
		os.Remove(filepath.Join(dir, name))
	}
	for _, name := range segFiles(t, tmp) {
		b, _ := os.ReadFile(filepath.Join(tmp, name))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(dir, ChainOnly()); err != nil {
		t.Fatalf("rewritten log should pass the chain check: %v", err)
	}
}

func TestTamperingIsDetectedAndNamed(t *testing.T) {
	// setCRC makes a changed frame pass its checksum, so only the chain can tell.
	setCRC := func(b []byte, fl frameLoc) {
		binary.BigEndian.PutUint32(b[fl.off+4:], crc32.Checksum(b[fl.off+8:fl.off+fl.size], castagnoli))
	}
	// Each tamper returns the seq the error must name (for a rewrite: the
	// changed entry, which the named range must hold).
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string) uint64
		reason string
	}{
		{"change one entry", func(t *testing.T, dir string) uint64 {
			fl := walkFrames(t, dir)[21]
			patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte {
				b[fl.off+8+60] ^= 1
				setCRC(b, fl)
				return b
			})
			return fl.seq
		}, "hash chain broken"},
		{"remove one entry", func(t *testing.T, dir string) uint64 {
			fl := walkFrames(t, dir)[30]
			patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte {
				return append(b[:fl.off:fl.off], b[fl.off+fl.size:]...)
			})
			return fl.seq + 1 // found where fl.seq was expected
		}, "sequence gap"},
		{"cut the log short of the checkpoint", func(t *testing.T, dir string) uint64 {
			l := mustOpen(t, dir)
			if _, err := l.Rewind(func(e *Entry) bool { return e.Seq > 79 }); err != nil {
				t.Fatal(err)
			}
			l.Close()
			return 80
		}, "were removed"},
		{"reorder two entries", func(t *testing.T, dir string) uint64 {
			fs := walkFrames(t, dir)
			i := 11
			for fs[i].seg != fs[i+1].seg {
				i++
			}
			a, b := fs[i], fs[i+1]
			patchFile(t, filepath.Join(dir, a.seg), func(buf []byte) []byte {
				fa := bytes.Clone(buf[a.off : a.off+a.size])
				fb := bytes.Clone(buf[b.off : b.off+b.size])
				copy(buf[a.off:], fb)
				copy(buf[a.off+b.size:], fa)
				return buf
			})
			return b.seq
		}, "sequence gap"},
		{"rewrite history behind the checkpoint", func(t *testing.T, dir string) uint64 {
			rewriteLog(t, dir, func(es []Entry) []Entry {
				es[33].Payload = append(bytes.Clone(es[33].Payload), "!"...)
				return es
			})
			return 34
		}, "rewritten behind it"},
		{"rewrite history and the stored tree", func(t *testing.T, dir string) uint64 {
			rewriteLog(t, dir, func(es []Entry) []Entry {
				es[33].ValidFrom++
				return es
			})
			m, _ := filepath.Glob(filepath.Join(dir, checkpointDirName, "nodes-*.bin"))
			for _, f := range m {
				os.Remove(f)
			}
			os.Remove(filepath.Join(dir, checkpointDirName, treeStateName))
			return 34
		}, "rewritten behind it"},
		{"drop an entry and rewrite", func(t *testing.T, dir string) uint64 {
			rewriteLog(t, dir, func(es []Entry) []Entry {
				last := es[len(es)-1]
				last.SystemTime++
				return append(append(es[:40:40], es[41:]...), last) // same length, so only the tree can tell
			})
			return 41
		}, "rewritten behind it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, notes, s, v := checkpointed(t, 10, 40, 30)
			seq := tc.tamper(t, dir)
			_, err := VerifySince(dir, notes[80], v)
			ce := asCorrupt(t, err)
			t.Log(err)
			if !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %v\nwant a reason containing %q", err, tc.reason)
			}
			if !strings.Contains(tc.reason, "rewritten") {
				if ce.Seq != seq {
					t.Fatalf("got %v\nwant seq %d named", err, seq)
				}
				return
			}
			var lo, hi uint64
			i := strings.Index(ce.Reason, "in seq ")
			if _, e := fmt.Sscanf(ce.Reason[i+len("in seq "):], "%d..%d", &lo, &hi); i < 0 || e != nil || seq < lo || seq > hi || ce.Seq != lo {
				t.Fatalf("got %v\nwant a range holding seq %d", err, seq)
			}
			if tc.name == "rewrite history behind the checkpoint" {
				if hi-lo >= 16 {
					t.Fatalf("stored tree nodes should narrow the range to 16 entries: %v", err)
				}
				// The older checkpoint predates the rewrite and still holds.
				if _, err := VerifySince(dir, notes[10], v); err != nil {
					t.Fatalf("checkpoint 10 predates the rewrite: %v", err)
				}
			}
			if tc.name == "rewrite history and the stored tree" {
				// Re-signing the rewritten log gives a tree whose prefix no
				// longer has checkpoint 50's root: the consistency proof
				// between the old and the new checkpoint cannot be made.
				l := mustOpen(t, dir)
				_, err := l.Checkpoint(s)
				l.Close()
				if err != nil {
					t.Fatal(err)
				}
				st := openStore(t, filepath.Dir(dir))
				p, err := st.ProveConsistency("orders-0", 50, 80)
				cp50, _ := OpenCheckpoint(notes[50], v)
				if err != nil || p.Root1 == cp50.Root {
					t.Fatalf("consistency proof from the old checkpoint: root %x, signed %x, err %v", p.Root1, cp50.Root, err)
				}
			}
		})
	}
}

// TestLoadOrCreateKeyRace: replicas sharing a data directory create the key
// at the same moment; all of them must end up with one and the same key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		const n = 8
		hashes := make(chan uint32, n)
		errs := make(chan error, n)
		var start sync.WaitGroup
		start.Add(1)
		for range n {
			go func() {
				start.Wait()
				s, _, err := LoadOrCreateKey(dir, "urn:dataproduct:race:test")
				if err != nil {
					errs <- err
					return
				}
				hashes <- s.KeyHash()
			}()
		}
		start.Done()
		var first uint32
		for i := range n {
			select {
			case err := <-errs:
				t.Fatalf("round %d: %v", round, err)
			case h := <-hashes:
				if i == 0 {
					first = h
				} else if h != first {
					t.Fatalf("round %d: two different keys were handed out", round)
				}
			}
		}
	}
}

// TestCheckpointAtWhileAppending signs a prefix of the log while another
// goroutine keeps appending: the checkpoint covers exactly that prefix and
// verifies against the grown log.
func TestCheckpointAtWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, SegmentSize(4096))
	defer l.Close()
	appendN(t, l, 300)
	signer, verifier, err := LoadOrCreateKey(t.TempDir(), "urn:dataproduct:test:ckpt")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			seq, _, _ := l.Tail()
			if err := l.Append(entriesFor(seq+1, 25)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	msg, err := l.CheckpointAt(signer, 300)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(msg, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 300 {
		t.Fatalf("checkpoint size %d, want 300", cp.Size)
	}
	if _, err := VerifySince(dir, msg, verifier); err != nil {
		t.Fatalf("the grown log does not extend the checkpoint: %v", err)
	}
	if _, err := l.CheckpointAt(signer, 5000); err == nil {
		t.Fatal("a checkpoint past the end of the log was signed")
	}
}
