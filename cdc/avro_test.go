package cdc_test

// The debezium-avro decoder is tested against the real thing: an embedded
// schema registry over HTTP, schemas.Registry's hardened decoder behind the
// AvroSource, and messages encoded with hamba/avro (here, in tests only;
// package cdc itself never imports it).

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/cdc/samples"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/schemas"
)

// registrySource is the AvroSource a runtime builds on schemas.Registry:
// DecodeMap as it is, SchemaText from the registry client, and the
// registry's malformed-input errors (and unknown ids) classed as
// cdc.ErrMalformed.
type registrySource struct{ *schemas.Registry }

func (s registrySource) DecodeMap(ctx context.Context, wire []byte) (int, map[string]any, error) {
	id, m, err := s.Registry.DecodeMap(ctx, wire)
	if errors.Is(err, schemas.ErrMalformed) || notFound(err) {
		err = fmt.Errorf("%w: %w", cdc.ErrMalformed, err)
	}
	return id, m, err
}

func (s registrySource) SchemaText(ctx context.Context, id int) (string, error) {
	got, err := s.Client().SchemaByID(ctx, id)
	if err != nil {
		if notFound(err) {
			err = fmt.Errorf("%w: %w", cdc.ErrMalformed, err)
		}
		return "", err
	}
	return got.Schema, nil
}

func notFound(err error) bool {
	if err == nil {
		return false
	}
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.ErrorCode == sr.ErrSchemaNotFound.Code || re.StatusCode == http.StatusNotFound)
}

const (
	productKeySchema = `{"type":"record","name":"Key","namespace":"fullfillment.inventory.products","fields":[{"name":"id","type":"int"}],"connect.name":"fullfillment.inventory.products.Key"}`

	// Shaped as Debezium 1.2's PostgreSQL connector registers it through
	// Confluent's AvroConverter.
	productEnvelopeSchema = `{"type":"record","name":"Envelope","namespace":"fullfillment.inventory.products","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
   {"name":"id","type":"int"},
   {"name":"name","type":["null","string"],"default":null},
   {"name":"description","type":["null","string"],"default":null},
   {"name":"weight","type":["null","double"],"default":null}],
  "connect.name":"fullfillment.inventory.products.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
   {"name":"version","type":"string"},
   {"name":"connector","type":"string"},
   {"name":"name","type":"string"},
   {"name":"ts_ms","type":"long"},
   {"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,last,false"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},
   {"name":"db","type":"string"},
   {"name":"schema","type":"string"},
   {"name":"table","type":"string"},
   {"name":"txId","type":["null","long"],"default":null},
   {"name":"lsn","type":["null","long"],"default":null},
   {"name":"xmin","type":["null","long"],"default":null}],
  "connect.name":"io.debezium.connector.postgresql.Source"}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null},
 {"name":"transaction","type":["null",{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":[
   {"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}]}],"default":null}],
 "connect.name":"fullfillment.inventory.products.Envelope"}`

	txValueSchema = `{"type":"record","name":"TransactionMetadataValue","namespace":"io.debezium.connector.common","fields":[
 {"name":"status","type":"string"},
 {"name":"id","type":"string"},
 {"name":"event_count","type":["null","long"],"default":null},
 {"name":"data_collections","type":["null",{"type":"array","items":{"type":"record","name":"ConnectDefault","namespace":"io.confluent.connect.avro","fields":[
   {"name":"data_collection","type":"string"},{"name":"event_count","type":"long"}]}}],"default":null},
 {"name":"ts_ms","type":"long"}],
 "connect.name":"io.debezium.connector.common.TransactionMetadataValue"}`

	heartbeatSchema = `{"type":"record","name":"Heartbeat","namespace":"io.debezium.connector.common","fields":[{"name":"ts_ms","type":"long"}],"connect.name":"io.debezium.connector.common.Heartbeat"}`

	// Every Debezium and Kafka Connect logical type the decoder renders.
	logicalSchema = `{"type":"record","name":"Envelope","namespace":"srv.db.events","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
   {"name":"id","type":"int"},
   {"name":"day","type":{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Date"}},
   {"name":"day_connect","type":["null",{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}],"default":null},
   {"name":"t_ms","type":{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Time"}},
   {"name":"t_us","type":{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTime"}},
   {"name":"t_ns","type":{"type":"long","connect.version":1,"connect.name":"io.debezium.time.NanoTime"}},
   {"name":"t_connect","type":{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Time","logicalType":"time-millis"}},
   {"name":"ts_ms","type":{"type":"long","connect.version":1,"connect.name":"io.debezium.time.Timestamp"}},
   {"name":"ts_us","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null},
   {"name":"ts_ns","type":{"type":"long","connect.version":1,"connect.name":"io.debezium.time.NanoTimestamp"}},
   {"name":"ts_connect","type":{"type":"long","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"}},
   {"name":"zoned","type":{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}},
   {"name":"price","type":{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}},
   {"name":"price_raw","type":{"type":"bytes","connect.version":1,"connect.parameters":{"scale":"3"},"connect.name":"org.apache.kafka.connect.data.Decimal"}},
   {"name":"ratio","type":["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.doc":"Variable scaled decimal","connect.version":1,"connect.name":"io.debezium.data.VariableScaleDecimal"}],"default":null},
   {"name":"f","type":"float"},
   {"name":"d","type":"double"},
   {"name":"blob","type":"bytes"},
   {"name":"fx","type":{"type":"fixed","name":"Md5","size":4}},
   {"name":"mood","type":{"type":"enum","name":"Mood","symbols":["HAPPY","SAD"]}},
   {"name":"tags","type":{"type":"array","items":"string"}},
   {"name":"attrs","type":{"type":"map","values":["null","long"]}},
   {"name":"note","type":["null","string"],"default":null}],
  "connect.name":"srv.db.events.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null}]}`
)

// avroFixture is an embedded registry with the test schemas registered.
type avroFixture struct {
	reg    *schemas.Registry
	ids    map[string]int // by schema constant name
	parsed map[string]avro.Schema
	dec    cdc.MultiDecoder
	stop   func()
}

func newAvroFixture(tb testing.TB) *avroFixture {
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
	fx := &avroFixture{reg: reg, ids: map[string]int{}, parsed: map[string]avro.Schema{}, stop: func() { e.Close() }}
	for name, text := range map[string]string{
		"key": productKeySchema, "envelope": productEnvelopeSchema, "tx": txValueSchema,
		"heartbeat": heartbeatSchema, "logical": logicalSchema,
	} {
		id, err := reg.Client().RegisterSchema(context.Background(), name+"-subject", sr.Schema{Schema: text, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			tb.Fatalf("register %s: %v", name, err)
		}
		fx.ids[name] = id
		fx.parsed[name] = avro.MustParse(text)
	}
	d, err := cdc.NewDecoder("debezium-avro", cdc.WithAvro(registrySource{reg}))
	if err != nil {
		tb.Fatal(err)
	}
	fx.dec = d.(cdc.MultiDecoder)
	return fx
}

// wire encodes v with the named schema in Confluent's wire format.
func (fx *avroFixture) wire(tb testing.TB, schema string, v any) []byte {
	tb.Helper()
	body, err := avro.Marshal(fx.parsed[schema], v)
	if err != nil {
		tb.Fatalf("encode %s: %v", schema, err)
	}
	return header(fx.ids[schema], body)
}

func header(id int, body []byte) []byte {
	w := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(w[1:], uint32(id))
	return append(w, body...)
}

// The recorded JSON samples, read into structs that hamba encodes with the
// envelope schema.
type pgValue struct {
	ID          int32    `avro:"id" json:"id"`
	Name        *string  `avro:"name" json:"name"`
	Description *string  `avro:"description" json:"description"`
	Weight      *float64 `avro:"weight" json:"weight"`
}

type pgSource struct {
	Version   string  `avro:"version" json:"version"`
	Connector string  `avro:"connector" json:"connector"`
	Name      string  `avro:"name" json:"name"`
	TsMs      int64   `avro:"ts_ms" json:"ts_ms"`
	Snapshot  *string `avro:"snapshot" json:"snapshot"`
	DB        string  `avro:"db" json:"db"`
	Schema    string  `avro:"schema" json:"schema"`
	Table     string  `avro:"table" json:"table"`
	TxID      *int64  `avro:"txId" json:"txId"`
	LSN       *int64  `avro:"lsn" json:"lsn"`
	Xmin      *int64  `avro:"xmin" json:"xmin"`
}

type txBlock struct {
	ID                  string `avro:"id" json:"id"`
	TotalOrder          int64  `avro:"total_order" json:"total_order"`
	DataCollectionOrder int64  `avro:"data_collection_order" json:"data_collection_order"`
}

type pgEnvelope struct {
	Before      *pgValue `avro:"before" json:"before"`
	After       *pgValue `avro:"after" json:"after"`
	Source      pgSource `avro:"source" json:"source"`
	Op          string   `avro:"op" json:"op"`
	TsMs        *int64   `avro:"ts_ms" json:"ts_ms"`
	Transaction *txBlock `avro:"transaction" json:"transaction"`
}

type pgKey struct {
	ID int32 `avro:"id"`
}

func sampleLines(tb testing.TB, name string) [][]byte {
	tb.Helper()
	lines, err := samples.Lines(name)
	if err != nil {
		tb.Fatal(err)
	}
	return lines
}

// encodedSamples encodes the PostgreSQL schema-exclude capture as Debezium's
// AvroConverter would have written it, key included.
func encodedSamples(tb testing.TB, fx *avroFixture) (lines, keys, values [][]byte) {
	tb.Helper()
	lines = sampleLines(tb, "debezium-postgres-data-schema-exclude.txt")
	for _, line := range lines {
		var env pgEnvelope
		if err := json.Unmarshal(line, &env); err != nil {
			tb.Fatal(err)
		}
		row := env.After
		if row == nil {
			row = env.Before
		}
		keys = append(keys, fx.wire(tb, "key", pgKey{ID: row.ID}))
		values = append(values, fx.wire(tb, "envelope", env))
	}
	return lines, keys, values
}

// avroFinal is the capture's final table (see debezium_test.go for the
// reading), as the Avro decoder renders it: fields in schema order,
// doubles in their shortest form (1.0 is 1).
var avroFinal = map[int]string{
	101: `{"id":101,"name":"scooter","description":"Small 2-wheel scooter","weight":3.14}`,
	102: `{"id":102,"name":"car battery","description":"12V car battery","weight":8.1}`,
	103: `{"id":103,"name":"12-pack drill bits","description":"12-pack of drill bits with sizes ranging from #40 to #3","weight":0.8}`,
	104: `{"id":104,"name":"hammer","description":"12oz carpenter's hammer","weight":0.75}`,
	105: `{"id":105,"name":"hammer","description":"14oz carpenter's hammer","weight":0.875}`,
	106: `{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1}`,
	107: `{"id":107,"name":"rocks","description":"box of assorted rocks","weight":5.1}`,
	108: `{"id":108,"name":"jacket","description":"water resistent black wind breaker","weight":0.1}`,
	109: `{"id":109,"name":"spare tire","description":"24 inch spare tire","weight":22.2}`,
	110: `{"id":110,"name":"jacket","description":"new water resistent white wind breaker","weight":0.5}`,
}

func rowID(t *testing.T, raw []byte) int {
	t.Helper()
	var r struct{ ID *int }
	if err := json.Unmarshal(raw, &r); err != nil || r.ID == nil {
		t.Fatalf("no id in %s (%v)", raw, err)
	}
	return *r.ID
}

func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestDebeziumAvroSamples(t *testing.T) {
	fx := newAvroFixture(t)
	jsonLines, keys, values := encodedSamples(t, fx)
	jsonDec, _ := cdc.NewDecoder("debezium-json")
	ctx := context.Background()
	table := map[int]string{}
	var changes []cdc.Change
	for i := range values {
		var err error
		n := len(changes)
		if changes, err = fx.dec.DecodeAll(ctx, keys[i], values[i], changes); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		c := changes[n]
		// The same message as JSON must decode to the same change.
		var want cdc.Change
		if err := jsonDec.Decode(nil, jsonLines[i], &want); err != nil {
			t.Fatal(err)
		}
		if c.Kind != cdc.KindChange || c.Op != want.Op || c.Source != want.Source || !c.CommitTime.Equal(want.CommitTime) ||
			c.BeforeMissing != want.BeforeMissing || !reflect.DeepEqual(c.Tx, want.Tx) {
			t.Errorf("message %d: avro %+v\njson %+v", i+1, c, want)
		}
		if !sameJSON(c.Before, want.Before) || !sameJSON(c.After, want.After) {
			t.Errorf("message %d: images differ\navro %s %s\njson %s %s", i+1, c.Before, c.After, want.Before, want.After)
		}
		switch c.Op {
		case cdc.OpCreate, cdc.OpRead, cdc.OpUpdate:
			if rowID(t, c.Key) != rowID(t, c.After) {
				t.Errorf("message %d: key %s", i+1, c.Key)
			}
			table[rowID(t, c.After)] = string(c.After)
		case cdc.OpDelete:
			delete(table, rowID(t, c.Key))
		}
	}
	if len(changes) != 16 {
		t.Fatalf("%d changes", len(changes))
	}
	if len(table) != len(avroFinal) {
		t.Errorf("%d rows, want %d", len(table), len(avroFinal))
	}
	for id, want := range avroFinal {
		if got := table[id]; got != want {
			t.Errorf("row %d:\n got %s\nwant %s", id, got, want)
		}
	}
	if c := changes[15]; c.Op != cdc.OpDelete || string(c.Key) != `{"id":111}` || c.Source.Position.String() != "lsn=34133800,txId=608" {
		t.Errorf("last message: op %v key %s position %v", c.Op, c.Key, c.Source.Position)
	}
}

func TestDebeziumAvroLogicalTypes(t *testing.T) {
	fx := newAvroFixture(t)
	ctx := context.Background()
	row := map[string]any{
		"id":          1,
		"day":         18395, // days since 1970-01-01
		"day_connect": time.Date(2020, 5, 13, 0, 0, 0, 0, time.UTC),
		"t_ms":        56406123, // 15:40:06.123 in ms
		"t_us":        int64(56406123456),
		"t_ns":        int64(56406000000001),
		"t_connect":   3 * time.Second,
		"ts_ms":       int64(1589384406123),
		"ts_us":       int64(1589384406123456),
		"ts_ns":       int64(1589384406123456789),
		"ts_connect":  time.UnixMilli(1589384406000),
		"zoned":       "2020-05-13T15:40:06.123+02:00",
		"price":       big.NewRat(1250, 100),
		"price_raw":   []byte{0xfb, 0x2e}, // -1234, two's complement
		"ratio":       map[string]any{"io.debezium.data.VariableScaleDecimal": map[string]any{"scale": 5, "value": []byte{0x30, 0x39}}},
		"f":           float32(3.14),
		"d":           1e21,
		"blob":        []byte{0, 1, 2, 0xff},
		"fx":          [4]byte{0xde, 0xad, 0xbe, 0xef},
		"mood":        "SAD",
		"tags":        []any{"a", `b"c`},
		"attrs":       map[string]any{"z": nil, "a": int64(5)},
		"note":        nil,
	}
	value := fx.wire(t, "logical", map[string]any{
		"before": nil,
		"after":  map[string]any{"srv.db.events.Value": row},
		"op":     "c",
		"ts_ms":  map[string]any{"long": int64(1589384406500)},
	})
	out, err := fx.dec.DecodeAll(ctx, nil, value, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"day":"2020-05-13","day_connect":"2020-05-13","t_ms":"15:40:06.123","t_us":"15:40:06.123456","t_ns":"15:40:06.000000001","t_connect":"00:00:03",` +
		`"ts_ms":"2020-05-13T15:40:06.123Z","ts_us":"2020-05-13T15:40:06.123456Z","ts_ns":"2020-05-13T15:40:06.123456789Z","ts_connect":"2020-05-13T15:40:06Z",` +
		`"zoned":"2020-05-13T15:40:06.123+02:00","price":12.50,"price_raw":-1.234,"ratio":0.12345,"f":3.14,"d":1e+21,"blob":"AAEC/w==","fx":"3q2+7w==",` +
		`"mood":"SAD","tags":["a","b\"c"],"attrs":{"a":5,"z":null},"note":null}`
	if len(out) != 1 || string(out[0].After) != want {
		t.Fatalf("After:\n got %s\nwant %s", out[0].After, want)
	}
	if want := time.Date(2020, 5, 13, 15, 40, 6, 500e6, time.UTC); !out[0].CommitTime.Equal(want) {
		t.Errorf("CommitTime %v, want %v", out[0].CommitTime, want)
	}
	// A handler's typed struct reads the rendered values.
	var typed struct {
		Day   string      `json:"day"`
		TsUs  time.Time   `json:"ts_us"`
		Price json.Number `json:"price"`
		Ratio json.Number `json:"ratio"`
		Blob  []byte      `json:"blob"`
	}
	if err := json.Unmarshal(out[0].After, &typed); err != nil {
		t.Fatal(err)
	}
	if !typed.TsUs.Equal(time.UnixMicro(1589384406123456)) || typed.Price != "12.50" || typed.Ratio != "0.12345" || !bytes.Equal(typed.Blob, []byte{0, 1, 2, 0xff}) {
		t.Errorf("typed %+v", typed)
	}
}

func TestDebeziumAvroControlMessages(t *testing.T) {
	fx := newAvroFixture(t)
	ctx := context.Background()
	t.Run("transaction END", func(t *testing.T) {
		v := fx.wire(t, "tx", map[string]any{
			"status": "END", "id": "571:53195832",
			"event_count": map[string]any{"long": int64(3)},
			"data_collections": map[string]any{"array": []any{
				map[string]any{"data_collection": "inventory.products", "event_count": int64(2)},
				map[string]any{"data_collection": "inventory.orders", "event_count": int64(1)},
			}},
			"ts_ms": int64(1596010988600),
		})
		out, err := fx.dec.DecodeAll(ctx, nil, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := out[0].Boundary
		if out[0].Kind != cdc.KindTxBoundary || b == nil || b.Status != cdc.TxEnd || b.ID != "571:53195832" || b.EventCount != 3 ||
			!slices.Equal(b.Collections, []cdc.CollectionCount{{Collection: "inventory.products", EventCount: 2}, {Collection: "inventory.orders", EventCount: 1}}) {
			t.Errorf("%+v %+v", out[0], b)
		}
	})
	t.Run("transaction BEGIN", func(t *testing.T) {
		v := fx.wire(t, "tx", map[string]any{"status": "BEGIN", "id": "571:53195832", "event_count": nil, "data_collections": nil, "ts_ms": int64(1)})
		out, err := fx.dec.DecodeAll(ctx, nil, v, nil)
		if err != nil || out[0].Kind != cdc.KindTxBoundary || out[0].Boundary.Status != cdc.TxBegin {
			t.Errorf("%v %+v", err, out)
		}
	})
	t.Run("heartbeat", func(t *testing.T) {
		out, err := fx.dec.DecodeAll(ctx, nil, fx.wire(t, "heartbeat", map[string]any{"ts_ms": int64(1596010988596)}), nil)
		if err != nil || out[0].Kind != cdc.KindHeartbeat || !out[0].CommitTime.Equal(time.UnixMilli(1596010988596)) {
			t.Errorf("%v %+v", err, out)
		}
	})
	t.Run("tombstone", func(t *testing.T) {
		out, err := fx.dec.DecodeAll(ctx, fx.wire(t, "key", pgKey{ID: 111}), nil, nil)
		if err != nil || out[0].Kind != cdc.KindTombstone || string(out[0].Key) != `{"id":111}` {
			t.Errorf("%v %+v", err, out)
		}
	})
	t.Run("transaction block", func(t *testing.T) {
		name := "x"
		env := pgEnvelope{After: &pgValue{ID: 1, Name: &name}, Op: "c", Source: pgSource{Connector: "postgresql", TsMs: 1, LSN: new(int64)},
			Transaction: &txBlock{ID: "571:53195832", TotalOrder: 3, DataCollectionOrder: 2}}
		out, err := fx.dec.DecodeAll(ctx, nil, fx.wire(t, "envelope", env), nil)
		if err != nil || out[0].Tx == nil || *out[0].Tx != (cdc.Tx{ID: "571:53195832", TotalOrder: 3, DataCollectionOrder: 2}) {
			t.Errorf("%v %+v", err, out)
		}
		if string(out[0].After) != `{"id":1,"name":"x","description":null,"weight":null}` {
			t.Errorf("After %s", out[0].After)
		}
	})
}

func TestDebeziumAvroErrors(t *testing.T) {
	fx := newAvroFixture(t)
	ctx := context.Background()
	_, keys, values := encodedSamples(t, fx)
	good := values[0]
	malformed := []struct {
		name, field, reason string
		key, value          []byte
	}{
		{"short", "", "shorter than the 5-byte Confluent header", nil, []byte{0, 0, 0}},
		{"magic", "", "magic byte 0x1", nil, append([]byte{1}, good[1:]...)},
		{"unknown schema id", "", "schema id 99999", nil, header(99999, good[5:])},
		{"truncated body", "", "schema id", nil, good[:len(good)-3]},
		{"trailing bytes", "", "schema id", nil, append(bytes.Clone(good), 0)},
		{"key not wire format", "key", "magic byte", []byte(`{"id":1}`), good},
		{"bad op", "op", `unknown op "x"`, keys[0], fx.wire(t, "envelope", pgEnvelope{After: &pgValue{ID: 1}, Op: "x"})},
		{"insert without row", "after", "missing", nil, fx.wire(t, "envelope", pgEnvelope{Op: "c"})},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			dst := []cdc.Change{{DDL: "kept"}}
			out, err := fx.dec.DecodeAll(ctx, tt.key, tt.value, dst)
			var de *cdc.DecodeError
			if !errors.Is(err, cdc.ErrMalformed) || !errors.As(err, &de) {
				t.Fatalf("error %v, want a DecodeError", err)
			}
			if de.Field != tt.field || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q field %q, want %q mentioning %q", err, de.Field, tt.field, tt.reason)
			}
			if len(out) != 1 || out[0].DDL != "kept" {
				t.Errorf("dst changed: %+v", out)
			}
		})
	}
	t.Run("registry down is not malformed", func(t *testing.T) {
		e, err := schemas.StartEmbedded("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		reg, _ := schemas.NewRegistry([]string{e.URL()})
		e.Close()
		d, _ := cdc.NewDecoder("debezium-avro", cdc.WithAvro(registrySource{reg}))
		var c cdc.Change
		err = d.Decode(nil, good, &c)
		if err == nil || errors.Is(err, cdc.ErrMalformed) {
			t.Errorf("error %v, want a retryable one", err)
		}
	})
}

func FuzzDecodeDebeziumAvro(f *testing.F) {
	fx := newAvroFixture(f)
	_, keys, values := encodedSamples(f, fx)
	schemaOf := []string{"key", "envelope", "tx", "heartbeat", "logical"}
	index := func(name string) uint8 { return uint8(slices.Index(schemaOf, name)) }
	for i := range values {
		f.Add(index("envelope"), values[i][5:], keys[i][5:])
		f.Add(index("envelope"), values[i][5:len(values[i])/2], []byte(nil))
	}
	tx := fx.wire(f, "tx", map[string]any{"status": "END", "id": "1", "event_count": map[string]any{"long": int64(1)},
		"data_collections": map[string]any{"array": []any{map[string]any{"data_collection": "a.b", "event_count": int64(1)}}}, "ts_ms": int64(1)})
	f.Add(index("tx"), tx[5:], []byte(nil))
	f.Add(index("heartbeat"), []byte{2}, []byte(nil))
	logical := fx.wire(f, "logical", map[string]any{"before": nil, "op": "c", "ts_ms": nil, "after": map[string]any{"srv.db.events.Value": map[string]any{
		"id": 1, "day": -1, "day_connect": nil, "t_ms": -1, "t_us": int64(-1), "t_ns": int64(1), "t_connect": time.Duration(0), "ts_ms": int64(-1),
		"ts_us": nil, "ts_ns": int64(0), "ts_connect": time.UnixMilli(0), "zoned": "", "price": big.NewRat(-1, 100), "price_raw": []byte{0x80},
		"ratio": map[string]any{"io.debezium.data.VariableScaleDecimal": map[string]any{"scale": -3, "value": []byte{0xff}}},
		"f":     float32(0), "d": -0.0, "blob": []byte{}, "fx": [4]byte{}, "mood": "HAPPY", "tags": []any{}, "attrs": map[string]any{}, "note": "\x00\xff",
	}}})
	f.Add(index("logical"), logical[5:], []byte(nil))
	f.Add(uint8(255), []byte{1, 2, 3}, []byte{0, 0, 0, 0, 9})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, schema uint8, body, keyBody []byte) {
		var value, key []byte
		if int(schema) < len(schemaOf) {
			value = header(fx.ids[schemaOf[schema]], body)
		} else {
			value = body // raw bytes: any header at all
		}
		if len(keyBody) > 0 {
			key = header(fx.ids["key"], keyBody)
		}
		// Reading the bytes straight into JSON gives what rendering
		// hamba's map of them gave.
		for _, wire := range [][]byte{key, value} {
			viaMap, mapErr, direct, directErr := cdc.AvroRenderings(ctx, registrySource{fx.reg}, wire)
			if mapErr == nil && (directErr != nil || !bytes.Equal(viaMap, direct)) {
				t.Fatalf("%x: through a map %s, read directly %s (%v)", wire, viaMap, direct, directErr)
			}
			if mapErr != nil && directErr == nil {
				t.Fatalf("%x: through a map: %v; read directly %s", wire, mapErr, direct)
			}
		}
		out, err := fx.dec.DecodeAll(ctx, key, value, nil)
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
		for _, img := range [][]byte{c.Key, c.Before, c.After} {
			if img != nil && (!json.Valid(img) || img[0] != '{') {
				t.Fatalf("image %q is not a JSON object", img)
			}
			// Rendering stays within a small multiple of the input.
			if len(img) > 64*(len(value)+len(key))+256 {
				t.Fatalf("%d bytes of JSON from %d bytes", len(img), len(value)+len(key))
			}
		}
		if c.Kind == cdc.KindChange && !slices.Contains([]cdc.Op{cdc.OpCreate, cdc.OpUpdate, cdc.OpDelete, cdc.OpRead, cdc.OpTruncate}, c.Op) {
			t.Fatalf("invalid op %q", c.Op)
		}
	})
}

func BenchmarkDecodeDebeziumAvro(b *testing.B) {
	fx := newAvroFixture(b)
	_, keys, values := encodedSamples(b, fx)
	total := 0
	for i := range values {
		total += len(keys[i]) + len(values[i])
	}
	ctx := context.Background()
	dst := make([]cdc.Change, 0, 1)
	b.SetBytes(int64(total / len(values)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var err error
		if dst, err = fx.dec.DecodeAll(ctx, keys[i%len(keys)], values[i%len(values)], dst[:0]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAvroRender renders one envelope's Avro body as JSON as the
// decoder does (direct), and as it did before, through the source's map
// of the record (via-map); it is the part of BenchmarkDecodeDebeziumAvro
// that changed.
func BenchmarkAvroRender(b *testing.B) {
	fx := newAvroFixture(b)
	_, _, values := encodedSamples(b, fx)
	value := values[len(values)/2]
	render, err := cdc.AvroRenderer(context.Background(), registrySource{fx.reg}, value)
	if err != nil {
		b.Fatal(err)
	}
	for _, direct := range []bool{false, true} {
		name := "via-map"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := render(value, direct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
