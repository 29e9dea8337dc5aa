package runtime

import (
	"context"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/mesh"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/web"
)

// management builds the product's management listener: discovery, status,
// metrics and the access-logged control and query routes (ports/mgmt).
func (r *Runner) management(query http.Handler) *mgmt.Server {
	m := r.product.Manifest
	desc := mgmt.Product{
		ID: m.ID, Name: m.Name, Version: m.Version, Domain: m.Domain, Description: m.Description,
		Team: mgmt.Team{Name: m.Team.Name, Email: m.Team.Email}, DeadLetterTopic: m.DeadLetter.Topic,
	}
	for _, in := range m.InputPorts {
		desc.Inputs = append(desc.Inputs, mgmt.Input{Name: in.Name, Topic: in.Topic, Format: in.Format})
	}
	for i, out := range m.OutputPorts {
		var avsc []byte
		if s, err := r.product.PortSchema(i); err == nil {
			avsc = []byte(s.Published())
		}
		desc.Outputs = append(desc.Outputs, mgmt.Output{Name: out.Name, Topic: out.Topic, Subject: out.Subject, Contract: r.product.Contracts[i], Schema: avsc})
	}
	srv := &mgmt.Server{
		Tokens:        r.cfg.tokens,
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
	if r.plane != nil {
		srv.Control = controller{bus: r.plane.bus, product: m.ID, now: r.cfg.now}
	}
	if r.mesh.registry != nil {
		srv.Lineage = func(ctx context.Context) (mgmt.Neighbors, error) { return r.mesh.neighbors(ctx, m.ID) }
		srv.Mesh = &mesh.Handler{Registry: r.mesh.registry}
	}
	return srv
}

// recentDeadLetters reads the newest committed records of the dead-letter
// topic for the management port.
func (r *Runner) recentDeadLetters(ctx context.Context, n int) ([]ports.Dead, error) {
	secure, err := r.cfg.kafkaSecurity.Opts()
	if err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.brokers...), kgo.WithLogger(kafka.Logger(r.log))}, secure...)
	return kafka.RecentDeadLetters(ctx, opts, r.product.Manifest.DeadLetter.Topic, n)
}

// observe reports the state and measurements /v1/status evaluates.
func (r *Runner) observe(ctx context.Context) (mgmt.Observation, error) {
	state := mgmt.StateRunning
	if r.Paused() {
		state = mgmt.StatePaused
	}
	fresh, last, lag := r.metrics.freshness()
	var bytes int64
	r.parts.each(func(p *partition) { bytes += segmentBytes(p.log.Dir()) })
	obs := mgmt.Observation{State: state, Ports: map[string]mgmt.Measured{}}
	for _, o := range r.outputs {
		// The ports commit in the same transactions: they share the
		// product's latency, freshness, lag and change logs.
		obs.Ports[o.name] = mgmt.Measured{
			PublishLatencyP99: r.metrics.latencyP99(),
			Freshness:         fresh,
			LastCommit:        last,
			ConsumerLag:       lag,
			DeadLetters:       r.stats.DeadLetters.Load(),
			QualityViolations: o.checker.Stats(),
			ChangeLogBytes:    bytes,
		}
	}
	return obs, nil
}

// registrySchemas answers /v1/schemas from the schema registry.
type registrySchemas struct{ r *Runner }

func (s registrySchemas) Schemas(ctx context.Context) ([]mgmt.SchemaInfo, error) {
	var infos []mgmt.SchemaInfo
	for i, out := range s.r.product.Manifest.OutputPorts {
		info := mgmt.SchemaInfo{Port: out.Name, Subject: out.Subject, ID: s.r.outputs[i].schemaID}
		if pub, err := s.r.product.PortSchema(i); err == nil {
			info.Schema = pub.Published()
		}
		versions, err := s.r.registry.Client().SubjectVersions(ctx, out.Subject)
		if err != nil {
			return append(infos, info), err
		}
		info.Versions = versions
		infos = append(infos, info)
	}
	return infos, nil
}
