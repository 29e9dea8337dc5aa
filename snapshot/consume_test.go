package snapshot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

// topicRecord is where one output record landed.
type topicRecord struct {
	partition int32
	offset    int64
}

// TestConsumerContinuesFromSnapshot: a product's output topic on kfake
// (over real TCP) and its registry (the embedded one, over real HTTP). A
// consumer reads the end offsets, more records are committed, the
// snapshot is taken with those offsets, more records follow. A new
// consumer loads the snapshot and tails from the manifest's offsets: it
// skips exactly the records the snapshot holds, applies exactly the
// others, each once, and ends with the state of a consumer that read the
// whole topic from the start.
func TestConsumerContinuesFromSnapshot(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, snapshottest.OrdersTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	rc, err := schemas.NewRegistry([]string{reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	row, err := schemas.Parse("order.avsc", snapshottest.OrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	id, err := rc.Register(ctx, snapshottest.OrdersTopic+"-value", row, schemas.CompatBackward)
	if err != nil {
		t.Fatal(err)
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(snapshottest.OrdersTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var pending []*kgo.Record
	spec := snapshottest.OrdersSpec{Seed: 8, Keys: 40, Entries: 400, Logs: 2, SchemaID: id,
		OnAppend: func(_ string, e *auditlog.Entry, wire []byte) {
			pending = append(pending, &kgo.Record{Key: append([]byte(nil), e.Key...), Value: wire})
		}}
	produced := map[topicRecord]int64{} // -> the record's _system_from
	produce := func() {
		t.Helper()
		res := producer.ProduceSync(ctx, pending...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			c, err := snapshot.DecodeRecord(ctx, rc, r.Record.Key, r.Record.Value)
			if err != nil {
				t.Fatal(err)
			}
			produced[topicRecord{r.Record.Partition, r.Record.Offset}] = c.SystemFrom
		}
		pending = nil
	}
	adm := kadm.NewClient(producer)
	endOffsets := func() map[int32]int64 {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, snapshottest.OrdersTopic)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out
	}

	o := snapshottest.NewOrders(t, spec)
	produce()
	offs, err := snapshot.CommittedOffsets(ctx, adm, snapshottest.OrdersTopic) // before T is fixed: may lag, never lead
	if err != nil {
		t.Fatal(err)
	}
	o.Next(t, 150)
	produce()
	o.Checkpoint(t)
	f := newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols)
	dir := filepath.Join(t.TempDir(), "snap")
	m, err := snapshot.Take(ctx, f.source(), f.product, dir, snapshot.Offsets(offs...))
	if err != nil {
		t.Fatal(err)
	}
	o.Next(t, 300)
	produce()
	end := endOffsets()

	// Which records a snapshot at T holds, from the producer's side.
	var inSnapshot, after int
	for _, sys := range produced {
		if sys <= m.System {
			inSnapshot++
		} else {
			after++
		}
	}
	if after != 300 || inSnapshot != 550 {
		t.Fatalf("records: %d recorded by T, %d after; want 550 and 300", inSnapshot, after)
	}

	// The new consumer.
	snap, err := snapshot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	boot := snapshot.NewState()
	if err := boot.Load(snap); err != nil {
		t.Fatal(err)
	}
	applied := map[topicRecord]int{}
	skipped := 0
	consume(t, cluster, snap.ConsumeOffsets(), end, func(r *kgo.Record) {
		c, err := snapshot.DecodeRecord(ctx, rc, r.Key, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Covers(c.SystemFrom) {
			skipped++
			return
		}
		boot.Apply(c)
		applied[topicRecord{r.Partition, r.Offset}]++
	})
	if skipped != 150 {
		t.Fatalf("skipped %d records, want the 150 committed between reading the offsets and T", skipped)
	}
	for tr, sys := range produced {
		want := 0
		if sys > m.System {
			want = 1
		}
		if applied[tr] != want {
			t.Fatalf("record p%d@%d (system time %d, T %d) applied %d times, want %d", tr.partition, tr.offset, sys, m.System, applied[tr], want)
		}
	}

	// The consumer that read everything.
	full := snapshot.NewState()
	var order []snapshot.Change
	from := map[string]map[int32]kgo.Offset{snapshottest.OrdersTopic: {}}
	for p := range end {
		from[snapshottest.OrdersTopic][p] = kgo.NewOffset().AtStart()
	}
	consume(t, cluster, from, end, func(r *kgo.Record) {
		c, err := snapshot.DecodeRecord(ctx, rc, r.Key, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		full.Apply(c)
		order = append(order, c)
	})
	if got, want := stateText(boot), stateText(full); got != want {
		t.Fatalf("state from the snapshot and the tail differs from a full replay:\n got %s\nwant %s", got, want)
	}
	if len(boot.Keys()) < 10 {
		t.Fatalf("only %d keys in the state: the comparison proves little", len(boot.Keys()))
	}
	// The comparison sees one missing record (the last: nothing overrides it).
	short := snapshot.NewState()
	for i, c := range order {
		if i != len(order)-1 {
			short.Apply(c)
		}
	}
	if stateText(short) == stateText(full) {
		t.Fatal("a replay missing a record compares equal: the state comparison is blind")
	}
	// And the state is the store's belief at every valid time asked.
	if err := f.st.Refresh(); err != nil {
		t.Fatal(err)
	}
	for _, k := range boot.Keys() {
		for _, p := range boot.Timeline(k) {
			fact, ok, err := f.st.AsOf(auditlog.Latest).ValidAt(p.ValidFrom).Get([]byte(k))
			if err != nil || !ok {
				t.Fatalf("key %s valid at %d: the state holds a piece, the store %v %v", k, p.ValidFrom, ok, err)
			}
			fields, err := f.dec.Fields(ctx, fact.Fact.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := normalize(fields), normalize(p.Fields); a != b {
				t.Fatalf("key %s valid at %d: state %s, store %s", k, p.ValidFrom, b, a)
			}
		}
	}
}

// consume reads from the offsets given up to end, calling fn per record.
func consume(t *testing.T, cluster *kfake.Cluster, from map[string]map[int32]kgo.Offset, end map[int32]int64, fn func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumePartitions(from), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	next := map[int32]int64{}
	for p, o := range from[snapshottest.OrdersTopic] {
		next[p] = o.EpochOffset().Offset
		if next[p] < 0 {
			next[p] = 0
		}
	}
	done := func() bool {
		for p, e := range end {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("consumed up to %v, want %v", next, end)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				return
			}
			fn(r)
			next[r.Partition] = r.Offset + 1
		})
	}
}

// stateText is a State in a canonical text, field values normalized.
func stateText(s *snapshot.State) string {
	out := ""
	for _, k := range s.Keys() {
		out += k + ":"
		for _, p := range s.Timeline(k) {
			out += fmt.Sprintf(" [%d,%d) %s", p.ValidFrom, p.ValidTo, normalize(p.Fields))
		}
		out += "\n"
	}
	return out
}

// normalize writes fields as JSON with one form per value, whichever
// reader gave them (the Avro decoder or the Parquet file).
func normalize(fields map[string]any) string {
	m := map[string]any{}
	for k, v := range fields {
		switch x := v.(type) {
		case *big.Rat:
			v = x.RatString()
		case time.Time:
			v = x.UnixMicro()
		case int:
			v = int64(x)
		case []any:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b, _ := json.Marshal(m)
	return string(b)
}
