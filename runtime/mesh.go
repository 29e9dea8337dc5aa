package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/meshlet/meshlet/ports/mesh"
	"github.com/meshlet/meshlet/ports/mgmt"
)

// meshMember keeps the product registered in the mesh registry (Redis)
// while it runs: registered at start, a heartbeat every third of the TTL,
// deregistered on a clean stop.
type meshMember struct {
	registry *mesh.Registry
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// joinMesh opens the registry, before the management port is built (its
// lineage route asks the registry); startMesh registers once the port
// listens, so the registration carries its address.
func (r *Runner) joinMesh() {
	if r.rdb == nil || r.cfg.MeshTTL < 0 {
		return
	}
	r.mesh.registry = mesh.New(r.rdb, mesh.TTL(r.cfg.MeshTTL))
}

func (r *Runner) startMesh() {
	if r.mesh.registry == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.mesh.cancel = cancel
	r.mesh.done.Add(1)
	go func() {
		defer r.mesh.done.Done()
		r.mesh.registry.Keep(ctx, r.meshProduct(), r.cfg.Instance, r.cfg.MeshTTL/3, r.log)
	}()
}

func (r *Runner) stopMesh() {
	if r.mesh.registry == nil {
		return
	}
	if r.mesh.cancel != nil {
		r.mesh.cancel()
		r.mesh.done.Wait()
	}
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
	out := m.OutputPorts[0]
	port := mesh.OutputPort{Name: out.Name, Topic: out.Topic, Subject: out.Subject, SchemaID: r.schemaID, Version: out.Version,
		Classifications: r.gov.classes}
	if c := r.product.Contract; c != nil {
		port.ContractID = c.ID
		if y, err := c.YAML(); err == nil {
			port.Contract = string(y)
		}
	}
	p.Outputs = []mesh.OutputPort{port}
	return p
}

// meshNeighbors are the products upstream and downstream of this one in
// the registry's lineage graph, for the discovery port.
func (r *Runner) meshNeighbors(ctx context.Context) (mgmt.Neighbors, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	g, err := r.mesh.registry.Lineage(ctx)
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
	id := r.product.Manifest.ID
	for _, e := range g.Upstream(id) {
		nb.Upstream = ref(e.From, e.Topic, nb.Upstream)
	}
	for _, e := range g.Downstream(id) {
		nb.Downstream = ref(e.To, e.Topic, nb.Downstream)
	}
	return nb, nil
}
