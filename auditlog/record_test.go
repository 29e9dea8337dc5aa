package auditlog

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// recordsOf reads a log back as the changelog topic carries it.
func recordsOf(t *testing.T, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	if err := l.Scan(1, func(e *Entry) error {
		out = append(out, AppendRecord(nil, e))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordsRoundTripAndVerify(t *testing.T) {
	root := t.TempDir()
	signer, verifier, err := LoadOrCreateKey(root, "urn:dataproduct:test:records")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "changelog", "orders-0")
	l := mustOpen(t, dir)
	written := appendN(t, l, 40)
	msg, err := l.Checkpoint(signer)
	if err != nil {
		t.Fatal(err)
	}
	recs := recordsOf(t, l)
	l.Close()
	if len(recs) != len(written) {
		t.Fatalf("%d records for %d entries", len(recs), len(written))
	}
	for i, r := range recs {
		var e Entry
		if err := ParseRecord(r, &e); err != nil {
			t.Fatal(err)
		}
		if !sameEntry(&e, &written[i]) || e.Hash != written[i].Hash {
			t.Fatalf("record %d reads back as %+v, want %+v", i, e, written[i])
		}
	}

	check := func(recs [][]byte) (StreamReport, error) {
		s, err := NewStreamVerifier("orders-0", [][]byte{msg}, verifier)
		if err != nil {
			return StreamReport{}, err
		}
		for i, r := range recs {
			if err := s.Add("orders.changelog/0@"+itoa(i), r); err != nil {
				return StreamReport{}, err
			}
		}
		return s.Finish()
	}
	rep, err := check(recs)
	if err != nil || rep.Entries != 40 || len(rep.Checkpoints) != 1 {
		t.Fatalf("untouched records: %+v, %v", rep, err)
	}

	flipped := cloneAll(recs)
	flipped[17][20] ^= 1
	if _, err := check(flipped); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry seq 18") || !strings.Contains(err.Error(), "orders.changelog/0@17") {
		t.Errorf("a flipped byte: %v", err)
	}
	if _, err := check(recs[:35]); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entries 36..40 were removed") {
		t.Errorf("records removed at the end: %v", err)
	}
	if _, err := check(append(cloneAll(recs[:10]), recs[11:]...)); err == nil || !strings.Contains(err.Error(), "seq 12 follows seq 10") {
		t.Errorf("a record removed in the middle: %v", err)
	}

	// Rewritten with a recomputed chain: only the signed checkpoint tells.
	other := mustOpen(t, filepath.Join(t.TempDir(), "orders-0"))
	es := entriesFor(1, 40)
	es[5].Payload = []byte("a different payload")
	if err := other.Append(es); err != nil {
		t.Fatal(err)
	}
	rewritten := recordsOf(t, other)
	other.Close()
	if _, err := check(rewritten); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "rewritten behind it") {
		t.Errorf("a rewritten log: %v", err)
	}
	if _, err := NewStreamVerifier("orders-1", [][]byte{msg}, verifier); err == nil || !strings.Contains(err.Error(), "not for log orders-1") {
		t.Errorf("another log's checkpoint: %v", err)
	}
	if _, err := NewStreamVerifier("orders-0", [][]byte{msg}, nil); !errors.Is(err, ErrNoVerifier) {
		t.Errorf("no key: %v", err)
	}
}

func cloneAll(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, b := range in {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
