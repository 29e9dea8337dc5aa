// Package lineage emits OpenLineage run events (core spec 2-0-2) for a data
// product, so a lineage backend such as Marquez can draw which topics a
// product reads and writes, and watch it run.
//
// # Why a small emitter and not the official client
//
// The official Go client (github.com/OpenLineage/openlineage/client/go) is
// not available through the module proxy this project builds with. This
// package therefore writes the wire format itself and keeps it behind one
// interface, [Transport], whose single method takes a [*RunEvent]. The event
// structs mirror the JSON of the spec field for field, so swapping in the
// official client later means writing one Transport that converts a RunEvent,
// or replacing this package's few constructors; callers of [Start] do not
// change. The tests validate every event this package builds against the
// official JSON Schemas, vendored under testdata/spec (see the NOTICE there).
//
// # The life of a streaming run
//
// A data product is a streaming job: it has no natural end. One process
// lifetime is one run, identified by a UUIDv7 whose timestamp is the start.
//
//	Start    START    job + run facets; every dataset with its schema,
//	                  dataSource and (outputs) columnLineage facets
//	Running  RUNNING  every dataset by name, with inputStatistics /
//	                  outputStatistics where the caller has counts
//	Stop     ABORT    when the product is stopped (err nil or context.Canceled):
//	                  a stream is never "complete", so COMPLETE is not used
//	         FAIL     for any other error, with an errorMessage facet
//
// [Run.Keep] sends RUNNING on a fixed interval until its context ends. A
// lineage backend being down must never stop a product, so Keep logs the
// first failure of an outage and the recovery, nothing in between, and keeps
// going.
//
// Statistics are cumulative: the rowCount and size in a RUNNING or terminal
// event count everything read from (or written to) the dataset since this
// run's START, not since the previous event. A consumer needs only the latest
// event of a run, and a lost event loses nothing.
//
// # Facets
//
// Each facet carries _producer (the producer URI, by default
// https://github.com/meshlet/meshlet) and _schemaURL, the JSON pointer to the
// schema version it was built for:
//
//	job      jobType            processingType STREAMING, integration MESHLET,
//	                            jobType DATA_PRODUCT, emissionPattern
//	                            PERIODIC / ACCUMULATIVE
//	run      processing_engine  name "meshlet", version of the binary
//	run      errorMessage       on FAIL, programmingLanguage "GO"
//	dataset  schema             the fields the caller lists (name, type, doc)
//	dataset  dataSource         name = namespace, uri = namespace/topic
//	output   columnLineage      output field <- input fields; by default each
//	                            output field comes from the input fields of the
//	                            same name
//	input    inputStatistics    rowCount, size (cumulative)
//	output   outputStatistics   rowCount, size (cumulative)
//
// Kafka datasets follow the OpenLineage naming spec: namespace
// "kafka://{host}:{port}" of the first bootstrap server, name = topic
// ([Kafka] builds one).
//
// # Crash rule
//
// A process killed with SIGKILL cannot say goodbye, and a run left open in
// the backend looks alive forever. With [WithStateDir], Start writes the run
// id to StateDir/openlineage-run.json (write to a temporary file, then
// rename, so the file is whole or absent) before it sends START, and Stop
// removes it after the terminal event is delivered. A Start that finds the
// file left behind first closes that run: FAIL with an errorMessage saying
// the process ended without stopping the run. If Stop could not deliver its
// terminal event, it records the event in the file instead, and the next
// Start sends that (ABORT or FAIL with the original message). One StateDir
// belongs to one product process; replicas need one each.
//
// # Transports
//
// [HTTPTransport] POSTs one JSON event to {URL}/api/v1/lineage (Marquez's
// endpoint; configurable) with an optional Bearer API key; a non-2xx answer is
// a [*StatusError] naming the status and the start of the body.
// [FileTransport] appends one JSON object per line. [Multi] sends to several.
package lineage
