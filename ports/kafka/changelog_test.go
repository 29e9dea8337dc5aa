package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestChangelogTopicNames(t *testing.T) {
	if got := ChangelogTopic("urn:dataproduct:inventory:products"); got != "meshlet.inventory.products.changelog" {
		t.Errorf("ChangelogTopic = %s", got)
	}
	if got := CheckpointTopic("urn:dataproduct:crm:customers"); got != "meshlet.crm.customers.checkpoints" {
		t.Errorf("CheckpointTopic = %s", got)
	}
}

func TestEnsureChangelogCreatesAndRefusesLossyConfigs(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if err := EnsureChangelog(ctx, adm, "p.changelog", 3, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := EnsureChangelog(ctx, adm, "p.changelog", 3, 2<<20); err != nil {
		t.Fatalf("an existing, right topic: %v", err)
	}
	if err := EnsureChangelog(ctx, adm, "p.changelog", 4, 2<<20); err == nil || !strings.Contains(err.Error(), "has 3 partitions but the input has 4") {
		t.Fatalf("too few partitions: %v", err)
	}
	seven := "604800000"
	if _, err := adm.CreateTopic(ctx, 3, -1, map[string]*string{"retention.ms": &seven}, "q.changelog"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureChangelog(ctx, adm, "q.changelog", 3, 2<<20); err == nil || !strings.Contains(err.Error(), "retention.ms=604800000 (want -1") ||
		!strings.Contains(err.Error(), "kafka-configs --alter --entity-type topics --entity-name q.changelog") {
		t.Fatalf("a topic that deletes old entries: %v", err)
	}
}

// ReadPartition reads every committed record to the end, past aborted
// transactions and the markers that end the partition, and nothing of an
// aborted transaction.
func TestReadPartitionReadsCommittedToTheEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	txn, err := kgo.NewClient(append(seeds, kgo.TransactionalID("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	batch := func(commit kgo.TransactionEndTry, from, n int) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+n; i++ {
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "log", Partition: 1, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	batch(kgo.TryCommit, 0, 5)
	batch(kgo.TryAbort, 100, 3)
	batch(kgo.TryCommit, 5, 4)
	batch(kgo.TryAbort, 200, 2) // the partition ends in an aborted transaction
	var got []string
	next, err := ReadPartition(ctx, seeds, "log", 1, 0, func(r *kgo.Record) error {
		got = append(got, string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "0,1,2,3,4,5,6,7,8" {
		t.Fatalf("read %v", got)
	}
	more, err := ReadPartition(ctx, seeds, "log", 1, next, func(r *kgo.Record) error { return fmt.Errorf("read %s past the end", r.Value) })
	if err != nil || more != next {
		t.Fatalf("from the end: next %d, %v (was %d)", more, err, next)
	}
	if n, err := ReadPartition(ctx, seeds, "log", 0, 0, func(*kgo.Record) error { return nil }); err != nil || n != 0 {
		t.Fatalf("an empty partition: %d, %v", n, err)
	}
}
