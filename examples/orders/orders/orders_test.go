package orders_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/orders/orders"
	"github.com/meshlet/meshlet/examples/orders/reference"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

// world is a kfake broker (TCP) and the embedded registry (HTTP) with the
// product's topics, three partitions each.
type world struct {
	t        *testing.T
	brokers  []string
	registry string
	client   *kgo.Client // produces on the partitions records name
}

func newWorld(t *testing.T) *world {
	t.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w := &world{t: t, brokers: broker.ListenAddrs(), registry: reg.URL()}
	if w.client, err = kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	topics := map[string]int32{"sales.orders.dlq": 1}
	for _, tp := range reference.Topics {
		topics[tp] = 3
	}
	p, err := orders.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range p.Manifest.OutputPorts {
		topics[out.Topic] = 3
	}
	if err := kafka.EnsureTopics(context.Background(), w.client, topics); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) run() (*runtime.Runner, func()) {
	w.t.Helper()
	p, err := orders.New()
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := runtime.Start(context.Background(), p, runtime.SeedBrokers(w.brokers...), runtime.SchemaRegistry(w.registry),
		runtime.DataDir(w.t.TempDir()), runtime.MaxBatch(7), runtime.Logger(slog.New(slog.NewTextHandler(w.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Error(err)
		}
	})
	w.t.Cleanup(stop)
	return r, stop
}

func (w *world) produce(recs []*kgo.Record) {
	w.t.Helper()
	if err := w.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) waitIn(r *runtime.Runner, n int64) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for r.Stats().EventsIn.Load() < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("processed %d of %d input records", r.Stats().EventsIn.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// published reads both ports' records.
func (w *world) published() (enriched, totals []reference.Published) {
	w.t.Helper()
	dec, err := reference.NewDecoder()
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if enriched, err = dec.Published(ctx, w.brokers, "sales.enriched-orders.v1"); err != nil {
		w.t.Fatal(err)
	}
	if totals, err = dec.Published(ctx, w.brokers, "sales.customer-totals.v1"); err != nil {
		w.t.Fatal(err)
	}
	return enriched, totals
}

func (w *world) compare(in []reference.Input, enriched, totals []reference.Published) {
	w.t.Helper()
	wantE, wantT, err := reference.Expect(in)
	if err != nil {
		w.t.Fatal(err)
	}
	if d := reference.Diff("enriched order", reference.Fold(enriched), wantE) + reference.Diff("totals of customer", reference.Fold(totals), wantT); d != "" {
		w.t.Fatalf("the product's output differs from the reference:\n%s", d)
	}
	if len(wantE) == 0 || len(wantT) == 0 {
		w.t.Fatal("the reference expects nothing: the input is not what the test thinks")
	}
}

// TestRecordingMatchesReference runs the recorded CDC as dev feeds it
// (the late customers last) and checks both ports against the naive
// reference, and the late-arrival case of KIP-889: order 10006 is
// enriched with Sally's old address, then corrected when her back-dated
// change arrives.
func TestRecordingMatchesReference(t *testing.T) {
	w := newWorld(t)
	feeds, err := reference.Recording(3)
	if err != nil {
		t.Fatal(err)
	}
	r, stop := w.run()
	fed := int64(0)
	for _, f := range feeds {
		w.produce(f.Records)
		fed += int64(len(f.Records))
		w.waitIn(r, fed)
	}
	stop()
	enriched, totals := w.published()
	w.compare(reference.Inputs(feeds), enriched, totals)

	var emails []string
	for _, p := range enriched {
		if p.Key == "10006" && strings.Contains(p.Value, `"quantity":4`) {
			emails = append(emails, p.Value[strings.Index(p.Value, `"customer_email"`):strings.Index(p.Value, `,"quantity"`)])
		}
	}
	if strings.Join(emails, " then ") != `"customer_email":"sally.thomas@acme.com" then "customer_email":"sally@thomas.example"` {
		t.Errorf("order 10006's first version was published with %v; want the old address, then the back-dated correction", emails)
	}
	if n := r.Stats().DeadLetters.Load(); n != 1 {
		t.Errorf("%d dead letters, want order 10008's (quantity 0)", n)
	}
	dls, err := reference.ReadAll(context.Background(), w.brokers, "sales.orders.dlq")
	if err != nil || len(dls) != 1 || kafka.Header(dls[0], ports.HeaderErrorClass) != "contract" {
		t.Fatalf("dead letters %v, %v: want one of class contract", dls, err)
	}
}

// TestWorkloadMatchesReference feeds a larger stream as a live source
// would, a chunk at a time, with lagging customers, re-sends and refused
// orders: however the batches interleave the topics, the output folds to
// the reference.
func TestWorkloadMatchesReference(t *testing.T) {
	w := newWorld(t)
	recs, in, err := reference.Workload(reference.Spec{Events: 1500, Customers: 25, Lag: 40, Seed: 1, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	r, stop := w.run()
	for i := 0; i < len(recs); i += 25 {
		w.produce(recs[i:min(i+25, len(recs))])
		w.waitIn(r, int64(min(i+25, len(recs))))
	}
	stop()
	enriched, totals := w.published()
	w.compare(in, enriched, totals)
	corrections := 0
	seen := map[[2]string]bool{}
	for _, p := range enriched {
		k := [2]string{p.Key, time.UnixMicro(p.ValidFrom).String()}
		if seen[k] {
			corrections++
		}
		seen[k] = true
	}
	if corrections == 0 {
		t.Error("no enriched order was corrected: the lagging customers did not back-date anything")
	}
	t.Logf("%d input records, %d enriched order records (%d corrections), %d totals records, %d dead letters",
		len(recs), len(enriched), corrections, len(totals), r.Stats().DeadLetters.Load())
}
