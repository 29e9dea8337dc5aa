package contracts

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"
)

// binding reads the checked fields of one struct type: the field index
// and a typed reader per slot, resolved once per type, so a Check costs one
// reflect.ValueOf and one Field call per rule, and no allocation for
// scalar fields.
type binding struct {
	index []int                       // struct field per slot
	read  []func(reflect.Value) value // per slot
}

// rowAccess reads the slots of one row; it lives on Check's stack.
type rowAccess struct {
	c  *Checker
	m  map[string]any
	rv reflect.Value
	b  *binding
}

func (a *rowAccess) get(slot int) value {
	if a.m != nil {
		return fromAny(a.m[a.c.slots[slot]])
	}
	return a.b.read[slot](a.rv.Field(a.b.index[slot]))
}

// access prepares a to read row.
func (c *Checker) access(a *rowAccess, row any) error {
	a.c = c
	if m, ok := row.(map[string]any); ok {
		if m == nil {
			m = map[string]any{}
		}
		a.m = m
		return nil
	}
	rv := reflect.ValueOf(row)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return fmt.Errorf("contracts: check: nil %T", row)
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return fmt.Errorf("contracts: check: %T is neither a struct nor a map[string]any", row)
	}
	b, err := c.bind(rv.Type())
	if err != nil {
		return err
	}
	a.rv, a.b = rv, b
	return nil
}

func (c *Checker) bind(t reflect.Type) (*binding, error) {
	if got, ok := c.bindings.Load(t); ok {
		if err, isErr := got.(error); isErr {
			return nil, err
		}
		return got.(*binding), nil
	}
	b, err := newBinding(t, c.slots)
	if err != nil {
		c.bindings.Store(t, err)
		return nil, err
	}
	c.bindings.Store(t, b)
	return b, nil
}

func newBinding(t reflect.Type, slots []string) (*binding, error) {
	b := &binding{index: make([]int, len(slots)), read: make([]func(reflect.Value) value, len(slots))}
	for i, name := range slots {
		idx := -1
		for j := range t.NumField() {
			f := t.Field(j)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("avro"), ",")
			if tag == name || (tag == "" && f.Name == name) {
				idx = j
				break
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("contracts: check: %s has no field tagged avro:%q, which the contract's rules check", t, name)
		}
		b.index[i] = idx
		b.read[i] = reader(t.Field(idx).Type)
	}
	return b, nil
}

var (
	timeType = reflect.TypeFor[time.Time]()
	ratType  = reflect.TypeFor[*big.Rat]()
)

// reader returns a typed reader for values of type t.
func reader(t reflect.Type) func(reflect.Value) value {
	switch t {
	case timeType:
		return func(v reflect.Value) value { return fromAny(v.Interface()) }
	case ratType:
		return func(v reflect.Value) value { return fromAny(v.Interface()) }
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(v reflect.Value) value { return value{kind: vInt, i: v.Int()} }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return func(v reflect.Value) value { return value{kind: vInt, i: int64(v.Uint())} }
	case reflect.Float32, reflect.Float64:
		return func(v reflect.Value) value { return value{kind: vFloat, f: v.Float()} }
	case reflect.String:
		return func(v reflect.Value) value { return value{kind: vString, s: v.String()} }
	case reflect.Bool:
		return func(v reflect.Value) value {
			if v.Bool() {
				return value{kind: vBool, i: 1}
			}
			return value{kind: vBool}
		}
	case reflect.Pointer:
		elem := reader(t.Elem())
		return func(v reflect.Value) value {
			if v.IsNil() {
				return value{kind: vNull}
			}
			return elem(v.Elem())
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(v reflect.Value) value {
				if v.IsNil() {
					return value{kind: vNull}
				}
				return value{kind: vString, s: string(v.Bytes())}
			}
		}
	}
	return func(v reflect.Value) value {
		if (v.Kind() == reflect.Slice || v.Kind() == reflect.Map || v.Kind() == reflect.Interface) && v.IsNil() {
			return value{kind: vNull}
		}
		return fromAny(v.Interface())
	}
}
