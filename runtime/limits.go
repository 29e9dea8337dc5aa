package runtime

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// The size limit, in one place.
//
// An event's records go to the output topic, their entries to the change
// log and the changelog topic, a bad event to the dead-letter topic; later
// every reader of the log (the index, the query port, history, replay, a
// restore from the changelog topic) reads the entries back. The largest
// record Meshlet accepts is the one every step of that path takes:
//
//   - never more than schemas.MaxEventBytes, which is what the schemas
//     decoder, and so every reader of the log, reads back;
//   - what the topic it goes to accepts: the output and dead-letter
//     topics' max.message.bytes, read when the product starts (the
//     broker's message.max.bytes for a topic that sets none, Kafka's
//     default when neither can be read), and changelogRecordLimit for the
//     changelog topic, which Meshlet configures itself;
//   - measured as the producer measures it: the record batch holding the
//     record alone, before compression (kafka.RecordBatchBytes). The
//     producer batches up to the same limits, so a record that passes
//     here is one the broker takes.
//
// An output record, or the change-log entry beside it, that does not fit
// is its event's poison (ports.ClassTooLarge): the event goes to the
// dead-letter topic with the limit it broke, and nothing of it is appended
// or published. A dead letter that does not fit its topic is reduced to
// its headers and the digest of its value (kafka.DeadLetter), never
// dropped. Should a broker still refuse a record as too large (its topic's
// limit lowered since the start), the batch aborts, the limits are read
// again, and the batch consumed again meets the new limit.

// recordLimits are the record bytes each topic of the product accepts.
// The producer's batching reads them from its own goroutines.
type recordLimits struct {
	byTopic atomic.Pointer[map[string]int]
}

// of is what topic accepts; a topic not read (yet) gets Kafka's default.
func (l *recordLimits) of(topic string) int {
	if m := l.byTopic.Load(); m != nil {
		if n, ok := (*m)[topic]; ok {
			return n
		}
	}
	return min(kafka.DefaultMaxMessageBytes, schemas.MaxEventBytes)
}

// batchMax is the producer's record batch limit for topic
// (kgo.ProducerBatchMaxBytesFn).
func (l *recordLimits) batchMax(topic string) int32 { return int32(max(l.of(topic), 512)) }

// readLimits reads the output and dead-letter topics' limits; a limit it
// cannot read is logged and left at Kafka's default.
func (r *Runner) readLimits(ctx context.Context, cl *kgo.Client) {
	m := r.product.Manifest
	topics := []string{m.DeadLetter.Topic}
	for _, out := range m.OutputPorts {
		topics = append(topics, out.Topic)
	}
	read, err := kafka.MaxMessageBytes(ctx, kadm.NewClient(cl), topics...)
	if err != nil {
		r.log.Warn("cannot read the topics' max.message.bytes; assuming Kafka's default (give the product's principal DESCRIBE_CONFIGS on them)",
			"topics", topics, "default", kafka.DefaultMaxMessageBytes, "err", err)
	}
	limits := map[string]int{}
	if r.clog != nil {
		limits[r.clog.topic], limits[r.clog.checkpoints] = changelogRecordLimit, changelogRecordLimit
	}
	for t, n := range read {
		limits[t] = min(n, schemas.MaxEventBytes)
	}
	if old := r.limits.byTopic.Load(); old == nil || !maps.Equal(*old, limits) {
		r.log.Info("record size limits", "bytes_by_topic", fmt.Sprint(limits))
	}
	r.limits.byTopic.Store(&limits)
	for _, o := range r.outputs {
		o.limit = limits[o.topic]
		o.entryLimit = 0
		if r.clog != nil {
			o.entryLimit = changelogRecordLimit
		}
	}
}

// fits checks what output i of an event adds to the batch (its record and
// its change-log entry) against the limits of where they go; a record
// that does not fit is the event's poison.
func (o *outputPort) fits(rec *kgo.Record, e *auditlog.Entry) error {
	if n := kafka.RecordBatchBytes(rec); n > o.limit {
		return ports.Poisoned(ports.ClassTooLarge, fmt.Errorf("the record for key %q takes %d bytes, more than output topic %s accepts (%d, its max.message.bytes or Meshlet's limit of %d)",
			e.Key, n, o.topic, o.limit, schemas.MaxEventBytes))
	}
	if o.entryLimit > 0 {
		// The log's name is its input topic and partition number.
		if n := kafka.ChangelogRecordBytes(len(e.Prov.Topic)+1+11, auditlog.ChunkLen(e)); n > o.entryLimit {
			return ports.Poisoned(ports.ClassTooLarge, fmt.Errorf("the change-log entry for key %q takes %d bytes, more than the changelog topic takes (%d)",
				e.Key, n, o.entryLimit))
		}
	}
	return nil
}
