package runtime

import (
	"context"
	"fmt"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/ports"
)

// contract checks each record against its output port's contract rules. A
// violation of a rule that dead-letters is the event's poison; a rule that
// cannot run at all stops the product.
func contract(outs outputs) stage {
	var violations []contracts.Violation // reused: the chain runs one event at a time
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.outs {
				out, checker := &ev.outs[i], outs[ev.dest[i]].checker
				if out.Deleted {
					checker.Retract(out.Key)
					continue
				}
				var err error
				if violations, err = checker.Check(out.Key, out.Value, violations[:0]); err != nil {
					return fmt.Errorf("%w: output port %s: contract: %w", ErrFatal, outs[ev.dest[i]].name, err)
				}
				for _, v := range violations {
					if v.DeadLetter {
						return ports.Poisoned(ports.ClassContract, fmt.Errorf("contract: %s", v.String()))
					}
				}
			}
			return next(ctx, ev)
		}
	}
}
