package contracts

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// APIVersion is the ODCS version Meshlet writes and validates against.
const APIVersion = "v3.1.0"

// Contract is an ODCS v3.1 data contract: the part of the standard Meshlet
// writes and reads. A hand-written contract may use any other part of the
// standard; it is validated in full and the rest is kept in Source.
type Contract struct {
	APIVersion        string           `yaml:"apiVersion"`
	Kind              string           `yaml:"kind"`
	ID                string           `yaml:"id"`
	Name              string           `yaml:"name,omitempty"`
	Version           string           `yaml:"version"`
	Status            string           `yaml:"status"`
	Domain            string           `yaml:"domain,omitempty"`
	DataProduct       string           `yaml:"dataProduct,omitempty"`
	Tenant            string           `yaml:"tenant,omitempty"`
	Tags              []string         `yaml:"tags,omitempty"`
	Description       *Description     `yaml:"description,omitempty"`
	Team              *Team            `yaml:"team,omitempty"`
	Servers           []Server         `yaml:"servers,omitempty"`
	Schema            []Object         `yaml:"schema,omitempty"`
	SLAProperties     []SLAProperty    `yaml:"slaProperties,omitempty"`
	CustomProperties  []CustomProperty `yaml:"customProperties,omitempty"`
	ContractCreatedTs string           `yaml:"contractCreatedTs,omitempty"`

	source []byte // the YAML it was read from, when read
}

// Description says what the data is for.
type Description struct {
	Purpose     string `yaml:"purpose,omitempty"`
	Usage       string `yaml:"usage,omitempty"`
	Limitations string `yaml:"limitations,omitempty"`
}

// Team owns the data.
type Team struct {
	Name        string       `yaml:"name,omitempty"`
	Description string       `yaml:"description,omitempty"`
	Members     []TeamMember `yaml:"members,omitempty"`
}

// TeamMember is one person (or mailbox) of a Team.
type TeamMember struct {
	Username    string `yaml:"username"`
	Name        string `yaml:"name,omitempty"`
	Role        string `yaml:"role,omitempty"`
	Description string `yaml:"description,omitempty"`
}

// Server is one place the contract's data can be read from, in ODCS's
// shape: an identifier, a type (local, s3, azure, kafka, custom, ...) and
// the fields that type takes. Meshlet writes one for each snapshot output
// port, where the port's Parquet snapshots are kept.
type Server struct {
	Server      string `yaml:"server"`
	Type        string `yaml:"type"`
	Description string `yaml:"description,omitempty"`
	Environment string `yaml:"environment,omitempty"`
	// Location is a URL (s3, azure, custom); Path a file path (local).
	Location         string           `yaml:"location,omitempty"`
	Path             string           `yaml:"path,omitempty"`
	EndpointURL      string           `yaml:"endpointUrl,omitempty"`
	Format           string           `yaml:"format,omitempty"`
	CustomProperties []CustomProperty `yaml:"customProperties,omitempty"`
}

// Object is one element of the contract's schema: for Meshlet, the record
// an output port publishes.
type Object struct {
	Name             string           `yaml:"name"`
	PhysicalName     string           `yaml:"physicalName,omitempty"`
	PhysicalType     string           `yaml:"physicalType,omitempty"`
	LogicalType      string           `yaml:"logicalType,omitempty"`
	BusinessName     string           `yaml:"businessName,omitempty"`
	Description      string           `yaml:"description,omitempty"`
	Tags             []string         `yaml:"tags,omitempty"`
	Properties       []Property       `yaml:"properties,omitempty"`
	Quality          []Quality        `yaml:"quality,omitempty"`
	CustomProperties []CustomProperty `yaml:"customProperties,omitempty"`
}

// Property is one field of an Object (or of a nested object, or an array's
// items, where Name is empty).
type Property struct {
	Name               string           `yaml:"name,omitempty"`
	BusinessName       string           `yaml:"businessName,omitempty"`
	Description        string           `yaml:"description,omitempty"`
	LogicalType        string           `yaml:"logicalType,omitempty"`
	LogicalTypeOptions map[string]any   `yaml:"logicalTypeOptions,omitempty"`
	PhysicalType       string           `yaml:"physicalType,omitempty"`
	Required           bool             `yaml:"required,omitempty"`
	Unique             bool             `yaml:"unique,omitempty"`
	PrimaryKey         bool             `yaml:"primaryKey,omitempty"`
	PrimaryKeyPosition int              `yaml:"primaryKeyPosition,omitempty"`
	Classification     string           `yaml:"classification,omitempty"`
	Examples           []any            `yaml:"examples,omitempty"`
	Tags               []string         `yaml:"tags,omitempty"`
	Properties         []Property       `yaml:"properties,omitempty"`
	Items              *Property        `yaml:"items,omitempty"`
	Quality            []Quality        `yaml:"quality,omitempty"`
	CustomProperties   []CustomProperty `yaml:"customProperties,omitempty"`
}

// Quality is one data quality rule, in ODCS's shape: a library metric
// (nullValues, invalidValues, ...) with arguments, compared to a threshold
// by one operator (mustBe, mustBeLessThan, ...).
type Quality struct {
	Name           string         `yaml:"name,omitempty"`
	Description    string         `yaml:"description,omitempty"`
	Type           string         `yaml:"type,omitempty"` // library (the default), text, sql, custom
	Metric         string         `yaml:"metric,omitempty"`
	Rule           string         `yaml:"rule,omitempty"` // deprecated spelling of Metric
	Arguments      map[string]any `yaml:"arguments,omitempty"`
	Unit           string         `yaml:"unit,omitempty"` // rows (the default) or percent
	Dimension      string         `yaml:"dimension,omitempty"`
	Severity       string         `yaml:"severity,omitempty"`
	BusinessImpact string         `yaml:"businessImpact,omitempty"`
	Method         string         `yaml:"method,omitempty"`
	Scheduler      string         `yaml:"scheduler,omitempty"`
	Schedule       string         `yaml:"schedule,omitempty"`
	Query          string         `yaml:"query,omitempty"`          // type sql
	Engine         string         `yaml:"engine,omitempty"`         // type custom
	Implementation any            `yaml:"implementation,omitempty"` // type custom
	Tags           []string       `yaml:"tags,omitempty"`

	MustBe                 any       `yaml:"mustBe,omitempty"`
	MustNotBe              any       `yaml:"mustNotBe,omitempty"`
	MustBeGreaterThan      *float64  `yaml:"mustBeGreaterThan,omitempty"`
	MustBeGreaterOrEqualTo *float64  `yaml:"mustBeGreaterOrEqualTo,omitempty"`
	MustBeLessThan         *float64  `yaml:"mustBeLessThan,omitempty"`
	MustBeLessOrEqualTo    *float64  `yaml:"mustBeLessOrEqualTo,omitempty"`
	MustBeBetween          []float64 `yaml:"mustBeBetween,omitempty"`
	MustNotBeBetween       []float64 `yaml:"mustNotBeBetween,omitempty"`

	CustomProperties []CustomProperty `yaml:"customProperties,omitempty"`
}

// SLAProperty is one service-level agreement, e.g. latency 5 min.
type SLAProperty struct {
	Property    string `yaml:"property"`
	Value       any    `yaml:"value"`
	ValueExt    any    `yaml:"valueExt,omitempty"`
	Unit        string `yaml:"unit,omitempty"`
	Element     string `yaml:"element,omitempty"`
	Driver      string `yaml:"driver,omitempty"`
	Description string `yaml:"description,omitempty"`
}

// CustomProperty is a key/value extension, as ODCS allows almost anywhere.
type CustomProperty struct {
	Property    string `yaml:"property"`
	Value       any    `yaml:"value"`
	Description string `yaml:"description,omitempty"`
}

// Load reads, validates and parses a contract file.
func Load(path string) (*Contract, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("contracts: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data against the ODCS JSON Schema and decodes it; name
// (usually the file) prefixes errors.
func Parse(name string, data []byte) (*Contract, error) {
	if err := Validate(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Contract{}
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.source = bytes.Clone(data)
	return c, nil
}

// YAML is the contract as written: the text it was read from, or the
// generated contract marshalled.
func (c *Contract) YAML() ([]byte, error) {
	if c.source != nil {
		return bytes.Clone(c.source), nil
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("contracts: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("contracts: %w", err)
	}
	return b.Bytes(), nil
}

// Object returns the schema object named name, or the only one when name
// is empty.
func (c *Contract) Object(name string) (*Object, error) {
	if name == "" {
		if len(c.Schema) != 1 {
			return nil, fmt.Errorf("contracts: contract %s has %d schema objects; name one", c.ID, len(c.Schema))
		}
		return &c.Schema[0], nil
	}
	for i := range c.Schema {
		if c.Schema[i].Name == name {
			return &c.Schema[i], nil
		}
	}
	return nil, fmt.Errorf("contracts: contract %s has no schema object %q", c.ID, name)
}
