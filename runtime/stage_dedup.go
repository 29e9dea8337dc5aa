package runtime

import "context"

// dedup drops an event the source sent again (Debezium is at least once).
// A change is known by its source position and the entity key of its first
// record (see the package doc, Duplicates); one known change makes the whole
// event a re-send. Records consumed again on purpose (a reprocess) are not
// duplicates. Once the rest of the chain has taken the event, its
// identities are remembered in the partition's window.
func dedup() stage {
	return func(next step) step {
		return func(ctx context.Context, ev *event) error {
			p := ev.part
			again := p.reprocess != nil && ev.in.Offset < p.reprocess.Until
			first := -1 // the change whose first record was checked last
			for j := range ev.outs {
				i := ev.from[j]
				pos := ev.position(i)
				if pos == "" {
					continue
				}
				id := identity(pos, ev.outs[j].Key)
				if i != first {
					first = i
					if !again && p.seen.has(id) {
						ev.duplicate = true
						return nil
					}
				}
				ev.ids = append(ev.ids, id)
			}
			if err := next(ctx, ev); err != nil {
				return err
			}
			for _, id := range ev.ids {
				p.seen.add(id)
			}
			return nil
		}
	}
}
