package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
)

// BenchmarkRestore is a replica restoring a log of 200,000 entries from the
// changelog topic on kfake into an empty disk: entries/s and bytes/s.
func BenchmarkRestore(b *testing.B) {
	const entries = 200_000
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	const topic = "meshlet.bench.products.changelog"
	if err := kafka.EnsureChangelog(ctx, kadmOf(cl), topic, 1, changelogRecordLimit); err != nil {
		b.Fatal(err)
	}
	src, err := auditlog.Open(filepath.Join(b.TempDir(), "src"), auditlog.SyncEachAppend(false))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for start := 1; start <= entries; start += 10_000 {
		var es []auditlog.Entry
		for s := start; s < start+10_000; s++ {
			es = append(es, auditlog.Entry{Seq: uint64(s), SystemTime: int64(s), ValidFrom: int64(s), Op: auditlog.OpAssert,
				Key: fmt.Appendf(nil, "%d", s%5000), Payload: fmt.Appendf(nil, "\x00\x00\x00\x00\x01 a product row of about a hundred bytes, like the example's: %08d", s),
				Prov: auditlog.Provenance{Topic: "in", Offset: int64(s), SourcePosition: fmt.Sprintf("lsn=%d", s)}})
		}
		if err := src.Append(es); err != nil {
			b.Fatal(err)
		}
		recs := make([]*kgo.Record, len(es))
		for i := range es {
			v := auditlog.AppendChunk(nil, &es[i])
			bytes += int64(len(v))
			recs[i] = kafka.ChangelogRecord(topic, 0, "in-0", v)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	src.Close()
	r := &Runner{log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: defaultConfig()}
	r.metrics = &metrics{changelog: auditlog.NewMetrics(nil)}
	cp, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Close()
	ch := &changelog{topic: topic, partitions: 1, opts: opts, log: r.log, cp: cp,
		restored: prometheus.NewCounter(prometheus.CounterOpts{Name: "r"}), restoreTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "left"}, []string{"log"})}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		l, err := auditlog.Open(filepath.Join(b.TempDir(), "in-0"))
		if err != nil {
			b.Fatal(err)
		}
		p := &partition{key: partitionKey{"in", 0}, log: l}
		b.StartTimer()
		if err := ch.reconcileWithTopic(ctx, r, p, entries, true); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n, _, _ := p.log.Tail(); n != entries {
			b.Fatalf("restored %d entries, want %d", n, entries)
		}
		p.log.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(bytes*int64(b.N))/b.Elapsed().Seconds()/(1<<20), "MB/s")
}

func kadmOf(cl *kgo.Client) *kadm.Client { return kadm.NewClient(cl) }
