package schemas_test

import (
	"context"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/schemas/internal/gentest"
)

// TestGeneratedTypesRoundTrip proves the generated struct and the schema
// constant beside it agree: a value encodes with the constant's schema,
// goes through a real registry, and decodes back unchanged.
func TestGeneratedTypesRoundTrip(t *testing.T) {
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
	s, err := schemas.Parse("gentest.ShipmentSchema", gentest.ShipmentSchema)
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

	note := "ring twice"
	delivered := time.UnixMilli(1_700_000_500_123).UTC()
	in := gentest.Shipment{
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
		Stops:       []gentest.Stop{{DepotURL: "https://depot.example/7", At: time.UnixMicro(1_700_000_100_000_000).UTC()}},
		Destination: gentest.Address{Street: "Hauptstr. 1", ZipCode: "10115", Country: "DE"},
		ReturnTo:    &gentest.Address{Street: "Lager 2", ZipCode: "20095", Country: "DE"},
		LastStop:    &gentest.Stop{DepotURL: "https://depot.example/9", At: time.UnixMicro(1_700_000_200_000_000).UTC()},
	}
	wire, err := enc.Append(nil, &in, schemas.Meta{ValidFrom: 1, SystemFrom: 2})
	if err != nil {
		t.Fatal(err)
	}
	var out gentest.Shipment
	if _, _, err := r.Decode(ctx, wire, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip changed the value:\n got %+v\nwant %+v", out, in)
	}

	// Nulls: nil pointers and a nil slice for the nullable array.
	in.DeliveredAt, in.Note, in.Stops, in.ReturnTo, in.LastStop = nil, nil, nil, nil, nil
	wire, err = enc.Append(nil, &in, schemas.Meta{ValidFrom: 1, SystemFrom: 2})
	if err != nil {
		t.Fatal(err)
	}
	out = gentest.Shipment{}
	if _, _, err := r.Decode(ctx, wire, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip of nulls changed the value:\n got %+v\nwant %+v", out, in)
	}
}
