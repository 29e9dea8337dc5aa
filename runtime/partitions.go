package runtime

import (
	"slices"
	"strconv"
	"sync"
)

type partitionKey struct {
	topic     string
	partition int32
}

// String names the partition's change log: topic-partition.
func (k partitionKey) String() string { return k.topic + "-" + strconv.Itoa(int(k.partition)) }

// partitions are the input partitions assigned to this replica. Rebalance
// callbacks change the set only between batches (the client blocks
// rebalances while a batch is processed), but they run on the client's
// goroutine, and the management port reads it, hence the mutex.
type partitions struct {
	mu sync.Mutex
	m  map[partitionKey]*partition
}

func (ps *partitions) get(k partitionKey) *partition {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.m[k]
}

// put stores p and returns the partition it replaces, if any.
func (ps *partitions) put(p *partition) *partition {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[partitionKey]*partition{}
	}
	old := ps.m[p.key]
	ps.m[p.key] = p
	return old
}

func (ps *partitions) remove(k partitionKey) *partition {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.m[k]
	delete(ps.m, k)
	return p
}

// each calls fn for every partition, in key order, holding the lock: fn
// must not call back into ps.
func (ps *partitions) each(fn func(*partition)) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	keys := make([]partitionKey, 0, len(ps.m))
	for k := range ps.m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b partitionKey) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.partition - b.partition)
	})
	for _, k := range keys {
		fn(ps.m[k])
	}
}
