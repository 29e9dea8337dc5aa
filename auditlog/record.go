package auditlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
)

// Records: the change log as a Kafka topic.
//
// The durable home of a change log is a changelog topic (see package
// runtime); the segments are a verified cache of it. Each entry travels as
// an entry record: the entry exactly as a segment frames it, its body
// followed by its chain hash, without the frame's length and CRC (Kafka
// checks its own batches):
//
//	entry record = body || SHA-256(prev_hash || body)
//
// so a record can be checked, and a log rebuilt, with the same code that
// reads segments. Consecutive entries of one log share a Kafka record, a
// chunk, so a batch of thousands of entries costs a few produce records:
//
//	chunk = (uvarint(len(entry record)) || entry record)+
//
// AppendRecord writes an entry record, AppendChunk adds one to a chunk,
// ParseRecord reads an entry record back, EachInChunk walks a chunk;
// StreamVerifier checks a log that arrives entry by entry.

// AppendRecord appends e as a changelog record value: its body and its
// chain hash e.Hash, which Log.Append has set.
func AppendRecord(dst []byte, e *Entry) []byte {
	dst = appendBody(dst, e)
	return append(dst, e.Hash[:]...)
}

// AppendChunk adds e's entry record to a chunk.
func AppendChunk(chunk []byte, e *Entry) []byte {
	chunk = binary.AppendUvarint(chunk, uint64(frameLen(e)))
	return AppendRecord(chunk, e)
}

// ChunkLen is how many bytes AppendChunk adds for e.
func ChunkLen(e *Entry) int {
	n := frameLen(e)
	return uvarintLen(uint64(n)) + n
}

// EachInChunk calls fn with each entry record of a chunk, in order; it
// stops at fn's first error or at bytes that are not a chunk.
func EachInChunk(chunk []byte, fn func(record []byte) error) error {
	for i := 0; len(chunk) > 0; i++ {
		n, w := binary.Uvarint(chunk)
		if w <= 0 || n > uint64(len(chunk)-w) {
			return fmt.Errorf("changelog chunk: entry %d's length runs past the record", i)
		}
		if err := fn(chunk[w : w+int(n)]); err != nil {
			return err
		}
		chunk = chunk[w+int(n):]
	}
	return nil
}

// ParseRecord reads a changelog record value into e. Key and Payload
// alias b; Hash is the stored chain hash, not checked here (the chain
// needs the hash before it: see StreamVerifier and Log.Restore).
func ParseRecord(b []byte, e *Entry) error {
	if len(b) < minFrameLen || len(b) > maxFrameLen {
		return fmt.Errorf("changelog record of %d bytes: an entry record is %d to %d bytes", len(b), minFrameLen, maxFrameLen)
	}
	d := decoder{strings: true}
	body := b[:len(b)-hashSize]
	if reason := d.decode(body, e); reason != "" {
		return fmt.Errorf("changelog record: %s", reason)
	}
	copy(e.Hash[:], b[len(b)-hashSize:])
	return nil
}

// StreamVerifier checks a change log that arrives as records, in order,
// with the rules Verify applies to segments: sequence numbers contiguous
// from 1, system time strictly increasing, known ops, and each record's
// chain hash equal to SHA-256(previous hash || body); and, at the end, the
// log's Merkle root at each checkpoint's size equal to the signed one.
// Findings name the log and the record's position (the caller's, e.g. a
// topic offset).
type StreamVerifier struct {
	log     string
	seq     uint64
	sys     int64
	prev    [32]byte
	ch      *chainer
	roots   *rootsAt
	targets []Checkpoint
	err     error
}

// NewStreamVerifier verifies log against the signed checkpoint notes given
// (none: the chain alone), whose signatures v must check.
func NewStreamVerifier(log string, notes [][]byte, v note.Verifier) (*StreamVerifier, error) {
	s := &StreamVerifier{log: log, ch: newChainer(), roots: newRootsAt()}
	for _, msg := range notes {
		if v == nil {
			return nil, fmt.Errorf("auditlog: log %s has signed checkpoints but no verifier key was given: %w", log, ErrNoVerifier)
		}
		cp, err := OpenCheckpoint(msg, v)
		if err != nil {
			return nil, &CorruptError{Dir: log, Reason: fmt.Sprintf("checkpoint: %v: the note or the key was replaced", err)}
		}
		if cp.Log() != log {
			return nil, &CorruptError{Dir: log, Reason: fmt.Sprintf("checkpoint of %d entries has origin %q: it is not for log %s", cp.Size, cp.Origin, log)}
		}
		s.targets = append(s.targets, cp)
		s.roots.want[cp.Size] = true
	}
	slices.SortFunc(s.targets, func(a, b Checkpoint) int { return cmpU64(a.Size, b.Size) })
	return s, nil
}

// Add checks the next record of the log; at names where it was read (a
// topic, partition and offset) for the finding. After a finding every
// later call returns it.
func (s *StreamVerifier) Add(at string, value []byte) error {
	if s.err != nil {
		return s.err
	}
	fail := func(seq uint64, format string, args ...any) error {
		s.err = &CorruptError{Dir: s.log, Seq: seq, Reason: at + ": " + fmt.Sprintf(format, args...)}
		return s.err
	}
	var e Entry
	if err := ParseRecord(value, &e); err != nil {
		return fail(s.seq+1, "%v", err)
	}
	if e.Seq != s.seq+1 {
		return fail(e.Seq, "seq %d follows seq %d: entries are missing, doubled or out of order", e.Seq, s.seq)
	}
	if s.seq > 0 && e.SystemTime <= s.sys {
		return fail(e.Seq, "system time %d is not after the previous entry's %d", e.SystemTime, s.sys)
	}
	body := value[:len(value)-hashSize]
	if h := s.ch.next(&s.prev, body); !bytes.Equal(h[:], e.Hash[:]) {
		return fail(e.Seq, "chain hash %s, but SHA-256 of the previous hash and the body is %s: the entry or one before it was altered",
			shortHash(e.Hash[:]), shortHash(h[:]))
	}
	s.roots.leaf()(body)
	if s.roots.err != nil {
		return fail(e.Seq, "merkle tree: %v", s.roots.err)
	}
	s.seq, s.sys, s.prev = e.Seq, e.SystemTime, e.Hash
	return nil
}

// StreamReport is what a StreamVerifier found once the log ended.
type StreamReport struct {
	Log         string
	Entries     uint64
	Head        [32]byte
	Checkpoints []Checkpoint // those the log was checked against, smallest first
}

// Finish checks the checkpoints against the log as it ended.
func (s *StreamVerifier) Finish() (StreamReport, error) {
	rep := StreamReport{Log: s.log, Entries: s.seq, Head: s.prev, Checkpoints: s.targets}
	if s.err != nil {
		return rep, s.err
	}
	for _, cp := range s.targets {
		switch {
		case cp.Size > s.seq:
			return rep, &CorruptError{Dir: s.log, Seq: s.seq + 1, Reason: fmt.Sprintf(
				"the log ends at seq %d but its checkpoint of %d entries covers %d: entries %d..%d were removed", s.seq, cp.Size, cp.Size, s.seq+1, cp.Size)}
		case s.roots.root(cp.Size) != cp.Root:
			return rep, &CorruptError{Dir: s.log, Reason: fmt.Sprintf(
				"the log's first %d entries do not hash to the root of its checkpoint of %d entries: the log was rewritten behind it", cp.Size, cp.Size)}
		}
	}
	return rep, nil
}
