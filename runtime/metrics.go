package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
)

// metrics are the product's Prometheus series, named
// meshlet_<area>_<what>_<unit> with data_product, port and topic labels.
// Consumer lag uses kafka_exporter's names, so dashboards and alerts written
// for it work unchanged. Each product has its own registry: two products in
// one process (tests, `meshlet dev`) do not collide.
type metrics struct {
	reg *prometheus.Registry

	inputRecords   *prometheus.CounterVec // by input topic
	outputRecords  *prometheus.CounterVec // by output port and topic
	deadLetters    *prometheus.CounterVec // by input topic and class
	duplicates     prometheus.Counter
	batches        *prometheus.CounterVec   // by result
	publishLatency *prometheus.HistogramVec // by output port and topic
	paused         prometheus.Gauge

	// newestEvent is the source commit time (unix µs) of the newest event
	// whose records committed; freshness is its age.
	newestEvent atomic.Int64
	lastCommit  atomic.Int64 // unix µs of the last committed batch
	// caughtUp is when a committed batch last left no input waiting (it
	// read fewer records than a batch may), so an idle source does not
	// look stale.
	caughtUp    atomic.Int64
	outputBytes []atomic.Int64 // bytes of published record values, by output port

	mu        sync.Mutex
	inputRows map[string]int64 // by input topic, for OpenLineage statistics
	latencies [1024]float64    // the newest publish latencies (s), a ring
	latN      int

	lag       *lagCollector
	cdc       *cdc.Metrics      // the input decoders' counts
	changelog *auditlog.Metrics // fsyncs and bytes written, recorded by each log
	of        measured
}

// measured is what the metrics read from the rest of the product.
type measured struct {
	product  *Manifest
	maxBatch int
	now      func() int64
	outputs  outputs // their contract checkers
	parts    *partitions
	client   func() *kgo.Client // nil until the product joined its group
	group    string
}

// inputRowsOf is how many records of topic committed since start.
func (x *metrics) inputRowsOf(topic string) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.inputRows[topic]
}

// latencyP99 is the 99th percentile of the newest publish latencies.
func (x *metrics) latencyP99() time.Duration {
	x.mu.Lock()
	n := min(x.latN, len(x.latencies))
	vals := slices.Clone(x.latencies[:n])
	x.mu.Unlock()
	if n == 0 {
		return 0
	}
	slices.Sort(vals)
	return time.Duration(vals[(n*99)/100] * float64(time.Second))
}

func newMetrics(of measured) *metrics {
	m := of.product
	product := prometheus.Labels{"data_product": m.ID}
	x := &metrics{reg: prometheus.NewRegistry(), inputRows: map[string]int64{}, of: of, outputBytes: make([]atomic.Int64, len(m.OutputPorts))}
	x.lag = &lagCollector{of: &x.of}
	x.cdc = cdc.NewMetrics(product)
	x.changelog = auditlog.NewMetrics(product)
	x.inputRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_input_records_total", Help: "Input records consumed, counted when their batch commits.", ConstLabels: product,
	}, []string{"port", "topic"})
	x.outputRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_output_records_total", Help: "Records published to the output port (and appended to the change log).", ConstLabels: product,
	}, []string{"port", "topic"})
	x.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_deadletter_records_total", Help: "Input records sent to the dead-letter topic, by error class.", ConstLabels: product,
	}, []string{"topic", "class"})
	x.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshlet_input_duplicates_total", Help: "Events the source sent again, recognised by source position and dropped.", ConstLabels: product,
	})
	x.batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_batch_transactions_total", Help: "Poll batches by outcome: committed, or aborted and consumed again.", ConstLabels: product,
	}, []string{"result"})
	x.publishLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshlet_publish_latency_seconds", ConstLabels: product,
		Help:    "From an event's time (its source commit time, or its arrival on the input topic when later, so a backfill is not late) to the commit of the transaction that published its records.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
	}, []string{"port", "topic"})
	x.paused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshlet_product_paused", Help: "1 while the product is paused by a control command.", ConstLabels: product,
	})
	x.reg.MustRegister(x.inputRecords, x.outputRecords, x.deadLetters, x.duplicates, x.batches,
		x.publishLatency, x.paused, qualityCollector{&x.of}, changeLogCollector{&x.of}, x.lag)
	for _, out := range m.OutputPorts {
		x.outputRecords.WithLabelValues(out.Name, out.Topic) // present at 0 before the first batch
		x.publishLatency.WithLabelValues(out.Name, out.Topic)
		// The ports commit in the same transactions, so they trail the
		// sources alike.
		x.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshlet_output_freshness_seconds", ConstLabels: prometheus.Labels{"data_product": m.ID, "port": out.Name, "topic": out.Topic},
			Help: "How far the output trails its sources: the age of the newest published event's source commit time, 0 while no input waits; -1 before the first.",
		}, func() float64 {
			fresh, last, _ := x.freshness()
			if last.IsZero() {
				return -1
			}
			return fresh.Seconds()
		}))
	}
	x.reg.MustRegister(x.cdc.Collectors()...)
	x.reg.MustRegister(x.changelog.Collectors()...)
	for _, in := range m.InputPorts {
		x.inputRecords.WithLabelValues(in.Name, in.Topic) // present at 0 before the first batch
	}
	return x
}

// committed records what a committed batch did.
func (x *metrics) committed(b *batch, inByTopic map[string]int) {
	in := 0
	x.mu.Lock()
	for _, port := range x.of.product.InputPorts {
		if n := inByTopic[port.Topic]; n > 0 {
			x.inputRecords.WithLabelValues(port.Name, port.Topic).Add(float64(n))
			x.inputRows[port.Topic] += int64(n)
			in += n
		}
	}
	x.mu.Unlock()
	counts := make([]int, len(x.of.outputs))
	for _, rec := range b.produce {
		if o := x.of.outputs.byTopic(rec.Topic); o != nil {
			x.outputBytes[o.index].Add(int64(len(rec.Value)))
			counts[o.index]++
		}
	}
	for i, o := range x.of.outputs {
		if counts[i] > 0 {
			x.outputRecords.WithLabelValues(o.name, o.topic).Add(float64(counts[i]))
			o.records.Add(int64(counts[i]))
		}
	}
	for k, n := range b.deadLetterClasses {
		x.deadLetters.WithLabelValues(k.topic, k.class.String()).Add(float64(n))
	}
	x.duplicates.Add(float64(b.duplicates))
	x.batches.WithLabelValues("committed").Inc()
	now := x.of.now()
	x.lastCommit.Store(now)
	if x.of.maxBatch <= 0 || in < x.of.maxBatch {
		x.caughtUp.Store(now)
	}
	newest := x.newestEvent.Load()
	x.mu.Lock()
	for _, e := range b.eventTimes {
		s := float64(now-e.at) / 1e6
		o := x.of.outputs[e.port]
		x.publishLatency.WithLabelValues(o.name, o.topic).Observe(s)
		x.latencies[x.latN%len(x.latencies)] = s
		x.latN++
		newest = max(newest, e.at)
	}
	x.mu.Unlock()
	x.newestEvent.Store(newest)
}

// qualityCollector reports the output contract's rule counters.
type qualityCollector struct{ of *measured }

var (
	qualityChecked = prometheus.NewDesc("meshlet_quality_checked_records_total",
		"Records a contract quality rule looked at.", []string{"data_product", "port", "rule", "field"}, nil)
	qualityViolations = prometheus.NewDesc("meshlet_quality_violations_total",
		"Records beyond what a contract quality rule tolerates.", []string{"data_product", "port", "rule", "field"}, nil)
)

func (c qualityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- qualityChecked
	ch <- qualityViolations
}

func (c qualityCollector) Collect(ch chan<- prometheus.Metric) {
	id := c.of.product.ID
	for _, o := range c.of.outputs {
		for _, s := range o.checker.Stats() {
			ch <- prometheus.MustNewConstMetric(qualityChecked, prometheus.CounterValue, float64(s.Checked), id, s.Object, s.Rule, s.Field)
			ch <- prometheus.MustNewConstMetric(qualityViolations, prometheus.CounterValue, float64(s.Violations), id, s.Object, s.Rule, s.Field)
		}
	}
}

// changeLogCollector reports the size of each open change log.
type changeLogCollector struct{ of *measured }

var (
	changeLogEntries = prometheus.NewDesc("meshlet_changelog_entries",
		"Entries in a change log (its last sequence number).", []string{"data_product", "log"}, nil)
	changeLogBytes = prometheus.NewDesc("meshlet_changelog_bytes",
		"Bytes of a change log's segments on disk.", []string{"data_product", "log"}, nil)
)

func (c changeLogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- changeLogEntries
	ch <- changeLogBytes
}

func (c changeLogCollector) Collect(ch chan<- prometheus.Metric) {
	id := c.of.product.ID
	c.of.parts.each(func(p *partition) {
		seq, _, _ := p.log.Tail()
		ch <- prometheus.MustNewConstMetric(changeLogEntries, prometheus.GaugeValue, float64(seq), id, p.key.String())
		ch <- prometheus.MustNewConstMetric(changeLogBytes, prometheus.GaugeValue, float64(segmentBytes(p.log.Dir())), id, p.key.String())
	})
}

func segmentBytes(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// lagCollector reports consumer lag under kafka_exporter's metric names.
// Offsets are read from the brokers at scrape time, at most once a second.
type lagCollector struct {
	of *measured

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

var (
	groupLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"Records between the group's committed offset and the partition's end.", []string{"consumergroup", "topic", "partition"}, nil)
	groupOffset = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"The group's committed offset.", []string{"consumergroup", "topic", "partition"}, nil)
	partitionOffset = prometheus.NewDesc("kafka_topic_partition_current_offset",
		"The partition's end offset.", []string{"topic", "partition"}, nil)
)

// total is the group's lag over all input partitions, as last read; ok is
// false when the brokers could not be asked.
func (c *lagCollector) total() (sum int64, ok bool) {
	ch := make(chan prometheus.Metric, 256)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		if m.Desc() != groupLag {
			continue
		}
		var d dto.Metric
		if m.Write(&d) == nil {
			sum += int64(d.GetGauge().GetValue())
			ok = true
		}
	}
	return sum, ok
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- groupLag
	ch <- groupOffset
	ch <- partitionOffset
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= time.Second {
		c.metrics = c.read()
		c.at = time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

// read asks the brokers for the group's committed offsets and the input
// partitions' end offsets. A failure leaves the series out of this scrape
// rather than reporting a made-up lag.
func (c *lagCollector) read() []prometheus.Metric {
	cl := c.of.client()
	if cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	var topics []string
	for _, in := range c.of.product.InputPorts {
		topics = append(topics, in.Topic)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil
	}
	committed, err := adm.FetchOffsets(ctx, c.of.group)
	if err != nil {
		return nil
	}
	group := c.of.group
	var out []prometheus.Metric
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		p := strconv.Itoa(int(o.Partition))
		out = append(out, prometheus.MustNewConstMetric(partitionOffset, prometheus.GaugeValue, float64(o.Offset), o.Topic, p))
		at := int64(0)
		if co, ok := committed.Lookup(o.Topic, o.Partition); ok && co.Err == nil && co.At >= 0 {
			at = co.At
		}
		out = append(out,
			prometheus.MustNewConstMetric(groupOffset, prometheus.GaugeValue, float64(at), group, o.Topic, p),
			prometheus.MustNewConstMetric(groupLag, prometheus.GaugeValue, float64(max(o.Offset-at, 0)), group, o.Topic, p))
	})
	return out
}

// Metrics is the product's Prometheus registry, for the management port or
// an embedding program's own /metrics.
func (r *Runner) Metrics() prometheus.Gatherer { return r.metrics.reg }

// freshness is how far the output trails its sources (mgmt.Freshness),
// for /v1/status and the freshness gauge alike; last is the source commit
// time of the newest published event (zero before the first).
func (x *metrics) freshness() (fresh time.Duration, last time.Time, lag int64) {
	now := time.UnixMicro(x.of.now())
	var caughtUp time.Time
	if t := x.newestEvent.Load(); t > 0 {
		last = time.UnixMicro(t)
	}
	if t := x.caughtUp.Load(); t > 0 {
		caughtUp = time.UnixMicro(t)
	}
	lag, known := x.lag.total()
	if known && lag == 0 && !last.IsZero() {
		caughtUp = now // nothing waits: an idle source is not a stale product
	}
	return mgmt.Freshness(now, last, caughtUp), last, lag
}

// outputBytesOf is how many bytes of record values output port i published.
func (x *metrics) outputBytesOf(i int) int64 { return x.outputBytes[i].Load() }
