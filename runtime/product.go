package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"path"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// Product is a data product ready to run: its manifest, the files the
// manifest refers to, its handlers, and its output ports' data contracts.
type Product struct {
	Manifest *Manifest
	Handler  transforms.Func
	// Contract is the first output port's contract; Contracts holds every
	// stream port's, in the order of Manifest.OutputPorts.
	Contract  *contracts.Contract
	Contracts []*contracts.Contract
	fsys      fs.FS
	ports     map[string]transforms.Func // handlers by input port name
}

// NewProduct loads the manifest at manifestPath in fsys (schema paths resolve
// relative to it), each output port's schema and data contract, and pairs
// them with the handler. Ports give input ports handlers of their own
// (transforms.On); h, which may then be nil, handles the others.
func NewProduct(fsys fs.FS, manifestPath string, h transforms.Func, ports ...transforms.Port) (*Product, error) {
	m, err := LoadManifest(fsys, manifestPath)
	if err != nil {
		return nil, err
	}
	p := &Product{Manifest: m, Handler: h, fsys: fsys}
	if err := p.setPorts(ports); err != nil {
		return nil, err
	}
	for i := range m.OutputPorts {
		s, err := p.PortSchema(i)
		if err != nil {
			return nil, err
		}
		port := &m.OutputPorts[i]
		if port.Subject == "" {
			naming, _ := schemas.ParseSubjectNaming(port.SubjectNaming) // validated with the manifest
			if port.Subject, err = schemas.SubjectFor(naming, port.Topic, s); err != nil {
				return nil, fmt.Errorf("%s: outputPorts[%d].subjectNaming: %w", m.file, i, err)
			}
		}
		c, err := p.loadContract(i, s)
		if err != nil {
			return nil, err
		}
		p.Contracts = append(p.Contracts, c)
	}
	for i, port := range m.OutputPorts {
		for j := range i {
			if m.OutputPorts[j].Subject == port.Subject {
				return nil, fmt.Errorf("%s: outputPorts[%d] (%s) and outputPorts[%d] (%s) both register their schema under subject %s: give one a subject of its own (subject, or subjectNaming: TopicName)",
					m.file, j, m.OutputPorts[j].Name, i, port.Name, port.Subject)
			}
		}
	}
	p.Contract = p.Contracts[0]
	return p, nil
}

// loadContract reads output port i's hand-written contract, or generates
// it from the manifest and the schema; either way it is validated against
// ODCS.
func (p *Product) loadContract(i int, s *schemas.Schema) (*contracts.Contract, error) {
	m := p.Manifest
	port := &m.OutputPorts[i]
	var spec contracts.Spec
	if port.Contract != nil {
		spec = *port.Contract
	}
	if spec.File != "" {
		file := path.Join(path.Dir(m.file), spec.File)
		data, err := fs.ReadFile(p.fsys, file)
		if err != nil {
			return nil, fmt.Errorf("%s: outputPorts[%d].contract.file: %w", m.file, i, err)
		}
		return contracts.Parse(file, data)
	}
	c, err := contracts.Generate(contracts.Product{
		ID: m.ID, Name: m.Name, Version: m.Version, Status: m.Status, Domain: m.Domain,
		Description: m.Description, TeamName: m.Team.Name, TeamEmail: m.Team.Email,
	}, contracts.Port{Name: port.Name, Version: port.Version, Topic: port.Topic, Subject: port.Subject, Schema: s, Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("%s: outputPorts[%d].contract: %w", m.file, i, err)
	}
	return c, nil
}

// OutputSchema loads the first output port's .avsc.
func (p *Product) OutputSchema() (*schemas.Schema, error) { return p.PortSchema(0) }

// PortSchema loads output port i's .avsc.
func (p *Product) PortSchema(i int) (*schemas.Schema, error) {
	port := p.Manifest.OutputPorts[i]
	file := path.Join(path.Dir(p.Manifest.file), port.Schema)
	text, err := fs.ReadFile(p.fsys, file)
	if err != nil {
		return nil, fmt.Errorf("%s: outputPorts[%d].schema: %w", p.Manifest.file, i, err)
	}
	return schemas.Parse(file, string(text))
}

// setPorts checks that each registered handler names an input port. A
// product may be loaded without handlers (lint does); see portHandler.
func (p *Product) setPorts(ports []transforms.Port) error {
	m := p.Manifest
	names := map[string]InputPort{}
	for _, in := range m.InputPorts {
		names[in.Name] = in
	}
	for _, port := range ports {
		if _, ok := names[port.Name]; !ok {
			known := make([]string, 0, len(names))
			for _, in := range m.InputPorts {
				known = append(known, in.Name)
			}
			return fmt.Errorf("%s: a handler is registered for input port %q, which the manifest does not declare (input ports: %v)", m.file, port.Name, known)
		}
		if p.ports == nil {
			p.ports = map[string]transforms.Func{}
		}
		if _, dup := p.ports[port.Name]; dup {
			return fmt.Errorf("%s: input port %q has two handlers registered", m.file, port.Name)
		}
		p.ports[port.Name] = port.Handler
	}
	return nil
}

// portHandler is input port in's handler, wrapped in mws (recovery): its
// own, else the product's; a table port materializes first.
func (p *Product) portHandler(in InputPort, fallback transforms.Func) transforms.Func {
	h := fallback
	if own, ok := p.ports[in.Name]; ok {
		h = transforms.Chain(own, transforms.Recover())
	} else if in.Mode == "table" {
		h = nil
	}
	if in.Mode == "table" {
		return transforms.Chain(materialize(in, h), transforms.Recover())
	}
	if p.Handler == nil && p.ports[in.Name] == nil {
		return func(context.Context, *cdc.Change, []transforms.Output) ([]transforms.Output, error) {
			return nil, fmt.Errorf("input port %s has no handler: register one with transforms.On(%q, ...), or declare it mode: table", in.Name, in.Name)
		}
	}
	return h
}
