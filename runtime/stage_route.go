package runtime

import (
	"context"
	"fmt"
	"strings"

	"github.com/meshlet/meshlet/ports"
)

// route finds the output port of each record the handler returned
// (transforms.To addresses one; unaddressed records go to the first
// port). A record addressed to a port the manifest does not declare is
// the handler's mistake, and the event's poison.
func route(outs outputs) stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			for i := range ev.outs {
				d, ok := outs.index(ev.outs[i].Port)
				if !ok {
					return ports.Poisoned(ports.ClassHandler, fmt.Errorf("record for key %q is addressed to output port %q, which the manifest does not declare (output ports: %s)",
						ev.outs[i].Key, ev.outs[i].Port, strings.Join(outs.names(), ", ")))
				}
				ev.dest = append(ev.dest, d)
			}
			return next(ctx, ev)
		}
	}
}
