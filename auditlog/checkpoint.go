package auditlog

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const (
	checkpointDirName = "checkpoints"
	treeStateName     = "tree.state"
	noteSuffix        = ".note"
	treeMagic         = "MSHTRE"
	treeVersion       = 1
	// storedLevel is the lowest tree level kept in node files: nodes below
	// it span at most 8 leaves and are rehashed from the log when a proof
	// needs them. Node files then take about 4 bytes per entry.
	storedLevel = 4

	// KeyFile and VerifierFile are the product's checkpoint key pair, in
	// the data directory (see LoadOrCreateKey).
	KeyFile      = "checkpoint.key"
	VerifierFile = "checkpoint.pub"
)

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// leafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || body),
// body being the entry's bytes exactly as framed (see doc.go).
func leafHash(body []byte) []byte { return hasher.HashLeaf(body) }

// Checkpoint is a parsed C2SP tlog-checkpoint: the log's origin, how many
// entries the tree covers, and its RFC 6962 Merkle root.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
}

// Text is the checkpoint body as signed.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint parses a checkpoint body (the note text, without
// signatures). Extension lines after the root are allowed and ignored.
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return c, errors.New("checkpoint: want origin, size and root lines")
	}
	if c.Origin = lines[0]; c.Origin == "" {
		return c, errors.New("checkpoint: empty origin line")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (len(lines[1]) > 1 && lines[1][0] == '0') {
		return c, fmt.Errorf("checkpoint: bad tree size %q", lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return c, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	copy(c.Root[:], root)
	return c, nil
}

// OpenCheckpoint checks a signed checkpoint note against v and parses it.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature does not verify with key %s: %w", v.Name(), err)
	}
	return ParseCheckpoint(n.Text)
}

// LoadOrCreateKey returns the product's checkpoint signer and verifier,
// kept in dir as KeyFile (the Ed25519 private key, mode 0600) and
// VerifierFile (the verifier key to hand to auditors). On first use it
// generates the pair under name, which must have no spaces or '+' (the
// product id does). Whoever can rewrite the log can also read this key: a
// checkpoint proves something once it has been handed to someone else.
func LoadOrCreateKey(dir, name string) (note.Signer, note.Verifier, error) {
	keyPath, pubPath := filepath.Join(dir, KeyFile), filepath.Join(dir, VerifierFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		if err := createKey(dir, name, keyPath, pubPath); err != nil {
			return nil, nil, fmt.Errorf("auditlog: checkpoint key %q: %w", name, err)
		}
	}
	skey, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: checkpoint key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: checkpoint key %s: %w", keyPath, err)
	}
	// The process that created the key publishes the verifier just after
	// it: wait for it briefly rather than fail a replica that lost the race.
	var v note.Verifier
	for i := 0; ; i++ {
		if v, err = ReadVerifier(pubPath); err == nil || i == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, nil, err
	}
	if v.Name() != signer.Name() || v.KeyHash() != signer.KeyHash() {
		return nil, nil, fmt.Errorf("auditlog: %s does not match %s", pubPath, keyPath)
	}
	return signer, v, nil
}

// createKey makes a new key pair unless another process (a replica sharing
// the data directory) makes one first. Both files are written whole under
// names of their own; the key is published with a hard link, which fails if
// a key exists, so exactly one process wins and every process signs with
// the same key. Only the winner publishes its verifier.
func createKey(dir, name, keyPath, pubPath string) error {
	sk, vk, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmpKey, err := writeTemp(dir, KeyFile, []byte(sk+"\n"), 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmpKey)
	tmpPub, err := writeTemp(dir, VerifierFile, []byte(vk+"\n"), 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmpPub)
	if err := os.Link(tmpKey, keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process won; its key is the product's key
		}
		return err
	}
	if err := os.Rename(tmpPub, pubPath); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTemp writes b, synced, to a new uniquely named file beside name and
// returns its path.
func writeTemp(dir, name string, b []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// ReadVerifier reads a verifier key from a file, or takes arg itself when
// it is a verifier key (name+hash+key) rather than a path.
func ReadVerifier(arg string) (note.Verifier, error) {
	text := arg
	if b, err := os.ReadFile(arg); err == nil {
		text = string(b)
	} else if !strings.Contains(arg, "+") {
		return nil, fmt.Errorf("auditlog: verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("auditlog: verifier key %s: %w", arg, err)
	}
	return v, nil
}

// ErrNoVerifier means a log has signed checkpoints but no verifier key was
// given or found to check them with: the log cannot be vouched for.
var ErrNoVerifier = errors.New("no verifier key")

// FindVerifier finds the product's verifier key for the log, or the tree
// of logs, in dir: VerifierFile in dir, its parent or its grandparent.
// That is where LoadOrCreateKey keeps it beside the runtime's logs
// (DATA/checkpoint.pub, DATA/changelog/<topic>-<partition>/). It returns
// the file the key came from. A key found there is only as trustworthy as
// the directory: whoever could rewrite the log could replace the key and
// re-sign, so an auditor checks with a key obtained independently.
func FindVerifier(dir string) (note.Verifier, string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", fmt.Errorf("auditlog: %w", err)
	}
	for range 3 {
		p := filepath.Join(d, VerifierFile)
		if _, err := os.Stat(p); err == nil {
			v, err := ReadVerifier(p)
			return v, p, err
		}
		d = filepath.Dir(d)
	}
	return nil, "", fmt.Errorf("%w: no %s in %s or the two directories above it", ErrNoVerifier, VerifierFile, dir)
}

// maxNoteSize bounds a checkpoint note read from a file: a real one is a
// few hundred bytes.
const maxNoteSize = 64 << 10

// ReadCheckpoint reads a signed checkpoint note from a file and checks it
// against v. It returns the checkpoint and the note as read.
func ReadCheckpoint(path string, v note.Verifier) (Checkpoint, []byte, error) {
	msg, err := readNoteFile(path)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	cp, err := OpenCheckpoint(msg, v)
	if err != nil {
		return cp, msg, fmt.Errorf("auditlog: %s: %w", path, err)
	}
	return cp, msg, nil
}

func readNoteFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auditlog: checkpoint %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	defer f.Close()
	msg, err := io.ReadAll(io.LimitReader(f, maxNoteSize+1))
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if len(msg) > maxNoteSize {
		return nil, fmt.Errorf("auditlog: %s is over %d bytes: not a checkpoint note", path, maxNoteSize)
	}
	return msg, nil
}

// unverifiedCheckpoint parses a note's text without checking its
// signature: only to learn which log it claims to be about.
func unverifiedCheckpoint(msg []byte) (Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, errors.New("checkpoint: not a signed note (no blank line before the signatures)")
	}
	return ParseCheckpoint(string(msg[:i+1]))
}

// Log is the name of the log the checkpoint is about: its directory's
// name, the last element of the origin ("" when the origin has none).
func (c Checkpoint) Log() string {
	i := strings.LastIndexByte(c.Origin, '/')
	if i < 0 {
		return ""
	}
	return c.Origin[i+1:]
}

// NewestCheckpoint is the path of the largest checkpoint saved beside the
// log in dir; ok is false when there is none.
func NewestCheckpoint(dir string) (path string, ok bool, err error) {
	sizes, err := Checkpoints(dir)
	if err != nil || len(sizes) == 0 {
		return "", false, err
	}
	return NotePath(dir, sizes[len(sizes)-1]), true, nil
}

// treeState is the persisted Merkle state of a log: the compact range
// over entries 1..size and where entry size sits, so the next checkpoint
// reads only the entries after it.
type treeState struct {
	size    uint64
	chain   [32]byte // chain hash of entry size
	lastSeg uint64   // first seq of the segment holding entry size
	lastOff int64    // its frame offset
	hashes  [][]byte // compact range [0, size)
}

func (t *treeState) encode() []byte {
	b := make([]byte, 0, 72+len(t.hashes)*32+4)
	b = append(b, treeMagic...)
	b = append(b, treeVersion, 0)
	b = binary.BigEndian.AppendUint64(b, t.size)
	b = append(b, t.chain[:]...)
	b = binary.BigEndian.AppendUint64(b, t.lastSeg)
	b = binary.BigEndian.AppendUint64(b, uint64(t.lastOff))
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.hashes)))
	for _, h := range t.hashes {
		b = append(b, h...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeTreeState(b []byte) (treeState, error) {
	var t treeState
	if len(b) < 72 || string(b[:6]) != treeMagic || b[6] != treeVersion {
		return t, errors.New("not a tree state file")
	}
	if crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return t, errors.New("tree state checksum mismatch")
	}
	t.size = binary.BigEndian.Uint64(b[8:])
	copy(t.chain[:], b[16:48])
	t.lastSeg = binary.BigEndian.Uint64(b[48:])
	t.lastOff = int64(binary.BigEndian.Uint64(b[56:]))
	n := int(binary.BigEndian.Uint32(b[64:]))
	if len(b) != 72+n*32 {
		return t, errors.New("tree state length mismatch")
	}
	for i := range n {
		t.hashes = append(t.hashes, b[68+i*32:100+i*32])
	}
	if _, err := factory.NewRange(0, t.size, t.hashes); err != nil {
		return t, fmt.Errorf("tree state: %w", err)
	}
	return t, nil
}

func loadTreeState(dir string) (treeState, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointDirName, treeStateName))
	if errors.Is(err, fs.ErrNotExist) {
		return treeState{}, nil
	}
	if err != nil {
		return treeState{}, fmt.Errorf("auditlog: %w", err)
	}
	t, err := decodeTreeState(b)
	if err != nil {
		return t, fmt.Errorf("auditlog: %s: %w", filepath.Join(dir, checkpointDirName, treeStateName), err)
	}
	return t, nil
}

func nodeFile(dir string, level uint) string {
	return filepath.Join(dir, checkpointDirName, fmt.Sprintf("nodes-%02d.bin", level))
}

// extendTree appends the leaves of entries state.size+1..upTo to the tree,
// writing the stored nodes it completes. segs is the log's segment list.
func extendTree(dir string, segs []segInfo, st treeState, upTo uint64) (treeState, error) {
	cr, err := factory.NewRange(0, st.size, st.hashes)
	if err != nil {
		return st, err
	}
	si, off := 0, int64(0)
	if st.size > 0 {
		si = segmentFor(segs, st.size)
		if si < 0 || segs[si].firstSeq != st.lastSeg {
			return st, &CorruptError{Dir: dir, Seq: st.size, Reason: "the segment holding the last checkpointed entry is gone"}
		}
		f, err := os.Open(filepath.Join(dir, segs[si].name))
		if err != nil {
			return st, fmt.Errorf("auditlog: %w", err)
		}
		p, err := readFrameAt(f, st.lastOff, st.size, nil)
		f.Close()
		if err != nil {
			return st, &CorruptError{Dir: dir, Segment: segs[si].name, Offset: st.lastOff, Seq: st.size,
				Reason: "entry changed after it was checkpointed: no longer where the Merkle state recorded it (" + err.Error() + ")"}
		}
		if !bytes.Equal(p[len(p)-hashSize:], st.chain[:]) {
			return st, &CorruptError{Dir: dir, Segment: segs[si].name, Offset: st.lastOff, Seq: st.size,
				Reason: "entry changed after it was checkpointed: its chain hash differs from the one the Merkle state recorded"}
		}
		off = st.lastOff + frameHeaderSize + int64(len(p))
	}
	if st.size == upTo {
		return st, nil
	}
	pending := map[uint][]nodeWrite{}
	visit := func(id compact.NodeID, h []byte) {
		if id.Level >= storedLevel {
			pending[id.Level] = append(pending[id.Level], nodeWrite{id.Index, slices.Clone(h)})
		}
	}
	it := newFrameIter(dir, segs, si, off, st.size+1, st.chain, true)
	defer it.close()
	for st.size < upTo {
		body, hash, err := it.next()
		if err == io.EOF {
			return st, &CorruptError{Dir: dir, Seq: st.size + 1, Reason: fmt.Sprintf("log ends at seq %d, before seq %d", st.size, upTo)}
		}
		if err != nil {
			return st, err
		}
		if err := cr.Append(leafHash(body), visit); err != nil {
			return st, err
		}
		st.size++
		copy(st.chain[:], hash)
		st.lastSeg, st.lastOff = it.seg, it.off
	}
	for level, ws := range pending {
		if err := writeNodes(nodeFile(dir, level), ws); err != nil {
			return st, fmt.Errorf("auditlog: tree nodes: %w", err)
		}
	}
	st.hashes = cr.Hashes()
	return st, nil
}

type nodeWrite struct {
	index uint64
	hash  []byte
}

// writeNodes writes each node at index*32 of path. Rewriting a node with
// the same hash (after a crash between this and the state) is harmless.
func writeNodes(path string, ws []nodeWrite) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 32*len(ws))
	start := ws[0].index
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := f.WriteAt(buf, int64(start)*32)
		buf = buf[:0]
		return err
	}
	for i, w := range ws {
		if i > 0 && w.index != ws[i-1].index+1 {
			if err := flush(); err != nil {
				f.Close()
				return err
			}
			start = w.index
		}
		buf = append(buf, w.hash...)
	}
	err = flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *treeState) root() ([32]byte, error) {
	var r [32]byte
	cr, err := factory.NewRange(0, t.size, t.hashes)
	if err != nil {
		return r, err
	}
	h, err := cr.GetRootHash(nil)
	if err != nil {
		return r, err
	}
	if t.size == 0 {
		h = hasher.EmptyRoot()
	}
	copy(r[:], h)
	return r, nil
}

// NotePath is where the checkpoint of size is kept.
func NotePath(logDir string, size uint64) string {
	return filepath.Join(logDir, checkpointDirName, fmt.Sprintf("%0*d%s", segNameDigits, size, noteSuffix))
}

// Checkpoint signs a checkpoint of the whole log as it stands and saves it
// as checkpoints/<size>.note in the log's directory; it returns the signed
// note. Call it after a batch is committed, never before: a checkpoint
// vouches for its entries, and Rewind must never take one of them back.
//
// The Merkle state is extended with the entries appended since the last
// call only (they are read back and their chain checked), so a checkpoint
// costs O(new entries), not O(log). The origin line is the signer's name,
// "/", and the log directory's name, e.g. "urn:dataproduct:inventory:products/orders-0".
// A log with no new entries gets its existing note back.
func (l *Log) Checkpoint(signer note.Signer) ([]byte, error) {
	l.mu.Lock()
	size := l.seq
	l.mu.Unlock()
	return l.CheckpointAt(signer, size)
}

// CheckpointAt is Checkpoint of the log's first size entries. It does the
// Merkle work without holding the log, so appends go on meanwhile: a
// product signs the entries it knows are committed in the background, while
// its next batch is appended. Rewind must not take back any of the first
// size entries while it runs.
func (l *Log) CheckpointAt(signer note.Signer, size uint64) ([]byte, error) {
	l.ckMu.Lock() // one checkpoint at a time: they share the tree state file
	defer l.ckMu.Unlock()
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, err
	}
	if size > l.seq {
		seq := l.seq
		l.mu.Unlock()
		return nil, fmt.Errorf("auditlog: checkpoint of %d entries asked, but the log ends at seq %d", size, seq)
	}
	segs := slices.Clone(l.segs)
	l.mu.Unlock()

	if err := os.MkdirAll(filepath.Join(l.dir, checkpointDirName), 0o750); err != nil {
		return nil, fmt.Errorf("auditlog: checkpoint: %w", err)
	}
	st, err := loadTreeState(l.dir)
	if err != nil {
		return nil, err
	}
	if st.size > size {
		return nil, &CorruptError{Dir: l.dir, Seq: size + 1, Reason: fmt.Sprintf(
			"the Merkle state covers %d entries but the log ends at seq %d: entries behind a checkpoint were removed", st.size, size)}
	}
	if st, err = extendTree(l.dir, segs, st, size); err != nil {
		return nil, err
	}
	root, err := st.root()
	if err != nil {
		return nil, err
	}
	cp := Checkpoint{Origin: signer.Name() + "/" + filepath.Base(l.dir), Size: st.size, Root: root}
	msg, err := note.Sign(&note.Note{Text: cp.Text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("auditlog: sign checkpoint: %w", err)
	}
	path := NotePath(l.dir, st.size)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, msg) {
		return msg, nil // Ed25519 is deterministic: nothing new since the last call
	}
	if err := saveTreeState(l.dir, st); err != nil {
		return nil, err
	}
	if err := writeFileSync(path+tmpSuffix, msg); err != nil {
		return nil, fmt.Errorf("auditlog: checkpoint: %w", err)
	}
	if err := os.Rename(path+tmpSuffix, path); err != nil {
		return nil, fmt.Errorf("auditlog: checkpoint: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("auditlog: checkpoint: %w", err)
	}
	return msg, nil
}

func saveTreeState(dir string, st treeState) error {
	path := filepath.Join(dir, checkpointDirName, treeStateName)
	if err := writeFileSync(path+tmpSuffix, st.encode()); err != nil {
		return fmt.Errorf("auditlog: tree state: %w", err)
	}
	if err := os.Rename(path+tmpSuffix, path); err != nil {
		return fmt.Errorf("auditlog: tree state: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// Checkpoints lists the sizes of the checkpoints saved for the log in dir.
func Checkpoints(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(dir, checkpointDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	var sizes []uint64
	for _, de := range ents {
		digits, ok := strings.CutSuffix(de.Name(), noteSuffix)
		if !ok || len(digits) != segNameDigits {
			continue
		}
		if n, err := strconv.ParseUint(digits, 10, 64); err == nil {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	return sizes, nil
}
