package cdc

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/meshlet/meshlet/internal/jsontext"
)

// Limits of the Avro binary reader, the same as package schemas puts on
// its decoder (a test holds them equal): the bytes come from a topic
// anyone with produce rights can write to, so no length or count is
// trusted to size anything.
const (
	maxAvroBytes = 8 << 20 // one string or bytes value: schemas.MaxEventBytes, the largest event Meshlet takes
	maxAvroItems = 100_000 // array and map elements of one whole record
)

// avroBinary renders Avro binary data, read with the writer schema, as
// JSON, by the rules appendAvro applies to decoded values (see the package
// doc), but straight from the bytes: no map of Go values is built in
// between. Every length, count and index is checked against what is left
// of the input, nesting against maxAvroDepth, and the elements of all
// arrays and maps of a record together against maxAvroItems.
type avroBinary struct {
	b     []byte
	i     int
	items int    // elements left in the record's budget
	tmp   []byte // rendered map values, to be sorted by key

	// lenient keeps reading past a value that was read whole but cannot
	// be rendered (a decimal beyond its scale's range, a time out of
	// range), noting the first such error in unrendered: a reader that
	// may not need the rendering decides later.
	lenient    bool
	unrendered error
}

// rendered passes on the outcome of rendering one value whose bytes were
// all read.
func (r *avroBinary) rendered(dst, out []byte, err error) ([]byte, error) {
	if err == nil {
		return out, nil
	}
	if r.lenient {
		if r.unrendered == nil {
			r.unrendered = err
		}
		return dst, nil
	}
	return dst, err
}

// appendAvroBinary renders body, one value of the record type t with no
// bytes after it.
func appendAvroBinary(dst []byte, t *avroType, body []byte) ([]byte, error) {
	r := avroBinary{b: body, items: maxAvroItems}
	dst, err := r.value(dst, t, 0)
	if err != nil {
		return dst, err
	}
	if r.i != len(r.b) {
		return dst, &DecodeError{Reason: fmt.Sprintf("%d bytes after the record", len(r.b)-r.i)}
	}
	return dst, nil
}

func (r *avroBinary) value(dst []byte, t *avroType, depth int) ([]byte, error) {
	if depth > maxAvroDepth {
		return dst, &DecodeError{Reason: fmt.Sprintf("value nested deeper than %d", maxAvroDepth)}
	}
	switch t.kind {
	case avroUnion:
		n, err := r.long()
		if err != nil {
			return dst, err
		}
		if n < 0 || n >= int64(len(t.branches)) {
			return dst, &DecodeError{Reason: fmt.Sprintf("union branch %d of %d", n, len(t.branches))}
		}
		return r.value(dst, t.branches[n], depth+1)
	case avroNull:
		return append(dst, "null"...), nil
	case avroBoolean:
		if r.i >= len(r.b) || r.b[r.i] > 1 {
			return dst, r.bad("boolean")
		}
		r.i++
		return strconv.AppendBool(dst, r.b[r.i-1] == 1), nil
	case avroInt, avroLong:
		var n int64
		var err error
		if t.kind == avroInt {
			n, err = r.int()
		} else {
			n, err = r.long()
		}
		if err != nil {
			return dst, err
		}
		out, err := appendAvroInteger(dst, t, n)
		return r.rendered(dst, out, err)
	case avroFloat:
		b, err := r.fixed(4)
		if err != nil {
			return dst, err
		}
		return appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), 32), nil
	case avroDouble:
		b, err := r.fixed(8)
		if err != nil {
			return dst, err
		}
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), 64), nil
	case avroString:
		b, err := r.bytes()
		if err != nil {
			return dst, err
		}
		return jsontext.AppendString(dst, unsafe.String(unsafe.SliceData(b), len(b))), nil // read, not kept
	case avroEnum:
		n, err := r.int()
		if err != nil {
			return dst, err
		}
		if n < 0 || n >= int64(len(t.symbols)) {
			return dst, &DecodeError{Reason: fmt.Sprintf("enum index %d of %d symbols", n, len(t.symbols))}
		}
		return jsontext.AppendString(dst, t.symbols[n]), nil
	case avroBytes, avroFixed:
		var b []byte
		var err error
		if t.kind == avroBytes {
			b, err = r.bytes()
		} else {
			b, err = r.fixed(t.size)
		}
		if err != nil {
			return dst, err
		}
		if t.logical == "decimal" || t.connect == connectDecimal {
			out, err := appendDecimalBytes(dst, t, b)
			return r.rendered(dst, out, err)
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	case avroArray:
		return r.array(dst, t, depth)
	case avroMap:
		return r.avroMap(dst, t, depth)
	case avroRecord:
		if t.connect == variableScaleDecimal {
			return r.variableScale(dst, t, depth)
		}
		dst = append(dst, '{')
		for i, f := range t.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, f.quoted...)
			var err error
			if dst, err = r.value(dst, f.typ, depth+1); err != nil {
				return dst, within(err, f.name)
			}
		}
		return append(dst, '}'), nil
	}
	return dst, &DecodeError{Reason: fmt.Sprintf("unsupported Avro type %s", t.kind)}
}

// block reads the count that starts each block of an array or map: zero
// ends it; a negative count is followed by the block's size in bytes,
// which is checked and otherwise ignored.
func (r *avroBinary) block() (int, error) {
	n, err := r.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, &DecodeError{Reason: "block count out of range"}
		}
		n = -n
		size, err := r.long()
		if err != nil {
			return 0, err
		}
		if size < 0 || size > int64(len(r.b)-r.i) {
			return 0, &DecodeError{Reason: fmt.Sprintf("block of %d bytes with %d left", size, len(r.b)-r.i)}
		}
	}
	if n > int64(r.items) {
		return 0, &DecodeError{Reason: fmt.Sprintf("more than %d array and map elements in one record", maxAvroItems)}
	}
	r.items -= int(n)
	return int(n), nil
}

func (r *avroBinary) array(dst []byte, t *avroType, depth int) ([]byte, error) {
	dst = append(dst, '[')
	for i := 0; ; {
		n, err := r.block()
		if err != nil {
			return dst, err
		}
		if n == 0 {
			return append(dst, ']'), nil
		}
		for end := i + n; i < end; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = r.value(dst, t.items, depth+1); err != nil {
				return dst, within(err, fmt.Sprintf("[%d]", i))
			}
		}
	}
}

// avroMap renders a map with its keys sorted, as appendAvro does for a Go
// map; a key sent twice keeps its last value, as it would in a Go map.
func (r *avroBinary) avroMap(dst []byte, t *avroType, depth int) ([]byte, error) {
	type entry struct {
		key        string
		start, end int // the rendered value in r.tmp
	}
	var entries []entry
	base := len(r.tmp)
	defer func() { r.tmp = r.tmp[:base] }()
	for {
		n, err := r.block()
		if err != nil {
			return dst, err
		}
		if n == 0 {
			break
		}
		for range n {
			k, err := r.bytes()
			if err != nil {
				return dst, err
			}
			key := string(k)
			start := len(r.tmp)
			if r.tmp, err = r.value(r.tmp, t.items, depth+1); err != nil {
				return dst, within(err, strconv.Quote(key))
			}
			entries = append(entries, entry{key, start, len(r.tmp)})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	dst = append(dst, '{')
	wrote := false
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].key == e.key {
			continue // a later value for the same key wins
		}
		if wrote {
			dst = append(dst, ',')
		}
		wrote = true
		dst = jsontext.AppendString(dst, e.key)
		dst = append(dst, ':')
		dst = append(dst, r.tmp[e.start:e.end]...)
	}
	return append(dst, '}'), nil
}

// variableScale renders Debezium's VariableScaleDecimal, a record of an
// int "scale" and the unscaled value's bytes in "value", as an exact
// number. Fields of other types are read and left out.
func (r *avroBinary) variableScale(dst []byte, t *avroType, depth int) ([]byte, error) {
	var scale int64
	var value []byte
	hasScale, hasValue := false, false
	for _, f := range t.fields {
		ft := f.typ
		for ft.kind == avroUnion {
			n, err := r.long()
			if err != nil {
				return dst, within(err, f.name)
			}
			if n < 0 || n >= int64(len(ft.branches)) {
				return dst, within(&DecodeError{Reason: fmt.Sprintf("union branch %d of %d", n, len(ft.branches))}, f.name)
			}
			ft = ft.branches[n]
		}
		var err error
		switch {
		case f.name == "scale" && (ft.kind == avroInt || ft.kind == avroLong):
			if ft.kind == avroInt {
				scale, err = r.int()
			} else {
				scale, err = r.long()
			}
			hasScale = true
		case f.name == "value" && ft.kind == avroBytes:
			value, err = r.bytes()
			hasValue = true
		default:
			_, err = r.value(nil, ft, depth+1)
		}
		if err != nil {
			return dst, within(err, f.name)
		}
	}
	if !hasScale || scale < math.MinInt32 || scale > math.MaxInt32 {
		return r.rendered(dst, nil, &DecodeError{Field: "scale", Reason: "want an int"})
	}
	if !hasValue {
		return r.rendered(dst, nil, &DecodeError{Field: "value", Reason: "want bytes"})
	}
	unscaled, err := twosComplement(value)
	if err != nil {
		return r.rendered(dst, nil, within(err, "value"))
	}
	return appendDecimal(dst, unscaled, int(scale)), nil
}

func (r *avroBinary) bad(what string) *DecodeError {
	if r.i >= len(r.b) {
		return &DecodeError{Reason: fmt.Sprintf("truncated %s", what)}
	}
	return &DecodeError{Reason: fmt.Sprintf("invalid %s byte %#x", what, r.b[r.i])}
}

func (r *avroBinary) long() (int64, error) {
	if r.i < len(r.b) && r.b[r.i] < 0x80 { // most values fit one byte
		u := int64(r.b[r.i])
		r.i++
		return u>>1 ^ -(u & 1), nil
	}
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		if n == 0 {
			return 0, &DecodeError{Reason: "truncated varint"}
		}
		return 0, &DecodeError{Reason: "varint overflows 64 bits"}
	}
	r.i += n
	return v, nil
}

func (r *avroBinary) int() (int64, error) {
	start := r.i
	v, err := r.long()
	if err != nil {
		return 0, err
	}
	if r.i-start > binary.MaxVarintLen32 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, &DecodeError{Reason: "int out of 32-bit range"}
	}
	return v, nil
}

func (r *avroBinary) fixed(n int) ([]byte, error) {
	if n > len(r.b)-r.i {
		return nil, &DecodeError{Reason: fmt.Sprintf("%d bytes wanted, %d left", n, len(r.b)-r.i)}
	}
	r.i += n
	return r.b[r.i-n : r.i], nil
}

func (r *avroBinary) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > maxAvroBytes {
		return nil, &DecodeError{Reason: fmt.Sprintf("length %d out of range", n)}
	}
	return r.fixed(int(n))
}
