package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
)

// publish produces a product's logs and checkpoints to its topics as the
// runtime does; tamper may change a record value before it goes out.
func publish(t *testing.T, ctx context.Context, seeds []kgo.Opt, product string, logs map[string]*auditlog.Log, notes map[string][]byte, pub []byte, tamper func(log string, seq uint64, v []byte) []byte) {
	t.Helper()
	cl, err := kgo.NewClient(append(seeds, kgo.RecordPartitioner(Partitioner(ChangelogTopic(product), CheckpointTopic(product))))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := EnsureChangelog(ctx, adm, ChangelogTopic(product), 2, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := EnsureChangelog(ctx, adm, CheckpointTopic(product), 2, 1<<20); err != nil {
		t.Fatal(err)
	}
	p := int32(0)
	for name, l := range logs {
		var recs []*kgo.Record
		if err := l.Scan(1, func(e *auditlog.Entry) error {
			v := auditlog.AppendChunk(nil, e)
			if tamper != nil {
				v = tamper(name, e.Seq, v)
			}
			recs = append(recs, ChangelogRecord(ChangelogTopic(product), p, name, v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		seq, _, _ := l.Tail()
		recs = append(recs, CheckpointRecord(CheckpointTopic(product), p, name, seq, notes[name]))
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		p++
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: CheckpointTopic(product), Partition: 0, Key: []byte(VerifierKey), Value: pub}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyChangelogFromTheTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	root := t.TempDir()
	const product = "urn:dataproduct:test:orders"
	signer, _, err := auditlog.LoadOrCreateKey(root, product)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(root, auditlog.VerifierFile))
	if err != nil {
		t.Fatal(err)
	}
	logs, notes := map[string]*auditlog.Log{}, map[string][]byte{}
	for i, name := range []string{"orders-0", "orders-1"} {
		l, err := auditlog.Open(filepath.Join(root, "changelog", name), auditlog.SyncEachAppend(false))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var es []auditlog.Entry
		for s := 1; s <= 20+i; s++ {
			es = append(es, auditlog.Entry{Seq: uint64(s), SystemTime: int64(1000 + s), ValidFrom: int64(s), Op: auditlog.OpAssert,
				Key: fmt.Appendf(nil, "k%d", s%5), Payload: fmt.Appendf(nil, "payload %d of %s", s, name),
				Prov: auditlog.Provenance{Topic: "orders", Partition: int32(i), Offset: int64(s)}})
		}
		if err := l.Append(es); err != nil {
			t.Fatal(err)
		}
		if notes[name], err = l.Checkpoint(signer); err != nil {
			t.Fatal(err)
		}
		logs[name] = l
	}

	publish(t, ctx, seeds, product, logs, notes, pub, nil)
	reports, err := VerifyChangelog(ctx, seeds, product, nil)
	if err != nil || len(reports) != 2 || reports[0].Entries != 20 || reports[1].Entries != 21 || reports[1].Checkpoint != 21 {
		t.Fatalf("the real topics: %+v, %v", reports, err)
	}

	// A tampered copy: one byte of one record flipped on the way.
	const copyOf = "urn:dataproduct:test:orders-tampered"
	publish(t, ctx, seeds, copyOf, logs, notes, pub, func(log string, seq uint64, v []byte) []byte {
		if log == "orders-1" && seq == 7 {
			v = append([]byte(nil), v...)
			v[60] ^= 0x20
		}
		return v
	})
	reports, err = VerifyChangelog(ctx, seeds, copyOf, nil)
	if !errors.Is(err, auditlog.ErrCorrupt) || !strings.Contains(err.Error(), "log orders-1") || !strings.Contains(err.Error(), "entry seq 7") ||
		!strings.Contains(err.Error(), ChangelogTopic(copyOf)+"/") {
		t.Fatalf("a flipped byte: %v", err)
	}
	if reports[0].Err != nil || reports[1].Err == nil {
		t.Fatalf("reports: %+v", reports)
	}
}

// TestVerifyChangelogWithAKeyPerReplica signs each log with the key of
// another replica's disk, as separate disks do, and both replicas publish
// their key: each log's checkpoint is checked with the key that signed it.
// A checkpoint signed by a key never published still fails.
func TestVerifyChangelogWithAKeyPerReplica(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const product = "urn:dataproduct:test:orders"
	root := t.TempDir()
	logs, notes := map[string]*auditlog.Log{}, map[string][]byte{}
	var pubs [][]byte
	for i, name := range []string{"orders-0", "orders-1"} {
		disk := filepath.Join(root, name+"-disk")
		signer, _, err := auditlog.LoadOrCreateKey(disk, product)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := os.ReadFile(filepath.Join(disk, auditlog.VerifierFile))
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
		l, err := auditlog.Open(filepath.Join(disk, "changelog", name), auditlog.SyncEachAppend(false))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var es []auditlog.Entry
		for s := 1; s <= 5+i; s++ {
			es = append(es, auditlog.Entry{Seq: uint64(s), SystemTime: int64(1000 + s), Op: auditlog.OpAssert,
				Key: fmt.Appendf(nil, "k%d", s), Payload: fmt.Appendf(nil, "payload %d of %s", s, name),
				Prov: auditlog.Provenance{Topic: "orders", Partition: int32(i), Offset: int64(s)}})
		}
		if err := l.Append(es); err != nil {
			t.Fatal(err)
		}
		if notes[name], err = l.Checkpoint(signer); err != nil {
			t.Fatal(err)
		}
		logs[name] = l
	}
	cl, err := kgo.NewClient(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	verified := func(product string) (map[string]bool, error) {
		reports, err := VerifyChangelog(ctx, seeds, product, nil)
		ok := map[string]bool{}
		for _, r := range reports {
			ok[r.Log] = r.Err == nil
		}
		return ok, err
	}

	publish(t, ctx, seeds, product, logs, notes, pubs[0], nil)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: CheckpointTopic(product), Partition: 0, Key: []byte(VerifierKey), Value: pubs[1]}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if ok, err := verified(product); err != nil || !ok["orders-0"] || !ok["orders-1"] {
		t.Fatalf("both keys published: logs verified %v, err %v; want both", ok, err)
	}

	const other = "urn:dataproduct:test:orders-one-key"
	publish(t, ctx, seeds, other, logs, notes, pubs[0], nil)
	// (A checkpoint no key opens ends the read of its partition, so
	// whether orders-0 is reported depends on which partition is read first.)
	if ok, err := verified(other); ok["orders-1"] || !errors.Is(err, auditlog.ErrCorrupt) || !strings.Contains(err.Error(), "orders-1") {
		t.Fatalf("only orders-0's key published: logs verified %v, err %v; want orders-1 to fail", ok, err)
	}
}
