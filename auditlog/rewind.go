package auditlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Rewind takes back the entries at the end of the log for which drop
// returns true: the longest such run, and nothing before the last entry drop
// keeps. It exists for one purpose: a batch is appended before its Kafka
// transaction commits, and when the transaction does not commit, its entries
// must go, so the log holds exactly what was published. It returns how many
// entries it removed; the chain then continues from the last kept entry.
//
// Segments are cut from the end backwards and each step is synced, so a
// crash part way leaves a shorter tail that a second Rewind finishes.
func (l *Log) Rewind(drop func(e *Entry) bool) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	if l.seq == 0 {
		return 0, nil
	}

	// Find the segment holding the last kept entry, walking back from the end.
	cut := rewindPoint{segIndex: 0, end: headerSize}
	for i := len(l.segs) - 1; i >= 0; i-- {
		p, err := l.lastKept(l.segs[i], drop)
		if err != nil {
			return 0, err
		}
		if p.found {
			cut = p
			cut.segIndex = i
			break
		}
	}
	if cut.seq == l.seq {
		return 0, nil
	}
	dropped := l.seq - cut.seq

	if err := l.f.Close(); err != nil {
		return 0, l.fail(err)
	}
	l.f = nil
	for i := len(l.segs) - 1; i > cut.segIndex; i-- {
		if err := os.Remove(filepath.Join(l.dir, l.segs[i].name)); err != nil {
			return 0, l.fail(err)
		}
		if err := syncDir(l.dir); err != nil {
			return 0, l.fail(err)
		}
	}
	l.segs = l.segs[:cut.segIndex+1]
	last := l.segs[cut.segIndex]
	f, err := os.OpenFile(filepath.Join(l.dir, last.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, l.fail(err)
	}
	l.f = f
	if err := f.Truncate(cut.end); err != nil {
		return 0, l.fail(err)
	}
	if err := l.metrics.sync(f); err != nil {
		return 0, l.fail(err)
	}
	l.curSize = cut.end
	l.curEntries = int(cut.seq + 1 - last.firstSeq)
	l.seq, l.sysTime, l.hash = cut.seq, cut.sysTime, cut.hash
	if cut.seq == 0 {
		l.sysTime, l.hash = 0, [32]byte{}
	}
	return dropped, nil
}

// rewindPoint is where a rewound log ends: just after the last kept entry.
type rewindPoint struct {
	found    bool
	segIndex int
	end      int64 // byte offset just past the kept entry's frame
	seq      uint64
	sysTime  int64
	hash     [32]byte
}

// lastKept reads one segment and returns the last entry drop keeps, if any.
// When it is the first segment and every entry is dropped, the segment's
// header is the cut point (seq 0).
func (l *Log) lastKept(sg segInfo, drop func(*Entry) bool) (rewindPoint, error) {
	f, err := os.Open(filepath.Join(l.dir, sg.name))
	if err != nil {
		return rewindPoint{}, fmt.Errorf("auditlog: rewind: %w", err)
	}
	defer f.Close()
	sr := newSegReader()
	if _, reason, err := sr.open(f); err != nil || reason != "" {
		return rewindPoint{}, fmt.Errorf("auditlog: rewind %s: header: %v%s", sg.name, err, reason)
	}
	var (
		p   rewindPoint
		dec = decoder{strings: true}
		e   Entry
	)
	if sg.firstSeq == 1 {
		p = rewindPoint{found: true, end: headerSize}
	}
	for {
		payload, bad, err := sr.next()
		if err == io.EOF {
			return p, nil
		}
		if err != nil {
			return rewindPoint{}, fmt.Errorf("auditlog: rewind %s: %w", sg.name, err)
		}
		if bad != nil {
			return rewindPoint{}, &CorruptError{Dir: l.dir, Segment: sg.name, Offset: bad.off, Reason: bad.reason}
		}
		body := payload[:len(payload)-hashSize]
		if reason := dec.decode(body, &e); reason != "" {
			return rewindPoint{}, &CorruptError{Dir: l.dir, Segment: sg.name, Offset: sr.off, Seq: binary.BigEndian.Uint64(body), Reason: reason}
		}
		copy(e.Hash[:], payload[len(payload)-hashSize:])
		if !drop(&e) {
			p = rewindPoint{found: true, end: sr.off, seq: e.Seq, sysTime: e.SystemTime, hash: e.Hash}
		}
	}
}
