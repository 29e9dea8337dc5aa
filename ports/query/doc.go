// Package query is a data product's query port: an entity's current
// version, its version as of a system time and valid time, and its full
// bitemporal history, as JSON over HTTP.
//
// Current state is served from Redis (RedisStore), which the runtime
// updates after each committed batch, so any number of replicas answer it
// without the change log. As-of and history questions go to the change
// log's index (auditlog.Store), which answers them exactly as an auditor
// would with `meshlet asof` and `meshlet history`.
//
// Payloads are decoded with the writer schemas the runtime keeps in
// ROOT/schemas/<id>.avsc (Decoder), falling back to a schema registry.
package query
