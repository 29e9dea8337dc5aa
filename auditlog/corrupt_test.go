package auditlog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corruptFixture is a clean multi-segment log of n entries and its frame map.
func corruptFixture(t *testing.T, n int) (string, []frameLoc) {
	t.Helper()
	dir := t.TempDir()
	buildLog(t, dir, n, 6, SegmentSize(2048), SyncEachAppend(false))
	frames := walkFrames(t, dir)
	if len(frames) != n || len(segFiles(t, dir)) < 4 {
		t.Fatalf("fixture: %d frames in %d segments", len(frames), len(segFiles(t, dir)))
	}
	return dir, frames
}

// flip xors one byte of a segment file.
func flip(t *testing.T, dir, seg string, off int64, x byte) {
	t.Helper()
	patchFile(t, filepath.Join(dir, seg), func(b []byte) []byte { b[off] ^= x; return b })
}

// expectOpenRefuses checks that Open reports the same corruption and leaves the files alone.
func expectOpenRefuses(t *testing.T, dir, seg string, seq uint64) {
	t.Helper()
	before := snapshot(t, dir)
	l, err := Open(dir)
	if err == nil {
		l.Close()
	}
	wantCorrupt(t, err, seg, seq, "")
	after := snapshot(t, dir)
	delete(before, lockName)
	delete(after, lockName)
	if !sameSnapshot(before, after) {
		t.Fatal("a failed Open changed the files")
	}
}

func TestFlipByteClasses(t *testing.T) {
	const n = 60
	pristine, frames := corruptFixture(t, n)
	segs := segFiles(t, pristine)
	second := segs[1]
	secondFirst := frames[slices.IndexFunc(frames, func(f frameLoc) bool { return f.seg == second })].seq
	// A middle entry of a middle segment, and the last entry of a non-last segment.
	mid := frames[n/2]
	var endOfSeg frameLoc
	for i := 1; i < n; i++ {
		if frames[i].seg != frames[i-1].seg {
			endOfSeg = frames[i-1]
		}
	}

	cases := []struct {
		name   string
		seg    string
		off    int64
		seq    uint64
		reason string
	}{
		{"header magic", second, 0, secondFirst, "magic"},
		{"header version", second, 6, secondFirst, "version"},
		{"header reserved", second, 7, secondFirst, "checksum"},
		{"header first seq", second, 15, secondFirst, "checksum"},
		{"header prev hash", second, 20, secondFirst, "checksum"},
		{"header crc", second, 50, secondFirst, "checksum"},
		{"length high byte", mid.seg, mid.off, mid.seq, "length"},
		{"length low byte", mid.seg, mid.off + 3, mid.seq, ""},
		{"crc", mid.seg, mid.off + 5, mid.seq, "checksum"},
		{"body seq", mid.seg, mid.off + 8 + 7, mid.seq, "checksum"},
		{"body payload", mid.seg, mid.off + 8 + 60, mid.seq, "checksum"},
		{"stored hash", mid.seg, mid.off + mid.size - 3, mid.seq, "checksum"},
		{"end of segment length", endOfSeg.seg, endOfSeg.off + 1, endOfSeg.seq, ""},
		{"end of segment hash", endOfSeg.seg, endOfSeg.off + endOfSeg.size - 1, endOfSeg.seq, "checksum"},
		{"first entry", frames[0].seg, frames[0].off + 20, 1, "checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, pristine)
			flip(t, dir, c.seg, c.off, 0x40)
			_, err := Verify(dir)
			ce := wantCorrupt(t, err, c.seg, c.seq, c.reason)
			if ce.Dir != dir {
				t.Fatalf("Dir %q", ce.Dir)
			}
			if c.off >= headerSize {
				fl := frames[c.seq-1]
				if ce.Offset != fl.off {
					t.Fatalf("offset %d, want the frame's %d", ce.Offset, fl.off)
				}
			}
			expectOpenRefuses(t, dir, c.seg, c.seq)
		})
	}
}

func TestFlipRandomByte(t *testing.T) {
	const n = 60
	dir, frames := corruptFixture(t, n)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		// Every tenth flip hits the last entry: damage there must be named
		// too, never taken for a torn write and cut.
		fl := frames[rng.IntN(n)]
		if i%10 == 0 {
			fl = frames[n-1]
		}
		off := fl.off + rng.Int64N(fl.size)
		x := byte(1 + rng.IntN(255))
		flip(t, dir, fl.seg, off, x)
		_, err := Verify(dir)
		ce := wantCorrupt(t, err, fl.seg, fl.seq, "")
		if ce.Offset != fl.off {
			t.Fatalf("byte %d of seq %d: offset %d, want %d", off-fl.off, fl.seq, ce.Offset, fl.off)
		}
		if fl.seq == frames[n-1].seq {
			expectOpenRefuses(t, dir, fl.seg, fl.seq)
		}
		flip(t, dir, fl.seg, off, x)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
}

// recrc recomputes a frame's checksum the way an attacker would.
func recrc(b []byte, off int64) {
	n := binary.BigEndian.Uint32(b[off:])
	binary.BigEndian.PutUint32(b[off+4:], crc32.Checksum(b[off+8:off+8+int64(n)], crc32.MakeTable(crc32.Castagnoli)))
}

func TestAttackerRecomputesCRC(t *testing.T) {
	pristine, frames := corruptFixture(t, 40)
	fl := frames[17]

	t.Run("payload", func(t *testing.T) {
		dir := copyDir(t, pristine)
		patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte {
			b[fl.off+8+70] ^= 1
			recrc(b, fl.off)
			return b
		})
		_, err := Verify(dir)
		wantCorrupt(t, err, fl.seg, fl.seq, "hash chain broken")
		expectOpenRefuses(t, dir, fl.seg, fl.seq)
	})
	t.Run("stored hash", func(t *testing.T) {
		dir := copyDir(t, pristine)
		patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte {
			b[fl.off+fl.size-1] ^= 1
			recrc(b, fl.off)
			return b
		})
		_, err := Verify(dir)
		wantCorrupt(t, err, fl.seg, fl.seq, "hash chain broken")
	})
	t.Run("payload and its own hash", func(t *testing.T) {
		// Re-hashing the edited entry moves the break to the next one.
		dir := copyDir(t, pristine)
		patchFile(t, filepath.Join(dir, fl.seg), func(b []byte) []byte {
			fr := b[fl.off : fl.off+fl.size]
			fr[8+70] ^= 1
			prev := frames[fl.seq-2]
			pb, _ := os.ReadFile(filepath.Join(pristine, prev.seg))
			var ph [32]byte
			copy(ph[:], pb[prev.off+prev.size-32:prev.off+prev.size])
			h := newChainer().next(&ph, fr[8:len(fr)-32])
			copy(fr[len(fr)-32:], h[:])
			recrc(b, fl.off)
			return b
		})
		_, err := Verify(dir)
		next := frames[fl.seq]
		wantCorrupt(t, err, next.seg, next.seq, "")
	})
}

func TestMissingAndReorderedFrames(t *testing.T) {
	pristine, frames := corruptFixture(t, 60)
	// Two neighbours in one segment, not at its end.
	var a, b frameLoc
	for i := 20; i < 59; i++ {
		if frames[i].seg == frames[i+1].seg && i+2 < 60 && frames[i+2].seg == frames[i].seg {
			a, b = frames[i], frames[i+1]
			break
		}
	}

	t.Run("remove", func(t *testing.T) {
		dir := copyDir(t, pristine)
		patchFile(t, filepath.Join(dir, a.seg), func(d []byte) []byte {
			return slices.Delete(d, int(a.off), int(a.off+a.size))
		})
		_, err := Verify(dir)
		ce := wantCorrupt(t, err, a.seg, b.seq, "sequence gap")
		if ce.Offset != a.off {
			t.Fatalf("offset %d, want %d", ce.Offset, a.off)
		}
		expectOpenRefuses(t, dir, a.seg, b.seq)
	})
	t.Run("swap", func(t *testing.T) {
		dir := copyDir(t, pristine)
		patchFile(t, filepath.Join(dir, a.seg), func(d []byte) []byte {
			fa := slices.Clone(d[a.off : a.off+a.size])
			fb := slices.Clone(d[b.off : b.off+b.size])
			out := append(slices.Clone(d[:a.off]), fb...)
			out = append(out, fa...)
			return append(out, d[b.off+b.size:]...)
		})
		_, err := Verify(dir)
		wantCorrupt(t, err, a.seg, b.seq, "sequence gap")
		expectOpenRefuses(t, dir, a.seg, b.seq)
	})
	t.Run("remove segment", func(t *testing.T) {
		dir := copyDir(t, pristine)
		segs := segFiles(t, dir)
		if err := os.Remove(filepath.Join(dir, segs[2])); err != nil {
			t.Fatal(err)
		}
		first, _ := parseSegmentName(segs[2])
		_, err := Verify(dir)
		wantCorrupt(t, err, segs[3], first, "entries missing")
	})
	t.Run("remove first segment", func(t *testing.T) {
		dir := copyDir(t, pristine)
		os.Remove(filepath.Join(dir, segFiles(t, dir)[0]))
		_, err := Verify(dir)
		wantCorrupt(t, err, segFiles(t, dir)[0], 1, "entries missing")
	})
	t.Run("renamed segment", func(t *testing.T) {
		dir := copyDir(t, pristine)
		segs := segFiles(t, dir)
		os.Rename(filepath.Join(dir, segs[1]), filepath.Join(dir, "00000000000000000999.seg"))
		_, err := Verify(dir)
		asCorrupt(t, err)
	})
	t.Run("stray seg file", func(t *testing.T) {
		dir := copyDir(t, pristine)
		os.WriteFile(filepath.Join(dir, "backup.seg"), nil, 0o640)
		_, err := Verify(dir)
		wantCorrupt(t, err, "backup.seg", 0, "not a segment")
	})
}

// TestBadFrameInMiddleIsNotTorn puts damage shaped like a torn write (a
// length running past EOF) in the middle of the last segment: good frames
// follow, so Open must refuse rather than cut them.
func TestBadFrameInMiddleIsNotTorn(t *testing.T) {
	pristine, _ := corruptFixture(t, 60)
	// Grow the last segment so the victim has good frames behind it.
	l := mustOpen(t, pristine, SegmentSize(1<<20))
	appendN(t, l, 10)
	l.Close()
	frames := walkFrames(t, pristine)
	last := frames[len(frames)-1].seg
	var victim frameLoc
	for _, f := range frames {
		if f.seg == last {
			victim = f
			break
		}
	}
	if victim.seq == frames[len(frames)-1].seq {
		t.Fatal("fixture: last segment has a single entry")
	}
	for name, patch := range map[string]func([]byte){
		"length past EOF": func(b []byte) { binary.BigEndian.PutUint32(b[victim.off:], 1<<30) },
		"length to EOF": func(b []byte) {
			binary.BigEndian.PutUint32(b[victim.off:], uint32(int64(len(b))-victim.off-8))
		},
		"checksum": func(b []byte) { b[victim.off+30] ^= 0xff },
		"zeroed frame": func(b []byte) {
			clear(b[victim.off : victim.off+victim.size])
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, pristine)
			patchFile(t, filepath.Join(dir, last), func(b []byte) []byte { patch(b); return b })
			_, err := Verify(dir)
			wantCorrupt(t, err, last, victim.seq, "")
			expectOpenRefuses(t, dir, last, victim.seq)
		})
	}
}

func TestTornTail(t *testing.T) {
	for _, layout := range []struct {
		name string
		opts []Option
	}{
		{"shared segment", []Option{SegmentSize(4096)}},
		{"segment per entry", []Option{SegmentSize(1)}},
	} {
		t.Run(layout.name, func(t *testing.T) {
			const n = 25
			pristine := t.TempDir()
			buildLog(t, pristine, n, 4, layout.opts...)
			frames := walkFrames(t, pristine)
			lastF := frames[n-1]
			path := func(dir string) string { return filepath.Join(dir, lastF.seg) }
			fi, _ := os.Stat(path(pristine))
			if fi.Size() != lastF.off+lastF.size {
				t.Fatal("fixture: last frame is not at the end")
			}

			cuts := map[string]func([]byte) []byte{
				"in length":      func(b []byte) []byte { return b[:lastF.off+2] },
				"after length":   func(b []byte) []byte { return b[:lastF.off+4] },
				"in crc":         func(b []byte) []byte { return b[:lastF.off+6] },
				"no body":        func(b []byte) []byte { return b[:lastF.off+8] },
				"in body":        func(b []byte) []byte { return b[:lastF.off+8+40] },
				"in stored hash": func(b []byte) []byte { return b[:lastF.off+lastF.size-5] },
				"last byte":      func(b []byte) []byte { return b[:lastF.off+lastF.size-1] },
				"complete, hash never written": func(b []byte) []byte {
					clear(b[lastF.off+lastF.size-hashSize:])
					return b
				},
				"zeroed frame": func(b []byte) []byte { clear(b[lastF.off:]); return b },
				"zero padding after a torn frame": func(b []byte) []byte {
					return append(b[:lastF.off+30], make([]byte, 3000)...)
				},
			}
			for name, cut := range cuts {
				t.Run(name, func(t *testing.T) {
					dir := copyDir(t, pristine)
					patchFile(t, path(dir), cut)
					fi, _ := os.Stat(path(dir))
					damaged := fi.Size() - lastF.off

					rep, err := Verify(dir)
					if err != nil || !rep.TornTail || rep.LastSeq != n-1 {
						t.Fatalf("Verify: %+v, %v; want TornTail and last seq %d", rep, err, n-1)
					}

					l := mustOpen(t, dir, layout.opts...)
					if r := l.Recovery(); r.Segment != lastF.seg || r.TruncatedBytes != damaged {
						t.Fatalf("Recovery %+v, want %s %d", r, lastF.seg, damaged)
					}
					want := entryFor(n - 1)
					if seq, sys, _ := l.Tail(); seq != n-1 || sys != want.SystemTime {
						t.Fatalf("Tail %d %d after recovery", seq, sys)
					}
					if fi, _ := os.Stat(path(dir)); fi.Size() != lastF.off {
						t.Fatalf("segment is %d bytes, want %d", fi.Size(), lastF.off)
					}
					appendN(t, l, 3) // continues with seq n
					got := scanAll(t, l, 0)
					if len(got) != n+2 || got[n-1].Seq != n {
						t.Fatalf("after recovery: %d entries", len(got))
					}
					l.Close()
					if rep, err := Verify(dir); err != nil || rep.TornTail || rep.LastSeq != n+2 {
						t.Fatalf("Verify after recovery: %+v %v", rep, err)
					}
				})
			}
		})
	}
}

func TestInterruptedRollLeavesTemp(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 10, 3, SegmentSize(1024))
	tmp := filepath.Join(dir, "00000000000000000011.seg.tmp")
	os.WriteFile(tmp, []byte("MSH"), 0o640)
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, dir, SegmentSize(1024))
	defer l.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("Open left the interrupted segment behind")
	}
	appendN(t, l, 5)
}

func TestShortSegmentHeader(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 10, 3, SegmentSize(1024))
	segs := segFiles(t, dir)
	patchFile(t, filepath.Join(dir, segs[len(segs)-1]), func(b []byte) []byte { return b[:30] })
	_, err := Verify(dir)
	first, _ := parseSegmentName(segs[len(segs)-1])
	wantCorrupt(t, err, segs[len(segs)-1], first, "header")
	expectOpenRefuses(t, dir, segs[len(segs)-1], first)
}

func TestVerifyTree(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"orders.cdc-0", "orders.cdc-1", "payments.cdc-0"} {
		buildLog(t, filepath.Join(root, p), 20, 5, SegmentSize(2048))
	}
	os.MkdirAll(filepath.Join(root, "not-a-log"), 0o750)
	reps, err := VerifyTree(root)
	if err != nil || len(reps) != 3 {
		t.Fatalf("VerifyTree: %d reports, %v", len(reps), err)
	}
	for i, want := range []string{"orders.cdc-0", "orders.cdc-1", "payments.cdc-0"} {
		if reps[i].Dir != filepath.Join(root, want) || reps[i].LastSeq != 20 {
			t.Fatalf("report %d: %+v", i, reps[i])
		}
	}
	bad := filepath.Join(root, "orders.cdc-1")
	frames := walkFrames(t, bad)
	flip(t, bad, frames[4].seg, frames[4].off+12, 1)
	// A bad log fails, named, and the others are still verified and reported.
	reps, err = VerifyTree(root)
	ce := asCorrupt(t, err)
	if len(reps) != 3 || ce.Dir != bad || ce.Seq != 5 || !strings.HasPrefix(err.Error(), "log orders.cdc-1: change log corrupt: ") {
		t.Fatalf("VerifyTree: %d reports, %v", len(reps), err)
	}
	for i, want := range []string{"orders.cdc-0", "orders.cdc-1", "payments.cdc-0"} {
		if reps[i].Log != want || (reps[i].Err != nil) != (want == "orders.cdc-1") {
			t.Fatalf("report %d: %s, err %v", i, reps[i].Log, reps[i].Err)
		}
	}
	if !errors.Is(reps[1].Err, ErrCorrupt) || reps[2].LastSeq != 20 {
		t.Fatalf("reports: %+v", reps)
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	e := &CorruptError{Segment: "00000000000000000001.seg", Offset: 4096, Seq: 17,
		Reason: "hash chain broken (stored 3fa2…, computed 9c1e…)"}
	want := "change log corrupt: segment 00000000000000000001.seg offset 4096 entry seq 17: hash chain broken (stored 3fa2…, computed 9c1e…)"
	if e.Error() != want {
		t.Fatalf("got  %s\nwant %s", e.Error(), want)
	}
}
