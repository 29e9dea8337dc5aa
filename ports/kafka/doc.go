// Package kafka holds a product's Kafka ports: how a replica joins its
// consumer group (Group, with static membership and rebalances blocked while
// a batch is processed), the Session the batch loop runs in (Transactional
// for exactly once, AtLeastOnce to measure what that costs), client
// security (TLS, SASL), topic set-up, the dead-letter record (reduced to
// its headers and digests when it would not fit its topic), record sizes
// as brokers measure them (RecordBatchBytes, MaxMessageBytes), and feeding
// a recorded CDC file into a topic.
//
// All Kafka I/O is franz-go's. The session's End commits a batch's outputs,
// dead letters and input offsets in one transaction; see package runtime
// for the protocol that keeps the change log equal to what committed.
package kafka
