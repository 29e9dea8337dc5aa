package schemas

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compat is a subject's compatibility level, named as in Confluent's API.
type Compat string

// The seven levels. "Read" means Avro schema resolution: a reader schema
// reads data written with a writer schema.
const (
	// CompatBackward: the new schema reads data written with the latest
	// version, so consumers may upgrade before producers.
	CompatBackward Compat = "BACKWARD"
	// CompatBackwardTransitive: the new schema reads data written with
	// every registered version.
	CompatBackwardTransitive Compat = "BACKWARD_TRANSITIVE"
	// CompatForward: the latest version reads data written with the new
	// schema, so producers may upgrade before consumers.
	CompatForward Compat = "FORWARD"
	// CompatForwardTransitive: every registered version reads data written
	// with the new schema.
	CompatForwardTransitive Compat = "FORWARD_TRANSITIVE"
	// CompatFull: BACKWARD and FORWARD.
	CompatFull Compat = "FULL"
	// CompatFullTransitive: BACKWARD_TRANSITIVE and FORWARD_TRANSITIVE.
	CompatFullTransitive Compat = "FULL_TRANSITIVE"
	// CompatNone: no check.
	CompatNone Compat = "NONE"
)

// compatRule is what a level checks. Levels differ only in direction and
// in how far back they look.
type compatRule struct {
	backward   bool // new schema reads old data
	forward    bool // old schemas read new data
	transitive bool // every registered version, not only the latest
}

var compatRules = map[Compat]compatRule{
	CompatBackward:           {backward: true},
	CompatBackwardTransitive: {backward: true, transitive: true},
	CompatForward:            {forward: true},
	CompatForwardTransitive:  {forward: true, transitive: true},
	CompatFull:               {backward: true, forward: true},
	CompatFullTransitive:     {backward: true, forward: true, transitive: true},
	CompatNone:               {},
}

// Compats lists the levels in the order Confluent documents them.
func Compats() []Compat {
	return []Compat{CompatBackward, CompatBackwardTransitive, CompatForward, CompatForwardTransitive,
		CompatFull, CompatFullTransitive, CompatNone}
}

// ErrUnknownLevel classes a compatibility level outside the seven: a
// configuration mistake, never worth a retry.
var ErrUnknownLevel = errors.New("unknown compatibility level")

// ParseCompat returns the level named s, exactly as Confluent spells it.
func ParseCompat(s string) (Compat, error) {
	c := Compat(s)
	return c, c.Validate()
}

// Validate reports whether c is one of the seven levels, and lists them if not.
func (c Compat) Validate() error {
	if _, ok := compatRules[c]; ok {
		return nil
	}
	names := make([]string, 0, len(compatRules))
	for _, l := range Compats() {
		names = append(names, string(l))
	}
	return fmt.Errorf("%w %q: want one of %s", ErrUnknownLevel, string(c), strings.Join(names, ", "))
}

// CompatError is one refusal: the new schema and one registered version do
// not resolve in the direction the level requires. It matches
// ErrIncompatible with errors.Is.
type CompatError struct {
	Subject string
	Level   Compat
	Version int // the registered version compared against
	ID      int // its schema id
	// Forward is false when the new schema cannot read data written with
	// Version, true when Version cannot read data written with the new one.
	Forward  bool
	Mismatch Mismatch
}

func (e *CompatError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "subject %s: %s: ", e.Subject, e.Level)
	if e.Forward {
		fmt.Fprintf(&b, "version %d cannot read the new schema: ", e.Version)
	} else {
		fmt.Fprintf(&b, "new schema cannot read version %d: ", e.Version)
	}
	b.WriteString(e.Mismatch.describe(e.roles()))
	return b.String()
}

func (e *CompatError) Unwrap() error { return ErrIncompatible }

// roles names the reader and the writer for messages.
func (e *CompatError) roles() roles {
	old := "version " + strconv.Itoa(e.Version)
	if e.Forward {
		return roles{reader: old, writer: "the new schema", readerIsNew: false}
	}
	return roles{reader: "the new schema", writer: old, readerIsNew: true}
}

type roles struct {
	reader, writer string
	readerIsNew    bool
}

// MismatchKind is the Avro resolution rule a mismatch breaks.
type MismatchKind int

const (
	// MissingDefault: a field the reader declares is absent from the
	// writer and has no default to fill it.
	MissingDefault MismatchKind = iota + 1
	// TypeChanged: the writer's type is not the reader's and no Avro
	// promotion (int->long->float->double, string<->bytes) bridges them.
	TypeChanged
	// UnionBranch: a branch of the writer's union cannot be read.
	UnionBranch
	// NoUnionBranch: no branch of the reader's union reads the writer's type.
	NoUnionBranch
	// NameChanged: a named type's name differs and no reader alias covers it.
	NameChanged
	// EnumSymbol: the writer has a symbol the reader lacks, and the reader
	// enum has no default.
	EnumSymbol
	// FixedSize: the fixed sizes differ.
	FixedSize
)

// Mismatch is one place where a reader schema cannot read a writer's data.
type Mismatch struct {
	Kind   MismatchKind
	Path   string // dotted field path; "[]" is an array item, "{}" a map value; "" the record itself
	Reader string // the reader's type, as Avro spells it
	Writer string // the writer's type
	Detail string // the symbol, the new name of a renamed field, ...
}

func (m Mismatch) describe(r roles) string {
	where := "the record"
	if m.Path != "" {
		where = fmt.Sprintf("field %q", m.Path)
	}
	switch m.Kind {
	case MissingDefault:
		if r.readerIsNew {
			return where + " has no default (added required field)"
		}
		if m.Detail != "" {
			return fmt.Sprintf("%s has no default in %s (renamed to %q; aliases only help readers of the new schema)", where, r.reader, m.Detail)
		}
		return fmt.Sprintf("%s has no default in %s (removed field without default)", where, r.reader)
	case TypeChanged:
		return fmt.Sprintf("%s: %s wrote %s, %s reads %s (no promotion from %s to %s)",
			where, r.writer, m.Writer, r.reader, m.Reader, m.Writer, m.Reader)
	case UnionBranch:
		return fmt.Sprintf("%s: %s may write %s (a branch of its union), which %s cannot read as %s",
			where, r.writer, m.Writer, r.reader, m.Reader)
	case NoUnionBranch:
		return fmt.Sprintf("%s: %s wrote %s, and no branch of %s's %s reads it", where, r.writer, m.Writer, r.reader, m.Reader)
	case NameChanged:
		return fmt.Sprintf("%s: %s wrote %s, %s reads %s (renamed type without an alias)", where, r.writer, m.Writer, r.reader, m.Reader)
	case EnumSymbol:
		return fmt.Sprintf("%s: %s may write symbol %q, which %s's %s lacks and it has no default", where, r.writer, m.Detail, r.reader, m.Reader)
	case FixedSize:
		return fmt.Sprintf("%s: %s wrote %s, %s reads %s (fixed sizes differ)", where, r.writer, m.Writer, r.reader, m.Reader)
	}
	return where + ": incompatible"
}

// maxMismatches bounds what one comparison collects; a schema rewritten
// from scratch would otherwise list every field.
const maxMismatches = 16

// resolve lists where reader cannot read data written with writer, by the
// Avro specification's schema resolution rules, as Confluent's checker
// (Avro's SchemaCompatibility) applies them: fields match by name or by a
// reader field's alias, named types by unqualified name or a reader alias
// of the writer's full name, logical types are not compared.
func resolve(reader, writer avro.Schema) []Mismatch {
	r := resolver{seen: map[[2]avro.Schema]bool{}}
	r.check(reader, writer, "", 0)
	return r.out
}

type resolver struct {
	seen map[[2]avro.Schema]bool // record pairs under check, for recursive schemas
	out  []Mismatch
}

func (r *resolver) add(m Mismatch) {
	if len(r.out) < maxMismatches {
		r.out = append(r.out, m)
	}
}

// readable reports whether reader reads writer, without recording why not.
func (r *resolver) readable(reader, writer avro.Schema, depth int) bool {
	sub := resolver{seen: r.seen}
	sub.check(reader, writer, "", depth)
	return len(sub.out) == 0
}

func (r *resolver) check(reader, writer avro.Schema, path string, depth int) {
	if depth > maxDepth {
		return // the parser already bounds nesting; this guards recursion only
	}
	reader, writer = deref(reader), deref(writer)
	if wu, ok := writer.(*avro.UnionSchema); ok {
		// Every branch the writer may have chosen must be readable.
		for _, b := range wu.Types() {
			if r.readable(reader, b, depth+1) {
				continue
			}
			// Explain through the reader type of the same kind, if any:
			// a record that lost a default says more than "a branch".
			if rb := sameKind(reader, b); rb != nil {
				r.check(rb, b, path, depth+1)
				continue
			}
			r.add(Mismatch{Kind: UnionBranch, Path: path, Reader: typeName(reader), Writer: typeName(b)})
		}
		return
	}
	if ru, ok := reader.(*avro.UnionSchema); ok {
		for _, b := range ru.Types() {
			if r.readable(b, writer, depth+1) {
				return
			}
		}
		if rb := sameKind(reader, writer); rb != nil {
			r.check(rb, writer, path, depth+1)
			return
		}
		r.add(Mismatch{Kind: NoUnionBranch, Path: path, Reader: typeName(reader), Writer: typeName(writer)})
		return
	}
	if reader.Type() != writer.Type() {
		if !promotable(writer.Type(), reader.Type()) {
			r.add(Mismatch{Kind: TypeChanged, Path: path, Reader: typeName(reader), Writer: typeName(writer)})
		}
		return
	}
	switch rd := reader.(type) {
	case *avro.RecordSchema:
		wr := writer.(*avro.RecordSchema)
		if !namesMatch(rd, wr) {
			r.add(Mismatch{Kind: NameChanged, Path: path, Reader: typeName(rd), Writer: typeName(wr)})
			return
		}
		key := [2]avro.Schema{rd, wr}
		if r.seen[key] {
			return
		}
		r.seen[key] = true
		defer delete(r.seen, key)
		for _, rf := range rd.Fields() {
			fpath := joinPath(path, rf.Name())
			wf := fieldFor(wr, rf)
			if wf == nil {
				if !rf.HasDefault() {
					r.add(Mismatch{Kind: MissingDefault, Path: fpath, Reader: typeName(rf.Type()), Detail: renamedTo(wr, rf.Name())})
				}
				continue
			}
			r.check(rf.Type(), wf.Type(), fpath, depth+1)
		}
	case *avro.EnumSchema:
		we := writer.(*avro.EnumSchema)
		if !namesMatch(rd, we) {
			r.add(Mismatch{Kind: NameChanged, Path: path, Reader: typeName(rd), Writer: typeName(we)})
			return
		}
		if rd.HasDefault() {
			return
		}
		have := make(map[string]bool, len(rd.Symbols()))
		for _, s := range rd.Symbols() {
			have[s] = true
		}
		for _, s := range we.Symbols() {
			if !have[s] {
				r.add(Mismatch{Kind: EnumSymbol, Path: path, Reader: typeName(rd), Writer: typeName(we), Detail: s})
			}
		}
	case *avro.FixedSchema:
		wf := writer.(*avro.FixedSchema)
		if !namesMatch(rd, wf) {
			r.add(Mismatch{Kind: NameChanged, Path: path, Reader: typeName(rd), Writer: typeName(wf)})
			return
		}
		if rd.Size() != wf.Size() {
			r.add(Mismatch{Kind: FixedSize, Path: path, Reader: typeName(rd), Writer: typeName(wf)})
		}
	case *avro.ArraySchema:
		r.check(rd.Items(), writer.(*avro.ArraySchema).Items(), path+"[]", depth+1)
	case *avro.MapSchema:
		r.check(rd.Values(), writer.(*avro.MapSchema).Values(), path+"{}", depth+1)
	}
}

// sameKind returns the type in reader (a union's branch, or reader itself)
// of writer's kind and name, or nil.
func sameKind(reader, writer avro.Schema) avro.Schema {
	cands := []avro.Schema{reader}
	if u, ok := reader.(*avro.UnionSchema); ok {
		cands = u.Types()
	}
	for _, c := range cands {
		c = deref(c)
		if c.Type() != writer.Type() {
			continue
		}
		rn, ok1 := c.(avro.NamedSchema)
		wn, ok2 := writer.(avro.NamedSchema)
		if !ok1 || !ok2 || namesMatch(rn, wn) {
			return c
		}
	}
	return nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// promotable is the Avro specification's list of writer-to-reader
// promotions.
func promotable(writer, reader avro.Type) bool {
	switch writer {
	case avro.Int:
		return reader == avro.Long || reader == avro.Float || reader == avro.Double
	case avro.Long:
		return reader == avro.Float || reader == avro.Double
	case avro.Float:
		return reader == avro.Double
	case avro.String:
		return reader == avro.Bytes
	case avro.Bytes:
		return reader == avro.String
	}
	return false
}

func namesMatch(reader, writer avro.NamedSchema) bool {
	if reader.Name() == writer.Name() {
		return true
	}
	for _, a := range reader.Aliases() {
		if a == writer.FullName() {
			return true
		}
	}
	return false
}

// renamedTo finds a writer field that declares name as an alias: the field
// was renamed, which an old reader cannot follow.
func renamedTo(w *avro.RecordSchema, name string) string {
	for _, wf := range w.Fields() {
		for _, a := range wf.Aliases() {
			if a == name {
				return wf.Name()
			}
		}
	}
	return ""
}

// typeName spells a type for messages: "long", "long (timestamp-micros)",
// "record com.example.Order", "union [null, string]".
func typeName(s avro.Schema) string {
	s = deref(s)
	switch t := s.(type) {
	case *avro.RecordSchema:
		return "record " + t.FullName()
	case *avro.EnumSchema:
		return "enum " + t.FullName()
	case *avro.FixedSchema:
		return fmt.Sprintf("fixed %s (%d bytes)", t.FullName(), t.Size())
	case *avro.ArraySchema:
		return "array of " + typeName(t.Items())
	case *avro.MapSchema:
		return "map of " + typeName(t.Values())
	case *avro.UnionSchema:
		parts := make([]string, len(t.Types()))
		for i, b := range t.Types() {
			parts[i] = typeName(b)
		}
		return "union [" + strings.Join(parts, ", ") + "]"
	case *avro.PrimitiveSchema:
		if l := t.Logical(); l != nil {
			return fmt.Sprintf("%s (%s)", t.Type(), l.Type())
		}
	}
	return string(s.Type())
}
