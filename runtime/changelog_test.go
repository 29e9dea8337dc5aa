package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/runtime"
)

// runWith starts the stack's product with its data directory dir and
// extra options, and returns a stop function that waits for Run.
func (s *stack) runWith(dir string, opts ...runtime.Option) (*runtime.Runner, func() error) {
	s.t.Helper()
	return s.runHooked(dir, nil, opts...)
}

// runHooked is runWith calling before between Start and Run (nil: nothing).
func (s *stack) runHooked(dir string, before func(*runtime.Runner), opts ...runtime.Option) (*runtime.Runner, func() error) {
	s.t.Helper()
	base := []runtime.Option{runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(dir),
		runtime.Logger(slog.New(slog.NewTextHandler(s.t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})))}
	r, err := runtime.Start(context.Background(), s.product, append(base, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	if before != nil {
		before(r)
	}
	s.runner = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	s.exited = exited
	go func() {
		err := r.Run(ctx)
		if err != nil {
			s.t.Logf("Run: %v", err)
		}
		done <- err
		close(exited)
	}()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	s.t.Cleanup(func() { stop() })
	return r, stop
}

// topicLogs reads the product's changelog topic: each log's record values
// in order.
func (s *stack) topicLogs() map[string][][]byte {
	s.t.Helper()
	topic := kafka.ChangelogTopic(s.product.Manifest.ID)
	out := map[string][][]byte{}
	for p := int32(0); p < 3; p++ {
		_, err := kafka.ReadPartition(context.Background(), []kgo.Opt{kgo.SeedBrokers(s.brokers...)}, topic, p, 0, func(r *kgo.Record) error {
			return auditlog.EachInChunk(r.Value, func(entry []byte) error {
				out[string(r.Key)] = append(out[string(r.Key)], bytes.Clone(entry))
				return nil
			})
		})
		if err != nil {
			s.t.Fatal(err)
		}
	}
	return out
}

// localLogs reads every log under dir as changelog records.
func localLogs(t *testing.T, dir string) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	logs, _ := filepath.Glob(filepath.Join(dir, "changelog", "*"))
	for _, d := range logs {
		if strings.Contains(filepath.Base(d), ".diverged-") {
			continue
		}
		l, err := auditlog.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Scan(1, func(e *auditlog.Entry) error {
			out[filepath.Base(d)] = append(out[filepath.Base(d)], auditlog.AppendRecord(nil, e))
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameLogs(t *testing.T, what string, got, want map[string][][]byte) {
	t.Helper()
	for name, recs := range want {
		if len(got[name]) != len(recs) {
			t.Errorf("%s: log %s has %d entries, want %d", what, name, len(got[name]), len(recs))
			continue
		}
		for i := range recs {
			if !bytes.Equal(got[name][i], recs[i]) {
				t.Errorf("%s: log %s entry %d differs", what, name, i+1)
				break
			}
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && len(got[name]) > 0 {
			t.Errorf("%s: log %s is not expected", what, name)
		}
	}
}

// The changelog topic holds every log byte for byte; a replica with an
// empty disk restores the logs from it and goes on from there; a cache
// from another history is set aside and replaced.
func TestChangelogTopicIsTheLog(t *testing.T) {
	s := startStack(t)
	in := s.product.Manifest.InputPorts[0].Topic
	first := recorded(t, in)
	s.produce(first)
	_, stop := s.runWith(s.dataDir)
	s.waitEvents(int64(len(first)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := localLogs(t, s.dataDir)
	if len(want) != 3 {
		t.Fatalf("%d local logs, want 3", len(want))
	}
	sameLogs(t, "topic after the first run", s.topicLogs(), want)

	// The same replica (instance 0) on a new, empty disk: it restores.
	empty := t.TempDir()
	r, stop := s.runWith(empty)
	s.produce(moreUpdates(t, in))
	waitFor(t, func() bool { return r.Stats().EventsIn.Load() >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	restored := localLogs(t, empty)
	sameLogs(t, "topic after the run on an empty disk", s.topicLogs(), restored)
	for name, recs := range want {
		if len(restored[name]) < len(recs) || !slices.EqualFunc(restored[name][:len(recs)], recs, bytes.Equal) {
			t.Errorf("log %s on the new disk does not start with the restored history", name)
		}
	}
	if _, err := auditlog.VerifyTree(filepath.Join(empty, "changelog")); err != nil {
		t.Fatalf("restored logs: %v", err)
	}

	// Back on the first disk, behind the topic by the second run's entries,
	// with one log replaced by another history: that log is set aside and
	// restored, the others catch up.
	log0 := filepath.Join(s.dataDir, "changelog", in+"-0")
	if err := os.RemoveAll(log0); err != nil {
		t.Fatal(err)
	}
	fake, err := auditlog.Open(log0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Append([]auditlog.Entry{{Seq: 1, SystemTime: 1, ValidFrom: 1, Op: auditlog.OpAssert, Key: []byte("x"), Payload: []byte("not what committed")}}); err != nil {
		t.Fatal(err)
	}
	fake.Close()
	r, stop = s.runWith(s.dataDir)
	// One more event: once it is processed, every partition assigned at
	// start has been reconciled with the topic.
	s.produce(moreUpdates(t, in)[:1])
	waitFor(t, func() bool { return r.Stats().EventsIn.Load() >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sameLogs(t, "the first disk after its rewritten log was set aside", s.topicLogs(), localLogs(t, s.dataDir))
	if aside, _ := filepath.Glob(log0 + ".diverged-*"); len(aside) != 1 {
		t.Fatalf("the diverged log was not set aside: %v", aside)
	}
}

// moreUpdates are three new versions of product 101, each a distinct
// source position.
func moreUpdates(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for i := range 3 {
		v := fmt.Sprintf(`{"before":null,"after":{"id":101,"name":"scooter","description":"v%d","weight":%d},"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d,"txId":%d},"op":"u"}`,
			i, i+1, 1700000000000+int64(i)*1000, 9000000+i, 9000+i)
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(`{"id":101}`), Value: []byte(v)})
	}
	return out
}

// updatesOf is one update of each product from id first to last, at a
// source position after the recording's.
func updatesOf(topic string, first, last int) []*kgo.Record {
	var out []*kgo.Record
	for id := first; id <= last; id++ {
		v := fmt.Sprintf(`{"before":null,"after":{"id":%d,"name":"item %d","description":"again","weight":1},"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d,"txId":%d},"op":"u"}`,
			id, id, 1700000100000+int64(id)*1000, 9100000+id, 9100+id)
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf(`{"id":%d}`, id)), Value: []byte(v)})
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis's current state is derived from the change log: flushed (or left
// behind in an outage across a restart), it is rebuilt when the product
// is next assigned its partitions.
func TestRedisRebuiltFromTheLog(t *testing.T) {
	s := startStack(t)
	addr := startRedis(t)
	in := s.product.Manifest.InputPorts[0].Topic
	first := recorded(t, in)
	s.produce(first)
	r, stop := s.runWith(s.dataDir, runtime.Redis(addr))
	s.waitEvents(int64(len(first)))
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	cur := query.NewRedisStore(rdb, s.product.Manifest.ID)
	ctx := context.Background()
	waitFor(t, func() bool {
		c, ok, err := cur.Get(ctx, []byte("106"), time.Now().UnixMicro())
		return err == nil && ok && c.Seq > 0
	})
	_ = r
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cur.Get(ctx, []byte("106"), time.Now().UnixMicro()); ok {
		t.Fatal("FLUSHALL left 106 in redis")
	}
	_, stop = s.runWith(s.dataDir, runtime.Redis(addr))
	waitFor(t, func() bool {
		c, ok, err := cur.Get(ctx, []byte("106"), time.Now().UnixMicro())
		return err == nil && ok && bytes.Contains(c.Payload, []byte("18oz carpenter hammer"))
	})
	if _, ok, _ := cur.Get(ctx, []byte("111"), time.Now().UnixMicro()); ok {
		t.Error("the deleted 111 came back in redis")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// With standbys, a replica keeps warm copies of the logs it does not own,
// so when their partitions fail over to it, nothing is left to restore.
func TestStandbyCopiesAreWarmOnFailover(t *testing.T) {
	s := startStack(t)
	in := s.product.Manifest.InputPorts[0].Topic
	events := recorded(t, in)
	s.produce(events)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, stopA := s.runWith(dirA, runtime.Instance("a"), runtime.Standbys(2), runtime.SessionTimeout(6*time.Second))
	b, stopB := s.runWith(dirB, runtime.Instance("b"), runtime.Standbys(2), runtime.SessionTimeout(6*time.Second))
	waitFor(t, func() bool { return a.Stats().EventsIn.Load()+b.Stats().EventsIn.Load() >= int64(len(events)) })
	topic := s.topicLogs()
	// Every log of the topic is in b's directory, the ones b does not own
	// as warm copies (read when b's standby does not hold them).
	waitFor(t, func() bool {
		owned := ownedLogs(t, b)
		if len(owned) == 0 || len(owned) == len(topic) {
			return false // b owns some partitions, and keeps copies of the others
		}
		got, _ := readLogsUnlocked(dirB)
		for name, recs := range topic {
			if !owned[name] && len(got[name]) != len(recs) {
				return false
			}
		}
		return true
	})
	before := metricValue(t, b.Metrics(), "meshlet_changelog_restored_entries_total", nil)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	// b takes every partition; one more event proves it processes again.
	s.produce(moreUpdates(t, in)[:1])
	waitFor(t, func() bool { return b.Stats().EventsIn.Load()+a.Stats().EventsIn.Load() >= int64(len(events))+1 })
	after := metricValue(t, b.Metrics(), "meshlet_changelog_restored_entries_total", nil)
	if after != before {
		t.Errorf("the failover restored %v entries; the warm copies should have held them all", after-before)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	sameLogs(t, "b's logs after the failover", localLogs(t, dirB), s.topicLogs())
}

// readLogsUnlocked is localLogs for a directory a running replica uses:
// the logs open there (owned, or being caught up) are named, not read.
func readLogsUnlocked(dir string) (map[string][][]byte, map[string]bool) {
	out, locked := map[string][][]byte{}, map[string]bool{}
	logs, _ := filepath.Glob(filepath.Join(dir, "changelog", "*"))
	for _, d := range logs {
		name := filepath.Base(d)
		l, err := auditlog.Open(d)
		if err != nil {
			locked[name] = true
			continue
		}
		err = l.Scan(1, func(e *auditlog.Entry) error {
			out[name] = append(out[name], auditlog.AppendRecord(nil, e))
			return nil
		})
		l.Close()
		if err != nil {
			locked[name] = true
		}
	}
	return out, locked
}

// ownedLogs are the logs r has open as their partitions' owner, from its
// meshlet_changelog_entries series.
func ownedLogs(t *testing.T, r *runtime.Runner) map[string]bool {
	t.Helper()
	families, err := r.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "meshlet_changelog_entries" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "log" {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// With three replicas each keeping its neighbour's log warm, the
// partition of the one that goes is given to the survivor that holds its
// log warm (the standby balancer), so neither survivor restores anything.
// Without the preference the partition lands on either survivor.
func TestFailoverGoesToTheWarmStandby(t *testing.T) {
	s := startStack(t)
	in := s.product.Manifest.InputPorts[0].Topic
	events := recorded(t, in)
	s.produce(events)
	type replica struct {
		r    *runtime.Runner
		stop func() error
		dir  string
	}
	var reps []replica
	for _, name := range []string{"a", "b", "c"} {
		dir := t.TempDir()
		r, stop := s.runWith(dir, runtime.Instance(name), runtime.Standbys(1), runtime.SessionTimeout(6*time.Second))
		reps = append(reps, replica{r, stop, dir})
	}
	total := func() (n int64) {
		for _, p := range reps {
			n += p.r.Stats().EventsIn.Load()
		}
		return n
	}
	waitFor(t, func() bool { return total() >= int64(len(events)) })
	// Each owns one partition and holds the next one's log caught up (its
	// directory may hold other, older copies too: the first replica owned
	// every partition for a moment).
	settled := func(topic map[string][][]byte) func() bool {
		return func() bool {
			for _, p := range reps {
				owned := ownedLogs(t, p.r)
				if len(owned) != 1 {
					return false
				}
				var next string
				for name := range owned {
					i := strings.LastIndexByte(name, '-')
					n, _ := strconv.Atoi(name[i+1:])
					next = fmt.Sprintf("%s-%d", name[:i], (n+1)%3)
				}
				got, _ := readLogsUnlocked(p.dir)
				if len(got[next]) != len(topic[next]) {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, settled(s.topicLogs()))
	first := s.topicLogs()
	// More changes on every partition: the older copies fall behind, the
	// warm ones keep up.
	more := updatesOf(in, 101, 109)
	s.produce(more)
	waitFor(t, func() bool { return total() >= int64(len(events)+len(more)) })
	topic := s.topicLogs()
	waitFor(t, settled(topic))
	for name := range ownedLogs(t, reps[2].r) {
		if len(topic[name]) == len(first[name]) {
			t.Fatalf("the new changes did not reach %s, the partition that fails over", name)
		}
	}
	restored := func(p replica) float64 {
		return metricValue(t, p.r.Metrics(), "meshlet_changelog_restored_entries_total", nil)
	}
	before := []float64{restored(reps[0]), restored(reps[1])}
	gone := ownedLogs(t, reps[2].r)
	if err := reps[2].stop(); err != nil {
		t.Fatal(err)
	}
	// The survivors share c's partition; an event proves they process again.
	s.produce(moreUpdates(t, in)[:1])
	waitFor(t, func() bool {
		n := 0
		for _, p := range reps[:2] {
			n += len(ownedLogs(t, p.r))
		}
		return n == 3 && total() >= int64(len(events)+len(more))+1
	})
	for i, p := range reps[:2] {
		if d := restored(p) - before[i]; d != 0 {
			t.Errorf("replica %d restored %v entries after %v left; its partition should have gone to the replica holding its log warm", i, d, gone)
		}
	}
}
