package cdc

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// canalJSON decodes Alibaba Canal's flat JSON messages; see the package doc.
type canalJSON struct{}

func (d canalJSON) Decode(key, value []byte, c *Change) error {
	*c = Change{}
	var one [1]Change
	out, err := d.DecodeAll(context.Background(), key, value, one[:0])
	if err != nil {
		return err
	}
	if len(out) != 1 {
		return ErrMultiRow
	}
	*c = out[0]
	return nil
}

func (canalJSON) DecodeAll(_ context.Context, _, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	out, err := decodeCanal(value, dst)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// canalMsg holds the spans of the members a Canal message is read by.
type canalMsg struct {
	data, old, typ, isDdl, database, table, es, ts, pkNames, mysqlType, sqlType, sql span
}

// colKind is what a Canal column's string value becomes.
type colKind uint8

const (
	colText   colKind = iota // stays a string
	colNumber                // a JSON number, digits kept exactly
	colBool                  // true or false
)

func decodeCanal(value []byte, dst []Change) ([]Change, error) {
	sc := getScratch()
	defer putScratch(sc)
	var m canalMsg
	tombstone, err := topMembers(value, func(name []byte, v span) {
		switch string(name) {
		case "data":
			m.data = v
		case "old":
			m.old = v
		case "type":
			m.typ = v
		case "isDdl":
			m.isDdl = v
		case "database":
			m.database = v
		case "table":
			m.table = v
		case "es":
			m.es = v
		case "ts":
			m.ts = v
		case "pkNames":
			m.pkNames = v
		case "mysqlType":
			m.mysqlType = v
		case "sqlType":
			m.sqlType = v
		case "sql":
			m.sql = v
		}
	})
	if err != nil {
		return dst, err
	}
	if tombstone {
		dst = grow(dst)
		dst[len(dst)-1] = Change{Kind: KindTombstone}
		return dst, nil
	}

	typ, esc, isNull, err := stringAt(value, m.typ)
	if err != nil {
		return dst, within(err, "type")
	}
	if isNull {
		return dst, &DecodeError{Field: "type", Reason: "missing"}
	}
	if esc {
		typ = appendUnescaped(nil, typ)
	}
	ddl, err := boolAt(value, m.isDdl)
	if err != nil {
		return dst, within(err, "isDdl")
	}
	kind, op := KindChange, Op(0)
	switch string(typ) {
	case "INSERT":
		op = OpCreate
	case "UPDATE":
		op = OpUpdate
	case "DELETE":
		op = OpDelete
	case "TRUNCATE":
		op = OpTruncate
	default:
		if !ddl {
			return dst, &DecodeError{Field: "type", Reason: fmt.Sprintf("unknown type %s (want INSERT, UPDATE, DELETE or TRUNCATE, or isDdl true)", clip(typ))}
		}
		kind = KindSchemaChange
	}
	if ddl && op != OpTruncate {
		kind, op = KindSchemaChange, 0
	}

	commit, err := canalTime(value, &m)
	if err != nil {
		return dst, err
	}

	im := images{refs: sc.refs[:0]}
	defer func() { sc.refs = im.refs }()
	if kind == KindChange && op != OpTruncate {
		if err := canalRows(value, &m, op, &im, sc); err != nil {
			return dst, err
		}
	} else {
		im.begin()
	}

	t := texts{buf: sc.text[:0]}
	defer func() { sc.text = t.buf }()
	db, err := t.addString(value, m.database)
	if err != nil {
		return dst, within(err, "database")
	}
	table, err := t.addString(value, m.table)
	if err != nil {
		return dst, within(err, "table")
	}
	var sql textRef
	if kind == KindSchemaChange {
		if sql, err = t.addString(value, m.sql); err != nil {
			return dst, within(err, "sql")
		}
	}
	t.done(&sc.keep)
	im.keepIn(&sc.keep)
	src := Source{Connector: "canal", DB: t.get(db), Table: t.get(table)}
	for i := range im.refs {
		dst = grow(dst)
		c := &dst[len(dst)-1]
		*c = Change{Kind: kind, Op: op, CommitTime: commit, Source: src, DDL: t.get(sql)}
		c.Key, c.Before, c.After = im.slices(i)
	}
	return dst, nil
}

// canalTime is es, when the statement ran on MySQL, else ts, when Canal
// built the message.
func canalTime(value []byte, m *canalMsg) (time.Time, error) {
	es, ok, err := intAt(value, m.es)
	if err != nil {
		return time.Time{}, within(err, "es")
	}
	if ok && es != 0 {
		return time.UnixMilli(es).UTC(), nil
	}
	ts, ok, err := intAt(value, m.ts)
	if err != nil {
		return time.Time{}, within(err, "ts")
	}
	if ok && ts != 0 {
		return time.UnixMilli(ts).UTC(), nil
	}
	return time.Time{}, nil
}

// canalRows writes the key and images of every row of a DML message.
func canalRows(value []byte, m *canalMsg, op Op, im *images, sc *scratch) error {
	if isNullAt(value, m.data) {
		return &DecodeError{Field: "data", Reason: fmt.Sprintf("missing, type %s needs rows", canalType(op))}
	}
	rows, err := elements(value, m.data, sc.rows)
	sc.rows = rows
	if err != nil {
		return within(err, "data")
	}
	if len(rows) == 0 {
		return &DecodeError{Field: "data", Reason: "no rows"}
	}
	var olds []span
	if op == OpUpdate && !isNullAt(value, m.old) {
		olds, err = elements(value, m.old, sc.olds)
		sc.olds = olds
		if err != nil {
			return within(err, "old")
		}
		if len(olds) != len(rows) {
			return &DecodeError{Field: "old", Reason: fmt.Sprintf("%d entries for %d rows", len(olds), len(rows))}
		}
	}
	pk, err := pkNames(value, m.pkNames, sc.pk, sc)
	sc.pk = pk
	if err != nil {
		return within(err, "pkNames")
	}
	types := &sc.types
	if err := types.init(value, m, sc); err != nil {
		return err
	}
	conv := types.value

	// Converted values are never longer than the strings they come from
	// but for booleans ("0" becomes false): twice the rows is ample.
	im.buf = sc.imgs[:0]
	defer func() { sc.imgs = im.buf[:0] }()
	rowMs, oldMs := sc.row, sc.old
	defer func() { sc.row, sc.old = rowMs, oldMs }()
	var rowIdx, oldIdx index
	for i, r := range rows {
		at := func(err error) error { return within(err, fmt.Sprintf("data[%d]", i)) }
		if rowMs, err = members(value, r, rowMs); err != nil {
			return at(err)
		}
		if len(rowMs) == 0 {
			return at(&DecodeError{Reason: "empty row"})
		}
		rowIdx.reset(rowMs)
		ci := im.begin()
		if len(pk) > 0 {
			from := im.mark()
			if im.buf, err = appendPK(im.buf, value, pk, &rowIdx, conv); err != nil {
				return at(err)
			}
			im.set(ci, 0, from)
		}
		from := im.mark()
		if im.buf, err = appendRow(im.buf, value, rowMs, conv); err != nil {
			return at(err)
		}
		switch op {
		case OpDelete:
			im.set(ci, 1, from)
			continue
		default:
			im.set(ci, 2, from)
		}
		if op != OpUpdate {
			continue
		}
		from = im.mark()
		if olds == nil {
			im.buf, err = appendRow(im.buf, value, rowMs, conv)
		} else {
			if oldMs, err = members(value, olds[i], oldMs); err != nil {
				return within(err, fmt.Sprintf("old[%d]", i))
			}
			oldIdx.reset(oldMs)
			im.buf, err = appendOverlay(im.buf, value, rowMs, &oldIdx, conv)
		}
		if err != nil {
			return at(err)
		}
		im.set(ci, 1, from)
	}
	return nil
}

func canalType(op Op) string {
	switch op {
	case OpCreate:
		return "INSERT"
	case OpUpdate:
		return "UPDATE"
	}
	return "DELETE"
}

// canalTypes says what each column's string value becomes, from the
// column's MySQL type, or its java.sql.Types code when the MySQL type is
// not given.
type canalTypes struct {
	src       []byte
	mysql     index
	mysqlKind []colKind
	sql       index
	sqlKind   []colKind
}

func (t *canalTypes) init(value []byte, m *canalMsg, sc *scratch) error {
	*t = canalTypes{src: value}
	if !isNullAt(value, m.mysqlType) {
		ms, err := members(value, m.mysqlType, sc.cols)
		sc.cols = ms
		if err != nil {
			return within(err, "mysqlType")
		}
		t.mysql.reset(ms)
		t.mysqlKind = sc.colKinds[:0]
		for _, c := range ms {
			raw, _, _, err := stringAt(value, c.val)
			if err != nil {
				return within(err, "mysqlType."+string(c.name))
			}
			t.mysqlKind = append(t.mysqlKind, mysqlKind(raw))
		}
		sc.colKinds = t.mysqlKind
	}
	if !isNullAt(value, m.sqlType) {
		ms, err := members(value, m.sqlType, sc.codes)
		sc.codes = ms
		if err != nil {
			return within(err, "sqlType")
		}
		t.sql.reset(ms)
		t.sqlKind = sc.codeKinds[:0]
		for _, c := range ms {
			code, _, err := intAt(value, c.val)
			if err != nil {
				return within(err, "sqlType."+string(c.name))
			}
			t.sqlKind = append(t.sqlKind, sqlTypeKind(code))
		}
		sc.codeKinds = t.sqlKind
	}
	return nil
}

func (t *canalTypes) kind(col []byte) (colKind, []byte) {
	if i := t.mysql.find(col, -1); i >= 0 {
		v := t.mysql.ms[i].val
		return t.mysqlKind[i], t.src[v.a:v.b]
	}
	if i := t.sql.find(col, -1); i >= 0 {
		v := t.sql.ms[i].val
		return t.sqlKind[i], t.src[v.a:v.b]
	}
	return colText, nil
}

// value writes one column value: Canal sends every value as a string, and
// the column's type says what JSON it stands for. Values that are not
// strings (null, or the typed values some Canal-compatible producers
// write) are kept as they are.
func (t *canalTypes) value(dst []byte, col []byte, v []byte) ([]byte, error) {
	if v[0] != '"' {
		return append(dst, v...), nil
	}
	kind, typ := t.kind(col)
	text := v[1 : len(v)-1]
	switch kind {
	case colNumber:
		if !isNumber(text) {
			return dst, &DecodeError{Reason: fmt.Sprintf("want a number for column type %s, got %s", typ, clip(text))}
		}
		return append(dst, text...), nil
	case colBool:
		switch string(text) {
		case "1", "true":
			return append(dst, "true"...), nil
		case "0", "false":
			return append(dst, "false"...), nil
		}
		return dst, &DecodeError{Reason: fmt.Sprintf("want 0 or 1 for column type %s, got %s", typ, clip(text))}
	}
	return append(dst, v...), nil
}

// isNumber reports whether b is exactly one JSON number.
func isNumber(b []byte) bool {
	s := scanner{b: b}
	_, _, _, err := s.num()
	return err == nil && s.i == len(b)
}

// mysqlKind classifies a MySQL column type as Canal writes it, e.g.
// "int(11) unsigned", "INTEGER", "decimal(10,2)", "bit(1)", "varchar(255)".
// BIT(1) and BOOL become booleans; other BITs, integers, floating point and
// decimals become numbers (decimals keep their exact digits); everything
// else, dates and times included, stays a string. TINYINT(1) stays a
// number: MySQL cannot tell it from a small integer column.
func mysqlKind(typ []byte) colKind {
	base := typ
	if i := bytes.IndexAny(typ, "( "); i >= 0 {
		base = typ[:i]
	}
	for _, name := range [...]string{"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year",
		"float", "double", "real", "decimal", "numeric", "dec", "fixed"} {
		if bytes.EqualFold(base, []byte(name)) {
			return colNumber
		}
	}
	switch {
	case bytes.EqualFold(base, []byte("bool")), bytes.EqualFold(base, []byte("boolean")):
		return colBool
	case bytes.EqualFold(base, []byte("bit")):
		size := typ[len(base):]
		if len(size) == 0 || bytes.HasPrefix(size, []byte("(1)")) {
			return colBool
		}
		return colNumber
	}
	return colText
}

// sqlTypeKind classifies a java.sql.Types code.
func sqlTypeKind(code int64) colKind {
	switch code {
	case -7, 16: // BIT, BOOLEAN
		return colBool
	case -6, 5, 4, -5, 6, 7, 8, 2, 3: // TINYINT, SMALLINT, INTEGER, BIGINT, FLOAT, REAL, DOUBLE, NUMERIC, DECIMAL
		return colNumber
	}
	return colText
}

// topMembers reads a flat message's top-level object, handing each member's
// value span to set, and reports an empty or null value as a tombstone.
// Every value is validated, those the format does not read included.
func topMembers(value []byte, set func(name []byte, v span)) (tombstone bool, err error) {
	if len(value) == 0 {
		return true, nil
	}
	s := scanner{b: value}
	s.ws()
	if ok, err := s.null(); ok || err != nil {
		if err == nil {
			s.ws()
			if s.i != len(s.b) {
				err = s.unexpected("end of input")
			}
		}
		return err == nil, err
	}
	if s.peek() != '{' {
		return false, &DecodeError{Reason: fmt.Sprintf("want a JSON object, got %s", typeName(s.peek()))}
	}
	s.i++
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		a := s.i
		if err := s.skip(); err != nil {
			return false, at(err, string(key))
		}
		set(key, span{a: a, b: s.i})
	}
	s.ws()
	if s.i != len(s.b) {
		return false, s.unexpected("end of input")
	}
	return false, nil
}
