// Package ports holds a product's doors to the outside: the Kafka input and
// output plumbing shared by the runtime and the CLI (client options, topic
// set-up, dead-letter records and reading back the newest committed ones,
// feeding recorded CDC) and, later, the HTTP
// management ports.
package ports
