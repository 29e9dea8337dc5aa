package contracts

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meshlet/meshlet/schemas"
)

// Spec is an output port's contract block in product.yaml: either a
// hand-written contract (File) or what to add to the contract generated
// from the manifest and the schema.
type Spec struct {
	// File is a hand-written ODCS contract, relative to the manifest. When
	// set, nothing below may be: the file is the contract.
	File string `yaml:"file"`
	// SLA becomes slaProperties.
	SLA SLA `yaml:"sla"`
	// Fields holds per-field classification and quality rules, by Avro
	// field name.
	Fields map[string]FieldSpec `yaml:"fields"`
	// Quality holds object-level rules, e.g. duplicateValues over several
	// fields (arguments.properties).
	Quality []Rule `yaml:"quality"`
	// Servers are where else the port's data can be read: the runtime
	// fills them from the manifest's snapshot output ports (not written in
	// product.yaml).
	Servers []Server `yaml:"-" json:"-"`
}

// SLA are the service levels a port promises. Each is "<number><unit>"
// (units ms, s, min or m, h, d, w, y) or free text such as "continuous".
type SLA struct {
	Latency   string `yaml:"latency"`   // source commit to published event
	Frequency string `yaml:"frequency"` // how often the data is updated
	Retention string `yaml:"retention"` // how long events stay on the topic
}

// FieldSpec is what the contract says of one field beyond its type.
type FieldSpec struct {
	Classification string `yaml:"classification"` // e.g. public, internal, confidential, restricted
	Quality        []Rule `yaml:"quality"`
}

// Rule is an ODCS quality rule as written in product.yaml, plus Meshlet's
// shorthand deadLetter: true for the customProperty that routes violating
// records to the dead-letter topic. A rule without an operator gets
// mustBe: 0 (no violation tolerated).
type Rule struct {
	Quality    `yaml:",inline"`
	DeadLetter bool `yaml:"deadLetter"`
}

// Product is what a contract takes from the product manifest.
type Product struct {
	ID          string // the product's URN
	Name        string
	Version     string
	Status      string // default active
	Domain      string
	Description string
	TeamName    string
	TeamEmail   string
}

// Port is one output port.
type Port struct {
	Name    string
	Version string // default: the product's
	Topic   string
	Subject string
	Schema  *schemas.Schema
	Spec    Spec
}

// Generate writes the contract of an output port from the manifest's
// values, the port's schema and its contract block. The result is
// validated against the ODCS JSON Schema and its rules compiled, so a
// contract Generate returns is one the runtime can enforce.
func Generate(p Product, port Port) (*Contract, error) {
	if port.Schema == nil {
		return nil, fmt.Errorf("contracts: port %s: no schema", port.Name)
	}
	if port.Spec.File != "" {
		return nil, fmt.Errorf("contracts: port %s: the contract is the hand-written %s; Load it instead", port.Name, port.Spec.File)
	}
	fields := port.Schema.Fields()
	byName := map[string]bool{}
	for _, f := range fields {
		byName[f.Name] = true
	}
	for name := range port.Spec.Fields {
		if !byName[name] {
			return nil, fmt.Errorf("contracts: port %s: contract.fields.%s: the schema %s has no such field", port.Name, name, port.Schema.RowName())
		}
	}
	c := &Contract{
		APIVersion:  APIVersion,
		Kind:        "DataContract",
		ID:          p.ID + ":" + port.Name,
		Name:        fmt.Sprintf("%s (%s)", p.Name, port.Name),
		Version:     cmpOr(port.Version, p.Version),
		Status:      cmpOr(p.Status, "active"),
		Domain:      p.Domain,
		DataProduct: p.Name,
		Description: &Description{
			Purpose: p.Description,
			Usage: fmt.Sprintf("Subscribe to Kafka topic %s. Values are Avro in the Confluent wire format, registered under subject %s; "+
				"every version carries its valid time (_valid_from, _valid_to) and system time (_system_from).", port.Topic, port.Subject),
		},
	}
	if c.Version == "" {
		return nil, fmt.Errorf("contracts: port %s: no version on the port or the product", port.Name)
	}
	if p.TeamName != "" || p.TeamEmail != "" {
		c.Team = &Team{Name: p.TeamName}
		if p.TeamEmail != "" {
			c.Team.Members = []TeamMember{{Username: p.TeamEmail, Role: "owner"}}
		}
	}
	obj := Object{
		Name:         port.Name,
		PhysicalName: port.Topic,
		PhysicalType: "topic",
		LogicalType:  "object",
		Description:  port.Schema.Doc(),
		CustomProperties: []CustomProperty{
			{Property: "avroRecord", Value: port.Schema.RowName()},
			{Property: "schemaSubject", Value: port.Subject},
		},
	}
	for _, f := range fields {
		prop := property(f)
		spec := port.Spec.Fields[f.Name]
		prop.Classification = spec.Classification
		for i, r := range spec.Quality {
			q, err := r.odcs()
			if err != nil {
				return nil, fmt.Errorf("contracts: port %s: contract.fields.%s.quality[%d]: %w", port.Name, f.Name, i, err)
			}
			prop.Quality = append(prop.Quality, q)
		}
		obj.Properties = append(obj.Properties, prop)
	}
	for i, r := range port.Spec.Quality {
		q, err := r.odcs()
		if err != nil {
			return nil, fmt.Errorf("contracts: port %s: contract.quality[%d]: %w", port.Name, i, err)
		}
		obj.Quality = append(obj.Quality, q)
	}
	c.Schema = []Object{obj}
	seen := map[string]bool{}
	for _, sv := range port.Spec.Servers {
		if sv.Server == "" || seen[sv.Server] {
			return nil, fmt.Errorf("contracts: port %s: server %q: want a unique, non-empty server id", port.Name, sv.Server)
		}
		seen[sv.Server] = true
		sv.CustomProperties = slices.Clone(sv.CustomProperties)
		c.Servers = append(c.Servers, sv)
	}
	for _, s := range []struct{ name, value string }{
		{"latency", port.Spec.SLA.Latency}, {"frequency", port.Spec.SLA.Frequency}, {"retention", port.Spec.SLA.Retention},
	} {
		if s.value == "" {
			continue
		}
		sla, err := slaProperty(s.name, s.value)
		if err != nil {
			return nil, fmt.Errorf("contracts: port %s: contract.sla.%s: %w", port.Name, s.name, err)
		}
		c.SLAProperties = append(c.SLAProperties, sla)
	}

	text, err := c.YAML()
	if err != nil {
		return nil, err
	}
	if err := Validate(text); err != nil {
		return nil, fmt.Errorf("contracts: port %s: generated contract: %w", port.Name, err)
	}
	if _, err := NewChecker(c, port.Name); err != nil {
		return nil, fmt.Errorf("contracts: port %s: %w", port.Name, err)
	}
	return c, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// odcs turns the manifest's rule into the contract's.
func (r Rule) odcs() (Quality, error) {
	q := r.Quality
	q.CustomProperties = slices.Clone(q.CustomProperties)
	if q.Type == "" && q.Metric == "" && q.Rule == "" {
		return q, fmt.Errorf("a rule needs a metric (%s) or a type", strings.Join(metrics, ", "))
	}
	if (q.Type == "" || q.Type == "library") && countOperators(q) == 0 {
		zero := 0
		q.MustBe = zero
	}
	if r.DeadLetter {
		for _, cp := range q.CustomProperties {
			if cp.Property == OnViolationProperty {
				return q, fmt.Errorf("deadLetter: true and a %s custom property: keep one", OnViolationProperty)
			}
		}
		q.CustomProperties = append(q.CustomProperties, CustomProperty{Property: OnViolationProperty, Value: OnViolationDeadLetter})
	}
	return q, nil
}

// property describes one Avro field the ODCS way.
func property(f schemas.Field) Property {
	p := Property{
		Name:         f.Name,
		Description:  f.Doc,
		PhysicalType: f.Physical,
		Required:     !f.Nullable,
	}
	p.LogicalType, p.LogicalTypeOptions = logicalType(f)
	switch {
	case f.Type == "record":
		for _, sub := range f.Fields {
			p.Properties = append(p.Properties, property(sub))
		}
	case f.Type == "array" && f.Items != nil:
		items := property(*f.Items)
		items.Name, items.Required = "", false
		p.Items = &items
	}
	return p
}

// logicalType maps an Avro type to ODCS's logical types.
func logicalType(f schemas.Field) (string, map[string]any) {
	switch f.Logical {
	case "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros":
		return "timestamp", nil
	case "date":
		return "date", nil
	case "time-millis", "time-micros":
		return "time", nil
	case "decimal":
		return "number", nil
	case "uuid":
		return "string", map[string]any{"format": "uuid"}
	}
	switch f.Type {
	case "boolean":
		return "boolean", nil
	case "int":
		return "integer", map[string]any{"format": "i32"}
	case "long":
		return "integer", map[string]any{"format": "i64"}
	case "float":
		return "number", map[string]any{"format": "f32"}
	case "double":
		return "number", map[string]any{"format": "f64"}
	case "string", "enum":
		return "string", nil
	case "bytes", "fixed":
		return "string", map[string]any{"format": "binary"}
	case "record", "map":
		return "object", nil
	case "array":
		return "array", nil
	}
	return "", nil // null or a general union: the physical type says it all
}

var slaPattern = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w|y)$`)

// slaProperty parses "5m" into value 5, unit min; free text is kept as the
// value.
func slaProperty(name, value string) (SLAProperty, error) {
	m := slaPattern.FindStringSubmatch(strings.TrimSpace(value))
	if m == nil {
		if strings.ContainsAny(value, "0123456789") {
			return SLAProperty{}, fmt.Errorf("%q: want a number and a unit (ms, s, min, h, d, w, y), e.g. 5min, or words such as continuous", value)
		}
		return SLAProperty{Property: name, Value: value}, nil
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return SLAProperty{}, err
	}
	unit := m[2]
	if unit == "m" {
		unit = "min" // ODCS units follow ISO, where m is a metre; Go's duration m is a minute
	}
	var v any = n
	if n == float64(int64(n)) {
		v = int64(n)
	}
	return SLAProperty{Property: name, Value: v, Unit: unit, Description: slaDescriptions[name]}, nil
}

// slaDescriptions say how Meshlet measures each service level it states.
var slaDescriptions = map[string]string{
	"latency": "p99 of the time from an event (its source commit time, or its arrival on the input topic when that is later, " +
		"so a backfill of old changes is not late) to the commit of the Kafka transaction that published it",
	"retention": "how long events stay on the output topic",
}
