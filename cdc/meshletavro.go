package cdc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/meshlet/meshlet/internal/jsontext"
)

// The meta fields every Meshlet published schema carries after the row
// (see package schemas).
const (
	metaValidFrom  = "_valid_from"
	metaValidTo    = "_valid_to"
	metaSystemFrom = "_system_from"
	metaDeleted    = "_deleted"
)

// meshletAvro reads another Meshlet data product's output port, so that
// products compose: one product's output topic is the next one's input.
// Each event is one version of one entity, so it becomes one upsert or,
// when _deleted is set, one retraction.
type meshletAvro struct {
	src AvroSource

	mu      sync.RWMutex
	schemas map[int]*meshletSchema // by id; registered ids never change
}

// meshletSchema is a published schema as the decoder reads it. A
// registered schema that is not a Meshlet published one stays so, so the
// verdict is cached as well: field and reason say what is missing.
type meshletSchema struct {
	name string
	row  *avroType // the published record without the meta fields
	all  *avroType // the published record

	badField, badReason string
}

func newMeshletAvro(o options) (MultiDecoder, error) {
	if o.avro == nil {
		return nil, errors.New("cdc: format meshlet-avro needs a schema registry: pass cdc.WithAvro")
	}
	return &meshletAvro{src: o.avro, schemas: make(map[int]*meshletSchema)}, nil
}

func (d *meshletAvro) Decode(key, value []byte, c *Change) error {
	return d.decode(context.Background(), key, value, c)
}

func (d *meshletAvro) DecodeAll(ctx context.Context, key, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := d.decode(ctx, key, value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func (d *meshletAvro) decode(ctx context.Context, key, value []byte, c *Change) error {
	*c = Change{}
	if len(key) > 0 && !utf8.Valid(key) {
		// Replacing the bad bytes could give two entities one key.
		return &DecodeError{Field: "key", Reason: "not UTF-8 text; a Meshlet event's key is its entity key"}
	}
	if len(value) == 0 {
		c.Kind = KindTombstone
		if len(key) > 0 {
			c.Key = jsontext.AppendString(nil, string(key))
		}
		return nil
	}
	if len(key) == 0 {
		return &DecodeError{Field: "key", Reason: "missing; a Meshlet event's key is its entity key"}
	}
	if len(value) < 5 {
		return &DecodeError{Reason: fmt.Sprintf("%d bytes, shorter than the 5-byte Confluent header", len(value))}
	}
	if value[0] != 0 {
		return &DecodeError{Reason: fmt.Sprintf("magic byte %#x, want 0 (Confluent wire format)", value[0])}
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	s, err := d.schema(ctx, id)
	if err != nil {
		return err
	}
	bp := renderPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledRender {
			renderPool.Put(bp)
		}
	}()
	buf := jsontext.AppendString((*bp)[:0], string(key))
	keyEnd := len(buf)
	// The body is read straight into JSON: no map of Go values in between.
	buf, ev, err := readMeshletBody(buf, s, value[5:])
	*bp = buf
	if err != nil {
		// Bad bytes are rare: let the source, whose decoder names what
		// it found wrong, describe them, as it did when it read every
		// event.
		if _, _, serr := d.src.DecodeMap(ctx, value); serr != nil {
			return meshletSourceError(id, "decode", serr)
		}
		return &DecodeError{Reason: fmt.Sprintf("schema id %d: decode", id), Err: err}
	}
	// Valid time is the business time the upstream product gave this
	// version. As the commit time it becomes the default valid time of the
	// records a handler emits, so a chain of products agrees on when
	// things were true unless a handler decides otherwise. System time is
	// not carried over: each product's is its own.
	sc := getScratch()
	defer putScratch(sc)
	out := append(sc.keep.take(len(buf)), buf...) // Key and After share one chunk
	c.Key = out[:keyEnd:keyEnd]
	c.Kind = KindChange
	c.CommitTime = ev.validFrom
	if ev.deleted {
		c.Op = OpDelete
	} else {
		c.Op = OpUpdate
		c.After = out[keyEnd:]
	}
	c.Source = Source{Connector: "meshlet", Name: s.name}
	return nil
}

// meshletEvent is what an event says besides its row.
type meshletEvent struct {
	validFrom time.Time
	deleted   bool
}

// readMeshletBody renders the row fields of a published event as a JSON
// object appended to dst, and reads the meta fields, whose types the
// schema check has fixed. A retraction's row fields are read but not
// rendered: they may be zero.
func readMeshletBody(dst []byte, s *meshletSchema, body []byte) ([]byte, meshletEvent, error) {
	var ev meshletEvent
	// Leniently, so that a retraction's zero row never fails to render.
	r := avroBinary{b: body, items: maxAvroItems, lenient: true}
	start := len(dst)
	dst = append(dst, '{')
	n := 0
	for _, f := range s.all.fields {
		var err error
		switch f.name {
		case metaValidFrom:
			var v int64
			if v, err = r.long(); err == nil {
				ev.validFrom = time.UnixMicro(v).UTC()
			}
		case metaSystemFrom:
			_, err = r.long()
		case metaValidTo: // ["null", long], as the schema check made sure
			var branch int64
			if branch, err = r.long(); err == nil && branch == 1 {
				_, err = r.long()
			} else if err == nil && branch != 0 {
				err = &DecodeError{Reason: fmt.Sprintf("union branch %d of 2", branch)}
			}
		case metaDeleted:
			if r.i >= len(r.b) || r.b[r.i] > 1 {
				err = r.bad("boolean")
			} else {
				ev.deleted = r.b[r.i] == 1
				r.i++
			}
		default:
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, f.quoted...)
			dst, err = r.value(dst, f.typ, 1)
		}
		if err != nil {
			return dst[:start], ev, within(err, f.name)
		}
	}
	if r.i != len(r.b) {
		return dst[:start], ev, &DecodeError{Reason: fmt.Sprintf("%d bytes after the record", len(r.b)-r.i)}
	}
	if ev.deleted {
		return dst[:start], ev, nil
	}
	if unrendered := r.unrendered; unrendered != nil {
		// Read again, strictly, for the error with its field's name.
		r = avroBinary{b: body, items: maxAvroItems}
		for _, f := range s.all.fields {
			if _, err := r.value(nil, f.typ, 1); err != nil {
				return dst[:start], ev, within(err, f.name)
			}
		}
		return dst[:start], ev, unrendered
	}
	return append(dst, '}'), ev, nil
}

// microsTime reads a timestamp-micros value: hamba's time.Time, or the
// long itself from a source that leaves logical types alone.
func microsTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case nil:
		return time.Time{}, &DecodeError{Reason: "missing timestamp-micros value"}
	}
	if n, ok := integer(v); ok {
		return time.UnixMicro(n).UTC(), nil
	}
	return time.Time{}, &DecodeError{Reason: fmt.Sprintf("want a timestamp-micros long, got %T", v)}
}

// schema returns the published schema registered under id, fetching and
// checking it once.
func (d *meshletAvro) schema(ctx context.Context, id int) (*meshletSchema, error) {
	d.mu.RLock()
	s := d.schemas[id]
	d.mu.RUnlock()
	if s == nil {
		text, err := d.src.SchemaText(ctx, id)
		if err != nil {
			return nil, meshletSourceError(id, "fetch", err)
		}
		s = readPublished(text)
		d.mu.Lock()
		if prev := d.schemas[id]; prev != nil {
			s = prev
		} else {
			d.schemas[id] = s
		}
		d.mu.Unlock()
	}
	if s.badReason != "" {
		// A fresh error each time: callers add to its Field.
		return nil, &DecodeError{Field: s.badField, Reason: fmt.Sprintf("schema id %d: %s", id, s.badReason)}
	}
	return s, nil
}

// readPublished checks that a registered schema is a Meshlet published
// schema and splits the row from the meta fields.
func readPublished(text string) *meshletSchema {
	t, err := parseAvroSchema(text)
	if err != nil {
		return &meshletSchema{badReason: "cannot be read: " + err.Error()}
	}
	if t.kind != avroRecord {
		return &meshletSchema{badReason: fmt.Sprintf("is %s, want a record", t.kind)}
	}
	s := &meshletSchema{name: t.name}
	metas := [...]struct {
		name string
		want string
		ok   func(*avroType) bool
	}{
		{metaValidFrom, "a timestamp-micros long", isMicros},
		{metaValidTo, `["null", timestamp-micros long]`, func(t *avroType) bool {
			return t.kind == avroUnion && len(t.branches) == 2 && t.branches[0].kind == avroNull && isMicros(t.branches[1])
		}},
		{metaSystemFrom, "a timestamp-micros long", isMicros},
		{metaDeleted, "a boolean", func(t *avroType) bool { return t.kind == avroBoolean }},
	}
	for _, m := range metas {
		f := fieldNamed(t, m.name)
		if f == nil {
			s.badField, s.badReason = m.name, fmt.Sprintf("%s has no %s field: not a Meshlet output event", t.name, m.name)
			return s
		}
		if !m.ok(f.typ) {
			s.badField, s.badReason = m.name, fmt.Sprintf("%s in %s is %s, want %s", m.name, t.name, describeType(f.typ), m.want)
			return s
		}
	}
	var row []avroField
	for _, f := range t.fields {
		switch f.name {
		case metaValidFrom, metaValidTo, metaSystemFrom, metaDeleted:
		default:
			row = append(row, f)
		}
	}
	s.row = &avroType{kind: avroRecord, name: t.name, nameBytes: t.nameBytes, fields: row}
	s.all = t
	return s
}

func isMicros(t *avroType) bool { return t.kind == avroLong && t.logical == "timestamp-micros" }

func fieldNamed(t *avroType, name string) *avroField {
	for i := range t.fields {
		if t.fields[i].name == name {
			return &t.fields[i]
		}
	}
	return nil
}

// describeType names a type for an error message, e.g. "long
// (timestamp-millis)" or "union".
func describeType(t *avroType) string {
	if t.logical != "" {
		return t.kind.String() + " (" + t.logical + ")"
	}
	return t.kind.String()
}

// meshletSourceError keeps an AvroSource's classification, as sourceError
// does for debezium-avro: malformed input becomes a DecodeError, anything
// else stays retryable.
func meshletSourceError(id int, what string, err error) error {
	if errors.Is(err, ErrMalformed) {
		return &DecodeError{Reason: fmt.Sprintf("schema id %d: %s", id, what), Err: err}
	}
	return fmt.Errorf("cdc: meshlet-avro: schema id %d: %s: %w", id, what, err)
}
