package governance

import (
	"fmt"
	"reflect"
	"strings"
)

// Action is what an output port does with a field.
type Action uint8

const (
	Pass Action = iota // publish the value
	Mask               // publish a stand-in (see Redactor.Apply)
	Drop               // publish null; nullable fields only
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Mask:
		return "mask"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// MaskedString is what Mask puts in a string field. It has a fixed length,
// so a masked value does not give away its length either.
const MaskedString = "****"

// Policy says what an output port does with each field, by the field's
// classification in the contract, or by the field itself. It is immutable;
// bind it to a row type with Bind.
type Policy struct {
	text    string
	def     Action            // classified fields with no rule of their own
	classes map[string]Action // lower-cased classification -> action
	fields  map[string]Action // Avro field name -> action
}

// ParsePolicy reads a policy: rules TARGET=ACTION separated by commas or
// newlines, '#' starting a comment. ACTION is pass, mask or drop. TARGET is
//
//	a classification   restricted=drop (matched ignoring case)
//	field:NAME         field:email=mask (an Avro field name; wins over classifications)
//	*                  *=mask (every classified field no other rule covers)
//
// Fields without a classification pass unless a field rule names them. The
// empty policy passes everything.
func ParsePolicy(spec string) (*Policy, error) {
	p := &Policy{classes: map[string]Action{}, fields: map[string]Action{}}
	seen := map[string]int{} // target -> rule number
	var canon []string
	n := 0
	for line := range strings.SplitSeq(spec, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for text := range strings.SplitSeq(line, ",") {
			text = strings.TrimSpace(text)
			if text == "" {
				continue
			}
			n++
			bad := func(format string, args ...any) error {
				return fmt.Errorf("seal: policy rule %d %q: %s", n, text, fmt.Sprintf(format, args...))
			}
			target, act, ok := strings.Cut(text, "=")
			target, act = strings.TrimSpace(target), strings.TrimSpace(act)
			if !ok || target == "" {
				return nil, bad("want TARGET=ACTION, e.g. restricted=drop or field:email=mask")
			}
			a, err := parseAction(act)
			if err != nil {
				return nil, bad("%v", err)
			}
			key := target
			switch name, isField := strings.CutPrefix(target, "field:"); {
			case target == "*":
				p.def = a
			case isField:
				if !avroNameOK(name) {
					return nil, bad("%q is not an Avro field name ([A-Za-z_][A-Za-z0-9_]*)", name)
				}
				p.fields[name] = a
			default:
				if !classOK(target) {
					return nil, bad("classification %q may hold only letters, digits, '_', '-' and '.'", target)
				}
				key = strings.ToLower(target)
				p.classes[key] = a
			}
			if at, dup := seen[key]; dup {
				return nil, bad("%s already has a rule (rule %d)", target, at)
			}
			seen[key] = n
			canon = append(canon, target+"="+a.String())
		}
	}
	p.text = strings.Join(canon, ",")
	return p, nil
}

func parseAction(s string) (Action, error) {
	switch s {
	case "pass":
		return Pass, nil
	case "mask":
		return Mask, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("action %q is unknown; want pass, mask or drop", s)
}

func avroNameOK(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func classOK(s string) bool {
	for _, c := range s {
		if !(c == '_' || c == '-' || c == '.' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// String is the policy's rules, normalized, in the order written.
func (p *Policy) String() string { return p.text }

// Action is what p does with the field name of classification class
// ("" for none).
func (p *Policy) Action(name, class string) Action {
	if a, ok := p.fields[name]; ok {
		return a
	}
	if class == "" {
		return Pass
	}
	if a, ok := p.classes[strings.ToLower(class)]; ok {
		return a
	}
	return p.def
}

// Bind binds p to the type of row (a struct or a pointer to one), whose
// fields' classifications are classes (Avro name -> classification, as
// the contract gives them). It refuses a policy that names a field the
// type lacks, or drops a field that cannot be null.
func (p *Policy) Bind(row any, classes map[string]string) (*Redactor, error) {
	t, err := structType(row)
	if err != nil {
		return nil, fmt.Errorf("seal: policy: %w", err)
	}
	for name := range p.fields {
		if _, ok := fieldIndex(t, name); !ok {
			return nil, fmt.Errorf("seal: policy rule field:%s: %s has no field tagged avro:%q", name, t, name)
		}
	}
	r := &Redactor{p: p, t: t}
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := avroName(f)
		if !ok {
			continue
		}
		a := p.Action(name, classes[name])
		switch a {
		case Pass:
			continue
		case Drop:
			if k := f.Type.Kind(); k != reflect.Pointer && k != reflect.Interface {
				return nil, fmt.Errorf("seal: policy drops field %q (%s.%s, a %s), which cannot be null: mask it, or make it a pointer (an Avro [\"null\", ...] union)", name, t, f.Name, f.Type)
			}
			r.ops = append(r.ops, fieldOp{index: i, set: func(v reflect.Value) { v.SetZero() }})
		case Mask:
			r.ops = append(r.ops, fieldOp{index: i, set: masker(f.Type)})
		}
	}
	return r, nil
}

// Redactor is a Policy bound to one row type.
type Redactor struct {
	p   *Policy
	t   reflect.Type
	ops []fieldOp
}

type fieldOp struct {
	index int
	set   func(reflect.Value)
}

// Policy is the policy r applies.
func (r *Redactor) Policy() *Policy { return r.p }

// Passes reports whether Apply returns every row unchanged.
func (r *Redactor) Passes() bool { return len(r.ops) == 0 }

// Apply returns row with the policy applied: a copy (a value for a value,
// a pointer for a pointer) in which masked fields hold a stand-in
// (MaskedString for strings, 0, false, empty bytes, the zero value of
// anything else; a pointer to the stand-in for a non-nil pointer) and
// dropped fields are nil. The row itself is never changed; when the policy
// passes every field, Apply returns it as it is. Apply panics on a row
// whose type r was not bound to: publishing it unredacted is not an
// option.
func (r *Redactor) Apply(row any) any {
	if len(r.ops) == 0 {
		return row
	}
	rv := reflect.ValueOf(row)
	isPtr := rv.Kind() == reflect.Pointer
	if isPtr {
		if rv.IsNil() {
			return row
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() || rv.Type() != r.t {
		panic(fmt.Sprintf("seal: policy bound to %s applied to a %T", r.t, row))
	}
	c := reflect.New(r.t)
	c.Elem().Set(rv)
	for _, op := range r.ops {
		op.set(c.Elem().Field(op.index))
	}
	if isPtr {
		return c.Interface()
	}
	return c.Elem().Interface()
}

// masker returns how to mask a settable value of type t.
func masker(t reflect.Type) func(reflect.Value) {
	switch t.Kind() {
	case reflect.String:
		return func(v reflect.Value) { v.SetString(MaskedString) }
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			empty := reflect.MakeSlice(t, 0, 0)
			return func(v reflect.Value) { v.Set(empty) }
		}
	case reflect.Pointer:
		elem := masker(t.Elem())
		return func(v reflect.Value) {
			if v.IsNil() {
				return
			}
			// A new pointee: the caller's row shares the old one.
			n := reflect.New(t.Elem())
			elem(n.Elem())
			v.Set(n)
		}
	}
	// Numbers to 0, bools to false, anything else to its zero value.
	return func(v reflect.Value) { v.SetZero() }
}
