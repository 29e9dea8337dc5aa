package runtime

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
)

// batch holds one poll batch's work. Its slices are reused batch to batch;
// the arena is not, because produced records point into it until the
// transaction ends.
type batch struct {
	ev      event // the event the stages work on, reused record to record
	entries []auditlog.Entry
	produce []*kgo.Record
	arena   []byte
	// eventTimes holds each record's event time (unix µs, see eventTime)
	// and output port, for the publish-latency histogram and freshness.
	eventTimes        []recordTime
	deadLetterClasses map[deadLetterKey]int

	records, deadLetters, skipped, duplicates int
}

type recordTime struct {
	at   int64
	port int
}

type deadLetterKey struct {
	topic string
	class ports.Class
}

func (b *batch) reset() {
	b.produce = b.produce[:0]
	b.arena = make([]byte, 0, max(cap(b.arena), 64<<10))
	b.records, b.deadLetters, b.skipped, b.duplicates = 0, 0, 0, 0
	b.eventTimes = b.eventTimes[:0]
	clear(b.deadLetterClasses)
}

type batchMark struct{ entries, produce, records int }

func (b *batch) mark() batchMark { return batchMark{len(b.entries), len(b.produce), b.records} }

// rollback takes back what an event added since m: it is published whole
// or not at all.
func (b *batch) rollback(m batchMark) {
	b.entries, b.produce, b.records = b.entries[:m.entries], b.produce[:m.produce], m.records
	b.eventTimes = b.eventTimes[:m.records]
}

// deadLetter queues in for the dead-letter topic with the poison's class;
// limit is what the topic accepts (see limits.go).
func (b *batch) deadLetter(topic, product string, in *kgo.Record, p *ports.Poison, limit int) {
	b.produce = append(b.produce, kafka.DeadLetter(topic, product, in, p.Class, p.Err, limit))
	b.deadLetters++
	if b.deadLetterClasses == nil {
		b.deadLetterClasses = make(map[deadLetterKey]int)
	}
	b.deadLetterClasses[deadLetterKey{in.Topic, p.Class}]++
}
