package runtime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/meshlet/meshlet/ports/mesh"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/redis/go-redis/v9"
)

// meshMember keeps the product registered in the mesh registry (Redis)
// while it runs: registered at start, a heartbeat every third of the TTL,
// deregistered on a clean stop.
type meshMember struct {
	registry *mesh.Registry // nil: not a member
	ttl      time.Duration
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// joinMesh opens the registry, before the management port is built (its
// lineage route asks the registry); start registers once the port listens,
// so the registration carries its address. Without Redis, or with a
// negative TTL, the member does nothing.
func joinMesh(rdb *redis.Client, ttl time.Duration) *meshMember {
	m := &meshMember{ttl: ttl}
	if rdb != nil && ttl >= 0 {
		m.registry = mesh.New(rdb, mesh.TTL(ttl))
	}
	return m
}

// start keeps the product registered, heartbeating every third of the TTL.
func (m *meshMember) start(product func() mesh.Product, instance string, log *slog.Logger) {
	if m.registry == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		m.registry.Keep(ctx, product(), instance, m.ttl/3, log)
	}()
}

func (m *meshMember) stop() {
	if m == nil || m.cancel == nil {
		return
	}
	m.cancel()
	m.done.Wait()
}

// meshProduct is what the registry says of this product.
func (r *Runner) meshProduct() mesh.Product {
	m := r.product.Manifest
	p := mesh.Product{
		URN: m.ID, Name: m.Name, Domain: m.Domain, Version: m.Version, Description: m.Description, Status: m.Status,
		Owner: mesh.Owner{Name: m.Team.Name, Email: m.Team.Email},
	}
	if r.serve.addr != nil {
		p.ManagementURL = "http://" + r.serve.addr.String()
	}
	for _, in := range m.InputPorts {
		p.Inputs = append(p.Inputs, mesh.InputPort{Name: in.Name, Topic: in.Topic, Format: in.Format})
	}
	for i, out := range m.OutputPorts {
		o := r.outputs[i]
		port := mesh.OutputPort{Name: out.Name, Topic: out.Topic, Subject: out.Subject, SchemaID: o.schemaID, Version: out.Version,
			Classifications: o.gate.Classes()}
		if c := r.product.Contracts[i]; c != nil {
			port.ContractID = c.ID
			if y, err := c.YAML(); err == nil {
				port.Contract = string(y)
			}
		}
		p.Outputs = append(p.Outputs, port)
	}
	return p
}

// neighbors are the products upstream and downstream of product id in the
// registry's lineage graph, for the discovery port.
func (m *meshMember) neighbors(ctx context.Context, id string) (mgmt.Neighbors, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	g, err := m.registry.Lineage(ctx)
	if err != nil {
		return mgmt.Neighbors{}, err
	}
	names := map[string]string{}
	for _, n := range g.Nodes {
		names[n.ID] = n.Name
	}
	ref := func(id, topic string, refs []mgmt.ProductRef) []mgmt.ProductRef {
		for i := range refs {
			if refs[i].ID == id {
				refs[i].Topics = append(refs[i].Topics, topic)
				return refs
			}
		}
		return append(refs, mgmt.ProductRef{ID: id, Name: names[id], Topics: []string{topic}})
	}
	var nb mgmt.Neighbors
	for _, e := range g.Upstream(id) {
		nb.Upstream = ref(e.From, e.Topic, nb.Upstream)
	}
	for _, e := range g.Downstream(id) {
		nb.Downstream = ref(e.To, e.Topic, nb.Downstream)
	}
	return nb, nil
}
