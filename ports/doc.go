// Package ports holds a data product's doors to the outside, one package
// each, and the little they share.
//
//	ports/kafka    the Kafka ports: client options and security, the
//	               transactional session the batch loop runs in, topic
//	               set-up, dead-letter records (and reading back the newest
//	               committed ones), feeding recorded CDC
//	ports/mgmt     the HTTP management listener: discovery, status,
//	               metrics, control and query routes, tokens, access log
//	ports/query    entity queries: current, as of, history (HTTP + Redis)
//	ports/mesh     the mesh registry in Redis: membership, search, lineage
//	ports/lineage  OpenLineage run events of a streaming product
//	ports/control  control commands to every replica over a watermill bus
//	ports/web      the product's page, served by the management port
//
// This package holds what several ports and the runtime share: Poison, the
// typed error that sends one input event to the dead-letter topic with its
// Class; the dead-letter header names a consumer of that topic reads, and
// Dead, a dead letter as listings show it; and TLSFiles, the PEM loader
// every client port uses.
package ports
