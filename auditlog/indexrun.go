package auditlog

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sort"
	"sync"
)

// An index run covers the entries [first, last] of one log and holds them
// twice: by key (sorted by key hash, then system time) and by seq. Runs are
// immutable once renamed into place; see doc.go for the byte layout.

const (
	runMagic        = "MSHIDX"
	runVersion      = 1
	runHeaderSize   = 72
	keyRecSize      = 48
	seqRecSize      = 16
	keyBlockRecs    = 128
	seqBlockRecs    = 256
	keyBlockEntSize = 32
	seqBlockEntSize = 16
	runSuffix       = ".run"
)

// syncIndex fsyncs each run before it is named in the manifest, so a
// power cut cannot leave the manifest naming a run whose bytes never
// reached the disk. Only tests that build thousands of tiny runs turn it off.
var syncIndex = true

// keyHash identifies a key in the index: the first 16 bytes of its SHA-256.
type keyHash [16]byte

func hashKey(key []byte) keyHash {
	s := sha256.Sum256(key)
	return keyHash(s[:16])
}

// keyRec is one entry in the by-key section.
type keyRec struct {
	h      keyHash
	sys    int64
	vf, vt int64
	seq    uint64
	op     byte
}

func cmpKeyRec(a, b *keyRec) int {
	if c := bytes.Compare(a.h[:], b.h[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.sys, b.sys)
}

func putKeyRec(b []byte, k *keyRec) {
	copy(b[0:16], k.h[:])
	binary.BigEndian.PutUint64(b[16:], uint64(k.sys))
	binary.BigEndian.PutUint64(b[24:], uint64(k.vf))
	binary.BigEndian.PutUint64(b[32:], uint64(k.vt))
	binary.BigEndian.PutUint64(b[40:], k.seq<<8|uint64(k.op))
}

func getKeyRec(b []byte, k *keyRec) {
	copy(k.h[:], b[0:16])
	k.sys = int64(binary.BigEndian.Uint64(b[16:]))
	k.vf = int64(binary.BigEndian.Uint64(b[24:]))
	k.vt = int64(binary.BigEndian.Uint64(b[32:]))
	x := binary.BigEndian.Uint64(b[40:])
	k.seq, k.op = x>>8, byte(x)
}

// seqRec is one entry in the by-seq section: where the frame is.
type seqRec struct {
	sys int64
	off int64 // byte offset of the frame in its segment
}

// runLayout computes section offsets for n entries.
type runLayout struct {
	n                    int
	keys, seqs, kbs, sbs int64
	trailer, size        int64
	keyBlocks, seqBlocks int
}

func layoutFor(n int) runLayout {
	l := runLayout{n: n}
	l.keyBlocks = (n + keyBlockRecs - 1) / keyBlockRecs
	l.seqBlocks = (n + seqBlockRecs - 1) / seqBlockRecs
	l.keys = runHeaderSize
	l.seqs = l.keys + int64(n)*keyRecSize
	l.kbs = l.seqs + int64(n)*seqRecSize
	l.sbs = l.kbs + int64(l.keyBlocks)*keyBlockEntSize
	l.trailer = l.sbs + int64(l.seqBlocks)*seqBlockEntSize
	l.size = l.trailer + 4
	return l
}

func runName(first, last uint64) string {
	return fmt.Sprintf("%0*d-%0*d%s", segNameDigits, first, segNameDigits, last, runSuffix)
}

// runHead is what a run's header records.
type runHead struct {
	first, last uint64
	lastSys     int64
	lastHash    [32]byte
}

func (h runHead) count() int { return int(h.last - h.first + 1) }

func (h runHead) encode() [runHeaderSize]byte {
	var b [runHeaderSize]byte
	copy(b[0:6], runMagic)
	b[6] = runVersion
	binary.BigEndian.PutUint64(b[8:], h.first)
	binary.BigEndian.PutUint64(b[16:], h.last)
	binary.BigEndian.PutUint64(b[24:], uint64(h.lastSys))
	copy(b[32:64], h.lastHash[:])
	binary.BigEndian.PutUint32(b[64:], keyBlockRecs)
	binary.BigEndian.PutUint32(b[68:], crc32.Checksum(b[:68], castagnoli))
	return b
}

func decodeRunHead(b []byte) (runHead, error) {
	var h runHead
	if string(b[0:6]) != runMagic {
		return h, errors.New("bad index run magic")
	}
	if b[6] != runVersion {
		return h, fmt.Errorf("unsupported index run version %d", b[6])
	}
	if crc32.Checksum(b[:68], castagnoli) != binary.BigEndian.Uint32(b[68:]) {
		return h, errors.New("index run header checksum mismatch")
	}
	if b[7] != 0 || binary.BigEndian.Uint32(b[64:]) != keyBlockRecs {
		return h, errors.New("index run header has unknown parameters")
	}
	h.first = binary.BigEndian.Uint64(b[8:])
	h.last = binary.BigEndian.Uint64(b[16:])
	h.lastSys = int64(binary.BigEndian.Uint64(b[24:]))
	copy(h.lastHash[:], b[32:64])
	if h.first == 0 || h.last < h.first {
		return h, fmt.Errorf("index run covers seq %d..%d", h.first, h.last)
	}
	return h, nil
}

// keyBlockEnt is the in-memory sparse entry of one by-key block.
type keyBlockEnt struct {
	first keyRec // only h and sys are used
	crc   uint32
}

type seqBlockEnt struct {
	firstSys int64
	crc      uint32
}

// runWriter writes a run file: the by-key records, then the by-seq
// records, then both sparse tables and their checksum. It keeps only the
// sparse tables in memory.
type runWriter struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	head  runHead
	lay   runLayout
	kbs   []keyBlockEnt
	sbs   []seqBlockEnt
	block []byte
	nk    int
	ns    int
	err   error
}

func newRunWriter(path string, head runHead) (*runWriter, error) {
	f, err := os.OpenFile(path+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	rw := &runWriter{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10), head: head, lay: layoutFor(head.count())}
	hb := head.encode()
	rw.w.Write(hb[:])
	return rw, nil
}

func (rw *runWriter) addKey(k *keyRec) {
	if rw.nk%keyBlockRecs == 0 {
		rw.flushBlock(true)
		rw.kbs = append(rw.kbs, keyBlockEnt{first: keyRec{h: k.h, sys: k.sys}})
	}
	var b [keyRecSize]byte
	putKeyRec(b[:], k)
	rw.block = append(rw.block, b[:]...)
	rw.nk++
}

func (rw *runWriter) addSeq(s seqRec) {
	if rw.ns == 0 {
		if rw.nk != rw.lay.n {
			rw.err = fmt.Errorf("index run: %d key records, want %d", rw.nk, rw.lay.n)
		}
		rw.flushBlock(true)
	}
	if rw.ns%seqBlockRecs == 0 {
		rw.flushBlock(false)
		rw.sbs = append(rw.sbs, seqBlockEnt{firstSys: s.sys})
	}
	var b [seqRecSize]byte
	binary.BigEndian.PutUint64(b[0:], uint64(s.sys))
	binary.BigEndian.PutUint64(b[8:], uint64(s.off))
	rw.block = append(rw.block, b[:]...)
	rw.ns++
}

// flushBlock writes the pending block and records its checksum in the
// sparse entry of the block it belongs to.
func (rw *runWriter) flushBlock(key bool) {
	if len(rw.block) == 0 {
		return
	}
	sum := crc32.Checksum(rw.block, castagnoli)
	if key {
		rw.kbs[len(rw.kbs)-1].crc = sum
	} else {
		rw.sbs[len(rw.sbs)-1].crc = sum
	}
	rw.w.Write(rw.block)
	rw.block = rw.block[:0]
}

// finish writes the sparse tables, syncs and renames the run into place.
func (rw *runWriter) finish() error {
	defer rw.f.Close()
	if rw.err == nil && (rw.nk != rw.lay.n || rw.ns != rw.lay.n) {
		rw.err = fmt.Errorf("index run %s: wrote %d/%d records, want %d", rw.path, rw.nk, rw.ns, rw.lay.n)
	}
	if rw.ns > 0 {
		rw.flushBlock(false)
	}
	if rw.err != nil {
		os.Remove(rw.path + tmpSuffix)
		return rw.err
	}
	tail := make([]byte, 0, len(rw.kbs)*keyBlockEntSize+len(rw.sbs)*seqBlockEntSize+4)
	for _, kb := range rw.kbs {
		tail = append(tail, kb.first.h[:]...)
		tail = binary.BigEndian.AppendUint64(tail, uint64(kb.first.sys))
		tail = binary.BigEndian.AppendUint32(tail, kb.crc)
		tail = append(tail, 0, 0, 0, 0)
	}
	for _, sb := range rw.sbs {
		tail = binary.BigEndian.AppendUint64(tail, uint64(sb.firstSys))
		tail = binary.BigEndian.AppendUint32(tail, sb.crc)
		tail = append(tail, 0, 0, 0, 0)
	}
	tail = binary.BigEndian.AppendUint32(tail, crc32.Checksum(tail, castagnoli))
	rw.w.Write(tail)
	err := rw.w.Flush()
	if err == nil && syncIndex {
		err = rw.f.Sync()
	}
	if err == nil {
		err = os.Rename(rw.path+tmpSuffix, rw.path)
	}
	if err != nil {
		os.Remove(rw.path + tmpSuffix)
		return fmt.Errorf("auditlog: write index run %s: %w", rw.path, err)
	}
	return nil
}

func (rw *runWriter) abort() {
	rw.f.Close()
	os.Remove(rw.path + tmpSuffix)
}

// blockBufs recycles block-sized buffers between lookups.
var blockBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, keyBlockRecs*keyRecSize)
	return &b
}}

// run is an open index run. Only its sparse tables live in memory: about
// 0.3 bytes per entry.
type run struct {
	path string
	name string
	f    *os.File
	runHead
	lay runLayout
	kbs []keyBlockEnt
	sbs []seqBlockEnt
}

func openRun(path string) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := loadRun(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index run %s: %w", path, err)
	}
	r.path = path
	return r, nil
}

func loadRun(f *os.File) (*run, error) {
	var hb [runHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return nil, err
	}
	head, err := decodeRunHead(hb[:])
	if err != nil {
		return nil, err
	}
	lay := layoutFor(head.count())
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != lay.size {
		return nil, fmt.Errorf("file is %d bytes, want %d for %d entries", fi.Size(), lay.size, lay.n)
	}
	tail := make([]byte, lay.size-lay.kbs)
	if _, err := f.ReadAt(tail, lay.kbs); err != nil {
		return nil, err
	}
	body, sum := tail[:len(tail)-4], binary.BigEndian.Uint32(tail[len(tail)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("sparse tables checksum mismatch")
	}
	r := &run{f: f, runHead: head, lay: lay,
		kbs: make([]keyBlockEnt, lay.keyBlocks), sbs: make([]seqBlockEnt, lay.seqBlocks)}
	for i := range r.kbs {
		b := body[i*keyBlockEntSize:]
		copy(r.kbs[i].first.h[:], b[:16])
		r.kbs[i].first.sys = int64(binary.BigEndian.Uint64(b[16:]))
		r.kbs[i].crc = binary.BigEndian.Uint32(b[24:])
	}
	body = body[lay.keyBlocks*keyBlockEntSize:]
	for i := range r.sbs {
		b := body[i*seqBlockEntSize:]
		r.sbs[i].firstSys = int64(binary.BigEndian.Uint64(b))
		r.sbs[i].crc = binary.BigEndian.Uint32(b[8:])
	}
	r.name = fi.Name()
	return r, nil
}

func (r *run) close() error { return r.f.Close() }

// keyBlock reads and checks by-key block i into buf.
func (r *run) keyBlock(i int, buf []byte) ([]byte, error) {
	recs := min(keyBlockRecs, r.lay.n-i*keyBlockRecs)
	b := slices.Grow(buf[:0], recs*keyRecSize)[:recs*keyRecSize]
	if _, err := r.f.ReadAt(b, r.lay.keys+int64(i)*keyBlockRecs*keyRecSize); err != nil {
		return nil, fmt.Errorf("index run %s: read key block %d: %w", r.path, i, err)
	}
	if crc32.Checksum(b, castagnoli) != r.kbs[i].crc {
		return nil, fmt.Errorf("index run %s: key block %d checksum mismatch", r.path, i)
	}
	return b, nil
}

// seqBlock reads and checks by-seq block i into buf.
func (r *run) seqBlock(i int, buf []byte) ([]byte, error) {
	recs := min(seqBlockRecs, r.lay.n-i*seqBlockRecs)
	b := slices.Grow(buf[:0], recs*seqRecSize)[:recs*seqRecSize]
	if _, err := r.f.ReadAt(b, r.lay.seqs+int64(i)*seqBlockRecs*seqRecSize); err != nil {
		return nil, fmt.Errorf("index run %s: read seq block %d: %w", r.path, i, err)
	}
	if crc32.Checksum(b, castagnoli) != r.sbs[i].crc {
		return nil, fmt.Errorf("index run %s: seq block %d checksum mismatch", r.path, i)
	}
	return b, nil
}

// seqAt returns where entry seq is.
func (r *run) seqAt(seq uint64) (seqRec, error) {
	bp := blockBufs.Get().(*[]byte)
	defer blockBufs.Put(bp)
	i := int(seq - r.first)
	b, err := r.seqBlock(i/seqBlockRecs, *bp)
	*bp = b[:0]
	if err != nil {
		return seqRec{}, err
	}
	b = b[(i%seqBlockRecs)*seqRecSize:]
	return seqRec{sys: int64(binary.BigEndian.Uint64(b)), off: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// firstAtOrAfter returns the first seq whose system time is >= sys, or
// last+1 when there is none.
func (r *run) firstAtOrAfter(sys int64) (uint64, error) {
	bi := sort.Search(len(r.sbs), func(i int) bool { return r.sbs[i].firstSys >= sys })
	if bi == 0 {
		return r.first, nil
	}
	b, err := r.seqBlock(bi-1, nil)
	if err != nil {
		return 0, err
	}
	n := len(b) / seqRecSize
	j := sort.Search(n, func(j int) bool { return int64(binary.BigEndian.Uint64(b[j*seqRecSize:])) >= sys })
	return r.first + uint64((bi-1)*seqBlockRecs+j), nil
}

// all calls fn for key h's records, oldest first.
func (r *run) all(h keyHash, fn func(*keyRec) error) error {
	bp := blockBufs.Get().(*[]byte)
	defer blockBufs.Put(bp)
	// Start in the last block whose first record has a smaller hash: h's
	// records may begin at its end.
	bi := sort.Search(len(r.kbs), func(i int) bool { return bytes.Compare(r.kbs[i].first.h[:], h[:]) >= 0 }) - 1
	bi = max(bi, 0)
	var k keyRec
	for ; bi < len(r.kbs); bi++ {
		if bytes.Compare(r.kbs[bi].first.h[:], h[:]) > 0 {
			return nil
		}
		b, err := r.keyBlock(bi, *bp)
		if err != nil {
			return err
		}
		*bp = b[:0]
		for j := 0; j < len(b)/keyRecSize; j++ {
			getKeyRec(b[j*keyRecSize:], &k)
			switch bytes.Compare(k.h[:], h[:]) {
			case -1:
				continue
			case 1:
				return nil
			}
			if err := fn(&k); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyCursor reads a run's by-key section in order.
type keyCursor struct {
	r    *run
	bi   int
	buf  []byte
	pos  int
	cur  keyRec
	done bool
	err  error
}

func (r *run) keyCursor() *keyCursor {
	c := &keyCursor{r: r, bi: -1}
	c.advance()
	return c
}

func (c *keyCursor) advance() {
	c.pos += keyRecSize
	if c.bi < 0 || c.pos >= len(c.buf) {
		c.bi++
		if c.bi >= len(c.r.kbs) {
			c.done = true
			return
		}
		b, err := c.r.keyBlock(c.bi, c.buf)
		if err != nil {
			c.err, c.done = err, true
			return
		}
		c.buf, c.pos = b, 0
	}
	getKeyRec(c.buf[c.pos:], &c.cur)
}

// keyHeap merges key cursors by (hash, system time).
type keyHeap []*keyCursor

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return cmpKeyRec(&h[i].cur, &h[j].cur) < 0 }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(*keyCursor)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns writes one run holding runs' entries, which must cover
// consecutive seq ranges in order. Memory use is one block per input.
func mergeRuns(path string, runs []*run) error {
	last := runs[len(runs)-1]
	head := runHead{first: runs[0].first, last: last.last, lastSys: last.lastSys, lastHash: last.lastHash}
	rw, err := newRunWriter(path, head)
	if err != nil {
		return fmt.Errorf("auditlog: merge index runs: %w", err)
	}
	h := make(keyHeap, 0, len(runs))
	for _, r := range runs {
		c := r.keyCursor()
		if c.err != nil {
			rw.abort()
			return c.err
		}
		if !c.done {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		c := h[0]
		rw.addKey(&c.cur)
		c.advance()
		if c.err != nil {
			rw.abort()
			return c.err
		}
		if c.done {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	var buf []byte
	for _, r := range runs {
		for bi := range r.sbs {
			b, err := r.seqBlock(bi, buf)
			if err != nil {
				rw.abort()
				return err
			}
			buf = b
			for j := 0; j < len(b); j += seqRecSize {
				rw.addSeq(seqRec{sys: int64(binary.BigEndian.Uint64(b[j:])), off: int64(binary.BigEndian.Uint64(b[j+8:]))})
			}
		}
	}
	return rw.finish()
}

// writeRun writes a run from records held in memory; keys is sorted here.
func writeRun(path string, head runHead, keys []keyRec, seqs []seqRec) error {
	slices.SortFunc(keys, func(a, b keyRec) int { return cmpKeyRec(&a, &b) })
	rw, err := newRunWriter(path, head)
	if err != nil {
		return fmt.Errorf("auditlog: write index run: %w", err)
	}
	for i := range keys {
		rw.addKey(&keys[i])
	}
	for _, s := range seqs {
		rw.addSeq(s)
	}
	return rw.finish()
}
