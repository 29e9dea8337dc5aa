package schemas

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Order is a domain engineer's row struct: no meta fields.
type Order struct {
	OrderID     string  `avro:"order_id"`
	CustomerID  string  `avro:"customer_id"`
	AmountCents int64   `avro:"amount_cents"`
	Currency    string  `avro:"currency"`
	Quantity    int32   `avro:"quantity"`
	Note        *string `avro:"note"`
}

// publishedOrder is what a consumer outside Meshlet would declare.
type publishedOrder struct {
	OrderID     string  `avro:"order_id"`
	CustomerID  string  `avro:"customer_id"`
	AmountCents int64   `avro:"amount_cents"`
	Currency    string  `avro:"currency"`
	Quantity    int32   `avro:"quantity"`
	Note        *string `avro:"note"`
	ValidFrom   int64   `avro:"_valid_from"`
	ValidTo     *int64  `avro:"_valid_to"`
	SystemFrom  int64   `avro:"_system_from"`
	Deleted     bool    `avro:"_deleted"`
}

func startRegistry(t testing.TB) *Registry {
	t.Helper()
	emb, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := emb.Close(); err != nil {
			t.Error(err)
		}
	})
	r, err := NewRegistry([]string{emb.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func loadOrder(t testing.TB) *Schema {
	t.Helper()
	s, err := Load("testdata/order.avsc")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTripOverHTTP(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	s := loadOrder(t)
	id, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(s, id)
	if err != nil {
		t.Fatal(err)
	}

	note := "leave at the door"
	validFrom := time.Date(2024, 3, 1, 9, 30, 0, 123456000, time.UTC)
	systemFrom := validFrom.Add(1500 * time.Millisecond)
	events := []struct {
		row  Order
		meta Meta
	}{
		{
			Order{"o-1", "c-9", 129900, "EUR", 3, &note},
			Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()},
		},
		{
			Order{"o-1", "c-9", -5, "", -1, nil},
			Meta{ValidFrom: -1, ValidTo: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro() + 1, Deleted: true},
		},
	}

	serde := sr.NewSerde()
	fetched, err := r.Client().SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	consumerSchema, err := avro.Parse(fetched.Schema)
	if err != nil {
		t.Fatal(err)
	}
	serde.Register(id, publishedOrder{}, sr.DecodeFn(func(b []byte, v any) error {
		return avro.Unmarshal(consumerSchema, b, v)
	}))

	prefix := []byte("kept")
	for i, ev := range events {
		wire, err := enc.Append(append([]byte(nil), prefix...), &ev.row, ev.meta)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(wire), "kept") {
			t.Fatalf("event %d: Append overwrote dst", i)
		}
		wire = wire[len(prefix):]
		if wire[0] != 0 || binary.BigEndian.Uint32(wire[1:5]) != uint32(id) {
			t.Fatalf("event %d: header % x, want 00 and id %d big-endian", i, wire[:5], id)
		}

		// Meshlet's own decoders.
		gotID, fields, err := r.DecodeMap(ctx, wire)
		if err != nil || gotID != id {
			t.Fatalf("event %d: DecodeMap id %d err %v", i, gotID, err)
		}
		wantMap := map[string]any{
			"order_id": ev.row.OrderID, "customer_id": ev.row.CustomerID,
			"amount_cents": ev.row.AmountCents, "currency": ev.row.Currency,
			"quantity": int(ev.row.Quantity), "note": nil,
			"_valid_from":  time.UnixMicro(ev.meta.ValidFrom).UTC(),
			"_valid_to":    nil,
			"_system_from": time.UnixMicro(ev.meta.SystemFrom).UTC(),
			"_deleted":     ev.meta.Deleted,
		}
		if ev.row.Note != nil {
			wantMap["note"] = *ev.row.Note
		}
		if ev.meta.ValidTo != 0 {
			wantMap["_valid_to"] = time.UnixMicro(ev.meta.ValidTo).UTC()
		}
		if !reflect.DeepEqual(fields, wantMap) {
			t.Errorf("event %d: DecodeMap\n got %#v\nwant %#v", i, fields, wantMap)
		}

		var row Order
		gotID, meta, err := r.Decode(ctx, wire, &row)
		if err != nil || gotID != id {
			t.Fatalf("event %d: Decode id %d err %v", i, gotID, err)
		}
		if !reflect.DeepEqual(row, ev.row) || meta != ev.meta {
			t.Errorf("event %d: Decode\n got %+v %+v\nwant %+v %+v", i, row, meta, ev.row, ev.meta)
		}

		// An independent consumer: franz-go's serde with the published
		// schema as fetched from the registry.
		var pub publishedOrder
		if err := serde.Decode(wire, &pub); err != nil {
			t.Fatalf("event %d: sr.Serde: %v", i, err)
		}
		wantPub := publishedOrder{
			ev.row.OrderID, ev.row.CustomerID, ev.row.AmountCents, ev.row.Currency, ev.row.Quantity, ev.row.Note,
			ev.meta.ValidFrom, nil, ev.meta.SystemFrom, ev.meta.Deleted,
		}
		if ev.meta.ValidTo != 0 {
			wantPub.ValidTo = &ev.meta.ValidTo
		}
		if !reflect.DeepEqual(pub, wantPub) {
			t.Errorf("event %d: sr.Serde\n got %+v\nwant %+v", i, pub, wantPub)
		}
	}

	got, err := r.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != s.Fingerprint() || got.RowName() != s.RowName() {
		t.Errorf("SchemaByID: fingerprint or name differs from the registered schema")
	}
}

func TestEncodeMapRow(t *testing.T) {
	s := loadOrder(t)
	enc, err := NewEncoder(s, 7)
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]any{
		"order_id": "o-2", "customer_id": "c-1", "amount_cents": int64(5),
		"currency": "USD", "quantity": 1, "note": nil,
	}
	wire, err := enc.Append(nil, row, Meta{ValidFrom: 1, SystemFrom: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWriter(7, s.pub)
	if err != nil {
		t.Fatal(err)
	}
	var got Order
	if _, err := w.decodeRow(wire[5:], &got); err != nil {
		t.Fatal(err)
	}
	if got.OrderID != "o-2" || got.Quantity != 1 || got.Note != nil {
		t.Errorf("decoded %+v", got)
	}
}

func TestEncodeErrors(t *testing.T) {
	s := loadOrder(t)
	if _, err := NewEncoder(s, 0); err == nil {
		t.Error("NewEncoder accepted id 0")
	}
	enc, err := NewEncoder(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	type wrong struct {
		OrderID int `avro:"order_id"`
	}
	for _, row := range []any{nil, (*Order)(nil), wrong{}, 42} {
		dst := []byte("x")
		out, err := enc.Append(dst, row, Meta{})
		if err == nil {
			t.Errorf("%T: Append succeeded", row)
		}
		if string(out) != "x" {
			t.Errorf("%T: dst changed on error: %q", row, out)
		}
	}
	// The encoder is still usable after errors.
	if _, err := enc.Append(nil, &Order{OrderID: "ok"}, Meta{}); err != nil {
		t.Error(err)
	}
}

func TestRegisterIdempotent(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	s := loadOrder(t)
	id1, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Errorf("ids %d then %d", id1, id2)
	}
	versions, err := r.Client().SubjectVersions(ctx, "orders-value")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 {
		t.Errorf("versions = %v, want one", versions)
	}
}

func TestRegisterUnknownLevel(t *testing.T) {
	r := startRegistry(t)
	_, err := r.Register(context.Background(), "s", loadOrder(t), Compat("SIDEWAYS"))
	if err == nil || !strings.Contains(err.Error(), "SIDEWAYS") {
		t.Errorf("err = %v", err)
	}
}

func TestSchemaByIDRejectsForeignSchema(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	id, err := r.Client().RegisterSchema(ctx, "foreign", sr.Schema{
		Schema: `{"type":"record","name":"Foreign","fields":[{"name":"x","type":"long"}]}`,
	}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SchemaByID(ctx, id); err == nil {
		t.Error("SchemaByID accepted a schema without meta fields")
	}
	// DecodeMap still works: it needs only the writer schema.
	_, m, err := r.DecodeMap(ctx, []byte{0, 0, 0, 0, byte(id), 0x54})
	if err != nil || m["x"] != int64(42) {
		t.Errorf("DecodeMap = %v, %v", m, err)
	}
	if _, _, err := r.Decode(ctx, []byte{0, 0, 0, 0, byte(id), 0x54}, &Order{}); err == nil {
		t.Error("Decode into a row struct accepted a schema without meta fields")
	}
}

func TestEmbeddedClose(t *testing.T) {
	emb, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := emb.URL()
	resp, err := http.Get(url + "/subjects")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /subjects: %s", resp.Status)
	}
	if err := emb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := emb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Get(url + "/subjects"); err == nil {
		t.Error("registry still answers after Close")
	}
}

// TestDecodeConcurrent shares one Registry (and its schema cache, cold at
// the start) between goroutines; run with -race.
func TestDecodeConcurrent(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	s := loadOrder(t)
	id, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			enc, err := NewEncoder(s, id)
			if err != nil {
				errs <- err
				return
			}
			for i := range 50 {
				in := Order{OrderID: "o", Quantity: int32(g*100 + i)}
				wire, err := enc.Append(nil, in, Meta{ValidFrom: int64(i)})
				if err != nil {
					errs <- err
					return
				}
				var out Order
				if _, m, err := r.Decode(ctx, wire, &out); err != nil || out != in || m.ValidFrom != int64(i) {
					errs <- fmt.Errorf("goroutine %d event %d: %+v %+v %v", g, i, out, m, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
