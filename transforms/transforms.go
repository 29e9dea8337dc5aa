package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/meshlet/meshlet/cdc"
)

// Record is one version of an entity as a handler emits it.
type Record[T any] struct {
	Key string // entity key; records of one key keep their order end to end

	// ValidFrom and ValidTo bound the period [ValidFrom, ValidTo) in which the
	// version holds in the business world. A zero ValidFrom means the change's
	// commit time; a zero ValidTo means until further notice.
	ValidFrom time.Time
	ValidTo   time.Time

	// Deleted retracts the entity: its valid period closes at ValidFrom. Value
	// then carries the last known row image, or only its key fields.
	Deleted bool

	Value T
}

// Change is a CDC change whose row images are read into T when the handler
// asks for them: Before, After and Key each decode their image on the first
// call and return the same row after that, so an image a handler never
// reads costs nothing (an update's old row, for most products). The
// embedded *cdc.Change gives the op, commit time, source position and
// origin, and the images as JSON.
//
// A row that does not fit T reads as nil, and the change then fails with
// an error wrapping ErrRowDecode, whatever the handler returns; an image
// the handler does not read is not checked. A Change is meant for the one
// handler call it is passed to, on that call's goroutine. Typed makes
// them; a handler's own tests make them with NewChange.
type Change[T any] struct {
	*cdc.Change
	rows *rows[T]
}

// rows holds what a Change has decoded so far.
type rows[T any] struct {
	dec                *cdc.RowDecoder[T]
	before, after, key *T
	read               uint8 // images decoded: readBefore, readAfter, readKey
	err                error // the first image that did not decode
}

const (
	readBefore = 1 << iota
	readAfter
	readKey
)

// NewChange makes the Change a handler gets for c, for calling a handler
// outside the runtime, as its tests do.
func NewChange[T any](c *cdc.Change) Change[T] {
	return Change[T]{Change: c, rows: &rows[T]{dec: cdc.NewRowDecoder[T]()}}
}

// Before is the row before the change, nil when the change carries none:
// always for inserts and snapshot reads, and for updates and deletes whose
// source sends no old row (see cdc.Change.BeforeMissing).
func (c Change[T]) Before() *T { return c.image(readBefore) }

// After is the row after the change, nil for deletes and truncates.
func (c Change[T]) After() *T { return c.image(readAfter) }

// Key is the Kafka record key decoded into T (only the key columns are
// set) when the key is a JSON object, as Debezium's is. A key that is a
// plain value, such as another product's entity key (meshlet-avro), gives
// nil: read it from Change.Change.Key.
func (c Change[T]) Key() *T { return c.image(readKey) }

// image returns the row of one image, decoding it on the first call.
func (c Change[T]) image(which uint8) *T {
	r := c.rows
	if r == nil || c.Change == nil {
		return nil
	}
	var slot **T
	var name string
	var raw json.RawMessage
	switch which {
	case readBefore:
		slot, name, raw = &r.before, "before", c.Change.Before
	case readAfter:
		slot, name, raw = &r.after, "after", c.Change.After
	default:
		if !isObject(c.Change.Key) {
			return nil
		}
		slot, name, raw = &r.key, "key", c.Change.Key
	}
	if r.read&which == 0 {
		r.read |= which
		v, err := decodeRow(r.dec, name, raw)
		if err != nil && r.err == nil {
			r.err = err
		}
		*slot = v
	}
	return *slot
}

// Handler is the function a domain engineer writes.
type Handler[In, Out any] func(ctx context.Context, c Change[In]) ([]Record[Out], error)

// Output is a Record with its payload type erased, the way the runtime carries
// it from the handler to the encoder.
type Output struct {
	// Port is the output port the record goes to ("" : the first).
	Port      string
	Key       string
	ValidFrom time.Time
	ValidTo   time.Time
	Deleted   bool
	Value     any
}

// Func is the one shape every handler has inside the runtime: it appends the
// outputs for one change to out and returns the extended slice. Appending to a
// caller's slice lets the runtime reuse one buffer for a whole poll batch.
type Func func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error)

// Middleware wraps a Func and returns a Func, so middlewares stack.
type Middleware func(Func) Func

// Chain wraps f in mws; the first middleware is the outermost.
func Chain(f Func, mws ...Middleware) Func {
	for i := len(mws) - 1; i >= 0; i-- {
		f = mws[i](f)
	}
	return f
}

// ErrRowDecode marks a row image that does not fit the handler's input type.
// The runtime treats it like any handler error: the event is a dead letter.
var ErrRowDecode = errors.New("row does not decode into the handler's type")

// Typed adapts a typed handler to Func.
//
// The row images are read into In, when the handler asks for them, by a
// cdc.RowDecoder planned once here for In, with encoding/json's result;
// the rows, what they point to and the Changes' own state come from chunks
// shared across changes, so a change costs no allocation of its own for
// them. An image that does not fit In fails the change with an error
// wrapping ErrRowDecode that names the image and the field, e.g.
// "after.weight".
func Typed[In, Out any](h Handler[In, Out]) Func {
	dec := cdc.NewRowDecoder[In]()
	var spare atomic.Pointer[[]rows[In]]
	return func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error) {
		// A Change's state is never reused: a handler may keep its Change.
		free := spare.Swap(nil)
		if free == nil || len(*free) == 0 {
			chunk := make([]rows[In], rowsChunk)
			free = &chunk
		}
		r := &(*free)[0]
		*free = (*free)[1:]
		spare.Store(free)
		r.dec = dec

		recs, err := h(ctx, Change[In]{Change: c, rows: r})
		if r.err != nil {
			return out, r.err
		}
		if err != nil {
			return out, err
		}
		for _, rec := range recs {
			out = append(out, Output{Key: rec.Key, ValidFrom: rec.ValidFrom, ValidTo: rec.ValidTo, Deleted: rec.Deleted, Value: rec.Value})
		}
		return out, nil
	}
}

// rowsChunk is how many Changes' state one allocation serves.
const rowsChunk = 64

func isObject(raw json.RawMessage) bool {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b == '{'
	}
	return false
}

func decodeRow[T any](rows *cdc.RowDecoder[T], image string, raw json.RawMessage) (*T, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	v, err := rows.New(raw)
	if err != nil {
		var de *cdc.DecodeError
		if errors.As(err, &de) && de.Field != "" {
			return nil, fmt.Errorf("%w: %s.%s: %s", ErrRowDecode, image, de.Field, de.Reason)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrRowDecode, image, err)
	}
	return v, nil
}

// ErrPanic marks a handler that panicked; Recover turns the panic into it.
var ErrPanic = errors.New("handler panicked")

// Recover turns a handler panic into an error wrapping ErrPanic, so one bad
// event becomes a dead letter instead of stopping the product.
func Recover() Middleware {
	return func(next Func) Func {
		return func(ctx context.Context, c *cdc.Change, out []Output) (res []Output, err error) {
			n := len(out)
			defer func() {
				if p := recover(); p != nil {
					res, err = out[:n], fmt.Errorf("%w: %v", ErrPanic, p)
				}
			}()
			return next(ctx, c, out)
		}
	}
}
