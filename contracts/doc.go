// Package contracts gives every output port an ODCS v3.1 data contract
// (Open Data Contract Standard, bitol.io) and enforces its quality rules
// on the stream.
//
// # Where a contract comes from
//
// Generate writes one from the product manifest, the port's Avro schema
// and the port's contract block (Spec): identity (id "<product id>:<port>",
// version, status, domain, dataProduct, team), one schema object named
// after the port (physicalType topic, physicalName the topic) whose
// properties are the published Avro fields, meta fields included. Each
// property gets an ODCS logicalType (integer, number, string, boolean,
// timestamp, date, time, object, array), the Avro type as physicalType,
// required for every non-nullable field, and the classification and
// quality rules the Spec gives it. SLA values ("5m", "1d", "7y", or words
// such as "continuous") become slaProperties latency, frequency and
// retention. A generated contract is validated before it is returned.
//
// A hand-written contract (Spec.File) is read with Load and validated in
// full against the official ODCS v3.1.0 JSON Schema, embedded from
// odcs-json-schema-v3.1.0.json (Apache-2.0, Bitol; see NOTICE). Validate
// reports every problem with its JSON path and YAML line.
//
// # Quality rules on a stream
//
// ODCS library metrics count bad values in a dataset and compare the count
// with one operator. A stream has no end to count to, so Meshlet judges
// them record by record over a tumbling window of records (DefaultWindow,
// or arguments.window on the rule, a Meshlet argument):
//
//	nullValues       the field is null
//	missingValues    the value is in arguments.missingValues (null allowed)
//	invalidValues    a non-null value outside arguments.validValues, not
//	                 matching arguments.pattern (RE2, unanchored unless the
//	                 pattern anchors it), or outside a range written with
//	                 ODCS's operator names inside arguments:
//	                 mustBeGreaterThan, mustBeGreaterOrEqualTo,
//	                 mustBeLessThan, mustBeLessOrEqualTo, mustBeBetween
//	duplicateValues  another entity (record key) holds the same non-null
//	                 value, among the last window entities seen; an entity
//	                 keeps its own value across versions, changing it or
//	                 Retract releases the old one. On an object, over the
//	                 fields in arguments.properties together.
//
// The rule's operator becomes the number of bad records a window tolerates:
// mustBe: 0 none; mustBeLessThan: n, n-1; mustBeLessOrEqualTo: n, n;
// mustBeBetween: [0, n], n; with unit: percent, that share of the window.
// Every bad record counts (RuleStats.Bad); those beyond the tolerance are
// violations. Lower bounds, exact counts other than 0 and rowCount cannot
// fail on any one record and are refused; text, sql and custom rules are
// kept in the contract and listed by Checker.Unchecked.
//
// # What a violation does
//
// By default it is counted. A rule whose customProperties hold
// {property: meshletOnViolation, value: deadLetter}
// (deadLetter: true in product.yaml writes it) routes the record to the
// dead-letter topic instead of the output topic. Counters per rule
// (Checker.Stats) carry the port's object name, for the observability port.
//
// # Checking records
//
// NewChecker compiles one port's rules once. Check takes the handler's
// output value: a struct with avro tags (bound once per Go type, then read
// with a per-field typed reader: no allocation for scalar fields) or a
// map[string]any.
package contracts
