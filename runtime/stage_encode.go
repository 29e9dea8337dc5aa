package runtime

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/schemas"
)

// encode stamps each record with the next sequence number and a system time
// (unix µs, max(now, previous+1): strictly increasing per change log), its
// valid time defaulting to the source commit time; encodes it with its
// output port's registered schema; and adds its change-log entry and its
// record for the port's topic to the batch. A record that does not fit the
// schema is the event's poison.
func encode(outs outputs, now func() int64) stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.outs {
				ev.seq++
				ev.sysTime = max(now(), ev.sysTime+1)
				if err := outs[ev.dest[i]].add(ev, i); err != nil {
					if _, ok := ports.AsPoison(err); ok {
						return err // too large
					}
					return ports.Poisoned(ports.ClassSchema, err)
				}
			}
			return next(ctx, ev)
		}
	}
}

// eventTime is when an event counts as having happened for publish
// latency and freshness: its source commit time, or when its record reached
// the input topic if that is later. A backfill or a replay of years-old
// changes is measured from its arrival, so it is not "late"; a change that
// waited in the source before its connector sent it is measured from its
// commit, so that wait shows.
func eventTime(commit, arrived int64) int64 { return max(commit, arrived) }

// outputPort is one stream output port: what the contract, govern and
// encode stages need of it, and what it published.
type outputPort struct {
	name, topic, subject string
	index                int // in the manifest's OutputPorts; 0 is the first
	checker              *contracts.Checker
	gate                 *governance.Gate
	encoder              *schemas.Encoder
	schema               *schemas.Schema
	schemaID             int
	records              atomic.Int64 // committed
	// limit is the largest record the topic accepts, entryLimit the
	// largest changelog record (0: no changelog topic); see limits.go.
	limit, entryLimit int
}

// logPort is the port as a change-log entry names it: empty for the first.
func (o *outputPort) logPort() string {
	if o.index == 0 {
		return ""
	}
	return o.name
}

// outputs are a product's stream output ports, in manifest order.
type outputs []*outputPort

// index is the position of the port a handler addressed a record to ("":
// the first).
func (os outputs) index(name string) (int, bool) {
	if name == "" {
		return 0, true
	}
	for i, o := range os {
		if o.name == name {
			return i, true
		}
	}
	return 0, false
}

// byTopic is the port publishing topic, nil for other topics.
func (os outputs) byTopic(topic string) *outputPort {
	for _, o := range os {
		if o.topic == topic {
			return o
		}
	}
	return nil
}

func (os outputs) names() []string {
	ns := make([]string, len(os))
	for i, o := range os {
		ns[i] = o.name
	}
	return ns
}

// add encodes output i of ev into the batch's arena and queues its entry and
// record.
func (o *outputPort) add(ev *event, i int) error {
	b, out, a, c := ev.b, &ev.outs[i], &ev.applied[i], &ev.changes[ev.from[i]]
	meta := schemas.Meta{SystemFrom: ev.sysTime, Deleted: out.Deleted, ValidFrom: c.CommitTime.UnixMicro()}
	if !out.ValidFrom.IsZero() {
		meta.ValidFrom = out.ValidFrom.UnixMicro()
	}
	if !out.ValidTo.IsZero() {
		meta.ValidTo = out.ValidTo.UnixMicro()
	}
	start := len(b.arena)
	var err error
	if b.arena, err = o.encoder.Append(b.arena, a.Logged, meta); err != nil {
		b.arena = b.arena[:start]
		return fmt.Errorf("encode record for key %q: %w", out.Key, err)
	}
	payload := b.arena[start:len(b.arena):len(b.arena)]
	wire := payload
	if a.Sealed != nil {
		at := len(b.arena)
		b.arena = governance.Frame(b.arena, a.Sealed, payload)
		payload = b.arena[at:len(b.arena):len(b.arena)]
	}
	if a.Redacted || a.Sealed != nil {
		// The topic gets the policy's view of the full record, not the
		// log's sealed one.
		at := len(b.arena)
		if b.arena, err = o.encoder.Append(b.arena, a.Published, meta); err != nil {
			b.arena = b.arena[:start]
			return fmt.Errorf("encode record for key %q: %w", out.Key, err)
		}
		wire = b.arena[at:len(b.arena):len(b.arena)]
	}
	keyStart := len(b.arena)
	b.arena = append(b.arena, out.Key...)
	key := b.arena[keyStart:len(b.arena):len(b.arena)]

	op := auditlog.OpAssert
	if out.Deleted {
		op = auditlog.OpRetract
	}
	in := ev.in
	b.entries = append(b.entries, auditlog.Entry{
		Seq: ev.seq, SystemTime: ev.sysTime, ValidFrom: meta.ValidFrom, ValidTo: meta.ValidTo, Op: op,
		Key: key, Payload: payload, Port: o.logPort(),
		Prov: auditlog.Provenance{
			Topic: in.Topic, Partition: in.Partition, Offset: in.Offset,
			SourcePosition: ev.position(ev.from[i]), SchemaID: uint32(o.schemaID),
		},
	})
	rec := &kgo.Record{Topic: o.topic, Key: key, Value: wire}
	if err := o.fits(rec, &b.entries[len(b.entries)-1]); err != nil {
		b.entries = b.entries[:len(b.entries)-1]
		b.arena = b.arena[:start]
		return err
	}
	b.produce = append(b.produce, rec)
	b.records++
	b.eventTimes = append(b.eventTimes, recordTime{eventTime(c.CommitTime.UnixMicro(), in.Timestamp.UnixMicro()), o.index})
	return nil
}
