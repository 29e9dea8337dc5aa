package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/runtime"
)

// metricValue sums the samples of a counter, gauge or histogram (its count)
// whose labels include want.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			found = true
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !found {
		t.Fatalf("metric %s%v not exposed", name, want)
	}
	return sum
}

func TestPauseReprocessAndMetrics(t *testing.T) {
	s := startStack(t)
	m := s.product.Manifest
	inTopic, outTopic := m.InputPorts[0].Topic, m.OutputPorts[0].Topic
	good := s.produce(recorded(t, inTopic))
	s.run()
	s.waitEvents(int64(len(good)))
	r := s.runner
	records := r.Stats().Records.Load()

	t.Run("metrics count what committed", func(t *testing.T) {
		g := r.Metrics()
		if got := metricValue(t, g, "meshlet_input_records_total", map[string]string{"topic": inTopic}); got != float64(len(good)) {
			t.Errorf("meshlet_input_records_total = %v, want %d", got, len(good))
		}
		if got := metricValue(t, g, "meshlet_output_records_total", map[string]string{"port": m.OutputPorts[0].Name}); got != float64(records) {
			t.Errorf("meshlet_output_records_total = %v, want %d", got, records)
		}
		if got := metricValue(t, g, "meshlet_publish_latency_seconds", nil); got != float64(records) {
			t.Errorf("publish latency histogram has %v samples, want one per record (%d)", got, records)
		}
		if got := metricValue(t, g, "kafka_consumergroup_lag", map[string]string{"consumergroup": m.ID}); got != 0 {
			t.Errorf("kafka_consumergroup_lag = %v after everything committed, want 0", got)
		}
		if got := metricValue(t, g, "meshlet_changelog_entries", nil); got != float64(records) {
			t.Errorf("meshlet_changelog_entries = %v, want %d", got, records)
		}
		// The change logs record their own writes in the product's registry.
		if metricValue(t, g, "meshlet_changelog_written_bytes_total", nil) == 0 || metricValue(t, g, "meshlet_changelog_fsync_seconds", nil) == 0 {
			t.Errorf("the change logs' writes and fsyncs are not counted")
		}
	})

	t.Run("pause holds input until resume", func(t *testing.T) {
		r.Pause()
		extra := s.produce([]*kgo.Record{{Topic: inTopic, Key: []byte(`{"id":500}`),
			Value: []byte(`{"before":null,"after":{"id":500,"name":"ladder","description":"tall","weight":7},"source":{"ts_ms":1700000000000,"lsn":99999990,"txId":9000},"op":"c"}`)}})
		// A paused product must not consume: wait for the lag to show the
		// new record and check it stays unconsumed for a while.
		deadline := time.Now().Add(20 * time.Second)
		for metricValue(t, r.Metrics(), "kafka_consumergroup_lag", map[string]string{"consumergroup": m.ID}) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("lag never showed the record produced while paused")
			}
			time.Sleep(1100 * time.Millisecond) // the lag is read at most once a second
		}
		time.Sleep(300 * time.Millisecond)
		if got := r.Stats().EventsIn.Load(); got != int64(len(good)) {
			t.Fatalf("consumed %d events while paused, want %d", got, len(good))
		}
		if got := metricValue(t, r.Metrics(), "meshlet_product_paused", nil); got != 1 {
			t.Errorf("meshlet_product_paused = %v while paused", got)
		}
		r.Resume()
		s.waitEvents(int64(len(good) + len(extra)))
		good = append(good, extra...)
	})

	part := good[0].Partition
	t.Run("refusals", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Reprocess(ctx, inTopic, 99, 0); !errors.Is(err, runtime.ErrRefused) {
			t.Errorf("reprocess of an unassigned partition: %v, want ErrRefused", err)
		}
		if err := r.Reprocess(ctx, inTopic, part, 1<<40); !errors.Is(err, runtime.ErrRefused) {
			t.Errorf("reprocess from past the committed offset: %v, want ErrRefused", err)
		}
	})

	// Reprocess one partition from its start: every event of it is
	// handled again, and its records appended once more, as new versions.
	before := r.Stats().Records.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Reprocess(ctx, inTopic, part, 0); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(s.dataDir, "reprocess", inTopic+"-"+strconv.Itoa(int(part))+".json")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reprocessing never finished: its state file is still there")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	again := r.Stats().Records.Load() - before

	l, err := auditlog.Open(filepath.Join(s.dataDir, "changelog", inTopic+"-"+strconv.Itoa(int(part))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type version struct {
		key    string
		offset int64
		sys    int64
	}
	var all []version
	if err := l.Scan(1, func(e *auditlog.Entry) error {
		all = append(all, version{string(e.Key), e.Prov.Offset, e.SystemTime})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if int64(len(all)) != 2*again || again == 0 {
		t.Fatalf("partition %d's log has %d entries after reprocessing %d records; want every original once more", part, len(all), again)
	}
	// The group's committed offset carries the log's last sequence number:
	// the marker reconciliation trusts after a crash.
	offsets, err := kadm.NewClient(s.client).FetchOffsets(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	// (The batch that finished the reprocessing still says where it ended.)
	if o, ok := offsets.Lookup(inTopic, part); !ok || !strings.HasPrefix(o.Metadata+" ", fmt.Sprintf("meshlet/v1 seq=%d ", len(all))) {
		t.Errorf("committed offset of %s/%d carries %q, want the marker of seq %d", inTopic, part, o.Metadata, len(all))
	}
	orig, redo := all[:again], all[again:]
	for i := range orig {
		if orig[i].key != redo[i].key || orig[i].offset != redo[i].offset || redo[i].sys <= orig[len(orig)-1].sys {
			t.Errorf("entry %d: original %+v, reprocessed %+v: want the same key and input offset, recorded later", i, orig[i], redo[i])
		}
	}
	// The output topic holds what the logs hold: the reprocessed records
	// were published once each.
	total := r.Stats().Records.Load()
	out := s.consume(outTopic, int(total))
	if int64(len(out)) != total {
		t.Errorf("output topic has %d records, logs %d", len(out), total)
	}
}
