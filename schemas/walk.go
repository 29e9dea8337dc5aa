package schemas

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// walker checks that a body is exactly one well-formed value of a schema
// before hamba sees it. hamba's limits cover allocation only: skipping an
// unread field with a block of 1e9 null items spins for seconds (2^62:
// forever), a block count of MinInt64 slips past the size check, a
// truncated body decodes as zero values with no error, and nesting is
// unbounded. The walk rejects all of that up front without allocating,
// so hamba only ever decodes sane input.
type walker struct {
	b     []byte
	off   int
	items int // elements left in the event's budget
}

// walkError carries the field path, built as the walk unwinds.
type walkError struct {
	path string
	msg  string
}

func (e *walkError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return "field " + e.path + ": " + e.msg
}

func within(name string, err error) error {
	if we, ok := err.(*walkError); ok {
		if we.path == "" || we.path[0] == '[' {
			we.path = name + we.path
		} else {
			we.path = name + "." + we.path
		}
	}
	return err
}

func failf(format string, a ...any) error {
	return &walkError{msg: fmt.Sprintf(format, a...)}
}

// shape is a schema compiled for the walk: hamba's schema types cost an
// interface call and a string switch per value, which made the walk slower
// than the decode it guards.
type shape struct {
	kind  kind
	n     int      // fixed: size; enum: symbol count
	what  string   // string or bytes, for messages
	kids  []*shape // record fields, union branches, or the array/map element
	names []string // record field names
}

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kFixed
	kEnum
	kUnion
	kRecord
	kArray
	kMap
)

// compile builds the shape of s. Named records are compiled once, so a
// recursive schema becomes a cyclic shape.
func compile(s avro.Schema) (*shape, error) {
	return compileIn(s, map[string]*shape{})
}

func compileIn(s avro.Schema, records map[string]*shape) (*shape, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		return compileIn(s.Schema(), records)
	case *avro.RecordSchema:
		if sh := records[s.FullName()]; sh != nil {
			return sh, nil
		}
		sh := &shape{kind: kRecord}
		records[s.FullName()] = sh
		for _, f := range s.Fields() {
			k, err := compileIn(f.Type(), records)
			if err != nil {
				return nil, err
			}
			sh.kids = append(sh.kids, k)
			sh.names = append(sh.names, f.Name())
		}
		return sh, nil
	case *avro.UnionSchema:
		sh := &shape{kind: kUnion}
		for _, t := range s.Types() {
			k, err := compileIn(t, records)
			if err != nil {
				return nil, err
			}
			sh.kids = append(sh.kids, k)
		}
		return sh, nil
	case *avro.ArraySchema:
		k, err := compileIn(s.Items(), records)
		return &shape{kind: kArray, kids: []*shape{k}}, err
	case *avro.MapSchema:
		k, err := compileIn(s.Values(), records)
		return &shape{kind: kMap, kids: []*shape{k}}, err
	case *avro.EnumSchema:
		return &shape{kind: kEnum, n: len(s.Symbols())}, nil
	case *avro.FixedSchema:
		return &shape{kind: kFixed, n: s.Size()}, nil
	}
	switch s.Type() {
	case avro.Null:
		return &shape{kind: kNull}, nil
	case avro.Boolean:
		return &shape{kind: kBoolean}, nil
	case avro.Int:
		return &shape{kind: kInt}, nil
	case avro.Long:
		return &shape{kind: kLong}, nil
	case avro.Float:
		return &shape{kind: kFloat}, nil
	case avro.Double:
		return &shape{kind: kDouble}, nil
	case avro.String, avro.Bytes:
		return &shape{kind: kBytes, what: string(s.Type())}, nil
	}
	return nil, fmt.Errorf("unsupported schema type %s", s.Type())
}

// walkBody checks body against a record shape. It returns the offset at
// which field split starts (len(body) if split == len(fields)), which is
// where a published event's meta tail begins.
func walkBody(rec *shape, body []byte, split int) (int, error) {
	w := walker{b: body, items: maxItems}
	at := len(body)
	for i, k := range rec.kids {
		if i == split {
			at = w.off
		}
		if err := w.value(k, 1); err != nil {
			return 0, within(rec.names[i], err)
		}
	}
	if w.off != len(body) {
		return 0, failf("%d trailing bytes after the record", len(body)-w.off)
	}
	return at, nil
}

func (w *walker) value(s *shape, depth int) error {
	if depth > maxDepth {
		return failf("nesting deeper than %d", maxDepth)
	}
	switch s.kind {
	case kNull:
		return nil
	case kBoolean:
		if w.off >= len(w.b) {
			return failf("truncated boolean")
		}
		if w.b[w.off] > 1 {
			return failf("boolean byte %#x", w.b[w.off])
		}
		w.off++
		return nil
	case kInt:
		_, err := w.int32()
		return err
	case kLong:
		_, err := w.long()
		return err
	case kFloat:
		return w.skip(4, "float")
	case kDouble:
		return w.skip(8, "double")
	case kBytes:
		return w.bytes(s.what)
	case kFixed:
		return w.skip(s.n, "fixed")
	case kEnum:
		i, err := w.int32()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= s.n {
			return failf("enum index %d out of %d symbols", i, s.n)
		}
		return nil
	case kUnion:
		i, err := w.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.kids)) {
			return failf("union index %d out of %d branches", i, len(s.kids))
		}
		return w.value(s.kids[i], depth+1)
	case kRecord:
		for i, k := range s.kids {
			if err := w.value(k, depth+1); err != nil {
				return within(s.names[i], err)
			}
		}
		return nil
	case kArray:
		return w.blocks(s.kids[0], false, depth)
	case kMap:
		return w.blocks(s.kids[0], true, depth)
	}
	return failf("unknown shape kind %d", s.kind)
}

// blocks walks an array or map: blocks of count items, a negative count
// followed by the block's byte size, ended by a zero count.
func (w *walker) blocks(elem *shape, isMap bool, depth int) error {
	for i := 0; ; {
		count, err := w.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		size := int64(-1)
		if count < 0 {
			if count == math.MinInt64 {
				return failf("block count out of range")
			}
			count = -count
			if size, err = w.long(); err != nil {
				return err
			}
			if size < 0 || size > int64(len(w.b)-w.off) {
				return failf("block size %d with %d bytes left", size, len(w.b)-w.off)
			}
		}
		if count > int64(w.items) {
			return failf("%d more elements exceed the event limit of %d", count, maxItems)
		}
		w.items -= int(count)
		start := w.off
		for end := i + int(count); i < end; i++ {
			if isMap {
				if err := w.bytes("map key"); err != nil {
					return within(fmt.Sprintf("[%d]", i), err)
				}
			}
			if err := w.value(elem, depth+1); err != nil {
				return within(fmt.Sprintf("[%d]", i), err)
			}
		}
		if size >= 0 && int64(w.off-start) != size {
			return failf("block declared %d bytes, items took %d", size, w.off-start)
		}
	}
}

func (w *walker) skip(n int, what string) error {
	if n > len(w.b)-w.off {
		return failf("truncated %s", what)
	}
	w.off += n
	return nil
}

func (w *walker) bytes(what string) error {
	n, err := w.long()
	if err != nil {
		return err
	}
	if n < 0 {
		return failf("negative %s length %d", what, n)
	}
	if n > maxBytesLen {
		return failf("%s length %d exceeds limit %d", what, n, maxBytesLen)
	}
	return w.skip(int(n), what)
}

func (w *walker) long() (int64, error) {
	// Most values in real events fit one byte.
	if w.off < len(w.b) && w.b[w.off] < 0x80 {
		u := int64(w.b[w.off])
		w.off++
		return u>>1 ^ -(u & 1), nil
	}
	v, n := binary.Varint(w.b[w.off:])
	if n <= 0 {
		if n == 0 {
			return 0, failf("truncated varint")
		}
		return 0, failf("varint overflows 64 bits")
	}
	w.off += n
	return v, nil
}

func (w *walker) int32() (int32, error) {
	start := w.off
	v, err := w.long()
	if err != nil {
		return 0, err
	}
	if w.off-start > binary.MaxVarintLen32 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, failf("int out of 32-bit range")
	}
	return int32(v), nil
}
