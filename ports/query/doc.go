// Package query is a data product's query port: an entity's current
// version, its version as of a system time and valid time, and its
// bitemporal history (whole, or as believed at a system time), as JSON
// over HTTP. Every answer is a version with both periods, derived as
// auditlog's package doc ("Bitemporal queries") says, so the three agree:
// the as-of answer is the row of the history as of then that holds the
// valid time, and the current one the row believed now that holds now.
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
