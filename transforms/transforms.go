package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// Change is a CDC change with its row images decoded into T. Before, After and
// Key are nil when the change does not carry them; the embedded *cdc.Change
// gives the op, commit time, source position and origin.
type Change[T any] struct {
	*cdc.Change
	Before *T
	After  *T
	// Key is the Kafka record key decoded into T (only the key columns are
	// set) when the key is a JSON object, as Debezium's is. A key that is a
	// plain value, such as another product's entity key (meshlet-avro),
	// leaves it nil: read it from Change.Change.Key.
	Key *T
}

// Handler is the function a domain engineer writes.
type Handler[In, Out any] func(ctx context.Context, c Change[In]) ([]Record[Out], error)

// Output is a Record with its payload type erased, the way the runtime carries
// it from the handler to the encoder.
type Output struct {
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
// The row images are read into In by a cdc.RowDecoder, planned once here
// for In, with encoding/json's result; the rows and what they point to
// come from chunks the decoder shares across changes, so a change costs no
// allocation of its own for them. An image that does not fit In is an
// error wrapping ErrRowDecode that names the image and the field, e.g.
// "after.weight".
func Typed[In, Out any](h Handler[In, Out]) Func {
	rows := cdc.NewRowDecoder[In]()
	return func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error) {
		tc := Change[In]{Change: c}
		var err error
		if tc.Before, err = decodeRow(rows, "before", c.Before); err != nil {
			return out, err
		}
		if tc.After, err = decodeRow(rows, "after", c.After); err != nil {
			return out, err
		}
		if isObject(c.Key) {
			if tc.Key, err = decodeRow(rows, "key", c.Key); err != nil {
				return out, err
			}
		}
		recs, err := h(ctx, tc)
		if err != nil {
			return out, err
		}
		for _, r := range recs {
			out = append(out, Output{Key: r.Key, ValidFrom: r.ValidFrom, ValidTo: r.ValidTo, Deleted: r.Deleted, Value: r.Value})
		}
		return out, nil
	}
}

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
