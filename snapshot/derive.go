package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
)

// ErrSealed is returned when an entry's payload is sealed (package seal)
// and the snapshot was not told which fields are personal data: those
// fields would read as null in columns that may not be null.
var ErrSealed = errors.New("snapshot: sealed payload")

// deriver turns a cut of the change log into rows, the same way for Take
// and for Verify: one key at a time, in the store's key order.
type deriver struct {
	st     *auditlog.Store
	dec    *query.Decoder
	cut    auditlog.Cut
	system int64
	valid  int64
	port   string      // the output port as the log names it (Manifest.LogPort)
	table  *rowBuilder // nil when not wanted
	hist   *rowBuilder

	versions []version
	fields   []map[string]any // decoded payloads of the current key's facts
	decoded  []bool
}

// run calls emit with every row, table rows and history rows of a key
// together. The row is only valid during emit.
func (d *deriver) run(ctx context.Context, emit func(Kind, parquet.Row) error) error {
	n := 0
	return d.st.ScanKeys(d.cut, func(key []byte, facts []auditlog.Fact) error {
		if facts[0].Port != d.port {
			return nil // another output port's entity
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		clear(d.fields[:cap(d.fields)]) // earlier keys' payloads
		d.fields = slices.Grow(d.fields[:0], len(facts))[:len(facts)]
		d.decoded = slices.Grow(d.decoded[:0], len(facts))[:len(facts)]
		clear(d.decoded)
		d.versions = history(facts, d.versions[:0])
		if d.table != nil {
			// The table row is the version believed at (T, V), with the
			// periods asof prints: the history's rectangle holding them.
			if v, ok := holding(d.versions, d.system, d.valid); ok {
				m, err := d.payload(ctx, facts, v.fact)
				if err != nil {
					return err
				}
				row, err := d.table.build(key, &facts[v.fact], m, v.vf, v.vt, v.sf, 0, false)
				if err != nil {
					return err
				}
				if err := emit(Table, row); err != nil {
					return err
				}
			}
		}
		if d.hist != nil {
			for i := range d.versions {
				v := &d.versions[i]
				m, err := d.payload(ctx, facts, v.fact)
				if err != nil {
					return err
				}
				row, err := d.hist.build(key, &facts[v.fact], m, v.vf, v.vt, v.sf, v.st, v.deleted)
				if err != nil {
					return err
				}
				if err := emit(History, row); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// payload decodes facts[i] once per key.
func (d *deriver) payload(ctx context.Context, facts []auditlog.Fact, i int) (map[string]any, error) {
	f := &facts[i]
	if d.decoded[i] {
		return d.fields[i], nil
	}
	var m map[string]any
	if len(f.Payload) > 0 {
		var err error
		if m, err = d.dec.Fields(ctx, f.Payload); err != nil {
			return nil, fmt.Errorf("snapshot: log %s seq %d (key %q): %w", f.Log, f.Seq, f.Key, err)
		}
	}
	d.fields[i], d.decoded[i] = m, true
	return m, nil
}

// rowBuilder assembles one file's rows into a reused buffer.
type rowBuilder struct {
	l   *layout
	row parquet.Row
	// where the meta columns sit
	key, validFrom, validTo, systemFrom, systemTo, deleted, log, seq, sealed, erased int
}

func newRowBuilder(l *layout) *rowBuilder {
	return &rowBuilder{l: l, row: make(parquet.Row, len(l.cols)),
		key: l.index(colKey), validFrom: l.index(colValidFrom), validTo: l.index(colValidTo),
		systemFrom: l.index(colSystemFrom), systemTo: l.index(colSystemTo), deleted: l.index(colDeleted),
		log: l.index(colLog), seq: l.index(colSeq), sealed: l.index(colSealed), erased: l.index(colErased)}
}

func (b *rowBuilder) set(i int, v parquet.Value) {
	def := 0
	if b.l.cols[i].optional {
		def = 1
	}
	b.row[i] = v.Level(0, def, i)
}

func (b *rowBuilder) null(i int) { b.row[i] = parquet.NullValue().Level(0, 0, i) }

// build fills the row for fact f shown over the given periods (0 = open).
func (b *rowBuilder) build(key []byte, f *auditlog.Fact, fields map[string]any, vf, vt, sf, st int64, deleted bool) (parquet.Row, error) {
	b.set(b.key, parquet.ByteArrayValue(key))
	for _, i := range b.l.payload {
		c := &b.l.cols[i]
		v, ok := fields[c.name]
		if !ok && c.field.HasDefault {
			v, ok = c.field.Default, true // a field the entry's writer schema lacks
		}
		if !ok && fields == nil && f.Op != auditlog.OpAssert {
			return nil, fmt.Errorf("snapshot: log %s seq %d (key %q): a retraction without a payload cannot fill field %q: the history keeps a deleted row's fields",
				f.Log, f.Seq, f.Key, c.name)
		}
		switch {
		case v == nil && c.optional:
			b.null(i)
		case v == nil:
			return nil, fmt.Errorf("snapshot: log %s seq %d (key %q): field %q is %s, but its column may not be null",
				f.Log, f.Seq, f.Key, c.name, map[bool]string{true: "null", false: "missing"}[ok])
		default:
			pv, err := c.to(v)
			if err != nil {
				return nil, fmt.Errorf("snapshot: log %s seq %d (key %q): field %q: %w", f.Log, f.Seq, f.Key, c.name, err)
			}
			b.set(i, pv)
		}
	}
	b.set(b.validFrom, parquet.Int64Value(vf))
	b.setTime(b.validTo, vt)
	b.set(b.systemFrom, parquet.Int64Value(sf))
	if b.systemTo >= 0 {
		b.setTime(b.systemTo, st)
		b.set(b.deleted, parquet.BooleanValue(deleted))
	}
	b.set(b.log, parquet.ByteArrayValue(stringBytes(f.Log)))
	b.set(b.seq, parquet.Int64Value(int64(f.Seq)))
	sealed, erased := names(fields["_sealed"]), names(fields["_erased"])
	if !b.l.sealed {
		if sealed != "" || erased != "" {
			return nil, fmt.Errorf("%w: log %s seq %d (key %q) seals fields %s%s: take the snapshot with PII naming the contract's pii fields",
				ErrSealed, f.Log, f.Seq, f.Key, sealed, erased)
		}
	} else {
		b.setText(b.sealed, sealed)
		b.setText(b.erased, erased)
	}
	return b.row, nil
}

func (b *rowBuilder) setTime(i int, us int64) {
	if us == 0 {
		b.null(i)
		return
	}
	b.set(i, parquet.Int64Value(us))
}

func (b *rowBuilder) setText(i int, s string) {
	if s == "" {
		b.null(i)
		return
	}
	b.set(i, parquet.ByteArrayValue([]byte(s)))
}

// names is the decoder's list of sealed or erased fields, comma-joined.
func names(v any) string {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
