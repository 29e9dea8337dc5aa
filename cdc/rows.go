package cdc

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
)

// scratch is the working memory of one flat-format decode, pooled so that
// a message costs only what it keeps: its images, its strings, its Tx.
type scratch struct {
	row, old, pk, cols, codes []member
	rows, olds, elems         []span
	colKinds, codeKinds       []colKind
	refs                      [][3]textRef
	text, imgs                []byte // strings and images being built
	types                     canalTypes
	keep                      keeper // where what the changes keep goes
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooled bounds what a pooled scratch keeps, so that one huge message
// does not pin its working memory for good.
const maxPooled = 1 << 12

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.row) > maxPooled || cap(sc.old) > maxPooled || cap(sc.cols) > maxPooled || cap(sc.codes) > maxPooled ||
		cap(sc.rows) > maxPooled || cap(sc.olds) > maxPooled || cap(sc.refs) > maxPooled || cap(sc.text) > 16*maxPooled || cap(sc.imgs) > 16*maxPooled ||
		cap(sc.pk) > maxPooled || cap(sc.elems) > maxPooled {
		return
	}
	sc.types = canalTypes{}
	scratchPool.Put(sc)
}

// This file holds what the flat JSON formats (Canal, Maxwell, GoldenGate)
// share: reading an object into member spans, writing row images and keys,
// and gathering the strings a message keeps into one allocation.

// member is one member of a JSON object, as spans into the message.
type member struct {
	raw  span   // the key between its quotes, escapes and all, for writing back
	name []byte // the key unescaped, for lookups; aliases the message unless escaped
	val  span   // the value
}

// members reads the object at v in b into dst (reset first). Escaped keys
// are unescaped into fresh slices; the formats never escape their keys, so
// that path is cold.
func members(b []byte, v span, dst []member) ([]member, error) {
	dst = dst[:0]
	s := scanner{b: b[:v.b], i: v.a}
	if err := s.open(); err != nil {
		return dst, wrongType("an object", s.peek())
	}
	for n := 0; ; n++ {
		s.ws()
		if s.peek() == '}' {
			s.i++
			return dst, nil
		}
		if n > 0 {
			if s.peek() != ',' {
				return dst, s.unexpected("',' or '}'")
			}
			s.i++
			s.ws()
		}
		if s.peek() != '"' {
			return dst, s.unexpected("a string key")
		}
		a, e, esc, err := s.str()
		if err != nil {
			return dst, err
		}
		m := member{raw: span{a: a, b: e}, name: b[a:e]}
		if esc {
			m.name = appendUnescaped(nil, b[a:e])
		}
		s.ws()
		if s.peek() != ':' {
			return dst, s.unexpected("':'")
		}
		s.i++
		s.ws()
		m.val.a = s.i
		if err := s.skip(); err != nil {
			return dst, within(err, string(m.name))
		}
		m.val.b = s.i
		dst = append(dst, m)
	}
}

// elements reads the array at v in b into dst (reset first): one span per
// element.
func elements(b []byte, v span, dst []span) ([]span, error) {
	dst = dst[:0]
	s := scanner{b: b[:v.b], i: v.a}
	if s.peek() != '[' {
		return dst, wrongType("an array", s.peek())
	}
	s.i++
	for n := 0; ; n++ {
		s.ws()
		if s.peek() == ']' {
			s.i++
			return dst, nil
		}
		if n > 0 {
			if s.peek() != ',' {
				return dst, s.unexpected("',' or ']'")
			}
			s.i++
			s.ws()
		}
		a := s.i
		if err := s.skip(); err != nil {
			return dst, within(err, fmt.Sprintf("[%d]", n))
		}
		dst = append(dst, span{a: a, b: s.i})
	}
}

// index finds members by name: a linear scan for the few columns real rows
// have, a map once there are many, so that a hostile message cannot make
// lookups quadratic in its size.
type index struct {
	ms  []member
	big map[string]int
}

const linearLookups = 32

func (x *index) reset(ms []member) {
	x.ms = ms
	x.big = nil
	if len(ms) > linearLookups {
		x.big = make(map[string]int, len(ms))
		for i, m := range ms {
			x.big[string(m.name)] = i // the last duplicate wins, as in encoding/json
		}
	}
}

// find returns the position of the member called name, -1 if none; hint
// is where it is expected (rows usually list columns in one order).
func (x *index) find(name []byte, hint int) int {
	if hint >= 0 && hint < len(x.ms) && bytes.Equal(x.ms[hint].name, name) {
		return hint
	}
	if x.big != nil {
		if i, ok := x.big[string(name)]; ok {
			return i
		}
		return -1
	}
	for i := len(x.ms) - 1; i >= 0; i-- {
		if bytes.Equal(x.ms[i].name, name) {
			return i
		}
	}
	return -1
}

// valueFunc writes one column's value: as sent, or converted (Canal).
type valueFunc func(dst []byte, col []byte, v []byte) ([]byte, error)

func copyValue(dst []byte, _ []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }

// appendRow writes the object row (members of src) to dst, each value
// through conv. Errors name the column.
func appendRow(dst, src []byte, row []member, conv valueFunc) ([]byte, error) {
	dst = append(dst, '{')
	for i, m := range row {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendKey(dst, src, m)
		var err error
		if dst, err = conv(dst, m.name, src[m.val.a:m.val.b]); err != nil {
			return dst, within(err, string(m.name))
		}
	}
	return append(dst, '}'), nil
}

// appendOverlay writes row with the values of old put over it: the old
// image of formats that send only the changed columns' old values. Columns
// only old names come last.
func appendOverlay(dst, src []byte, row []member, old *index, conv valueFunc) ([]byte, error) {
	dst = append(dst, '{')
	used := 0
	wrote := len(row) > 0
	for i, m := range row {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendKey(dst, src, m)
		v := m.val
		if j := old.find(m.name, -1); j >= 0 {
			v = old.ms[j].val
			used++
		}
		var err error
		if dst, err = conv(dst, m.name, src[v.a:v.b]); err != nil {
			return dst, within(err, string(m.name))
		}
	}
	if used < len(old.ms) {
		var rows index
		rows.reset(row)
		for _, m := range old.ms {
			if rows.find(m.name, -1) >= 0 {
				continue
			}
			if wrote {
				dst = append(dst, ',')
			}
			wrote = true
			dst = appendKey(dst, src, m)
			var err error
			if dst, err = conv(dst, m.name, src[m.val.a:m.val.b]); err != nil {
				return dst, within(err, string(m.name))
			}
		}
	}
	return append(dst, '}'), nil
}

// appendPK writes the object of the primary-key columns pk taken from row,
// in pk's order.
func appendPK(dst, src []byte, pk []member, row *index, conv valueFunc) ([]byte, error) {
	dst = append(dst, '{')
	for i, k := range pk {
		j := row.find(k.name, -1)
		if j < 0 {
			return dst, &DecodeError{Reason: fmt.Sprintf("primary key column %s missing from the row", clip(k.name))}
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendKey(dst, src, k)
		m := row.ms[j]
		var err error
		if dst, err = conv(dst, m.name, src[m.val.a:m.val.b]); err != nil {
			return dst, within(err, string(m.name))
		}
	}
	return append(dst, '}'), nil
}

func appendKey(dst, src []byte, m member) []byte {
	dst = append(dst, '"')
	dst = append(dst, src[m.raw.a:m.raw.b]...)
	return append(dst, '"', ':')
}

// pkNames reads an array of column names (or null) into members whose raw
// span is the name's string contents.
func pkNames(b []byte, v span, dst []member, sc *scratch) ([]member, error) {
	dst = dst[:0]
	if isNullAt(b, v) {
		return dst, nil
	}
	es, err := elements(b, v, sc.elems)
	sc.elems = es
	if err != nil {
		return dst, err
	}
	for i, e := range es {
		raw, esc, isNull, err := stringAt(b, e)
		if err != nil || isNull {
			if err == nil {
				err = wrongType("a string", 'n')
			}
			return dst, within(err, fmt.Sprintf("[%d]", i))
		}
		m := member{raw: span{a: e.a + 1, b: e.b - 1}, name: raw}
		if esc {
			m.name = appendUnescaped(nil, raw)
		}
		dst = append(dst, m)
	}
	return dst, nil
}

// isNullAt reports whether the value at v is JSON null (or absent: the
// zero span).
func isNullAt(b []byte, v span) bool {
	return v.len() == 0 || b[v.a] == 'n'
}

// stringAt reads the string or null at v; raw is its contents, escapes and all.
func stringAt(b []byte, v span) (raw []byte, esc, isNull bool, err error) {
	if v.len() == 0 {
		return nil, false, true, nil
	}
	s := scanner{b: b[:v.b], i: v.a}
	switch s.peek() {
	case 'n':
		return nil, false, true, s.literal("null")
	case '"':
		a, e, esc, err := s.str()
		if err != nil {
			return nil, false, false, err
		}
		return b[a:e], esc, false, nil
	}
	return nil, false, false, wrongType("a string or null", s.peek())
}

// intAt reads the integer or null at v.
func intAt(b []byte, v span) (int64, bool, error) {
	if v.len() == 0 || b[v.a] == 'n' {
		return 0, false, nil
	}
	s := scanner{b: b[:v.b], i: v.a}
	n, err := s.int()
	return n, err == nil, err
}

// boolAt reads the boolean or null at v.
func boolAt(b []byte, v span) (bool, error) {
	if v.len() == 0 {
		return false, nil
	}
	switch b[v.a] {
	case 't':
		return true, nil
	case 'f', 'n':
		return false, nil
	}
	return false, wrongType("a boolean or null", b[v.a])
}

// texts gathers the strings one message keeps, so that they cost one
// allocation together rather than one each.
type texts struct {
	buf []byte
	all string
}

type textRef struct{ a, b int }

// add keeps the string contents raw (unescaping them if esc).
func (t *texts) add(raw []byte, esc bool) textRef {
	a := len(t.buf)
	if esc {
		t.buf = appendUnescaped(t.buf, raw)
	} else {
		t.buf = append(t.buf, raw...)
	}
	return textRef{a, len(t.buf)}
}

// addString keeps the string or null at v in b.
func (t *texts) addString(b []byte, v span) (textRef, error) {
	raw, esc, _, err := stringAt(b, v)
	if err != nil {
		return textRef{}, err
	}
	return t.add(raw, esc), nil
}

func (t *texts) done(k *keeper) { t.all = k.keepString(t.buf) }

func (t *texts) get(r textRef) string { return t.all[r.a:r.b] }

// images is where a message's key and row images are written: one buffer,
// sliced once complete so that appending to one image never reaches the
// next.
type images struct {
	buf  []byte
	refs [][3]textRef // per change: key, before, after; {0,0} = none
}

// begin starts a new change's images and returns its number.
func (im *images) begin() int {
	im.refs = append(im.refs, [3]textRef{})
	return len(im.refs) - 1
}

func (im *images) mark() int { return len(im.buf) }

func (im *images) set(change, which, from int) {
	im.refs[change][which] = textRef{from, len(im.buf)}
}

// keepIn moves the finished images into k's chunks; the buffer they were
// built in is the caller's to reuse.
func (im *images) keepIn(k *keeper) {
	im.buf = append(k.take(len(im.buf)), im.buf...)
}

// slices hands out the images of change i.
func (im *images) slices(i int) (key, before, after []byte) {
	get := func(r textRef) []byte {
		if r.a == r.b {
			return nil
		}
		return im.buf[r.a:r.b:r.b]
	}
	r := im.refs[i]
	return get(r[0]), get(r[1]), get(r[2])
}

// splitTable splits a dotted table name: "TABLE", "SCHEMA.TABLE" or
// "CATALOG.SCHEMA.TABLE" (the catalog, e.g. an Oracle PDB, becomes DB).
func splitTable(name string) (db, schema, table string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", "", name
	}
	table = name[i+1:]
	rest := name[:i]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return "", rest, table
	}
	return rest[:j], rest[j+1:], table
}
