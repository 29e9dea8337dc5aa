package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"
)

// ErrMalformed classes an event that can never be decoded: retrying will
// not help, it belongs in a dead-letter topic.
var ErrMalformed = errors.New("malformed avro event")

const (
	wireMagic  = 0
	headerSize = 5
)

// SplitWire splits a Confluent wire-format event into schema id and Avro
// body. The body aliases wire.
func SplitWire(wire []byte) (id int, body []byte, err error) {
	if len(wire) < headerSize {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(wire), headerSize)
	}
	if wire[0] != wireMagic {
		return 0, nil, fmt.Errorf("%w: magic byte %#x, want 0", ErrMalformed, wire[0])
	}
	return int(binary.BigEndian.Uint32(wire[1:headerSize])), wire[headerSize:], nil
}

// writer is a registered schema as the decoder needs it.
type writer struct {
	id        int
	schema    *avro.RecordSchema
	published string // schema's canonical text
	shape     *shape
	meta      *Schema // nil when the schema has no Meshlet meta tail
}

func newWriter(id int, rec *avro.RecordSchema) (*writer, error) {
	sh, err := compile(rec)
	if err != nil {
		return nil, err
	}
	text, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	w := &writer{id: id, schema: rec, shape: sh, published: string(text)}
	if s, err := fromPublished(rec); err == nil {
		w.meta = s
	}
	return w, nil
}

// decodeMap decodes body into a map keyed by field name.
func (wr *writer) decodeMap(body []byte) (map[string]any, error) {
	if _, err := walkBody(wr.shape, body, 0); err != nil {
		return nil, wr.malformed(err)
	}
	m := make(map[string]any, len(wr.schema.Fields()))
	if err := unmarshal(wr.schema, body, &m); err != nil {
		return nil, wr.malformed(err)
	}
	return m, nil
}

// decodeRow decodes the row fields of body into row (a struct pointer)
// and the meta tail into a Meta. The row struct has no meta fields, so
// hamba skips them; the tail is read by hand from the offset the walk
// found.
func (wr *writer) decodeRow(body []byte, row any) (Meta, error) {
	if wr.meta == nil {
		return Meta{}, fmt.Errorf("schemas: schema id %d (%s) has no Meshlet meta fields; use DecodeMap", wr.id, wr.schema.FullName())
	}
	v := reflect.ValueOf(row)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return Meta{}, fmt.Errorf("schemas: decode into %T: need a non-nil pointer", row)
	}
	// hamba leaves fields the writer schema lacks untouched; a reused row
	// must not show a previous event's values in them.
	v.Elem().SetZero()
	split := len(wr.schema.Fields()) - len(metaFieldsJSON)
	at, err := walkBody(wr.shape, body, split)
	if err != nil {
		return Meta{}, wr.malformed(err)
	}
	if err := unmarshal(wr.schema, body, row); err != nil {
		// The walk accepted the bytes, so this is a mismatch between the
		// schema and the Go type, not bad input.
		return Meta{}, fmt.Errorf("schemas: decode schema id %d into %T: %w", wr.id, row, err)
	}
	m, ok := readMeta(body[at:])
	if !ok {
		return Meta{}, wr.malformed(errors.New("bad meta tail"))
	}
	return m, nil
}

func (wr *writer) malformed(err error) error {
	return fmt.Errorf("%w: schema id %d (%s): %w", ErrMalformed, wr.id, wr.schema.FullName(), err)
}

// unmarshal is the single call into hamba's decoder. The walk has already
// vetted the bytes; recover is for hamba bugs the walk did not foresee.
func unmarshal(s avro.Schema, body []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("avro decoder panic: %v", p)
		}
	}()
	return codec.Unmarshal(s, body, v)
}

// readMeta reads the tail written by appendMeta.
func readMeta(b []byte) (Meta, bool) {
	var m Meta
	var n int
	if m.ValidFrom, n = binary.Varint(b); n <= 0 {
		return m, false
	}
	b = b[n:]
	branch, n := binary.Varint(b)
	if n <= 0 || (branch != 0 && branch != 1) {
		return m, false
	}
	b = b[n:]
	if branch == 1 {
		if m.ValidTo, n = binary.Varint(b); n <= 0 {
			return m, false
		}
		b = b[n:]
	}
	if m.SystemFrom, n = binary.Varint(b); n <= 0 {
		return m, false
	}
	b = b[n:]
	if len(b) != 1 || b[0] > 1 {
		return m, false
	}
	m.Deleted = b[0] == 1
	return m, true
}
