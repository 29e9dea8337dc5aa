package auditlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testTopic = "orders.cdc"

// entryFor builds the entry for seq deterministically, so any reader (a test,
// a crash-test parent) can check content without sharing state with the writer.
func entryFor(seq uint64) Entry {
	op := OpAssert
	var validTo int64
	if seq%7 == 0 {
		op = OpRetract
		validTo = int64(seq)*1000 + 500
	}
	payload := make([]byte, 5, 5+int(seq%300)+20)
	payload[0] = 0
	binary.BigEndian.PutUint32(payload[1:], uint32(seq%5)+1)
	for i := 0; i < int(seq%300)+20; i++ {
		payload = append(payload, byte(seq*31+uint64(i)))
	}
	return Entry{
		Seq:        seq,
		SystemTime: 1_700_000_000_000_000 + int64(seq)*1000,
		ValidFrom:  1_690_000_000_000_000 + int64(seq),
		ValidTo:    validTo,
		Op:         op,
		Key:        []byte(fmt.Sprintf("customer-%08d", seq%97)),
		Payload:    payload,
		Prov: Provenance{
			Topic:          testTopic,
			Partition:      3,
			Offset:         int64(seq) * 10,
			SourcePosition: fmt.Sprintf("lsn=%d,txId=%d", seq*4096, seq/3),
			SchemaID:       uint32(seq%5) + 1,
		},
	}
}

func entriesFor(from uint64, n int) []Entry {
	b := make([]Entry, n)
	for i := range b {
		b[i] = entryFor(from + uint64(i))
	}
	return b
}

func sameEntry(a, b *Entry) bool {
	return a.Seq == b.Seq && a.SystemTime == b.SystemTime && a.ValidFrom == b.ValidFrom &&
		a.ValidTo == b.ValidTo && a.Op == b.Op && bytes.Equal(a.Key, b.Key) &&
		bytes.Equal(a.Payload, b.Payload) && a.Prov == b.Prov && a.Port == b.Port
}

func mustOpen(t testing.TB, dir string, opts ...Option) *Log {
	t.Helper()
	l, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

func appendN(t testing.TB, l *Log, n int) []Entry {
	t.Helper()
	seq, _, _ := l.Tail()
	b := entriesFor(seq+1, n)
	if err := l.Append(b); err != nil {
		t.Fatalf("Append(%d..%d): %v", seq+1, seq+uint64(n), err)
	}
	return b
}

// buildLog writes n entries in batches of batch and closes the log.
func buildLog(t testing.TB, dir string, n, batch int, opts ...Option) {
	t.Helper()
	l := mustOpen(t, dir, opts...)
	for done := 0; done < n; done += batch {
		appendN(t, l, min(batch, n-done))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// frameLoc is where a frame sits, found by walking the files with nothing but
// the length fields, independently of the package's reader.
type frameLoc struct {
	seg  string
	off  int64
	size int64 // whole frame: length + crc + payload
	seq  uint64
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func walkFrames(t testing.TB, dir string) []frameLoc {
	t.Helper()
	var out []frameLoc
	for _, seg := range segFiles(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, seg))
		if err != nil {
			t.Fatal(err)
		}
		for off := 52; off < len(b); {
			n := int(binary.BigEndian.Uint32(b[off:]))
			out = append(out, frameLoc{seg: seg, off: int64(off), size: int64(8 + n),
				seq: binary.BigEndian.Uint64(b[off+8:])})
			off += 8 + n
		}
	}
	return out
}

// snapshot reads every file in dir, to prove that a failed Open changed nothing.
func snapshot(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func sameSnapshot(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	for name, b := range snapshot(t, src) {
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func patchFile(t testing.TB, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

func asCorrupt(t testing.TB, err error) *CorruptError {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a *CorruptError")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("errors.Is(%v, ErrCorrupt) = false", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%v is not a *CorruptError", err)
	}
	return ce
}

// wantCorrupt checks that err names seg and seq, and that its reason mentions want.
func wantCorrupt(t testing.TB, err error, seg string, seq uint64, want string) *CorruptError {
	t.Helper()
	ce := asCorrupt(t, err)
	if ce.Segment != seg || ce.Seq != seq || !strings.Contains(ce.Reason, want) {
		t.Fatalf("got %v\nwant segment %s seq %d reason containing %q", ce, seg, seq, want)
	}
	return ce
}

func scanAll(t testing.TB, l *Log, from uint64) []Entry {
	t.Helper()
	var out []Entry
	err := l.Scan(from, func(e *Entry) error {
		c := *e
		c.Key = bytes.Clone(e.Key)
		c.Payload = bytes.Clone(e.Payload)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", from, err)
	}
	return out
}
