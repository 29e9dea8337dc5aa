package snapshot

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
)

// CommittedOffsets reads the output topic's last stable offsets (what a
// read_committed consumer reads up to), for Offsets. Read them before
// Take: every record before them was committed, and the runtime commits a
// batch's records with its change-log entries, so those entries are in
// the log by then and recorded at or before any T fixed afterwards. The
// high watermark would not do: it counts records of transactions still
// open, whose entries a snapshot may not hold.
func CommittedOffsets(ctx context.Context, adm *kadm.Client, topic string) ([]Offset, error) {
	listed, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("snapshot: offsets of %s: %w", topic, err)
	}
	var out []Offset
	var ferr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && ferr == nil {
			ferr = fmt.Errorf("snapshot: offsets of %s partition %d: %w", topic, o.Partition, o.Err)
		}
		out = append(out, Offset{Topic: topic, Partition: o.Partition, Offset: o.Offset})
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("snapshot: topic %s has no partitions", topic)
	}
	slices.SortFunc(out, func(a, b Offset) int { return int(a.Partition) - int(b.Partition) })
	return out, nil
}
