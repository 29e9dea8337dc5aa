package cdc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"
)

// maxwellJSON decodes Maxwell's JSON rows; see the package doc.
type maxwellJSON struct{}

func (maxwellJSON) Decode(_, value []byte, c *Change) error {
	return decodeMaxwell(value, c)
}

func (maxwellJSON) DecodeAll(_ context.Context, _, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := decodeMaxwell(value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

type maxwellMsg struct {
	database, table, typ, ts, xid, xoffset, commit, position, gtid, data, old, pk, sql span
}

func decodeMaxwell(value []byte, c *Change) error {
	*c = Change{}
	sc := getScratch()
	defer putScratch(sc)
	var m maxwellMsg
	tombstone, err := topMembers(value, func(name []byte, v span) {
		switch string(name) {
		case "database":
			m.database = v
		case "table":
			m.table = v
		case "type":
			m.typ = v
		case "ts":
			m.ts = v
		case "xid":
			m.xid = v
		case "xoffset":
			m.xoffset = v
		case "commit":
			m.commit = v
		case "position":
			m.position = v
		case "gtid":
			m.gtid = v
		case "data":
			m.data = v
		case "old":
			m.old = v
		case "primary_key_columns":
			m.pk = v
		case "sql":
			m.sql = v
		}
	})
	if err != nil {
		return err
	}
	if tombstone {
		c.Kind = KindTombstone
		return nil
	}

	typ, esc, isNull, err := stringAt(value, m.typ)
	if err != nil {
		return within(err, "type")
	}
	if isNull {
		return &DecodeError{Field: "type", Reason: "missing"}
	}
	if esc {
		typ = appendUnescaped(nil, typ)
	}
	c.Kind = KindChange
	switch string(typ) {
	case "insert":
		c.Op = OpCreate
	case "update":
		c.Op = OpUpdate
	case "delete":
		c.Op = OpDelete
	case "bootstrap-insert":
		c.Op = OpRead
		c.Source.Snapshot = true
	case "bootstrap-start", "bootstrap-complete":
		c.Kind = KindHeartbeat
		c.Source.Snapshot = true
	case "table-create", "table-alter", "table-drop", "database-create", "database-alter", "database-drop":
		c.Kind = KindSchemaChange
	default:
		return &DecodeError{Field: "type", Reason: fmt.Sprintf("unknown type %s", clip(typ))}
	}

	ts, _, err := intAt(value, m.ts)
	if err != nil {
		return within(err, "ts")
	}
	if ts != 0 {
		c.CommitTime = time.Unix(ts, 0).UTC()
	}

	if c.Kind == KindChange {
		if err := maxwellImages(value, &m, c, sc); err != nil {
			return err
		}
	}

	t := texts{buf: sc.text[:0]}
	defer func() { sc.text = t.buf }()
	db, err := t.addString(value, m.database)
	if err != nil {
		return within(err, "database")
	}
	table, err := t.addString(value, m.table)
	if err != nil {
		return within(err, "table")
	}
	gtid, err := t.addString(value, m.gtid)
	if err != nil {
		return within(err, "gtid")
	}
	var sql textRef
	if c.Kind == KindSchemaChange {
		if sql, err = t.addString(value, m.sql); err != nil {
			return within(err, "sql")
		}
	}
	var file textRef
	var pos int64
	if !isNullAt(value, m.position) {
		raw, esc, _, err := stringAt(value, m.position)
		if err != nil {
			return within(err, "position")
		}
		if esc {
			raw = appendUnescaped(nil, raw)
		}
		colon := bytes.LastIndexByte(raw, ':')
		if colon >= 0 {
			pos, err = strconv.ParseInt(string(raw[colon+1:]), 10, 64)
		}
		if colon <= 0 || err != nil || pos < 0 {
			return &DecodeError{Field: "position", Reason: fmt.Sprintf("want \"binlog-file:offset\", got %s", clip(raw))}
		}
		file = t.add(raw[:colon], false)
	}
	var xid textRef
	hasTx := !isNullAt(value, m.xid)
	if hasTx {
		if !isInteger(value[m.xid.a:m.xid.b]) {
			return &DecodeError{Field: "xid", Reason: fmt.Sprintf("want an integer, got %s", clip(value[m.xid.a:m.xid.b]))}
		}
		xid = t.add(value[m.xid.a:m.xid.b], false)
	}
	t.done(&sc.keep)

	c.Source.Connector = "maxwell"
	c.Source.DB = t.get(db)
	c.Source.Table = t.get(table)
	c.Source.Position = Position{File: t.get(file), Pos: pos, GTID: t.get(gtid)}
	c.DDL = t.get(sql)
	if hasTx {
		off, ok, err := intAt(value, m.xoffset)
		if err != nil {
			return within(err, "xoffset")
		}
		last, err := boolAt(value, m.commit)
		if err != nil {
			return within(err, "commit")
		}
		c.Tx = sc.keep.tx()
		*c.Tx = Tx{ID: t.get(xid), Last: last}
		if ok && off >= 0 && off < 1<<62 {
			c.Tx.TotalOrder = off + 1
		}
	}
	return nil
}

// maxwellImages writes the key and images of a row event. data is the row
// after the change (before it, for a delete); old holds the previous values
// of the columns an update changed.
func maxwellImages(value []byte, m *maxwellMsg, c *Change, sc *scratch) error {
	if isNullAt(value, m.data) {
		return &DecodeError{Field: "data", Reason: fmt.Sprintf("missing, op %q needs the row", c.Op)}
	}
	row, err := members(value, m.data, sc.row)
	sc.row = row
	if err != nil {
		return within(err, "data")
	}
	pk, err := pkNames(value, m.pk, sc.pk, sc)
	sc.pk = pk
	if err != nil {
		return within(err, "primary_key_columns")
	}
	var rowIdx index
	rowIdx.reset(row)
	im := images{buf: sc.imgs[:0], refs: sc.refs[:0]}
	defer func() { sc.refs = im.refs }()
	im.begin()
	if len(pk) > 0 {
		from := im.mark()
		if im.buf, err = appendPK(im.buf, value, pk, &rowIdx, copyValue); err != nil {
			return within(err, "data")
		}
		im.set(0, 0, from)
	}
	from := im.mark()
	im.buf, _ = appendRow(im.buf, value, row, copyValue)
	if c.Op == OpDelete {
		im.set(0, 1, from)
	} else {
		im.set(0, 2, from)
	}
	if c.Op == OpUpdate {
		old := sc.old[:0]
		if !isNullAt(value, m.old) {
			old, err = members(value, m.old, sc.old)
			sc.old = old
			if err != nil {
				return within(err, "old")
			}
		}
		var oldIdx index
		oldIdx.reset(old)
		from := im.mark()
		im.buf, _ = appendOverlay(im.buf, value, row, &oldIdx, copyValue)
		im.set(0, 1, from)
	}
	sc.imgs = im.buf[:0]
	im.keepIn(&sc.keep)
	c.Key, c.Before, c.After = im.slices(0)
	return nil
}

// isInteger reports whether b is an optionally signed run of digits.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
