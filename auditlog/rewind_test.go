package auditlog

import (
	"testing"
)

// TestRewind takes back tails of every shape, checks the log then verifies,
// continues its chain from the kept entry, and survives a reopen.
func TestRewind(t *testing.T) {
	const n = 40
	for _, tc := range []struct {
		name    string
		keepTo  uint64 // entries > keepTo are dropped
		segSize int64
	}{
		{"nothing to drop", n, 2048},
		{"inside the last segment", n - 3, 1 << 20},
		{"across segments", 17, 2048},
		{"every entry", 0, 2048},
		{"every entry, one segment", 0, 1 << 20},
		{"segment per entry", 25, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := []Option{SegmentSize(tc.segSize)}
			buildLog(t, dir, n, 6, opts...)
			l := mustOpen(t, dir, opts...)
			defer l.Close()

			var wantHash [32]byte
			if err := l.Scan(1, func(e *Entry) error {
				if e.Seq == tc.keepTo {
					wantHash = e.Hash
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			dropped, err := l.Rewind(func(e *Entry) bool { return e.Prov.Offset > int64(tc.keepTo)*10 })
			if err != nil {
				t.Fatal(err)
			}
			if dropped != n-tc.keepTo {
				t.Fatalf("dropped %d, want %d", dropped, n-tc.keepTo)
			}
			seq, sys, hash := l.Tail()
			if seq != tc.keepTo || hash != wantHash || (seq > 0 && sys != entryFor(seq).SystemTime) {
				t.Fatalf("tail after rewind: seq %d sys %d, want seq %d and the kept entry's time and hash", seq, sys, tc.keepTo)
			}
			if rep, err := Verify(dir); err != nil || rep.Entries != tc.keepTo {
				t.Fatalf("verify after rewind: %+v, %v", rep, err)
			}

			// The chain goes on from the kept entry, in this process and after a reopen.
			appendN(t, l, 5)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, opts...)
			if seq, _, _ := l.Tail(); seq != tc.keepTo+5 {
				t.Fatalf("tail after append and reopen: %d, want %d", seq, tc.keepTo+5)
			}
			var got uint64
			if err := l.Scan(1, func(e *Entry) error {
				got++
				if want := entryFor(e.Seq); !sameEntry(e, &want) {
					t.Errorf("seq %d differs after rewind and re-append", e.Seq)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got != tc.keepTo+5 {
				t.Fatalf("scanned %d entries, want %d", got, tc.keepTo+5)
			}
			if _, err := Verify(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRewindKeepsEverythingBeforeAKeptEntry: only the run at the end goes,
// even when drop would match earlier entries too.
func TestRewindKeepsEverythingBeforeAKeptEntry(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 20, 5, SegmentSize(1024))
	l := mustOpen(t, dir, SegmentSize(1024))
	defer l.Close()
	dropped, err := l.Rewind(func(e *Entry) bool { return e.Seq != 12 })
	if err != nil {
		t.Fatal(err)
	}
	if seq, _, _ := l.Tail(); dropped != 8 || seq != 12 {
		t.Fatalf("dropped %d, tail %d; want 8 and 12", dropped, seq)
	}
}
