// Package bench measures Meshlet against its ceiling and its peers on one
// job, the way issue 7 asks: Debezium JSON updates of the inventory products
// table, pre-loaded on a 3-partition input topic, mapped field by field
// (id, trimmed name, description, weight -> weight_kg, plus the bitemporal
// meta fields), encoded as Avro through the schema registry in the Confluent
// wire format, and produced to an output topic.
//
// # Contenders
//
// Each contender is a separate process, started fresh for every run:
//
//   - pipe-plain, pipe-txn: bench-pipe, a franz-go consume->produce of the
//     bytes as they are, at-least-once and in one transaction per poll batch.
//     The ceiling: no decode, no encode, no change log.
//   - meshlet-alo, meshlet-eos: bench-product, the example product on
//     runtime.Start, at-least-once and exactly-once with the change log.
//   - rpconnect: Redpanda Connect v4.105.0 (kafka_franz in, a Bloblang
//     mapping, schema_registry_encode, kafka_franz out), a slim build kept in
//     a cache folder outside the repository (see BuildRPConnect).
//
// The broker (kfake) and the embedded registry run in bench-broker, a process
// of their own, so their CPU is not charged to the contender; KAFKA_BROKERS
// and SCHEMA_REGISTRY_URL point the harness at a real cluster instead.
//
// # Figures
//
// Throughput: the input topic holds the whole backlog (3M events by default)
// before any contender starts, and the harness has read it back once so the
// broker is warm. A run gives the contender a fresh consumer
// group and a fresh output topic, and stops it once N events are visible:
// committed group offsets for transactional contenders (they commit with
// the outputs), the output high watermark for the others. The harness polls
// that count every 25 ms; events/s is the count's growth from the first
// visible event to the N-th, so process start and group join are not
// counted. A warm-up run of a few seconds picks N per contender so that a
// run lasts about the target time; the figure is the median of the runs.
//
// CPU per event is utime+stime of the contender (/proc/PID/stat) over the
// same window, divided by the events of the window. Peak RSS is VmHWM from
// /proc/PID/status just before the contender is stopped. One run per Meshlet
// delivery drains the whole backlog, for RSS at the biggest backlog.
//
// Load outside the benchmark: /proc/stat's busy time minus that of the
// contender, the broker and the harness is what other processes used. The
// harness waits (a bounded time) for the machine to go quiet before a run,
// repeats a run that other processes disturbed (a bounded number of times),
// and reports that load, since a shared 2-core machine makes it common.
//
// Latency: a fresh input topic, the contender running, and the harness
// producing at half the contender's median throughput, each event carrying
// its send time in source.ts_us. A read_committed consumer of the output
// topic takes the time each event becomes visible; the event's time comes
// back in _valid_from (Avro contenders: the mapping's valid time is the
// source commit time) or in the copied bytes (the pipes). The first second
// is left out as warm-up.
package bench
