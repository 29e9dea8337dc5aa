package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/hamba/avro/v2"
)

// GoSource is one .avsc for GenerateGo: Name (the path, shown in the
// generated header and in errors) and Text.
type GoSource struct {
	Name string
	Text string
}

// GenerateGo turns record schemas into Go types for handler input and
// output, in one gofmt-ed file of package pkg:
//
//   - a struct per record (nested ones too), with avro and json tags, so
//     the same type encodes to Avro and decodes a Debezium JSON row image;
//   - a string type and constants per enum;
//   - per top-level record, a constant <Type>Schema holding the full
//     schema (hamba's canonical JSON, defaults and logical types kept), so
//     the struct and its schema travel together and cannot drift.
//
// Types map as hamba/avro's codec expects them: int int32, long int64,
// float float32, double float64, bytes []byte, fixed [N]byte, array []T,
// map map[string]T; timestamp-*, local-timestamp-* and date time.Time,
// time-* time.Duration, decimal *big.Rat; ["null", T] is *T (a slice or
// map stays as is, nil being null); any other union is any. Defaults are
// the schema's business: Go zero values do not carry them.
//
// The layout follows hamba's own generator (github.com/hamba/avro/v2/gen),
// which this module cannot use yet because its dependencies are not in
// go.sum.
func GenerateGo(pkg string, sources ...GoSource) ([]byte, error) {
	if !token.IsIdentifier(pkg) || token.IsKeyword(pkg) {
		return nil, fmt.Errorf("schemas: generate: package name %q is not a Go identifier", pkg)
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("schemas: generate: no schemas")
	}
	g := &goGen{named: map[string]*goNamed{}, idents: map[string]string{}, imports: map[string]bool{}}
	var names []string
	for _, src := range sources {
		names = append(names, src.Name)
		if err := checkJSON(src.Text); err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %w", src.Name, err)
		}
		parsed, err := parseIsolated(src.Text)
		if err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %w", src.Name, err)
		}
		rec, ok := parsed.(*avro.RecordSchema)
		if !ok {
			return nil, fmt.Errorf("schemas: generate: %s: top-level type is %s, want record", src.Name, parsed.Type())
		}
		compact, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %w", src.Name, err)
		}
		var text bytes.Buffer
		if err := json.Indent(&text, compact, "", "  "); err != nil {
			return nil, fmt.Errorf("schemas: generate: %s: %w", src.Name, err)
		}
		if err := g.collect(rec, src.Name); err != nil {
			return nil, err
		}
		typ := g.named[rec.FullName()].goName
		if err := g.claim(typ+"Schema", src.Name+" schema constant"); err != nil {
			return nil, err
		}
		g.tops = append(g.tops, goTop{typ: typ, source: src.Name, text: text.String()})
	}
	out, err := g.render(pkg, names)
	if err != nil {
		return nil, fmt.Errorf("schemas: generate: %w", err)
	}
	return out, nil
}

type goGen struct {
	named   map[string]*goNamed // by Avro full name
	order   []*goNamed          // in order of first appearance
	idents  map[string]string   // Go identifier -> what claimed it
	imports map[string]bool
	tops    []goTop
}

type goNamed struct {
	goName string
	schema avro.NamedSchema
	text   string // canonical JSON, to tell a redefinition from a reuse
}

type goTop struct {
	typ, source, text string
}

func (g *goGen) claim(ident, what string) error {
	if prev, ok := g.idents[ident]; ok {
		return fmt.Errorf("schemas: generate: %s and %s both become the Go identifier %s; rename one", prev, what, ident)
	}
	g.idents[ident] = what
	return nil
}

// collect registers every named type reachable from s.
func (g *goGen) collect(s avro.Schema, source string) error {
	switch t := s.(type) {
	case *avro.RefSchema:
		return nil // defined where it first appeared
	case *avro.RecordSchema, *avro.EnumSchema, *avro.FixedSchema:
		n := t.(avro.NamedSchema)
		text, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if prev, ok := g.named[n.FullName()]; ok {
			if prev.text != string(text) {
				return fmt.Errorf("schemas: generate: %s: %s is defined differently in two schemas", source, n.FullName())
			}
			return nil
		}
		gn := &goNamed{goName: goIdent(n.Name()), schema: n, text: string(text)}
		if _, fixed := t.(*avro.FixedSchema); !fixed {
			if err := g.claim(gn.goName, n.FullName()); err != nil {
				return err
			}
		}
		g.named[n.FullName()] = gn
		g.order = append(g.order, gn)
		if rec, ok := t.(*avro.RecordSchema); ok {
			for _, f := range rec.Fields() {
				if err := g.collect(f.Type(), source); err != nil {
					return err
				}
			}
		}
	case *avro.UnionSchema:
		for _, b := range t.Types() {
			if err := g.collect(b, source); err != nil {
				return err
			}
		}
	case *avro.ArraySchema:
		return g.collect(t.Items(), source)
	case *avro.MapSchema:
		return g.collect(t.Values(), source)
	}
	return nil
}

// goType is the Go type a value of s decodes into.
func (g *goGen) goType(s avro.Schema) string {
	switch t := s.(type) {
	case *avro.RefSchema:
		return g.goType(t.Schema())
	case *avro.RecordSchema, *avro.EnumSchema:
		return g.named[t.(avro.NamedSchema).FullName()].goName
	case *avro.FixedSchema:
		if l := t.Logical(); l != nil && l.Type() == avro.Decimal {
			g.imports["math/big"] = true
			return "*big.Rat"
		}
		return fmt.Sprintf("[%d]byte", t.Size())
	case *avro.ArraySchema:
		return "[]" + g.goType(t.Items())
	case *avro.MapSchema:
		return "map[string]" + g.goType(t.Values())
	case *avro.UnionSchema:
		if t.Nullable() {
			_, i := t.Indices()
			inner := g.goType(t.Types()[i])
			if strings.HasPrefix(inner, "*") || strings.HasPrefix(inner, "[]") || strings.HasPrefix(inner, "map[") {
				return inner
			}
			return "*" + inner
		}
		return "any"
	case *avro.PrimitiveSchema:
		if l := t.Logical(); l != nil {
			switch l.Type() {
			case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros, avro.Date:
				g.imports["time"] = true
				return "time.Time"
			case avro.TimeMillis, avro.TimeMicros:
				g.imports["time"] = true
				return "time.Duration"
			case avro.Decimal:
				g.imports["math/big"] = true
				return "*big.Rat"
			}
		}
		switch t.Type() {
		case avro.Boolean:
			return "bool"
		case avro.Int:
			return "int32"
		case avro.Long:
			return "int64"
		case avro.Float:
			return "float32"
		case avro.Double:
			return "float64"
		case avro.String:
			return "string"
		case avro.Bytes:
			return "[]byte"
		}
	}
	return "any"
}

func (g *goGen) render(pkg string, sources []string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by meshlet gen from %s. DO NOT EDIT.\n\npackage %s\n\n", strings.Join(sources, ", "), pkg)
	var body bytes.Buffer
	for _, top := range g.tops {
		fmt.Fprintf(&body, "// %sSchema is the full Avro schema %s was generated from (%s).\n", top.typ, top.typ, top.source)
		fmt.Fprintf(&body, "const %sSchema = %s\n\n", top.typ, goString(top.text))
	}
	for _, n := range g.order {
		if err := g.renderNamed(&body, n); err != nil {
			return nil, err
		}
	}
	if len(g.imports) > 0 {
		imps := make([]string, 0, len(g.imports))
		for imp := range g.imports {
			imps = append(imps, strconv.Quote(imp))
		}
		slices.Sort(imps)
		fmt.Fprintf(&b, "import (\n%s\n)\n\n", strings.Join(imps, "\n"))
	}
	b.Write(body.Bytes())
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting generated code: %w", err)
	}
	return out, nil
}

func (g *goGen) renderNamed(b *bytes.Buffer, n *goNamed) error {
	switch t := n.schema.(type) {
	case *avro.RecordSchema:
		writeDoc(b, "", fmt.Sprintf("%s is the Avro record %s.", n.goName, t.FullName()), t.Doc())
		fmt.Fprintf(b, "type %s struct {\n", n.goName)
		seen := map[string]string{}
		for _, f := range t.Fields() {
			name := goIdent(f.Name())
			if prev, dup := seen[name]; dup {
				return fmt.Errorf("%s: fields %q and %q both become the Go field %s; rename one", t.FullName(), prev, f.Name(), name)
			}
			seen[name] = f.Name()
			writeDoc(b, "\t", "", f.Doc())
			fmt.Fprintf(b, "\t%s %s `avro:%q json:%q`\n", name, g.goType(f.Type()), f.Name(), f.Name())
		}
		b.WriteString("}\n\n")
	case *avro.EnumSchema:
		writeDoc(b, "", fmt.Sprintf("%s is the Avro enum %s.", n.goName, t.FullName()), t.Doc())
		fmt.Fprintf(b, "type %s string\n\n", n.goName)
		if len(t.Symbols()) > 0 {
			b.WriteString("const (\n")
			for _, sym := range t.Symbols() {
				ident := n.goName + goIdent(strings.ToLower(sym))
				if err := g.claim(ident, t.FullName()+" symbol "+sym); err != nil {
					return err
				}
				fmt.Fprintf(b, "\t%s %s = %q\n", ident, n.goName, sym)
			}
			b.WriteString(")\n\n")
		}
	}
	return nil
}

// writeDoc writes head, then doc as a second paragraph, as comment lines.
func writeDoc(b *bytes.Buffer, indent, head, doc string) {
	var lines []string
	if head != "" {
		lines = append(lines, head)
	}
	if doc = strings.TrimSpace(doc); doc != "" {
		if head != "" {
			lines = append(lines, "")
		}
		lines = append(lines, strings.Split(doc, "\n")...)
	}
	for _, line := range lines {
		if line = strings.TrimRight(line, " \t"); line == "" {
			fmt.Fprintf(b, "%s//\n", indent)
			continue
		}
		fmt.Fprintf(b, "%s// %s\n", indent, line)
	}
}

// goString quotes s as a raw string when it can, for a readable schema.
func goString(s string) string {
	if strings.ContainsAny(s, "`\r") {
		return strconv.Quote(s)
	}
	return "`" + s + "`"
}

// initialisms are spelled in capitals, as Go style has it (OrderID, not
// OrderId).
var initialisms = map[string]bool{
	"ACL": true, "API": true, "ASCII": true, "CPU": true, "CSS": true, "DNS": true, "EOF": true,
	"GUID": true, "HTML": true, "HTTP": true, "HTTPS": true, "ID": true, "IP": true, "JSON": true,
	"QPS": true, "RAM": true, "RPC": true, "SKU": true, "SLA": true, "SMTP": true, "SQL": true,
	"SSH": true, "TCP": true, "TLS": true, "TTL": true, "UDP": true, "UI": true, "UID": true,
	"UUID": true, "URI": true, "URL": true, "UTF8": true, "VM": true, "XML": true,
}

// goIdent turns an Avro name (snake_case, camelCase, kebab) into an
// exported Go identifier: order_id -> OrderID, weightKg -> WeightKg.
func goIdent(name string) string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	var b strings.Builder
	for _, w := range words {
		if up := strings.ToUpper(w); initialisms[up] {
			b.WriteString(up)
			continue
		}
		r := []rune(w)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	id := b.String()
	if id == "" || !unicode.IsLetter([]rune(id)[0]) {
		id = "X" + id
	}
	return id
}
