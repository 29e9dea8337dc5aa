package schemas_test

import (
	"context"
	"encoding/json"
	"math/big"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/schemas/internal/gentest"
)

// shipment is a value with every field set: nested records, an enum,
// logical types, pointers for the nullable fields.
func shipment() gentest.Shipment {
	note := "ring twice"
	delivered := time.UnixMilli(1_700_000_500_123).UTC()
	stops := []gentest.Stop{{DepotURL: "https://depot.example/7", At: time.UnixMicro(1_700_000_100_000_000).UTC()}}
	return gentest.Shipment{
		ShipmentID: "6f1c0c2e-8d3a-4c5e-9a61-0a0c3f7e5b11", OrderID: 42, WeightKg: 2.5, Parcels: 3, Fragile: true,
		Ratio: 0.5, Label: []byte("L-1"), Checksum: [4]byte{1, 2, 3, 4}, Status: gentest.StatusInTransit,
		ShippedAt:   time.UnixMicro(1_700_000_000_123_456).UTC(),
		DeliveredAt: &delivered,
		Due:         time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		WindowStart: 9*time.Hour + 30*time.Minute,
		Price:       big.NewRat(1999, 100),
		Note:        &note,
		Tags:        []string{"express"},
		Attrs:       map[string]int64{"floor": 3},
		Stops:       &stops,
		Destination: gentest.Address{Street: "Hauptstr. 1", ZipCode: "10115", Country: "DE"},
		ReturnTo:    &gentest.Address{Street: "Lager 2", ZipCode: "20095", Country: "DE"},
		LastStop:    &gentest.Stop{DepotURL: "https://depot.example/9", At: time.UnixMicro(1_700_000_200_000_000).UTC()},
		Extra:       "hand over at the gate",
	}
}

// withNulls is the same shipment with every nullable field null.
func withNulls() gentest.Shipment {
	s := shipment()
	s.DeliveredAt, s.Note, s.Stops, s.ReturnTo, s.LastStop, s.Extra = nil, nil, nil, nil, nil, nil
	return s
}

// TestGeneratedSchemaIsTheFullSchema: the schema a generated type carries
// is the .avsc it came from as hamba serialises it in full (docs, defaults,
// logical types), not the Parsing Canonical Form, which drops defaults.
func TestGeneratedSchemaIsTheFullSchema(t *testing.T) {
	text, err := os.ReadFile("testdata/gen/shipment.avsc")
	if err != nil {
		t.Fatal(err)
	}
	file, err := avro.ParseWithCache(string(text), "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(new(gentest.Shipment).Schema())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("the generated schema differs from shipment.avsc:\n got %s\nwant %s", got, want)
	}
	if new(gentest.Shipment).Schema().Fingerprint() != file.Fingerprint() {
		t.Error("fingerprints differ")
	}
}

// TestGeneratedTypesMarshal: a value round-trips through hamba's codec
// with the schema its type carries, through the generated methods and
// through avro.Marshal alike; nulls come back as nil.
func TestGeneratedTypesMarshal(t *testing.T) {
	for name, in := range map[string]gentest.Shipment{"values": shipment(), "nulls": withNulls()} {
		t.Run(name, func(t *testing.T) {
			b, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			direct, err := avro.Marshal(in.Schema(), in)
			if err != nil {
				t.Fatal(err)
			}
			if string(direct) != string(b) {
				t.Error("Marshal and avro.Marshal with Schema() disagree")
			}
			var out gentest.Shipment
			if err := out.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Errorf("round trip changed the value:\n got %+v\nwant %+v", out, in)
			}
		})
	}
}

// TestGeneratedTypesThroughRegistry: the published schema derived from the
// generated type's schema registers, encodes a value and decodes it back
// through Meshlet's encoder and a real registry.
func TestGeneratedTypesThroughRegistry(t *testing.T) {
	ctx := context.Background()
	emb, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	r, err := schemas.NewRegistry([]string{emb.URL()})
	if err != nil {
		t.Fatal(err)
	}
	text, err := json.Marshal(new(gentest.Shipment).Schema())
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemas.Parse("gentest.Shipment", string(text))
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Register(ctx, "shipments-value", s, schemas.CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, id)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]gentest.Shipment{"values": shipment(), "nulls": withNulls()} {
		wire, err := enc.Append(nil, &in, schemas.Meta{ValidFrom: 1, SystemFrom: 2})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out gentest.Shipment
		if _, _, err := r.Decode(ctx, wire, &out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("%s: round trip changed the value:\n got %+v\nwant %+v", name, out, in)
		}
	}
}

// TestGeneratedTypeDecodesDebeziumRow: the type a handler publishes also
// reads a row image as Debezium's JSON converter writes it, given
// timestamps as ISO strings (ZonedTimestamp) and decimals as strings
// (decimal.handling.mode=string); bytes are base64, nulls stay nil.
func TestGeneratedTypeDecodesDebeziumRow(t *testing.T) {
	row := `{
		"shipment_id": "6f1c0c2e-8d3a-4c5e-9a61-0a0c3f7e5b11", "order_id": 42, "weightKg": 2.5,
		"parcels": 3, "fragile": true, "ratio": 0.5, "label": "TC0x", "status": "IN_TRANSIT",
		"shipped_at": "2023-11-14T22:13:20.123456Z", "delivered_at": null, "price": "19.99",
		"note": null, "tags": ["express"], "attrs": {"floor": 3}, "stops": null,
		"destination": {"street": "Hauptstr. 1", "zip_code": "10115", "country": "DE"},
		"return_to": null, "last_stop": null, "extra": null
	}`
	var got gentest.Shipment
	if err := json.Unmarshal([]byte(row), &got); err != nil {
		t.Fatal(err)
	}
	want := withNulls()
	want.Checksum, want.Due, want.WindowStart = [4]byte{}, time.Time{}, 0 // not in the row
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded row:\n got %+v\nwant %+v", got, want)
	}
	if _, err := got.Marshal(); err != nil {
		t.Errorf("the decoded row does not encode: %v", err)
	}
}
