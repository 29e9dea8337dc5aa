package runtime

import (
	"context"
	"errors"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/transforms"
)

// handle runs the port's handler on each change of the event (tombstones
// and heartbeats have nothing to handle). A handler error or panic is the
// event's poison.
func handle() stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.changes {
				c := &ev.changes[i]
				if c.Kind != cdc.KindChange {
					continue
				}
				n := len(ev.outs)
				var err error
				if ev.outs, err = ev.port.handler(ctx, c, ev.outs); err != nil {
					if errors.Is(err, transforms.ErrPanic) {
						return ports.Poisoned(ports.ClassPanic, err)
					}
					return ports.Poisoned(ports.ClassHandler, err)
				}
				for range ev.outs[n:] {
					ev.from = append(ev.from, i)
				}
			}
			if len(ev.outs) == 0 {
				return nil // nothing to publish
			}
			return next(ctx, ev)
		}
	}
}
