package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/hamba/avro/v2"
)

// Encoder writes wire-format events for one registered schema. It reuses
// one buffer, so it is not safe for concurrent use: one per goroutine.
type Encoder struct {
	row    *avro.RecordSchema
	header [headerSize]byte
	w      *avro.Writer
}

// NewEncoder returns an Encoder for s registered under id.
func NewEncoder(s *Schema, id int) (*Encoder, error) {
	if s == nil {
		return nil, errors.New("schemas: NewEncoder: nil schema")
	}
	// Confluent ids are signed 32-bit; the wire carries them unsigned.
	if id <= 0 || id > math.MaxInt32 {
		return nil, fmt.Errorf("schemas: NewEncoder: schema id %d out of range", id)
	}
	e := &Encoder{row: s.row, w: avro.NewWriter(nil, 512, avro.WithWriterConfig(codec))}
	e.header[0] = wireMagic
	binary.BigEndian.PutUint32(e.header[1:], uint32(id))
	return e, nil
}

// Append appends one wire-format event to dst: header, row body, meta tail.
// row is the engineer's struct (value or pointer) or a map[string]any,
// encoded with the row schema. On error dst is returned unchanged.
//
// Avro record binary is its fields back to back, so row bytes followed by
// the tail are exactly the published record; the struct never needs meta
// fields.
func (e *Encoder) Append(dst []byte, row any, m Meta) ([]byte, error) {
	if err := e.encodeRow(row); err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", e.row.FullName(), err)
	}
	dst = append(dst, e.header[:]...)
	dst = append(dst, e.w.Buffer()...)
	return appendMeta(dst, m), nil
}

// encodeRow leaves the row body in e.w's buffer. hamba reports bad values
// as errors; the recover guards the batch loop against a panic in its
// reflection code on a value nobody foresaw.
func (e *Encoder) encodeRow(row any) (err error) {
	if row == nil {
		return errors.New("nil row")
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("avro encoder panic: %v", p)
		}
	}()
	e.w.Reset(nil)
	e.w.Error = nil
	e.w.WriteVal(e.row, row)
	return e.w.Error
}

// appendMeta hand-encodes the meta fields in published order. Avro longs
// are zigzag varints, the same encoding as binary.AppendVarint.
func appendMeta(dst []byte, m Meta) []byte {
	dst = binary.AppendVarint(dst, m.ValidFrom)
	if m.ValidTo == 0 {
		dst = append(dst, 0) // union branch 0: null
	} else {
		dst = append(dst, 2) // union branch 1 (zigzag 1 = 2): timestamp
		dst = binary.AppendVarint(dst, m.ValidTo)
	}
	dst = binary.AppendVarint(dst, m.SystemFrom)
	if m.Deleted {
		return append(dst, 1)
	}
	return append(dst, 0)
}
