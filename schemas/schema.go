package schemas

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hamba/avro/v2"
)

// Meta is the bitemporal part of a published event. Times are Unix
// microseconds, the unit of Avro's timestamp-micros.
type Meta struct {
	ValidFrom  int64
	ValidTo    int64 // 0 = null: valid until further notice
	SystemFrom int64
	Deleted    bool
}

// Names of the meta fields appended to every published schema, in order.
const (
	fieldValidFrom  = "_valid_from"
	fieldValidTo    = "_valid_to"
	fieldSystemFrom = "_system_from"
	fieldDeleted    = "_deleted"
)

// metaFieldsJSON is the tail appended to a row schema's fields. It is
// spliced as JSON and the result re-parsed, so hamba alone decides the
// published schema's canonical form.
var metaFieldsJSON = []json.RawMessage{
	json.RawMessage(`{"name":"_valid_from","type":{"type":"long","logicalType":"timestamp-micros"}}`),
	json.RawMessage(`{"name":"_valid_to","type":["null",{"type":"long","logicalType":"timestamp-micros"}],"default":null}`),
	json.RawMessage(`{"name":"_system_from","type":{"type":"long","logicalType":"timestamp-micros"}}`),
	json.RawMessage(`{"name":"_deleted","type":"boolean","default":false}`),
}

// reservedFields may not appear in a row schema. _system_to is not published
// (system time is closed by the next version) but belongs to the model, so a
// row may not claim it either.
var reservedFields = map[string]bool{
	fieldValidFrom:  true,
	fieldValidTo:    true,
	fieldSystemFrom: true,
	fieldDeleted:    true,
	"_system_to":    true,
}

// Schema is an output port's schema: the row schema as written and the
// published schema derived from it.
type Schema struct {
	row     *avro.RecordSchema
	pub     *avro.RecordSchema
	pubText string
	fp      [32]byte
}

// Load reads and parses an .avsc file.
func Load(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	return Parse(path, string(b))
}

// Parse parses a row schema from text; name (usually the file) is used in
// errors.
func Parse(name, avsc string) (*Schema, error) {
	if err := checkJSON(avsc); err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	parsed, err := parseIsolated(avsc)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	row, ok := parsed.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("schemas: %s: top-level type is %s, want record", name, parsed.Type())
	}
	for _, f := range row.Fields() {
		if reservedFields[f.Name()] {
			return nil, fmt.Errorf("schemas: %s: field %q: name is reserved for Meshlet's bitemporal meta fields, rename it", name, f.Name())
		}
	}
	pub, err := withFields(row, func(fs []json.RawMessage) []json.RawMessage {
		return append(fs, metaFieldsJSON...)
	})
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: deriving published schema: %w", name, err)
	}
	return newSchema(row, pub)
}

func newSchema(row, pub *avro.RecordSchema) (*Schema, error) {
	text, err := json.Marshal(pub)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", pub.FullName(), err)
	}
	return &Schema{row: row, pub: pub, pubText: string(text), fp: sha256.Sum256(text)}, nil
}

// RowName is the full name of the row record (also the published record's).
func (s *Schema) RowName() string { return s.row.FullName() }

// Published is the canonical JSON of the published schema, the text that is
// registered. Canonical here is hamba's full serialisation: unlike Avro's
// Parsing Canonical Form it keeps defaults and logical types, which
// compatibility and consumers depend on.
func (s *Schema) Published() string { return s.pubText }

// Fingerprint is the SHA-256 of Published.
func (s *Schema) Fingerprint() [32]byte { return s.fp }

// parseIsolated parses with a private name cache: hamba's default cache is
// global, so two versions of one record would otherwise see each other.
func parseIsolated(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}

// checkJSON turns a syntax error into line and column; hamba would only
// echo the whole text back.
func checkJSON(text string) error {
	var v any
	err := json.Unmarshal([]byte(text), &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(text, se.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func lineCol(text string, off int64) (line, col int) {
	if off > int64(len(text)) {
		off = int64(len(text))
	}
	before := text[:off]
	line = strings.Count(before, "\n") + 1
	col = int(off) - strings.LastIndexByte(before, '\n')
	return line, col
}

// withFields rebuilds rec with its field list edited by edit, through JSON
// so every other attribute (namespace, doc, aliases, properties) survives.
func withFields(rec *avro.RecordSchema, edit func([]json.RawMessage) []json.RawMessage) (*avro.RecordSchema, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	var fields []json.RawMessage
	if err := json.Unmarshal(top["fields"], &fields); err != nil {
		return nil, err
	}
	if top["fields"], err = json.Marshal(edit(fields)); err != nil {
		return nil, err
	}
	if b, err = json.Marshal(top); err != nil {
		return nil, err
	}
	s, err := parseIsolated(string(b))
	if err != nil {
		return nil, err
	}
	out, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("rebuilt schema is %s, want record", s.Type())
	}
	return out, nil
}

// ParsePublished parses a published schema, as registered or as the
// runtime keeps it beside the change logs (DATADIR/schemas/<id>.avsc),
// back into a Schema; name (usually the file) is used in errors. It fails
// for a record that does not end with Meshlet's meta fields.
func ParsePublished(name, text string) (*Schema, error) {
	if err := checkJSON(text); err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	parsed, err := parseIsolated(text)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	rec, ok := parsed.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("schemas: %s: top-level type is %s, want record", name, parsed.Type())
	}
	s, err := fromPublished(rec)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", name, err)
	}
	return s, nil
}

// fromPublished recovers a Schema from a registered published schema, or
// reports why the schema does not end with Meshlet's meta fields.
func fromPublished(pub *avro.RecordSchema) (*Schema, error) {
	if !hasMetaTail(pub) {
		return nil, fmt.Errorf("%s does not end with Meshlet's meta fields", pub.FullName())
	}
	row, err := withFields(pub, func(fs []json.RawMessage) []json.RawMessage {
		return fs[:len(fs)-len(metaFieldsJSON)]
	})
	if err != nil {
		return nil, err
	}
	return newSchema(row, pub)
}

// hasMetaTail reports whether the last fields of rec have the names and
// binary shapes of the meta tail, which is all decoding relies on.
func hasMetaTail(rec *avro.RecordSchema) bool {
	fs := rec.Fields()
	n := len(fs) - len(metaFieldsJSON)
	if n < 0 {
		return false
	}
	want := []struct {
		name string
		typ  avro.Type
	}{{fieldValidFrom, avro.Long}, {fieldValidTo, avro.Union}, {fieldSystemFrom, avro.Long}, {fieldDeleted, avro.Boolean}}
	for i, w := range want {
		f := fs[n+i]
		if f.Name() != w.name || f.Type().Type() != w.typ {
			return false
		}
	}
	u := fs[n+1].Type().(*avro.UnionSchema).Types()
	return len(u) == 2 && u[0].Type() == avro.Null && u[1].Type() == avro.Long
}

// FieldInfo describes one field of the row, for catalogs and lineage.
type FieldInfo struct {
	Name string
	Type string // as messages spell it: "long", "long (timestamp-micros)", "union [null, string]"
	Doc  string
}

// RowFields lists the row's fields (without the meta fields), in order.
func (s *Schema) RowFields() []FieldInfo {
	var out []FieldInfo
	for _, f := range s.row.Fields() {
		out = append(out, FieldInfo{Name: f.Name(), Type: typeName(f.Type()), Doc: f.Doc()})
	}
	return out
}
