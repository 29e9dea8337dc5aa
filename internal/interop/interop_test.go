package interop

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

const productSchema = `{
  "type": "record",
  "name": "ProductChanged",
  "namespace": "io.meshlet.interop",
  "fields": [
    {"name": "sku", "type": "string"},
    {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "stock", "type": ["null", "long"], "default": null},
    {"name": "active", "type": "boolean"},
    {"name": "price", "type": "double"},
    {"name": "quantity", "type": "int"},
    {"name": "note", "type": "string"}
  ]
}`

type productChanged struct {
	SKU       string    `avro:"sku"`
	UpdatedAt time.Time `avro:"updated_at"`
	Stock     *int64    `avro:"stock"`
	Active    bool      `avro:"active"`
	Price     float64   `avro:"price"`
	Quantity  int32     `avro:"quantity"`
	Note      string    `avro:"note"`
}

// asDecoded is what Event.Value must hold for p.
func (p productChanged) asDecoded() map[string]any {
	var stock any
	if p.Stock != nil {
		stock = *p.Stock
	}
	return map[string]any{
		"sku":        p.SKU,
		"updated_at": p.UpdatedAt.UnixMicro(),
		"stock":      stock,
		"active":     p.Active,
		"price":      p.Price,
		"quantity":   int64(p.Quantity),
		"note":       p.Note,
	}
}

func ptr[T any](v T) *T { return &v }

// testEvent builds the i-th event, covering the edges a JS decoder gets wrong:
// longs beyond 2^53, extreme int64s, integral doubles, non-ASCII text.
func testEvent(i int, base time.Time) (key string, p productChanged) {
	stocks := []*int64{nil, ptr(int64(0)), ptr(int64(-1)), ptr(int64(1) << 53), ptr(int64(1)<<53 + 1),
		ptr(int64(math.MaxInt64)), ptr(int64(math.MinInt64)), ptr(int64(i * 1000))}
	prices := []float64{0, 2, -2.5, 19.99, 1e21, 5e-324, math.MaxFloat64, -0.1, 1.0 / 3}
	notes := []string{"", "plain", "quote \" backslash \\ newline \n tab \t", "Grüße, 東京 🚚", "\u0000nul"}
	key = fmt.Sprintf("product-%03d-ü", i)
	p = productChanged{
		SKU:       fmt.Sprintf("SKU-%05d", i),
		UpdatedAt: base.Add(time.Duration(i) * 1234567 * time.Microsecond),
		Stock:     stocks[i%len(stocks)],
		Active:    i%3 != 0,
		Price:     prices[i%len(prices)],
		Quantity:  int32([]int64{0, 1, -1, math.MaxInt32, math.MinInt32}[i%5]),
		Note:      notes[i%len(notes)],
	}
	return key, p
}

func wire(schemaID int, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(b[1:], uint32(schemaID))
	return append(b, body...)
}

func TestKafkaJSDecodesEveryEventThroughRegistry(t *testing.T) {
	if err := NodeAvailable(); err != nil {
		t.Fatalf("%v\n(the interop test needs Node.js and the pinned npm modules; make test installs them)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const topic = "meshlet.interop.products.v1"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	reg := srfake.New()
	defer reg.Close()
	rcl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := rcl.CreateSchema(ctx, topic+"-value", sr.Schema{Schema: productSchema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := avro.Parse(productSchema)
	if err != nil {
		t.Fatal(err)
	}

	producer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("meshlet-interop-test"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	// Committed events 0..24, an aborted transaction, then committed 25..49:
	// a read_committed consumer must return exactly the 50 committed ones.
	base := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	want := map[string]map[string]any{}
	produce := func(from, to int, commit bool, keyPrefix string) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			key, p := testEvent(i, base)
			key = keyPrefix + key
			body, err := avro.Marshal(schema, p)
			if err != nil {
				t.Fatal(err)
			}
			rec := &kgo.Record{Key: []byte(key), Value: wire(ss.ID, body)}
			if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if commit {
				want[key] = p.asDecoded()
			}
		}
		if err := producer.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 25, true, "")
	produce(100, 110, false, "aborted-")
	produce(25, 50, true, "")

	events, err := ConsumeKafkaJS(ctx, strings.Join(brokers, ","), topic, reg.URL(), len(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d", len(events), len(want))
	}
	seen := map[string]bool{}
	lastOffset := map[int32]int64{}
	for _, ev := range events {
		if ev.SchemaID != ss.ID {
			t.Errorf("key %q: schema id %d, want %d", ev.Key, ev.SchemaID, ss.ID)
		}
		if last, ok := lastOffset[ev.Partition]; ok && ev.Offset <= last {
			t.Errorf("partition %d: offset %d after %d", ev.Partition, ev.Offset, last)
		}
		lastOffset[ev.Partition] = ev.Offset
		if seen[ev.Key] {
			t.Errorf("key %q delivered twice", ev.Key)
		}
		seen[ev.Key] = true
		exp, ok := want[ev.Key]
		if !ok {
			t.Errorf("unexpected key %q (aborted or unknown) at partition %d offset %d", ev.Key, ev.Partition, ev.Offset)
			continue
		}
		if !reflect.DeepEqual(ev.Value, exp) {
			t.Errorf("key %q:\n got %#v\nwant %#v", ev.Key, ev.Value, exp)
		}
	}

	// Asking for more than was committed must fail with the script's timeout
	// message rather than hang or succeed short.
	short, cancelShort := context.WithTimeout(ctx, 15*time.Second)
	defer cancelShort()
	_, err = ConsumeKafkaJS(short, strings.Join(brokers, ","), topic, reg.URL(), len(want)+1)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("consuming %d of %d committed events: err = %v, want a timeout", len(want)+1, len(want), err)
	}
}

func TestParseEventExactNumbers(t *testing.T) {
	line := `{"partition":2,"offset":"9007199254740993","key":"k","schemaId":7,` +
		`"value":{"l":9223372036854775807,"n":-9223372036854775808,"d":2.0,"e":1e+21,"u":null,"w":{"long":5},"a":[1,2.5],"s":"NaN"}}`
	ev, err := parseEvent([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Partition: 2, Offset: 9007199254740993, Key: "k", SchemaID: 7, Value: map[string]any{
		"l": int64(math.MaxInt64), "n": int64(math.MinInt64), "d": 2.0, "e": 1e21, "u": nil,
		"w": map[string]any{"long": int64(5)}, "a": []any{int64(1), 2.5}, "s": "NaN",
	}}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %#v\nwant %#v", ev, want)
	}
	for _, bad := range []string{`{}`, `{"partition":0,"offset":"x","schemaId":1,"value":{}}`, `{"partition":0,"offset":"1","schemaId":1,"value":[1]}`} {
		if _, err := parseEvent([]byte(bad)); err == nil {
			t.Errorf("parseEvent(%s): no error", bad)
		}
	}
}

func TestNodeAvailableTellsTheFix(t *testing.T) {
	t.Setenv(NodeDirEnv, t.TempDir())
	err := NodeAvailable()
	if err == nil || !strings.Contains(err.Error(), "make interop-deps") {
		t.Fatalf("NodeAvailable() with no node_modules = %v, want an error naming make interop-deps", err)
	}
}
