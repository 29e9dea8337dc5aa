package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports"
)

// decode turns the input record into changes with its port's decoder.
// Bytes that are not a change of the port's format are the event's fault
// (malformed); anything else (the registry is unreachable) is transient.
func decode() stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			if !ev.predecoded {
				in := ev.in
				var err error
				ev.changes, err = cdc.DecodeAll(ctx, ev.port.decoder, in.Key, in.Value, ev.changes[:0])
				if errors.Is(err, cdc.ErrMalformed) {
					return ports.Poisoned(ports.ClassMalformed, err)
				}
				if err != nil {
					return fmt.Errorf("%w: decode %s/%d@%d: %w", errTransient, in.Topic, in.Partition, in.Offset, err)
				}
			}
			for i := range ev.changes {
				c := &ev.changes[i]
				c.Origin = cdc.Origin{Topic: ev.in.Topic, Partition: ev.in.Partition, Offset: ev.in.Offset}
				if c.Kind != cdc.KindChange {
					ev.skipped++
				}
			}
			return next(ctx, ev)
		}
	}
}
