package schemas

import (
	"github.com/hamba/avro/v2"
)

// Field describes one field of a published schema, for packages that must
// not see Avro types (contracts, docs).
type Field struct {
	Name string
	Doc  string
	// Type is the Avro type of a value, the null branch of a nullable union
	// removed: null, boolean, int, long, float, double, bytes, string,
	// record, enum, array, map, fixed, or union for any other union.
	Type string
	// Logical is the logical type, if any: timestamp-micros, date, decimal, uuid...
	Logical string
	// Physical spells the type as Avro does, e.g. "long (timestamp-micros)",
	// "enum shop.State", "union [null, string]".
	Physical   string
	Nullable   bool // a union with null and one other branch
	HasDefault bool
	// Default is the field's default as parsed (nil for a null default or
	// none: see HasDefault); numbers keep their Avro type's Go form.
	Default any
	// Precision and Scale are a decimal's; Size is a fixed's byte count.
	Precision, Scale, Size int
	Meta                   bool     // one of the bitemporal fields Meshlet appends
	Symbols                []string // enum symbols
	Fields                 []Field  // a record's fields
	Items                  *Field   // an array's items or a map's values (Name empty)
}

// Doc is the record's doc string.
func (s *Schema) Doc() string { return s.row.Doc() }

// Fields describes the published record: the row's fields, then the meta
// fields.
func (s *Schema) Fields() []Field {
	n := len(s.pub.Fields()) - len(metaFieldsJSON)
	out := make([]Field, 0, len(s.pub.Fields()))
	for i, f := range s.pub.Fields() {
		d := describe(f.Type(), map[string]bool{}, 0)
		d.Name, d.Doc, d.HasDefault, d.Default, d.Meta = f.Name(), f.Doc(), f.HasDefault(), f.Default(), i >= n
		if d.Meta && d.Doc == "" {
			d.Doc = metaDocs[f.Name()]
		}
		out = append(out, d)
	}
	return out
}

var metaDocs = map[string]string{
	fieldValidFrom:  "Start of the valid-time period (inclusive): when the fact became true in the business.",
	fieldValidTo:    "End of the valid-time period (exclusive); null while valid until further notice.",
	fieldSystemFrom: "When Meshlet recorded this version (system time, strictly increasing per change-log partition).",
	fieldDeleted:    "True when this version retracts the entity.",
}

// describe builds the Field of type s; open guards recursive records.
func describe(s avro.Schema, open map[string]bool, depth int) Field {
	s = deref(s)
	f := Field{Type: string(s.Type()), Physical: typeName(s)}
	if depth > maxDepth {
		return f
	}
	switch t := s.(type) {
	case *avro.UnionSchema:
		if t.Nullable() {
			_, i := t.Indices()
			inner := describe(t.Types()[i], open, depth+1)
			inner.Nullable, inner.Physical = true, f.Physical
			return inner
		}
	case *avro.PrimitiveSchema:
		if l := t.Logical(); l != nil {
			f.Logical = string(l.Type())
			f.decimal(l)
		}
	case *avro.FixedSchema:
		f.Size = t.Size()
		if l := t.Logical(); l != nil {
			f.Logical = string(l.Type())
			f.decimal(l)
		}
	case *avro.EnumSchema:
		f.Symbols = append([]string(nil), t.Symbols()...)
	case *avro.RecordSchema:
		if open[t.FullName()] {
			return f // recursion: name the type, do not expand it again
		}
		open[t.FullName()] = true
		defer delete(open, t.FullName())
		for _, rf := range t.Fields() {
			d := describe(rf.Type(), open, depth+1)
			d.Name, d.Doc, d.HasDefault, d.Default = rf.Name(), rf.Doc(), rf.HasDefault(), rf.Default()
			f.Fields = append(f.Fields, d)
		}
	case *avro.ArraySchema:
		items := describe(t.Items(), open, depth+1)
		f.Items = &items
	case *avro.MapSchema:
		values := describe(t.Values(), open, depth+1)
		f.Items = &values
	}
	return f
}

func (f *Field) decimal(l avro.LogicalSchema) {
	if d, ok := l.(*avro.DecimalLogicalSchema); ok {
		f.Precision, f.Scale = d.Precision(), d.Scale()
	}
}
