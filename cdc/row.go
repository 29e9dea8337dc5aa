package cdc

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// RowDecoder reads row images (Change.Before, After and Key) into values of
// one Go type, with the result encoding/json's Unmarshal would give, but
// from a plan made once for the type: per image there is no lookup by
// reflection, no second validation pass, and no allocation of its own.
//
// The plan covers what row types are made of: structs (fields matched by
// their json tag or name, exactly, else case-insensitively, as
// encoding/json does), pointers (null sets nil), bool, the integer kinds
// (a fraction, an exponent or an out-of-range value is an error, as is a
// negative number for an unsigned field), float32 and float64 (out of range
// is an error), and strings (invalid UTF-8 becomes U+FFFD). A field of any
// other type (slices, maps, interfaces, json.Number, types with a
// TextUnmarshaler) is handed to encoding/json with its bytes, and a type
// with an UnmarshalJSON method (time.Time) gets its bytes directly. A
// struct that encoding/json would treat in a way the plan does not mirror
// (embedded fields, the ",string" option) is read by encoding/json as a
// whole. FuzzRowDecoder holds the two to the same result.
//
// The bytes are checked as they are read: invalid JSON is an error, never a
// panic, and nesting is bounded as in the envelope decoders. Errors are
// *DecodeError, with Field the path inside the image ("weight",
// "address.zip").
//
// What a decoded row points to (its strings, the targets of its pointer
// fields, the row itself from New) is carved out of chunks shared by the
// rows one RowDecoder reads, so that a row costs no allocation of its own:
// one allocation serves rows by the dozen. A chunk is freed when no row
// that uses it is reachable, so a value kept for long may keep a few
// kilobytes of its neighbours alive with it.
//
// A RowDecoder is safe for concurrent use.
type RowDecoder[T any] struct {
	plan  *valuePlan // nil when encoding/json reads T as a whole
	spare atomic.Pointer[rowState[T]]
}

// rowState is one caller's working memory and chunks; concurrent callers
// each have their own.
type rowState[T any] struct {
	rowReader
	vals []T // the chunk New hands out rows from
}

// Chunk sizes: big enough that allocations are rare, small enough that
// what a kept row pins stays small.
const (
	rowTextChunk = 2048 // bytes of strings
	wordChunk    = 64   // targets of pointers to bool, numbers
	strChunk     = 32   // targets of pointers to strings
	valueChunk   = 2048 // bytes of rows, for New
)

// NewRowDecoder makes the plan for T.
func NewRowDecoder[T any]() *RowDecoder[T] {
	b := planBuilder{seen: map[reflect.Type]*valuePlan{}}
	p := b.plan(reflect.TypeFor[T]())
	if p.kind != planStruct {
		p = nil
	}
	return &RowDecoder[T]{plan: p}
}

// Decode reads image, a JSON object, into v, which should be zero: like
// encoding/json, Decode sets only the fields the image names. On error v
// may be partly set.
func (d *RowDecoder[T]) Decode(image []byte, v *T) error {
	if d.plan == nil {
		if err := json.Unmarshal(image, v); err != nil {
			return jsonError(err)
		}
		return nil
	}
	st := d.state()
	err := st.read(d.plan, image, unsafe.Pointer(v))
	d.spare.Store(st)
	return err
}

// New reads image into a new T, taken from a chunk, and returns it.
func (d *RowDecoder[T]) New(image []byte) (*T, error) {
	if d.plan == nil {
		v := new(T)
		if err := json.Unmarshal(image, v); err != nil {
			return nil, jsonError(err)
		}
		return v, nil
	}
	st := d.state()
	if len(st.vals) == 0 {
		var zero T
		st.vals = make([]T, max(1, valueChunk/max(1, int(unsafe.Sizeof(zero)))))
	}
	v := &st.vals[0]
	st.vals = st.vals[1:]
	err := st.read(d.plan, image, unsafe.Pointer(v))
	d.spare.Store(st)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (d *RowDecoder[T]) state() *rowState[T] {
	if st := d.spare.Swap(nil); st != nil {
		return st
	}
	return new(rowState[T]) // a concurrent caller holds the spare one
}

// jsonError turns an encoding/json error into a DecodeError that names the
// field when encoding/json does.
func jsonError(err error) error {
	de := &DecodeError{Reason: err.Error(), Err: err}
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		de.Field = te.Field
	}
	return de
}

type planKind uint8

const (
	planBool planKind = iota
	planInt
	planUint
	planFloat
	planString
	planPointer
	planStruct
	planUnmarshaler // the type's UnmarshalJSON reads the value's bytes
	planJSON        // encoding/json reads the value's bytes
)

// valuePlan says how to read one JSON value into a Go type.
type valuePlan struct {
	kind planKind
	typ  reflect.Type
	bits int // of the integer and float kinds

	elem *valuePlan // planPointer

	fields []fieldPlan    // planStruct, in declaration order
	byName map[string]int // planStruct with many fields: exact name -> fields index
}

type fieldPlan struct {
	name   string  // the JSON name
	offset uintptr // in the struct
	plan   *valuePlan
}

// manyFields is where a map beats comparing the key with every field name.
const manyFields = 16

// maxPooledRowText keeps one huge key's working memory from being kept.
const maxPooledRowText = 1 << 16

type planBuilder struct {
	seen map[reflect.Type]*valuePlan // struct plans, so recursive types end
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonNumber      = reflect.TypeFor[json.Number]()
)

func (b *planBuilder) plan(t reflect.Type) *valuePlan {
	if p := b.seen[t]; p != nil {
		return p
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) && t.Kind() != reflect.Pointer {
		return &valuePlan{kind: planUnmarshaler, typ: t}
	}
	if t == jsonNumber || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return &valuePlan{kind: planJSON, typ: t}
	}
	switch t.Kind() {
	case reflect.Bool:
		return &valuePlan{kind: planBool, typ: t}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &valuePlan{kind: planInt, typ: t, bits: t.Bits()}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return &valuePlan{kind: planUint, typ: t, bits: t.Bits()}
	case reflect.Float32, reflect.Float64:
		return &valuePlan{kind: planFloat, typ: t, bits: t.Bits()}
	case reflect.String:
		return &valuePlan{kind: planString, typ: t}
	case reflect.Pointer:
		p := &valuePlan{kind: planPointer, typ: t}
		b.seen[t] = p // a pointer to a struct may lead back here
		p.elem = b.plan(t.Elem())
		return p
	case reflect.Struct:
		p := &valuePlan{kind: planStruct, typ: t}
		b.seen[t] = p
		if !b.structFields(p) {
			*p = valuePlan{kind: planJSON, typ: t}
		}
		return p
	}
	return &valuePlan{kind: planJSON, typ: t}
}

// structFields lists the fields encoding/json would decode, with its rules
// for names: the tag's name when valid, else the Go name; fields that share
// a name are dropped unless exactly one of them is tagged. It returns false
// for what the plan does not mirror (embedded fields, the ",string"
// option), which is then left to encoding/json.
func (b *planBuilder) structFields(p *valuePlan) bool {
	t := p.typ
	type candidate struct {
		fieldPlan
		tagged bool
		index  int
	}
	var cands []candidate
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return false
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if hasOption(opts, "string") {
			return false
		}
		tagged := validTagName(name)
		if !tagged {
			name = sf.Name
		}
		cands = append(cands, candidate{fieldPlan: fieldPlan{name: name, offset: sf.Offset}, tagged: tagged, index: i})
	}
	for i, c := range cands {
		winner, rivals := -1, 0
		for j, o := range cands {
			if o.name != c.name {
				continue
			}
			rivals++
			if o.tagged {
				if winner >= 0 {
					winner = -2 // two tagged: neither
				} else if winner == -1 {
					winner = j
				}
			}
		}
		if rivals > 1 && winner != i {
			continue
		}
		c.plan = b.plan(t.Field(c.index).Type)
		p.fields = append(p.fields, c.fieldPlan)
	}
	if len(p.fields) > manyFields {
		p.byName = make(map[string]int, len(p.fields))
		for i, f := range p.fields {
			p.byName[f.name] = i
		}
	}
	return true
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// validTagName mirrors encoding/json: letters, digits and most punctuation;
// backslash and quotes are reserved.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// find returns the field a key names: the exact name first, then the first
// field whose name matches ignoring case, as encoding/json does. hint is
// the field expected next (images usually list columns in one order).
func (p *valuePlan) find(key []byte, hint int) int {
	if hint < len(p.fields) && p.fields[hint].name == string(key) {
		return hint
	}
	if p.byName != nil {
		if i, ok := p.byName[string(key)]; ok {
			return i
		}
	} else {
		for i := range p.fields {
			if p.fields[i].name == string(key) {
				return i
			}
		}
	}
	for i := range p.fields {
		if bytes.EqualFold([]byte(p.fields[i].name), key) {
			return i
		}
	}
	return -1
}

// rowReader reads one image at a time, into chunks it keeps between
// images: text for string bytes, words and strs for the targets of
// pointers. Handed-out parts of a chunk are never written again; a chunk
// that runs out is replaced, not grown, so strings into it stay valid.
type rowReader struct {
	s     scanner
	text  []byte
	words []uint64
	strs  []string
	key   []byte // an escaped or non-ASCII key, decoded
	depth int
}

func (rd *rowReader) read(plan *valuePlan, image []byte, p unsafe.Pointer) error {
	rd.s, rd.depth = scanner{b: image}, 0
	err := rd.top(plan, p)
	rd.s = scanner{}
	if cap(rd.key) > maxPooledRowText {
		rd.key = nil
	}
	return err
}

// str keeps the contents of a JSON string in the text chunk and returns
// them as a string. Decoding never makes a string longer than three times
// its JSON (an invalid byte becomes the three of U+FFFD).
func (rd *rowReader) str(raw []byte, esc bool) string {
	if len(raw) == 0 {
		return ""
	}
	if need := 3 * len(raw); cap(rd.text)-len(rd.text) < need {
		rd.text = make([]byte, 0, max(rowTextChunk, need))
	}
	start := len(rd.text)
	rd.text = appendStringValue(rd.text, raw, esc)
	kept := rd.text[start:len(rd.text):len(rd.text)]
	rd.text = rd.text[len(rd.text):]
	if len(kept) == 0 {
		return ""
	}
	return unsafe.String(&kept[0], len(kept))
}

// The decoded value is written through unsafe.Pointers: p points at a Go
// value of exactly the type its plan was made for, and every write below
// stores that type (or one with the same memory layout, as a named type
// of an integer kind has), so no input can make a write go astray. This is
// what reflect.Value's setters do, without their per-call checks, which
// cost more than the decoding itself.

func (rd *rowReader) top(plan *valuePlan, p unsafe.Pointer) error {
	s := &rd.s
	s.ws()
	if err := rd.value(plan, p); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return s.unexpected("end of input")
	}
	return nil
}

// value reads the value at the cursor into the Go value at p.
func (rd *rowReader) value(plan *valuePlan, p unsafe.Pointer) error {
	s := &rd.s
	c := s.peek()
	if c == 'n' && plan.kind < planUnmarshaler {
		if err := s.literal("null"); err != nil {
			return err
		}
		if plan.kind == planPointer {
			*(*unsafe.Pointer)(p) = nil
		}
		return nil // as in encoding/json, null leaves other kinds alone
	}
	switch plan.kind {
	case planStruct:
		if c == '{' {
			return rd.object(plan, p)
		}
	case planPointer:
		elem := *(*unsafe.Pointer)(p)
		if elem == nil {
			elem = rd.alloc(plan.elem)
			*(*unsafe.Pointer)(p) = elem
		}
		return rd.value(plan.elem, elem)
	case planString:
		if c == '"' {
			a, b, esc, err := s.str()
			if err != nil {
				return err
			}
			*(*string)(p) = rd.str(s.b[a:b], esc)
			return nil
		}
	case planInt, planUint, planFloat:
		if c == '-' || '0' <= c && c <= '9' {
			return rd.number(plan, p)
		}
	case planBool:
		switch c {
		case 't':
			*(*bool)(p) = true
			return s.literal("true")
		case 'f':
			*(*bool)(p) = false
			return s.literal("false")
		}
	case planUnmarshaler:
		raw, err := rd.raw()
		if err != nil {
			return err
		}
		u := reflect.NewAt(plan.typ, p).Interface().(json.Unmarshaler)
		if err := u.UnmarshalJSON(raw); err != nil {
			return &DecodeError{Reason: err.Error(), Err: err}
		}
		return nil
	case planJSON:
		raw, err := rd.raw()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, reflect.NewAt(plan.typ, p).Interface()); err != nil {
			return jsonError(err)
		}
		return nil
	}
	// A value of the wrong type: check it is JSON at all, so that invalid
	// input reads as such, then say what was wrong.
	if err := s.skip(); err != nil {
		return err
	}
	return &DecodeError{Reason: fmt.Sprintf("cannot read %s into Go %s", typeName(c), plan.typ)}
}

// alloc returns a new zero value of the plan's type: for bool and the
// number kinds a word of the words chunk (a word holds any of them, and
// has their alignment), for strings a string of the strs chunk, else a
// value of its own.
func (rd *rowReader) alloc(plan *valuePlan) unsafe.Pointer {
	switch plan.kind {
	case planBool, planInt, planUint, planFloat:
		if len(rd.words) == 0 {
			rd.words = make([]uint64, wordChunk)
		}
		p := unsafe.Pointer(&rd.words[0])
		rd.words = rd.words[1:]
		return p
	case planString:
		if len(rd.strs) == 0 {
			rd.strs = make([]string, strChunk)
		}
		p := unsafe.Pointer(&rd.strs[0])
		rd.strs = rd.strs[1:]
		return p
	}
	return reflect.New(plan.typ).UnsafePointer()
}

// raw passes over the value at the cursor and returns its bytes.
func (rd *rowReader) raw() ([]byte, error) {
	s := &rd.s
	a := s.i
	if err := s.skip(); err != nil {
		return nil, err
	}
	return s.b[a:s.i], nil
}

func (rd *rowReader) object(plan *valuePlan, p unsafe.Pointer) error {
	s := &rd.s
	if rd.depth++; rd.depth > maxDepth {
		return &DecodeError{Reason: fmt.Sprintf("JSON nested deeper than %d levels", maxDepth)}
	}
	s.i++ // '{'
	next := 0
	for n := 0; ; n++ {
		s.ws()
		if s.peek() == '}' {
			s.i++
			rd.depth--
			return nil
		}
		if n > 0 {
			if s.peek() != ',' {
				return s.unexpected("',' or '}'")
			}
			s.i++
			s.ws()
		}
		if s.peek() != '"' {
			return s.unexpected("a string key")
		}
		a, b, esc, err := s.str()
		if err != nil {
			return err
		}
		key := s.b[a:b]
		if esc || !ascii(key) {
			rd.key = appendStringValue(rd.key[:0], key, esc)
			key = rd.key
		}
		s.ws()
		if s.peek() != ':' {
			return s.unexpected("':'")
		}
		s.i++
		s.ws()
		i := plan.find(key, next)
		if i < 0 {
			if err := s.skip(); err != nil {
				return within(err, string(key))
			}
			continue
		}
		next = i + 1
		f := &plan.fields[i]
		if err := rd.value(f.plan, unsafe.Add(p, f.offset)); err != nil {
			return within(err, f.name)
		}
	}
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// number reads a number into an integer or float field with
// encoding/json's limits: strconv's syntax and range for the field's size.
func (rd *rowReader) number(plan *valuePlan, p unsafe.Pointer) error {
	s := &rd.s
	if plan.kind == planInt || plan.kind == planUint && s.peek() != '-' {
		// Most integers are short enough to read in one pass.
		start := s.i
		if n, ok := s.shortInt(); ok {
			return storeInt(plan, p, n, s.b[start:s.i])
		}
	}
	a, b, integer, err := s.num()
	if err != nil {
		return err
	}
	lit := s.b[a:b]
	switch plan.kind {
	case planInt:
		n, ok := parseInt(lit, integer)
		if !ok {
			return rangeError(lit, plan.typ)
		}
		return storeInt(plan, p, n, lit)
	case planUint:
		n, ok := parseUint(lit, integer)
		if !ok || plan.bits < 64 && n>>plan.bits != 0 {
			return rangeError(lit, plan.typ)
		}
		switch plan.bits {
		case 8:
			*(*uint8)(p) = uint8(n)
		case 16:
			*(*uint16)(p) = uint16(n)
		case 32:
			*(*uint32)(p) = uint32(n)
		default:
			*(*uint64)(p) = n
		}
	default:
		f, ok := 0.0, false
		if plan.bits == 64 {
			f, ok = exactFloat(lit)
		}
		if !ok {
			if f, err = strconv.ParseFloat(string(lit), plan.bits); err != nil {
				return rangeError(lit, plan.typ)
			}
		}
		if plan.bits == 32 {
			*(*float32)(p) = float32(f)
		} else {
			*(*float64)(p) = f
		}
	}
	return nil
}

// storeInt writes n, read from lit, into an integer field of the plan's
// size, or says it does not fit. An unsigned field gets only n >= 0.
func storeInt(plan *valuePlan, p unsafe.Pointer, n int64, lit []byte) error {
	if plan.kind == planUint {
		if n < 0 || plan.bits < 64 && n>>plan.bits != 0 {
			return rangeError(lit, plan.typ)
		}
	} else if shift := 64 - plan.bits; n<<shift>>shift != n {
		return rangeError(lit, plan.typ)
	}
	switch plan.bits {
	case 8:
		*(*int8)(p) = int8(n)
	case 16:
		*(*int16)(p) = int16(n)
	case 32:
		*(*int32)(p) = int32(n)
	default:
		*(*int64)(p) = n
	}
	return nil
}

// exactFloat reads a plain decimal, such as 7.5 or -12.25, of at most 15
// digits without strconv. Such digits and the power of ten dividing them
// are exact float64s, and one IEEE division of exact operands is correctly
// rounded, so the result is the one strconv.ParseFloat gives. Anything
// else (exponents, more digits, -0) is left to strconv.
func exactFloat(lit []byte) (float64, bool) {
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	var m uint64
	digits, frac := 0, -1
	for i, c := range lit {
		switch {
		case '0' <= c && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
		case c == '.':
			frac = i
		default:
			return 0, false
		}
	}
	if digits > 15 || neg && m == 0 {
		return 0, false
	}
	f := float64(m)
	if frac >= 0 {
		f /= pow10[len(lit)-frac-1]
	}
	if neg {
		f = -f
	}
	return f, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func rangeError(lit []byte, t reflect.Type) *DecodeError {
	return &DecodeError{Reason: fmt.Sprintf("number %s does not fit Go %s", clip(lit), t)}
}

// parseInt reads a JSON integer that fits an int64.
func parseInt(lit []byte, integer bool) (int64, bool) {
	if !integer {
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	u, ok := parseUint(lit, true)
	switch {
	case !ok:
		return 0, false
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// parseUint reads a JSON integer without a sign that fits a uint64. As for
// strconv.ParseUint, "-0" is not one.
func parseUint(lit []byte, integer bool) (uint64, bool) {
	if !integer || lit[0] == '-' || len(lit) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range lit {
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// appendStringValue appends the contents of a JSON string as encoding/json
// reads them: escapes decoded, and every byte that is not part of valid
// UTF-8 replaced by U+FFFD. Decoded escapes are always valid UTF-8 and
// never start with a continuation byte, so checking after unescaping
// replaces exactly the bytes encoding/json would.
func appendStringValue(dst, raw []byte, esc bool) []byte {
	start := len(dst)
	if esc {
		dst = appendUnescaped(dst, raw)
	} else {
		dst = append(dst, raw...)
	}
	if ascii(dst[start:]) || utf8.Valid(dst[start:]) {
		return dst
	}
	bad := append([]byte(nil), dst[start:]...)
	dst = dst[:start]
	for i := 0; i < len(bad); {
		r, size := utf8.DecodeRune(bad[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, bad[i:i+size]...)
		}
		i += size
	}
	return dst
}
