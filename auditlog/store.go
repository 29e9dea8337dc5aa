package auditlog

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

// Store answers bitemporal questions over every change log under a root,
// through an index kept beside each log (see "Index" in the package doc).
// Its methods are safe for concurrent use; Refresh waits for queries in
// flight and queries wait for it. Times are unix microseconds; pass Latest
// for "now".
type Store struct {
	root   string
	idxDir string // "" = each index lives in its log's directory

	mu   sync.RWMutex
	logs []*logIndex // sorted by name
}

// StoreOption configures OpenStore.
type StoreOption func(*Store)

// IndexDir keeps the indexes under dir (one sub-directory per log) instead
// of inside each log directory: for auditing a read-only copy of a log.
func IndexDir(dir string) StoreOption { return func(s *Store) { s.idxDir = dir } }

// ErrKeyCollision is returned when two different keys share the 128-bit
// hash the index files them under. No such pair is known for SHA-256.
var ErrKeyCollision = errors.New("auditlog: two keys share an index hash")

// OpenStore opens every log under root and brings each one's index up to
// date (building it if missing). root is a product's data directory (whose
// logs are under changelog/) or any directory holding logs; a log's name
// is its directory relative to that, e.g. "orders-0".
func OpenStore(root string, opts ...StoreOption) (*Store, error) {
	s := &Store{root: logsRoot(root)}
	for _, o := range opts {
		o(s)
	}
	if fi, err := os.Stat(s.root); err != nil {
		return nil, fmt.Errorf("auditlog: open store: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("auditlog: open store: %s is not a directory", s.root)
	}
	if err := s.Refresh(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the index and segment files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.logs {
		x.close()
	}
	s.logs = nil
	return nil
}

// LogInfo describes one log as the store sees it.
type LogInfo struct {
	Name, Dir  string
	Entries    uint64 // indexed entries (seq 1..Entries)
	LastSystem int64  // system time of the last indexed entry
	Head       [32]byte
}

// Logs lists the logs, by name.
func (s *Store) Logs() []LogInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]LogInfo, 0, len(s.logs))
	for _, x := range s.logs {
		seq, sys, h := x.last()
		out = append(out, LogInfo{Name: x.name, Dir: x.dir, Entries: seq, LastSystem: sys, Head: h})
	}
	return out
}

// findLogs returns the log directories under root: those holding segments.
// logsRoot is where the logs under a product's data directory live:
// root/changelog when there is one, else root.
func logsRoot(root string) string {
	if fi, err := os.Stat(filepath.Join(root, "changelog")); err == nil && fi.IsDir() {
		return filepath.Join(root, "changelog")
	}
	return root
}

func findLogs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == indexDirName || d.Name() == checkpointDirName) {
			return filepath.SkipDir
		}
		if !d.IsDir() && filepath.Ext(d.Name()) == segSuffix {
			if dir := filepath.Dir(path); len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	slices.Sort(dirs)
	return slices.Compact(dirs), err
}

func (s *Store) logName(dir string) string {
	rel, err := filepath.Rel(s.root, dir)
	if err != nil || rel == "." {
		return filepath.Base(dir)
	}
	return filepath.ToSlash(rel)
}

// Refresh finds new logs and brings every index up to its log: entries
// appended since are indexed incrementally; if a log was rewound under its
// index (the entry an index run ends at no longer has the hash it
// recorded), the runs past the rewind are rebuilt.
func (s *Store) Refresh() error {
	dirs, err := findLogs(s.root)
	if err != nil {
		return fmt.Errorf("auditlog: open store %s: %w", s.root, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	have := map[string]*logIndex{}
	for _, x := range s.logs {
		have[x.dir] = x
	}
	logs := make([]*logIndex, 0, len(dirs))
	for _, dir := range dirs {
		x := have[dir]
		if x == nil {
			x = &logIndex{name: s.logName(dir), dir: dir, idxDir: filepath.Join(dir, indexDirName)}
			if s.idxDir != "" {
				x.idxDir = filepath.Join(s.idxDir, filepath.FromSlash(x.name))
			}
		}
		if err := x.refresh(); err != nil {
			return fmt.Errorf("auditlog: index of %s: %w", dir, err)
		}
		logs = append(logs, x)
		delete(have, dir)
	}
	for _, x := range have {
		x.close()
	}
	slices.SortFunc(logs, func(a, b *logIndex) int { return cmp.Compare(a.name, b.name) })
	s.logs = logs
	return nil
}

// AsOf is the store as it stood at a system time.
type AsOf struct {
	s      *Store
	system int64
}

// View is what the store believed at a system time about a valid time.
type View struct {
	s             *Store
	system, valid int64
}

// AsOf fixes the system time: only entries recorded at or before it count.
func (s *Store) AsOf(system int64) AsOf { return AsOf{s, system} }

// ValidAt fixes the valid time asked about.
func (a AsOf) ValidAt(valid int64) View { return View{a.s, a.system, valid} }

// candidate is an index record with the log it came from.
type candidate struct {
	x *logIndex
	k keyRec
}

func (c *candidate) after(d *candidate) bool {
	return cmpOrder(c.k.sys, c.x.name, c.k.seq, d.k.sys, d.x.name, d.k.seq) > 0
}

// Get returns what was believed about key: among the key's entries
// recorded at or before the system time whose valid period contains the
// valid time, the latest in merged order. ok is false when there is none
// or that entry is a retraction; in the latter case fact is the retraction.
func (v View) Get(key []byte) (fact Fact, ok bool, err error) {
	v.s.mu.RLock()
	defer v.s.mu.RUnlock()
	h := hashKey(key)
	var (
		best  candidate
		found bool
	)
	for _, x := range v.s.logs {
		for ri := len(x.runs) - 1; ri >= 0; ri-- {
			var c candidate
			hit := false
			err := x.runs[ri].latest(h, v.system, func(k *keyRec) bool {
				if k.covers(v.valid) {
					c, hit = candidate{x, *k}, true
				}
				return hit
			})
			if err != nil {
				return Fact{}, false, err
			}
			if hit {
				if !found || c.after(&best) {
					best, found = c, true
				}
				break // older runs of this log only hold older entries
			}
		}
	}
	if !found {
		return Fact{}, false, nil
	}
	f, err := best.x.fact(best.k.seq)
	if err != nil {
		return Fact{}, false, err
	}
	if !bytes.Equal(f.Key, key) {
		return Fact{}, false, fmt.Errorf("%w: %q and %q (log %s seq %d)", ErrKeyCollision, key, f.Key, f.Log, f.Seq)
	}
	return f, f.Op == OpAssert, nil
}

// Scan calls fn for every key believed present: View.Scan at asOf and validAt.
func (s *Store) Scan(asOf, validAt int64, fn func(*Fact) error) error {
	return s.AsOf(asOf).ValidAt(validAt).Scan(fn)
}

// taggedCursor is a run cursor that knows its log.
type taggedCursor struct {
	*keyCursor
	x *logIndex
}

type taggedHeap []taggedCursor

func (h taggedHeap) Len() int           { return len(h) }
func (h taggedHeap) Less(i, j int) bool { return cmpKeyRec(&h[i].cur, &h[j].cur) < 0 }
func (h taggedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *taggedHeap) Push(x any)        { *h = append(*h, x.(taggedCursor)) }
func (h *taggedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Scan calls fn with every key's belief, as Get would answer it, for the
// keys believed present (retracted and unknown keys are skipped). Keys come
// in the index's order (by key hash), which is stable but not key order.
// The Fact is only valid during fn; an error from fn stops the scan.
func (v View) Scan(fn func(*Fact) error) error {
	v.s.mu.RLock()
	defer v.s.mu.RUnlock()
	var h taggedHeap
	for _, x := range v.s.logs {
		for _, r := range x.runs {
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
	for h.Len() > 0 {
		group := h[0].cur.h
		var (
			best  candidate
			found bool
		)
		for h.Len() > 0 && h[0].cur.h == group {
			c := h[0]
			if k := &c.cur; k.sys <= v.system && k.covers(v.valid) {
				cand := candidate{c.x, *k}
				if !found || cand.after(&best) {
					best, found = cand, true
				}
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
		if !found || best.k.op != OpAssert {
			continue
		}
		f, err := best.x.fact(best.k.seq)
		if err != nil {
			return err
		}
		if err := fn(&f); err != nil {
			return err
		}
	}
	return nil
}

// keyFacts reads every entry of key from every log, in merged order.
func (s *Store) keyFacts(key []byte) ([]Fact, error) {
	h := hashKey(key)
	var facts []Fact
	for _, x := range s.logs {
		for _, r := range x.runs {
			err := r.all(h, func(k *keyRec) error {
				f, err := x.fact(k.seq)
				if err != nil {
					return err
				}
				if !bytes.Equal(f.Key, key) {
					return fmt.Errorf("%w: %q and %q (log %s seq %d)", ErrKeyCollision, key, f.Key, f.Log, f.Seq)
				}
				facts = append(facts, f)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(facts, func(a, b Fact) int { return cmpOrder(a.SystemTime, a.Log, a.Seq, b.SystemTime, b.Log, b.Seq) })
	return facts, nil
}

// History returns every version of key with both periods (see Version),
// ordered by system-from, then valid-from. It is the valid-time history as
// believed at every system time: the versions with SystemTo 0 are the
// history as believed now.
func (s *Store) History(key []byte) ([]Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	facts, err := s.keyFacts(key)
	if err != nil {
		return nil, err
	}
	return buildHistory(facts), nil
}

// Entries returns every entry of key in merged order, as recorded.
func (s *Store) Entries(key []byte) ([]Fact, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keyFacts(key)
}

// replayCursor walks one log's frames in order within a system-time range.
type replayCursor struct {
	x    *logIndex
	it   *frameIter
	last uint64
	to   int64
	dec  decoder
	f    Fact
}

func (c *replayCursor) advance() (bool, error) {
	if c.it.expect > c.last {
		return false, nil
	}
	body, hash, err := c.it.next()
	if err == io.EOF {
		return false, &CorruptError{Dir: c.x.dir, Seq: c.it.expect, Reason: "log ends before its index does (Refresh)"}
	}
	if err != nil {
		return false, err
	}
	if reason := c.dec.decode(body, &c.f.Entry); reason != "" {
		return false, c.it.corrupt(c.it.off, c.it.expect-1, "%s", reason)
	}
	copy(c.f.Hash[:], hash)
	return c.f.SystemTime < c.to, nil
}

type replayHeap []*replayCursor

func (h replayHeap) Len() int { return len(h) }
func (h replayHeap) Less(i, j int) bool {
	return cmpOrder(h[i].f.SystemTime, h[i].f.Log, h[i].f.Seq, h[j].f.SystemTime, h[j].f.Log, h[j].f.Seq) < 0
}
func (h replayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *replayHeap) Push(x any)   { *h = append(*h, x.(*replayCursor)) }
func (h *replayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Replay calls fn for every entry recorded in [fromSys, toSys), across all
// logs, in merged system-time order. It reads the segments sequentially
// from the first entry in range, found through the index. The Fact and its
// slices are only valid during fn; an error from fn stops the replay.
func (s *Store) Replay(fromSys, toSys int64, fn func(*Fact) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var h replayHeap
	defer func() {
		for _, c := range h {
			c.it.close()
		}
	}()
	for _, x := range s.logs {
		c, err := x.replayFrom(fromSys, toSys)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		ok, err := c.advance()
		if err != nil {
			c.it.close()
			return err
		}
		if !ok {
			c.it.close()
			continue
		}
		h = append(h, c)
	}
	heap.Init(&h)
	for h.Len() > 0 {
		c := h[0]
		if err := fn(&c.f); err != nil {
			return err
		}
		ok, err := c.advance()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			c.it.close()
			heap.Pop(&h)
		}
	}
	return nil
}

// replayFrom positions a cursor at the first indexed entry with system
// time >= from; nil when there is none before to.
func (x *logIndex) replayFrom(from, to int64) (*replayCursor, error) {
	if len(x.runs) == 0 || from >= to {
		return nil, nil
	}
	ri := sort.Search(len(x.runs), func(i int) bool { return x.runs[i].lastSys >= from })
	if ri == len(x.runs) {
		return nil, nil
	}
	r := x.runs[ri]
	seq, err := r.firstAtOrAfter(from)
	if err != nil {
		return nil, err
	}
	loc, err := r.seqAt(seq)
	if err != nil {
		return nil, err
	}
	if loc.sys >= to {
		return nil, nil
	}
	si := segmentFor(x.segs, seq)
	if si < 0 {
		return nil, &CorruptError{Dir: x.dir, Seq: seq, Reason: "no segment holds an indexed entry (Refresh)"}
	}
	last, _, _ := x.last()
	c := &replayCursor{x: x, last: last, to: to, dec: decoder{strings: true}}
	c.f.Log = x.name
	// No chain is carried in (the index was built from a verified chain);
	// frames are still checked for CRC and seq.
	c.it = newFrameIter(x.dir, x.segs, si, loc.off, seq, [32]byte{}, false)
	return c, nil
}

// Corrections returns the corrections recorded in [from, to), in merged
// order. An entry E is a correction when some entry of the same key
// recorded before E (in merged order, in any log) has a later valid-from
// than E's: E rewrites part of the valid-time past the product had already
// published. The first entry of a key is never a correction, nor is one
// whose valid-from equals the latest so far (two changes of one source
// transaction share a commit time). Retractions count like assertions.
func (s *Store) Corrections(from, to int64) ([]Correction, error) {
	var (
		out   []Correction
		cache = map[keyHash]*keyTimeline{}
	)
	err := s.Replay(from, to, func(f *Fact) error {
		h := hashKey(f.Key)
		tl := cache[h]
		if tl == nil {
			if len(cache) >= 4096 {
				clear(cache)
			}
			var err error
			if tl, err = s.timeline(h); err != nil {
				return err
			}
			cache[h] = tl
		}
		if prior, ok := tl.priorMax(f); ok && f.ValidFrom < prior {
			out = append(out, Correction{Fact: f.Clone(), PriorValidFrom: prior})
		}
		return nil
	})
	return out, err
}

// keyTimeline is a key's index records in merged order with the running
// maximum of their valid-from.
type keyTimeline struct {
	recs  []candidate
	maxVF []int64
}

// timeline must be called with s.mu held (Replay holds it).
func (s *Store) timeline(h keyHash) (*keyTimeline, error) {
	tl := &keyTimeline{}
	for _, x := range s.logs {
		for _, r := range x.runs {
			err := r.all(h, func(k *keyRec) error {
				tl.recs = append(tl.recs, candidate{x, *k})
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(tl.recs, func(a, b candidate) int {
		return cmpOrder(a.k.sys, a.x.name, a.k.seq, b.k.sys, b.x.name, b.k.seq)
	})
	tl.maxVF = make([]int64, len(tl.recs))
	for i, c := range tl.recs {
		tl.maxVF[i] = c.k.vf
		if i > 0 {
			tl.maxVF[i] = max(tl.maxVF[i-1], c.k.vf)
		}
	}
	return tl, nil
}

// priorMax is the greatest valid-from among the records before f.
func (tl *keyTimeline) priorMax(f *Fact) (int64, bool) {
	n := sort.Search(len(tl.recs), func(i int) bool {
		c := &tl.recs[i]
		return cmpOrder(c.k.sys, c.x.name, c.k.seq, f.SystemTime, f.Log, f.Seq) >= 0
	})
	if n == 0 {
		return 0, false
	}
	return tl.maxVF[n-1], true
}
