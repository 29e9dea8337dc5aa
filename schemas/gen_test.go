package schemas

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// genGolden is a compiled package, so the golden file is also proof that
// the generated code builds; gen_roundtrip_test.go encodes and decodes its
// types through the registry.
const genGolden = "internal/gentest/types_gen.go"

func genSources(t *testing.T) []GoSource {
	t.Helper()
	var srcs []GoSource
	for _, name := range []string{"testdata/gen/shipment.avsc", "testdata/gen/row.avsc"} {
		srcs = append(srcs, GoSource{Name: filepath.Base(name), Text: mustRead(t, name)})
	}
	return srcs
}

func TestGenerateGoGolden(t *testing.T) {
	got, err := GenerateGo("gentest", genSources(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(genGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(genGolden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("generated code differs from %s (run with -update to accept):\n%s", genGolden, got)
	}
}

func TestGenerateGoErrors(t *testing.T) {
	rec := func(fields string) GoSource {
		return GoSource{Name: "x.avsc", Text: `{"type":"record","name":"X","fields":[` + fields + `]}`}
	}
	tests := []struct {
		name string
		pkg  string
		srcs []GoSource
		want string
	}{
		{"bad package", "my-pkg", []GoSource{rec(`{"name":"a","type":"int"}`)}, `package name "my-pkg"`},
		{"no schemas", "p", nil, "no schemas"},
		{"not a record", "p", []GoSource{{Name: "e.avsc", Text: `{"type":"enum","name":"E","symbols":["A"]}`}}, "want record"},
		{"bad json", "p", []GoSource{{Name: "j.avsc", Text: "{\n\"type\": }"}}, "line 2"},
		{"field clash", "p", []GoSource{rec(`{"name":"order_id","type":"int"},{"name":"orderId","type":"int"}`)}, `"order_id" and "orderId" both become the Go field OrderID`},
		{"type twice, differently", "p", []GoSource{rec(`{"name":"a","type":"int"}`), {Name: "y.avsc", Text: `{"type":"record","name":"X","fields":[]}`}}, "X is defined differently"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GenerateGo(tt.pkg, tt.srcs...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestGoIdent(t *testing.T) {
	for in, want := range map[string]string{
		"order_id": "OrderID", "weightKg": "WeightKg", "depot_url": "DepotURL", "sku": "SKU",
		"zip-code": "ZipCode", "_private": "Private", "2fa": "X2fa", "HTTPStatus": "HTTPStatus",
	} {
		if got := goIdent(in); got != want {
			t.Errorf("goIdent(%q) = %q, want %q", in, got, want)
		}
	}
}
