package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"reflect"
	"strconv"
	"strings"

	"github.com/ettle/strcase"
	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/gen"
	"golang.org/x/tools/imports"
)

// GoSource is one .avsc for GenerateGo: Name (the path, shown in the
// generated header and in errors) and Text.
type GoSource struct {
	Name string
	Text string
}

// GenerateGo turns Avro schemas into one gofmt-ed Go file of package pkg.
// hamba/avro's own generator (github.com/hamba/avro/v2/gen) writes the
// types, so they are exactly what the codec Meshlet encodes with expects:
//
//   - a struct per record, nested ones too, whose avro and json tags both
//     hold the Avro field name, so one type is a handler's Avro output and
//     also decodes a Debezium JSON row image with encoding/json;
//   - per struct, Schema, Marshal and Unmarshal methods over the full
//     schema (hamba's full serialisation, with docs, defaults and logical
//     types, not the Parsing Canonical Form), so type and schema travel
//     together and cannot drift;
//   - a string type and constants per enum.
//
// Types: int int32, long int64, float float32, double float64, bytes
// []byte, fixed [N]byte, array []T, map map[string]T; date, timestamp-* and
// local-timestamp-* time.Time, time-* time.Duration, decimal *big.Rat, uuid
// string, duration avro.LogicalDuration. ["null", T] is *T, so a nullable
// array is *[]T and a nullable decimal **big.Rat; any other union is any.
// Defaults stay in the schema: Go zero values do not carry them.
//
// Read by encoding/json, time.Time wants an RFC 3339 string (Debezium's
// ZonedTimestamp), *big.Rat a decimal string (decimal.handling.mode=string)
// and time.Duration a number of nanoseconds; Debezium's epoch numbers for
// timestamps and times need a row type of their own.
//
// A source may use named types another one defines, in any order: they are
// parsed in dependency order. Each struct's schema stands alone, every type
// it uses written out where first used: hamba's generator names a type
// defined outside the struct (by an earlier field of the parent, or by
// another source), and its avro.MustParse of that text panics as the
// package initialises.
//
// What hamba would get wrong silently, or leave to the compiler, is an
// error here naming the source: invalid JSON (line and column), an unknown
// name, one name defined two ways, two Avro names becoming one Go name
// (hamba names types by the short Avro name and keeps only the first), a
// field named like a generated method. An enum used twice is written once,
// where hamba would declare it twice.
func GenerateGo(pkg string, sources ...GoSource) ([]byte, error) {
	if !token.IsIdentifier(pkg) || token.IsKeyword(pkg) || pkg == "_" {
		return nil, fmt.Errorf("schemas: generate: package name %q is not a Go identifier", pkg)
	}
	if len(sources) == 0 {
		return nil, errors.New("schemas: generate: no schemas")
	}
	parsed, err := parseInOrder(sources)
	if err != nil {
		return nil, err
	}
	defs, err := definitions(parsed)
	if err != nil {
		return nil, err
	}
	if err := checkGoNames(defs); err != nil {
		return nil, err
	}
	g := gen.NewGenerator(pkg, map[string]gen.TagStyle{"json": gen.Original},
		gen.WithEncoders(true), // Schema, Marshal and Unmarshal: what carries the schema
		gen.WithFullSchema(true),
		gen.WithStrictTypes(true), // int32 for Avro int, as Debezium rows hold it
		gen.WithEnums(true),
		// hamba's codec reads these into time.Time; its generator has no
		// mapping of its own and would write a field without a type.
		gen.WithLogicalType(gen.LogicalType{Name: string(avro.LocalTimestampMillis), Typ: "time.Time", Import: "time"}),
		gen.WithLogicalType(gen.LogicalType{Name: string(avro.LocalTimestampMicros), Typ: "time.Time", Import: "time"}),
	)
	for _, p := range parsed {
		g.Parse(p.schema)
	}
	var raw bytes.Buffer
	if err := g.Write(&raw); err != nil {
		return nil, fmt.Errorf("schemas: generate: %w", err)
	}
	names := make([]string, len(sources))
	for i, src := range sources {
		names[i] = src.Name
	}
	schemaVars := map[string]string{} // hamba's variable per struct -> its standalone schema
	for _, d := range defs {
		if rec, ok := d.schema.(*avro.RecordSchema); ok {
			schemaVars["schema"+hambaCaser.ToPascal(rec.Name())] = d.full
		}
	}
	out, err := finishGo(raw.Bytes(), names, schemaVars)
	if err != nil {
		return nil, fmt.Errorf("schemas: generate: %w", err)
	}
	return out, nil
}

type parsedSource struct {
	source string
	schema avro.Schema
}

// parseInOrder parses every source into one private name cache, each once
// the types it uses are known: a pass parses what it can and the next
// retries the rest, until one makes no progress. hamba adds a source's
// names to the cache only when the whole source parses.
func parseInOrder(sources []GoSource) ([]parsedSource, error) {
	for _, src := range sources {
		if err := checkJSON(src.Text); err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %w", src.Name, err)
		}
	}
	cache := &avro.SchemaCache{}
	var done []parsedSource
	for pending := sources; len(pending) > 0; {
		var next []GoSource
		var errs []error
		for _, src := range pending {
			s, err := avro.ParseWithCache(src.Text, "", cache)
			if err != nil {
				next = append(next, src)
				errs = append(errs, fmt.Errorf("schemas: generate: %s: %w", src.Name, err))
				continue
			}
			switch s.(type) {
			case *avro.RecordSchema, *avro.EnumSchema, *avro.FixedSchema:
			default:
				return nil, fmt.Errorf("schemas: generate: %s: top-level type is %s, want a record (or an enum or fixed another schema uses)", src.Name, s.Type())
			}
			done = append(done, parsedSource{source: src.Name, schema: s})
		}
		if len(next) == len(pending) {
			return nil, errors.Join(errs...)
		}
		pending = next
	}
	return done, nil
}

type namedDef struct {
	schema avro.NamedSchema
	source string
	full   string // standalone JSON: the definition with every type it uses written out
}

// definitions lists the named types the sources define, each once, in the
// order hamba's generator meets them, with the schema each stands for on
// its own.
func definitions(parsed []parsedSource) ([]*namedDef, error) {
	type occurrence struct {
		schema      avro.NamedSchema
		raw, source string
	}
	var occs []occurrence
	raws := map[string]string{} // full name -> hamba's JSON of its first definition
	var visit func(s avro.Schema, source string) error
	visit = func(s avro.Schema, source string) error {
		switch t := s.(type) {
		case *avro.RecordSchema, *avro.EnumSchema, *avro.FixedSchema:
			n := t.(avro.NamedSchema)
			raw, err := json.Marshal(n)
			if err != nil {
				return fmt.Errorf("schemas: generate: %s: %s: %w", source, n.FullName(), err)
			}
			occs = append(occs, occurrence{schema: n, raw: string(raw), source: source})
			if _, ok := raws[n.FullName()]; !ok {
				raws[n.FullName()] = string(raw)
			}
			if rec, ok := t.(*avro.RecordSchema); ok {
				for _, f := range rec.Fields() {
					if err := visit(f.Type(), source); err != nil {
						return err
					}
				}
			}
		case *avro.UnionSchema:
			for _, b := range t.Types() {
				if err := visit(b, source); err != nil {
					return err
				}
			}
		case *avro.ArraySchema:
			return visit(t.Items(), source)
		case *avro.MapSchema:
			return visit(t.Values(), source)
		}
		return nil // a reference is defined where it first appeared
	}
	for _, p := range parsed {
		if err := visit(p.schema, p.source); err != nil {
			return nil, err
		}
	}
	byName := map[string]*namedDef{}
	var defs []*namedDef
	for _, o := range occs {
		full, err := standalone(o.raw, raws)
		if err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %s: %w", o.source, o.schema.FullName(), err)
		}
		if prev, ok := byName[o.schema.FullName()]; ok {
			if prev.full != full {
				return nil, fmt.Errorf("schemas: generate: %s: %s is defined differently in %s", o.source, o.schema.FullName(), prev.source)
			}
			continue
		}
		d := &namedDef{schema: o.schema, source: o.source, full: full}
		byName[o.schema.FullName()] = d
		defs = append(defs, d)
	}
	return defs, nil
}

// hambaCaser names structs and fields as hamba's generator does.
var hambaCaser = strcase.NewCaser(true, nil, nil)

// generatedMethods are what hamba's generator adds to every struct.
var generatedMethods = map[string]bool{"Schema": true, "Marshal": true, "Unmarshal": true}

// checkGoNames finds the Avro names that would become clashing or unusable
// Go identifiers, naming them as hamba's generator does: records and
// fields through strcase's Go caser, enums as they are, enum constants as
// the Pascal case of enum name and symbol.
func checkGoNames(defs []*namedDef) error {
	idents := map[string]string{} // Go identifier -> what it names
	claim := func(ident, what string) error {
		if !token.IsIdentifier(ident) {
			return fmt.Errorf("schemas: generate: %s becomes %q, not a Go identifier; rename it", what, ident)
		}
		if prev, ok := idents[ident]; ok {
			return fmt.Errorf("schemas: generate: %s and %s both become the Go identifier %s; rename one", prev, what, ident)
		}
		idents[ident] = what
		return nil
	}
	for _, d := range defs {
		what := fmt.Sprintf("%s (%s)", d.schema.FullName(), d.source)
		switch t := d.schema.(type) {
		case *avro.RecordSchema:
			name := hambaCaser.ToPascal(t.Name())
			if err := claim(name, "record "+what); err != nil {
				return err
			}
			if err := claim("schema"+name, "the schema variable of "+what); err != nil {
				return err
			}
			fields := map[string]string{}
			for _, f := range t.Fields() {
				fn := hambaCaser.ToPascal(f.Name())
				switch prev, dup := fields[fn]; {
				case !token.IsIdentifier(fn):
					return fmt.Errorf("schemas: generate: %s: field %q becomes %q, not a Go identifier; rename it", what, f.Name(), fn)
				case generatedMethods[fn]:
					return fmt.Errorf("schemas: generate: %s: field %q becomes the Go field %s, which clashes with the generated method %s; rename the field", what, f.Name(), fn, fn)
				case dup:
					return fmt.Errorf("schemas: generate: %s: fields %q and %q both become the Go field %s; rename one", what, prev, f.Name(), fn)
				}
				fields[fn] = f.Name()
			}
		case *avro.EnumSchema:
			name := t.Name()
			if token.IsKeyword(name) || types.Universe.Lookup(name) != nil {
				return fmt.Errorf("schemas: generate: enum %s: hamba's generator names the Go type %s, which Go reserves; rename the enum", what, name)
			}
			if err := claim(name, "enum "+what); err != nil {
				return err
			}
			for _, sym := range t.Symbols() {
				if err := claim(strcase.ToPascal(name+sym), fmt.Sprintf("symbol %s of enum %s", sym, what)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// hambaHeader opens what hamba's generator writes; meshlet gen's header
// replaces it.
const hambaHeader = "// Code generated by avro/gen. DO NOT EDIT.\n"

// finishGo puts Meshlet's header on hamba's output, drops the enums hamba
// repeats, gives each struct its standalone schema, refuses a field hamba
// left without a type, and formats the file as goimports does, without its
// search for missing imports.
func finishGo(raw []byte, sources []string, schemaVars map[string]string) ([]byte, error) {
	body, ok := bytes.CutPrefix(raw, []byte(hambaHeader))
	if !ok {
		return nil, fmt.Errorf("hamba's generator output does not start with %q: a version Meshlet does not know?", strings.TrimSpace(hambaHeader))
	}
	var src bytes.Buffer
	src.WriteString("// Code generated by meshlet gen. DO NOT EDIT.\n")
	fmt.Fprintf(&src, "// Schemas: %s (hamba/avro gen, full schema).\n\n", strings.Join(sources, ", "))
	src.Write(body)

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src.Bytes(), parser.ParseComments)
	if err != nil {
		var list scanner.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			lines := strings.Split(src.String(), "\n")
			if n := list[0].Pos.Line; n >= 1 && n <= len(lines) {
				return nil, fmt.Errorf("hamba's generator wrote Go that does not parse (%w): %s", err, strings.TrimSpace(lines[n-1]))
			}
		}
		return nil, fmt.Errorf("hamba's generator wrote Go that does not parse: %w", err)
	}
	dropRepeatedEnums(f)
	if err := setSchemas(f, schemaVars); err != nil {
		return nil, err
	}
	if err := checkFieldTypes(f); err != nil {
		return nil, err
	}
	var printed bytes.Buffer
	if err := format.Node(&printed, fset, f); err != nil {
		return nil, fmt.Errorf("formatting generated code: %w", err)
	}
	out, err := imports.Process("", printed.Bytes(), &imports.Options{FormatOnly: true, Comments: true, TabIndent: true, TabWidth: 8})
	if err != nil {
		return nil, fmt.Errorf("formatting generated code: %w", err)
	}
	return out, nil
}

// dropRepeatedEnums keeps the first of each enum's type and constants:
// hamba's generator writes an enum again wherever a schema uses it by name.
// checkGoNames has made sure a repeated type name is a repeated enum.
func dropRepeatedEnums(f *ast.File) {
	seen := map[string]bool{}
	kept := f.Decls[:0]
	dropConsts := false
	for _, d := range f.Decls {
		gd, _ := d.(*ast.GenDecl)
		if dropConsts && gd != nil && gd.Tok == token.CONST {
			dropConsts = false
			continue
		}
		dropConsts = false
		if gd != nil && gd.Tok == token.TYPE && len(gd.Specs) == 1 {
			name := gd.Specs[0].(*ast.TypeSpec).Name.Name
			if seen[name] {
				dropConsts = true
				continue
			}
			seen[name] = true
		}
		kept = append(kept, d)
	}
	f.Decls = kept
}

// setSchemas replaces the schema text in each `var schemaX =
// avro.MustParse(...)` hamba writes with the standalone one.
func setSchemas(f *ast.File, schemaVars map[string]string) error {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || len(vs.Values) != 1 {
				continue
			}
			name := vs.Names[0].Name
			call, ok := vs.Values[0].(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				continue
			}
			text, ok := schemaVars[name]
			if !ok {
				return fmt.Errorf("hamba's generator wrote %s, for no record Meshlet knows", name)
			}
			call.Args[0] = &ast.BasicLit{ValuePos: call.Args[0].Pos(), Kind: token.STRING, Value: goString(text)}
		}
	}
	return nil
}

// checkFieldTypes refuses a struct field without a name: hamba's generator
// writes an empty type for an Avro type it cannot map (a bare null), which
// Go reads as an embedded field.
func checkFieldTypes(f *ast.File) error {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, fld := range st.Fields.List {
				if len(fld.Names) > 0 {
					continue
				}
				field := "?"
				if fld.Tag != nil {
					if tag, err := strconv.Unquote(fld.Tag.Value); err == nil {
						field = reflect.StructTag(tag).Get("avro")
					}
				}
				return fmt.Errorf("%s: field %q: hamba's generator has no Go type for its Avro type (a null outside a union?)", ts.Name.Name, field)
			}
		}
	}
	return nil
}

// standalone rewrites hamba's JSON of a schema so that it parses on its
// own: each named type it uses but does not define is written out in full
// where it is first used, from raws. hamba writes a type by name wherever
// it was defined earlier in the enclosing schema, so a nested record's
// schema may name an enum its parent defined; parsed alone, as hamba's
// generated code does, that fails with "unknown type" as the package
// initialises. hamba's JSON gives every name in full, so no namespace
// needs resolving here.
func standalone(raw string, raws map[string]string) (string, error) {
	x := &inliner{raws: raws, defined: map[string]bool{}}
	out, err := x.typ([]byte(raw))
	return string(out), err
}

type inliner struct {
	raws    map[string]string
	defined map[string]bool // named types written so far
}

var avroPrimitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true, "float": true, "double": true, "bytes": true, "string": true,
}

// typ rewrites one type: a name, a union or a type object.
func (x *inliner) typ(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("empty type")
	}
	switch raw[0] {
	case '"':
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return nil, err
		}
		if avroPrimitives[name] || x.defined[name] {
			return raw, nil
		}
		def, ok := x.raws[name]
		if !ok {
			return nil, fmt.Errorf("no definition of %s", name)
		}
		return x.typ([]byte(def))
	case '[':
		var branches []json.RawMessage
		if err := json.Unmarshal(raw, &branches); err != nil {
			return nil, err
		}
		out := []byte{'['}
		for i, b := range branches {
			t, err := x.typ(b)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, t...)
		}
		return append(out, ']'), nil
	case '{':
		members, err := jsonMembers(raw)
		if err != nil {
			return nil, err
		}
		var kind, name string
		for _, m := range members {
			switch m.key {
			case "type":
				_ = json.Unmarshal(m.value, &kind) // not a string: a type written as an object or union
			case "name":
				if err := json.Unmarshal(m.value, &name); err != nil {
					return nil, err
				}
			}
		}
		switch kind {
		case "record", "error", "enum", "fixed":
			x.defined[name] = true // before the fields: a record may use itself
		}
		for i, m := range members {
			switch {
			case m.key == "fields" && (kind == "record" || kind == "error"):
				members[i].value, err = x.fields(m.value)
			case m.key == "items" && kind == "array", m.key == "values" && kind == "map", m.key == "type" && kind == "":
				members[i].value, err = x.typ(m.value)
			}
			if err != nil {
				return nil, err
			}
		}
		return writeMembers(members)
	}
	return raw, nil
}

func (x *inliner) fields(raw []byte) ([]byte, error) {
	var fields []json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	out := []byte{'['}
	for i, f := range fields {
		members, err := jsonMembers(f)
		if err != nil {
			return nil, err
		}
		for j, m := range members {
			if m.key == "type" {
				if members[j].value, err = x.typ(m.value); err != nil {
					return nil, err
				}
			}
		}
		b, err := writeMembers(members)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

type jsonMember struct {
	key   string
	value json.RawMessage
}

// jsonMembers reads a JSON object's members in their order, which
// map[string]any would lose.
func jsonMembers(raw []byte) ([]jsonMember, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %.40s", raw)
	}
	var members []jsonMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		members = append(members, jsonMember{key: key, value: value})
	}
	return members, nil
}

func writeMembers(members []jsonMember) ([]byte, error) {
	out := []byte{'{'}
	for i, m := range members {
		key, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(append(append(out, key...), ':'), m.value...)
	}
	return append(out, '}'), nil
}

// goString quotes s as a raw string when it can, for a readable schema.
func goString(s string) string {
	if strings.ContainsAny(s, "`\r") {
		return strconv.Quote(s)
	}
	return "`" + s + "`"
}
