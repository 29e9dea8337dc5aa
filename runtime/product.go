package runtime

import (
	"fmt"
	"io/fs"
	"path"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// Product is a data product ready to run: its manifest, the files the
// manifest refers to, its handler, and its output port's data contract.
type Product struct {
	Manifest *Manifest
	Handler  transforms.Func
	Contract *contracts.Contract
	fsys     fs.FS
}

// NewProduct loads the manifest at manifestPath in fsys (schema paths resolve
// relative to it), the output schema and the port's data contract, and pairs
// them with the handler.
func NewProduct(fsys fs.FS, manifestPath string, h transforms.Func) (*Product, error) {
	m, err := LoadManifest(fsys, manifestPath)
	if err != nil {
		return nil, err
	}
	p := &Product{Manifest: m, Handler: h, fsys: fsys}
	s, err := p.OutputSchema()
	if err != nil {
		return nil, err
	}
	port := &m.OutputPorts[0]
	if port.Subject == "" {
		naming, _ := schemas.ParseSubjectNaming(port.SubjectNaming) // validated with the manifest
		if port.Subject, err = schemas.SubjectFor(naming, port.Topic, s); err != nil {
			return nil, fmt.Errorf("%s: outputPorts[0].subjectNaming: %w", m.file, err)
		}
	}
	if p.Contract, err = p.loadContract(s); err != nil {
		return nil, err
	}
	return p, nil
}

// loadContract reads the port's hand-written contract, or generates it from
// the manifest and the schema; either way it is validated against ODCS.
func (p *Product) loadContract(s *schemas.Schema) (*contracts.Contract, error) {
	m := p.Manifest
	port := &m.OutputPorts[0]
	var spec contracts.Spec
	if port.Contract != nil {
		spec = *port.Contract
	}
	if spec.File != "" {
		file := path.Join(path.Dir(m.file), spec.File)
		data, err := fs.ReadFile(p.fsys, file)
		if err != nil {
			return nil, fmt.Errorf("%s: outputPorts[0].contract.file: %w", m.file, err)
		}
		return contracts.Parse(file, data)
	}
	c, err := contracts.Generate(contracts.Product{
		ID: m.ID, Name: m.Name, Version: m.Version, Status: m.Status, Domain: m.Domain,
		Description: m.Description, TeamName: m.Team.Name, TeamEmail: m.Team.Email,
	}, contracts.Port{Name: port.Name, Version: port.Version, Topic: port.Topic, Subject: port.Subject, Schema: s, Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("%s: outputPorts[0].contract: %w", m.file, err)
	}
	return c, nil
}

// OutputSchema loads the output port's .avsc.
func (p *Product) OutputSchema() (*schemas.Schema, error) {
	port := p.Manifest.OutputPorts[0]
	file := path.Join(path.Dir(p.Manifest.file), port.Schema)
	text, err := fs.ReadFile(p.fsys, file)
	if err != nil {
		return nil, fmt.Errorf("%s: outputPorts[0].schema: %w", p.Manifest.file, err)
	}
	return schemas.Parse(file, string(text))
}
