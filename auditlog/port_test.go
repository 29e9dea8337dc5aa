package auditlog

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestPortField: entries of a product's other output ports carry their
// port through segments, records and reopening; the first port's entries
// are the bytes they were before the field existed; and the index keeps
// the ports' entities of one key apart.
func TestPortField(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "changelog", "orders-0")
	l := mustOpen(t, dir)
	batch := entriesFor(1, 6)
	for i := range batch {
		batch[i].Key = []byte("1001") // one key on both ports
		batch[i].ValidTo = 0
		batch[i].Op = OpAssert
		if i%2 == 1 {
			batch[i].Port = "customer-totals"
		}
	}
	first := entryFor(1)
	first.Key = []byte("1001")
	first.ValidTo, first.Op = 0, OpAssert
	if got, want := appendBody(nil, &batch[0]), appendBody(nil, &first); !bytes.Equal(got, want) {
		t.Fatal("an entry of the first port does not encode as it did without ports")
	}
	if err := l.Append(batch); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	l = mustOpen(t, dir)
	defer l.Close()
	i := 0
	err := l.Scan(1, func(e *Entry) error {
		if !sameEntry(e, &batch[i]) {
			t.Errorf("seq %d read back as port %q, want %q", e.Seq, e.Port, batch[i].Port)
		}
		var back Entry
		if err := ParseRecord(AppendRecord(nil, e), &back); err != nil || back.Port != e.Port {
			t.Errorf("seq %d as a changelog record: port %q, %v; want %q", e.Seq, back.Port, err, e.Port)
		}
		i++
		return nil
	})
	if err != nil || i != len(batch) {
		t.Fatalf("Scan read %d entries: %v", i, err)
	}

	st := openStore(t, root)
	now := batch[len(batch)-1].SystemTime
	for _, c := range []struct {
		port string
		want *Entry
	}{{"", &batch[4]}, {"customer-totals", &batch[5]}} {
		v, ok, err := st.AsOf(now).ValidAt(batch[5].ValidFrom).Get(EntityKey(c.port, []byte("1001")))
		if err != nil || !ok {
			t.Fatalf("port %q: Get = %v, %v", c.port, ok, err)
		}
		if v.Fact.Seq != c.want.Seq || v.Fact.Port != c.port {
			t.Errorf("port %q: the version is seq %d of port %q, want seq %d", c.port, v.Fact.Seq, v.Fact.Port, c.want.Seq)
		}
	}
}

func TestEmptyPortFieldIsCorrupt(t *testing.T) {
	e := entryFor(1)
	body := appendBody(nil, &e)
	d := decoder{strings: true}
	var got Entry
	if reason := d.decode(append(body, 0), &got); reason == "" {
		t.Fatal("a zero-length port field decoded; only non-empty ports are ever written")
	}
	if reason := d.decode(append(body, 3, 'a'), &got); reason == "" {
		t.Fatal("a port field longer than its bytes decoded")
	}
}
