package cdc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// avroType is the part of an Avro writer schema the debezium-avro decoder
// needs to render values as JSON: the shape, the names hamba keys union
// branches by, and the logical type from either Avro ("logicalType") or
// Kafka Connect ("connect.name").
type avroType struct {
	kind      avroKind
	name      string // full name of a record, enum or fixed
	nameBytes []byte // the same, for the envelope reader
	logical   string // Avro logicalType
	connect   string // Kafka Connect's connect.name
	scale     int    // decimal scale
	size      int    // fixed size
	symbols   []string
	fields    []avroField
	items     *avroType   // array items, map values
	branches  []*avroType // union
}

type avroField struct {
	name   string
	quoted []byte // the name as a JSON string, with the colon
	typ    *avroType
}

type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroEnum
	avroArray
	avroMap
	avroFixed
	avroUnion
)

var avroKindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "fixed", "union"}

func (k avroKind) String() string { return avroKindNames[k] }

// branchName is how hamba names a union branch in the one-entry map it
// decodes such a union to: the full name of a named type, else the type
// with its logical type, e.g. "long.timestamp-millis".
func (t *avroType) branchName() string {
	if t.name != "" {
		return t.name
	}
	if t.logical != "" {
		return t.kind.String() + "." + t.logical
	}
	return t.kind.String()
}

// maxSchemaDepth bounds nesting while parsing a schema text.
const maxSchemaDepth = 256

// parseAvroSchema reads a writer schema's JSON text.
func parseAvroSchema(text string) (*avroType, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	p := schemaParser{named: map[string]*avroType{}}
	return p.parse(v, "", 0)
}

type schemaParser struct {
	named map[string]*avroType
}

func (p *schemaParser) parse(v any, ns string, depth int) (*avroType, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("schema nested deeper than %d", maxSchemaDepth)
	}
	switch v := v.(type) {
	case string:
		if t := primitive(v); t != nil {
			return t, nil
		}
		if t := p.lookup(v, ns); t != nil {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case []any:
		u := &avroType{kind: avroUnion}
		for _, b := range v {
			t, err := p.parse(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, t)
		}
		return u, nil
	case map[string]any:
		return p.complex(v, ns, depth)
	}
	return nil, fmt.Errorf("unexpected %T in schema", v)
}

func primitive(name string) *avroType {
	for k := avroNull; k <= avroString; k++ {
		if avroKindNames[k] == name {
			return &avroType{kind: k}
		}
	}
	return nil
}

func (p *schemaParser) lookup(name, ns string) *avroType {
	if !strings.Contains(name, ".") && ns != "" {
		if t := p.named[ns+"."+name]; t != nil {
			return t
		}
	}
	return p.named[name]
}

// fullName applies Avro's namespace rules to a named type's declaration.
func fullName(obj map[string]any, ns string) (full, space string, err error) {
	name, _ := obj["name"].(string)
	if name == "" {
		return "", "", errors.New("named type without a name")
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name, name[:i], nil
	}
	if s, ok := obj["namespace"].(string); ok {
		ns = s
	}
	if ns == "" {
		return name, "", nil
	}
	return ns + "." + name, ns, nil
}

func (p *schemaParser) complex(obj map[string]any, ns string, depth int) (*avroType, error) {
	var t *avroType
	switch typ := obj["type"].(type) {
	case string:
		switch typ {
		case "record", "error":
			full, space, err := fullName(obj, ns)
			if err != nil {
				return nil, err
			}
			t = &avroType{kind: avroRecord, name: full, nameBytes: []byte(full)}
			p.named[full] = t // before the fields: a record may refer to itself
			fields, _ := obj["fields"].([]any)
			for _, f := range fields {
				fo, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s: field is %T, want an object", full, f)
				}
				fname, _ := fo["name"].(string)
				ft, err := p.parse(fo["type"], space, depth+1)
				if err != nil {
					return nil, fmt.Errorf("record %s field %q: %w", full, fname, err)
				}
				quoted, _ := json.Marshal(fname)
				t.fields = append(t.fields, avroField{name: fname, quoted: append(quoted, ':'), typ: ft})
			}
		case "enum", "fixed":
			full, _, err := fullName(obj, ns)
			if err != nil {
				return nil, err
			}
			t = &avroType{kind: avroEnum, name: full}
			if typ == "fixed" {
				t.kind = avroFixed
				n, _ := obj["size"].(json.Number)
				size, err := strconv.Atoi(n.String())
				if err != nil || size < 0 {
					return nil, fmt.Errorf("fixed %s: size %q", full, n)
				}
				t.size = size
			} else {
				syms, _ := obj["symbols"].([]any)
				for _, sym := range syms {
					name, ok := sym.(string)
					if !ok {
						return nil, fmt.Errorf("enum %s: symbol %v is not a string", full, sym)
					}
					t.symbols = append(t.symbols, name)
				}
			}
			p.named[full] = t
		case "array", "map":
			key := "items"
			t = &avroType{kind: avroArray}
			if typ == "map" {
				key, t.kind = "values", avroMap
			}
			items, err := p.parse(obj[key], ns, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", typ, key, err)
			}
			t.items = items
		default:
			base, err := p.parse(typ, ns, depth+1)
			if err != nil {
				return nil, err
			}
			if base.name != "" || base.kind > avroString {
				return base, nil // a reference to a named type, with properties
			}
			t = base
		}
	case nil:
		return nil, errors.New("type missing")
	default:
		return p.parse(typ, ns, depth+1)
	}
	t.logical, _ = obj["logicalType"].(string)
	t.connect, _ = obj["connect.name"].(string)
	t.scale = decimalScale(obj)
	return t, nil
}

// decimalScale reads a decimal's scale: Avro's "scale", or the "scale"
// Kafka Connect keeps in connect.parameters (as a string).
func decimalScale(obj map[string]any) int {
	if n, ok := obj["scale"].(json.Number); ok {
		if v, err := strconv.Atoi(n.String()); err == nil {
			return v
		}
	}
	if params, ok := obj["connect.parameters"].(map[string]any); ok {
		if s, ok := params["scale"].(string); ok {
			if v, err := strconv.Atoi(s); err == nil {
				return v
			}
		}
	}
	return 0
}

// findBranch resolves a union's value: hamba's one-entry map naming the
// branch, or else the only branch the Go value can be.
func (t *avroType) findBranch(v any) (*avroType, any, error) {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			for _, b := range t.branches {
				if k == b.branchName() || k == b.kind.String() {
					return b, inner, nil
				}
			}
		}
	}
	var found *avroType
	for _, b := range t.branches {
		if b.accepts(v) {
			if found != nil && found.kind != b.kind {
				return nil, nil, &DecodeError{Reason: fmt.Sprintf("union value of type %T fits more than one branch", v)}
			}
			if found == nil {
				found = b
			}
		}
	}
	if found == nil {
		return nil, nil, &DecodeError{Reason: fmt.Sprintf("union value of type %T fits no branch", v)}
	}
	return found, v, nil
}

// accepts reports whether a decoded Go value can be of type t.
func (t *avroType) accepts(v any) bool {
	switch v.(type) {
	case nil:
		return t.kind == avroNull
	case bool:
		return t.kind == avroBoolean
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return t.kind == avroInt || t.kind == avroLong
	case float32, float64:
		return t.kind == avroFloat || t.kind == avroDouble
	case string:
		return t.kind == avroString || t.kind == avroEnum
	case []byte:
		return t.kind == avroBytes || t.kind == avroFixed
	case map[string]any:
		return t.kind == avroRecord || t.kind == avroMap
	case []any:
		return t.kind == avroArray
	}
	switch {
	case isTimeValue(v):
		return (t.kind == avroInt || t.kind == avroLong) && t.logical != ""
	case isDecimalValue(v):
		return (t.kind == avroBytes || t.kind == avroFixed) && t.logical == "decimal"
	}
	return t.kind == avroFixed && fixedBytes(v) != nil
}
