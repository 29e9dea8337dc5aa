package runtime

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/lineage"
	"github.com/meshlet/meshlet/ports/mesh"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/web"
)

// management builds the product's management listener: discovery, status,
// metrics and the access-logged control and query routes (ports/mgmt).
func (r *Runner) management(query http.Handler) *mgmt.Server {
	m := r.product.Manifest
	out := m.OutputPorts[0]
	desc := mgmt.Product{
		ID: m.ID, Name: m.Name, Version: m.Version, Domain: m.Domain, Description: m.Description,
		Team: mgmt.Team{Name: m.Team.Name, Email: m.Team.Email}, DeadLetterTopic: m.DeadLetter.Topic,
	}
	for _, in := range m.InputPorts {
		desc.Inputs = append(desc.Inputs, mgmt.Input{Name: in.Name, Topic: in.Topic, Format: in.Format})
	}
	var avsc []byte
	if s, err := r.product.OutputSchema(); err == nil {
		avsc = []byte(s.Published())
	}
	desc.Outputs = []mgmt.Output{{Name: out.Name, Topic: out.Topic, Subject: out.Subject, Contract: r.product.Contract, Schema: avsc}}
	srv := &mgmt.Server{
		Tokens:        r.cfg.Tokens,
		Product:       desc,
		Manifest:      m,
		Schemas:       registrySchemas{r},
		Observe:       r.observe,
		Gatherer:      r.metrics.reg,
		Registerer:    r.metrics.reg,
		Query:         query,
		PolicyActions: []string{"pass", "mask", "drop"},
		Log:           r.log,
		DeadLetters:   r.recentDeadLetters,
		UI:            web.Handler(),
	}
	if r.plane.bus != nil {
		srv.Control = controller{r}
	}
	if r.mesh.registry != nil {
		srv.Lineage = r.meshNeighbors
		srv.Mesh = &mesh.Handler{Registry: r.mesh.registry}
	}
	return srv
}

// recentDeadLetters reads the newest committed records of the dead-letter
// topic for the management port.
func (r *Runner) recentDeadLetters(ctx context.Context, n int) ([]ports.Dead, error) {
	secure, err := r.cfg.Security.kafkaOpts()
	if err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...), kgo.WithLogger(kslog{r.log})}, secure...)
	return ports.RecentDeadLetters(ctx, opts, r.product.Manifest.DeadLetter.Topic, n)
}

// observe reports the state and measurements /v1/status evaluates.
func (r *Runner) observe(ctx context.Context) (mgmt.Observation, error) {
	state := mgmt.StateRunning
	if r.Paused() {
		state = mgmt.StatePaused
	}
	fresh, last, lag := r.freshness()
	var bytes int64
	r.mu.Lock()
	for _, p := range r.parts {
		bytes += segmentBytes(p.log.Dir())
	}
	r.mu.Unlock()
	meas := mgmt.Measured{
		PublishLatencyP99: r.metrics.latencyP99(),
		Freshness:         fresh,
		LastCommit:        last,
		ConsumerLag:       lag,
		DeadLetters:       r.stats.DeadLetters.Load(),
		QualityViolations: r.checker.Stats(),
		ChangeLogBytes:    bytes,
	}
	return mgmt.Observation{State: state, Ports: map[string]mgmt.Measured{r.product.Manifest.OutputPorts[0].Name: meas}}, nil
}

// freshness is how far the output trails its sources (mgmt.Freshness),
// for /v1/status and the freshness gauge alike; last is the source commit
// time of the newest published event (zero before the first).
func (r *Runner) freshness() (fresh time.Duration, last time.Time, lag int64) {
	now := time.UnixMicro(r.cfg.Now())
	var caughtUp time.Time
	if t := r.metrics.newestEvent.Load(); t > 0 {
		last = time.UnixMicro(t)
	}
	if t := r.metrics.caughtUp.Load(); t > 0 {
		caughtUp = time.UnixMicro(t)
	}
	lag, known := r.metrics.lag.total()
	if known && lag == 0 && !last.IsZero() {
		caughtUp = now // nothing waits: an idle source is not a stale product
	}
	return mgmt.Freshness(now, last, caughtUp), last, lag
}

// registrySchemas answers /v1/schemas from the schema registry.
type registrySchemas struct{ r *Runner }

func (s registrySchemas) Schemas(ctx context.Context) ([]mgmt.SchemaInfo, error) {
	out := s.r.product.Manifest.OutputPorts[0]
	info := mgmt.SchemaInfo{Port: out.Name, Subject: out.Subject, ID: s.r.schemaID}
	if pub, err := s.r.product.OutputSchema(); err == nil {
		info.Schema = pub.Published()
	}
	versions, err := s.r.registry.Client().SubjectVersions(ctx, out.Subject)
	if err != nil {
		return []mgmt.SchemaInfo{info}, err
	}
	info.Versions = versions
	return []mgmt.SchemaInfo{info}, nil
}

// lineageJob describes the product as an OpenLineage streaming job: its
// input topics and its output topic with the published row's fields.
func (r *Runner) lineageJob() lineage.Job {
	m := r.product.Manifest
	bootstrap := strings.Join(r.cfg.Brokers, ",")
	job := lineage.Job{Namespace: r.cfg.LineageNamespace, Name: m.ID}
	if job.Namespace == "" {
		job.Namespace = "meshlet://" + m.Domain
	}
	for _, in := range m.InputPorts {
		job.Inputs = append(job.Inputs, lineage.Kafka(bootstrap, in.Topic))
	}
	var fields []lineage.Field
	if s, err := r.product.OutputSchema(); err == nil {
		for _, f := range s.RowFields() {
			fields = append(fields, lineage.Field{Name: f.Name, Type: f.Type, Doc: f.Doc})
		}
	}
	job.Outputs = []lineage.Dataset{lineage.Kafka(bootstrap, m.OutputPorts[0].Topic, fields...)}
	return job
}

// lineageStats is the RUNNING snapshot: rows and bytes since the run began.
func (r *Runner) lineageStats() lineage.Stats {
	st := lineage.Stats{Inputs: map[string]lineage.Counts{}, Outputs: map[string]lineage.Counts{}}
	for _, in := range r.product.Manifest.InputPorts {
		st.Inputs[in.Topic] = lineage.Counts{Rows: r.metrics.inputRowsOf(in.Topic)}
	}
	st.Outputs[r.product.Manifest.OutputPorts[0].Topic] = lineage.Counts{Rows: r.stats.Records.Load(), Bytes: r.metrics.outputBytes.Load()}
	return st
}

// startLineage emits the run's START and keeps RUNNING snapshots going
// until the product stops; stopLineage ends it with ABORT or FAIL.
func (r *Runner) startLineage(ctx context.Context) error {
	if r.cfg.Lineage == nil {
		return nil
	}
	run, err := lineage.Start(ctx, r.cfg.Lineage, r.lineageJob(),
		lineage.WithStateDir(r.cfg.DataDir), lineage.WithLogger(r.log), lineage.WithEngineVersion(Version),
		lineage.WithClock(func() time.Time { return time.UnixMicro(r.cfg.Now()) }))
	if err != nil {
		r.log.Warn("OpenLineage START not delivered; running without lineage events", "err", err)
		return nil
	}
	r.lineage.run = run
	kctx, cancel := context.WithCancel(context.Background())
	r.lineage.cancel = cancel
	r.lineage.done.Add(1)
	go func() {
		defer r.lineage.done.Done()
		run.Keep(kctx, r.cfg.LineageInterval, r.lineageStats)
	}()
	return nil
}

func (r *Runner) stopLineage(cause error) {
	if r.lineage.run == nil {
		return
	}
	r.lineage.cancel()
	r.lineage.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.lineage.run.Stop(ctx, cause); err != nil && !errors.Is(err, lineage.ErrStopped) {
		r.log.Warn("OpenLineage end of run not delivered; the next start reports it", "err", err)
	}
}

// lineageRun is the product's OpenLineage run, when events are configured.
type lineageRun struct {
	run    *lineage.Run
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Version is the Meshlet version products report (OpenLineage's
// processing engine, the mesh registry).
const Version = "0.6.0"
