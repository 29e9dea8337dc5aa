package transforms

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/cdc"
)

// ErrUnsupportedOp marks a change a handler cannot turn into records. The
// runtime sends it to the dead-letter topic, so it is seen rather than lost.
var ErrUnsupportedOp = errors.New("unsupported change")

// Projection is the ready handler for publishing a table's rows as they are:
// inserts, snapshot reads and updates publish the new row, deletes retract the
// entity. key names the entity a row belongs to.
//
// A delete carries the old row when the source sends it, else the key columns
// from the Kafka key (Postgres without REPLICA IDENTITY FULL). A truncate has
// no rows to retract one by one, so it is refused as ErrUnsupportedOp.
func Projection[Row any](key func(*Row) string) Handler[Row, Row] {
	return func(_ context.Context, c Change[Row]) ([]Record[Row], error) {
		switch c.Op {
		case cdc.OpCreate, cdc.OpRead, cdc.OpUpdate:
			after := c.After()
			if after == nil {
				return nil, fmt.Errorf("%w: op %q without an after image", ErrUnsupportedOp, c.Op)
			}
			return []Record[Row]{{Key: key(after), Value: *after}}, nil
		case cdc.OpDelete:
			last := c.Before()
			if last == nil {
				last = c.Key()
			}
			if last == nil {
				return nil, fmt.Errorf("%w: delete without before image or record key: cannot tell which entity", ErrUnsupportedOp)
			}
			return []Record[Row]{{Key: key(last), Deleted: true, Value: *last}}, nil
		default:
			return nil, fmt.Errorf("%w: op %q cannot be projected row by row", ErrUnsupportedOp, c.Op)
		}
	}
}
