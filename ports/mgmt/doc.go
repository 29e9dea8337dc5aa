// Package mgmt is a data product's management port: one HTTP listener,
// versioned paths, for discovery, observability, control, the query port
// and the access log. The runtime fills in a Server with what it has and
// mounts Server.Handler.
//
// # Routes
//
//	route                           role needed                    answers
//	GET  /v1/product                open                           the manifest, JSON
//	GET  /v1/contracts              open                           output ports with contract id, version, status, link
//	GET  /v1/contracts/{port}       open                           the port's ODCS contract, application/yaml
//	GET  /v1/schemas                open                           per output port: subject, registry id, versions
//	GET  /v1/schemas/{port}         open                           the published .avsc
//	GET  /v1/docs                   open                           a generated page, text/markdown
//	GET  /v1/owners                 open                           owning team, email, contract team members
//	GET  /v1/lineage                open                           input topics -> product -> output topics, and
//	                                                               upstream/downstream products when the mesh knows them
//	GET  /metrics                   open                           Prometheus exposition of Server.Gatherer
//	GET  /v1/status                 open                           state, uptime, measurements, each SLO judged
//	GET  /healthz                   open                           200, or 503 once stopping
//	GET  /v1/changelog              open                           each change log's size and latest signed
//	                                                               checkpoint, its signature and tree root checked
//	GET  /v1/mesh/...               open                           the mesh registry (ports/mesh.Handler)
//	GET  /ui/                       open                           the page (ports/web); / redirects here. It
//	                                                               holds no data: it asks the routes here
//	                                                               with the token typed into it
//	GET  /v1/whoami                 consumer, auditor, owner,      the token's principal and role
//	                                governance
//	GET  /v1/entities?q=&after=&limit=
//	                                consumer, auditor, owner,      the keys believed now, filtered, paged
//	                                governance
//	GET  /v1/entities/{key}         consumer, auditor, owner,      the query port: current state
//	                                governance
//	GET  /v1/entities/{key}?asOf=T&validAt=V
//	                                auditor, owner, governance     the query port: as of a time
//	GET  /v1/entities/{key}/history auditor, owner, governance     the query port: every version
//	                                                               (?offset=&limit=, ?entries=true)
//	GET  /v1/corrections?from=T1&to=T2
//	                                auditor, owner, governance     back-dated entries recorded in [T1, T2)
//	GET  /v1/changelog/verify       auditor, owner, governance     every log walked against its checkpoint
//	GET  /v1/deadletters            auditor, owner, governance     the newest committed dead letters, with
//	                                                               class and origin, never the value (?limit=N)
//	POST /v1/control/pause          owner, governance              202 {"command_id"}, Location to its outcomes
//	POST /v1/control/resume         owner, governance              202
//	POST /v1/control/reprocess      owner, governance              202; body {"topic","partition","offset"}
//	PUT  /v1/control/policies       governance                     202; body {"actions": {"pii": "mask"}}
//	POST /v1/control/forget         governance                     202; body {"subject": "..."}
//	POST /v1/control/snapshot       owner, governance              202; body {"port": "..."} or none: write
//	                                                               a snapshot to the snapshot port(s) now
//	GET  /v1/control/commands/{id}  owner, governance, auditor     each replica's outcome of a command
//	GET  /v1/accesses               auditor, governance            the access log, newest first
//	                                                               (?limit=N, default 100; ?principal=X)
//
// Open routes say what the product is and how it is doing; they carry no
// entity data and need no token. Every other route needs a bearer token
// (Authorization: Bearer <token>).
//
// # Roles
//
// Tokens (LoadTokens, ParseTokenList) map to a Principal with one role.
// A consumer reads current state only: a query with asOf or validAt
// (in any letter case, even empty), an unparseable query string, or a
// path ending in /history needs auditor, owner or governance: a consumer
// sees what the product holds true now, not the versions it superseded.
// Owners run the product (pause, resume, reprocess, snapshot); policies and forget
// change what data is kept and shown, so they are governance's alone.
// Auditors read the past, the access log and command outcomes, and change
// nothing.
//
// No or an unknown token is a 401 with WWW-Authenticate: Bearer
// realm="meshlet"; a valid token with the wrong role is a 403. Both answer
// {"error": "...", "need": ["owner", "governance"], "have": "consumer"}.
// Tokens are kept only as SHA-256 hashes; a presented token is hashed and
// looked up by hash. A token file may hold plain tokens for development:
// whoever reads the file holds them, so use sha256 entries elsewhere.
//
// # Access log
//
// Every request to a guarded route, allowed or not, including the wrong
// method or an unknown /v1/control/ path, becomes an Access: time,
// principal and role (empty without a valid token), method, path and
// query, status, decision (allowed, no token, bad token, wrong role),
// remote address (the connection's: X-Forwarded-For is not trusted) and
// duration. The newest DefaultAccessLogSize (or
// Server.AccessLogSize) are kept in memory for GET /v1/accesses, and no
// more than Limits.AccessLogBytes together (4 MiB): the oldest go first
// when either bound is reached. Each is one slog line (Info when allowed,
// Warn when refused), and Server.Sink, when set, receives it too. The
// token is never recorded: not in the log, not in the target, where the
// presented token and credential-named query parameters are replaced by
// REDACTED. What a request brings is cut before it is kept: the target to
// Limits.MaxTargetBytes (1 KiB, ending "...[cut: N bytes]"), the method to
// 32 bytes, and copied, so a kept access never pins the request's buffers.
//
// # Listening
//
// Server.Listen opens the port. An address without a host (":8080")
// listens on loopback only; to expose the port, give the host
// ("0.0.0.0:8080", "[::]:8080", an interface's address). With Server.TLS
// set (LoadTLS reads a PEM certificate and key) it speaks TLS 1.2 or later
// only. Server.HTTPServer is the http.Server to serve it with, bounded by
// Limits: request line and headers 16 KiB (net/http answers 431 beyond),
// bodies 64 KiB (413), ReadHeaderTimeout 5s, ReadTimeout 30s, IdleTimeout
// 2m. A flood of requests, authenticated or not, therefore holds at most
// the access log's bound once they are answered.
//
// # Status and SLOs
//
// /v1/status judges each output port's contract (Evaluate) against what
// the runtime measured (Server.Observe). It answers 200 whether or not
// the SLOs are met, with "healthy": false when one is not, so monitors
// alert on the body rather than flap on a 5xx; it is 503 only when the
// runtime cannot report at all. Freshness is defined by Freshness.
//
// # Control
//
// Commands are validated strictly (unknown fields, fields the command
// does not take, trailing data and out-of-range values are a 400 naming
// the field; every command also takes an optional "reason") and handed
// to the Controller, which carries them to every replica. An
// Idempotency-Key header becomes the command id: a retry with the same
// key and request is answered with the same id without issuing again,
// and the same key with a different request is a 409.
package mgmt
