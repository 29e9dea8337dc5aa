package lineage

import (
	"encoding/json"
	"fmt"
	"time"
)

// Schema URLs: the JSON pointer of the schema each object is built for. The
// facet versions are the ones vendored under testdata/spec, so every event
// this package emits is checked against exactly the schema it names.
const (
	// RunEventSchemaURL is the schemaURL of every event: core spec 2-0-2.
	RunEventSchemaURL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

	jobTypeSchemaURL          = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
	processingEngineSchemaURL = "https://openlineage.io/spec/facets/1-1-0/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"
	errorMessageSchemaURL     = "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
	schemaSchemaURL           = "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
	dataSourceSchemaURL       = "https://openlineage.io/spec/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet"
	columnLineageSchemaURL    = "https://openlineage.io/spec/facets/1-0-1/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
	outputStatisticsSchemaURL = "https://openlineage.io/spec/1-0-1/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"
	inputStatisticsSchemaURL  = "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet"
)

// EventType is the run state transition an event reports.
type EventType string

// The event types of OpenLineage 2-0-2.
const (
	EventStart    EventType = "START"
	EventRunning  EventType = "RUNNING"
	EventComplete EventType = "COMPLETE"
	EventAbort    EventType = "ABORT"
	EventFail     EventType = "FAIL"
	EventOther    EventType = "OTHER"
)

// RunEvent is an OpenLineage RunEvent as it goes on the wire.
type RunEvent struct {
	EventType EventType       `json:"eventType"`
	EventTime Timestamp       `json:"eventTime"`
	Run       RunInfo         `json:"run"`
	Job       JobInfo         `json:"job"`
	Inputs    []InputDataset  `json:"inputs,omitempty"`
	Outputs   []OutputDataset `json:"outputs,omitempty"`
	Producer  string          `json:"producer"`
	SchemaURL string          `json:"schemaURL"`
}

// RunInfo identifies the run an event belongs to.
type RunInfo struct {
	RunID  string     `json:"runId"`
	Facets *RunFacets `json:"facets,omitempty"`
}

// JobInfo identifies the job (the data product) that runs.
type JobInfo struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Facets    *JobFacets `json:"facets,omitempty"`
}

// InputDataset is a dataset the run reads.
type InputDataset struct {
	Namespace   string              `json:"namespace"`
	Name        string              `json:"name"`
	Facets      *DatasetFacets      `json:"facets,omitempty"`
	InputFacets *InputDatasetFacets `json:"inputFacets,omitempty"`
}

// OutputDataset is a dataset the run writes.
type OutputDataset struct {
	Namespace    string               `json:"namespace"`
	Name         string               `json:"name"`
	Facets       *DatasetFacets       `json:"facets,omitempty"`
	OutputFacets *OutputDatasetFacets `json:"outputFacets,omitempty"`
}

// BaseFacet is what every facet carries: who produced it and the schema it
// follows. The spec prefixes both with an underscore so they never clash
// with a facet's own fields.
type BaseFacet struct {
	Producer  string `json:"_producer"`
	SchemaURL string `json:"_schemaURL"`
}

// RunFacets are the run facets Meshlet emits.
type RunFacets struct {
	ProcessingEngine *ProcessingEngineFacet `json:"processing_engine,omitempty"`
	ErrorMessage     *ErrorMessageFacet     `json:"errorMessage,omitempty"`
}

// ProcessingEngineFacet names the engine running the job.
type ProcessingEngineFacet struct {
	BaseFacet
	Version string `json:"version"`
	Name    string `json:"name,omitempty"`
}

// ErrorMessageFacet says why a run failed.
type ErrorMessageFacet struct {
	BaseFacet
	Message             string `json:"message"`
	ProgrammingLanguage string `json:"programmingLanguage"`
	StackTrace          string `json:"stackTrace,omitempty"`
}

// JobFacets are the job facets Meshlet emits.
type JobFacets struct {
	JobType *JobTypeFacet `json:"jobType,omitempty"`
}

// JobTypeFacet says what kind of job this is.
type JobTypeFacet struct {
	BaseFacet
	ProcessingType  string           `json:"processingType"`
	Integration     string           `json:"integration"`
	JobType         string           `json:"jobType,omitempty"`
	EmissionPattern *EmissionPattern `json:"emissionPattern,omitempty"`
}

// EmissionPattern tells consumers when events come and what they hold.
type EmissionPattern struct {
	EventTrigger      string `json:"eventTrigger"`
	EventCompleteness string `json:"eventCompleteness"`
}

// DatasetFacets are the dataset facets Meshlet emits.
type DatasetFacets struct {
	Schema        *SchemaFacet        `json:"schema,omitempty"`
	DataSource    *DataSourceFacet    `json:"dataSource,omitempty"`
	ColumnLineage *ColumnLineageFacet `json:"columnLineage,omitempty"`
}

// SchemaFacet lists a dataset's fields.
type SchemaFacet struct {
	BaseFacet
	Fields []SchemaField `json:"fields"`
}

// SchemaField is one field of a SchemaFacet.
type SchemaField struct {
	Name        string `json:"name"`
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
}

// DataSourceFacet names the system a dataset lives in.
type DataSourceFacet struct {
	BaseFacet
	Name string `json:"name,omitempty"`
	URI  string `json:"uri,omitempty"`
}

// ColumnLineageFacet maps each output field to the input fields it is
// computed from.
type ColumnLineageFacet struct {
	BaseFacet
	Fields map[string]ColumnLineageField `json:"fields"`
}

// ColumnLineageField lists the sources of one output field.
type ColumnLineageField struct {
	InputFields []InputField `json:"inputFields"`
}

// InputField is one field of one input dataset.
type InputField struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Field     string `json:"field"`
}

// InputDatasetFacets are the input facets Meshlet emits.
type InputDatasetFacets struct {
	InputStatistics *InputStatisticsFacet `json:"inputStatistics,omitempty"`
}

// InputStatisticsFacet counts what the run has read from a dataset since
// START.
type InputStatisticsFacet struct {
	BaseFacet
	RowCount int64 `json:"rowCount"`
	Size     int64 `json:"size"`
}

// OutputDatasetFacets are the output facets Meshlet emits.
type OutputDatasetFacets struct {
	OutputStatistics *OutputStatisticsFacet `json:"outputStatistics,omitempty"`
}

// OutputStatisticsFacet counts what the run has written to a dataset since
// START.
type OutputStatisticsFacet struct {
	BaseFacet
	RowCount int64 `json:"rowCount"`
	Size     int64 `json:"size"`
}

// Timestamp is an event time. It marshals as RFC 3339 in UTC with
// millisecond precision ("2026-03-04T05:06:07.891Z").
type Timestamp time.Time

const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Time returns t as a time.Time.
func (t Timestamp) Time() time.Time { return time.Time(t) }

// MarshalJSON writes t in UTC, truncated to the millisecond.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(timestampLayout) + `"`), nil
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("lineage: event time: %w", err)
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("lineage: event time: %w", err)
	}
	*t = Timestamp(parsed)
	return nil
}
