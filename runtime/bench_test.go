package runtime_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/examples/orders/orders"
	"github.com/meshlet/meshlet/examples/orders/reference"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// syntheticEvent is a Debezium JSON update as Postgres sends it with
// schemas.enable=false, for entity id%keys.
func syntheticEvent(i, keys int) (key, value []byte) {
	id := 1000 + i%keys
	key = []byte(`{"id":` + strconv.Itoa(id) + `}`)
	value = fmt.Appendf(nil, `{"before":{"id":%d,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},`+
		`"after":{"id":%d,"name":"hammer","description":"18oz carpenter hammer","weight":%d.5},`+
		`"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":%d,"snapshot":"false",`+
		`"db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d,"xmin":null},"op":"u","ts_ms":%d,"transaction":null}`,
		id, id, i%100, 1596010889629+int64(i), 602+i, 34131104+int64(i)*64, 1596010889800+int64(i))
	return key, value
}

// benchStack is a kfake broker and registry with n events pre-loaded on a
// 3-partition input topic.
func benchStack(b *testing.B, n int) (brokers []string, registry string, p *runtime.Product) {
	b.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })
	p, err = runtime.NewProduct(os.DirFS("../examples/inventory/products"), "product.yaml", transforms.Typed(products.Handle))
	if err != nil {
		b.Fatal(err)
	}
	brokers = broker.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	m := p.Manifest
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, cl, map[string]int32{m.InputPorts[0].Topic: 3, m.OutputPorts[0].Topic: 3, m.DeadLetter.Topic: 1}); err != nil {
		b.Fatal(err)
	}
	errs := make(chan error, 1)
	for i := range n {
		k, v := syntheticEvent(i, 10_000)
		cl.Produce(ctx, &kgo.Record{Topic: m.InputPorts[0].Topic, Key: k, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return brokers, reg.URL(), p
}

// BenchmarkPipeline measures one event through the whole product on kfake:
// consume, decode, handler, change-log append (fsynced), Avro encode,
// produce and commit, with exactly-once on (the default: the change log
// also mirrored to its changelog topic in the same transaction), on with
// the log kept locally only (what the mirror costs), and off. raw-* is
// the ceiling on the same broker and records: a consume->produce pipe of
// the bytes as they are, transactional or not, no decode, no encode, no log.
// meshlet-stateful-join-aggregate is the orders example (examples/orders):
// two input ports (customers a table, orders a stream), a bitemporal
// stream-table join and a per-customer aggregate on pebble state, two
// output ports, state committed through the changelog topic; its events
// are orders placed, changed, deleted and re-sent over 1000 customers
// (reference.Workload with static customers, so the output does not
// depend on how the two topics interleave). allocs/event counts the
// whole process's allocations per input event, kfake's included, as
// allocs/op does for the other cases.
// Compare ns/op within one run: go test -bench Pipeline ./runtime
func BenchmarkPipeline(b *testing.B) {
	b.Run("meshlet-exactly-once", func(b *testing.B) { benchMeshlet(b, runtime.ExactlyOnce) })
	b.Run("meshlet-exactly-once-local-log", func(b *testing.B) { benchMeshlet(b, runtime.ExactlyOnce, runtime.LocalLogOnly()) })
	b.Run("meshlet-at-least-once", func(b *testing.B) { benchMeshlet(b, runtime.AtLeastOnce) })
	b.Run("meshlet-stateful-join-aggregate", benchStateful)
	b.Run("raw-transactional", func(b *testing.B) { benchRawPipe(b, true) })
	b.Run("raw-plain", func(b *testing.B) { benchRawPipe(b, false) })
}

func benchMeshlet(b *testing.B, d runtime.Delivery, extra ...runtime.Option) {
	brokers, registry, p := benchStack(b, b.N)
	r, err := runtime.Start(context.Background(), p, append([]runtime.Option{
		runtime.SeedBrokers(brokers...), runtime.SchemaRegistry(registry), runtime.DataDir(b.TempDir()), runtime.WithDelivery(d),
		runtime.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}, extra...)...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- r.Run(ctx) }()
	for r.Stats().EventsIn.Load() < int64(b.N) {
		select {
		case err := <-done:
			b.Fatalf("product stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := r.Stats().Records.Load(); got != int64(b.N) {
		b.Fatalf("published %d records for %d events", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(r.Stats().Batches.Load()), "events/batch")
}

// benchRawPipe moves the records with franz-go alone, in batches of the
// same size as the runtime's default.
func benchRawPipe(b *testing.B, transactional bool) {
	brokers, _, p := benchStack(b, b.N)
	m := p.Manifest
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("raw-pipe"), kgo.ConsumeTopics(m.InputPorts[0].Topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	ctx := context.Background()
	out := m.OutputPorts[0].Topic
	var (
		poll func() kgo.Fetches
		end  func() error
		prod func(*kgo.Record)
	)
	if transactional {
		sess, err := kgo.NewGroupTransactSession(append(opts, kgo.TransactionalID("raw-pipe"), kgo.RequireStableFetchOffsets())...)
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		poll = func() kgo.Fetches {
			fs := sess.PollRecords(ctx, 10_000)
			if err := sess.Begin(); err != nil {
				b.Fatal(err)
			}
			return fs
		}
		prod = func(r *kgo.Record) { sess.Produce(ctx, r, nil) }
		end = func() error {
			committed, err := sess.End(ctx, kgo.TryCommit)
			if err == nil && !committed {
				err = fmt.Errorf("not committed")
			}
			return err
		}
	} else {
		cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		poll = func() kgo.Fetches { return cl.PollRecords(ctx, 10_000) }
		prod = func(r *kgo.Record) { cl.Produce(ctx, r, nil) }
		end = func() error {
			if err := cl.Flush(ctx); err != nil {
				return err
			}
			return cl.CommitUncommittedOffsets(ctx)
		}
	}
	b.ResetTimer()
	for moved := 0; moved < b.N; {
		fetches := poll()
		if err := fetches.Err0(); err != nil {
			b.Fatal(err)
		}
		fetches.EachRecord(func(in *kgo.Record) {
			prod(&kgo.Record{Topic: out, Key: in.Key, Value: in.Value})
		})
		if err := end(); err != nil {
			b.Fatal(err)
		}
		moved += fetches.NumRecords()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func benchStateful(b *testing.B) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })
	p, err := orders.New()
	if err != nil {
		b.Fatal(err)
	}
	brokers := broker.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	topics := map[string]int32{p.Manifest.DeadLetter.Topic: 1}
	for _, in := range p.Manifest.InputPorts {
		topics[in.Topic] = 3
	}
	for _, out := range p.Manifest.OutputPorts {
		topics[out.Topic] = 3
	}
	if err := kafka.EnsureTopics(ctx, cl, topics); err != nil {
		b.Fatal(err)
	}
	recs, _, err := reference.Workload(reference.Spec{Events: b.N, Customers: 1000, Lag: 50, Seed: 1, Partitions: 3, StaticCustomers: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	r, err := runtime.Start(ctx, p, runtime.SeedBrokers(brokers...), runtime.SchemaRegistry(reg.URL()), runtime.DataDir(b.TempDir()),
		runtime.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	b.ResetTimer()
	go func() { done <- r.Run(runCtx) }()
	for r.Stats().EventsIn.Load() < int64(len(recs)) {
		select {
		case err := <-done:
			b.Fatalf("product stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	b.StopTimer()
	goruntime.ReadMemStats(&after)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if r.Stats().Records.Load() == 0 {
		b.Fatal("published nothing")
	}
	n := float64(len(recs))
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/event")
	b.ReportMetric(float64(r.Stats().Records.Load())/n, "records/event")
	b.ReportMetric(n/float64(r.Stats().Batches.Load()), "events/batch")
}
