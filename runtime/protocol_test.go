package runtime_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/runtime"
)

// Every branch of the batch protocol (see the package doc), forced on
// purpose, each run held to the ledger: the log equals the output, each
// event is published or dead-lettered once, and the counters hold only
// what committed.

// deliveries are the two ways a product can keep its logs: mirrored to the
// changelog topic (the default), and on its disk alone under the commit
// marker rule.
var deliveries = []struct {
	name string
	opts []runtime.Option
}{
	{"changelog topic", nil},
	{"local log only", []runtime.Option{runtime.LocalLogOnly()}},
}

// feed writes n generated events and two malformed ones to the input.
func (s *stack) feed(from, n int) (published, dead []*kgo.Record) {
	s.t.Helper()
	in := s.product.Manifest.InputPorts[0].Topic
	published = s.produce(genEvents(in, from, n))
	dead = s.produce([]*kgo.Record{malformed(in, from+n), malformed(in, from+n+1)})
	return published, dead
}

// checkCounted holds the input counters of the runs to what went in: each
// record consumed and counted once.
func checkCounted(t *testing.T, runs []*runtime.Runner, in int) {
	t.Helper()
	var events int64
	var metric float64
	for _, r := range runs {
		events += r.Stats().EventsIn.Load()
		metric += metricSum(t, r.Metrics(), "meshlet_input_records_total")
	}
	if events != int64(in) {
		t.Errorf("Stats.EventsIn = %d, want the %d records fed", events, in)
	}
	if metric != float64(in) {
		t.Errorf("meshlet_input_records_total = %v, want %d", metric, in)
	}
}

// A produce the broker refuses aborts the batch: its entries are taken
// back from the log, nothing of it is counted, and the batch consumed
// again commits. The aborted batch reaches one partition only; the logs of
// the others, committed earlier, stay as they are.
func TestAbortedBatchIsTakenBack(t *testing.T) {
	for _, d := range deliveries {
		t.Run(d.name, func(t *testing.T) {
			s := startStack(t)
			published, dead := s.feed(1, 60)
			r, stop := s.runWith(s.dataDir, d.opts...)
			s.waitEvents(int64(len(published) + len(dead)))
			refused := s.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: s.product.Manifest.OutputPorts[0].Topic,
				Err: kerr.InvalidRecord, Count: 1})
			more := s.produceTo(0, genEvents(s.product.Manifest.InputPorts[0].Topic, 100, 20))
			s.waitEvents(int64(len(published) + len(dead) + len(more)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if refused.Hits() == 0 || r.Stats().Aborted.Load() == 0 {
				t.Fatalf("the refused produce (hit %d times) aborted %d batches; the test forced nothing", refused.Hits(), r.Stats().Aborted.Load())
			}
			s.ledger([]*runtime.Runner{r}, s.dataDir, append(published, more...), dead).check(t)
			checkCounted(t, []*runtime.Runner{r}, len(published)+len(dead)+len(more))
		})
	}
}

// At least once, an aborted batch is consumed again too: nothing is lost,
// and the log holds each event once, though the output may hold an event
// twice (a record the brokers took before the batch failed).
func TestAbortedBatchIsConsumedAgainAtLeastOnce(t *testing.T) {
	s := startStack(t)
	published, dead := s.feed(1, 60)
	r, stop := s.runWith(s.dataDir, runtime.WithDelivery(runtime.AtLeastOnce))
	s.waitEvents(int64(len(published) + len(dead)))
	refused := s.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: s.product.Manifest.OutputPorts[0].Topic,
		Err: kerr.InvalidRecord, Count: 1})
	more := s.produceTo(0, genEvents(s.product.Manifest.InputPorts[0].Topic, 100, 20))
	s.waitEvents(int64(len(published) + len(dead) + len(more)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if refused.Hits() == 0 || r.Stats().Aborted.Load() == 0 {
		t.Fatalf("the refused produce (hit %d times) aborted %d batches; the test forced nothing", refused.Hits(), r.Stats().Aborted.Load())
	}
	all := append(published, more...)
	if tl := s.ledger([]*runtime.Runner{r}, s.dataDir, all, dead); tl.lost > 0 {
		t.Errorf("%d events lost", tl.lost)
	}
	keys := map[string]int{}
	for _, recs := range localLogs(t, s.dataDir) {
		for _, raw := range recs {
			var e auditlog.Entry
			if err := auditlog.ParseRecord(raw, &e); err != nil {
				t.Fatal(err)
			}
			keys[string(e.Key)]++
		}
	}
	for _, in := range all {
		key := strings.TrimSuffix(strings.TrimPrefix(string(in.Key), `{"id":`), `}`)
		if keys[key] != 1 {
			t.Errorf("the log holds event %s %d times, want once", key, keys[key])
		}
	}
	checkCounted(t, []*runtime.Runner{r}, len(published)+len(dead)+len(more))
}

// produceTo writes records to one partition of their topic.
func (s *stack) produceTo(partition int32, recs []*kgo.Record) []*kgo.Record {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Partition = partition
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	return recs
}

// lostEnd loses the answer of the next committed End: the commit went
// through, the product hears an error, as when the connection drops after
// the broker wrote the markers.
type lostEnd struct {
	kafka.Session
	lose atomic.Int32
}

func (s *lostEnd) End(ctx context.Context, commit bool) (bool, error) {
	ok, err := s.Session.End(ctx, commit)
	if err == nil && ok && s.lose.Add(-1) >= 0 {
		return false, errors.New("connection lost after EndTxn (test)")
	}
	return ok, err
}

// An End that fails leaves the outcome unknown. Whether the transaction
// committed (the answer was lost) or not (the broker refused the EndTxn),
// the product asks the group, makes the logs agree and goes on from what
// committed: nothing lost, nothing doubled, the committed batch counted
// once and the other not at all.
func TestFailedEndIsSettled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed bool
	}{
		{"committed, answer lost", true},
		{"not committed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStack(t)
			published, dead := s.feed(1, 60)
			var lost *lostEnd
			var refused *kfake.FaultHandle
			wrap := func(r *runtime.Runner) {}
			if tc.committed {
				wrap = func(r *runtime.Runner) {
					runtime.WrapSession(r, func(sess kafka.Session) kafka.Session {
						lost = &lostEnd{Session: sess}
						lost.lose.Store(1)
						return lost
					})
				}
			} else {
				refused = s.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, Count: 1,
					When: func(req kmsg.Request) bool { return req.(*kmsg.EndTxnRequest).Commit }})
			}
			r, stop := s.runHooked(s.dataDir, wrap, runtime.MaxBatch(25))
			s.waitEvents(int64(len(published) + len(dead)))
			// More input after the settled batch: the product goes on.
			more, moreDead := s.feed(100, 20)
			s.waitEvents(int64(len(published) + len(dead) + len(more) + len(moreDead)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.committed && lost.lose.Load() >= 0:
				t.Fatal("no End answer was lost; the test forced nothing")
			case !tc.committed && (refused.Hits() == 0 || r.Stats().Aborted.Load() == 0):
				t.Fatalf("the refused EndTxn (hit %d times) aborted %d batches; the test forced nothing", refused.Hits(), r.Stats().Aborted.Load())
			case tc.committed && r.Stats().Aborted.Load() != 0:
				t.Errorf("a batch that committed was counted aborted (%d)", r.Stats().Aborted.Load())
			}
			s.ledger([]*runtime.Runner{r}, s.dataDir, append(published, more...), append(dead, moreDead...)).check(t)
			checkCounted(t, []*runtime.Runner{r}, len(published)+len(dead)+len(more)+len(moreDead))
		})
	}
}

// A restart finds entries in the log past what the group committed (a
// batch that appended and died before its commit): they are taken back,
// all of them, and the events they came from are processed again.
func TestRestartTakesBackUncommittedEntries(t *testing.T) {
	for _, d := range deliveries {
		t.Run(d.name, func(t *testing.T) {
			s := startStack(t)
			published, dead := s.feed(1, 40)
			first, stop := s.runWith(s.dataDir, d.opts...)
			s.waitEvents(int64(len(published) + len(dead)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			// The next input, appended to the logs as a batch would before
			// its transaction ends, and never committed.
			more, moreDead := s.feed(100, 30)
			uncommitted := map[int32]int{}
			for _, in := range more {
				uncommitted[in.Partition]++
			}
			for part, n := range uncommitted {
				dir := filepath.Join(s.dataDir, "changelog", s.product.Manifest.InputPorts[0].Topic+"-"+itoa(part))
				appendUncommitted(t, dir, part, n)
			}

			r, stop := s.runWith(s.dataDir, d.opts...)
			s.waitEvents(int64(len(more) + len(moreDead)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			runs := []*runtime.Runner{first, r}
			s.ledger(runs, s.dataDir, append(published, more...), append(dead, moreDead...)).check(t)
			checkCounted(t, runs, len(published)+len(dead)+len(more)+len(moreDead))
		})
	}
}

// appendUncommitted appends n entries to the log in dir that no
// transaction committed: copies of its last entry, as if of the next
// input records.
func appendUncommitted(t *testing.T, dir string, part int32, n int) {
	t.Helper()
	l, err := auditlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seq, sys, _ := l.Tail()
	var last auditlog.Entry
	if err := l.Scan(seq, func(e *auditlog.Entry) error { last = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	var entries []auditlog.Entry
	for i := range n {
		e := last
		e.Seq, e.SystemTime = seq+uint64(i)+1, sys+int64(i)+1
		e.Key = []byte("uncommitted-" + itoa(int32(i)))
		e.Prov.Partition, e.Prov.Offset = part, last.Prov.Offset+int64(i)+1
		entries = append(entries, e)
	}
	if err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// Debezium re-sends events after a connector restart. The re-sent events,
// across a restart of the product too, are recognised and dropped: each
// event is published once, and counted as a duplicate, not a record.
func TestDebeziumResendIsPublishedOnce(t *testing.T) {
	s := startStack(t)
	published, dead := s.feed(1, 50)
	first, stop := s.runWith(s.dataDir)
	s.waitEvents(int64(len(published) + len(dead)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The connector restarted from an older flushed offset: the last 30
	// events again, with their source positions.
	resent := s.produce(genEvents(s.product.Manifest.InputPorts[0].Topic, 21, 30))
	r, stop := s.runWith(s.dataDir)
	s.waitEvents(int64(len(resent)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.Stats().Duplicates.Load(); got != int64(len(resent)) || r.Stats().Records.Load() != 0 {
		t.Errorf("re-sent %d events: %d duplicates, %d records; want %d and 0", len(resent), got, r.Stats().Records.Load(), len(resent))
	}
	if got := metricSum(t, r.Metrics(), "meshlet_input_duplicates_total"); got != float64(len(resent)) {
		t.Errorf("meshlet_input_duplicates_total = %v, want %d", got, len(resent))
	}
	runs := []*runtime.Runner{first, r}
	s.ledger(runs, s.dataDir, published, dead).check(t)
	checkCounted(t, runs, len(published)+len(dead)+len(resent))
}
