package runtime

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/ports/control"
	"github.com/meshlet/meshlet/ports/lineage"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/seal"
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

// Config is how a product runs: where Kafka, the registry and the change log
// are. The zero value of every optional field is a working default, set in
// withDefaults.
type Config struct {
	Brokers     []string
	RegistryURL string
	DataDir     string // change logs live under DataDir/changelog

	Delivery Delivery // default ExactlyOnce

	Group    string // consumer group; default: the product id
	Instance string // stable per replica, part of the transactional id; default "0"

	// MaxBatch caps the records of one poll batch, and so of one
	// transaction (0: whatever one poll returns).
	MaxBatch int
	// BatchTimeout bounds how long a started batch may take to commit,
	// also when shutdown is asked for meanwhile.
	BatchTimeout time.Duration
	// DedupWindow is how many recent records per input partition are
	// remembered to recognise events the source sends again.
	DedupWindow int
	// SessionTimeout and TransactionTimeout override franz-go's defaults
	// (45s and 40s): how fast a dead instance's partitions move on.
	SessionTimeout     time.Duration
	TransactionTimeout time.Duration

	// RedisAddr is the Redis that serves the current state of entities to
	// the query port (several replicas can share it); empty: current reads
	// are answered from the change-log index.
	RedisAddr string
	// HTTPAddr is where the management port (query endpoints) listens, e.g.
	// ":8080"; empty: no listener.
	HTTPAddr string
	// CheckpointInterval is how often committed change logs get a signed
	// checkpoint; one is also signed when a log is closed.
	CheckpointInterval time.Duration

	// Security holds TLS and credentials for Kafka, the registry and Redis.
	Security Security
	// Tokens authenticate the management port's control and query routes
	// (bearer token -> role); nil refuses every guarded request.
	Tokens *mgmt.Tokens

	// Lineage receives the product's OpenLineage run events (nil: none):
	// START, RUNNING every LineageInterval, ABORT or FAIL at the end.
	Lineage          lineage.Transport
	LineageInterval  time.Duration
	LineageNamespace string // the job namespace; default meshlet://<domain>

	// MeshTTL is how long the product stays in the mesh registry (Redis)
	// without a heartbeat; heartbeats go every third of it. Negative: do
	// not register. The registry needs RedisAddr.
	MeshTTL time.Duration
	// ControlBus carries control commands; nil: Redis Streams when
	// RedisAddr is set, else an in-process channel.
	ControlBus *control.Bus
	// Keys holds the data-subject keys pii fields are sealed with; nil:
	// Redis-backed when RedisAddr is set (a product with pii fields needs
	// one or the other).
	Keys seal.KeyStore

	Logger *slog.Logger
	// Now returns the current time in unix microseconds; tests pin it.
	Now func() int64
}

// Every default of Config is set here, in one place.
func (c Config) withDefaults(m *Manifest) Config {
	if c.Group == "" {
		c.Group = m.ID
	}
	if c.Instance == "" {
		c.Instance = "0"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 10_000
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 30 * time.Second
	}
	if c.MeshTTL == 0 {
		c.MeshTTL = 15 * time.Second
	}
	if c.LineageInterval == 0 {
		c.LineageInterval = lineage.DefaultKeepInterval
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 10 * time.Second
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 100_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = func() int64 { return time.Now().UnixMicro() }
	}
	return c
}
