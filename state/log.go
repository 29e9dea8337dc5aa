package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/auditlog"
)

// The change-log form of state (see doc.go): a batch's mutations travel as
// entries of the task's state log, each entry's payload a run of them:
//
//	payload  = "mst1" || mutation+
//	mutation = op || uvarint(len table) || table || uvarint(len key) || key ||
//	           varint(valid from) || varint(system time) || flags || uvarint(len value) || value

const payloadMagic = "mst1"

// EntryKey is the key of every state entry.
const EntryKey = "state"

// maxEntryPayload bounds one entry's payload, so a batch of many
// mutations is a few entries well under the changelog's record limits.
const maxEntryPayload = 64 << 10

// AppendEntries appends to dst the change-log entries that carry muts, in
// order. Seq, SystemTime and Prov are the caller's to set.
func AppendEntries(dst []auditlog.Entry, muts []Mutation) []auditlog.Entry {
	var p []byte
	for i := range muts {
		if p == nil {
			p = append(make([]byte, 0, 1024), payloadMagic...)
		}
		p = appendMutation(p, &muts[i])
		if len(p) >= maxEntryPayload || i == len(muts)-1 {
			dst = append(dst, auditlog.Entry{Op: auditlog.OpAssert, Key: []byte(EntryKey), ValidFrom: muts[i].ValidFrom, Payload: p})
			p = nil
		}
	}
	return dst
}

func appendMutation(b []byte, m *Mutation) []byte {
	b = append(b, byte(m.Op))
	b = binary.AppendUvarint(b, uint64(len(m.Table)))
	b = append(b, m.Table...)
	b = binary.AppendUvarint(b, uint64(len(m.Key)))
	b = append(b, m.Key...)
	b = binary.AppendVarint(b, m.ValidFrom)
	b = binary.AppendVarint(b, m.SystemTime)
	var f byte
	if m.Deleted {
		f |= flagDeleted
	}
	b = append(b, f)
	b = binary.AppendUvarint(b, uint64(len(m.Value)))
	return append(b, m.Value...)
}

// ErrNotState marks a change-log entry that is not a state entry.
var ErrNotState = errors.New("not a state entry")

// ParseEntry appends the mutations e carries to dst; their bytes are
// copied, so e may be reused.
func ParseEntry(dst []Mutation, e *auditlog.Entry) ([]Mutation, error) {
	if string(e.Key) != EntryKey || len(e.Payload) < len(payloadMagic) || string(e.Payload[:len(payloadMagic)]) != payloadMagic {
		return dst, fmt.Errorf("%w: entry seq %d (key %q)", ErrNotState, e.Seq, e.Key)
	}
	b := e.Payload[len(payloadMagic):]
	bad := func(what string) error {
		return fmt.Errorf("%w: state entry seq %d: %s at byte %d", ErrCorrupt, e.Seq, what, len(e.Payload)-len(b))
	}
	for len(b) > 0 {
		var m Mutation
		m.Op = MutationOp(b[0])
		if m.Op != OpSet && m.Op != OpRemove {
			return dst, bad(fmt.Sprintf("unknown op %d", b[0]))
		}
		b = b[1:]
		var s []byte
		var ok bool
		if s, b, ok = readBytes(b); !ok {
			return dst, bad("table name")
		}
		m.Table = string(s)
		if s, b, ok = readBytes(b); !ok {
			return dst, bad("key")
		}
		m.Key = string(s)
		var n int
		if m.ValidFrom, n = binary.Varint(b); n <= 0 {
			return dst, bad("valid time")
		}
		b = b[n:]
		if m.SystemTime, n = binary.Varint(b); n <= 0 {
			return dst, bad("system time")
		}
		b = b[n:]
		if len(b) == 0 {
			return dst, bad("flags")
		}
		m.Deleted = b[0]&flagDeleted != 0
		b = b[1:]
		if s, b, ok = readBytes(b); !ok {
			return dst, bad("value")
		}
		if len(s) > 0 {
			m.Value = append([]byte(nil), s...)
		}
		dst = append(dst, m)
	}
	return dst, nil
}

func readBytes(b []byte) (field, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, b, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// Restored says what Restore did.
type Restored struct {
	Entries uint64 // log entries applied
	Rebuilt bool   // the store did not match the log and was rebuilt from its start
}

// Restore brings s up to the committed log l: the store's mark must name
// an entry of l with the same chain hash (else the store was built from
// another history, or ran ahead of a log that was rewound, and is cleared
// and rebuilt from entry 1); the entries after the mark are applied in
// order. Call it once l is reconciled with what committed.
func Restore(s *Store, l *auditlog.Log) (Restored, error) {
	var done Restored
	tail, _, _ := l.Tail()
	m := s.Mark()
	if m.Seq > 0 {
		match := false
		if m.Seq <= tail {
			err := l.Scan(m.Seq, func(e *auditlog.Entry) error {
				match = e.Seq == m.Seq && e.Hash == m.Hash
				return errStop
			})
			if err != nil && !errors.Is(err, errStop) {
				return done, fmt.Errorf("state store %s: read log %s: %w", s.dir, l.Dir(), err)
			}
		}
		if !match {
			if err := s.Clear(); err != nil {
				return done, err
			}
			done.Rebuilt = true
		}
	}
	from := s.Mark().Seq + 1
	if from > tail {
		return done, nil
	}
	var muts []Mutation
	var last Mark
	flush := func() error {
		if last.Seq == 0 {
			return nil
		}
		if err := s.Apply(muts, last); err != nil {
			return err
		}
		muts, last = muts[:0], Mark{}
		return nil
	}
	err := l.Scan(from, func(e *auditlog.Entry) error {
		var err error
		if muts, err = ParseEntry(muts, e); err != nil {
			return fmt.Errorf("log %s: %w", l.Dir(), err)
		}
		last = Mark{Seq: e.Seq, Hash: e.Hash}
		done.Entries++
		if len(muts) >= 4096 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return done, err
	}
	return done, flush()
}

var errStop = errors.New("stop")
