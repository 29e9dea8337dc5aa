package schemas

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestLoadPublishesRowPlusMeta(t *testing.T) {
	s, err := Load("testdata/order.avsc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.RowName(), "com.example.shop.Order"; got != want {
		t.Errorf("RowName = %q, want %q", got, want)
	}

	golden := filepath.Join("testdata", "order.published.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(s.Published()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Published() + "\n"; got != string(want) {
		t.Errorf("Published differs from %s (run with -update to accept):\n got %s\nwant %s", golden, got, want)
	}

	var doc struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(s.Published()), &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range doc.Fields {
		names = append(names, f.Name)
	}
	wantNames := "order_id customer_id amount_cents currency quantity note _valid_from _valid_to _system_from _deleted"
	if got := strings.Join(names, " "); got != wantNames {
		t.Errorf("published fields = %s\nwant %s", got, wantNames)
	}

	if s.Fingerprint() != sha256.Sum256([]byte(s.Published())) {
		t.Error("Fingerprint is not SHA-256 of Published")
	}
	again, err := Parse("again", mustRead(t, "testdata/order.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != s.Fingerprint() {
		t.Error("Fingerprint differs between two parses of the same file")
	}

	// A registered published schema must lead back to the same Schema.
	back, err := fromPublished(s.pub)
	if err != nil {
		t.Fatal(err)
	}
	if back.Published() != s.Published() || back.row.String() != s.row.String() {
		t.Errorf("fromPublished did not round-trip:\n%s\n%s", back.Published(), s.Published())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		file     string
		contains []string
	}{
		{"testdata/bad_json.avsc", []string{"testdata/bad_json.avsc", "invalid JSON at line 6"}},
		{"testdata/reserved.avsc", []string{"testdata/reserved.avsc", `field "_valid_from"`, "reserved"}},
		{"testdata/enum.avsc", []string{"testdata/enum.avsc", "want record"}},
		{"testdata/bad_default.avsc", []string{"testdata/bad_default.avsc", "field quantity"}},
		{"testdata/missing.avsc", []string{"testdata/missing.avsc"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			_, err := Load(tt.file)
			t.Log(err)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
		})
	}
}

func TestParseReservedNames(t *testing.T) {
	for name := range reservedFields {
		avsc := `{"type":"record","name":"R","fields":[{"name":"` + name + `","type":"long"}]}`
		if _, err := Parse("r.avsc", avsc); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want an error naming the field", name, err)
		}
	}
}

func TestHasMetaTail(t *testing.T) {
	plain := avro.MustParse(`{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`).(*avro.RecordSchema)
	if hasMetaTail(plain) {
		t.Error("plain record reported as having a meta tail")
	}
	if _, err := fromPublished(plain); err == nil {
		t.Error("fromPublished accepted a record without meta fields")
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePublishedRecoversTheRow(t *testing.T) {
	row := `{"type":"record","name":"Order","namespace":"shop","fields":[
		{"name":"id","type":"long","doc":"order number"},
		{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"note","type":["null","string"],"default":null}]}`
	s, err := Parse("order.avsc", row)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublished("schema id 7", s.Published())
	if err != nil {
		t.Fatal(err)
	}
	if back.Published() != s.Published() || back.Fingerprint() != s.Fingerprint() {
		t.Fatalf("published form changed on the way back:\n%s\n%s", back.Published(), s.Published())
	}
	if got := len(back.RowFields()); got != 3 {
		t.Fatalf("row has %d fields, want 3", got)
	}
	if _, err := ParsePublished("plain", row); err == nil || !strings.Contains(err.Error(), "meta fields") {
		t.Fatalf("a schema without Meshlet's meta fields: err %v", err)
	}
	if _, err := ParsePublished("broken", `{"type":`); err == nil {
		t.Fatal("broken JSON accepted")
	}
}
