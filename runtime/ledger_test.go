package runtime_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
)

// The ledger: what a run left in Kafka and on disk, held against what went
// in. Every event is published once or dead-lettered once, the change log
// equals the output record for record, and the counters (Stats and the
// Prometheus series) count exactly what committed.

// genEvents are n Debezium inserts of products from..from+n-1, each its own
// entity (key = id) with its own source position, so an output record
// names the event it came from.
func genEvents(topic string, from, n int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, n)
	for id := from; id < from+n; id++ {
		v := fmt.Sprintf(`{"before":null,"after":{"id":%d,"name":"p%d","description":"event %d","weight":1.5},`+
			`"source":{"connector":"postgresql","schema":"inventory","table":"products","ts_ms":%d,"lsn":%d,"txId":%d},"op":"c"}`,
			id, id, id, 1700000000000+int64(id), 50_000_000+id, 70_000+id)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(`{"id":` + strconv.Itoa(id) + `}`), Value: []byte(v)})
	}
	return recs
}

// malformed is an input record no decoder reads: a dead letter.
func malformed(topic string, id int) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(`{"id":` + strconv.Itoa(id) + `}`), Value: []byte(`{"before":null,"after":{"id":` + strconv.Itoa(id))}
}

// tally is one run's account; the fault matrix prints it.
type tally struct {
	in, out, dlq, lost, doubled int
	problems                    []string // how the run broke the rules, if it did
}

func (t *tally) problem(format string, args ...any) {
	t.problems = append(t.problems, fmt.Sprintf(format, args...))
}

// readTopic reads every committed record of topic's partitions.
func (s *stack) readTopic(topic string, partitions int32) []*kgo.Record {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for p := range partitions {
		_, err := kafka.ReadPartition(ctx, []kgo.Opt{kgo.SeedBrokers(s.brokers...), kgo.FetchMaxBytes(64 << 20)}, topic, p, 0,
			func(r *kgo.Record) error { out = append(out, r); return nil })
		if err != nil {
			s.t.Fatalf("read %s/%d: %v", topic, p, err)
		}
	}
	return out
}

// ledger accounts for the stopped runs of the product on one data
// directory. published are the input records that must come out as one
// record each on the output topic (keyed by the event's id), dead the ones
// that must be dead letters; the runs' counters together must count
// exactly what the topics hold.
func (s *stack) ledger(runs []*runtime.Runner, dataDir string, published, dead []*kgo.Record) tally {
	s.t.Helper()
	m := s.product.Manifest
	out := s.readTopic(m.OutputPorts[0].Topic, 3)
	dlq := s.readTopic(m.DeadLetter.Topic, 1)
	t := tally{in: len(published) + len(dead), out: len(out), dlq: len(dlq)}

	// Each published event once, by its entity key.
	seen := map[string]int{}
	for _, rec := range out {
		seen[string(rec.Key)]++
	}
	for _, in := range published {
		key := strings.TrimSuffix(strings.TrimPrefix(string(in.Key), `{"id":`), `}`)
		switch n := seen[key]; {
		case n == 0:
			t.lost++
		case n > 1:
			t.doubled += n - 1
		}
		delete(seen, key)
	}
	for key, n := range seen {
		t.problem("output record for key %s (%d times) that no published event explains", key, n)
	}
	// Each dead letter once, by its origin.
	origins := map[string]int{}
	for _, rec := range dlq {
		origins[kafka.Header(rec, ports.HeaderOriginPartition)+"@"+kafka.Header(rec, ports.HeaderOriginOffset)]++
	}
	for _, in := range dead {
		at := strconv.Itoa(int(in.Partition)) + "@" + strconv.FormatInt(in.Offset, 10)
		switch n := origins[at]; {
		case n == 0:
			t.lost++
		case n > 1:
			t.doubled += n - 1
		}
		delete(origins, at)
	}
	for at, n := range origins {
		t.problem("dead letter from %s (%d times) that no bad event explains", at, n)
	}

	// The change log equals the output, record for record.
	published2 := map[string]int{}
	for _, rec := range out {
		published2[string(rec.Key)+"\x00"+string(rec.Value)]++
	}
	entries := 0
	for name, recs := range localLogs(s.t, dataDir) {
		for i, raw := range recs {
			var e auditlog.Entry
			if err := auditlog.ParseRecord(raw, &e); err != nil {
				s.t.Fatalf("log %s entry %d: %v", name, i+1, err)
			}
			entries++
			k := string(e.Key) + "\x00" + string(e.Payload)
			if published2[k] == 0 {
				t.problem("log %s seq %d (key %s, input offset %d) is not on the output topic", name, e.Seq, e.Key, e.Prov.Offset)
				continue
			}
			published2[k]--
		}
	}
	for k, n := range published2 {
		if n > 0 {
			key, _, _ := strings.Cut(k, "\x00")
			t.problem("output record for key %s is in no change log (%d)", key, n)
		}
	}
	if entries != len(out) {
		t.problem("change logs hold %d entries, the output topic %d records", entries, len(out))
	}

	// The counters hold only what committed.
	var records, deadLetters int64
	var recordsMetric, deadMetric float64
	for _, r := range runs {
		records += r.Stats().Records.Load()
		deadLetters += r.Stats().DeadLetters.Load()
		recordsMetric += metricSum(s.t, r.Metrics(), "meshlet_output_records_total")
		deadMetric += metricSum(s.t, r.Metrics(), "meshlet_deadletter_records_total")
	}
	if records != int64(len(out)) {
		t.problem("Stats.Records = %d, the output topic holds %d", records, len(out))
	}
	if deadLetters != int64(len(dlq)) {
		t.problem("Stats.DeadLetters = %d, the dead-letter topic holds %d", deadLetters, len(dlq))
	}
	if recordsMetric != float64(len(out)) {
		t.problem("meshlet_output_records_total = %v, the output topic holds %d", recordsMetric, len(out))
	}
	if deadMetric != float64(len(dlq)) {
		t.problem("meshlet_deadletter_records_total = %v, the dead-letter topic holds %d", deadMetric, len(dlq))
	}
	return t
}

// metricSum adds up every series of a counter; a vector with no series
// yet is 0.
func metricSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// check fails the test for what the tally found wrong.
func (t tally) check(tb testing.TB) {
	tb.Helper()
	if t.lost > 0 || t.doubled > 0 {
		tb.Errorf("%d events lost, %d doubled", t.lost, t.doubled)
	}
	for _, p := range t.problems {
		tb.Error(p)
	}
}
