package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

const (
	indexDirName  = "index"
	manifestName  = "MANIFEST"
	indexLockName = "LOCK"
	indexFormat   = 1
	// A run is merged into the one before it once it is at least a quarter
	// of that one's size, so a log of n entries has O(log n) runs and the
	// newest entries (the ones a Rewind can take back) sit in small runs.
	mergeRatio = 4
)

// chunkEntries bounds what a refresh holds in memory: about 64 bytes per
// entry, so 16 MiB, before it sorts and writes a run. Tests lower it.
var chunkEntries = 1 << 18

type manifest struct {
	Format int      `json:"format"`
	Runs   []string `json:"runs"`
}

// logIndex is the index of one log: runs covering seq 1..last without
// gaps, plus open segment handles for point reads.
type logIndex struct {
	name   string
	dir    string
	idxDir string

	segs []segInfo
	runs []*run

	mu    sync.Mutex
	files map[uint64]*os.File // by segment first seq
}

func (x *logIndex) last() (seq uint64, sys int64, hash [32]byte) {
	if len(x.runs) == 0 {
		return 0, 0, [32]byte{}
	}
	r := x.runs[len(x.runs)-1]
	return r.last, r.lastSys, r.lastHash
}

func (x *logIndex) close() {
	x.mu.Lock()
	for k, f := range x.files {
		f.Close()
		delete(x.files, k)
	}
	x.mu.Unlock()
	for _, r := range x.runs {
		r.close()
	}
	x.runs = nil
}

func (x *logIndex) runFor(seq uint64) *run {
	i := sort.Search(len(x.runs), func(i int) bool { return x.runs[i].last >= seq })
	if i == len(x.runs) || x.runs[i].first > seq {
		return nil
	}
	return x.runs[i]
}

// segFile returns an open handle on the segment holding seq.
func (x *logIndex) segFile(seq uint64) (*os.File, string, error) {
	i := segmentFor(x.segs, seq)
	if i < 0 {
		return nil, "", fmt.Errorf("auditlog: %s: no segment holds seq %d", x.dir, seq)
	}
	sg := x.segs[i]
	x.mu.Lock()
	defer x.mu.Unlock()
	if f := x.files[sg.firstSeq]; f != nil {
		return f, sg.name, nil
	}
	f, err := os.Open(filepath.Join(x.dir, sg.name))
	if err != nil {
		return nil, "", fmt.Errorf("auditlog: %w", err)
	}
	if x.files == nil {
		x.files = make(map[uint64]*os.File)
	}
	if len(x.files) >= 64 {
		// Forget one handle without closing it: a concurrent query may be
		// reading through it, and the os.File finalizer closes it once
		// nothing does.
		for k := range x.files {
			delete(x.files, k)
			break
		}
	}
	x.files[sg.firstSeq] = f
	return f, sg.name, nil
}

// frame reads entry seq's frame payload (body + stored hash) without a
// scan: the index gives its offset.
func (x *logIndex) frame(seq uint64, buf []byte) ([]byte, error) {
	r := x.runFor(seq)
	if r == nil {
		return nil, fmt.Errorf("auditlog: %s: seq %d is not indexed", x.dir, seq)
	}
	loc, err := r.seqAt(seq)
	if err != nil {
		return nil, err
	}
	f, name, err := x.segFile(seq)
	if err != nil {
		return nil, err
	}
	p, err := readFrameAt(f, loc.off, seq, buf)
	if err != nil {
		return nil, &CorruptError{Dir: x.dir, Segment: name, Offset: loc.off, Seq: seq,
			Reason: "reading the entry the index points at: " + err.Error() + " (the log changed under its index; Refresh)"}
	}
	return p, nil
}

// fact reads and decodes entry seq; the result owns its slices.
func (x *logIndex) fact(seq uint64) (Fact, error) {
	p, err := x.frame(seq, nil)
	if err != nil {
		return Fact{}, err
	}
	d := decoder{strings: true}
	f := Fact{Log: x.name}
	if reason := d.decode(p[:len(p)-hashSize], &f.Entry); reason != "" {
		return Fact{}, &CorruptError{Dir: x.dir, Seq: seq, Reason: reason}
	}
	copy(f.Hash[:], p[len(p)-hashSize:])
	// The entry aliases p, which nothing else holds.
	return f, nil
}

// loadRuns opens the runs the manifest names, dropping any that fails to
// load and every run after it (they would leave a gap). A run already open
// in have is reused when it is still the same file: runs never change once
// named, but a rebuild may write a new file under the same name.
func loadRuns(idxDir string, have []*run) ([]*run, error) {
	b, err := os.ReadFile(filepath.Join(idxDir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: index: %w", err)
	}
	var m manifest
	if json.Unmarshal(b, &m) != nil || m.Format != indexFormat {
		return nil, nil // unreadable or another format: rebuild
	}
	open := map[string]*run{}
	for _, r := range have {
		open[r.name] = r
	}
	var runs []*run
	next := uint64(1)
	for _, name := range m.Runs {
		path := filepath.Join(idxDir, filepath.Base(name))
		r := open[filepath.Base(name)]
		if r != nil && !sameFile(r.f, path) {
			r = nil
		}
		if r == nil {
			if r, err = openRun(path); err != nil {
				break
			}
		}
		if r.first != next {
			if open[r.name] != r {
				r.close()
			}
			break
		}
		runs = append(runs, r)
		next = r.last + 1
	}
	return runs, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// intact reports whether entry seq of the log still has chain hash want.
func (x *logIndex) intact(r *run, seq uint64, want [32]byte) bool {
	loc, err := r.seqAt(seq)
	if err != nil {
		return false
	}
	i := segmentFor(x.segs, seq)
	if i < 0 {
		return false
	}
	f, err := os.Open(filepath.Join(x.dir, x.segs[i].name))
	if err != nil {
		return false
	}
	defer f.Close()
	p, err := readFrameAt(f, loc.off, seq, nil)
	return err == nil && bytes.Equal(p[len(p)-hashSize:], want[:])
}

// refresh brings the index up to the log: it keeps the runs that still
// match the log (a Rewind may have taken back what they cover), indexes
// every entry after them, merges runs and publishes a new manifest.
func (x *logIndex) refresh() error {
	if err := os.MkdirAll(x.idxDir, 0o750); err != nil {
		return fmt.Errorf("auditlog: index %s: %w", x.idxDir, err)
	}
	lock, err := lockIndex(filepath.Join(x.idxDir, indexLockName))
	if err != nil {
		return fmt.Errorf("auditlog: index %s: %w", x.idxDir, err)
	}
	defer lock.Close()

	segs, err := listSegments(x.dir)
	if err != nil {
		return err
	}
	runs, err := loadRuns(x.idxDir, x.runs)
	if err != nil {
		return err
	}
	// Until the new set is installed, close only what this call opened.
	owned := map[*run]bool{}
	for _, r := range x.runs {
		owned[r] = true
	}
	drop := func(rs []*run) {
		for _, r := range rs {
			if !owned[r] {
				r.close()
			}
		}
	}
	x.segs = segs
	for len(runs) > 0 {
		r := runs[len(runs)-1]
		if x.intact(r, r.last, r.lastHash) {
			break
		}
		drop(runs[len(runs)-1:])
		runs = runs[:len(runs)-1]
	}
	// Catch up from the entry after the last intact run.
	var (
		from  = runHead{last: 0}
		si    int
		off   int64
		added []*run
	)
	if len(runs) > 0 {
		r := runs[len(runs)-1]
		from = r.runHead
		loc, err := r.seqAt(r.last)
		if err == nil {
			si = segmentFor(segs, r.last)
			var p []byte
			if p, err = x.frame0(si, loc.off, r.last); err == nil {
				off = loc.off + frameHeaderSize + int64(len(p))
			}
		}
		if err != nil {
			drop(runs)
			return err
		}
	}
	if len(segs) > 0 {
		added, err = x.indexFrom(segs, si, off, from)
		if err != nil {
			drop(runs)
			drop(added)
			return err
		}
	}
	if len(added) > 1 {
		m, err := x.merge(added)
		if err != nil {
			drop(runs)
			drop(added)
			return err
		}
		added = []*run{m}
	}
	runs = append(runs, added...)
	for len(runs) >= 2 && runs[len(runs)-2].count() <= mergeRatio*runs[len(runs)-1].count() {
		tail := runs[len(runs)-2:]
		m, err := x.merge(tail)
		if err != nil {
			drop(runs)
			return err
		}
		for _, r := range tail {
			owned[r] = false // merge closed it
		}
		runs = append(runs[:len(runs)-2], m)
	}
	if err := x.publish(runs); err != nil {
		drop(runs)
		return err
	}
	x.swapRuns(runs)
	return nil
}

// frame0 reads one frame straight from segment segs[si], without the index.
func (x *logIndex) frame0(si int, off int64, seq uint64) ([]byte, error) {
	f, err := os.Open(filepath.Join(x.dir, x.segs[si].name))
	if err != nil {
		return nil, fmt.Errorf("auditlog: index: %w", err)
	}
	defer f.Close()
	p, err := readFrameAt(f, off, seq, nil)
	if err != nil {
		return nil, &CorruptError{Dir: x.dir, Segment: x.segs[si].name, Offset: off, Seq: seq, Reason: err.Error()}
	}
	return p, nil
}

// indexFrom indexes entries from seq next (at segs[si], byte off) to the
// end of the log, verifying the chain from prev, and writes them as runs
// of at most chunkEntries.
func (x *logIndex) indexFrom(segs []segInfo, si int, off int64, from runHead) ([]*run, error) {
	it := newFrameIter(x.dir, segs, si, off, from.last+1, from.lastHash, true)
	defer it.close()
	var (
		keys  = make([]keyRec, 0, min(chunkEntries, 1024))
		seqs  = make([]seqRec, 0, min(chunkEntries, 1024))
		head  = runHead{last: from.last, lastSys: from.lastSys}
		runs  []*run
		e     Entry
		dec   decoder
		first = from.last + 1
	)
	flush := func() error {
		if len(seqs) == 0 {
			return nil
		}
		head.first = first
		path := filepath.Join(x.idxDir, runName(head.first, head.last))
		if err := writeRun(path, head, keys, seqs); err != nil {
			return err
		}
		r, err := openRun(path)
		if err != nil {
			return fmt.Errorf("auditlog: %w", err)
		}
		runs = append(runs, r)
		first = head.last + 1
		keys, seqs = keys[:0], seqs[:0]
		return nil
	}
	for {
		body, hash, err := it.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return runs, err
		}
		if reason := dec.decode(body, &e); reason != "" {
			return runs, it.corrupt(it.off, it.expect-1, "%s", reason)
		}
		if e.Seq > 1 && e.SystemTime <= head.lastSys {
			return runs, it.corrupt(it.off, e.Seq, "system time %d not after the previous entry's %d", e.SystemTime, head.lastSys)
		}
		keys = append(keys, keyRec{h: hashKey(e.Entity()), sys: e.SystemTime, vf: e.ValidFrom, vt: e.ValidTo, seq: e.Seq, op: e.Op})
		seqs = append(seqs, seqRec{sys: e.SystemTime, off: it.off})
		head.last, head.lastSys = e.Seq, e.SystemTime
		copy(head.lastHash[:], hash)
		if len(seqs) == chunkEntries {
			if err := flush(); err != nil {
				return runs, err
			}
		}
	}
	return runs, flush()
}

func (x *logIndex) merge(runs []*run) (*run, error) {
	last := runs[len(runs)-1]
	path := filepath.Join(x.idxDir, runName(runs[0].first, last.last))
	if err := mergeRuns(path, runs); err != nil {
		return nil, err
	}
	m, err := openRun(path)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	for _, r := range runs {
		r.close()
		if r.path != path {
			os.Remove(r.path)
		}
	}
	return m, nil
}

// publish writes the manifest naming runs and removes every other run file.
func (x *logIndex) publish(runs []*run) error {
	m := manifest{Format: indexFormat}
	keep := map[string]bool{}
	for _, r := range runs {
		name := filepath.Base(r.path)
		m.Runs = append(m.Runs, name)
		keep[name] = true
	}
	b, _ := json.Marshal(m)
	path := filepath.Join(x.idxDir, manifestName)
	if err := writeFileMaybeSync(path+tmpSuffix, append(b, '\n'), syncIndex); err != nil {
		return fmt.Errorf("auditlog: index manifest: %w", err)
	}
	if err := os.Rename(path+tmpSuffix, path); err != nil {
		return fmt.Errorf("auditlog: index manifest: %w", err)
	}
	if syncIndex {
		if err := syncDir(x.idxDir); err != nil {
			return fmt.Errorf("auditlog: index manifest: %w", err)
		}
	}
	ents, err := os.ReadDir(x.idxDir)
	if err != nil {
		return fmt.Errorf("auditlog: index: %w", err)
	}
	for _, de := range ents {
		n := de.Name()
		if (strings.HasSuffix(n, runSuffix) && !keep[n]) || strings.HasSuffix(n, runSuffix+tmpSuffix) {
			os.Remove(filepath.Join(x.idxDir, n))
		}
	}
	return nil
}

// swapRuns installs runs and drops cached segment handles: a Rewind may
// have replaced the files behind them.
func (x *logIndex) swapRuns(runs []*run) {
	keep := map[*run]bool{}
	for _, r := range runs {
		keep[r] = true
	}
	for _, r := range x.runs {
		if !keep[r] {
			r.close()
		}
	}
	x.runs = runs
	x.mu.Lock()
	for k, f := range x.files {
		f.Close()
		delete(x.files, k)
	}
	x.mu.Unlock()
}

func writeFileMaybeSync(path string, b []byte, sync bool) error {
	if sync {
		return writeFileSync(path, b)
	}
	return os.WriteFile(path, b, 0o640)
}
