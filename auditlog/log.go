package auditlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/meshlet/meshlet/internal/failpoint"
)

const (
	defaultSegmentSize = 64 << 20
	// An Append buffer that grew past this for one huge batch is not kept.
	maxKeptBuffer = 32 << 20
	lockName      = "LOCK"
)

// Option configures Open.
type Option func(*options)

type options struct {
	segmentSize int64
	syncEach    bool
	metrics     *Metrics
}

// SegmentSize rolls to a new segment when the current one would exceed n
// bytes (default 64 MiB). A single bigger entry still goes in a segment of
// its own.
func SegmentSize(n int64) Option { return func(o *options) { o.segmentSize = n } }

// SyncEachAppend fsyncs after each Append (default true). Turn it off only
// when something else (a Kafka transaction, a later Sync) decides durability.
func SyncEachAppend(on bool) Option { return func(o *options) { o.syncEach = on } }

// Recovery is what Open cut from a torn tail; zero when the log was clean.
type Recovery struct {
	Segment        string
	TruncatedBytes int64
}

// Log is the change log of one input partition. Its methods are safe for
// concurrent use; Scan runs alongside Append.
type Log struct {
	dir      string
	opts     options
	recovery Recovery
	metrics  logMetrics

	ckMu sync.Mutex // serialises checkpoints (checkpoint.go); never held with mu waiting on it

	mu         sync.Mutex
	lock       *os.File
	dirInfo    os.FileInfo // dir as opened, to notice it removed or replaced
	f          *os.File    // last segment, append-only
	segs       []segInfo
	curSize    int64 // bytes in the last segment
	curEntries int   // entries in the last segment
	seq        uint64
	sysTime    int64
	hash       [32]byte
	err        error // sticky: set by a failed write or Close

	buf  []byte
	ends []int
	ch   *chainer
}

var errClosed = errors.New("auditlog: log closed")

// ErrRemoved is returned by Append when the log's directory or its last
// segment is no longer the one the Log opened (deleted, or replaced by a
// new one): a wiped disk. Entries written now would go to unlinked files and
// be lost, so the Log refuses them, and every later call, until reopened.
var ErrRemoved = errors.New("change log directory removed while open")

// ErrLocked is returned by Open while another process or Log has the log
// open. During a rebalance the previous owner releases it between batches,
// so a new owner waits and tries again.
var ErrLocked = errors.New("log is open in another process or Log")

// Open opens the log in dir, creating dir if needed. It reads and checks
// every segment. A torn last frame is cut and reported by Recovery; any other
// damage is returned as a *CorruptError and nothing on disk is changed.
func Open(dir string, opts ...Option) (*Log, error) {
	o := options{segmentSize: defaultSegmentSize, syncEach: true}
	for _, opt := range opts {
		opt(&o)
	}
	if o.segmentSize <= 0 {
		return nil, fmt.Errorf("auditlog: open %s: SegmentSize must be positive, got %d", dir, o.segmentSize)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("auditlog: open: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("auditlog: open %s: %w", dir, err)
	}
	l, err := openLocked(dir, o)
	if err == nil {
		l.dirInfo, err = os.Stat(dir)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.lock = lock
	return l, nil
}

func openLocked(dir string, o options) (*Log, error) {
	st, err := scanDir(dir, nil)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:     dir,
		opts:    o,
		segs:    st.segs,
		seq:     st.report.LastSeq,
		sysTime: st.lastSys,
		hash:    st.report.Head,
		ch:      newChainer(),
		metrics: o.metrics.forLog(filepath.Base(dir)),
	}
	if len(st.segs) == 0 {
		return l, removeTemps(dir)
	}
	last := st.segs[len(st.segs)-1]
	path := filepath.Join(dir, last.name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("auditlog: open: %w", err)
	}
	if st.torn != nil {
		if err := f.Truncate(st.endSize); err == nil {
			err = l.metrics.sync(f)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("auditlog: open: cut torn tail of %s: %w", path, err)
		}
		l.recovery = *st.torn
	}
	if err := removeTemps(dir); err != nil {
		f.Close()
		return nil, err
	}
	l.f = f
	l.curSize = st.endSize
	l.curEntries = int(l.seq + 1 - last.firstSeq)
	return l, nil
}

// removeTemps deletes segments whose creation was interrupted before the
// rename that publishes them; they never held an entry.
func removeTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("auditlog: open: %w", err)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), segSuffix+tmpSuffix) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return fmt.Errorf("auditlog: open: %w", err)
			}
		}
	}
	return nil
}

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }

// Recovery reports what Open cut from a torn tail.
func (l *Log) Recovery() Recovery { return l.recovery }

// Tail returns the last entry's seq, system time and chain hash (zeros when
// the log is empty).
func (l *Log) Tail() (seq uint64, systemTime int64, hash [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.sysTime, l.hash
}

// Append validates the whole batch before writing any of it, fills each
// entry's Hash, and writes the batch with one write per segment it touches.
// After a failed write the Log refuses all further calls: what reached the
// disk is unknown, and only Open can tell.
func (l *Log) Append(batch []Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if len(batch) == 0 {
		return nil
	}
	seq, sys := l.seq, l.sysTime
	for i := range batch {
		e := &batch[i]
		switch {
		case e.Seq != seq+1:
			return fmt.Errorf("auditlog: append: batch[%d] has seq %d, want %d", i, e.Seq, seq+1)
		case seq > 0 && e.SystemTime <= sys:
			return fmt.Errorf("auditlog: append: batch[%d] (seq %d) system time %d is not after %d", i, e.Seq, e.SystemTime, sys)
		case !knownOp(e.Op):
			return fmt.Errorf("auditlog: append: batch[%d] (seq %d) has unknown op 0x%02x", i, e.Seq, e.Op)
		case frameLen(e) > maxFrameLen:
			return fmt.Errorf("auditlog: append: batch[%d] (seq %d) encodes to %d bytes, limit %d", i, e.Seq, frameLen(e), maxFrameLen)
		}
		seq, sys = e.Seq, e.SystemTime
	}

	buf, ends := l.buf[:0], l.ends[:0]
	prev := &l.hash
	for i := range batch {
		e := &batch[i]
		start := len(buf)
		buf = append(buf, make([]byte, frameHeaderSize)...)
		buf = appendBody(buf, e)
		e.Hash = *l.ch.next(prev, buf[start+frameHeaderSize:])
		buf = append(buf, e.Hash[:]...)
		binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-frameHeaderSize))
		binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+frameHeaderSize:], castagnoli))
		ends = append(ends, len(buf))
		prev = &e.Hash
	}
	if cap(buf) <= maxKeptBuffer {
		l.buf, l.ends = buf, ends
	}
	if err := l.stillThere(); err != nil {
		return l.fail(err)
	}

	chunk, pos, pending, pendingN := 0, 0, int64(0), 0
	for i, end := range ends {
		n := int64(end - pos)
		if l.f == nil || (l.curEntries+pendingN > 0 && l.curSize+pending+n > l.opts.segmentSize) {
			if err := l.write(buf[chunk:pos], pendingN); err != nil {
				return l.fail(err)
			}
			prevHash := l.hash
			if i > 0 {
				prevHash = batch[i-1].Hash
			}
			if err := l.roll(batch[i].Seq, prevHash); err != nil {
				return l.fail(err)
			}
			chunk, pending, pendingN = pos, 0, 0
		}
		pending += n
		pendingN++
		pos = end
	}
	if err := l.write(buf[chunk:], pendingN); err != nil {
		return l.fail(err)
	}
	if l.opts.syncEach {
		if err := l.metrics.sync(l.f); err != nil {
			return l.fail(err)
		}
	}
	last := &batch[len(batch)-1]
	l.seq, l.sysTime, l.hash = last.Seq, last.SystemTime, last.Hash
	return nil
}

// stillThere checks that the directory and the last segment are the ones
// the Log has open: two stats, next to the fsync every append makes.
func (l *Log) stillThere() error {
	st, err := os.Stat(l.dir)
	if err != nil || !os.SameFile(st, l.dirInfo) {
		return fmt.Errorf("%w: %s (a wiped or remounted disk?)", ErrRemoved, l.dir)
	}
	if l.f == nil {
		return nil
	}
	open, err := l.f.Stat()
	if err != nil {
		return err
	}
	if st, err := os.Stat(l.f.Name()); err != nil || !os.SameFile(st, open) {
		return fmt.Errorf("%w: segment %s is gone from %s (a wiped disk?)", ErrRemoved, filepath.Base(l.f.Name()), l.dir)
	}
	return nil
}

func (l *Log) write(b []byte, entries int) error {
	if len(b) == 0 {
		return nil
	}
	if failpoint.Fire("auditlog/torn-write") {
		l.f.Write(b[:len(b)/2]) // a crash mid-write, for crash tests
		failpoint.Die()
	}
	n, err := l.f.Write(b)
	l.metrics.wrote(n)
	if err != nil {
		return err
	}
	l.curSize += int64(len(b))
	l.curEntries += entries
	return nil
}

// roll starts the segment for firstSeq. The header is written to a temporary
// file and renamed into place, so a segment that exists always has a whole
// header; the old segment is synced first, so Sync need only ever sync the
// last one.
func (l *Log) roll(firstSeq uint64, prev [32]byte) error {
	if l.f != nil {
		if err := l.metrics.sync(l.f); err != nil {
			return err
		}
		if err := l.f.Close(); err != nil {
			return err
		}
		l.f = nil
	}
	name := segmentName(firstSeq)
	path := filepath.Join(l.dir, name)
	hdr := segmentHeader{firstSeq: firstSeq, prev: prev}.encode()
	if err := l.writeHeader(path+tmpSuffix, hdr[:]); err != nil {
		return err
	}
	if err := os.Rename(path+tmpSuffix, path); err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	l.f = f
	l.segs = append(l.segs, segInfo{firstSeq, name})
	l.curSize, l.curEntries = headerSize, 0
	return nil
}

// writeHeader writes a new segment's header to path and syncs it.
func (l *Log) writeHeader(path string, hdr []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	n, err := f.Write(hdr)
	l.metrics.wrote(n)
	if err == nil {
		err = l.metrics.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *Log) fail(err error) error {
	l.err = fmt.Errorf("auditlog: %s: write failed, log unusable until reopened: %w", l.dir, err)
	return l.err
}

// Sync makes every appended entry durable.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.f == nil {
		return nil
	}
	if err := l.metrics.sync(l.f); err != nil {
		return l.fail(err)
	}
	return nil
}

// Close syncs and releases the log. After a failed write it still releases
// everything and returns that failure.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == errClosed {
		return nil
	}
	err := l.err
	if l.f != nil {
		if err == nil {
			if serr := l.metrics.sync(l.f); serr != nil {
				err = fmt.Errorf("auditlog: close %s: %w", l.dir, serr)
			}
		}
		if cerr := l.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("auditlog: close %s: %w", l.dir, cerr)
		}
		l.f = nil
	}
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
	l.err = errClosed
	return err
}

// Scan calls fn for every entry from fromSeq on, in order, up to the tail as
// it was when Scan started. e and its slices are only valid during fn; an
// error from fn stops the scan and is returned as is.
//
// Scan checks framing, checksums and seq order but not the hash chain (Open
// and Verify do); Hash is the stored chain hash. Like every call after a
// failed write, it returns that failure.
func (l *Log) Scan(fromSeq uint64, fn func(e *Entry) error) error {
	l.mu.Lock()
	if err := l.err; err != nil {
		l.mu.Unlock()
		return err
	}
	segs := l.segs[:len(l.segs):len(l.segs)]
	lastSeq := l.seq
	l.mu.Unlock()

	if fromSeq == 0 {
		fromSeq = 1
	}
	if fromSeq > lastSeq {
		return nil
	}
	// The last segment whose first seq is <= fromSeq holds it.
	i := sort.Search(len(segs), func(i int) bool { return segs[i].firstSeq > fromSeq }) - 1
	if i < 0 {
		i = 0
	}
	var (
		sr     = newSegReader()
		dec    = decoder{strings: true}
		e      Entry
		expect = segs[i].firstSeq
	)
	for ; i < len(segs) && expect <= lastSeq; i++ {
		sg := segs[i]
		corrupt := func(off int64, seq uint64, format string, args ...any) error {
			return &CorruptError{Dir: l.dir, Segment: sg.name, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
		}
		f, err := os.Open(filepath.Join(l.dir, sg.name))
		if err != nil {
			return fmt.Errorf("auditlog: scan: %w", err)
		}
		err = func() error {
			defer f.Close()
			h, reason, err := sr.open(f)
			if err != nil {
				return fmt.Errorf("auditlog: scan %s: %w", f.Name(), err)
			}
			if reason != "" {
				return corrupt(0, expect, "%s", reason)
			}
			if h.firstSeq != expect {
				return corrupt(0, expect, "segment starts at seq %d, want %d", h.firstSeq, expect)
			}
			for expect <= lastSeq {
				off := sr.off
				p, bad, err := sr.next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("auditlog: scan %s: %w", f.Name(), err)
				}
				if bad != nil {
					return corrupt(bad.off, expect, "%s", bad.reason)
				}
				if seq := binary.BigEndian.Uint64(p); seq != expect {
					return corrupt(off, seq, "sequence gap: want seq %d, found %d", expect, seq)
				} else if seq < fromSeq {
					expect++
					continue
				}
				if reason := dec.decode(p[:len(p)-hashSize], &e); reason != "" {
					return corrupt(off, expect, "%s", reason)
				}
				copy(e.Hash[:], p[len(p)-hashSize:])
				if err := fn(&e); err != nil {
					return err
				}
				expect++
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	if expect <= lastSeq {
		return &CorruptError{Dir: l.dir, Segment: segs[len(segs)-1].name, Seq: expect, Reason: "entries missing at the end of the log"}
	}
	return nil
}
