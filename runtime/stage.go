package runtime

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/transforms"
)

// The per-event stages.
//
// Every input record goes through the same chain: decode, handle, route,
// dedup, contract, govern, encode (stages, composed in Runner.stages). Each stage
// has one shape, func(next step) step, as watermill's middlewares do: it
// does its part of the work on the event and calls next, or stops the
// event there. A stage that stops an event returns one of:
//
//   - nil without calling next: the event is done and publishes nothing
//     more (dedup does this for an event the source sent again, setting
//     event.duplicate);
//   - a *ports.Poison: the event is dead-lettered with the poison's class,
//     and what it had added to the batch is rolled back;
//   - an error wrapping errTransient: the batch is abandoned and consumed
//     again after a pause (the registry or key store is unreachable);
//   - an error wrapping ErrFatal: the product stops.
//
// Code after next returns runs once the rest of the chain accepted the
// event (dedup remembers the event's identities there). Adding a stage is
// adding one file with its func and one line in Runner.stages.

// step processes one event.
type step func(ctx context.Context, ev *event) error

// stage wraps the rest of the chain.
type stage func(next step) step

// compose chains stages around last; the first stage is the outermost.
func compose(last step, stages ...stage) step {
	for i := len(stages) - 1; i >= 0; i-- {
		last = stages[i](last)
	}
	return last
}

// done ends the chain.
func done(context.Context, *event) error { return nil }

// event is one input record on its way through the stages, and what they
// made of it. One event value is reused for every record of a batch, so
// its slices keep their capacity.
type event struct {
	in   *kgo.Record
	port *inputPort
	part *partition
	b    *batch

	// changes are the record's changes; predecoded says they were decoded
	// before the chain ran (whole-transaction mode decodes to plan the batch).
	changes    []cdc.Change
	predecoded bool
	positions  []string // per change, the source position as text, filled on demand
	skipped    int      // tombstones and heartbeats among the changes

	// outs are the handler's records; from[i] is the change outs[i] came
	// from, dest[i] the output port it goes to (route).
	outs    []transforms.Output
	from    []int
	dest    []int
	applied []governance.Applied // per output, what governance made of it

	// seq and sysTime are the change log's tail when the event started;
	// encode advances them.
	seq     uint64
	sysTime int64

	duplicate bool     // the source sent this event before
	ids       []uint64 // identities to remember once the event is through
}

// reset readies ev for the next record of partition p.
func (ev *event) reset(in *kgo.Record, port *inputPort, p *partition, b *batch, seq uint64, sysTime int64) {
	ev.in, ev.port, ev.part, ev.b = in, port, p, b
	ev.changes, ev.predecoded = ev.changes[:0], false
	ev.positions = ev.positions[:0]
	ev.skipped = 0
	ev.outs, ev.from, ev.dest, ev.applied = ev.outs[:0], ev.from[:0], ev.dest[:0], ev.applied[:0]
	ev.seq, ev.sysTime = seq, sysTime
	ev.duplicate = false
	ev.ids = ev.ids[:0]
}

// position is change i's source position as text ("" when it has none).
func (ev *event) position(i int) string {
	for len(ev.positions) <= i {
		ev.positions = append(ev.positions, ev.changes[len(ev.positions)].Source.Position.String())
	}
	return ev.positions[i]
}

// inputPort is what the stages need of the port a record came from.
type inputPort struct {
	name    string
	topic   string
	format  string
	decoder cdc.Decoder
	handler transforms.Func
}
