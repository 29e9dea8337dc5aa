package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/transforms"
)

// wholeTxProduct is the example product with its input port asking for
// whole source transactions.
func wholeTxProduct(t *testing.T) *runtime.Product {
	t.Helper()
	manifest, err := os.ReadFile("../examples/inventory/products/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	avsc, err := os.ReadFile("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	m := strings.Replace(string(manifest), "    format: debezium-json\n",
		"    format: debezium-json\n    transactions: whole\n    transactionTopic: dbserver1.transaction\n", 1)
	fsys := fstest.MapFS{"product.yaml": {Data: []byte(m)}, "schemas/product.avsc": {Data: avsc}}
	p, err := runtime.NewProduct(fsys, "product.yaml", transforms.Typed(products.Handle))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// txChange is a Debezium insert of product id inside source transaction tx.
func txChange(topic, tx string, id, order int) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: fmt.Appendf(nil,
		`{"before":null,"after":{"id":%d,"name":"part %d","description":"d","weight":1.5},"source":{"connector":"postgresql","schema":"inventory","table":"products","ts_ms":1700000000000,"lsn":%d,"txId":%d},"op":"c","transaction":{"id":%q,"total_order":%d,"data_collection_order":%d}}`,
		id, id, 9000+id, 700+order, tx, order, order)}
}

func txBoundary(status, tx string, count int) *kgo.Record {
	v := fmt.Sprintf(`{"status":%q,"id":%q,"event_count":null,"data_collections":null,"ts_ms":1700000000000}`, status, tx)
	if status == "END" {
		v = fmt.Sprintf(`{"status":"END","id":%q,"event_count":%d,"data_collections":[{"data_collection":"inventory.products","event_count":%d}],"ts_ms":1700000000000}`, tx, count, count)
	}
	return &kgo.Record{Topic: "dbserver1.transaction", Key: fmt.Appendf(nil, `{"id":%q}`, tx), Value: []byte(v)}
}

func TestWholeSourceTransactions(t *testing.T) {
	s := startStack(t)
	s.product = wholeTxProduct(t)
	in := s.product.Manifest.InputPorts[0].Topic
	if err := kafka.EnsureTopics(context.Background(), s.client, map[string]int32{"dbserver1.transaction": 1}); err != nil {
		t.Fatal(err)
	}
	// t0 is complete; t1's END has not arrived.
	s.produce([]*kgo.Record{
		txBoundary("BEGIN", "t0", 0), txChange(in, "t0", 200, 1), txBoundary("END", "t0", 1),
		txBoundary("BEGIN", "t1", 0), txChange(in, "t1", 201, 1), txChange(in, "t1", 202, 2), txChange(in, "t1", 203, 3),
	})
	run := func() (*runtime.Runner, func() error) {
		r, err := runtime.Start(context.Background(), s.product,
			runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(s.dataDir),
			runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return r, func() error { cancel(); return <-done }
	}
	r, stop := run()
	waitUntil(t, "t0 to be published", func() bool { return r.Stats().Records.Load() == 1 })
	time.Sleep(500 * time.Millisecond) // t1 must stay held: give the product time to get it wrong
	if got := r.Stats().Records.Load(); got != 1 {
		t.Fatalf("published %d records while t1 is incomplete, want only t0's", got)
	}
	// A restart while t1 is held loses nothing: its input offsets were
	// never committed.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r, stop = run()
	defer stop()
	s.produce([]*kgo.Record{txBoundary("END", "t1", 3)})
	waitUntil(t, "t1 to be published", func() bool { return r.Stats().Records.Load() == 3 })

	var ids []string
	for _, rec := range s.consume(s.product.Manifest.OutputPorts[0].Topic, 4) {
		ids = append(ids, string(rec.Key))
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "200,201,202,203" {
		t.Fatalf("output keys %v, want each of 200-203 once", ids)
	}
}

// TestWholeTransactionBehindABacklog starts the product on a backlog: each
// input partition begins with one part of transaction t and goes on with
// hundreds of changes outside any transaction, far more than a batch. A
// poll fills the batch from one partition, whose first record waits for t;
// the parts and the END it waits for must still get into a batch, or the
// product never moves again.
func TestWholeTransactionBehindABacklog(t *testing.T) {
	s := startStack(t)
	s.product = wholeTxProduct(t)
	in := s.product.Manifest.InputPorts[0].Topic
	if err := kafka.EnsureTopics(context.Background(), s.client, map[string]int32{"dbserver1.transaction": 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const backlog = 250
	var recs []*kgo.Record
	for p := range int32(3) {
		part := txChange(in, "t", 300+int(p), int(p)+1)
		part.Partition = p
		recs = append(recs, part)
		for i := range backlog {
			id := 1000 + int(p)*backlog + i
			recs = append(recs, &kgo.Record{Topic: in, Partition: p, Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: fmt.Appendf(nil,
				`{"before":null,"after":{"id":%d,"name":"lone %d","description":"d","weight":1.5},"source":{"connector":"postgresql","schema":"inventory","table":"products","ts_ms":1700000000000,"lsn":%d,"txId":%d},"op":"c","transaction":null}`,
				id, id, 20000+id, 900+id)})
		}
	}
	end := txBoundary("END", "t", 3)
	recs = append(recs, end)
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r, err := runtime.Start(context.Background(), s.product,
		runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(s.dataDir), runtime.MaxBatch(100),
		runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	want := int64(3 + 3*backlog)
	waitUntil(t, "every change published", func() bool { return r.Stats().Records.Load() == want })
	keys := map[string]int{}
	for _, rec := range s.consume(s.product.Manifest.OutputPorts[0].Topic, int(want)) {
		keys[string(rec.Key)]++
	}
	for key, n := range keys {
		if n != 1 {
			t.Errorf("key %s published %d times, want once", key, n)
		}
	}
	if len(keys) != int(want) {
		t.Errorf("%d keys published, want %d", len(keys), want)
	}
}
