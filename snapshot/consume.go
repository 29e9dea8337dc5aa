package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/schemas"
)

// Snapshot is a snapshot opened for reading: where a new consumer of the
// output port starts before it tails the topic.
type Snapshot struct {
	Dir      string
	Manifest *Manifest
	schema   *schemas.Schema
}

// Open reads the snapshot in dir and checks every file against the
// manifest's size and SHA-256, and the schema copy against its
// fingerprint. That proves the files are the ones the manifest describes;
// that the manifest is true of the change log is Verify's to prove.
func Open(dir string) (*Snapshot, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := checkFile(dir, f); err != nil {
			return nil, err
		}
	}
	text, err := os.ReadFile(filepath.Join(dir, m.Schema.File))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s, err := schemas.ParsePublished(m.Schema.File, string(text))
	if err != nil {
		return nil, err
	}
	if fp := s.Fingerprint(); fmt.Sprintf("%x", fp) != m.Schema.Fingerprint {
		return nil, mismatch(m.Schema.File, "fingerprint %x, the manifest says %s", fp, m.Schema.Fingerprint)
	}
	return &Snapshot{Dir: dir, Manifest: m, schema: s}, nil
}

// Covers reports whether the output record whose _system_from is
// systemFrom is already in the snapshot: every entry recorded at or
// before T is, and no other. A consumer tailing from the manifest's
// offsets skips the records it covers and applies the rest; records
// before the offsets are all covered (see Offsets), so none is lost and
// none applied twice.
func (s *Snapshot) Covers(systemFrom int64) bool { return systemFrom <= s.Manifest.System }

// ConsumeOffsets are the manifest's output offsets in the form
// kgo.ConsumePartitions takes.
func (s *Snapshot) ConsumeOffsets() map[string]map[int32]kgo.Offset {
	out := map[string]map[int32]kgo.Offset{}
	for _, o := range s.Manifest.Offsets {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	}
	return out
}

// Row is one row of a snapshot file. Fields holds the payload's fields
// with the Go types the Avro decoder gives (int for int, int64, float32,
// float64, string, []byte, [N]byte for fixed, time.Time for timestamps and
// dates, time.Duration for times of day, *big.Rat for decimals; JSON
// columns as encoding/json decodes them); a null field is nil.
type Row struct {
	Key                  string
	Fields               map[string]any
	ValidFrom, ValidTo   int64 // unix microseconds; ValidTo 0 = open
	SystemFrom, SystemTo int64 // SystemTo 0 = still believed (history only)
	Deleted              bool  // a deleted period (history only)
	Log                  string
	Seq                  uint64
	Sealed, Erased       []string // PII fields that read as null, and why
}

// Rows calls fn with every row of the file of kind k, in file order.
// The Row is only valid during fn.
func (s *Snapshot) Rows(k Kind, fn func(*Row) error) error {
	f, ok := s.Manifest.File(k)
	if !ok {
		return fmt.Errorf("snapshot: %s has no %s file", s.Dir, k)
	}
	l, err := newLayout(k, s.schema.Fields(), s.Manifest.PII)
	if err != nil {
		return err
	}
	r, err := openFileReader(s.Dir, f.Path, l, f.Rows)
	if err != nil {
		return err
	}
	defer r.close()
	var row Row
	for {
		pr, err := r.row()
		if err != nil {
			return err
		}
		if pr == nil {
			return nil
		}
		row = Row{Fields: make(map[string]any, len(l.payload))}
		for i, v := range pr {
			c := &l.cols[i]
			null := v.IsNull()
			switch c.name {
			case colKey:
				row.Key = string(v.ByteArray())
			case colValidFrom:
				row.ValidFrom = v.Int64()
			case colValidTo:
				row.ValidTo = orZero(v)
			case colSystemFrom:
				row.SystemFrom = v.Int64()
			case colSystemTo:
				row.SystemTo = orZero(v)
			case colDeleted:
				row.Deleted = v.Boolean()
			case colLog:
				row.Log = string(v.ByteArray())
			case colSeq:
				row.Seq = uint64(v.Int64())
			case colSealed:
				row.Sealed = split(v)
			case colErased:
				row.Erased = split(v)
			default:
				if null {
					row.Fields[c.name] = nil
				} else {
					row.Fields[c.name] = c.from(v)
				}
			}
		}
		if err := fn(&row); err != nil {
			return err
		}
		r.rows++
	}
}

func orZero(v parquet.Value) int64 {
	if v.IsNull() {
		return 0
	}
	return v.Int64()
}

func split(v parquet.Value) []string {
	if v.IsNull() {
		return nil
	}
	return strings.Split(string(v.ByteArray()), ",")
}

// Change is one output record as a consumer applies it.
type Change struct {
	Key                string
	ValidFrom, ValidTo int64 // ValidTo 0 = open
	SystemFrom         int64
	Deleted            bool
	Fields             map[string]any // the row's fields, meta fields left out
}

// DecodeRecord reads an output-topic record (Confluent wire format, the
// published schema) through reg into a Change.
func DecodeRecord(ctx context.Context, reg *schemas.Registry, key, value []byte) (Change, error) {
	_, m, err := reg.DecodeMap(ctx, value)
	if err != nil {
		return Change{}, err
	}
	c := Change{Key: string(key), Fields: make(map[string]any, len(m))}
	var ok [3]bool
	for k, v := range m {
		switch k {
		case colValidFrom:
			c.ValidFrom, ok[0] = micros(v)
		case colValidTo:
			if v != nil {
				c.ValidTo, _ = micros(v)
			}
		case colSystemFrom:
			c.SystemFrom, ok[1] = micros(v)
		case colDeleted:
			c.Deleted, ok[2] = v.(bool)
		default:
			if !strings.HasPrefix(k, "_") {
				c.Fields[k] = v
			}
		}
	}
	if !ok[0] || !ok[1] || !ok[2] {
		return Change{}, fmt.Errorf("snapshot: record of key %q lacks Meshlet's meta fields: not an output-port record", key)
	}
	return c, nil
}

func micros(v any) (int64, bool) {
	switch x := v.(type) {
	case time.Time:
		return x.UnixMicro(), true
	case map[string]any: // a union the decoder left wrapped
		for _, e := range x {
			return micros(e)
		}
	case int64:
		return x, true
	}
	return 0, false
}

// State is a consumer's belief about the product, started from a
// snapshot and kept up by the records after it: per key, the valid-time
// timeline as now believed (the history's open versions). Applying a
// record follows the change log's rule: the record's valid period
// overrides whatever it overlaps, and a deleted record leaves it empty. A
// state loaded from a snapshot and fed the records the snapshot does not
// cover equals one fed every record from the start of the topic.
type State struct {
	keys map[string][]Piece
}

// Piece is part of a key's timeline: Fields believed valid over
// [ValidFrom, ValidTo), ValidTo 0 meaning open.
type Piece struct {
	ValidFrom, ValidTo int64
	Fields             map[string]any
}

// NewState returns an empty state.
func NewState() *State { return &State{keys: map[string][]Piece{}} }

// Load adds the snapshot's history as believed at its T. It needs the
// history file: the table alone is the belief at one valid time, and a
// later record can reach valid times it does not hold.
func (s *State) Load(snap *Snapshot) error {
	if _, ok := snap.Manifest.File(History); !ok {
		return errors.New("snapshot: loading a consumer's state needs the history file (take the snapshot with Kinds(History))")
	}
	return snap.Rows(History, func(r *Row) error {
		if r.SystemTo != 0 || r.Deleted {
			return nil
		}
		s.keys[r.Key] = append(s.keys[r.Key], Piece{ValidFrom: r.ValidFrom, ValidTo: r.ValidTo, Fields: r.Fields})
		return nil
	})
}

// Apply applies one record.
func (s *State) Apply(c Change) {
	a, b := c.ValidFrom, end(c.ValidTo)
	if b <= a {
		return
	}
	old := s.keys[c.Key]
	next := make([]Piece, 0, len(old)+2)
	for _, p := range old {
		if end(p.ValidTo) <= a || p.ValidFrom >= b {
			next = append(next, p)
			continue
		}
		if p.ValidFrom < a {
			next = append(next, Piece{ValidFrom: p.ValidFrom, ValidTo: a, Fields: p.Fields})
		}
		if end(p.ValidTo) > b {
			next = append(next, Piece{ValidFrom: b, ValidTo: p.ValidTo, Fields: p.Fields})
		}
	}
	if !c.Deleted {
		next = append(next, Piece{ValidFrom: a, ValidTo: c.ValidTo, Fields: c.Fields})
	}
	slices.SortFunc(next, func(x, y Piece) int { return cmp.Compare(x.ValidFrom, y.ValidFrom) })
	if len(next) == 0 {
		delete(s.keys, c.Key)
		return
	}
	s.keys[c.Key] = next
}

func end(validTo int64) int64 {
	if validTo == 0 {
		return auditlog.Latest
	}
	return validTo
}

// Get returns what is believed about key at valid time v.
func (s *State) Get(key string, v int64) (Piece, bool) {
	for _, p := range s.keys[key] {
		if p.ValidFrom <= v && v < end(p.ValidTo) {
			return p, true
		}
	}
	return Piece{}, false
}

// Keys lists the keys with a non-empty timeline, sorted.
func (s *State) Keys() []string {
	ks := make([]string, 0, len(s.keys))
	for k := range s.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Timeline returns key's pieces in valid-time order.
func (s *State) Timeline(key string) []Piece { return slices.Clone(s.keys[key]) }
