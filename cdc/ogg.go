package cdc

import (
	"context"
	"fmt"
	"time"
)

// oggJSON decodes Oracle GoldenGate's JSON operations; see the package doc.
type oggJSON struct{}

func (oggJSON) Decode(_, value []byte, c *Change) error {
	return decodeOgg(value, c)
}

func (oggJSON) DecodeAll(_ context.Context, _, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := decodeOgg(value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

type oggMsg struct {
	table, opType, opTS, currentTS, pos, pk, before, after span
}

func decodeOgg(value []byte, c *Change) error {
	*c = Change{}
	sc := getScratch()
	defer putScratch(sc)
	var m oggMsg
	tombstone, err := topMembers(value, func(name []byte, v span) {
		switch string(name) {
		case "table":
			m.table = v
		case "op_type":
			m.opType = v
		case "op_ts":
			m.opTS = v
		case "current_ts":
			m.currentTS = v
		case "pos":
			m.pos = v
		case "primary_keys":
			m.pk = v
		case "before":
			m.before = v
		case "after":
			m.after = v
		}
	})
	if err != nil {
		return err
	}
	if tombstone {
		c.Kind = KindTombstone
		return nil
	}

	opType, _, isNull, err := stringAt(value, m.opType)
	if err != nil {
		return within(err, "op_type")
	}
	if isNull {
		return &DecodeError{Field: "op_type", Reason: "missing"}
	}
	c.Kind = KindChange
	switch string(opType) {
	case "I":
		c.Op = OpCreate
	case "U":
		c.Op = OpUpdate
	case "D":
		c.Op = OpDelete
	case "T":
		c.Op = OpTruncate
	default:
		return &DecodeError{Field: "op_type", Reason: fmt.Sprintf("unknown op_type %s (want I, U, D or T)", clip(opType))}
	}

	// op_ts is when the operation was committed in the source; current_ts,
	// when GoldenGate wrote it out, stands in for a missing one.
	if c.CommitTime, err = oggTime(value, m.opTS); err != nil {
		return within(err, "op_ts")
	}
	if c.CommitTime.IsZero() {
		if c.CommitTime, err = oggTime(value, m.currentTS); err != nil {
			return within(err, "current_ts")
		}
	}

	for _, img := range [...]struct {
		name string
		v    span
	}{{"before", m.before}, {"after", m.after}} {
		if !isNullAt(value, img.v) && value[img.v.a] != '{' {
			return &DecodeError{Field: img.name, Reason: wrongType("an object or null", value[img.v.a]).Reason}
		}
	}
	hasBefore, hasAfter := !isNullAt(value, m.before), !isNullAt(value, m.after)
	switch c.Op {
	case OpCreate:
		if !hasAfter {
			return &DecodeError{Field: "after", Reason: `missing, op_type "I" needs the new row`}
		}
		if hasBefore {
			return &DecodeError{Field: "before", Reason: `present, op_type "I" has no old row`}
		}
	case OpUpdate:
		if !hasAfter {
			return &DecodeError{Field: "after", Reason: `missing, op_type "U" needs the new row`}
		}
		c.BeforeMissing = !hasBefore
	case OpDelete:
		if !hasBefore {
			return &DecodeError{Field: "before", Reason: `missing, op_type "D" needs the old row or its key`}
		}
		if hasAfter {
			return &DecodeError{Field: "after", Reason: `present, op_type "D" has no new row`}
		}
	case OpTruncate:
		if hasBefore || hasAfter {
			return &DecodeError{Field: "before", Reason: `row image present, op_type "T" has none`}
		}
	}

	if c.Op != OpTruncate {
		if err := oggImages(value, &m, c, sc); err != nil {
			return err
		}
	}

	t := texts{buf: sc.text[:0]}
	defer func() { sc.text = t.buf }()
	table, err := t.addString(value, m.table)
	if err != nil {
		return within(err, "table")
	}
	pos, err := t.addString(value, m.pos)
	if err != nil {
		return within(err, "pos")
	}
	t.done(&sc.keep)
	c.Source.Connector = "ogg"
	c.Source.DB, c.Source.Schema, c.Source.Table = splitTable(t.get(table))
	c.Source.Position.Trail = t.get(pos)
	return nil
}

// oggImages copies the row images and builds the key from primary_keys,
// taken from the new row, or the old one for a delete.
func oggImages(value []byte, m *oggMsg, c *Change, sc *scratch) error {
	pk, err := pkNames(value, m.pk, sc.pk, sc)
	sc.pk = pk
	if err != nil {
		return within(err, "primary_keys")
	}
	im := images{buf: sc.imgs[:0], refs: sc.refs[:0]}
	defer func() { sc.refs = im.refs }()
	im.begin()
	row := sc.row[:0]
	defer func() { sc.row = row }()
	for which, v := range [...]span{1: m.before, 2: m.after} {
		if which == 0 || isNullAt(value, v) {
			continue
		}
		from := im.mark()
		im.buf = append(im.buf, value[v.a:v.b]...)
		im.set(0, which, from)
		if len(pk) > 0 && (which == 2 || c.Op == OpDelete) {
			if row, err = members(value, v, row); err != nil {
				return within(err, [...]string{1: "before", 2: "after"}[which])
			}
		}
	}
	if len(pk) > 0 {
		var idx index
		idx.reset(row)
		from := im.mark()
		name := "after"
		if c.Op == OpDelete {
			name = "before"
		}
		if im.buf, err = appendPK(im.buf, value, pk, &idx, copyValue); err != nil {
			return within(err, name)
		}
		im.set(0, 0, from)
	}
	sc.imgs = im.buf[:0]
	im.keepIn(&sc.keep)
	c.Key, c.Before, c.After = im.slices(0)
	return nil
}

// oggTime reads GoldenGate's timestamps, "2020-05-13 15:40:06.000000"
// (op_ts) or "2020-05-13T13:39:35.766000" (current_ts), in UTC. The
// fraction may have up to nine digits or be absent.
func oggTime(value []byte, v span) (time.Time, error) {
	raw, esc, isNull, err := stringAt(value, v)
	if err != nil || isNull {
		return time.Time{}, err
	}
	if esc || len(raw) < 19 || len(raw) > 29 {
		return time.Time{}, &DecodeError{Reason: fmt.Sprintf(`want "YYYY-MM-DD HH:MM:SS.ffffff", got %s`, clip(raw))}
	}
	layout := "2006-01-02 15:04:05.999999999"
	if raw[10] == 'T' {
		layout = "2006-01-02T15:04:05.999999999"
	}
	t, err := time.Parse(layout, string(raw))
	if err != nil {
		return time.Time{}, &DecodeError{Reason: fmt.Sprintf(`want "YYYY-MM-DD HH:MM:SS.ffffff", got %s`, clip(raw))}
	}
	return t, nil
}
