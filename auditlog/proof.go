package auditlog

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// InclusionProof proves that entry Seq is leaf Seq-1 of the tree of Size
// entries whose root is Root (RFC 6962 section 2.1.1).
type InclusionProof struct {
	Log      string
	Seq      uint64
	Size     uint64
	LeafHash [32]byte
	Root     [32]byte
	Hashes   [][32]byte
}

// Verify checks the proof with the transparency-dev verifier.
func (p *InclusionProof) Verify() error {
	return proof.VerifyInclusion(hasher, p.Seq-1, p.Size, p.LeafHash[:], hashSlices(p.Hashes), p.Root[:])
}

// ConsistencyProof proves that the tree of Size2 entries (Root2) extends
// the tree of Size1 entries (Root1) (RFC 6962 section 2.1.2).
type ConsistencyProof struct {
	Log          string
	Size1, Size2 uint64
	Root1, Root2 [32]byte
	Hashes       [][32]byte
}

// Verify checks the proof with the transparency-dev verifier.
func (p *ConsistencyProof) Verify() error {
	return proof.VerifyConsistency(hasher, p.Size1, p.Size2, hashSlices(p.Hashes), p.Root1[:], p.Root2[:])
}

func hashSlices(hs [][32]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func hashArrays(hs [][]byte) [][32]byte {
	out := make([][32]byte, len(hs))
	for i := range hs {
		copy(out[i][:], hs[i])
	}
	return out
}

// tree reads node hashes of one log's Merkle tree: stored nodes from the
// node files, the low levels rehashed from entries found through the index.
type tree struct {
	x  *logIndex
	st treeState
}

func (s *Store) tree(log string) (*tree, error) {
	for _, x := range s.logs {
		if x.name == log {
			st, err := loadTreeState(x.dir)
			if err != nil {
				return nil, err
			}
			return &tree{x: x, st: st}, nil
		}
	}
	return nil, fmt.Errorf("auditlog: no log named %q under %s", log, s.root)
}

func (t *tree) node(id compact.NodeID) ([]byte, error) {
	begin, end := id.Coverage()
	if end > t.st.size {
		return nil, fmt.Errorf("auditlog: %s: tree node %d/%d covers entries up to %d, the Merkle state only %d (checkpoint the log first)",
			t.x.dir, id.Level, id.Index, end, t.st.size)
	}
	if id.Level >= storedLevel {
		f, err := os.Open(nodeFile(t.x.dir, id.Level))
		if err != nil {
			return nil, fmt.Errorf("auditlog: tree nodes: %w", err)
		}
		defer f.Close()
		h := make([]byte, 32)
		if _, err := f.ReadAt(h, int64(id.Index)*32); err != nil {
			return nil, fmt.Errorf("auditlog: tree node %d/%d of %s: %w", id.Level, id.Index, t.x.dir, err)
		}
		return h, nil
	}
	if end > func() uint64 { s, _, _ := t.x.last(); return s }() {
		return nil, fmt.Errorf("auditlog: %s: entries %d..%d are not indexed", t.x.dir, begin+1, end)
	}
	cr := factory.NewEmptyRange(begin)
	for seq := begin + 1; seq <= end; seq++ {
		p, err := t.x.frame(seq, nil)
		if err != nil {
			return nil, err
		}
		if err := cr.Append(leafHash(p[:len(p)-hashSize]), nil); err != nil {
			return nil, err
		}
	}
	// The range spans exactly one perfect subtree: its one hash is the node.
	if hs := cr.Hashes(); len(hs) == 1 {
		return hs[0], nil
	}
	return nil, fmt.Errorf("auditlog: tree node %d/%d: not a perfect subtree", id.Level, id.Index)
}

func (t *tree) nodes(ids []compact.NodeID) ([][]byte, error) {
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return hs, nil
}

func (t *tree) root(size uint64) ([32]byte, error) {
	var r [32]byte
	if size == 0 {
		copy(r[:], hasher.EmptyRoot())
		return r, nil
	}
	hs, err := t.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return r, err
	}
	cr, err := factory.NewRange(0, size, hs)
	if err != nil {
		return r, err
	}
	h, err := cr.GetRootHash(nil)
	copy(r[:], h)
	return r, err
}

// ProveInclusion proves that entry seq of log is in the tree of size
// entries. size must not exceed the log's Merkle state (its last
// checkpoint). The proof is checked before it is returned.
func (s *Store) ProveInclusion(log string, seq, size uint64) (InclusionProof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := InclusionProof{Log: log, Seq: seq, Size: size}
	t, err := s.tree(log)
	if err != nil {
		return p, err
	}
	if seq == 0 || seq > size {
		return p, fmt.Errorf("auditlog: prove seq %d: not in a tree of %d entries", seq, size)
	}
	nodes, err := proof.Inclusion(seq-1, size)
	if err != nil {
		return p, err
	}
	hs, err := t.nodes(nodes.IDs)
	if err != nil {
		return p, err
	}
	if hs, err = nodes.Rehash(hs, hasher.HashChildren); err != nil {
		return p, err
	}
	p.Hashes = hashArrays(hs)
	leaf, err := t.node(compact.NewNodeID(0, seq-1))
	if err != nil {
		return p, err
	}
	copy(p.LeafHash[:], leaf)
	if p.Root, err = t.root(size); err != nil {
		return p, err
	}
	if err := p.Verify(); err != nil {
		return p, fmt.Errorf("auditlog: inclusion proof of seq %d in %s does not verify: %w", seq, log, err)
	}
	return p, nil
}

// ProveConsistency proves that the tree of size2 entries of log extends
// the tree of size1 entries. The proof is checked before it is returned.
func (s *Store) ProveConsistency(log string, size1, size2 uint64) (ConsistencyProof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := ConsistencyProof{Log: log, Size1: size1, Size2: size2}
	t, err := s.tree(log)
	if err != nil {
		return p, err
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return p, err
	}
	hs, err := t.nodes(nodes.IDs)
	if err != nil {
		return p, err
	}
	if hs, err = nodes.Rehash(hs, hasher.HashChildren); err != nil {
		return p, err
	}
	p.Hashes = hashArrays(hs)
	if p.Root1, err = t.root(size1); err != nil {
		return p, err
	}
	if p.Root2, err = t.root(size2); err != nil {
		return p, err
	}
	if err := p.Verify(); err != nil {
		return p, fmt.Errorf("auditlog: consistency proof %d -> %d in %s does not verify: %w", size1, size2, log, err)
	}
	return p, nil
}

// SinceReport is what VerifySince found.
type SinceReport struct {
	Dir        string
	Checkpoint Checkpoint       // the older checkpoint, as signed
	Size       uint64           // entries in the log now
	Root       [32]byte         // Merkle root over them
	Proof      ConsistencyProof // from Checkpoint.Size to Size, verified
}

// VerifySince proves that the log in dir extends the one checkpointNote
// (a signed checkpoint, checked with v) describes: its first
// Checkpoint.Size entries are exactly the ones checkpointed. It reads the
// whole log and trusts nothing stored beside it: it walks the hash chain
// (as Verify does), recomputes the Merkle tree from the entries, compares its root
// at the checkpoint's size, and builds and checks a consistency proof to
// the current size.
//
// A failure names the entry: a chain break by its seq; a log rewritten
// behind the checkpoint with every later hash recomputed by the range of
// seqs holding the first difference, narrowed with the other checkpoints
// saved beside the log (a rewritten tree node file cannot hide which
// checkpoint's root changed first) and with the stored tree nodes when
// they were left as they were.
func VerifySince(dir string, checkpointNote []byte, v note.Verifier) (SinceReport, error) {
	rep := SinceReport{Dir: dir}
	cp, err := OpenCheckpoint(checkpointNote, v)
	if err != nil {
		return rep, err
	}
	rep.Checkpoint = cp
	if cp.Log() != filepath.Base(dir) {
		return rep, fmt.Errorf("auditlog: checkpoint origin %q is not for the log %s", cp.Origin, dir)
	}
	st, err := scanDir(dir, nil)
	if err != nil {
		return rep, err
	}
	return proveSince(dir, st, cp, v, fmt.Sprintf("checkpoint %d", cp.Size))
}

// removedBehind is the error for a log that ends at lastSeq while a
// checkpoint (label) vouches for size entries.
func removedBehind(dir string, segs []segInfo, lastSeq, size uint64, label string) error {
	return &CorruptError{Dir: dir, Segment: lastName(segs), Seq: lastSeq + 1, Reason: fmt.Sprintf(
		"the log ends at seq %d but %s covers %d entries: entries %d..%d were removed",
		lastSeq, label, size, lastSeq+1, size)}
}

// proveSince is VerifySince once the chain of the log in dir has checked
// out (st): it reads the entries again for the Merkle tree. label is how
// messages name cp.
func proveSince(dir string, st dirState, cp Checkpoint, v note.Verifier, label string) (SinceReport, error) {
	rep := SinceReport{Dir: dir, Checkpoint: cp}
	vr, segs := st.report, st.segs
	if vr.LastSeq < cp.Size {
		return rep, removedBehind(dir, segs, vr.LastSeq, cp.Size, label)
	}

	// Other signed checkpoints of this log bracket where a rewrite began.
	others := map[uint64]Checkpoint{}
	sizes, _ := Checkpoints(dir)
	for _, n := range sizes {
		if n >= cp.Size || n == 0 {
			continue
		}
		if b, err := os.ReadFile(NotePath(dir, n)); err == nil {
			if c, err := OpenCheckpoint(b, v); err == nil && c.Size == n && c.Origin == cp.Origin {
				others[n] = c
			}
		}
	}
	ts, _ := loadTreeState(dir)

	// One pass over the log: every leaf into a compact range, the roots at
	// each checkpoint size, the proof nodes, and the first stored node that
	// no longer matches.
	proofNodes, err := proof.Consistency(cp.Size, vr.LastSeq)
	if err != nil {
		return rep, err
	}
	want := map[compact.NodeID]int{}
	for i, id := range proofNodes.IDs {
		want[id] = i
	}
	var (
		got          = make([][]byte, len(proofNodes.IDs))
		roots        = map[uint64][32]byte{}
		firstBadNode = compact.NodeID{}
		badNode      bool
		stored       = map[uint]*os.File{}
	)
	defer func() {
		for _, f := range stored {
			if f != nil {
				f.Close()
			}
		}
	}()
	visit := func(id compact.NodeID, h []byte) {
		if i, ok := want[id]; ok {
			got[i] = slices.Clone(h)
		}
		if badNode || id.Level < storedLevel {
			return
		}
		if _, end := id.Coverage(); end > ts.size {
			return
		}
		f, ok := stored[id.Level]
		if !ok {
			f, _ = os.Open(nodeFile(dir, id.Level))
			stored[id.Level] = f
		}
		if f == nil {
			return
		}
		var b [32]byte
		if _, err := f.ReadAt(b[:], int64(id.Index)*32); err == nil && string(b[:]) != string(h) {
			firstBadNode, badNode = id, true
		}
	}
	cr := factory.NewEmptyRange(0)
	it := newFrameIter(dir, segs, 0, 0, 1, [32]byte{}, true)
	defer it.close()
	for {
		body, _, err := it.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rep, err
		}
		if err := cr.Append(leafHash(body), visit); err != nil {
			return rep, err
		}
		if n := cr.End(); n == cp.Size || others[n].Size == n && n > 0 {
			r, err := cr.GetRootHash(nil)
			if err != nil {
				return rep, err
			}
			roots[n] = [32]byte(r)
		}
		if cr.End() == vr.LastSeq {
			break
		}
	}
	rep.Size = cr.End()
	r, err := cr.GetRootHash(nil)
	if err != nil {
		return rep, err
	}
	if rep.Size == 0 {
		r = hasher.EmptyRoot()
	}
	rep.Root = [32]byte(r)
	if cp.Size == 0 {
		roots[0] = [32]byte(hasher.EmptyRoot())
	}
	if roots[cp.Size] != cp.Root {
		return rep, localize(dir, segs, cp, label, others, roots, firstBadNode, badNode)
	}

	// The nodes of the proof that are not perfect subtrees closed during
	// the pass are the right border of the current tree: take them from
	// the final compact range.
	for i, id := range proofNodes.IDs {
		if got[i] == nil {
			return rep, fmt.Errorf("auditlog: consistency proof node %d/%d not computed", id.Level, id.Index)
		}
	}
	hs, err := proofNodes.Rehash(got, hasher.HashChildren)
	if err != nil {
		return rep, err
	}
	rep.Proof = ConsistencyProof{Log: filepath.Base(dir), Size1: cp.Size, Size2: rep.Size, Root1: cp.Root, Root2: rep.Root, Hashes: hashArrays(hs)}
	if err := rep.Proof.Verify(); err != nil {
		return rep, &CorruptError{Dir: dir, Seq: cp.Size, Reason: "consistency proof from the checkpoint does not verify: " + err.Error()}
	}
	return rep, nil
}

func lastName(segs []segInfo) string {
	if len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1].name
}

// localize names where a log rewritten behind checkpoint cp first differs.
func localize(dir string, segs []segInfo, cp Checkpoint, label string, others map[uint64]Checkpoint, roots map[uint64][32]byte, bad compact.NodeID, haveBad bool) error {
	lo, hi := uint64(1), cp.Size // the first difference is in seqs lo..hi
	var ok, notOK []uint64
	for n, c := range others {
		if roots[n] == c.Root {
			ok = append(ok, n)
		} else {
			notOK = append(notOK, n)
		}
	}
	if len(ok) > 0 {
		lo = slices.Max(ok) + 1
	}
	if len(notOK) > 0 {
		hi = min(hi, slices.Min(notOK))
	}
	how := "signed checkpoints"
	if haveBad {
		begin, end := bad.Coverage()
		if begin+1 >= lo && end <= hi {
			lo, hi = begin+1, end
			how = "the tree nodes stored when it was checkpointed"
		}
	}
	ce := &CorruptError{Dir: dir, Seq: lo, Reason: fmt.Sprintf(
		"entries 1..%d no longer hash to the root of %s: the log was rewritten behind it (chain hashes recomputed); the first changed entry is in seq %d..%d (located by %s)",
		cp.Size, label, lo, hi, how)}
	if i := segmentFor(segs, lo); i >= 0 {
		ce.Segment = segs[i].name
	}
	return ce
}

// LogOf is the log a checkpoint is about: the one whose directory's name
// its origin ends with.
func (s *Store) LogOf(cp Checkpoint) (LogInfo, error) {
	var names []string
	for _, l := range s.Logs() {
		if filepath.Base(l.Dir) == cp.Log() && cp.Log() != "" {
			return l, nil
		}
		names = append(names, l.Name)
	}
	return LogInfo{}, fmt.Errorf("auditlog: no log under %s matches checkpoint origin %q (logs: %s)", s.root, cp.Origin, strings.Join(names, ", "))
}

// LogDirOf finds the directory of the log a checkpoint is about under
// root (a log's directory, a directory of logs or a product's data
// directory), without opening an index.
func LogDirOf(root string, cp Checkpoint) (string, error) {
	dirs, err := findLogs(logsRoot(root))
	if err != nil {
		return "", fmt.Errorf("auditlog: %w", err)
	}
	var found []string
	for _, d := range dirs {
		if filepath.Base(d) == cp.Log() && cp.Log() != "" {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("auditlog: no log under %s matches checkpoint origin %q (logs: %s)", root, cp.Origin, strings.Join(dirs, ", "))
	}
	return "", fmt.Errorf("auditlog: %d logs under %s match checkpoint origin %q (%s): give the log's directory", len(found), root, cp.Origin, strings.Join(found, ", "))
}

// checkFor refuses a checkpoint of another log than l.
func checkFor(l LogInfo, cp Checkpoint) error {
	if cp.Log() != filepath.Base(l.Dir) {
		return fmt.Errorf("auditlog: checkpoint origin %q is not for the log %s", cp.Origin, l.Dir)
	}
	return nil
}

func (s *Store) info(log string) (LogInfo, error) {
	for _, l := range s.Logs() {
		if l.Name == log {
			return l, nil
		}
	}
	return LogInfo{}, fmt.Errorf("auditlog: no log named %q under %s", log, s.root)
}

// ProveInCheckpoint proves that entry seq of log is in the tree a signed
// checkpoint cp commits to (checked by OpenCheckpoint or ReadCheckpoint):
// an inclusion proof computed from the Merkle tree stored beside the log,
// verified, whose root must be the one signed. A different root means the
// stored tree was changed after cp was signed; VerifySince then finds
// which entries changed.
func (s *Store) ProveInCheckpoint(log string, seq uint64, cp Checkpoint) (InclusionProof, error) {
	l, err := s.info(log)
	if err != nil {
		return InclusionProof{}, err
	}
	if err := checkFor(l, cp); err != nil {
		return InclusionProof{}, err
	}
	if seq == 0 || seq > cp.Size {
		return InclusionProof{}, fmt.Errorf("auditlog: seq %d is not in checkpoint %d, which covers seq 1..%d", seq, cp.Size, cp.Size)
	}
	p, err := s.ProveInclusion(log, seq, cp.Size)
	if err != nil {
		return p, err
	}
	if p.Root != cp.Root {
		return p, &CorruptError{Dir: l.Dir, Reason: fmt.Sprintf(
			"the Merkle tree beside the log gives root %s for %d entries, but checkpoint %d signed %s: the tree was changed after it was signed",
			b64(p.Root), cp.Size, cp.Size, b64(cp.Root))}
	}
	return p, nil
}

// ProveCheckpointsConsistent proves that the tree signed by checkpoint b
// extends the one signed by a, both of log: a consistency proof computed
// from the Merkle tree stored beside the log, verified, whose roots must
// be the signed ones.
func (s *Store) ProveCheckpointsConsistent(log string, a, b Checkpoint) (ConsistencyProof, error) {
	if a.Origin != b.Origin {
		return ConsistencyProof{}, fmt.Errorf("auditlog: checkpoints are of different logs: %q and %q", a.Origin, b.Origin)
	}
	l, err := s.info(log)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if err := checkFor(l, a); err != nil {
		return ConsistencyProof{}, err
	}
	p, err := s.ProveConsistency(log, a.Size, b.Size)
	if err != nil {
		return p, err
	}
	if p.Root1 != a.Root || p.Root2 != b.Root {
		return p, &CorruptError{Dir: l.Dir, Reason: fmt.Sprintf(
			"the Merkle tree beside the log gives roots %s (size %d) and %s (size %d), but the checkpoints signed %s and %s: the tree was changed after checkpoint %d was signed",
			b64(p.Root1), a.Size, b64(p.Root2), b.Size, b64(a.Root), b64(b.Root), a.Size)}
	}
	return p, nil
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

// Signed is a checkpoint CheckpointTree signed.
type Signed struct {
	Log, Dir   string
	Note       string // where it was saved
	Msg        []byte // the signed note
	Checkpoint Checkpoint
}

// CheckpointTree signs a checkpoint of every log under root (a product's
// data directory or a directory of logs) as it stands and saves each
// beside its log. The logs must not be open in a running product, which
// checkpoints them itself.
func CheckpointTree(root string, signer note.Signer) ([]Signed, error) {
	dirs, err := findLogs(logsRoot(root))
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("auditlog: no change log under %s", root)
	}
	var out []Signed
	for _, dir := range dirs {
		l, err := Open(dir)
		if err != nil {
			return out, err
		}
		msg, err := l.Checkpoint(signer)
		l.Close()
		if err != nil {
			return out, err
		}
		cp, err := ParseCheckpoint(string(msg))
		if err != nil {
			return out, err
		}
		out = append(out, Signed{Log: filepath.Base(dir), Dir: dir, Note: NotePath(dir, cp.Size), Msg: msg, Checkpoint: cp})
	}
	return out, nil
}
