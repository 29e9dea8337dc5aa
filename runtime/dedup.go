package runtime

// window remembers the identities of the most recent records of one input
// partition, so an event Debezium sends again (it is at-least-once: after a
// connector restart it re-sends from its last flushed offset) is recognised.
//
// An identity is the event's source position and the entity key of its first
// record. The position alone is not enough: a snapshot reads many rows at one
// position. The window is filled from the change log, which holds exactly the
// committed records, so it can never disagree with what was published.
type window struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
	full bool
}

func newWindow(size int) *window {
	return &window{set: make(map[uint64]struct{}, size), ring: make([]uint64, size)}
}

func (w *window) has(id uint64) bool {
	_, ok := w.set[id]
	return ok
}

// add remembers id, forgetting the oldest identity when the window is full.
func (w *window) add(id uint64) {
	if _, ok := w.set[id]; ok {
		return
	}
	if w.full {
		delete(w.set, w.ring[w.next])
	}
	w.ring[w.next] = id
	w.set[id] = struct{}{}
	w.next++
	if w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
}

// identity hashes a source position and an entity key (FNV-1a, 64 bits,
// with a zero byte between them) without allocating: it runs for every
// record. 64 bits keep a 100,000-entry window's chance of a false match
// near 1 in 10^9.
func identity(position, key string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(position); i++ {
		h = (h ^ uint64(position[i])) * prime
	}
	h *= prime // the separator: h ^ 0 is h
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	return h
}
