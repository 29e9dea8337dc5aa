package governance

import (
	"context"
	"crypto/rand"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/meshlet/meshlet/internal/jsontext"
)

// Sealer seals the PII fields of one row type.
type Sealer struct {
	ks       KeyStore
	t        reflect.Type // a struct
	names    []string     // Avro names of the sealed fields
	index    []int        // their struct fields
	encode   []encodeFunc // their JSON encoders
	namesEnc []byte       // the names as the envelope spells them
	subject  int          // struct field naming the subject; -1: the entity key
	subjName string
	subjOf   func(reflect.Value) string
}

// SealerOption configures NewSealer.
type SealerOption func(*Sealer)

// SubjectField names the field (Avro name) whose value is the data
// subject, e.g. customer_id on an orders product; by default the subject is
// the entity key given to Seal. Its value is written in clear, so it may
// not be one of the sealed fields.
func SubjectField(name string) SealerOption {
	return func(s *Sealer) { s.subjName = name }
}

// NewSealer binds a Sealer to the type of row (a struct, or a pointer to
// one) and the Avro names of its PII fields, found by their avro struct
// tags (or Go names when untagged). With no PII fields, Seal seals
// nothing.
func NewSealer(ks KeyStore, row any, pii []string, opts ...SealerOption) (*Sealer, error) {
	t, err := structType(row)
	if err != nil {
		return nil, fmt.Errorf("seal: sealer: %w", err)
	}
	s := &Sealer{ks: ks, t: t, subject: -1}
	for _, o := range opts {
		o(s)
	}
	if len(pii) > 0 && ks == nil {
		return nil, errors.New("seal: sealer: PII fields but no key store")
	}
	if len(pii) > MaxFields {
		return nil, fmt.Errorf("seal: sealer: %d PII fields, at most %d can be sealed", len(pii), MaxFields)
	}
	s.namesEnc = binary.AppendUvarint(nil, uint64(len(pii)))
	for _, name := range pii {
		i, ok := fieldIndex(t, name)
		switch {
		case !ok:
			return nil, fmt.Errorf("seal: sealer: %s has no field tagged avro:%q, which the contract classifies as PII", t, name)
		case len(name) > MaxName:
			return nil, fmt.Errorf("seal: sealer: field name %.20q... is longer than %d bytes", name, MaxName)
		case name == s.subjName:
			return nil, fmt.Errorf("seal: sealer: %q is both the subject field and PII: a subject is written in clear, so pick another subject field", name)
		}
		for _, seen := range s.names {
			if seen == name {
				return nil, fmt.Errorf("seal: sealer: PII field %q listed twice", name)
			}
		}
		s.names = append(s.names, name)
		s.index = append(s.index, i)
		s.encode = append(s.encode, encoderFor(t.Field(i).Type))
		s.namesEnc = binary.AppendUvarint(s.namesEnc, uint64(len(name)))
		s.namesEnc = append(s.namesEnc, name...)
	}
	if s.subjName != "" {
		i, ok := fieldIndex(t, s.subjName)
		if !ok {
			return nil, fmt.Errorf("seal: sealer: %s has no field tagged avro:%q, the subject field", t, s.subjName)
		}
		if s.subjOf = subjectReader(t.Field(i).Type); s.subjOf == nil {
			return nil, fmt.Errorf("seal: sealer: subject field %q is a %s; want a string, []byte or integer, or a pointer to one", s.subjName, t.Field(i).Type)
		}
		s.subject = i
	}
	return s, nil
}

// Names lists the Avro names of the fields the Sealer seals.
func (s *Sealer) Names() []string { return append([]string(nil), s.names...) }

// Seal encrypts the PII fields of row under the current key of its data
// subject (the subject field's value, or key). It returns a copy of row
// (a value for a value, a pointer for a pointer) with those fields at
// their zero value, and the envelope for Frame. With no PII fields it
// returns row itself and a nil envelope.
func (s *Sealer) Seal(ctx context.Context, key string, row any) (cleared any, sealed []byte, err error) {
	rv := reflect.ValueOf(row)
	isPtr := rv.Kind() == reflect.Pointer
	if isPtr {
		if rv.IsNil() {
			return nil, nil, fmt.Errorf("seal: nil %T", row)
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() || rv.Type() != s.t {
		return nil, nil, fmt.Errorf("seal: sealer for %s given a %T", s.t, row)
	}
	if len(s.index) == 0 {
		return row, nil, nil
	}
	subject := key
	if s.subject >= 0 {
		subject = s.subjOf(rv.Field(s.subject))
	}
	switch {
	case subject == "" && s.subject >= 0:
		return nil, nil, fmt.Errorf("seal: subject field %q is empty: a row with PII must name its data subject", s.subjName)
	case subject == "":
		return nil, nil, errors.New("seal: empty entity key: a row with PII must name its data subject")
	case len(subject) > MaxSubject:
		return nil, nil, fmt.Errorf("seal: subject is %d bytes, at most %d", len(subject), MaxSubject)
	}

	bp := plainPool.Get().(*[]byte)
	plain := append((*bp)[:0], make([]byte, bindKeySize)...)
	defer func() {
		clear(plain) // it held personal data in clear
		if cap(plain) <= 64<<10 {
			*bp = plain[:0]
			plainPool.Put(bp)
		}
	}()
	rand.Read(plain[:bindKeySize])
	plain = append(plain, '{')
	for i, fi := range s.index {
		if i > 0 {
			plain = append(plain, ',')
		}
		plain = jsontext.AppendString(plain, s.names[i])
		plain = append(plain, ':')
		if plain, err = s.encode[i](plain, rv.Field(fi)); err != nil {
			return nil, nil, fmt.Errorf("seal: field %q: %w", s.names[i], err)
		}
	}
	plain = append(plain, '}')
	if n := len(plain) - bindKeySize; n > MaxJSON {
		return nil, nil, fmt.Errorf("seal: the PII fields take %d bytes as JSON, at most %d", n, MaxJSON)
	}

	k, err := s.ks.Current(ctx, subject)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: subject %q: %w", ErrKeyStore, subject, err)
	}
	ctLen := len(plain) + gcmTagSize
	size := 2 + binary.MaxVarintLen64 + len(subject) + len(k.ID) + len(s.namesEnc) + nonceSize + binary.MaxVarintLen64 + ctLen + bindKeySize
	out := make([]byte, 0, size)
	out = append(out, Magic, Version)
	out = binary.AppendUvarint(out, uint64(len(subject)))
	out = append(out, subject...)
	out = append(out, k.ID[:]...)
	out = append(out, s.namesEnc...)
	aad := out
	nonce := out[len(out) : len(out)+nonceSize]
	rand.Read(nonce)
	out = out[:len(out)+nonceSize]
	out = binary.AppendUvarint(out, uint64(ctLen))
	// The ciphertext goes right after, into out's spare capacity; dst
	// starts past the additional data, so the two do not overlap.
	ct := newGCM(&k.Secret).Seal(out[len(out):len(out)], nonce, plain, aad)
	out = out[:len(out)+len(ct)]
	out = append(out, plain[:bindKeySize]...)

	c := reflect.New(s.t)
	c.Elem().Set(rv)
	for _, fi := range s.index {
		c.Elem().Field(fi).SetZero()
	}
	if isPtr {
		return c.Interface(), out, nil
	}
	return c.Elem().Interface(), out, nil
}

var plainPool = sync.Pool{New: func() any { return new([]byte) }}

// structType is the struct type of a row given as a struct or a pointer
// to one.
func structType(row any) (reflect.Type, error) {
	t := reflect.TypeOf(row)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("a row must be a struct or a pointer to one, not %T", row)
	}
	return t, nil
}

// fieldIndex finds the exported field of t with the Avro name name, the
// way contracts and the Avro codec do: its avro tag, or its Go name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		if n, ok := avroName(t.Field(i)); ok && n == name {
			return i, true
		}
	}
	return -1, false
}

func avroName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag, _, _ := strings.Cut(f.Tag.Get("avro"), ",")
	switch tag {
	case "-":
		return "", false
	case "":
		return f.Name, true
	}
	return tag, true
}

// subjectReader returns how to read a subject from a field of type t, or
// nil if t cannot name one.
func subjectReader(t reflect.Type) func(reflect.Value) string {
	switch t.Kind() {
	case reflect.String:
		return func(v reflect.Value) string { return v.String() }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(v reflect.Value) string { return strconv.FormatInt(v.Int(), 10) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return func(v reflect.Value) string { return strconv.FormatUint(v.Uint(), 10) }
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(v reflect.Value) string { return string(v.Bytes()) }
		}
	case reflect.Pointer:
		if elem := subjectReader(t.Elem()); elem != nil {
			return func(v reflect.Value) string {
				if v.IsNil() {
					return ""
				}
				return elem(v.Elem())
			}
		}
	}
	return nil
}

// encodeFunc appends the JSON of one field's value.
type encodeFunc func(dst []byte, v reflect.Value) ([]byte, error)

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// encoderFor returns a JSON encoder for values of type t: by hand for the
// scalar kinds, which are most PII, and encoding/json for the rest.
func encoderFor(t reflect.Type) encodeFunc {
	marshals := t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)
	if !marshals {
		switch t.Kind() {
		case reflect.String:
			return func(dst []byte, v reflect.Value) ([]byte, error) { return jsontext.AppendString(dst, v.String()), nil }
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return func(dst []byte, v reflect.Value) ([]byte, error) { return strconv.AppendInt(dst, v.Int(), 10), nil }
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return func(dst []byte, v reflect.Value) ([]byte, error) { return strconv.AppendUint(dst, v.Uint(), 10), nil }
		case reflect.Bool:
			return func(dst []byte, v reflect.Value) ([]byte, error) { return strconv.AppendBool(dst, v.Bool()), nil }
		case reflect.Float32, reflect.Float64:
			bits := t.Bits()
			return func(dst []byte, v reflect.Value) ([]byte, error) {
				f := v.Float()
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return dst, fmt.Errorf("%v has no JSON spelling", f)
				}
				return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
			}
		case reflect.Pointer:
			elem := encoderFor(t.Elem())
			return func(dst []byte, v reflect.Value) ([]byte, error) {
				if v.IsNil() {
					return append(dst, "null"...), nil
				}
				return elem(dst, v.Elem())
			}
		}
	}
	return func(dst []byte, v reflect.Value) ([]byte, error) {
		b, err := json.Marshal(v.Interface())
		return append(dst, b...), err
	}
}
