package auditlog

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzSegment feeds arbitrary bytes as a log's only segment. Whatever they
// are, Verify and Open must not panic or over-allocate, and they must agree:
// what Verify accepts Open opens, and after Open the log verifies clean.
func FuzzSegment(f *testing.F) {
	src := f.TempDir()
	buildLog(f, src, 4, 2)
	seg, err := os.ReadFile(filepath.Join(src, "00000000000000000001.seg"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	f.Add(seg[:headerSize])
	f.Add(append(seg[:len(seg):len(seg)], make([]byte, 100)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), data, 0o640); err != nil {
			t.Fatal(err)
		}
		rep, verr := Verify(dir)
		l, oerr := Open(dir, SyncEachAppend(false))
		if (verr == nil) != (oerr == nil) {
			t.Fatalf("Verify: %v, Open: %v", verr, oerr)
		}
		if oerr != nil {
			asCorrupt(t, oerr)
			return
		}
		defer l.Close()
		if seq, _, h := l.Tail(); seq != rep.LastSeq || h != rep.Head {
			t.Fatalf("Tail %d, Verify last seq %d", seq, rep.LastSeq)
		}
		n := uint64(0)
		if err := l.Scan(0, func(*Entry) error { n++; return nil }); err != nil || n != rep.Entries {
			t.Fatalf("Scan: %d entries, %v", n, err)
		}
		appendN(t, l, 1)
		l.Close()
		if rep2, err := Verify(dir); err != nil || rep2.TornTail || rep2.LastSeq != rep.LastSeq+1 {
			t.Fatalf("after Open and Append: %+v %v", rep2, err)
		}
	})
}
