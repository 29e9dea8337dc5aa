package cdc_test

// The meshlet-avro decoder reads what a Meshlet product publishes, so its
// events are made the way the runtime makes them: a row schema from an
// .avsc, its published schema registered in the embedded registry over
// HTTP, and schemas.Encoder writing row plus meta tail. The AvroSource is
// registrySource from avro_test.go, the same adapter runtime/avrosource.go
// builds.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/schemas"
	"github.com/twmb/franz-go/pkg/sr"
)

// meshletOrder is the row struct of testdata/meshlet-order.avsc.
type meshletOrder struct {
	OrderID  string     `avro:"order_id"`
	Amount   *big.Rat   `avro:"amount"`
	PlacedAt time.Time  `avro:"placed_at"`
	ShipBy   *time.Time `avro:"ship_by"`
	Quantity int32      `avro:"quantity"`
	Note     *string    `avro:"note"`
}

// meshletOrderV2 is the next, backward-compatible version of the row.
type meshletOrderV2 struct {
	meshletOrder
	Channel string `avro:"channel"`
}

const meshletOrderV2Schema = `{"type":"record","name":"Order","namespace":"com.example.shop","fields":[
 {"name":"order_id","type":"string"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
 {"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"ship_by","type":["null",{"type":"int","logicalType":"date"}],"default":null},
 {"name":"quantity","type":"int"},
 {"name":"note","type":["null","string"],"default":null},
 {"name":"channel","type":"string","default":"web"}]}`

// Registered schemas that are not Meshlet published schemas, each with a
// value hamba encodes for it.
var notPublished = map[string]struct {
	text  string
	value map[string]any
}{
	"plain": {`{"type":"record","name":"Plain","namespace":"other.team","fields":[{"name":"id","type":"string"}]}`,
		map[string]any{"id": "42"}},
	"no-deleted": {`{"type":"record","name":"Partial","namespace":"other.team","fields":[
 {"name":"id","type":"string"},
 {"name":"_valid_from","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"_valid_to","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
 {"name":"_system_from","type":{"type":"long","logicalType":"timestamp-micros"}}]}`,
		map[string]any{"id": "42", "_valid_from": time.UnixMicro(1), "_valid_to": nil, "_system_from": time.UnixMicro(2)}},
	"millis": {`{"type":"record","name":"Millis","namespace":"other.team","fields":[
 {"name":"id","type":"string"},
 {"name":"_valid_from","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"_valid_to","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null},
 {"name":"_system_from","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"_deleted","type":"boolean","default":false}]}`,
		map[string]any{"id": "42", "_valid_from": time.UnixMilli(1), "_valid_to": nil, "_system_from": time.UnixMicro(2), "_deleted": false}},
}

type meshletFixture struct {
	reg   *schemas.Registry
	url   string
	id    int // the published Order schema, version 1
	idV2  int
	enc   *schemas.Encoder
	encV2 *schemas.Encoder
	other map[string][]byte // wire events of the notPublished schemas
	dec   cdc.MultiDecoder
}

func newMeshletFixture(tb testing.TB) *meshletFixture {
	tb.Helper()
	e, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	reg, err := schemas.NewRegistry([]string{e.URL()})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	fx := &meshletFixture{reg: reg, url: e.URL(), other: map[string][]byte{}}
	v1, err := schemas.Load("testdata/meshlet-order.avsc")
	if err != nil {
		tb.Fatal(err)
	}
	v2, err := schemas.Parse("order-v2", meshletOrderV2Schema)
	if err != nil {
		tb.Fatal(err)
	}
	if fx.id, err = reg.Register(ctx, "shop.orders-value", v1, schemas.CompatBackward); err != nil {
		tb.Fatal(err)
	}
	if fx.idV2, err = reg.Register(ctx, "shop.orders-value", v2, schemas.CompatBackward); err != nil {
		tb.Fatal(err)
	}
	if fx.enc, err = schemas.NewEncoder(v1, fx.id); err != nil {
		tb.Fatal(err)
	}
	if fx.encV2, err = schemas.NewEncoder(v2, fx.idV2); err != nil {
		tb.Fatal(err)
	}
	for name, s := range notPublished {
		id, err := reg.Client().RegisterSchema(ctx, name+"-value", sr.Schema{Schema: s.text, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			tb.Fatalf("register %s: %v", name, err)
		}
		body, err := avro.Marshal(avro.MustParse(s.text), s.value)
		if err != nil {
			tb.Fatalf("encode %s: %v", name, err)
		}
		fx.other[name] = header(id, body)
	}
	d, err := cdc.NewDecoder("meshlet-avro", cdc.WithAvro(registrySource{reg}))
	if err != nil {
		tb.Fatal(err)
	}
	fx.dec = d.(cdc.MultiDecoder)
	return fx
}

func (fx *meshletFixture) event(tb testing.TB, row meshletOrder, m schemas.Meta) []byte {
	tb.Helper()
	w, err := fx.enc.Append(nil, row, m)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

var (
	validFrom  = time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC)
	systemFrom = time.Date(2026, 3, 1, 9, 30, 2, 0, time.UTC)
)

func upsertOrder() meshletOrder {
	ship := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	note := `gift "wrap"`
	return meshletOrder{
		OrderID: "42", Amount: big.NewRat(123450, 100), PlacedAt: time.UnixMilli(1772357400123).UTC(),
		ShipBy: &ship, Quantity: 3, Note: &note,
	}
}

const upsertAfter = `{"order_id":"42","amount":1234.50,"placed_at":"2026-03-01T09:30:00.123Z","ship_by":"2026-03-05","quantity":3,"note":"gift \"wrap\""}`

// sameChange compares everything, times by instant.
func sameChange(got, want cdc.Change) bool {
	if !got.CommitTime.Equal(want.CommitTime) {
		return false
	}
	got.CommitTime, want.CommitTime = time.Time{}, time.Time{}
	return reflect.DeepEqual(got, want)
}

func TestMeshletAvro(t *testing.T) {
	fx := newMeshletFixture(t)
	ctx := context.Background()
	source := cdc.Source{Connector: "meshlet", Name: "com.example.shop.Order"}
	backdated := validFrom.Add(-48 * time.Hour)
	v2, err := fx.encV2.Append(nil, meshletOrderV2{meshletOrder: upsertOrder(), Channel: "app"},
		schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		key, value []byte
		want       cdc.Change
	}{{
		name:  "upsert: row rendered with decimal, timestamp and date; commit time is _valid_from",
		key:   []byte("42"),
		value: fx.event(t, upsertOrder(), schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()}),
		want: cdc.Change{Kind: cdc.KindChange, Op: cdc.OpUpdate, Key: json.RawMessage(`"42"`),
			After: json.RawMessage(upsertAfter), CommitTime: validFrom, Source: source},
	}, {
		name: "back-dated correction with a closed valid period, nulls and a negative decimal",
		key:  []byte("43"),
		value: fx.event(t, meshletOrder{OrderID: "43", Amount: big.NewRat(-5, 100), PlacedAt: time.UnixMilli(0)},
			schemas.Meta{ValidFrom: backdated.UnixMicro(), ValidTo: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()}),
		want: cdc.Change{Kind: cdc.KindChange, Op: cdc.OpUpdate, Key: json.RawMessage(`"43"`),
			After:      json.RawMessage(`{"order_id":"43","amount":-0.05,"placed_at":"1970-01-01T00:00:00Z","ship_by":null,"quantity":0,"note":null}`),
			CommitTime: backdated, Source: source},
	}, {
		name: "retraction: zero row fields are not read",
		key:  []byte("42"),
		value: fx.event(t, meshletOrder{Amount: new(big.Rat)},
			schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro(), Deleted: true}),
		want: cdc.Change{Kind: cdc.KindChange, Op: cdc.OpDelete, Key: json.RawMessage(`"42"`), CommitTime: validFrom, Source: source},
	}, {
		name:  "key that needs escaping",
		key:   []byte("a\"b\\ü\n"),
		value: fx.event(t, upsertOrder(), schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()}),
		want: cdc.Change{Kind: cdc.KindChange, Op: cdc.OpUpdate, Key: json.RawMessage(`"a\"b\\ü\n"`),
			After: json.RawMessage(upsertAfter), CommitTime: validFrom, Source: source},
	}, {
		name:  "next schema version: new field rendered, same record name",
		key:   []byte("42"),
		value: v2,
		want: cdc.Change{Kind: cdc.KindChange, Op: cdc.OpUpdate, Key: json.RawMessage(`"42"`),
			After: json.RawMessage(strings.TrimSuffix(upsertAfter, "}") + `,"channel":"app"}`), CommitTime: validFrom, Source: source},
	}, {
		name: "tombstone",
		key:  []byte("42"),
		want: cdc.Change{Kind: cdc.KindTombstone, Key: json.RawMessage(`"42"`)},
	}, {
		name:  "tombstone without a key",
		value: []byte{},
		want:  cdc.Change{Kind: cdc.KindTombstone},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []cdc.Change{{DDL: "kept"}, {DDL: "stale", Tx: &cdc.Tx{ID: "x"}}}
			out, err := fx.dec.DecodeAll(ctx, tt.key, tt.value, dst[:1])
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 2 || out[0].DDL != "kept" {
				t.Fatalf("dst %+v", out)
			}
			if got := out[1]; !sameChange(got, tt.want) {
				t.Errorf("got  %+v\nAfter %s\nwant %+v\nAfter %s", got, got.After, tt.want, tt.want.After)
			}
			if tt.want.Key != nil {
				var k string
				if err := json.Unmarshal(out[1].Key, &k); err != nil || k != string(tt.key) {
					t.Errorf("Key %s reads back as %q (%v), want %q", out[1].Key, k, err, tt.key)
				}
			}
		})
	}

	t.Run("a handler's struct reads the row", func(t *testing.T) {
		var c cdc.Change
		if err := fx.dec.Decode([]byte("42"), tests[0].value, &c); err != nil {
			t.Fatal(err)
		}
		var row struct {
			Amount   json.Number `json:"amount"`
			PlacedAt time.Time   `json:"placed_at"`
			ShipBy   string      `json:"ship_by"`
		}
		if err := json.Unmarshal(c.After, &row); err != nil {
			t.Fatal(err)
		}
		if row.Amount != "1234.50" || !row.PlacedAt.Equal(upsertOrder().PlacedAt) || row.ShipBy != "2026-03-05" {
			t.Errorf("row %+v", row)
		}
	})
}

func TestMeshletAvroErrors(t *testing.T) {
	fx := newMeshletFixture(t)
	ctx := context.Background()
	good := fx.event(t, upsertOrder(), schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()})
	unknown := append(binary.BigEndian.AppendUint32([]byte{0}, 99999), good[5:]...)
	tests := []struct {
		name, field, reason string
		key, value          []byte
		cause               error // also matched, when set
	}{
		{"nil key", "key", "missing", nil, good, nil},
		{"key not UTF-8", "key", "not UTF-8", []byte{'4', 0xff}, good, nil},
		{"unknown schema id", "", "schema id 99999: fetch", []byte("42"), unknown, nil},
		{"truncated body", "", "schema id " + strconv.Itoa(fx.id) + ": decode", []byte("42"), good[:len(good)-1], schemas.ErrMalformed},
		{"trailing byte", "", "schema id " + strconv.Itoa(fx.id) + ": decode", []byte("42"), append(append([]byte(nil), good...), 0), schemas.ErrMalformed},
		{"short header", "", "shorter than the 5-byte Confluent header", []byte("42"), good[:4], nil},
		{"magic byte", "", "magic byte 0x1", []byte("42"), append([]byte{1}, good[1:]...), nil},
		{"not a published schema", "_valid_from", "other.team.Plain has no _valid_from field: not a Meshlet output event", []byte("42"), fx.other["plain"], nil},
		{"meta field missing", "_deleted", "other.team.Partial has no _deleted field", []byte("42"), fx.other["no-deleted"], nil},
		{"meta field mistyped", "_valid_from", "_valid_from in other.team.Millis is long (timestamp-millis), want a timestamp-micros long", []byte("42"), fx.other["millis"], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: the second answer comes from the schema cache.
			for range 2 {
				dst := []cdc.Change{{DDL: "kept"}}
				out, err := fx.dec.DecodeAll(ctx, tt.key, tt.value, dst)
				var de *cdc.DecodeError
				if !errors.Is(err, cdc.ErrMalformed) || !errors.As(err, &de) {
					t.Fatalf("error %v, want a DecodeError", err)
				}
				if de.Field != tt.field || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("error %q field %q, want field %q and %q", err, de.Field, tt.field, tt.reason)
				}
				if tt.cause != nil && !errors.Is(err, tt.cause) {
					t.Errorf("error %q does not match %v", err, tt.cause)
				}
				if len(out) != 1 || out[0].DDL != "kept" {
					t.Errorf("dst changed: %+v", out)
				}
			}
		})
	}

	t.Run("registry down is not malformed", func(t *testing.T) {
		e, err := schemas.StartEmbedded("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		reg, err := schemas.NewRegistry([]string{e.URL()})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		d, err := cdc.NewDecoder("meshlet-avro", cdc.WithAvro(registrySource{reg}))
		if err != nil {
			t.Fatal(err)
		}
		var c cdc.Change
		err = d.Decode([]byte("42"), good, &c)
		if err == nil || errors.Is(err, cdc.ErrMalformed) || !strings.Contains(err.Error(), "meshlet-avro") {
			t.Errorf("error %v, want a retryable one naming meshlet-avro", err)
		}
	})
}

// TestMeshletAvroConcurrent decodes on one decoder from many goroutines
// while its schema cache fills (run with -race).
func TestMeshletAvroConcurrent(t *testing.T) {
	fx := newMeshletFixture(t)
	d, err := cdc.NewDecoder("meshlet-avro", cdc.WithAvro(registrySource{fx.reg}))
	if err != nil {
		t.Fatal(err)
	}
	good := fx.event(t, upsertOrder(), schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()})
	plain := fx.other["plain"]
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			var c cdc.Change
			for range 20 {
				if err := d.Decode([]byte("42"), good, &c); err != nil {
					errs <- err
					return
				}
				if string(c.After) != upsertAfter {
					errs <- errors.New("After " + string(c.After))
					return
				}
				var de *cdc.DecodeError
				if err := d.Decode([]byte("42"), plain, &c); !errors.As(err, &de) || de.Field != "_valid_from" {
					errs <- errors.New("goroutine " + strconv.Itoa(g) + ": plain schema: " + errString(err))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func FuzzMeshletAvro(f *testing.F) {
	fx := newMeshletFixture(f)
	schemaIDs := []int{fx.id, fx.idV2}
	for _, name := range []string{"plain", "no-deleted", "millis"} {
		schemaIDs = append(schemaIDs, int(binary.BigEndian.Uint32(fx.other[name][1:5])))
	}
	meta := schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()}
	upsert := fx.event(f, upsertOrder(), meta)
	closed := fx.event(f, meshletOrder{OrderID: "43", Amount: big.NewRat(-5, 100)}, schemas.Meta{ValidFrom: -1, ValidTo: 1, SystemFrom: 2})
	deleted := fx.event(f, meshletOrder{Amount: new(big.Rat)}, schemas.Meta{ValidFrom: 1, SystemFrom: 2, Deleted: true})
	v2, err := fx.encV2.Append(nil, meshletOrderV2{meshletOrder: upsertOrder(), Channel: "app"}, meta)
	if err != nil {
		f.Fatal(err)
	}
	for _, w := range [][]byte{upsert, closed, deleted} {
		f.Add(uint8(0), w[5:], []byte("42"))
		f.Add(uint8(0), w[5:len(w)-1], []byte("42"))
	}
	f.Add(uint8(0), upsert[5:], []byte(nil))
	f.Add(uint8(0), upsert[5:], []byte("a\"\\\x00ü"))
	f.Add(uint8(0), upsert[5:], []byte{0xff})
	f.Add(uint8(1), v2[5:], []byte("42"))
	f.Add(uint8(1), upsert[5:], []byte("42")) // v1 body read with v2: short
	f.Add(uint8(2), fx.other["plain"][5:], []byte("42"))
	f.Add(uint8(3), fx.other["no-deleted"][5:], []byte("42"))
	f.Add(uint8(4), fx.other["millis"][5:], []byte("42"))
	f.Add(uint8(255), []byte(nil), []byte("42"))               // tombstone
	f.Add(uint8(255), []byte{0, 0, 1, 134, 159}, []byte("42")) // unknown id
	f.Add(uint8(255), append([]byte{1}, upsert[1:]...), []byte("42"))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, schema uint8, body, key []byte) {
		value := body // raw bytes: any header at all
		if int(schema) < len(schemaIDs) {
			value = header(schemaIDs[schema], body)
		}
		out, err := fx.dec.DecodeAll(ctx, key, value, nil)
		// Reading the bytes straight into JSON gives the Change that
		// rendering hamba's map of them gave.
		if len(key) > 0 && utf8.Valid(key) && len(value) >= 5 && value[0] == 0 {
			want, mapErr := cdc.MeshletViaMap(ctx, fx.dec, key, value)
			switch {
			case mapErr == nil && (err != nil || string(out[0].Key) != string(want.Key) || string(out[0].After) != string(want.After) ||
				out[0].Op != want.Op || !out[0].CommitTime.Equal(want.CommitTime) || out[0].Source != want.Source):
				t.Fatalf("through a map %+v (After %s), read directly %v %+v", want, want.After, err, out)
			case mapErr != nil && err == nil:
				t.Fatalf("through a map: %v; read directly %+v", mapErr, out)
			}
		}
		if err != nil {
			var de *cdc.DecodeError
			if !errors.Is(err, cdc.ErrMalformed) || !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError matching ErrMalformed", err)
			}
			return
		}
		if len(out) != 1 {
			t.Fatalf("%d changes", len(out))
		}
		c := out[0]
		if c.Before != nil || c.BeforeMissing || c.Tx != nil || c.Boundary != nil || c.Source.Position != (cdc.Position{}) {
			t.Fatalf("fields meshlet-avro never sets: %+v", c)
		}
		if c.Key != nil {
			var k string
			if err := json.Unmarshal(c.Key, &k); err != nil || k != string(key) {
				t.Fatalf("Key %q reads back as %q (%v), want %q", c.Key, k, err, key)
			}
		}
		if c.Kind == cdc.KindTombstone {
			if len(value) != 0 || (c.Key == nil) != (len(key) == 0) {
				t.Fatalf("tombstone %+v from value %q key %q", c, value, key)
			}
			return
		}
		if c.Kind != cdc.KindChange || c.Key == nil || c.Source.Connector != "meshlet" || c.Source.Name != "com.example.shop.Order" {
			t.Fatalf("change %+v", c)
		}
		switch c.Op {
		case cdc.OpUpdate:
			if !json.Valid(c.After) || c.After[0] != '{' {
				t.Fatalf("After %q is not a JSON object", c.After)
			}
			if len(c.After) > 64*len(value)+256 {
				t.Fatalf("%d bytes of JSON from %d bytes", len(c.After), len(value))
			}
		case cdc.OpDelete:
			if c.After != nil {
				t.Fatalf("retraction with After %s", c.After)
			}
		default:
			t.Fatalf("op %q", c.Op)
		}
		// The registry's own meta reader, an independent implementation,
		// must agree on the event's valid time and deletion.
		var row map[string]any
		_, m, err := fx.reg.Decode(ctx, value, &row)
		if err != nil {
			t.Fatalf("decoded by cdc but not by schemas.Registry.Decode: %v", err)
		}
		if !c.CommitTime.Equal(time.UnixMicro(m.ValidFrom)) || (c.Op == cdc.OpDelete) != m.Deleted {
			t.Fatalf("CommitTime %v op %v, registry says valid from %d deleted %v", c.CommitTime, c.Op, m.ValidFrom, m.Deleted)
		}
	})
}

// BenchmarkDecodeMeshletAvro decodes one upsert as the decoder does
// (direct), and as it did before, through the source's map of the event
// (via-map).
func BenchmarkDecodeMeshletAvro(b *testing.B) {
	fx := newMeshletFixture(b)
	value := fx.event(b, upsertOrder(), schemas.Meta{ValidFrom: validFrom.UnixMicro(), SystemFrom: systemFrom.UnixMicro()})
	key := []byte("42")
	ctx := context.Background()
	b.Run("via-map", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cdc.MeshletViaMap(ctx, fx.dec, key, value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		dst := make([]cdc.Change, 0, 1)
		b.SetBytes(int64(len(value)))
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if dst, err = fx.dec.DecodeAll(ctx, key, value, dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
