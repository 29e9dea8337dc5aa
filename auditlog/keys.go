package auditlog

import (
	"bytes"
	"container/heap"
	"fmt"
	"slices"
	"sort"
)

// Cut is a prefix of every log: by log name, how many of its first entries
// (seq 1..n) count. A log the cut does not name counts with none. A cut
// fixes exactly which entries an answer derives from, whatever is appended
// later, which is what an export proven against checkpoints needs.
type Cut map[string]uint64

// Fact reads entry seq of the named log through the index.
func (s *Store) Fact(log string, seq uint64) (Fact, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	x, err := s.logNamed(log)
	if err != nil {
		return Fact{}, err
	}
	if last, _, _ := x.last(); seq == 0 || seq > last {
		return Fact{}, fmt.Errorf("auditlog: log %s has entries 1..%d indexed, not seq %d (Refresh)", log, last, seq)
	}
	return x.fact(seq)
}

// Position returns how many entries of the named log were recorded at or
// before system time asOf: the seq of the last of them, 0 when there is
// none. System time rises with seq, so they are entries 1..n.
func (s *Store) Position(log string, asOf int64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	x, err := s.logNamed(log)
	if err != nil {
		return 0, err
	}
	last, lastSys, _ := x.last()
	if len(x.runs) == 0 || asOf >= lastSys {
		return last, nil
	}
	// The first run holding an entry recorded after asOf.
	ri := sort.Search(len(x.runs), func(i int) bool { return x.runs[i].lastSys > asOf })
	next, err := x.runs[ri].firstAtOrAfter(asOf + 1)
	if err != nil {
		return 0, err
	}
	return next - 1, nil
}

func (s *Store) logNamed(name string) (*logIndex, error) {
	for _, x := range s.logs {
		if x.name == name {
			return x, nil
		}
	}
	names := make([]string, 0, len(s.logs))
	for _, x := range s.logs {
		names = append(names, x.name)
	}
	return nil, fmt.Errorf("auditlog: no log named %q under %s (logs: %v)", name, s.root, names)
}

// ScanKeys calls fn once for every key with an entry in cut, with that
// key's entries in cut in merged order (the order History builds from).
// Keys come in the index's order (by key hash), as Scan's do. Only one
// key's entries are held at a time, so a scan of any log runs in memory
// bounded by the largest key's history. fn may keep the facts; an error
// from fn stops the scan.
func (s *Store) ScanKeys(cut Cut, fn func(key []byte, facts []Fact) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, n := range cut {
		x, err := s.logNamed(name)
		if err != nil {
			return err
		}
		if last, _, _ := x.last(); n > last {
			return fmt.Errorf("auditlog: cut takes %d entries of log %s, which has %d indexed (Refresh)", n, name, last)
		}
	}
	var h taggedHeap
	for _, x := range s.logs {
		n := cut[x.name]
		for _, r := range x.runs {
			if r.first > n {
				break
			}
			c := r.keyCursor()
			if c.err != nil {
				return c.err
			}
			if !c.done {
				h = append(h, taggedCursor{c, x})
			}
		}
	}
	heap.Init(&h)
	var (
		cands []candidate
		facts []Fact
	)
	for h.Len() > 0 {
		group := h[0].cur.h
		cands = cands[:0]
		for h.Len() > 0 && h[0].cur.h == group {
			c := h[0]
			if c.cur.seq <= cut[c.x.name] {
				cands = append(cands, candidate{c.x, c.cur})
			}
			c.advance()
			if c.err != nil {
				return c.err
			}
			if c.done {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
		}
		if len(cands) == 0 {
			continue
		}
		slices.SortFunc(cands, func(a, b candidate) int {
			return cmpOrder(a.k.sys, a.x.name, a.k.seq, b.k.sys, b.x.name, b.k.seq)
		})
		facts = make([]Fact, 0, len(cands))
		for _, c := range cands {
			f, err := c.x.fact(c.k.seq)
			if err != nil {
				return err
			}
			facts = append(facts, f)
		}
		if err := eachKey(facts, fn); err != nil {
			return err
		}
	}
	return nil
}

// eachKey splits one hash group's facts by entity (two entities sharing a
// 128-bit hash is not known to happen, but costs nothing to get right) and
// calls fn per entity with its key, keeping merged order within each. The
// facts of one entity are of one output port (Entry.Entity).
func eachKey(facts []Fact, fn func(key []byte, facts []Fact) error) error {
	same := true
	for i := range facts {
		if !bytes.Equal(facts[i].Key, facts[0].Key) || facts[i].Port != facts[0].Port {
			same = false
			break
		}
	}
	if same {
		return fn(facts[0].Key, facts)
	}
	slices.SortStableFunc(facts, func(a, b Fact) int { return bytes.Compare(a.Entity(), b.Entity()) })
	for len(facts) > 0 {
		n := 1
		for n < len(facts) && bytes.Equal(facts[n].Key, facts[0].Key) && facts[n].Port == facts[0].Port {
			n++
		}
		if err := fn(facts[0].Key, facts[:n:n]); err != nil {
			return err
		}
		facts = facts[n:]
	}
	return nil
}
