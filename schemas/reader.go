package schemas

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"
)

// DecodeWithReader decodes a wire-format event written with any registered
// version into row, a pointer to a struct for reader's row schema: what a
// consumer holding an older (or newer) schema does. Avro schema resolution
// applies: writer fields the reader lacks are skipped, reader fields the
// writer lacks take their defaults, int widens to long, and so on. The meta
// fields are returned separately, as Decode does.
//
// The body is vetted against the writer schema before anything is decoded,
// exactly as for Decode. A reader that cannot read the writer's version is
// an *CompatError (errors.Is ErrIncompatible), not ErrMalformed: the event
// is fine, the reader is out of date.
func (r *Registry) DecodeWithReader(ctx context.Context, wire []byte, reader *Schema, row any) (id int, m Meta, err error) {
	if reader == nil {
		return 0, Meta{}, errors.New("schemas: DecodeWithReader: nil reader schema")
	}
	id, body, err := SplitWire(wire)
	if err != nil {
		return 0, Meta{}, err
	}
	w, err := r.writerByID(ctx, id)
	if err != nil {
		return id, Meta{}, err
	}
	rs, err := r.resolved(w, reader)
	if err != nil {
		return id, Meta{}, err
	}
	m, err = w.decodeResolved(rs, body, row)
	return id, m, err
}

type resolvedKey struct {
	writer int
	reader [32]byte
}

// resolved returns the composite schema hamba decodes with, built once per
// writer id and reader schema. The number of entries is bounded by the
// registry's ids times the reader schemas a process holds: a handful.
func (r *Registry) resolved(w *writer, reader *Schema) (avro.Schema, error) {
	key := resolvedKey{writer: w.id, reader: reader.fp}
	r.mu.RLock()
	rs := r.resolvedBy[key]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	rs, err := resolveFor(w, reader)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if prev := r.resolvedBy[key]; prev != nil {
		rs = prev
	} else {
		r.resolvedBy[key] = rs
	}
	r.mu.Unlock()
	return rs, nil
}

// resolveFor checks reader against the writer with Meshlet's own rules
// first, so a refusal reads like one from Register, then asks hamba for
// the composite schema.
func resolveFor(w *writer, reader *Schema) (avro.Schema, error) {
	if w.meta == nil {
		return nil, fmt.Errorf("schemas: schema id %d (%s) has no Meshlet meta fields", w.id, w.schema.FullName())
	}
	if ms := resolve(reader.pub, w.schema); len(ms) > 0 {
		return nil, &readerError{id: w.id, reader: reader.RowName(), m: ms[0]}
	}
	if reader.pubText == w.published {
		return w.schema, nil // nothing to resolve
	}
	// hamba's Resolve recurses without end on a recursive record the reader
	// declares, and a Go stack overflow kills the process: refuse instead
	// (found by FuzzResolvedDecode's first run). A recursive writer type
	// the reader does not declare is only skipped, never resolved.
	if name := recursiveType(reader.pub); name != "" {
		return nil, fmt.Errorf("schemas: schema id %d read as %s: %s is recursive, which schema resolution does not support; decode with the writer schema (Decode)",
			w.id, reader.RowName(), name)
	}
	if path := unskippable(reader.pub, w.schema, "", 0); path != "" {
		return nil, fmt.Errorf("schemas: schema id %d read as %s: field %q holds null values outside a union, which the decoder cannot skip; declare the field in the reader",
			w.id, reader.RowName(), path)
	}
	// A fresh checker: hamba caches verdicts by a fingerprint that ignores
	// defaults, so a shared one could answer for a different schema.
	rs, err := avro.NewSchemaCompatibility().Resolve(reader.pub, w.schema)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d read as %s: %w", ErrIncompatible, w.id, reader.RowName(), err)
	}
	return rs, nil
}

// readerError is a reader schema that cannot read a registered writer.
type readerError struct {
	id     int
	reader string
	m      Mismatch
}

func (e *readerError) Error() string {
	return fmt.Sprintf("schemas: reader %s cannot read schema id %d: %s", e.reader, e.id,
		e.m.describe(roles{reader: "the reader", writer: fmt.Sprintf("schema id %d", e.id)}))
}

func (e *readerError) Unwrap() error { return ErrIncompatible }

// decodeResolved is decodeRow through a composite schema. The walk checks
// the body against the writer's shape; the composite schema reads the
// writer's bytes, so the walk's guarantees carry over.
func (wr *writer) decodeResolved(rs avro.Schema, body []byte, row any) (Meta, error) {
	v := reflect.ValueOf(row)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return Meta{}, fmt.Errorf("schemas: decode into %T: need a non-nil pointer", row)
	}
	// Defaults are set by hamba only for fields the writer lacks; zero the
	// rest so a reused row never shows an earlier event's values.
	v.Elem().SetZero()
	split := len(wr.schema.Fields()) - len(metaFieldsJSON)
	at, err := walkBody(wr.shape, body, split)
	if err != nil {
		return Meta{}, wr.malformed(err)
	}
	if err := unmarshal(rs, body, row); err != nil {
		return Meta{}, fmt.Errorf("schemas: decode schema id %d into %T: %w", wr.id, row, err)
	}
	m, ok := readMeta(body[at:])
	if !ok {
		return Meta{}, wr.malformed(errors.New("bad meta tail"))
	}
	return m, nil
}

// recursiveType returns the full name of a record that contains itself,
// or "".
func recursiveType(s avro.Schema) string {
	return findCycle(s, map[string]bool{}, 0)
}

func findCycle(s avro.Schema, open map[string]bool, depth int) string {
	if depth > maxDepth {
		return ""
	}
	switch t := s.(type) {
	case *avro.RefSchema:
		if open[t.Schema().FullName()] {
			return t.Schema().FullName()
		}
		return findCycle(t.Schema(), open, depth+1)
	case *avro.RecordSchema:
		if open[t.FullName()] {
			return t.FullName()
		}
		open[t.FullName()] = true
		defer delete(open, t.FullName())
		for _, f := range t.Fields() {
			if n := findCycle(f.Type(), open, depth+1); n != "" {
				return n
			}
		}
	case *avro.UnionSchema:
		for _, b := range t.Types() {
			if n := findCycle(b, open, depth+1); n != "" {
				return n
			}
		}
	case *avro.ArraySchema:
		return findCycle(t.Items(), open, depth+1)
	case *avro.MapSchema:
		return findCycle(t.Values(), open, depth+1)
	}
	return ""
}

// unskippable finds a writer field the reader would skip whose values
// hamba cannot skip: it has no skip decoder for null, so an array or map of
// null, or a null-typed field, fails to decode once the reader drops it
// (found by FuzzResolvedDecode). Such schemas are rare; refusing them up
// front beats failing on the first non-empty value.
func unskippable(reader, writer avro.Schema, path string, depth int) string {
	if depth > maxDepth {
		return ""
	}
	reader, writer = deref(reader), deref(writer)
	switch wt := writer.(type) {
	case *avro.RecordSchema:
		rt, ok := sameKind(reader, wt).(*avro.RecordSchema)
		if !ok {
			return ""
		}
		for _, wf := range wt.Fields() {
			fpath := joinPath(path, wf.Name())
			rf := readerFieldFor(rt, wf)
			if rf == nil {
				if holdsBareNull(wf.Type(), map[string]bool{}, 0) {
					return fpath
				}
				continue
			}
			if p := unskippable(rf.Type(), wf.Type(), fpath, depth+1); p != "" {
				return p
			}
		}
	case *avro.UnionSchema:
		for _, b := range wt.Types() {
			if p := unskippable(reader, b, path, depth+1); p != "" {
				return p
			}
		}
	case *avro.ArraySchema:
		if rt, ok := sameKind(reader, wt).(*avro.ArraySchema); ok {
			return unskippable(rt.Items(), wt.Items(), path+"[]", depth+1)
		}
	case *avro.MapSchema:
		if rt, ok := sameKind(reader, wt).(*avro.MapSchema); ok {
			return unskippable(rt.Values(), wt.Values(), path+"{}", depth+1)
		}
	}
	return ""
}

// readerFieldFor is fieldFor seen from the writer's side.
func readerFieldFor(r *avro.RecordSchema, wf *avro.Field) *avro.Field {
	for _, rf := range r.Fields() {
		if rf.Name() == wf.Name() {
			return rf
		}
	}
	for _, rf := range r.Fields() {
		for _, a := range rf.Aliases() {
			if a == wf.Name() {
				return rf
			}
		}
	}
	return nil
}

// holdsBareNull reports whether a value of s can contain a null that is
// not a union branch.
func holdsBareNull(s avro.Schema, seen map[string]bool, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch t := deref(s).(type) {
	case *avro.NullSchema:
		return true
	case *avro.RecordSchema:
		if seen[t.FullName()] {
			return false
		}
		seen[t.FullName()] = true
		for _, f := range t.Fields() {
			if holdsBareNull(f.Type(), seen, depth+1) {
				return true
			}
		}
	case *avro.UnionSchema:
		for _, b := range t.Types() {
			if b.Type() != avro.Null && holdsBareNull(b, seen, depth+1) {
				return true
			}
		}
	case *avro.ArraySchema:
		return holdsBareNull(t.Items(), seen, depth+1)
	case *avro.MapSchema:
		return holdsBareNull(t.Values(), seen, depth+1)
	}
	return false
}
