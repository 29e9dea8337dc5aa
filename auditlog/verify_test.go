package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Plain Verify checks the newest checkpoint stored beside the log, with the
// key found beside the logs: each tamper below passes the chain check alone
// (checked first, so the test shows what the checkpoint adds) and fails
// Verify with an error naming the checkpoint.
func TestVerifyChecksNewestStoredCheckpoint(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		reason string
	}{
		{"cut at a frame boundary", func(t *testing.T, dir string) {
			fs := walkFrames(t, dir)
			last := fs[len(fs)-1]
			cut := fs[len(fs)-2] // the last two entries go, in the newest segment
			if cut.seg != last.seg {
				t.Fatalf("fixture: entries %d and %d are in different segments", cut.seq, last.seq)
			}
			if err := os.Truncate(filepath.Join(dir, cut.seg), cut.off); err != nil {
				t.Fatal(err)
			}
		}, "the log ends at seq 78 but checkpoint 80 (%s) covers 80 entries: entries 79..80 were removed"},
		{"last segment removed", func(t *testing.T, dir string) {
			segs := segFiles(t, dir)
			if len(segs) < 3 {
				t.Fatalf("fixture: %d segments", len(segs))
			}
			if err := os.Remove(filepath.Join(dir, segs[len(segs)-1])); err != nil {
				t.Fatal(err)
			}
		}, "covers 80 entries: entries"},
		{"rewritten with recomputed checksums and chain", func(t *testing.T, dir string) {
			rewriteLog(t, dir, func(es []Entry) []Entry {
				es[59].Payload = append(bytes.Clone(es[59].Payload), "!"...)
				return es
			})
		}, "no longer hash to the root of checkpoint 80 (%s): the log was rewritten behind it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _, _ := checkpointed(t, 10, 40, 30)
			note := NotePath(dir, 80)
			rep, err := Verify(dir)
			if err != nil || len(rep.Checkpoints) != 1 || !rep.Checkpoints[0].OK || rep.Checkpoints[0].Note != note ||
				rep.StoredCheckpoints != 3 || rep.Verifier != filepath.Join(filepath.Dir(dir), VerifierFile) || rep.Log != "orders-0" {
				t.Fatalf("untouched log: %+v, %v", rep, err)
			}
			tc.tamper(t, dir)
			if _, err := Verify(dir, ChainOnly()); err != nil {
				t.Fatalf("the chain alone should not tell: %v", err)
			}
			rep, err = Verify(dir)
			ce := asCorrupt(t, err)
			want := tc.reason
			if strings.Contains(want, "%s") {
				want = strings.Replace(want, "%s", note, 1)
			}
			if !strings.Contains(ce.Reason, want) || !strings.Contains(err.Error(), note) {
				t.Fatalf("got %v\nwant a reason containing %q", err, want)
			}
			if len(rep.Checkpoints) != 1 || rep.Checkpoints[0].OK || rep.Checkpoints[0].Size != 80 {
				t.Fatalf("report: %+v", rep.Checkpoints)
			}
		})
	}
}

// A log with checkpoints but no key to check them with is not passed.
func TestVerifyWithoutKey(t *testing.T) {
	dir, _, _, v := checkpointed(t, 10, 40)
	if err := os.Remove(filepath.Join(filepath.Dir(dir), VerifierFile)); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(dir)
	if !errors.Is(err, ErrNoVerifier) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), NotePath(dir, 50)) {
		t.Fatalf("got %v, want ErrNoVerifier naming the log and its checkpoint", err)
	}
	// With the key given, it checks out.
	rep, err := Verify(dir, CheckWith(v))
	if err != nil || len(rep.Checkpoints) != 1 || !rep.Checkpoints[0].OK || rep.Verifier != "" {
		t.Fatalf("with the key: %+v, %v", rep, err)
	}
	// A log without checkpoints needs no key, and says it had none.
	plain := filepath.Join(t.TempDir(), "orders-1")
	buildLog(t, plain, 30, 7)
	rep, err = Verify(plain)
	if err != nil || rep.StoredCheckpoints != 0 || len(rep.Checkpoints) != 0 || rep.LastSeq != 30 {
		t.Fatalf("log without checkpoints: %+v, %v", rep, err)
	}
}

// The key beside the log was replaced and every note re-signed after a
// rewrite: the key found there vouches for it, the auditor's own does not.
func TestVerifyWithIndependentKey(t *testing.T) {
	dir, _, _, v := checkpointed(t, 10, 40)
	root := filepath.Dir(dir)
	rewriteLog(t, dir, func(es []Entry) []Entry { es[3].ValidFrom++; return es })
	for _, f := range []string{KeyFile, VerifierFile} {
		os.Remove(filepath.Join(root, f))
	}
	m, _ := filepath.Glob(filepath.Join(dir, checkpointDirName, "*"))
	for _, f := range m {
		os.Remove(f)
	}
	forger, _ := testKey(t, root)
	l := mustOpen(t, dir)
	if _, err := l.Checkpoint(forger); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify(dir); err != nil {
		t.Fatalf("with the replaced key beside it the forgery checks out, as it must: %v", err)
	}
	_, err := Verify(dir, CheckWith(v))
	if ce := asCorrupt(t, err); !strings.Contains(ce.Reason, "does not verify") || !strings.Contains(ce.Reason, NotePath(dir, 50)) {
		t.Fatalf("got %v", err)
	}
}

// Since adds kept checkpoints: a file or a directory of notes, each
// checked against the log its origin names; a kept checkpoint of a log
// that is gone fails VerifyTree.
func TestVerifyKeptCheckpoints(t *testing.T) {
	dir, notes, _, v := checkpointed(t, 10, 40, 30)
	root := filepath.Dir(dir)
	kept := t.TempDir()
	for _, n := range []uint64{10, 50} {
		if err := os.WriteFile(filepath.Join(kept, fmt.Sprintf("orders-0-at-%d.note", n)), notes[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(dir, Since(kept))
	if err != nil || len(rep.Checkpoints) != 3 {
		t.Fatalf("kept checkpoints: %+v, %v", rep, err)
	}
	for i, want := range []uint64{10, 50, 80} {
		if c := rep.Checkpoints[i]; c.Size != want || !c.OK || c.Kept != (want != 80) {
			t.Fatalf("checkpoint %d: %+v", i, c)
		}
	}
	// The stored notes are removed along with the end of the log; the kept one still tells.
	os.RemoveAll(filepath.Join(dir, checkpointDirName))
	l := mustOpen(t, dir)
	if _, err := l.Rewind(func(e *Entry) bool { return e.Seq > 45 }); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rep, err = Verify(dir, Since(kept), CheckWith(v))
	if ce := asCorrupt(t, err); !strings.Contains(ce.Reason, "entries 46..50 were removed") || !strings.Contains(ce.Reason, kept) {
		t.Fatalf("got %v", err)
	}
	if rep.StoredCheckpoints != 0 || len(rep.Checkpoints) != 2 || !rep.Checkpoints[0].OK || rep.Checkpoints[1].OK {
		t.Fatalf("report: %+v", rep)
	}
	// A kept checkpoint of a log that is no longer there.
	os.RemoveAll(dir)
	buildLog(t, filepath.Join(root, "orders-1"), 5, 5)
	reps, err := VerifyTree(root, Since(kept))
	if len(reps) != 2 || reps[0].Log != "orders-0" || !strings.Contains(err.Error(), "at-50.note vouches for 50 entries") || reps[0].Dir != "" || reps[1].Err != nil ||
		!strings.Contains(err.Error(), "log orders-0: ") || !strings.Contains(err.Error(), "the log was removed or moved") {
		t.Fatalf("VerifyTree: %+v, %v", reps, err)
	}
	// A kept note for another log is refused by Verify of one log.
	if _, err := Verify(filepath.Join(root, "orders-1"), Since(kept)); err == nil || !strings.Contains(err.Error(), "not for the log") {
		t.Fatalf("note of another log: %v", err)
	}
}
