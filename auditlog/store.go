package auditlog

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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

func cmpCandidate(a, b candidate) int {
	return cmpOrder(a.k.sys, a.x.name, a.k.seq, b.k.sys, b.x.name, b.k.seq)
}

// scratch is what one Get works in, recycled between Gets.
type scratch struct {
	recs   []candidate
	spans  []span
	pieces []rect
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// keyRecords appends every index record of key hash h, from every log, to
// recs and sorts them in merged order. s.mu must be held.
func (s *Store) keyRecords(h keyHash, recs []candidate) ([]candidate, error) {
	for _, x := range s.logs {
		for _, r := range x.runs {
			err := r.all(h, func(k *keyRec) error {
				recs = append(recs, candidate{x, *k})
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(recs, cmpCandidate)
	return recs, nil
}

func recSpans(recs []candidate, sp []span) []span {
	sp = sp[:0]
	for _, c := range recs {
		sp = append(sp, span{c.k.sys, c.k.vf, c.k.vt, c.k.op})
	}
	return sp
}

// keyFact reads the entry c points at and checks that it is key's.
func keyFact(key []byte, c candidate) (Fact, error) {
	f, err := c.x.fact(c.k.seq)
	if err != nil {
		return Fact{}, err
	}
	if !bytes.Equal(f.Entity(), key) {
		return Fact{}, fmt.Errorf("%w: %q and %q (log %s seq %d)", ErrKeyCollision, key, f.Entity(), f.Log, f.Seq)
	}
	return f, nil
}

// Get returns the version of key believed at the view's system time T
// about its valid time V: the rectangle of key's history holding (T, V),
// with the valid period believed at T, the system time that belief began
// and, when it has since been revised, the system time it was (see
// "Bitemporal queries" in the package doc). It is the row of
// AsOf(T).History(key) whose valid period contains V.
//
// ok is false when key was absent at (T, V). If a retraction made it so,
// the Version describes that absence: Fact is the retraction and the
// periods are those over which it held.
func (v View) Get(key []byte) (ver Version, ok bool, err error) {
	v.s.mu.RLock()
	defer v.s.mu.RUnlock()
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	if sc.recs, err = v.s.keyRecords(hashKey(key), sc.recs[:0]); err != nil {
		return Version{}, false, err
	}
	sc.spans = recSpans(sc.recs, sc.spans)
	r, found, pieces := believed(sc.spans, v.system, v.valid, sc.pieces)
	sc.pieces = pieces
	if !found {
		return Version{}, false, nil
	}
	f, err := keyFact(key, sc.recs[r.i])
	if err != nil {
		return Version{}, false, err
	}
	return r.version(f), f.Op == OpAssert, nil
}

// Scan calls fn for every key believed present: View.Scan at asOf and validAt.
func (s *Store) Scan(asOf, validAt int64, fn func(*Version) error) error {
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

// Scan calls fn with every key's version, as Get would answer it, for the
// keys believed present (retracted and unknown keys are skipped). Keys come
// in the index's order (by key hash), which is stable but not key order.
// The Version is only valid during fn; an error from fn stops the scan.
func (v View) Scan(fn func(*Version) error) error {
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
	var (
		recs   []candidate
		spans  []span
		pieces []rect
	)
	for h.Len() > 0 {
		group := h[0].cur.h
		recs = recs[:0]
		for h.Len() > 0 && h[0].cur.h == group {
			c := h[0]
			recs = append(recs, candidate{c.x, c.cur})
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
		slices.SortFunc(recs, cmpCandidate)
		spans = recSpans(recs, spans)
		r, found, p := believed(spans, v.system, v.valid, pieces)
		pieces = p
		if !found || spans[r.i].op != OpAssert {
			continue
		}
		c := recs[r.i]
		f, err := c.x.fact(c.k.seq)
		if err != nil {
			return err
		}
		ver := r.version(f)
		if err := fn(&ver); err != nil {
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
				if !bytes.Equal(f.Entity(), key) {
					return fmt.Errorf("%w: %q and %q (log %s seq %d)", ErrKeyCollision, key, f.Entity(), f.Log, f.Seq)
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
// ordered by system-from, then valid-from: the valid-time history as
// believed at every system time. AsOf(T).History gives the versions
// believed at T; the versions with SystemTo 0 are the history as believed
// now.
func (s *Store) History(key []byte) ([]Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.versions(key, nil)
}

// History returns the versions of key believed at the system time: the
// rows of Store.History whose system period contains it, that is the
// whole valid-time history as it stood then (with each row's SystemTo
// saying when, since, it was revised). At Latest it is the history as
// believed now.
func (a AsOf) History(key []byte) ([]Version, error) {
	a.s.mu.RLock()
	defer a.s.mu.RUnlock()
	return a.s.versions(key, func(r *rect) bool { return r.sysFrom <= a.system && (r.sysTo == 0 || a.system < r.sysTo) })
}

// versions builds key's versions from its index records, reading only the
// entries that own one. s.mu must be held.
func (s *Store) versions(key []byte, keep func(*rect) bool) ([]Version, error) {
	recs, err := s.keyRecords(hashKey(key), nil)
	if err != nil {
		return nil, err
	}
	var (
		out   []Version
		facts = map[int]Fact{}
	)
	for _, r := range versionRects(recSpans(recs, nil)) {
		if keep != nil && !keep(&r) {
			continue
		}
		f, ok := facts[r.i]
		if !ok {
			if f, err = keyFact(key, recs[r.i]); err != nil {
				return nil, err
			}
			facts[r.i] = f
		}
		out = append(out, r.version(f))
	}
	sortVersions(out)
	return out, nil
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
// transaction share a commit time). Retractions count like assertions;
// entries with an empty valid period, which change nothing, neither are
// corrections nor count as earlier entries.
func (s *Store) Corrections(from, to int64) ([]Correction, error) {
	var (
		out   []Correction
		cache = map[keyHash]*keyTimeline{}
	)
	err := s.Replay(from, to, func(f *Fact) error {
		h := hashKey(f.Entity())
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
		n := tl.position(f)
		if n == len(tl.recs) || tl.recs[n].k.seq != f.Seq || tl.recs[n].x.name != f.Log {
			return fmt.Errorf("auditlog: log %s seq %d is missing from its key's index records: the index is damaged (delete it to rebuild)", f.Log, f.Seq)
		}
		if tl.spans[n].empty() || n == 0 || tl.maxVF[n-1] == noValidFrom {
			return nil
		}
		if prior := tl.maxVF[n-1]; f.ValidFrom < prior {
			out = append(out, Correction{Fact: f.Clone(), PriorValidFrom: prior, SystemTo: tl.firstTo[n]})
		}
		return nil
	})
	return out, err
}

// noValidFrom marks "no non-empty entry yet" in keyTimeline.maxVF.
const noValidFrom = math.MinInt64

// keyTimeline is a key's index records in merged order with the running
// maximum of their valid-from (empty entries left out) and, per record,
// the system time its own rectangle closed at (0: still open).
type keyTimeline struct {
	recs    []candidate
	spans   []span
	maxVF   []int64
	firstTo []int64
}

// timeline must be called with s.mu held (Replay holds it).
func (s *Store) timeline(h keyHash) (*keyTimeline, error) {
	recs, err := s.keyRecords(h, nil)
	if err != nil {
		return nil, err
	}
	tl := &keyTimeline{recs: recs, spans: recSpans(recs, nil), maxVF: make([]int64, len(recs)), firstTo: make([]int64, len(recs))}
	m := int64(noValidFrom)
	for i, sp := range tl.spans {
		if !sp.empty() {
			m = max(m, sp.vf)
		}
		tl.maxVF[i] = m
	}
	sweep(tl.spans, nil, func(r rect) bool {
		if r.first {
			tl.firstTo[r.i] = r.sysTo
		}
		return true
	})
	return tl, nil
}

// position is the number of the key's records before f in merged order.
func (tl *keyTimeline) position(f *Fact) int {
	return sort.Search(len(tl.recs), func(i int) bool {
		c := &tl.recs[i]
		return cmpOrder(c.k.sys, c.x.name, c.k.seq, f.SystemTime, f.Log, f.Seq) >= 0
	})
}
