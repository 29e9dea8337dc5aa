package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/examples/orders/orders"
	"github.com/meshlet/meshlet/examples/orders/reference"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// The orders product under the crash rule: its state (the customers table,
// the join's and the aggregate's tables) commits through the changelog
// topic with the outputs, so after any number of kill -9s the enriched
// orders and the totals are exactly what a naive fold of the input says,
// the change log is the output record for record, and no result is
// published twice.

// ordersWorld is a crashWorld running the orders binary.
type ordersWorld struct {
	*crashWorld
	recs []*kgo.Record     // the input, in the order it reaches Kafka
	in   []reference.Input // the same, for the reference
	// poison are the input records the contract refuses, by
	// topic/partition/offset once produced.
	poison map[string]bool
	outs   map[string]string // output topic -> port
}

func newOrdersWorld(t *testing.T, events int, seed uint64) *ordersWorld {
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
	p, err := orders.New()
	if err != nil {
		t.Fatal(err)
	}
	m := p.Manifest
	w := &ordersWorld{crashWorld: &crashWorld{
		t: t, brokers: strings.Join(broker.ListenAddrs(), ","), registry: reg.URL(), dataDir: t.TempDir(),
		dlq: m.DeadLetter.Topic, group: m.ID, bin: mustOrdersBin(t),
	}, poison: map[string]bool{}, outs: map[string]string{}}
	w.client, err = kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	topics := map[string]int32{w.dlq: 1}
	for _, in := range m.InputPorts {
		topics[in.Topic] = 3
	}
	for _, out := range m.OutputPorts {
		topics[out.Topic] = 3
		w.outs[out.Topic] = out.Name
	}
	if err := kafka.EnsureTopics(context.Background(), w.client, topics); err != nil {
		t.Fatal(err)
	}
	if w.recs, w.in, err = reference.Workload(reference.Spec{Events: events, Customers: 60, Lag: 50, Seed: seed, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	w.total = int64(len(w.recs))
	return w
}

// committed counts the input records the group committed, over both
// input topics.
func (w *ordersWorld) committed() int64 {
	offs, err := kadm.NewClient(w.client).FetchOffsets(context.Background(), w.group)
	if err != nil {
		return 0
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 && (o.Topic == reference.Topics[orders.CustomersPort] || o.Topic == reference.Topics[orders.OrdersPort]) {
			n += o.At
		}
	})
	return n
}

func (w *ordersWorld) waitCommitted(timeout time.Duration, alive ...*child) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.committed() < w.total {
		for _, c := range alive {
			select {
			case <-c.done:
				w.t.Fatalf("child exited before finishing: %v\n%s", c.waitEr, tail(c.out.String(), 60))
			default:
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, c := range alive {
				fmt.Fprintf(&logs, "--- child %d:\n%s\n", i, tail(c.out.String(), 60))
			}
			w.t.Fatalf("committed %d of %d input records after %s\n%s", w.committed(), w.total, timeout, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notePoison records where the refused input records landed; it runs
// once they are produced (their offsets are set).
func (w *ordersWorld) notePoison() {
	for _, r := range w.recs {
		var m struct {
			After *orders.Order `json:"after"`
		}
		if r.Topic == reference.Topics[orders.OrdersPort] && json.Unmarshal(r.Value, &m) == nil && m.After != nil && m.After.Quantity < 1 {
			w.poison[fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)] = true
		}
	}
}

// check verifies the product's output against the reference, the change
// logs against the output, and the dead letters against the refused input.
func (w *ordersWorld) check(dataDir string) {
	t := w.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dec, err := reference.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Split(w.brokers, ",")
	byPort := map[string][]reference.Published{}
	published := map[string]int{} // port, key and value of each output record
	for topic, port := range w.outs {
		recs, err := reference.ReadAll(ctx, brokers, topic)
		if err != nil {
			t.Fatal(err)
		}
		last := map[string]string{} // key and valid time -> the value published last there
		for _, r := range recs {
			p, err := dec.Decode(topic, r.Key, r.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", topic, r.Partition, r.Offset, err)
			}
			byPort[port] = append(byPort[port], p)
			at := p.Key + "@" + strconv.FormatInt(p.ValidFrom, 10)
			v := fmt.Sprint(p.Deleted, p.Value)
			if prev, ok := last[at]; ok && prev == v {
				t.Errorf("port %s published %s at valid time %s twice in a row (%s/%d@%d): a result doubled", port, p.Key, time.UnixMicro(p.ValidFrom).UTC(), topic, r.Partition, r.Offset)
			}
			last[at] = v
			published[port+"\x00"+string(r.Key)+"\x00"+string(r.Value)]++
		}
	}
	wantE, wantT, err := reference.Expect(w.in)
	if err != nil {
		t.Fatal(err)
	}
	if d := reference.Diff("enriched order", reference.Fold(byPort[orders.EnrichedPort]), wantE) +
		reference.Diff("totals of customer", reference.Fold(byPort[orders.TotalsPort]), wantT); d != "" {
		t.Fatalf("the output differs from the reference fold of the input:\n%s", d)
	}

	// The change log is the output, record for record: the first port's
	// entries carry no port, the second's name it.
	reports, err := auditlog.VerifyTree(filepath.Join(dataDir, "changelog"))
	if err != nil {
		t.Fatalf("change log: %v", err)
	}
	entries, outputs := 0, 0
	for _, n := range published {
		outputs += n
	}
	for _, rep := range reports {
		l, err := auditlog.Open(rep.Dir)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Scan(1, func(e *auditlog.Entry) error {
			entries++
			port := e.Port
			if port == "" {
				port = orders.EnrichedPort
			}
			k := port + "\x00" + string(e.Key) + "\x00" + string(e.Payload)
			if published[k] == 0 {
				return fmt.Errorf("%s seq %d (port %s, key %s, input offset %d) is not in the committed output", rep.Dir, e.Seq, port, e.Key, e.Prov.Offset)
			}
			published[k]--
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if entries != outputs {
		t.Errorf("change logs hold %d entries, the output topics %d records: they must match record for record", entries, outputs)
	}
	states, _ := filepath.Glob(filepath.Join(dataDir, "state", "*", "log"))
	for _, dir := range states {
		if _, err := auditlog.Verify(dir); err != nil {
			t.Errorf("state log: %v", err)
		}
	}

	dead, err := reference.ReadAll(ctx, brokers, w.dlq)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, d := range dead {
		origin := fmt.Sprintf("%s/%s@%s", kafka.Header(d, ports.HeaderOriginTopic), kafka.Header(d, ports.HeaderOriginPartition), kafka.Header(d, ports.HeaderOriginOffset))
		if !w.poison[origin] || kafka.Header(d, ports.HeaderErrorClass) != "contract" {
			t.Errorf("unexpected dead letter from %s: %s %s", origin, kafka.Header(d, ports.HeaderErrorClass), kafka.Header(d, ports.HeaderErrorMessage))
		}
		seen[origin]++
	}
	for origin := range w.poison {
		if seen[origin] != 1 {
			t.Errorf("refused order %s is in the dead-letter topic %d times, want once", origin, seen[origin])
		}
	}
	t.Logf("%d input records: %d enriched order records, %d totals records, %d change-log entries in %d logs, %d dead letters",
		w.total, len(byPort[orders.EnrichedPort]), len(byPort[orders.TotalsPort]), entries, len(reports), len(dead))
}

// TestCrashOrders kills the orders product over and over while a live
// source feeds it, then checks its output against the reference.
func TestCrashOrders(t *testing.T) {
	events := envInt(t, "MESHLET_CRASH_ORDERS_EVENTS", 2000)
	kills := envInt(t, "MESHLET_CRASH_ORDERS_KILLS", len(crashPoints))
	w := newOrdersWorld(t, events, uint64(events))
	fed := feedOver(w.crashWorld, w.recs, time.Duration(kills)*3*time.Second)
	rng := rand.New(rand.NewPCG(uint64(kills), 11))
	died := map[string]int{}
	for k := range kills {
		fp := crashPoints[k%len(crashPoints)]
		spec := ""
		if fp != "" {
			spec = fp + "=0.5" // fires on about every other pass
		}
		c := w.start("0", spec)
		c.waitReady(t)
		name := fp
		if fp == "" {
			name = "timer"
			select {
			case <-c.done:
			case <-time.After(time.Duration(200+rng.IntN(1300)) * time.Millisecond):
				c.kill()
			}
		} else {
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				name += " (did not fire; killed by timer)"
				c.kill()
			}
		}
		w.killedOrFine(c)
		died[name]++
		t.Logf("kill %d (%s): %d of %d input records committed", k+1, name, w.committed(), w.total)
	}
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.notePoison()
	c := w.start("0", "")
	w.waitCommitted(3*time.Minute, c)
	w.stopGracefully(c)
	t.Logf("%d kills %v; final run: %s", kills, died, strings.TrimSpace(lastLine(c.out.String())))
	w.check(w.dataDir)
}

// TestRebalanceOrders runs two replicas of the orders product, each with
// a disk of its own, and kills one mid-stream: the survivor takes its
// partitions over, restores their state from the changelog topic, and
// the output still equals the reference.
func TestRebalanceOrders(t *testing.T) {
	events := envInt(t, "MESHLET_REBALANCE_ORDERS_EVENTS", 3000)
	w := newOrdersWorld(t, events, 99)
	fed := feedOver(w.crashWorld, w.recs, 6*time.Second)
	disks := []string{filepath.Join(w.dataDir, "replica-0"), filepath.Join(w.dataDir, "replica-1")}
	start := func(i int) *child {
		w.crashWorld.dataDir = disks[i]
		c := w.start(strconv.Itoa(i), "")
		c.waitReady(t)
		return c
	}
	a, b := start(0), start(1)
	deadline := time.Now().Add(time.Minute)
	for (w.committed() < w.total/3 || !ownsState(disks[1])) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !ownsState(disks[1]) {
		t.Fatalf("replica 1 holds no task's state after a minute; the test wants it killed while it does\n%s", tail(b.out.String(), 40))
	}
	t.Logf("killing replica 1 at %d of %d committed", w.committed(), w.total)
	b.kill()
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.notePoison()
	w.waitCommitted(3*time.Minute, a)
	w.stopGracefully(a)
	if !strings.Contains(a.out.String(), "state restored from the change log") {
		t.Errorf("the survivor never restored a task's state:\n%s", tail(a.out.String(), 60))
	}
	t.Logf("survivor: %s", strings.TrimSpace(lastLine(a.out.String())))
	// Every partition is the survivor's now: its disk has all the logs.
	w.check(disks[0])
}

// ownsState says a replica's disk holds a task's state store.
func ownsState(dir string) bool {
	stores, _ := filepath.Glob(filepath.Join(dir, "state", "*", "store"))
	for _, s := range stores {
		if fi, err := os.Stat(s); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// feedOver produces recs to the input over about d, in small chunks, as a
// live source would (the orders tests kill by time, not by progress).
func feedOver(w *crashWorld, recs []*kgo.Record, d time.Duration) <-chan error {
	const tick = 20 * time.Millisecond
	chunk := max(1, len(recs)/max(1, int(d/tick)))
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for len(recs) > 0 {
			n := min(chunk, len(recs))
			if err := w.client.ProduceSync(context.Background(), recs[:n]...).FirstErr(); err != nil {
				done <- err
				return
			}
			recs = recs[n:]
			time.Sleep(tick)
		}
	}()
	return done
}
