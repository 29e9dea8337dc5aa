package auditlog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// VerifyReport is what Verify found in one log directory.
type VerifyReport struct {
	Dir               string
	Segments          int
	Entries           uint64
	FirstSeq, LastSeq uint64
	Head              [32]byte // chain hash of the last entry
	TornTail          bool     // a torn last frame was seen (not an error for verify, but reported)
}

// Verify re-reads every segment of the log in dir without writing anything
// and checks headers, framing, checksums, seq continuity, system-time order and
// the hash chain. A torn last frame is reported, not failed: it is the normal
// trace of a crash and Open will cut it.
func Verify(dir string) (VerifyReport, error) {
	st, err := scanDir(dir)
	return st.report, err
}

// VerifyTree verifies every log directory (a directory holding *.seg files)
// under root, in lexical order. It stops at the first error and returns the
// reports of the logs before it.
func VerifyTree(root string) ([]VerifyReport, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(d.Name()) == segSuffix {
			if dir := filepath.Dir(path); len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auditlog: verify tree %s: %w", root, err)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var reports []VerifyReport
	for _, dir := range dirs {
		r, err := Verify(dir)
		if err != nil {
			return reports, err
		}
		reports = append(reports, r)
	}
	return reports, nil
}

type segInfo struct {
	firstSeq uint64
	name     string
}

// dirState is everything Open needs from a full scan of a log directory.
type dirState struct {
	report  VerifyReport
	segs    []segInfo
	lastSys int64
	endSize int64     // valid length of the last segment
	torn    *Recovery // set when the last segment ends in a torn frame
}

func listSegments(dir string) ([]segInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	var segs []segInfo
	for _, de := range ents {
		name := de.Name()
		if filepath.Ext(name) != segSuffix {
			continue
		}
		seq, ok := parseSegmentName(name)
		if !ok || !de.Type().IsRegular() {
			return nil, &CorruptError{Dir: dir, Segment: name,
				Reason: "not a segment: want a regular file named by a 20-digit first seq"}
		}
		segs = append(segs, segInfo{seq, name})
	}
	slices.SortFunc(segs, func(a, b segInfo) int { return cmpU64(a.firstSeq, b.firstSeq) })
	return segs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// badFrame describes a frame that could not be read.
type badFrame struct {
	off    int64
	reason string
	// tornShape: the frame is cut short, as an interrupted append leaves it.
	// Whether it really is one is decided by tornTail, which also looks at
	// what follows.
	tornShape bool
	// frameEnd is where the frame claims to end, when that is inside the file.
	frameEnd int64
}

// segReader walks the frames of one segment. Reads are buffered, the frame
// buffer is reused, and no length is trusted before it is checked against
// both maxFrameLen and the bytes actually left in the file.
type segReader struct {
	r    *bufio.Reader
	size int64
	off  int64
	buf  []byte
	fh   [frameHeaderSize]byte // a field, not a local: io.ReadFull would make a local escape per frame
}

func newSegReader() *segReader {
	return &segReader{r: bufio.NewReaderSize(nil, 1<<20)}
}

// open reads and checks the header of f. It returns a reason if the header is bad.
func (s *segReader) open(f *os.File) (segmentHeader, string, error) {
	fi, err := f.Stat()
	if err != nil {
		return segmentHeader{}, "", err
	}
	s.size, s.off = fi.Size(), 0
	s.r.Reset(f)
	if s.size < headerSize {
		return segmentHeader{}, fmt.Sprintf("segment is %d bytes, shorter than its %d-byte header", s.size, headerSize), nil
	}
	var hb [headerSize]byte
	if _, err := io.ReadFull(s.r, hb[:]); err != nil {
		return segmentHeader{}, "", err
	}
	s.off = headerSize
	h, reason := decodeHeader(hb[:])
	return h, reason, nil
}

// next returns the next frame's payload (body + stored hash), io.EOF at the
// end of the segment, or a badFrame.
func (s *segReader) next() ([]byte, *badFrame, error) {
	rem := s.size - s.off
	if rem == 0 {
		return nil, nil, io.EOF
	}
	if rem < frameHeaderSize {
		return nil, &badFrame{off: s.off, tornShape: true,
			reason: fmt.Sprintf("frame header cut short (%d of %d bytes)", rem, frameHeaderSize)}, nil
	}
	fh := s.fh[:]
	if _, err := io.ReadFull(s.r, fh); err != nil {
		return nil, nil, err
	}
	n := int64(binary.BigEndian.Uint32(fh[0:4]))
	sum := binary.BigEndian.Uint32(fh[4:8])
	if n > rem-frameHeaderSize {
		bad, err := s.pastEOF(n, sum, rem-frameHeaderSize)
		return nil, bad, err
	}
	if n < minFrameLen || n > maxFrameLen {
		return nil, &badFrame{off: s.off,
			reason: fmt.Sprintf("frame length %d outside [%d, %d]", n, minFrameLen, maxFrameLen)}, nil
	}
	if int64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	p := s.buf[:n]
	if _, err := io.ReadFull(s.r, p); err != nil {
		return nil, nil, err
	}
	end := s.off + frameHeaderSize + n
	if got := crc32.Checksum(p, castagnoli); got != sum {
		return nil, &badFrame{off: s.off, frameEnd: end,
			reason: fmt.Sprintf("frame checksum mismatch (stored %08x, computed %08x)", sum, got)}, nil
	}
	s.off = end
	return p, nil, nil
}

// pastEOF classifies a frame whose length runs past the end of the segment.
// An append cut short leaves exactly that. But if the bytes that are there
// carry the stored checksum, the frame is complete and its length field was
// changed: damage, not a torn write.
func (s *segReader) pastEOF(n int64, sum uint32, left int64) (*badFrame, error) {
	bad := &badFrame{off: s.off, tornShape: true,
		reason: fmt.Sprintf("frame length %d runs past the end of the segment (%d bytes left)", n, left)}
	if left < minFrameLen || left > maxFrameLen {
		return bad, nil
	}
	if int64(cap(s.buf)) < left {
		s.buf = make([]byte, left)
	}
	p := s.buf[:left]
	if _, err := io.ReadFull(s.r, p); err != nil {
		return nil, err
	}
	if crc32.Checksum(p, castagnoli) == sum {
		bad.tornShape = false
		bad.reason = fmt.Sprintf("frame length field says %d but the frame that checks out is %d bytes", n, left)
	}
	return bad, nil
}

// tornTail decides whether bad, found in the last segment, is the trace of an
// interrupted append that can be cut without losing a complete entry.
//
// It is when the rest of the file is zeros (a filesystem that extended the
// file but never wrote the data), or when the frame has the shape of a torn
// write and no well-formed frame starts anywhere after it. The second test is
// what keeps a flipped length byte in the middle of the segment from passing
// for a torn tail and dropping the good entries behind it.
//
// A complete frame whose checksum fails has the shape of a torn write only
// when its stored hash and everything after it are zeros: the end of the
// write never reached the disk. A kill leaves a frame cut short, never a
// complete one with other bytes wrong, so anything else is damage and is
// named, even in the last entry: cutting it would drop a committed entry.
func tornTail(f *os.File, size int64, bad *badFrame, expect uint64) (bool, error) {
	rest := make([]byte, size-bad.off)
	if _, err := f.ReadAt(rest, bad.off); err != nil {
		return false, err
	}
	if isZero(rest) {
		return true, nil
	}
	shape := bad.tornShape || (bad.frameEnd > 0 && isZero(rest[bad.frameEnd-bad.off-hashSize:]))
	if !shape {
		return false, nil
	}
	maxFrames := uint64(len(rest))/(frameHeaderSize+minFrameLen) + 1
	for p := 1; p+frameHeaderSize+minFrameLen <= len(rest); p++ {
		n := int(binary.BigEndian.Uint32(rest[p:]))
		if n < minFrameLen || n > maxFrameLen || n > len(rest)-p-frameHeaderSize {
			continue
		}
		body := rest[p+frameHeaderSize : p+frameHeaderSize+n]
		if seq := binary.BigEndian.Uint64(body); seq < expect || seq-expect > maxFrames {
			continue
		}
		if crc32.Checksum(body, castagnoli) == binary.BigEndian.Uint32(rest[p+4:]) {
			return false, nil
		}
	}
	return true, nil
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// chainer computes chain hashes without allocating.
type chainer struct {
	h   hash.Hash
	sum [32]byte
}

func newChainer() *chainer { return &chainer{h: sha256.New()} }

func (c *chainer) next(prev *[32]byte, body []byte) *[32]byte {
	c.h.Reset()
	c.h.Write(prev[:])
	c.h.Write(body)
	c.h.Sum(c.sum[:0])
	return &c.sum
}

// scanDir reads a whole log directory read-only and checks everything Verify
// promises. Open uses the same walk, so what Open accepts Verify accepts.
func scanDir(dir string) (dirState, error) {
	st := dirState{report: VerifyReport{Dir: dir}}
	segs, err := listSegments(dir)
	if err != nil {
		if ce, ok := err.(*CorruptError); ok {
			return st, ce
		}
		return st, err
	}
	st.segs = segs
	st.report.Segments = len(segs)

	var (
		expect = uint64(1)
		chain  [32]byte
		sr     = newSegReader()
		ch     = newChainer()
		dec    = decoder{}
		e      Entry
	)
	for i, sg := range segs {
		last := i == len(segs)-1
		corrupt := func(off int64, seq uint64, format string, args ...any) error {
			return &CorruptError{Dir: dir, Segment: sg.name, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...)}
		}
		f, err := os.Open(filepath.Join(dir, sg.name))
		if err != nil {
			return st, fmt.Errorf("auditlog: %w", err)
		}
		err = func() error {
			defer f.Close()
			h, reason, err := sr.open(f)
			if err != nil {
				return fmt.Errorf("auditlog: read %s: %w", f.Name(), err)
			}
			if reason != "" {
				return corrupt(0, sg.firstSeq, "%s", reason)
			}
			if h.firstSeq != sg.firstSeq {
				return corrupt(0, sg.firstSeq, "header says first seq %d but the file is named for %d", h.firstSeq, sg.firstSeq)
			}
			if h.firstSeq != expect {
				return corrupt(0, expect, "segment starts at seq %d, want %d (entries missing)", h.firstSeq, expect)
			}
			if h.prev != chain {
				return corrupt(0, expect, "segment header chain hash %s does not match the previous entry's %s",
					shortHash(h.prev[:]), shortHash(chain[:]))
			}
			for {
				off := sr.off
				p, bad, err := sr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("auditlog: read %s: %w", f.Name(), err)
				}
				if bad != nil {
					if last {
						torn, err := tornTail(f, sr.size, bad, expect)
						if err != nil {
							return fmt.Errorf("auditlog: read %s: %w", f.Name(), err)
						}
						if torn {
							st.torn = &Recovery{Segment: sg.name, TruncatedBytes: sr.size - bad.off}
							st.report.TornTail = true
							st.endSize = bad.off
							return nil
						}
					}
					return corrupt(bad.off, expect, "%s", bad.reason)
				}
				body, stored := p[:len(p)-hashSize], p[len(p)-hashSize:]
				if reason := dec.decode(body, &e); reason != "" {
					return corrupt(off, expect, "%s", reason)
				}
				if e.Seq != expect {
					return corrupt(off, e.Seq, "sequence gap: want seq %d, found %d", expect, e.Seq)
				}
				if expect > 1 && e.SystemTime <= st.lastSys {
					return corrupt(off, e.Seq, "system time %d not after the previous entry's %d", e.SystemTime, st.lastSys)
				}
				sum := ch.next(&chain, body)
				if !bytes.Equal(sum[:], stored) {
					return corrupt(off, e.Seq, "hash chain broken (stored %s, computed %s)", shortHash(stored), shortHash(sum[:]))
				}
				chain = *sum
				st.lastSys = e.SystemTime
				if st.report.Entries == 0 {
					st.report.FirstSeq = e.Seq
				}
				st.report.Entries++
				st.report.LastSeq = e.Seq
				expect++
			}
			st.endSize = sr.size
			return nil
		}()
		if err != nil {
			return st, err
		}
	}
	st.report.Head = chain
	return st, nil
}
