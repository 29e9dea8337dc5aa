package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/meshlet/meshlet/ports/lineage"
)

// lineageRun is the product's OpenLineage run, when events are configured:
// START when the product starts, RUNNING snapshots every interval, ABORT or
// FAIL when it stops.
type lineageRun struct {
	run    *lineage.Run // nil: no lineage events
	log    *slog.Logger
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// lineageSpec is what a run reports and where.
type lineageSpec struct {
	transport lineage.Transport // nil: no events
	job       lineage.Job
	interval  time.Duration
	stats     func() lineage.Stats
	opts      []lineage.Option
	log       *slog.Logger
}

func (r *Runner) lineageSpec() lineageSpec {
	return lineageSpec{
		transport: r.cfg.lineage, job: r.lineageJob(), interval: r.cfg.lineageInterval, stats: r.lineageStats, log: r.log,
		opts: []lineage.Option{
			lineage.WithStateDir(r.cfg.dataDir), lineage.WithLogger(r.log), lineage.WithEngineVersion(Version),
			lineage.WithClock(func() time.Time { return time.UnixMicro(r.cfg.now()) }),
		},
	}
}

// startLineage emits the run's START and keeps RUNNING snapshots going
// until stop. A START that cannot be delivered leaves the product running
// without lineage events.
func startLineage(ctx context.Context, s lineageSpec) *lineageRun {
	l := &lineageRun{log: s.log}
	if s.transport == nil {
		return l
	}
	run, err := lineage.Start(ctx, s.transport, s.job, s.opts...)
	if err != nil {
		s.log.Warn("OpenLineage START not delivered; running without lineage events", "err", err)
		return l
	}
	l.run = run
	kctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		run.Keep(kctx, s.interval, s.stats)
	}()
	return l
}

// stop ends the run: ABORT on a clean stop, FAIL when cause is an error.
func (l *lineageRun) stop(cause error) {
	if l == nil || l.run == nil {
		return
	}
	l.cancel()
	l.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.run.Stop(ctx, cause); err != nil && !errors.Is(err, lineage.ErrStopped) {
		l.log.Warn("OpenLineage end of run not delivered; the next start reports it", "err", err)
	}
}

// lineageJob describes the product as an OpenLineage streaming job: its
// input topics and its output ports' topics with the published rows' fields.
func (r *Runner) lineageJob() lineage.Job {
	m := r.product.Manifest
	bootstrap := strings.Join(r.cfg.brokers, ",")
	job := lineage.Job{Namespace: r.cfg.lineageNamespace, Name: m.ID}
	if job.Namespace == "" {
		job.Namespace = "meshlet://" + m.Domain
	}
	for _, in := range m.InputPorts {
		job.Inputs = append(job.Inputs, lineage.Kafka(bootstrap, in.Topic))
	}
	for i, out := range m.OutputPorts {
		var fields []lineage.Field
		if s, err := r.product.PortSchema(i); err == nil {
			for _, f := range s.RowFields() {
				fields = append(fields, lineage.Field{Name: f.Name, Type: f.Type, Doc: f.Doc})
			}
		}
		job.Outputs = append(job.Outputs, lineage.Kafka(bootstrap, out.Topic, fields...))
	}
	return job
}

// lineageStats is the RUNNING snapshot: rows and bytes since the run began.
func (r *Runner) lineageStats() lineage.Stats {
	st := lineage.Stats{Inputs: map[string]lineage.Counts{}, Outputs: map[string]lineage.Counts{}}
	for _, in := range r.product.Manifest.InputPorts {
		st.Inputs[in.Topic] = lineage.Counts{Rows: r.metrics.inputRowsOf(in.Topic)}
	}
	for _, o := range r.outputs {
		st.Outputs[o.topic] = lineage.Counts{Rows: o.records.Load(), Bytes: r.metrics.outputBytesOf(o.index)}
	}
	return st
}

// Version is the Meshlet version products report (OpenLineage's
// processing engine, the mesh registry).
const Version = "0.6.0"
