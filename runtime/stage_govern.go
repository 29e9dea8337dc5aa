package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports"
)

// govern applies the output port's governance to each record: pii sealed
// for the change log, classified fields passed, masked or dropped for the
// topic (package governance). An unreachable key store is transient; a
// policy that cannot apply to the records stops the product.
func govern(gate *governance.Gate) stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.outs {
				out := &ev.outs[i]
				a, err := gate.Apply(ctx, out.Key, out.Value)
				switch {
				case errors.Is(err, governance.ErrKeyStore):
					return fmt.Errorf("%w: %w", errTransient, err)
				case errors.Is(err, governance.ErrMisfit):
					return fmt.Errorf("%w: %w", ErrFatal, err)
				case err != nil:
					return ports.Poisoned(ports.ClassSchema, fmt.Errorf("policy for key %q: %w", out.Key, err))
				}
				ev.applied = append(ev.applied, a)
			}
			return next(ctx, ev)
		}
	}
}
