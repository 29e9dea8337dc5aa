package auditlog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyReport is what Verify found in one log directory.
type VerifyReport struct {
	Dir string
	// Log is the log's name: its directory's name, which is also how its
	// checkpoints name it (<topic>-<partition> for the runtime's logs).
	Log               string
	Segments          int
	Entries           uint64
	FirstSeq, LastSeq uint64
	Head              [32]byte // chain hash of the last entry
	TornTail          bool     // a torn last frame was seen (not an error for verify, but reported)

	// StoredCheckpoints is how many signed checkpoints are saved beside
	// the log. With none, only the chain could be checked: a log cut at a
	// frame boundary, or rewritten with every hash recomputed, passes it.
	StoredCheckpoints int
	// Checkpoints are the signed checkpoints the log was checked against,
	// smallest first: the newest one stored beside it and every one given
	// with Since.
	Checkpoints []CheckedCheckpoint
	// Verifier is the file the checkpoints' key came from when it was
	// found beside the logs (FindVerifier); "" when it was given
	// (CheckWith) or not needed.
	Verifier string
	// Err is why the log failed, nil when it checks out: what Verify
	// returns, kept with each log's report by VerifyTree.
	Err error
}

// CheckedCheckpoint is one signed checkpoint a log was checked against.
type CheckedCheckpoint struct {
	Checkpoint
	Note string // the file it was read from
	Kept bool   // given with Since, rather than found beside the log
	OK   bool   // the log's first Size entries hash to its Root
}

// VerifyOption changes what Verify and VerifyTree check.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	verifier  note.Verifier
	since     []string
	chainOnly bool
}

// CheckWith checks the checkpoints with v instead of the verifier key
// found beside the logs (FindVerifier). An auditor passes the key they
// obtained independently, so a replaced key and re-signed notes in the
// data directory cannot pass.
func CheckWith(v note.Verifier) VerifyOption { return func(c *verifyConfig) { c.verifier = v } }

// Since adds checkpoints the logs must extend: signed notes kept from an
// earlier audit, each a note file or a directory searched for *.note
// files. Each is checked against the log its origin names; one whose log
// is missing is a failure.
func Since(paths ...string) VerifyOption {
	return func(c *verifyConfig) { c.since = append(c.since, paths...) }
}

// ChainOnly checks the segments and the hash chain only, as Open does,
// leaving the checkpoints aside.
func ChainOnly() VerifyOption { return func(c *verifyConfig) { c.chainOnly = true } }

// Verify re-reads every segment of the log in dir without writing anything
// and checks headers, framing, checksums, seq continuity, system-time order
// and the hash chain; then that the log's entries hash to the root of the
// newest signed checkpoint saved beside it, and of each one given with
// Since. A torn last frame is reported, not failed: it is the normal trace
// of a crash and Open will cut it.
//
// The chain alone cannot show a log cut at a frame boundary, a segment
// removed from the end, or entries rewritten with every checksum and hash
// recomputed; the checkpoint does, and the error names it. The
// checkpoints are checked with the key given by CheckWith, else the one
// FindVerifier finds; a log with checkpoints and no key fails with
// ErrNoVerifier. VerifyReport says whether there was a checkpoint to
// check against.
func Verify(dir string, opts ...VerifyOption) (VerifyReport, error) {
	var c verifyConfig
	for _, o := range opts {
		o(&c)
	}
	kept, err := readKept(c.since)
	if err != nil {
		return VerifyReport{Dir: dir, Log: filepath.Base(dir)}, err
	}
	for _, k := range kept {
		if k.log != filepath.Base(dir) {
			return VerifyReport{Dir: dir, Log: filepath.Base(dir)}, fmt.Errorf(
				"auditlog: checkpoint %s is for the log %q, not for the log %s", k.path, k.log, dir)
		}
	}
	rep, err := verifyLog(dir, &c, kept, map[string]verifierFound{})
	rep.Err = err
	return rep, err
}

// VerifyTree verifies every log directory (a directory holding *.seg files)
// under root, in lexical order, as Verify does, and returns a report for
// each, failed or not (VerifyReport.Err). A checkpoint given with Since
// whose log is not under root gets a report of its own, without a Dir.
// The error joins the failures, each naming its log.
func VerifyTree(root string, opts ...VerifyOption) ([]VerifyReport, error) {
	var c verifyConfig
	for _, o := range opts {
		o(&c)
	}
	dirs, err := findLogs(root)
	if err != nil {
		return nil, fmt.Errorf("auditlog: verify tree %s: %w", root, err)
	}
	kept, err := readKept(c.since)
	if err != nil {
		return nil, err
	}
	byName := map[string][]string{}
	for _, dir := range dirs {
		byName[filepath.Base(dir)] = append(byName[filepath.Base(dir)], dir)
	}
	keptFor := map[string][]keptNote{}
	var reports []VerifyReport
	var errs []error
	fail := func(r VerifyReport, err error) {
		r.Err = err
		reports = append(reports, r)
		errs = append(errs, fmt.Errorf("log %s: %w", r.Log, err))
	}
	missing := map[string]keptNote{} // by log: the largest kept checkpoint
	var order []string
	for _, k := range kept {
		switch ds := byName[k.log]; len(ds) {
		case 1:
			keptFor[ds[0]] = append(keptFor[ds[0]], k)
		case 0:
			m, seen := missing[k.log]
			if !seen {
				order = append(order, k.log)
			}
			if !seen || k.size > m.size {
				missing[k.log] = k
			}
		default:
			fail(VerifyReport{Log: k.log}, fmt.Errorf(
				"auditlog: checkpoint %s is for the log %s, and %d logs under %s have that name (%s): verify each on its own",
				k.path, k.log, len(ds), root, strings.Join(ds, ", ")))
		}
	}
	for _, name := range order {
		k := missing[name]
		fail(VerifyReport{Log: name}, &CorruptError{Reason: fmt.Sprintf(
			"checkpoint %s vouches for %d entries of the log %s, which is not under %s: the log was removed or moved",
			k.path, k.size, name, root)})
	}
	keys := map[string]verifierFound{}
	for _, dir := range dirs {
		r, err := verifyLog(dir, &c, keptFor[dir], keys)
		if err != nil {
			fail(r, err)
			continue
		}
		reports = append(reports, r)
	}
	slices.SortStableFunc(reports, func(a, b VerifyReport) int { return strings.Compare(a.Log, b.Log) })
	return reports, errors.Join(errs...)
}

// keptNote is a checkpoint given with Since, read but not yet verified.
type keptNote struct {
	path string
	msg  []byte
	log  string // the log its origin names
	size uint64
}

func readKept(paths []string) ([]keptNote, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("auditlog: checkpoint %s does not exist", p)
			}
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		n := len(files)
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), noteSuffix) {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("auditlog: checkpoints in %s: %w", p, err)
		}
		if len(files) == n {
			return nil, fmt.Errorf("auditlog: no checkpoint (*%s) in %s", noteSuffix, p)
		}
	}
	var kept []keptNote
	for _, f := range files {
		msg, err := readNoteFile(f)
		if err != nil {
			return nil, err
		}
		cp, err := unverifiedCheckpoint(msg)
		if err == nil && cp.Log() == "" {
			err = fmt.Errorf("origin %q names no log", cp.Origin)
		}
		if err != nil {
			return nil, fmt.Errorf("auditlog: %s: %w", f, err)
		}
		kept = append(kept, keptNote{path: f, msg: msg, log: cp.Log(), size: cp.Size})
	}
	return kept, nil
}

// verifierFound is a key FindVerifier found, remembered per parent
// directory of logs.
type verifierFound struct {
	v    note.Verifier
	path string
	err  error
}

// target is a checkpoint verifyLog checks the log against.
type target struct {
	CheckedCheckpoint
	msg   []byte
	label string // how messages name it: "checkpoint N (file)"
}

// verifyLog checks one log: its chain, then each checkpoint. The newest
// stored checkpoint and the kept ones are read and their signatures
// checked first, so that a single read of the log computes the Merkle
// root at each of their sizes along with the chain.
func verifyLog(dir string, c *verifyConfig, kept []keptNote, keys map[string]verifierFound) (VerifyReport, error) {
	rep := VerifyReport{Dir: dir, Log: filepath.Base(dir)}
	if c.chainOnly {
		st, err := scanDir(dir, nil)
		st.report.Log = rep.Log
		return st.report, err
	}
	sizes, err := Checkpoints(dir)
	if err != nil {
		return rep, err
	}
	rep.StoredCheckpoints = len(sizes)
	type pending struct {
		path string
		msg  []byte
		kept bool
	}
	var todo []pending
	if len(sizes) > 0 {
		path := NotePath(dir, sizes[len(sizes)-1])
		msg, err := readNoteFile(path)
		if err != nil {
			return rep, err
		}
		todo = append(todo, pending{path, msg, false})
	}
	for _, k := range kept {
		todo = append(todo, pending{k.path, k.msg, true})
	}

	// Open every checkpoint before reading the log; a failure here is
	// reported after the chain, which comes first.
	var (
		v       note.Verifier
		targets []target
		cpErr   error
	)
	if len(todo) > 0 {
		v = c.verifier
		if v == nil {
			key := filepath.Dir(dir)
			f, ok := keys[key]
			if !ok {
				if f.v, f.path, f.err = FindVerifier(dir); f.err == nil {
					keys[key] = f
				}
			}
			v, rep.Verifier = f.v, f.path
			if f.err != nil {
				cpErr = fmt.Errorf("auditlog: log %s has %d signed checkpoint(s) to check it against (%s), but %w; give the product's verifier key",
					dir, len(sizes)+len(kept), todo[0].path, f.err)
			}
		}
	}
	for _, p := range todo {
		if cpErr != nil {
			break
		}
		t := target{msg: p.msg}
		t.Note, t.Kept = p.path, p.kept
		cp, err := OpenCheckpoint(p.msg, v)
		if err != nil {
			cpErr = &CorruptError{Dir: dir, Reason: fmt.Sprintf("checkpoint %s: %v: the note or the key was replaced", p.path, err)}
			break
		}
		t.Checkpoint = cp
		t.label = fmt.Sprintf("checkpoint %d (%s)", cp.Size, p.path)
		if cp.Log() != rep.Log {
			cpErr = &CorruptError{Dir: dir, Reason: fmt.Sprintf("%s has origin %q: it is not for the log %s (a log moved or swapped with another?)", t.label, cp.Origin, rep.Log)}
			break
		}
		if !p.kept && cp.Size != sizes[len(sizes)-1] {
			cpErr = &CorruptError{Dir: dir, Reason: fmt.Sprintf("%s signs %d entries, not the %d its file name says", t.label, cp.Size, sizes[len(sizes)-1])}
			break
		}
		targets = append(targets, t)
	}
	slices.SortStableFunc(targets, func(a, b target) int { return cmpU64(a.Size, b.Size) })

	var roots *rootsAt
	if cpErr == nil && len(targets) > 0 {
		roots = newRootsAt()
		for _, t := range targets {
			roots.want[t.Size] = true
		}
	}
	st, err := scanDir(dir, roots.leaf())
	report := st.report
	report.Log, report.StoredCheckpoints, report.Verifier = rep.Log, rep.StoredCheckpoints, rep.Verifier
	if err != nil {
		return report, err
	}
	if cpErr != nil {
		return report, cpErr
	}
	if roots != nil && roots.err != nil {
		return report, roots.err
	}
	var first error
	for _, t := range targets {
		switch {
		case t.Size > report.LastSeq:
			if first == nil {
				first = removedBehind(dir, st.segs, report.LastSeq, t.Size, t.label)
			}
		case roots.root(t.Size) != t.Root:
			if first == nil {
				if _, err := proveSince(dir, st, t.Checkpoint, v, t.label); err != nil {
					first = err
				} else {
					first = &CorruptError{Dir: dir, Reason: fmt.Sprintf(
						"the log's first %d entries did not hash to the root of %s, then did when read again: it changed while it was verified", t.Size, t.label)}
				}
			}
		default:
			t.OK = true
		}
		report.Checkpoints = append(report.Checkpoints, t.CheckedCheckpoint)
	}
	return report, first
}

// rootsAt recomputes a log's Merkle tree as its entries go by and keeps
// the root at each size asked for.
type rootsAt struct {
	cr    *compact.Range
	want  map[uint64]bool
	roots map[uint64][32]byte
	err   error
}

func newRootsAt() *rootsAt {
	return &rootsAt{cr: factory.NewEmptyRange(0), want: map[uint64]bool{}, roots: map[uint64][32]byte{}}
}

// leaf is the hook scanDir calls with each entry body; nil when r is.
func (r *rootsAt) leaf() func(body []byte) {
	if r == nil {
		return nil
	}
	return func(body []byte) {
		if r.err != nil {
			return
		}
		if r.err = r.cr.Append(leafHash(body), nil); r.err != nil {
			return
		}
		if n := r.cr.End(); r.want[n] {
			h, err := r.cr.GetRootHash(nil)
			if err != nil {
				r.err = err
				return
			}
			r.roots[n] = [32]byte(h)
		}
	}
}

func (r *rootsAt) root(size uint64) [32]byte {
	if size == 0 {
		return [32]byte(hasher.EmptyRoot())
	}
	return r.roots[size]
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
//
// leaf, when not nil, gets each entry's body once it has checked out, for
// a caller that hashes the entries into a Merkle tree in the same read.
func scanDir(dir string, leaf func(body []byte)) (dirState, error) {
	st := dirState{report: VerifyReport{Dir: dir, Log: filepath.Base(dir)}}
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
				if leaf != nil {
					leaf(body)
				}
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
