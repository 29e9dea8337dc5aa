package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
)

// TestRecentDeadLettersReadsTheCommittedTail produces dead letters the way
// the runtime does (in transactions, one aborted and one left open) and
// plain, and checks the newest committed ones come back, newest first.
func TestRecentDeadLettersReadsTheCommittedTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	seeds := []kgo.Opt{kgo.SeedBrokers(broker.ListenAddrs()...)}
	admin, err := kgo.NewClient(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const dlq = "products.dlq"
	if err := EnsureTopics(ctx, admin, map[string]int32{dlq: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := RecentDeadLetters(ctx, seeds, dlq, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty topic: %v, %v", got, err)
	}
	got, err = RecentDeadLetters(ctx, seeds, "no.such.topic", 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing topic: %v, %v", got, err)
	}

	txn, err := kgo.NewClient(append(seeds, kgo.TransactionalID("dlq-test"), kgo.DefaultProduceTopic(dlq))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	letter := func(i int, class ports.Class) *kgo.Record {
		in := &kgo.Record{Topic: "cdc", Partition: int32(i % 3), Offset: int64(100 + i), Key: []byte(fmt.Sprintf(`{"id":%d}`, i)), Value: []byte("{bad")}
		d := DeadLetter(dlq, "urn:dataproduct:x:y", in, class, fmt.Errorf("event %d: %s", i, strings.Repeat("é", 700)), 0)
		d.Partition = int32(i % 2)
		d.Timestamp = base.Add(time.Duration(i) * time.Second)
		return d
	}
	produce := func(commit kgo.TransactionEndTry, ids ...int) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, i := range ids {
			if err := txn.ProduceSync(ctx, letter(i, ports.ClassMalformed)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	produce(kgo.TryCommit, 0, 1, 2, 3)
	produce(kgo.TryAbort, 4, 5) // never committed: never listed
	produce(kgo.TryCommit, 6, 7)
	plain, err := kgo.NewClient(append(seeds, kgo.DefaultProduceTopic(dlq), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, letter(8, ports.ClassSchema), letter(9, ports.ClassHandler)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// An open transaction at the end: the stable offset stops before it.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, letter(10, ports.ClassMalformed)).FirstErr(); err != nil {
		t.Fatal(err)
	}

	got, err = RecentDeadLetters(ctx, seeds, dlq, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Key)
	}
	want := []string{`{"id":9}`, `{"id":8}`, `{"id":7}`, `{"id":6}`, `{"id":3}`, `{"id":2}`, `{"id":1}`, `{"id":0}`}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("dead letters %v, want %v", ids, want)
	}
	d := got[0]
	if d.Class != "handler" || d.OriginTopic != "cdc" || d.OriginPartition != 0 || d.OriginOffset != 109 || d.ValueBytes != 4 || !d.Time.Equal(base.Add(9*time.Second)) {
		t.Fatalf("newest dead letter: %+v", d)
	}
	if len(d.Message) > recentTextBytes+len("…") || !strings.HasPrefix(d.Message, "event 9: é") || !strings.HasSuffix(d.Message, "é…") {
		t.Fatalf("message not cut at a rune: %d bytes, %q", len(d.Message), d.Message[len(d.Message)-8:])
	}

	// n bounds the answer per call, not per partition.
	got, err = RecentDeadLetters(ctx, seeds, dlq, 3)
	if err != nil || len(got) != 3 || got[0].Key != `{"id":9}` || got[2].Key != `{"id":7}` {
		t.Fatalf("newest 3: %+v, %v", got, err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	got, err = RecentDeadLetters(ctx, seeds, dlq, 1)
	if err != nil || len(got) != 1 || got[0].Key != `{"id":10}` {
		t.Fatalf("after the commit: %+v, %v", got, err)
	}

	// A long aborted transaction at the end of each partition hides the
	// dead letters before it from the first window; a wider one finds them.
	produce(kgo.TryAbort, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22)
	got, err = RecentDeadLetters(ctx, seeds, dlq, 2)
	if err != nil || len(got) != 2 || got[0].Key != `{"id":10}` || got[1].Key != `{"id":9}` {
		t.Fatalf("behind an aborted transaction: %+v, %v", got, err)
	}

	// A cluster that does not answer is an error within the deadline.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	broker.Close()
	if _, err := RecentDeadLetters(short, seeds, dlq, 5); err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), dlq) {
		t.Fatalf("closed broker: err = %v", err)
	}
}
