package schemas

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// orderV2 is what the shop publishes after two evolutions of order.avsc:
// note (which had a default) is gone and channel (with one) is new.
type orderV2 struct {
	OrderID     string `avro:"order_id"`
	CustomerID  string `avro:"customer_id"`
	AmountCents int64  `avro:"amount_cents"`
	Currency    string `avro:"currency"`
	Quantity    int32  `avro:"quantity"`
	Channel     string `avro:"channel"`
}

const orderV2Schema = `{"type": "record", "name": "Order", "namespace": "com.example.shop", "fields": [
	{"name": "order_id", "type": "string"},
	{"name": "customer_id", "type": "string"},
	{"name": "amount_cents", "type": "long"},
	{"name": "currency", "type": "string"},
	{"name": "quantity", "type": "int"},
	{"name": "channel", "type": "string", "default": "web"}
]}`

// orderWide is a newer consumer's view: quantity read as long, and a
// region that old events never carried.
type orderWide struct {
	OrderID  string `avro:"order_id"`
	Quantity int64  `avro:"quantity"`
	Region   string `avro:"region"`
}

const orderWideSchema = `{"type": "record", "name": "Order", "namespace": "com.example.shop", "fields": [
	{"name": "order_id", "type": "string"},
	{"name": "quantity", "type": "long"},
	{"name": "region", "type": "string", "default": "EU"}
]}`

func TestOlderReaderReadsNewerEvents(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	v1 := loadOrder(t)
	v2, err := Parse("v2", orderV2Schema)
	if err != nil {
		t.Fatal(err)
	}
	id1, err := r.Register(ctx, "orders-value", v1, CompatFull)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := r.Register(ctx, "orders-value", v2, CompatFull)
	if err != nil {
		t.Fatal(err)
	}

	enc, err := NewEncoder(v2, id2)
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{ValidFrom: 1_700_000_000_000_000, ValidTo: 1_700_000_000_000_001, SystemFrom: 1_700_000_000_000_002}
	wire, err := enc.Append(nil, orderV2{"o-7", "c-3", 4200, "EUR", 2, "app"}, meta)
	if err != nil {
		t.Fatal(err)
	}

	// The consumer still holds v1. A row reused from an earlier event
	// carries a note; the newer event has none, so v1's default (null)
	// must show, not the stale value.
	stale := "stale"
	row := Order{Note: &stale}
	gotID, gotMeta, err := r.DecodeWithReader(ctx, wire, v1, &row)
	if err != nil {
		t.Fatal(err)
	}
	want := Order{OrderID: "o-7", CustomerID: "c-3", AmountCents: 4200, Currency: "EUR", Quantity: 2}
	if gotID != id2 || gotMeta != meta || row != want {
		t.Errorf("DecodeWithReader = id %d %+v %+v\nwant id %d %+v %+v", gotID, gotMeta, row, id2, meta, want)
	}

	// A newer consumer reads an old v1 event: int widened, default filled.
	enc1, err := NewEncoder(v1, id1)
	if err != nil {
		t.Fatal(err)
	}
	note := "n"
	old, err := enc1.Append(nil, Order{"o-1", "c-1", 1, "USD", 5, &note}, Meta{ValidFrom: 9, SystemFrom: 10, Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := Parse("wide", orderWideSchema)
	if err != nil {
		t.Fatal(err)
	}
	var w orderWide
	_, m, err := r.DecodeWithReader(ctx, old, wide, &w)
	if err != nil {
		t.Fatal(err)
	}
	if w != (orderWide{"o-1", 5, "EU"}) || m != (Meta{ValidFrom: 9, SystemFrom: 10, Deleted: true}) {
		t.Errorf("wide reader got %+v %+v", w, m)
	}

	// A reader that needs a field the writer never had is refused as an
	// out-of-date reader, not as a malformed event.
	strict, err := Parse("strict", strings.Replace(orderWideSchema, `, "default": "EU"`, "", 1))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.DecodeWithReader(ctx, old, strict, &w)
	if !errors.Is(err, ErrIncompatible) || errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `field "region" has no default`) {
		t.Errorf("strict reader: err = %v", err)
	}

	// A truncated body is malformed whatever the reader.
	_, _, err = r.DecodeWithReader(ctx, wire[:len(wire)-3], v1, &row)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated event: err = %v, want ErrMalformed", err)
	}
}

type hostileReaderRow struct {
	S      string               `avro:"s"`
	B      string               `avro:"b"`
	Longs  []float64            `avro:"longs"`
	Nulls  []*struct{}          `avro:"nulls"`
	Grid   [][]*struct{}        `avro:"grid"`
	Tags   map[string]*struct{} `avro:"tags"`
	Choice any                  `avro:"choice"`
	Colour string               `avro:"colour"`
	Ratio  float64              `avro:"ratio"`
	OK     bool                 `avro:"ok"`
	Extra  string               `avro:"extra"`
}

// FuzzResolvedDecode feeds arbitrary bodies to the resolved decoder: an
// older reader that skips, promotes and defaults fields of hostile.avsc.
// It must never panic or hang, must refuse exactly what the walk refuses,
// and must agree with the writer-schema decoder on what it accepts.
func FuzzResolvedDecode(f *testing.F) {
	s, err := Load("testdata/hostile.avsc")
	if err != nil {
		f.Fatal(err)
	}
	reader, err := Load("testdata/hostile_reader.avsc")
	if err != nil {
		f.Fatal(err)
	}
	w, err := newWriter(1, s.pub)
	if err != nil {
		f.Fatal(err)
	}
	rs, err := resolveFor(w, reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hostileWire(1, hostileFields()))
	fs := hostileFields()
	fs[0], fs[2], fs[6], fs[7] = zz(3, 'a', 'b', 'c'), zz(-2, 2, 5, 6, 0), zz(2, 9), zz(1, 4, 1, 8, 0)
	f.Add(hostileWire(1, fs))
	for _, wire := range hostileCases(1) {
		if len(wire) < 4096 {
			f.Add(wire)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		_, body, err := SplitWire(wire)
		if err != nil {
			return
		}
		var row hostileReaderRow
		meta, err := w.decodeResolved(rs, body, &row)
		var plain hostileRow
		plainMeta, plainErr := w.decodeRow(body, &plain)
		if plainErr != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("writer decoder refused (%v) but the resolved one said %v", plainErr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("writer decoder accepted but the resolved one said %v", err)
		}
		if row.S != plain.S || row.OK != plain.OK || row.Extra != "x" || meta != plainMeta || len(row.Longs) != len(plain.Longs) ||
			len(row.Nulls) != len(plain.Nulls) || len(row.Tags) != len(plain.Tags) {
			t.Fatalf("resolved %+v %+v disagrees with writer %+v %+v", row, meta, plain, plainMeta)
		}
	})
}

// TestRecursiveReader: hamba's Resolve never returns on a recursive reader
// record, and the stack overflow would kill the consumer. Such a reader is
// refused with an error, unless it is the writer schema itself, which
// needs no resolution.
func TestRecursiveReader(t *testing.T) {
	ctx := context.Background()
	r, id := registerHostile(t)
	wire := hostileWire(id, hostileFields())
	writer, err := Load("testdata/hostile.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var row hostileRow
	if _, _, err := r.DecodeWithReader(ctx, wire, writer, &row); err != nil || !row.OK {
		t.Fatalf("the writer's own schema as reader: %+v, %v", row, err)
	}
	promoted, err := Parse("promoted", strings.Replace(mustRead(t, "testdata/hostile.avsc"),
		`{"name": "v", "type": "int"}`, `{"name": "v", "type": "long"}`, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.DecodeWithReader(ctx, wire, promoted, &row)
	if err == nil || !strings.Contains(err.Error(), "test.Node is recursive") {
		t.Fatalf("recursive reader: err = %v", err)
	}

	// hamba has no skip decoder for null: a reader that drops an array of
	// null is refused up front rather than failing on the first element.
	dropsNulls, err := Parse("drops", strings.Replace(mustRead(t, "testdata/hostile_reader.avsc"),
		`{"name": "nulls", "type": {"type": "array", "items": "null"}},`, "", 1))
	if err != nil {
		t.Fatal(err)
	}
	var rr hostileReaderRow
	_, _, err = r.DecodeWithReader(ctx, wire, dropsNulls, &rr)
	if err == nil || !strings.Contains(err.Error(), `field "nulls" holds null values outside a union`) {
		t.Fatalf("reader dropping an array of null: err = %v", err)
	}
}
