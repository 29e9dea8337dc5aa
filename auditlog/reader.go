package auditlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Readers in this file never take the log's LOCK: the index, checkpoints
// and proofs read a log while its writer (the runtime) keeps appending.
// Everything they read is checked frame by frame, and the last segment may
// end in a frame still being written, which reads as the end of the log.

// frameIter walks frames from a given position to the end of the log,
// across segments, checking CRCs, seq continuity and (when prev is set) the
// hash chain.
type frameIter struct {
	dir    string
	segs   []segInfo
	si     int // index into segs of the open segment
	f      *os.File
	sr     *segReader
	expect uint64
	chain  [32]byte
	ch     *chainer
	verify bool

	// Position of the frame Next returned last.
	seg uint64 // first seq of its segment
	off int64
}

// newFrameIter starts at the frame of seq expect, found at byte off of
// segment segs[si]; prev is the chain hash of the entry before it. off 0
// means "just after the segment header".
func newFrameIter(dir string, segs []segInfo, si int, off int64, expect uint64, prev [32]byte, verify bool) *frameIter {
	return &frameIter{dir: dir, segs: segs, si: si, off: off, expect: expect, chain: prev,
		ch: newChainer(), verify: verify, sr: &segReader{r: bufio.NewReaderSize(nil, 64<<10)}}
}

func (it *frameIter) close() {
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
}

func (it *frameIter) corrupt(off int64, seq uint64, format string, args ...any) error {
	return &CorruptError{Dir: it.dir, Segment: it.segs[it.si].name, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// openSeg opens segs[it.si] positioned at it.off (or after the header).
func (it *frameIter) openSeg() error {
	sg := it.segs[it.si]
	f, err := os.Open(filepath.Join(it.dir, sg.name))
	if err != nil {
		return fmt.Errorf("auditlog: read %s: %w", it.dir, err)
	}
	h, reason, err := it.sr.open(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("auditlog: read %s: %w", f.Name(), err)
	}
	if reason != "" {
		f.Close()
		return it.corrupt(0, it.expect, "%s", reason)
	}
	if it.off <= headerSize {
		if h.firstSeq != it.expect {
			f.Close()
			return it.corrupt(0, it.expect, "segment starts at seq %d, want %d", h.firstSeq, it.expect)
		}
		if it.verify && h.prev != it.chain {
			f.Close()
			return it.corrupt(0, it.expect, "segment header chain hash %s does not match the previous entry's %s",
				shortHash(h.prev[:]), shortHash(it.chain[:]))
		}
	} else {
		if it.off > it.sr.size {
			f.Close()
			return it.corrupt(it.off, it.expect, "segment is %d bytes, the index expected a frame at %d", it.sr.size, it.off)
		}
		if _, err := f.Seek(it.off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("auditlog: read %s: %w", f.Name(), err)
		}
		it.sr.r.Reset(f)
		it.sr.off = it.off
	}
	it.f = f
	return nil
}

// next returns the next frame's body (without the stored hash) and its
// stored hash. Both alias an internal buffer valid until the next call.
// At the end of the log it returns io.EOF. A bad frame in the last segment
// is taken for one still being written and also ends the walk; a bad frame
// anywhere else is a *CorruptError.
func (it *frameIter) next() (body []byte, hash []byte, err error) {
	for {
		if it.si >= len(it.segs) {
			return nil, nil, io.EOF
		}
		if it.f == nil {
			if err := it.openSeg(); err != nil {
				return nil, nil, err
			}
		}
		off := it.sr.off
		p, bad, err := it.sr.next()
		if err == io.EOF {
			it.close()
			it.si++
			it.off = 0
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("auditlog: read %s: %w", it.f.Name(), err)
		}
		if bad != nil {
			if it.si == len(it.segs)-1 {
				return nil, nil, io.EOF
			}
			return nil, nil, it.corrupt(bad.off, it.expect, "%s", bad.reason)
		}
		body, stored := p[:len(p)-hashSize], p[len(p)-hashSize:]
		if seq := binary.BigEndian.Uint64(body); seq != it.expect {
			return nil, nil, it.corrupt(off, seq, "sequence gap: want seq %d, found %d", it.expect, seq)
		}
		if it.verify {
			sum := it.ch.next(&it.chain, body)
			if !bytes.Equal(sum[:], stored) {
				return nil, nil, it.corrupt(off, it.expect, "hash chain broken (stored %s, computed %s)", shortHash(stored), shortHash(sum[:]))
			}
		}
		copy(it.chain[:], stored)
		it.seg, it.off = it.segs[it.si].firstSeq, off
		it.expect++
		return body, stored, nil
	}
}

// segmentFor returns the index of the segment holding seq.
func segmentFor(segs []segInfo, seq uint64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].firstSeq > seq }) - 1
}

// readFrameAt reads the frame at off of f and checks its bounds, CRC and
// seq. It returns the frame payload (body + stored hash) in buf's storage.
func readFrameAt(f *os.File, off int64, seq uint64, buf []byte) ([]byte, error) {
	if cap(buf) < 512 {
		buf = make([]byte, 512)
	}
	buf = buf[:cap(buf)]
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n < frameHeaderSize {
		return nil, fmt.Errorf("frame at offset %d cut short", off)
	}
	l := int(binary.BigEndian.Uint32(buf[0:4]))
	sum := binary.BigEndian.Uint32(buf[4:8])
	if l < minFrameLen || l > maxFrameLen {
		return nil, fmt.Errorf("frame at offset %d has length %d outside [%d, %d]", off, l, minFrameLen, maxFrameLen)
	}
	if frameHeaderSize+l > n {
		if frameHeaderSize+l > len(buf) {
			nb := make([]byte, frameHeaderSize+l)
			copy(nb, buf[:n])
			buf = nb
		}
		m, err := f.ReadAt(buf[n:frameHeaderSize+l], off+int64(n))
		if m < frameHeaderSize+l-n {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("frame at offset %d cut short", off)
			}
			return nil, err
		}
	}
	p := buf[frameHeaderSize : frameHeaderSize+l]
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, fmt.Errorf("frame at offset %d: checksum mismatch", off)
	}
	if got := binary.BigEndian.Uint64(p); got != seq {
		return nil, fmt.Errorf("frame at offset %d holds seq %d, want %d", off, got, seq)
	}
	return p, nil
}
