package auditlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series finds the sample of family name for log in what reg gathers.
func series(t *testing.T, reg prometheus.Gatherer, name, log string) *dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["log"] == log && labels["data_product"] == "urn:dataproduct:test:orders" {
				return m
			}
		}
	}
	t.Fatalf("no %s{log=%q} gathered", name, log)
	return nil
}

// Every fsync of a segment file is timed and every byte written to the
// segments counted, per log, in the registry the program chose.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(prometheus.Labels{"data_product": "urn:dataproduct:test:orders"})
	reg.MustRegister(m.Collectors()...)
	root := t.TempDir()
	batches := map[string]int{"orders-0": 10, "orders-1": 3}
	for name, n := range batches {
		l := mustOpen(t, filepath.Join(root, name), SegmentSize(2048), WithMetrics(m))
		for range n {
			appendN(t, l, 7)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for name, n := range batches {
		dir := filepath.Join(root, name)
		segs := segFiles(t, dir)
		var size int64
		for _, s := range segs {
			fi, err := os.Stat(filepath.Join(dir, s))
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		// One fsync per append, Sync and Close; a roll syncs the old
		// segment and the new one's header (the first roll has no old one).
		wantSyncs := uint64(n + 2 + 2*len(segs) - 1)
		if name == "orders-0" && len(segs) < 3 {
			t.Fatalf("fixture: %s rolled into %d segments only", name, len(segs))
		}
		if got := series(t, reg, "meshlet_changelog_fsync_seconds", name).GetHistogram().GetSampleCount(); got != wantSyncs {
			t.Errorf("%s: %d fsyncs timed, want %d (%d segments, %d appends)", name, got, wantSyncs, len(segs), n)
		}
		if got := series(t, reg, "meshlet_changelog_written_bytes_total", name).GetCounter().GetValue(); got != float64(size) {
			t.Errorf("%s: %v bytes written counted, the segments hold %d", name, got, size)
		}
	}
	// Nothing went to the global registry.
	fams, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range fams {
		if f.GetName() == "meshlet_changelog_fsync_seconds" || f.GetName() == "meshlet_changelog_written_bytes_total" {
			t.Fatalf("%s registered globally", f.GetName())
		}
	}
}
