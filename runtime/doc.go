// Package runtime runs a data product: it reads the manifest, registers the
// output schema, and drives the batch loop that carries CDC events from the
// input ports through the handler into the change log and the output port.
//
// # The batch cycle
//
// The loop works one poll batch at a time, inside one Kafka transaction of a
// franz-go GroupTransactSession:
//
//  1. Poll: the records fetched since the last batch, all input partitions
//     assigned to this instance, read_committed.
//  2. Begin the transaction.
//  3. For each partition, in offset order: decode each record with the input
//     port's cdc decoder; tombstones and heartbeats are counted and skipped;
//     the handler turns each change into zero or more outputs; each output is
//     stamped with the next sequence number and a system time (microseconds,
//     strictly increasing per change log: max(now, previous+1)), its valid
//     time defaulting to the source commit time; it is Avro-encoded with the
//     registered schema id and queued for the output topic. The partition's
//     entries are appended to its change log (one log per input partition) in
//     one write and fsynced.
//  4. Anything that fails for one event (undecodable, unknown op, handler
//     error or panic, an output that does not fit the schema) becomes a dead
//     letter: the original key and value with headers naming the error class,
//     the message and the origin topic/partition/offset. All outputs of that
//     event are rolled back first, so an event is published whole or not at
//     all. The loop goes on.
//  5. Produce the outputs and dead letters, then end the transaction, which
//     commits them together with the input offsets. If any produce failed
//     the transaction is aborted and the batch is consumed again.
//
// A change-log append or a transaction failure that is not a rebalance stops
// the product with an error: continuing would let the log and the output
// disagree.
//
// Because step 3 appends before step 5 commits, a crash in between leaves
// entries in the log whose outputs were never committed. Reconciling that
// tail with the committed offsets on restart is the exactly-once protocol's
// job; until it lands, such a restart re-appends the batch.
package runtime
