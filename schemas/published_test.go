package schemas

import (
	"strings"
	"testing"
)

func TestParsePublishedRoundTripsAndDescribesLogicalTypes(t *testing.T) {
	row, err := Parse("price.avsc", `{"type":"record","name":"Price","namespace":"shop","fields":[
		{"name":"sku","type":"string"},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
		{"name":"code","type":{"type":"fixed","name":"Code","size":6}},
		{"name":"big","type":["null",{"type":"fixed","name":"Big","size":16,"logicalType":"decimal","precision":38,"scale":4}],"default":null},
		{"name":"qty","type":"long","default":7}]}`)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublished("1.avsc", row.Published())
	if err != nil {
		t.Fatal(err)
	}
	if pub.Fingerprint() != row.Fingerprint() || pub.Published() != row.Published() {
		t.Fatalf("published schema does not round-trip:\n%s\n%s", pub.Published(), row.Published())
	}
	fs := pub.Fields()
	if f := fs[1]; f.Logical != "decimal" || f.Precision != 12 || f.Scale != 2 {
		t.Fatalf("amount: %+v", f)
	}
	if f := fs[2]; f.Type != "fixed" || f.Size != 6 {
		t.Fatalf("code: %+v", f)
	}
	if f := fs[3]; !f.Nullable || f.Size != 16 || f.Precision != 38 || f.Scale != 4 {
		t.Fatalf("big: %+v", f)
	}
	if f := fs[4]; !f.HasDefault || f.Default != int64(7) {
		t.Fatalf("qty: default %T %v", f.Default, f.Default)
	}

	if _, err := ParsePublished("row.avsc", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`); err == nil ||
		!strings.Contains(err.Error(), "meta fields") {
		t.Fatalf("a row schema without the meta tail: %v", err)
	}
	if _, err := ParsePublished("bad.avsc", `{"type":`); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad JSON: %v", err)
	}
}
