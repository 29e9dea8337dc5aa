package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports"
)

// govern applies its output port's governance to each record: pii sealed
// for the change log, classified fields passed, masked or dropped for the
// topic (package governance). An unreachable key store is transient; a
// policy that cannot apply to the records stops the product.
func govern(outs outputs) stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.outs {
				out := &ev.outs[i]
				a, err := outs[ev.dest[i]].gate.Apply(ctx, out.Key, out.Value)
				switch {
				case errors.Is(err, governance.ErrKeyStore):
					return fmt.Errorf("%w: %w", errTransient, err)
				case errors.Is(err, governance.ErrMisfit):
					return fmt.Errorf("%w: %w", ErrFatal, err)
				case err != nil:
					return ports.Poisoned(ports.ClassSchema, fmt.Errorf("output port %s: policy for key %q: %w", outs[ev.dest[i]].name, out.Key, err))
				}
				ev.applied = append(ev.applied, a)
			}
			return next(ctx, ev)
		}
	}
}
