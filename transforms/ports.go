package transforms

import (
	"context"
	"errors"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/state"
)

// Port is the handler of one input port, registered by name: a product
// with several input ports gives each its own row type and handler.
//
//	runtime.NewProduct(fsys, "product.yaml", nil,
//		transforms.On("orders-cdc", handleOrder),
//		transforms.On("customers-cdc", handleCustomer))
type Port struct {
	Name    string
	Handler Func
}

// StateHandler is a handler that keeps state: it gets the batch's state
// (state.Use[T](st, "table") reads and writes a table) and returns records
// addressed to output ports (To).
type StateHandler[In any] func(ctx context.Context, c Change[In], st *state.Txn) ([]Output, error)

// On registers h as the handler of input port name.
func On[In any](name string, h StateHandler[In]) Port {
	f := Typed(func(ctx context.Context, c Change[In]) ([]Record[Output], error) {
		st := State(ctx)
		if st == nil {
			return nil, ErrNoState
		}
		outs, err := h(ctx, c, st)
		if err != nil {
			return nil, err
		}
		recs := make([]Record[Output], len(outs))
		for i := range outs {
			recs[i] = Record[Output]{Value: outs[i]}
		}
		return recs, nil
	})
	return Port{Name: name, Handler: func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error) {
		n := len(out)
		out, err := f(ctx, c, out)
		for i := n; i < len(out); i++ {
			out[i] = out[i].Value.(Output) // unwrap: the handler built the Output itself
		}
		return out, err
	}}
}

// To addresses records to output port port.
func To[T any](port string, recs ...Record[T]) []Output {
	outs := make([]Output, len(recs))
	for i, r := range recs {
		outs[i] = Output{Port: port, Key: r.Key, ValidFrom: r.ValidFrom, ValidTo: r.ValidTo, Deleted: r.Deleted, Value: r.Value}
	}
	return outs
}

// ErrNoState marks a state handler run where no state was given to it.
var ErrNoState = errors.New("state handler run without the batch's state (runtime.WithState)")

type stateKey struct{}

// WithState gives handlers called with the returned context the batch's
// state of the partition they process; the runtime calls it.
func WithState(ctx context.Context, st *state.Txn) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// State is the batch's state given by WithState, nil without.
func State(ctx context.Context) *state.Txn {
	st, _ := ctx.Value(stateKey{}).(*state.Txn)
	return st
}
