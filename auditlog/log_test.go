package auditlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRoundTripAcrossSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "orders.cdc-0")
	l := mustOpen(t, dir, SegmentSize(2048), SyncEachAppend(false))
	if seq, sys, h := l.Tail(); seq != 0 || sys != 0 || h != [32]byte{} {
		t.Fatalf("empty Tail = %d %d %x", seq, sys, h)
	}
	var want []Entry
	for _, n := range []int{1, 7, 30, 5, 1, 40} {
		want = append(want, appendN(t, l, n)...)
	}
	// A single entry bigger than the segment size gets a segment of its own.
	big := entryFor(uint64(len(want) + 1))
	big.Payload = bytes.Repeat([]byte{0xab}, 5000)
	bigBatch := []Entry{big}
	if err := l.Append(bigBatch); err != nil {
		t.Fatal(err)
	}
	big = bigBatch[0]
	want = append(want, big)
	want = append(want, appendN(t, l, 3)...)

	segs := segFiles(t, dir)
	if len(segs) < 10 {
		t.Fatalf("only %d segments, want many rolls", len(segs))
	}
	if segs[0] != "00000000000000000001.seg" {
		t.Fatalf("first segment %s", segs[0])
	}
	for _, fl := range walkFrames(t, dir) {
		if fl.seq == big.Seq {
			if fl.off != 52 {
				t.Fatalf("big entry at offset %d of %s, want a segment of its own", fl.off, fl.seg)
			}
		}
	}
	for _, seg := range segs {
		fi, _ := os.Stat(filepath.Join(dir, seg))
		if fi.Size() > 2048 && fi.Size() != 52+int64(frameLen(&big))+8 {
			t.Fatalf("%s is %d bytes, over the segment size", seg, fi.Size())
		}
	}

	check := func(l *Log) {
		t.Helper()
		got := scanAll(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("scanned %d entries, want %d", len(got), len(want))
		}
		prev := [32]byte{}
		for i := range got {
			if !sameEntry(&got[i], &want[i]) {
				t.Fatalf("entry %d: got %+v\nwant %+v", i, got[i], want[i])
			}
			body := appendBody(nil, &want[i])
			if h := sha256.Sum256(append(prev[:], body...)); got[i].Hash != h || want[i].Hash != h {
				t.Fatalf("entry %d: hash %x / %x, want SHA-256(prev||body) %x", i, got[i].Hash, want[i].Hash, h)
			}
			prev = got[i].Hash
		}
		for _, from := range []uint64{1, 2, 37, 38, uint64(len(want))} {
			part := scanAll(t, l, from)
			if len(part) != len(want)-int(from)+1 || part[0].Seq != from {
				t.Fatalf("Scan(%d) gave %d entries starting at %d", from, len(part), part[0].Seq)
			}
		}
		if n := len(scanAll(t, l, uint64(len(want)+1))); n != 0 {
			t.Fatalf("Scan past the tail gave %d entries", n)
		}
		seq, sys, h := l.Tail()
		last := want[len(want)-1]
		if seq != last.Seq || sys != last.SystemTime || h != last.Hash {
			t.Fatalf("Tail = %d %d %x, want %d %d %x", seq, sys, h, last.Seq, last.SystemTime, last.Hash)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = mustOpen(t, dir, SegmentSize(2048))
	defer l.Close()
	if r := l.Recovery(); r != (Recovery{}) {
		t.Fatalf("clean reopen reported recovery %+v", r)
	}
	check(l)
	want = append(want, appendN(t, l, 12)...)
	check(l)

	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != uint64(len(want)) || rep.FirstSeq != 1 || rep.LastSeq != uint64(len(want)) ||
		rep.Head != want[len(want)-1].Hash || rep.Segments != len(segFiles(t, dir)) || rep.TornTail || rep.Dir != dir {
		t.Fatalf("Verify report %+v", rep)
	}
}

func TestAppendRejectsAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, SegmentSize(4096))
	defer l.Close()
	appendN(t, l, 5)
	before := snapshot(t, dir)
	seq0, sys0, h0 := l.Tail()

	gap := entriesFor(7, 2)
	dupTime := entriesFor(6, 3)
	dupTime[2].SystemTime = dupTime[1].SystemTime
	oldTime := entriesFor(6, 1)
	oldTime[0].SystemTime = sys0
	badOp := entriesFor(6, 4)
	badOp[3].Op = 'x'
	zeroOp := entriesFor(6, 1)
	zeroOp[0].Op = 0
	tooBig := entriesFor(6, 2)
	tooBig[1].Payload = make([]byte, maxFrameLen)
	for name, b := range map[string][]Entry{
		"seq gap": gap, "system time repeats": dupTime, "system time not after tail": oldTime,
		"unknown op": badOp, "zero op": zeroOp, "too big": tooBig, "seq restarts": entriesFor(1, 1),
	} {
		if err := l.Append(b); err == nil {
			t.Errorf("%s: Append succeeded", name)
		}
		if s, y, h := l.Tail(); s != seq0 || y != sys0 || h != h0 {
			t.Errorf("%s: Tail moved", name)
		}
		if !sameSnapshot(before, snapshot(t, dir)) {
			t.Fatalf("%s: files changed", name)
		}
	}
	appendN(t, l, 3) // the log is still usable
	if s, _, _ := l.Tail(); s != 8 {
		t.Fatalf("Tail %d, want 8", s)
	}
}

func TestEmptyAndClosed(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if err := l.Append(nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := len(scanAll(t, l, 0)); n != 0 {
		t.Fatalf("scan of empty log gave %d", n)
	}
	if l.Dir() != dir {
		t.Fatalf("Dir %s", l.Dir())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(entriesFor(1, 1)); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	rep, err := Verify(dir)
	if err != nil || rep.Entries != 0 || rep.Segments != 0 {
		t.Fatalf("Verify empty: %+v %v", rep, err)
	}
	if _, err := Open(dir, SegmentSize(0)); err == nil {
		t.Fatal("SegmentSize(0) accepted")
	}
	if _, err := Verify(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of a missing dir: %v", err)
	}
}

func TestSecondWriterLockedOut(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if l2, err := Open(dir); err == nil {
		l2.Close()
		t.Fatal("a second Open of a live log succeeded")
	}
	l.Close()
	mustOpen(t, dir).Close()
}

func TestScanStopsOnCallbackError(t *testing.T) {
	l := mustOpen(t, t.TempDir(), SegmentSize(1024))
	defer l.Close()
	appendN(t, l, 20)
	stop := errors.New("stop")
	n := 0
	err := l.Scan(3, func(e *Entry) error {
		n++
		if e.Seq == 9 {
			return stop
		}
		return nil
	})
	if err != stop || n != 7 {
		t.Fatalf("Scan returned %v after %d entries", err, n)
	}
}

// TestScanWhileAppending runs readers against a writer; -race checks the rest.
func TestScanWhileAppending(t *testing.T) {
	l := mustOpen(t, t.TempDir(), SegmentSize(4096), SyncEachAppend(false))
	defer l.Close()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for range 100 {
			appendN(t, l, 10)
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				next := uint64(1)
				err := l.Scan(1, func(e *Entry) error {
					want := entryFor(next)
					if !sameEntry(e, &want) {
						t.Errorf("concurrent scan: entry %d differs", next)
					}
					next++
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestAgainstModel drives the log with random valid and invalid batches,
// reopens and scans, and compares everything with a plain slice.
func TestAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	size := func() Option { return SegmentSize(int64(2000 + rng.IntN(20000))) }
	l := mustOpen(t, dir, size(), SyncEachAppend(false))
	defer func() { l.Close() }()
	var model []Entry
	for step := range 400 {
		switch k := rng.IntN(10); {
		case k < 6:
			b := entriesFor(uint64(len(model)+1), rng.IntN(25))
			for i := range b {
				if rng.IntN(20) == 0 {
					b[i].Payload = bytes.Repeat([]byte{byte(i)}, rng.IntN(9000))
				}
				if rng.IntN(10) == 0 {
					b[i].Key, b[i].Prov.Topic, b[i].Prov.SourcePosition = nil, "", ""
				}
			}
			if err := l.Append(b); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			model = append(model, b...)
		case k < 7:
			b := entriesFor(uint64(len(model)+1), 1+rng.IntN(5))
			b[rng.IntN(len(b))].Seq += 1 + uint64(rng.IntN(3))
			if err := l.Append(b); err == nil {
				t.Fatalf("step %d: bad batch accepted", step)
			}
		case k < 8:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, size(), SyncEachAppend(rng.IntN(8) == 0))
		default:
			from := uint64(rng.IntN(len(model) + 2))
			got := scanAll(t, l, from)
			start := max(int(from), 1) - 1
			if start > len(model) {
				start = len(model)
			}
			if len(got) != len(model)-start {
				t.Fatalf("step %d: Scan(%d) %d entries, want %d", step, from, len(got), len(model)-start)
			}
			for i := range got {
				if !sameEntry(&got[i], &model[start+i]) || got[i].Hash != model[start+i].Hash {
					t.Fatalf("step %d: Scan(%d) entry %d differs", step, from, i)
				}
			}
		}
	}
	if rep, err := Verify(dir); err != nil || rep.LastSeq != uint64(len(model)) {
		t.Fatalf("Verify: %+v %v", rep, err)
	}
}

func TestWriteFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	appendN(t, l, 5)
	l.f.Close() // the next write fails as a full or failing disk would
	err := l.Append(entriesFor(6, 2))
	if err == nil {
		t.Fatal("Append on a closed file succeeded")
	}
	for name, got := range map[string]error{
		"Append": l.Append(entriesFor(6, 1)),
		"Sync":   l.Sync(),
		"Scan":   l.Scan(1, func(*Entry) error { return nil }),
		"Close":  l.Close(),
	} {
		if got != err {
			t.Errorf("%s after a failed write: %v, want %v", name, got, err)
		}
	}
	l = mustOpen(t, dir)
	defer l.Close()
	if seq, _, _ := l.Tail(); seq != 5 {
		t.Fatalf("reopened tail %d, want 5", seq)
	}
}

// TestAppendRefusesARemovedDirectory wipes a log's directory, or only its
// segments, or swaps in a new directory, while the Log is open: Append must
// refuse (the entries would go to unlinked files) and keep refusing.
func TestAppendRefusesARemovedDirectory(t *testing.T) {
	for _, c := range []struct {
		name string
		wipe func(dir string) error
	}{
		{"directory removed", os.RemoveAll},
		{"segments removed", func(dir string) error {
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			for _, s := range segs {
				if err := os.Remove(s); err != nil {
					return err
				}
			}
			return nil
		}},
		{"directory replaced", func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.Mkdir(dir, 0o750)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			l := mustOpen(t, dir)
			defer l.Close()
			appendN(t, l, 3)
			if err := c.wipe(dir); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := l.Append(entriesFor(4, 1)); !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("Append after the wipe: %v, want ErrRemoved naming %s", err, dir)
				}
			}
		})
	}
}
