package lineage

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrInvalidJob classes a Job that cannot be described in OpenLineage terms.
var ErrInvalidJob = errors.New("lineage: invalid job")

// Job describes a data product for lineage: who it is and which datasets it
// reads and writes.
type Job struct {
	// Namespace groups jobs; use the product's domain (e.g. "sales").
	Namespace string
	// Name is the data product's name, unique within Namespace.
	Name    string
	Inputs  []Dataset
	Outputs []Dataset
}

// Dataset is one dataset a job reads or writes. Names must be unique among
// a job's inputs and among its outputs: statistics are keyed by Name.
type Dataset struct {
	Namespace string // for Kafka: "kafka://host:port", see Kafka
	Name      string // for Kafka: the topic
	Fields    []Field
	// Lineage, on outputs only, says which input fields each output field
	// is computed from. Nil means: each output field comes from every input
	// field of the same name. An empty, non-nil map declares no lineage.
	Lineage map[string][]FieldRef
}

// Field is one field of a dataset's record schema, as an Avro record lists
// it: name, type (e.g. "string", "long", `["null","string"]`) and doc.
type Field struct {
	Name string
	Type string
	Doc  string
}

// FieldRef names a field of one of the job's inputs.
type FieldRef struct {
	Input string // the input dataset's Name
	Field string
}

// Kafka describes a Kafka topic the way the OpenLineage naming spec does:
// namespace "kafka://{host}:{port}" of the first bootstrap server, name = the
// topic.
func Kafka(bootstrap, topic string, fields ...Field) Dataset {
	return Dataset{Namespace: KafkaNamespace(bootstrap), Name: topic, Fields: fields}
}

// KafkaNamespace turns a bootstrap server list ("b1:9092,b2:9092", with or
// without a listener scheme such as "SASL_SSL://") into the OpenLineage
// namespace of the cluster: "kafka://b1:9092". It returns "" when bootstrap
// names no server.
func KafkaNamespace(bootstrap string) string {
	first, _, _ := strings.Cut(bootstrap, ",")
	first = strings.TrimSpace(first)
	if _, rest, ok := strings.Cut(first, "://"); ok {
		first = rest
	}
	if first == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(first); err != nil {
		first = net.JoinHostPort(first, kafkaDefaultPort)
	}
	return "kafka://" + first
}

// describe checks job and turns its datasets into the wire form with their
// static facets (schema, dataSource, columnLineage).
func describe(job Job, producer string) ([]InputDataset, []OutputDataset, error) {
	if job.Namespace == "" || job.Name == "" {
		return nil, nil, fmt.Errorf("%w: namespace %q and name %q must both be set", ErrInvalidJob, job.Namespace, job.Name)
	}
	inputs := make(map[string]Dataset, len(job.Inputs))
	for i, ds := range job.Inputs {
		if err := checkDataset("input", i, ds); err != nil {
			return nil, nil, err
		}
		if _, dup := inputs[ds.Name]; dup {
			return nil, nil, fmt.Errorf("%w: two inputs are named %q", ErrInvalidJob, ds.Name)
		}
		if ds.Lineage != nil {
			return nil, nil, fmt.Errorf("%w: input %q has column lineage; lineage belongs on outputs", ErrInvalidJob, ds.Name)
		}
		inputs[ds.Name] = ds
	}
	seen := make(map[string]bool, len(job.Outputs))
	for i, ds := range job.Outputs {
		if err := checkDataset("output", i, ds); err != nil {
			return nil, nil, err
		}
		if seen[ds.Name] {
			return nil, nil, fmt.Errorf("%w: two outputs are named %q", ErrInvalidJob, ds.Name)
		}
		seen[ds.Name] = true
		if err := checkLineage(ds, inputs); err != nil {
			return nil, nil, err
		}
	}

	ins := make([]InputDataset, len(job.Inputs))
	for i, ds := range job.Inputs {
		ins[i] = InputDataset{Namespace: ds.Namespace, Name: ds.Name, Facets: datasetFacets(ds, producer, nil)}
	}
	outs := make([]OutputDataset, len(job.Outputs))
	for i, ds := range job.Outputs {
		outs[i] = OutputDataset{Namespace: ds.Namespace, Name: ds.Name, Facets: datasetFacets(ds, producer, columnLineage(ds, job.Inputs, producer))}
	}
	return ins, outs, nil
}

func checkDataset(role string, i int, ds Dataset) error {
	if ds.Namespace == "" || ds.Name == "" {
		return fmt.Errorf("%w: %s %d: namespace %q and name %q must both be set", ErrInvalidJob, role, i, ds.Namespace, ds.Name)
	}
	if _, err := url.Parse(ds.Namespace); err != nil {
		return fmt.Errorf("%w: %s %q: namespace is not a URI: %w", ErrInvalidJob, role, ds.Name, err)
	}
	return nil
}

func checkLineage(out Dataset, inputs map[string]Dataset) error {
	for field, refs := range out.Lineage {
		if len(out.Fields) > 0 && !hasField(out, field) {
			return fmt.Errorf("%w: output %q: lineage for field %q, which its fields do not list", ErrInvalidJob, out.Name, field)
		}
		for _, ref := range refs {
			in, ok := inputs[ref.Input]
			if !ok {
				return fmt.Errorf("%w: output %q: field %q takes %q from input %q, which the job does not read", ErrInvalidJob, out.Name, field, ref.Field, ref.Input)
			}
			if len(in.Fields) > 0 && !hasField(in, ref.Field) {
				return fmt.Errorf("%w: output %q: field %q takes field %q from input %q, which has no such field", ErrInvalidJob, out.Name, field, ref.Field, ref.Input)
			}
		}
	}
	return nil
}

func hasField(ds Dataset, name string) bool {
	for _, f := range ds.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func datasetFacets(ds Dataset, producer string, lineage *ColumnLineageFacet) *DatasetFacets {
	f := &DatasetFacets{
		DataSource: &DataSourceFacet{
			BaseFacet: BaseFacet{Producer: producer, SchemaURL: dataSourceSchemaURL},
			Name:      ds.Namespace,
			URI:       strings.TrimSuffix(ds.Namespace, "/") + "/" + url.PathEscape(ds.Name),
		},
		ColumnLineage: lineage,
	}
	if len(ds.Fields) > 0 {
		fields := make([]SchemaField, len(ds.Fields))
		for i, fl := range ds.Fields {
			fields[i] = SchemaField{Name: fl.Name, Type: fl.Type, Description: fl.Doc}
		}
		f.Schema = &SchemaFacet{BaseFacet: BaseFacet{Producer: producer, SchemaURL: schemaSchemaURL}, Fields: fields}
	}
	return f
}

// columnLineage builds the facet for one output, or nil when it has none.
func columnLineage(out Dataset, inputs []Dataset, producer string) *ColumnLineageFacet {
	byName := make(map[string]Dataset, len(inputs))
	for _, in := range inputs {
		byName[in.Name] = in
	}
	fields := map[string]ColumnLineageField{}
	if out.Lineage != nil {
		for field, refs := range out.Lineage {
			if len(refs) == 0 {
				continue
			}
			src := make([]InputField, len(refs))
			for i, ref := range refs {
				in := byName[ref.Input]
				src[i] = InputField{Namespace: in.Namespace, Name: in.Name, Field: ref.Field}
			}
			fields[field] = ColumnLineageField{InputFields: src}
		}
	} else {
		for _, of := range out.Fields {
			var src []InputField
			for _, in := range inputs {
				if hasField(in, of.Name) {
					src = append(src, InputField{Namespace: in.Namespace, Name: in.Name, Field: of.Name})
				}
			}
			if len(src) > 0 {
				fields[of.Name] = ColumnLineageField{InputFields: src}
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &ColumnLineageFacet{BaseFacet: BaseFacet{Producer: producer, SchemaURL: columnLineageSchemaURL}, Fields: fields}
}
