package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/state"
	"github.com/meshlet/meshlet/transforms"
)

type sOrder struct {
	OrderNumber int64 `json:"order_number"`
	Purchaser   int64 `json:"purchaser"`
	Quantity    int32 `json:"quantity"`
}

type sCustomer struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

type sEnriched struct {
	OrderNumber   int64   `avro:"order_number" json:"order_number"`
	CustomerID    int64   `avro:"customer_id" json:"customer_id"`
	CustomerEmail *string `avro:"customer_email" json:"customer_email"`
	Quantity      int32   `avro:"quantity" json:"quantity"`
}

func enrichJoin() *transforms.Lookup[sOrder, sCustomer, sEnriched] {
	return &transforms.Lookup[sOrder, sCustomer, sEnriched]{
		Name: "enrich", Right: "customers-cdc",
		Key: func(o *sOrder) string { return strconv.FormatInt(o.Purchaser, 10) },
		Join: func(o *sOrder, c *sCustomer) (sEnriched, bool) {
			e := sEnriched{OrderNumber: o.OrderNumber, CustomerID: o.Purchaser, Quantity: o.Quantity}
			if c != nil {
				e.CustomerEmail = &c.Email
			}
			return e, true // a left join: an order of an unknown customer still shows
		},
	}
}

func statefulProduct(t *testing.T) *runtime.Product {
	j := enrichJoin()
	orders := transforms.On("orders-cdc", func(_ context.Context, c transforms.Change[sOrder], st *state.Txn) ([]transforms.Output, error) {
		o := c.After()
		key := ""
		if o != nil {
			key = strconv.FormatInt(o.OrderNumber, 10)
		} else if b := c.Before(); b != nil {
			key = strconv.FormatInt(b.OrderNumber, 10)
		}
		recs, err := j.OnLeft(st, key, c.CommitTime, o)
		if o != nil && o.Quantity < 0 {
			// After the state write: the dead letter must take it back.
			return nil, fmt.Errorf("order %d: negative quantity %d", o.OrderNumber, o.Quantity)
		}
		return transforms.To("enriched-orders", recs...), err
	})
	customers := transforms.On("customers-cdc", func(_ context.Context, c transforms.Change[sCustomer], st *state.Txn) ([]transforms.Output, error) {
		row := c.After()
		if row == nil {
			row = c.Before()
		}
		// The table port has written the row; correct what it changes.
		recs, err := j.Corrections(st, strconv.FormatInt(row.ID, 10), c.CommitTime)
		return transforms.To("enriched-orders", recs...), err
	})
	p, err := runtime.NewProduct(os.DirFS("testdata/stateful"), "product.yaml", nil, orders, customers)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// debezium is one Postgres change in the envelope of the shared Debezium
// samples (schema excluded).
func debezium(table, op string, lsn int64, commitMs int64, before, after any) *kgo.Record {
	src := map[string]any{"version": "1.2.1.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": commitMs,
		"snapshot": "false", "db": "postgres", "schema": "inventory", "table": table, "txId": 600 + lsn, "lsn": lsn, "xmin": nil}
	v, _ := json.Marshal(map[string]any{"before": before, "after": after, "source": src, "op": op, "ts_ms": commitMs, "transaction": nil})
	row := after
	if row == nil {
		row = before
	}
	var id any
	switch r := row.(type) {
	case sCustomer:
		id = map[string]any{"id": r.ID}
	case sOrder:
		id = map[string]any{"order_number": r.OrderNumber}
	}
	k, _ := json.Marshal(id)
	return &kgo.Record{Topic: "db.inventory." + table, Key: k, Value: v}
}

type stateStack struct {
	t        *testing.T
	brokers  []string
	registry string
	client   *kgo.Client
}

func (s *stateStack) start(dataDir string) (*runtime.Runner, func() error) {
	s.t.Helper()
	r, err := runtime.Start(context.Background(), statefulProduct(s.t),
		runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(dataDir),
		runtime.Logger(slog.New(slog.NewTextHandler(s.t.Output(), nil))))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	s.t.Cleanup(func() { stop() })
	return r, stop
}

func (s *stateStack) produce(recs ...*kgo.Record) {
	s.t.Helper()
	if err := s.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// results reads the output topic until want holds of the fold of its
// records (last version per order and valid time), or fails.
func (s *stateStack) results(schemaText string, want map[string]string) {
	s.t.Helper()
	sch := avro.MustParse(schemaText)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics("sales.enriched-orders.v1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := map[string]string{}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("results: got %v, want %v", got, want)
		}
		for _, rec := range fs.Records() {
			var e sEnriched
			if err := avro.Unmarshal(sch, rec.Value[5:], &e); err != nil {
				s.t.Fatalf("decode %s@%d: %v", rec.Topic, rec.Offset, err)
			}
			email := "-"
			if e.CustomerEmail != nil {
				email = *e.CustomerEmail
			}
			got[string(rec.Key)] = fmt.Sprintf("%d:%s:%d", e.CustomerID, email, e.Quantity)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
}

// TestStatefulJoinRestoresState runs the join product, stops it, and
// runs it again on an empty data directory: the customers it needs come
// back from the changelog topic, and a back-dated customer change
// corrects an order enriched before the restart.
func TestStatefulJoinRestoresState(t *testing.T) {
	broker, reg := brokerAndRegistry(t)
	var err error
	s := &stateStack{t: t, brokers: broker.ListenAddrs(), registry: reg.URL()}
	if s.client, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.client.Close)
	err = kafka.EnsureTopics(context.Background(), s.client, map[string]int32{
		"db.inventory.customers": 2, "db.inventory.orders": 2, "sales.enriched-orders.v1": 2, "sales.enriched-orders.dlq": 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	schemaText, _ := os.ReadFile("testdata/stateful/schemas/enriched.avsc")
	// Records of one customer and their orders go to one partition number
	// in both topics, as co-partitioning requires.
	onPartition := func(r *kgo.Record, p int32) *kgo.Record { r.Partition = p; return r }
	s.client.Close()
	if s.client, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	const t0 = 1700000000000
	s.produce(
		onPartition(debezium("customers", "c", 100, t0, nil, sCustomer{1001, "sally@old.example"}), 0),
		onPartition(debezium("customers", "c", 101, t0+1, nil, sCustomer{1002, "george@example.com"}), 1),
		onPartition(debezium("orders", "c", 102, t0+10_000, nil, sOrder{10001, 1001, 1}), 0),
		onPartition(debezium("orders", "c", 103, t0+11_000, nil, sOrder{10002, 1002, 2}), 1),
	)
	_, stop := s.start(t.TempDir())
	s.results(string(schemaText), map[string]string{"10001": "1001:sally@old.example:1", "10002": "1002:george@example.com:2"})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A new replica with nothing on disk: state comes from the changelog topic.
	r, stop := s.start(t.TempDir())
	s.produce(
		onPartition(debezium("orders", "c", 104, t0+20_000, nil, sOrder{10003, 1002, 3}), 1),
		// Sally's new address was valid since t0+5s (before order 10001): back-dated.
		onPartition(debezium("customers", "u", 105, t0+5_000, sCustomer{1001, "sally@old.example"}, sCustomer{1001, "sally@new.example"}), 0),
		// A poison order: its handler fails after writing state.
		onPartition(debezium("orders", "c", 106, t0+21_000, nil, sOrder{10004, 1002, -1}), 1),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for r.Stats().DeadLetters.Load() < 1 {
		select { // the poison's batch committed before George's change comes
		case <-ctx.Done():
			t.Fatal("the poison order was not dead-lettered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.produce(
		// George's change back-dated before all his orders: it corrects each
		// order state holds, so a state write of 10004 left behind would show.
		onPartition(debezium("customers", "u", 107, t0+2, sCustomer{1002, "george@example.com"}, sCustomer{1002, "george@new.example"}), 1),
	)
	s.results(string(schemaText), map[string]string{
		"10001": "1001:sally@new.example:1", // corrected
		"10002": "1002:george@new.example:2",
		"10003": "1002:george@new.example:3", // enriched from restored state, then corrected
	})
	if n := r.Stats().DeadLetters.Load(); n != 1 {
		t.Fatalf("%d dead letters, want the poison order's 1", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStatefulRefusesUnequalPartitions(t *testing.T) {
	broker, reg := brokerAndRegistry(t)
	var err error
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, map[string]int32{"db.inventory.customers": 1, "db.inventory.orders": 3}); err != nil {
		t.Fatal(err)
	}
	_, err = runtime.Start(context.Background(), statefulProduct(t), runtime.SeedBrokers(broker.ListenAddrs()...),
		runtime.SchemaRegistry(reg.URL()), runtime.DataDir(t.TempDir()))
	if !errors.Is(err, runtime.ErrNotCoPartitioned) || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("Start = %v, want ErrNotCoPartitioned", err)
	}
	t.Log(err)
}
