package cli

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// genCustomer and genOrder are two schema files of a shop: Order uses
// Customer and Customer's enum Tier by name, so the files must be parsed
// Customer first and Tier must be written once. Order names Tier before
// Customer and Line names Tier again: hamba's generator alone writes
// schemas for Customer and Line that name Tier without defining it, and
// the package panics as it initialises.
const (
	genCustomer = `{
  "type": "record", "name": "Customer", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["STANDARD", "GOLD"]}},
    {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"},
      {"name": "country", "type": "string", "default": "DE"}
    ]}}
  ]
}`
	genOrder = `{
  "type": "record", "name": "Order", "namespace": "shop",
  "doc": "An order as the shop publishes it.",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "tier_at_checkout", "type": ["null", "Tier"], "default": null},
    {"name": "customer", "type": "Customer"},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "shipped_at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": null},
    {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "discount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}], "default": null},
    {"name": "note", "type": ["null", "string"], "default": null, "doc": "What the customer wrote."},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
      {"name": "sku", "type": "string"},
      {"name": "qty", "type": "int"},
      {"name": "promo_tier", "type": ["null", "Tier"], "default": null}
    ]}}}
  ]
}`
)

// genOrderTest runs inside the generated package: the types round-trip
// through hamba's codec with the schema they carry, that schema is the full
// one, and the same struct reads a Debezium JSON row.
const genOrderTest = `package orders

import (
	"encoding/json"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

func full() Order {
	gold, note := TierGold, "leave at the door"
	shipped := time.UnixMicro(1_718_000_100_000_001).UTC()
	discount := big.NewRat(5, 1)
	return Order{
		ID:             7,
		TierAtCheckout: &gold,
		Customer:       Customer{ID: 3, Tier: TierStandard, Address: Address{Street: "Hauptstr. 1", Country: "DE"}},
		PlacedAt:       time.UnixMicro(1_718_000_000_123_456).UTC(),
		ShippedAt:      &shipped,
		Total:          big.NewRat(12990, 100),
		Discount:       &discount,
		Note:           &note,
		Lines:          []Line{{Sku: "anvil", Qty: 2, PromoTier: &gold}, {Sku: "rope", Qty: 1}},
	}
}

func TestRoundTrip(t *testing.T) {
	nulls := full()
	nulls.TierAtCheckout, nulls.ShippedAt, nulls.Discount, nulls.Note = nil, nil, nil, nil
	for name, in := range map[string]Order{"values": full(), "nulls": nulls} {
		b, err := avro.Marshal(new(Order).Schema(), in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out Order
		if err := avro.Unmarshal(new(Order).Schema(), b, &out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("%s: round trip changed the value:\n got %+v\nwant %+v", name, out, in)
		}
		var viaMethods Order
		if mb, err := in.Marshal(); err != nil || viaMethods.Unmarshal(mb) != nil || !reflect.DeepEqual(viaMethods, in) {
			t.Errorf("%s: Marshal/Unmarshal: %v, %+v", name, err, viaMethods)
		}
	}
}

func TestFullSchema(t *testing.T) {
	text, err := json.Marshal(new(Order).Schema())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\"doc\":\"An order as the shop publishes it.\"",
		"\"doc\":\"What the customer wrote.\"",
		"\"default\":null",
		"\"logicalType\":\"timestamp-micros\"",
		"\"logicalType\":\"decimal\",\"precision\":12,\"scale\":2",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the schema Order carries lacks %s:\n%s", want, text)
		}
	}
}

func TestDebeziumRow(t *testing.T) {
	row, err := os.ReadFile("testdata/row.json")
	if err != nil {
		t.Fatal(err)
	}
	var got Order
	if err := json.Unmarshal(row, &got); err != nil {
		t.Fatal(err)
	}
	want := full()
	want.ShippedAt, want.Discount = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded row:\n got %+v\nwant %+v", got, want)
	}
}
`

// genOrderRow is the order's row image as Debezium's JSON converter writes
// it with decimal.handling.mode=string and timestamptz columns.
const genOrderRow = `{"id": 7, "tier_at_checkout": "GOLD",
 "customer": {"id": 3, "tier": "STANDARD", "address": {"street": "Hauptstr. 1", "country": "DE"}}, "placed_at": "2024-06-10T06:13:20.123456Z", "shipped_at": null,
 "total": "129.90", "discount": null, "note": "leave at the door",
 "lines": [{"sku": "anvil", "qty": 2, "promo_tier": "GOLD"}, {"sku": "rope", "qty": 1, "promo_tier": null}]}
`

// TestGenTypesBuildAndRoundTrip is meshlet gen as a user runs it: two
// schema files, the user before the definer, into a fresh module that
// requires only hamba/avro; then go test there proves the file compiles,
// round-trips values and reads a Debezium row.
func TestGenTypesBuildAndRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH; this test runs a real go subprocess")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"schemas/customer.avsc": genCustomer,
		"schemas/order.avsc":    genOrder,
		"orders_test.go":        genOrderTest,
		"testdata/row.json":     genOrderRow,
		"go.mod":                genModule(t),
		"go.sum":                readFile(t, "../go.sum"),
	})

	_, errOut, code := runIn(t, dir, nil, "gen", "schemas/order.avsc", "schemas/customer.avsc", "-pkg", "orders", "-o", "orders_gen.go")
	if code != 0 {
		t.Fatalf("meshlet gen: exit %d\n%s", code, errOut)
	}
	generated := readFile(t, filepath.Join(dir, "orders_gen.go"))
	t.Logf("orders_gen.go:\n%s", generated)
	if !strings.HasPrefix(generated, "// Code generated by meshlet gen. DO NOT EDIT.\n") {
		t.Errorf("no generated-code header")
	}
	if formatted, err := format.Source([]byte(generated)); err != nil || !bytes.Equal(formatted, []byte(generated)) {
		t.Errorf("the generated file is not gofmt-ed (%v)", err)
	}
	if n := strings.Count(generated, "type Tier string"); n != 1 {
		t.Errorf("Tier is declared %d times", n)
	}

	test := exec.Command("go", "test", "-count=1", "./...")
	test.Dir = dir
	test.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in the generated package failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok  \texample.com/orders") {
		t.Errorf("go test ran no tests:\n%s", out)
	}
}

// TestGenErrorsNameTheFile: what is wrong comes back with the file it is in.
func TestGenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"broken.avsc": "{\n  \"type\": \"record\",\n  \"name\": \n}",
		"order.avsc":  genOrder,
	})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"broken.avsc"}, "broken.avsc: invalid JSON at line 4"},
		{[]string{"order.avsc"}, "order.avsc: avro: unknown type: Tier"},
		{[]string{"missing.avsc"}, "missing.avsc"},
	} {
		_, errOut, code := runIn(t, dir, nil, append([]string{"gen", "-pkg", "orders"}, tt.args...)...)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("meshlet gen %s: exit %d, want 1 and %q:\n%s", strings.Join(tt.args, " "), code, tt.want, errOut)
		}
	}
}

// genModule is a go.mod requiring hamba/avro at the version Meshlet uses,
// so the checksums in Meshlet's go.sum cover the build.
func genModule(t *testing.T) string {
	t.Helper()
	mf, err := modfile.Parse("go.mod", []byte(readFile(t, "../go.mod")), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mf.Require {
		if r.Mod.Path == "github.com/hamba/avro/v2" {
			return "module example.com/orders\n\ngo " + mf.Go.Version + "\n\nrequire " + r.Mod.Path + " " + r.Mod.Version + "\n"
		}
	}
	t.Fatal("Meshlet's go.mod does not require github.com/hamba/avro/v2")
	return ""
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
