package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/schemas"
)

// Manifest is a product.yaml: the product's identity and ports, shaped after
// the Open Data Product Standard (ODPS) v1.
type Manifest struct {
	APIVersion  string      `yaml:"apiVersion" json:"apiVersion,omitempty"`
	Kind        string      `yaml:"kind" json:"kind,omitempty"`
	ID          string      `yaml:"id" json:"id,omitempty"`
	Name        string      `yaml:"name" json:"name,omitempty"`
	Version     string      `yaml:"version" json:"version,omitempty"`
	Status      string      `yaml:"status" json:"status,omitempty"`
	Domain      string      `yaml:"domain" json:"domain,omitempty"`
	Description string      `yaml:"description" json:"description,omitempty"`
	Team        Team        `yaml:"team" json:"team,omitempty"`
	InputPorts  []InputPort `yaml:"inputPorts" json:"inputPorts,omitempty"`
	// OutputPorts are the stream ports: the Kafka topics the product
	// publishes. The YAML's outputPorts list also holds the snapshot ports
	// (kind: snapshot), which ParseManifest moves to SnapshotPorts; the
	// JSON form lists both again (see MarshalJSON).
	OutputPorts []OutputPort `yaml:"outputPorts" json:"outputPorts,omitempty"`
	// SnapshotPorts write Parquet snapshots of a stream port on a schedule
	// (see snapshotport.go).
	SnapshotPorts []OutputPort `yaml:"-" json:"-"`
	DeadLetter    DeadLetter   `yaml:"deadLetter" json:"deadLetter,omitempty"`
	// Standbys is how many partitions' logs beside each one it owns a
	// replica keeps warm copies of (0: none); see runtime.Standbys.
	Standbys int `yaml:"standbys" json:"standbys,omitempty"`
	// State configures the product's keyed state (see package state).
	State StateSpec `yaml:"state" json:"state,omitempty"`

	file string // where it was read from, for error messages
}

// Team owns the product.
type Team struct {
	Name  string `yaml:"name" json:"name,omitempty"`
	Email string `yaml:"email" json:"email,omitempty"`
}

// InputPort is a CDC topic the product consumes.
type InputPort struct {
	Name   string `yaml:"name" json:"name,omitempty"`
	Topic  string `yaml:"topic" json:"topic,omitempty"`
	Format string `yaml:"format" json:"format,omitempty"`
	// Transactions "whole" publishes a source transaction's changes only
	// together, once all of it arrived (Debezium transaction metadata,
	// provide.transaction.metadata=true); empty publishes each change as
	// it comes.
	Transactions string `yaml:"transactions" json:"transactions,omitempty"`
	// TransactionTopic is the connector's transaction metadata topic,
	// <topic.prefix>.transaction; needed with transactions: whole.
	TransactionTopic string `yaml:"transactionTopic" json:"transactionTopic,omitempty"`
	// Mode is stream (the default: each change goes to the port's
	// handler) or table: Meshlet materializes the rows into the state
	// table Table (default: the port's name), keyed by column Key, each
	// row valid from its ValidTime column (default: the commit time), and
	// then calls the port's handler, if it has one (to emit corrections).
	Mode      string `yaml:"mode" json:"mode,omitempty"`
	Table     string `yaml:"table" json:"table,omitempty"`
	Key       string `yaml:"key" json:"key,omitempty"`
	ValidTime string `yaml:"validTime" json:"validTime,omitempty"`
}

// StateSpec is what the product keeps of its state.
type StateSpec struct {
	// Retention is how far back in valid time, from each key's newest
	// version, state keeps versions, and so how late a back-dated change
	// may arrive and still correct published results (a Go duration, e.g.
	// 720h; empty keeps everything).
	Retention string `yaml:"retention" json:"retention,omitempty"`
}

// OutputPort is a topic the product publishes versioned Avro events to.
type OutputPort struct {
	Name          string `yaml:"name" json:"name,omitempty"`
	Version       string `yaml:"version" json:"version,omitempty"`
	Topic         string `yaml:"topic" json:"topic,omitempty"`
	Subject       string `yaml:"subject" json:"subject,omitempty"`             // default: <topic>-value (TopicNameStrategy)
	Schema        string `yaml:"schema" json:"schema,omitempty"`               // .avsc path, relative to the manifest
	Compatibility string `yaml:"compatibility" json:"compatibility,omitempty"` // default BACKWARD
	// SubjectNaming is TopicName (default), RecordName or TopicRecordName.
	SubjectNaming string `yaml:"subjectNaming" json:"subjectNaming,omitempty"`
	// Contract is the port's ODCS data contract: a hand-written file, or
	// what to add (SLAs, classification, quality rules) to the one generated
	// from this manifest and the schema.
	Contract *contracts.Spec `yaml:"contract" json:"contract,omitempty"`
	// Policy is what the port does with classified fields.
	Policy Policy `yaml:"policy" json:"policy,omitempty"`

	// Kind is stream (the default: the fields above) or snapshot: Parquet
	// files of the stream port Of, written Every so often to URL, the
	// newest Retain kept, holding Files (table, history; default both).
	Kind   string   `yaml:"kind" json:"kind,omitempty"`
	Of     string   `yaml:"of" json:"of,omitempty"`
	Every  string   `yaml:"every" json:"every,omitempty"`
	Retain int      `yaml:"retain" json:"retain,omitempty"`
	URL    string   `yaml:"url" json:"url,omitempty"`
	Files  []string `yaml:"files" json:"files,omitempty"`
}

// Policy governs the fields an output port's contract classifies.
//
// Fields classified pii are encrypted in the change log with a key per data
// subject (see package governance), so forgetting the subject erases them while the
// log still verifies. Actions say what the output topic carries of each
// classified field: pass (as is, the default), mask, or drop (null; the
// field must be nullable). Keys are a classification or a field name; a
// field name wins.
type Policy struct {
	// DataSubject names the field whose value identifies the person the
	// pii fields are about; empty: the record's entity key.
	DataSubject string            `yaml:"dataSubject" json:"dataSubject,omitempty"`
	Actions     map[string]string `yaml:"actions" json:"actions,omitempty"`
}

// DeadLetter is where events that cannot be processed go, with the reason.
type DeadLetter struct {
	Topic string `yaml:"topic" json:"topic,omitempty"` // default: <first output topic>.dlq
}

// ManifestError is one thing wrong in a manifest: where, what, and what would
// be right.
type ManifestError struct {
	File  string
	Line  int // 0 when the field is absent
	Field string
	Msg   string
}

func (e *ManifestError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

// LoadManifest reads and validates a manifest from fsys. Every problem found
// is reported, each as a *ManifestError, joined into one error.
func LoadManifest(fsys fs.FS, path string) (*Manifest, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return ParseManifest(path, data)
}

// ParseManifest decodes and validates manifest text; file names it in errors.
func ParseManifest(file string, data []byte) (*Manifest, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", file, err)
	}
	m := &Manifest{file: file}
	v := validator{file: file, root: &root}
	checkKeys(&v, &root, reflect.TypeOf(m), "")
	if err := yaml.Unmarshal(data, m); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		v.errs = append(v.errs, typeErrors(file, &root, te)...)
		return nil, errors.Join(v.errs...)
	}
	m.applyDefaults()
	m.validate(&v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	m.splitSnapshotPorts()
	return m, nil
}

// File is the path the manifest was read from.
func (m *Manifest) File() string { return m.file }

// Every default of a manifest is set here, in one place.
func (m *Manifest) applyDefaults() {
	if m.Kind == "" {
		m.Kind = "DataProduct"
	}
	for i := range m.OutputPorts {
		p := &m.OutputPorts[i]
		if p.Kind == PortSnapshot {
			if p.Files == nil {
				p.Files = []string{"table", "history"}
			}
			continue
		}
		if p.Subject == "" && p.Topic != "" && (p.SubjectNaming == "" || p.SubjectNaming == string(schemas.TopicName)) {
			p.Subject = p.Topic + "-value" // other strategies need the schema: NewProduct sets them
		}
		if p.Compatibility == "" {
			p.Compatibility = "BACKWARD"
		}
	}
	for _, p := range m.OutputPorts {
		if m.DeadLetter.Topic == "" && p.Kind != PortSnapshot && p.Topic != "" {
			m.DeadLetter.Topic = p.Topic + ".dlq"
		}
	}
}

var (
	urnPattern   = regexp.MustCompile(`^urn:[a-z0-9][a-z0-9-]{0,31}:[^\s]+$`)
	topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
)

func (m *Manifest) validate(v *validator) {
	if m.APIVersion != "v1.0.0" {
		v.fail("apiVersion", "is %q; Meshlet reads ODPS manifests: write apiVersion: v1.0.0", m.APIVersion)
	}
	if m.Kind != "DataProduct" {
		v.fail("kind", "is %q; write kind: DataProduct", m.Kind)
	}
	if !urnPattern.MatchString(m.ID) {
		v.fail("id", "is %q; want a URN such as urn:dataproduct:inventory:products", m.ID)
	}
	if m.Name == "" {
		v.fail("name", "is missing; give the product a human-readable name")
	}
	if m.Domain == "" {
		v.fail("domain", "is missing; name the business domain that owns the product, e.g. inventory")
	}
	if len(m.InputPorts) == 0 {
		v.fail("inputPorts", "is empty; a product needs at least one input port with a topic and a format")
	}
	for i, p := range m.InputPorts {
		at := fmt.Sprintf("inputPorts[%d]", i)
		if p.Name == "" {
			v.fail(at+".name", "is missing; name the port, e.g. products-cdc")
		}
		if !topicPattern.MatchString(p.Topic) {
			v.fail(at+".topic", "is %q; want a Kafka topic name (letters, digits, '.', '_', '-')", p.Topic)
		}
		if !slices.Contains(cdc.Formats(), p.Format) {
			v.fail(at+".format", "is %q; known formats: %s", p.Format, strings.Join(cdc.Formats(), ", "))
		}
		switch p.Mode {
		case "", PortStream:
			if p.Table != "" || p.Key != "" || p.ValidTime != "" {
				v.fail(at+".mode", "is %q but table, key or validTime is set; write mode: table to materialize the port into state", p.Mode)
			}
		case "table":
			if p.Key == "" {
				v.fail(at+".key", "is missing; a table port names the column that keys its rows, e.g. key: id")
			}
		default:
			v.fail(at+".mode", "is %q; want stream or table", p.Mode)
		}
		switch p.Transactions {
		case "":
			if p.TransactionTopic != "" {
				v.fail(at+".transactionTopic", "is set but transactions is not; write transactions: whole to publish whole source transactions")
			}
		case "whole":
			if p.Format != "debezium-json" && p.Format != "debezium-avro" {
				v.fail(at+".transactions", "whole needs Debezium's transaction metadata; format %s has none", p.Format)
			}
			if !strings.HasSuffix(p.TransactionTopic, ".transaction") || !topicPattern.MatchString(p.TransactionTopic) {
				v.fail(at+".transactionTopic", "is %q; want the connector's transaction topic, <topic.prefix>.transaction (e.g. dbserver1.transaction)", p.TransactionTopic)
			}
		default:
			v.fail(at+".transactions", "is %q; want whole, or leave it out", p.Transactions)
		}
	}
	streams := 0
	for _, p := range m.OutputPorts {
		if p.Kind == "" || p.Kind == PortStream {
			streams++
		}
	}
	if streams == 0 {
		v.fail("outputPorts", "has no stream port; a product publishes through at least one output port with a topic and a schema")
	}
	// Several stream ports each publish a topic of their own; a handler
	// addresses a record to one by name (transforms.To).
	names, topics, subjects := map[string]int{}, map[string]int{}, map[string]int{}
	for i, p := range m.OutputPorts {
		at := fmt.Sprintf("outputPorts[%d]", i)
		if p.Kind != "" && p.Kind != PortStream {
			m.validateSnapshotPort(v, i, p)
			continue
		}
		m.refuseSnapshotFields(v, at, p)
		if p.Name == "" {
			v.fail(at+".name", "is missing; name the port, e.g. products")
		} else if j, dup := names[p.Name]; dup {
			v.fail(at+".name", "is %q, as outputPorts[%d] is; give each output port a name of its own", p.Name, j)
		} else {
			names[p.Name] = i
		}
		if !topicPattern.MatchString(p.Topic) {
			v.fail(at+".topic", "is %q; want a Kafka topic name (letters, digits, '.', '_', '-')", p.Topic)
		} else if j, dup := topics[p.Topic]; dup {
			v.fail(at+".topic", "is %q, as outputPorts[%d]'s is; each output port publishes a topic of its own", p.Topic, j)
		} else {
			topics[p.Topic] = i
		}
		if p.Subject != "" {
			if j, dup := subjects[p.Subject]; dup {
				v.fail(at+".subject", "is %q, as outputPorts[%d]'s is; each output port registers its schema under a subject of its own", p.Subject, j)
			}
			subjects[p.Subject] = i
		}
		if !strings.HasSuffix(p.Schema, ".avsc") {
			v.fail(at+".schema", "is %q; want the path of an Avro schema file (.avsc) relative to the manifest", p.Schema)
		}
		if _, err := schemas.ParseCompat(p.Compatibility); err != nil {
			v.fail(at+".compatibility", "%v", err)
		}
		naming, err := schemas.ParseSubjectNaming(p.SubjectNaming)
		if err != nil {
			v.fail(at+".subjectNaming", "%v", err)
		} else if naming != schemas.TopicName && p.Subject != "" {
			v.fail(at+".subject", "is set, but subjectNaming %s derives the subject; drop one of them", naming)
		}
		for k, a := range p.Policy.Actions {
			if a != "pass" && a != "mask" && a != "drop" {
				v.fail(at+".policy.actions."+k, "is %q; want pass, mask or drop", a)
			}
		}
		if c := p.Contract; c != nil && c.File != "" && (len(c.Fields) > 0 || len(c.Quality) > 0 || c.SLA != (contracts.SLA{})) {
			v.fail(at+".contract.file", "is set together with sla, fields or quality; a hand-written contract is the whole contract: move them into %s", c.File)
		}
	}
	if m.State.Retention != "" {
		if d, err := time.ParseDuration(m.State.Retention); err != nil || d <= 0 {
			v.fail("state.retention", "is %q; want a positive Go duration such as 720h", m.State.Retention)
		}
	}
	if m.Standbys < 0 {
		v.fail("standbys", "is %d; want how many partitions' logs each replica keeps warm copies of beside its own, 0 or more", m.Standbys)
	}
	if !topicPattern.MatchString(m.DeadLetter.Topic) {
		v.fail("deadLetter.topic", "is %q; want a Kafka topic name", m.DeadLetter.Topic)
	}
	for i, in := range m.InputPorts {
		for _, out := range append([]string{m.DeadLetter.Topic}, outputTopics(m)...) {
			if in.Topic == out {
				v.fail(fmt.Sprintf("inputPorts[%d].topic", i), "%q is also written by this product; reading your own output would loop", in.Topic)
			}
		}
	}
}

func outputTopics(m *Manifest) []string {
	var ts []string
	for _, p := range m.OutputPorts {
		if p.Kind != PortSnapshot {
			ts = append(ts, p.Topic)
		}
	}
	return ts
}

// validator collects errors and finds the line of each field in the YAML tree.
type validator struct {
	file string
	root *yaml.Node
	errs []error
}

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &ManifestError{File: v.file, Line: lineOf(v.root, field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// lineOf finds the line of a dotted path such as "outputPorts[0].schema", or
// of its nearest present parent; 0 if nothing of it is present.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := mappingValue(n, name)
		if next == nil {
			return line
		}
		line, n = next.Line, next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
