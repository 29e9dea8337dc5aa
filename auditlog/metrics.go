package auditlog

import (
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics measures the writes of the logs opened with WithMetrics, where
// they happen: how long each fsync of a segment file takes, and how many
// bytes reach the segments, by log (its directory's name). It registers
// nowhere by itself: a program adds Collectors to its own registry, so two
// products in one process keep their series apart.
type Metrics struct {
	fsync   *prometheus.HistogramVec
	written *prometheus.CounterVec
}

// NewMetrics makes the collectors. constLabels (the runtime's
// data_product) go on every series.
func NewMetrics(constLabels prometheus.Labels) *Metrics {
	return &Metrics{
		fsync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "meshlet_changelog_fsync_seconds",
			Help:        "Time of each fsync of a change-log segment file: after an append, before a roll, on Sync and Close.",
			ConstLabels: constLabels,
			Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs to 3.3s
		}, []string{"log"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "meshlet_changelog_written_bytes_total",
			Help:        "Bytes written to change-log segment files: frames and segment headers.",
			ConstLabels: constLabels,
		}, []string{"log"}),
	}
}

// Collectors are what to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.fsync, m.written}
}

// WithMetrics records the log's fsyncs and written bytes in m.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// logMetrics are one log's series; the zero value records nothing.
type logMetrics struct {
	fsync   prometheus.Observer
	written prometheus.Counter
}

func (m *Metrics) forLog(name string) logMetrics {
	if m == nil {
		return logMetrics{}
	}
	return logMetrics{fsync: m.fsync.WithLabelValues(name), written: m.written.WithLabelValues(name)}
}

// sync fsyncs f, timed.
func (m logMetrics) sync(f *os.File) error {
	if m.fsync == nil {
		return f.Sync()
	}
	start := time.Now()
	err := f.Sync()
	m.fsync.Observe(time.Since(start).Seconds())
	return err
}

func (m logMetrics) wrote(n int) {
	if m.written != nil && n > 0 {
		m.written.Add(float64(n))
	}
}
