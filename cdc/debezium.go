package cdc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// debeziumJSON decodes Debezium's JSON converter output; see the package doc
// for the rules.
type debeziumJSON struct{}

// span is a [a, b) range of bytes in the input, or in envelope.unescaped
// when esc is set. For row images and keys the zero span means absent; for
// strings it is simply "".
type span struct {
	a, b int
	esc  bool
}

func (s span) len() int { return s.b - s.a }

// stamp is a timestamp as sent, kept at the finest unit seen.
type stamp struct {
	v    int64
	unit int8 // 0 none, 1 ms, 2 µs, 3 ns
}

func (t *stamp) offer(v int64, unit int8) {
	// Zero is what old MySQL connectors send during snapshots: unknown, not 1970.
	if v != 0 && unit > t.unit {
		t.v, t.unit = v, unit
	}
}

func (t stamp) time() time.Time {
	switch t.unit {
	case 1:
		return time.UnixMilli(t.v).UTC()
	case 2:
		return time.UnixMicro(t.v).UTC()
	case 3:
		return time.Unix(0, t.v).UTC()
	}
	return time.Time{}
}

// envelope gathers what one pass over a message finds; nothing is copied out
// of the input until the pass has succeeded.
type envelope struct {
	s scanner

	// String fields stay spans until the pass succeeds; then they become Go
	// strings with one allocation per message instead of one per field.
	// Only escaped strings, which Debezium hardly ever sends, need room of
	// their own.
	unescaped                              []byte
	connector, name, db, schema, table     span
	file, gtid, commitLSN, changeLSN, txID span

	before, after span // in the value; zero when absent or null
	hasOp         bool
	op            Op
	snapshot      bool
	sourceTime    stamp
	eventTime     stamp // the envelope's own ts_*: when the connector saw the change
	hasEventTime  bool  // set even for a zero ts_*, which still marks a heartbeat

	lsn, txIDNum, pos, row, serial int64

	hasTx                       bool
	totalOrder, collectionOrder int64

	// Transaction metadata, from the connector's transaction topic.
	status, txIDTop span // "status" and the top-level "id"
	hasStatus       bool
	eventCount      int64
	hasEventCount   bool
	collections     []span  // data_collections[].data_collection
	collCounts      []int64 // data_collections[].event_count

	// Schema-change events.
	ddl, dbName span // "ddl" and "databaseName"
	hasDDL      bool // "ddl", "databaseName" or "tableChanges" was seen

	heartbeatSchema    bool // the schema is Debezium's heartbeat schema
	txSchema           bool // the schema is the transaction metadata value
	schemaChangeSchema bool // the schema is a connector's schema-change value
	wrapped            bool // a "payload" member was seen at the top level
	bare               bool // envelope members were seen at the top level
	nullPayload        bool
}

func (debeziumJSON) Decode(key, value []byte, c *Change) error {
	return decodeDebezium(key, false, value, nil, c)
}

func (debeziumJSON) DecodeAll(_ context.Context, key, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := decodeDebezium(key, false, value, nil, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// decodeDebezium reads one Debezium envelope. The JSON decoder passes the
// record key as sent; the Avro decoder passes the key already turned into
// JSON (keyReady), which must not be unwrapped again, and the value's
// schema name, which the JSON form carries in its schemas.enable wrapper.
func decodeDebezium(key []byte, keyReady bool, value []byte, schemaName []byte, c *Change) error {
	*c = Change{}
	var e envelope
	e.classify(schemaName)

	keySpan := span{b: len(key)}
	if !keyReady {
		var err error
		if keySpan, err = rawKey(key); err != nil {
			return err
		}
	}
	tombstone := len(value) == 0
	if !tombstone {
		e.s.b = value
		var err error
		if tombstone, err = e.top(); err != nil {
			return err
		}
	}
	if tombstone {
		c.Kind = KindTombstone
		if keySpan.len() > 0 {
			c.Key = append([]byte(nil), key[keySpan.a:keySpan.b]...)
		}
		return nil
	}

	p := ""
	if e.wrapped {
		p = "payload."
	}
	switch {
	case e.heartbeatSchema:
		c.Kind = KindHeartbeat
		e.before, e.after = span{}, span{}
	case !e.hasOp && (e.txSchema || e.hasStatus):
		c.Kind = KindTxBoundary
		if err := e.checkBoundary(p); err != nil {
			return err
		}
		e.before, e.after = span{}, span{}
	case !e.hasOp && (e.schemaChangeSchema || e.hasDDL):
		c.Kind = KindSchemaChange
		e.before, e.after = span{}, span{}
	case !e.hasOp && e.before.len() == 0 && e.after.len() == 0 && e.hasEventTime:
		c.Kind = KindHeartbeat
	case !e.hasOp:
		return &DecodeError{Field: p + "op", Reason: "missing"}
	default:
		c.Kind = KindChange
		c.Op = e.op
		if err := e.checkImages(p); err != nil {
			return err
		}
		c.BeforeMissing = (e.op == OpUpdate || e.op == OpDelete) && e.before.len() == 0
	}

	// What the change keeps goes into shared chunks: no allocation of its
	// own for the JSON (key, before, after) or the strings.
	sc := getScratch()
	defer putScratch(sc)
	if n := keySpan.len() + e.before.len() + e.after.len(); n > 0 {
		buf := sc.keep.take(n)
		c.Key, buf = keep(buf, key, keySpan)
		c.Before, buf = keep(buf, value, e.before)
		c.After, _ = keep(buf, value, e.after)
	}

	// One allocation for all strings kept.
	fields := [...]*span{&e.connector, &e.name, &e.db, &e.schema, &e.table, &e.file, &e.gtid, &e.commitLSN, &e.changeLSN, &e.txID,
		&e.status, &e.txIDTop, &e.ddl, &e.dbName}
	n := 0
	for _, f := range fields {
		n += f.len()
	}
	for _, f := range e.collections {
		n += f.len()
	}
	var all string
	if n > 0 {
		sb := sc.text[:0]
		for _, f := range fields {
			sb = e.rebase(sb, f)
		}
		for i := range e.collections {
			sb = e.rebase(sb, &e.collections[i])
		}
		all = sc.keep.keepString(sb)
		sc.text = sb[:0]
	}
	str := func(s span) string {
		if s.len() == 0 {
			return "" // empty strings were not rebased onto all
		}
		return all[s.a:s.b]
	}
	c.Source = Source{
		Connector: str(e.connector),
		Name:      str(e.name),
		DB:        str(e.db),
		Schema:    str(e.schema),
		Table:     str(e.table),
		Snapshot:  e.snapshot,
		Position: Position{
			LSN:           e.lsn,
			TxID:          e.txIDNum,
			File:          str(e.file),
			Pos:           e.pos,
			Row:           e.row,
			GTID:          str(e.gtid),
			CommitLSN:     str(e.commitLSN),
			ChangeLSN:     str(e.changeLSN),
			EventSerialNo: e.serial,
		},
	}
	if e.hasTx {
		c.Tx = sc.keep.tx()
		*c.Tx = Tx{ID: str(e.txID), TotalOrder: e.totalOrder, DataCollectionOrder: e.collectionOrder}
	}
	switch c.Kind {
	case KindSchemaChange:
		c.DDL = str(e.ddl)
		if c.Source.DB == "" {
			c.Source.DB = str(e.dbName)
		}
	case KindTxBoundary:
		b := &TxBoundary{Status: TxStatus(str(e.status)), ID: str(e.txIDTop), EventCount: e.eventCount}
		if len(e.collections) > 0 {
			b.Collections = make([]CollectionCount, len(e.collections))
			for i, s := range e.collections {
				b.Collections[i] = CollectionCount{Collection: str(s), EventCount: e.collCounts[i]}
			}
		}
		c.Boundary = b
	}
	// A snapshot read from a connector that sends no source time is dated by
	// when it was read: the best bound on when the row's state was committed.
	t := e.sourceTime
	if t.unit == 0 {
		t = e.eventTime
	}
	c.CommitTime = t.time()
	return nil
}

// rebase appends the string at *f to sb and points *f at the copy.
func (e *envelope) rebase(sb []byte, f *span) []byte {
	if f.len() == 0 {
		return sb
	}
	src := e.s.b
	if f.esc {
		src = e.unescaped
	}
	start := len(sb)
	sb = append(sb, src[f.a:f.b]...)
	*f = span{a: start, b: len(sb)}
	return sb
}

// classify recognises the control messages by their schema's name:
// io.debezium.connector.common.Heartbeat,
// io.debezium.connector.common.TransactionMetadataValue, and the
// connectors' io.debezium.connector.<name>.SchemaChangeValue.
func (e *envelope) classify(name []byte) {
	e.heartbeatSchema = bytes.HasSuffix(name, []byte("Heartbeat"))
	e.txSchema = bytes.HasSuffix(name, []byte("TransactionMetadataValue"))
	e.schemaChangeSchema = bytes.HasSuffix(name, []byte("SchemaChangeValue"))
}

// checkBoundary holds a transaction metadata event to what a runtime
// needs to count the transaction's changes.
func (e *envelope) checkBoundary(p string) error {
	if !e.hasStatus {
		return &DecodeError{Field: p + "status", Reason: "missing"}
	}
	if e.txIDTop.len() == 0 {
		return &DecodeError{Field: p + "id", Reason: "missing"}
	}
	status := e.s.b[e.status.a:e.status.b]
	if e.status.esc {
		status = e.unescaped[e.status.a:e.status.b]
	}
	switch TxStatus(status) {
	case TxBegin:
	case TxEnd:
		if !e.hasEventCount {
			return &DecodeError{Field: p + "event_count", Reason: "missing, an END needs it"}
		}
	default:
		return &DecodeError{Field: p + "status", Reason: fmt.Sprintf("unknown status %s (want BEGIN or END)", clip(status))}
	}
	if e.eventCount < 0 {
		return &DecodeError{Field: p + "event_count", Reason: "negative"}
	}
	for i, n := range e.collCounts {
		if n < 0 {
			return &DecodeError{Field: fmt.Sprintf("%sdata_collections[%d].event_count", p, i), Reason: "negative"}
		}
	}
	return nil
}

// keep copies src[s] into the spare capacity of buf and returns the copy,
// capped so that appending to it cannot overwrite its neighbour.
func keep(buf, src []byte, s span) ([]byte, []byte) {
	if s.len() == 0 {
		return nil, buf
	}
	n := len(buf)
	buf = append(buf, src[s.a:s.b]...)
	return buf[n:len(buf):len(buf)], buf
}

// checkImages refuses row images that contradict the op: taking a guess
// would put a wrong row into the change log.
func (e *envelope) checkImages(p string) error {
	switch e.op {
	case OpCreate, OpRead:
		if e.after.len() == 0 {
			return &DecodeError{Field: p + "after", Reason: fmt.Sprintf("missing, op %q needs the new row", e.op)}
		}
		if e.before.len() != 0 {
			return &DecodeError{Field: p + "before", Reason: fmt.Sprintf("present, op %q has no old row", e.op)}
		}
	case OpUpdate:
		if e.after.len() == 0 {
			return &DecodeError{Field: p + "after", Reason: `missing, op "u" needs the new row`}
		}
	case OpDelete, OpTruncate:
		if e.after.len() != 0 {
			return &DecodeError{Field: p + "after", Reason: fmt.Sprintf("present, op %q has no new row", e.op)}
		}
		if e.op == OpTruncate && e.before.len() != 0 {
			return &DecodeError{Field: p + "before", Reason: `present, op "t" has no old row`}
		}
	}
	return nil
}

// top reads the record value: a bare envelope, or the schemas.enable wrapper
// around one. It reports a tombstone for a JSON null value or payload.
func (e *envelope) top() (tombstone bool, err error) {
	s := &e.s
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
	hasSchema := false
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "schema":
			hasSchema = true
			if err := e.schemaName(); err != nil {
				return false, at(err, "schema")
			}
		case "payload":
			e.wrapped = true
			isNull, err := s.null()
			if err != nil {
				return false, at(err, "payload")
			}
			if isNull {
				e.nullPayload = true
				break
			}
			if s.peek() != '{' {
				return false, &DecodeError{Field: "payload", Reason: wrongType("an object or null", s.peek()).Reason}
			}
			if err := e.members("payload."); err != nil {
				return false, err
			}
		default:
			e.bare = true
			if err := e.member(key, ""); err != nil {
				return false, err
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return false, s.unexpected("end of input")
	}
	switch {
	case e.wrapped && e.bare:
		return false, &DecodeError{Field: "payload", Reason: "envelope fields found beside the schemas.enable payload"}
	case hasSchema && !e.wrapped:
		return false, &DecodeError{Field: "payload", Reason: "missing beside schema"}
	}
	return e.nullPayload, nil
}

// schemaName reads the wrapper's schema, keeping only what its top-level
// name says about the message (heartbeat, transaction metadata, schema
// change). The rest is skipped: field types are not needed to
// read JSON, and the schema is most of a wrapped message's bytes.
func (e *envelope) schemaName() error {
	s := &e.s
	if isNull, err := s.null(); isNull || err != nil {
		return err
	}
	if s.peek() != '{' {
		return wrongType("an object or null", s.peek())
	}
	s.i++
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil || !ok {
			return err
		}
		if string(key) != "name" || s.peek() != '"' {
			if err := s.skip(); err != nil {
				return err
			}
			continue
		}
		a, b, esc, err := s.str()
		if err != nil {
			return at(err, "schema.name")
		}
		name := s.b[a:b]
		if esc {
			name = appendUnescaped(nil, name)
		}
		e.classify(name)
	}
}

// members reads an envelope object; p is the path prefix of its members.
func (e *envelope) members(p string) error {
	s := &e.s
	s.i++
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil {
			return at(err, strings.TrimSuffix(p, "."))
		}
		if !ok {
			return nil
		}
		if err := e.member(key, p); err != nil {
			return err
		}
	}
}

// member reads one envelope member; unknown members are checked and skipped.
func (e *envelope) member(key []byte, p string) error {
	s := &e.s
	var err error
	switch string(key) {
	case "op":
		if err = e.readOp(); err != nil {
			return at(err, p+"op")
		}
	case "before":
		if e.before, err = e.image(); err != nil {
			return at(err, p+"before")
		}
	case "after":
		if e.after, err = e.image(); err != nil {
			return at(err, p+"after")
		}
	case "source":
		return e.source(p)
	case "transaction":
		return e.transaction(p)
	case "ts_ms", "ts_us", "ts_ns":
		v, err := s.int()
		if err != nil {
			return at(err, p+string(key))
		}
		e.eventTime.offer(v, unitOf(key))
		e.hasEventTime = true
	case "status":
		e.hasStatus = true
		if e.status, err = e.text(); err != nil {
			return at(err, p+"status")
		}
	case "id":
		// Only transaction metadata has a top-level id; elsewhere it is an
		// unknown member, which must not start failing for its type.
		if s.peek() != '"' {
			if err := s.skip(); err != nil {
				return at(err, p+"id")
			}
			break
		}
		if e.txIDTop, err = e.text(); err != nil {
			return at(err, p+"id")
		}
	case "event_count":
		if s.peek() != 'n' {
			e.hasEventCount = true
		}
		if e.eventCount, err = s.int(); err != nil {
			return at(err, p+"event_count")
		}
	case "data_collections":
		return e.dataCollections(p)
	case "ddl":
		e.hasDDL = true
		if e.ddl, err = e.text(); err != nil {
			return at(err, p+"ddl")
		}
	case "databaseName":
		e.hasDDL = true
		if e.dbName, err = e.text(); err != nil {
			return at(err, p+"databaseName")
		}
	case "tableChanges":
		e.hasDDL = true
		if err := s.skip(); err != nil {
			return at(err, p+"tableChanges")
		}
	default:
		if err := s.skip(); err != nil {
			return at(err, p+string(key))
		}
	}
	return nil
}

func unitOf(key []byte) int8 {
	switch key[len(key)-2] {
	case 'm':
		return 1
	case 'u':
		return 2
	}
	return 3
}

func (e *envelope) readOp() error {
	s := &e.s
	if s.peek() != '"' {
		return wrongType("a string", s.peek())
	}
	a, b, esc, err := s.str()
	if err != nil {
		return err
	}
	raw := s.b[a:b]
	if esc {
		raw = appendUnescaped(nil, raw)
	}
	if len(raw) == 1 {
		switch op := Op(raw[0]); op {
		case OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate:
			e.op, e.hasOp = op, true
			return nil
		}
	}
	return &DecodeError{Reason: fmt.Sprintf("unknown op %s (want c, u, d, r or t)", clip(raw))}
}

// image reads a row image: an object, or null for none.
func (e *envelope) image() (span, error) {
	s := &e.s
	switch s.peek() {
	case 'n':
		return span{}, s.literal("null")
	case '{':
		a := s.i
		if err := s.skipNested(); err != nil {
			return span{}, err
		}
		return span{a: a, b: s.i}, nil
	}
	return span{}, wrongType("an object or null", s.peek())
}

// text reads a string or null into e.strs.
func (e *envelope) text() (span, error) {
	s := &e.s
	switch s.peek() {
	case 'n':
		return span{}, s.literal("null")
	case '"':
		a, b, esc, err := s.str()
		if err != nil {
			return span{}, err
		}
		if !esc {
			return span{a: a, b: b}, nil
		}
		start := len(e.unescaped)
		e.unescaped = appendUnescaped(e.unescaped, s.b[a:b])
		return span{a: start, b: len(e.unescaped), esc: true}, nil
	}
	return span{}, wrongType("a string or null", s.peek())
}

func (e *envelope) source(p string) error {
	s := &e.s
	if isNull, err := s.null(); err != nil {
		return at(err, p+"source")
	} else if isNull {
		return nil
	}
	if err := s.open(); err != nil {
		return at(wrongType("an object or null", s.peek()), p+"source")
	}
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil {
			return at(err, p+"source")
		}
		if !ok {
			return nil
		}
		if err := e.sourceMember(key); err != nil {
			return at(err, p+"source."+string(key))
		}
	}
}

func (e *envelope) sourceMember(key []byte) error {
	s := &e.s
	var err error
	var v int64
	switch string(key) {
	case "connector":
		e.connector, err = e.text()
	case "name":
		e.name, err = e.text()
	case "db":
		e.db, err = e.text()
	case "schema":
		e.schema, err = e.text()
	case "table":
		e.table, err = e.text()
	case "snapshot":
		e.snapshot, err = e.readSnapshot()
	case "ts_ms", "ts_us", "ts_ns":
		if v, err = s.int(); err == nil {
			e.sourceTime.offer(v, unitOf(key))
		}
	case "lsn":
		e.lsn, err = s.int()
	case "txId":
		e.txIDNum, err = s.int()
	case "file":
		e.file, err = e.text()
	case "pos":
		e.pos, err = s.int()
	case "row":
		e.row, err = s.int()
	case "gtid":
		e.gtid, err = e.text()
	case "commit_lsn":
		e.commitLSN, err = e.text()
	case "change_lsn":
		e.changeLSN, err = e.text()
	case "event_serial_no":
		e.serial, err = s.int()
	default:
		err = s.skip()
	}
	return err
}

// readSnapshot accepts Debezium's snapshot enum as a string and the boolean
// of older connectors. Every value but "false" marks a snapshot read; an
// unknown string is taken as false so that a new Debezium release adding a
// value cannot send a whole topic to the dead-letter queue.
func (e *envelope) readSnapshot() (bool, error) {
	s := &e.s
	switch s.peek() {
	case 'n':
		return false, s.literal("null")
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case '"':
		a, b, esc, err := s.str()
		if err != nil {
			return false, err
		}
		v := s.b[a:b]
		if esc {
			v = appendUnescaped(nil, v)
		}
		switch string(v) {
		case "true", "last", "first", "first_in_data_collection", "last_in_data_collection", "incremental":
			return true, nil
		}
		return false, nil
	}
	return false, wrongType("a string, boolean or null", s.peek())
}

func (e *envelope) transaction(p string) error {
	s := &e.s
	if isNull, err := s.null(); err != nil {
		return at(err, p+"transaction")
	} else if isNull {
		return nil
	}
	if err := s.open(); err != nil {
		return at(wrongType("an object or null", s.peek()), p+"transaction")
	}
	e.hasTx = true
	for n := 0; ; {
		key, ok, err := s.member(&n)
		if err != nil {
			return at(err, p+"transaction")
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "id":
			e.txID, err = e.text()
		case "total_order":
			e.totalOrder, err = s.int()
		case "data_collection_order":
			e.collectionOrder, err = s.int()
		default:
			err = s.skip()
		}
		if err != nil {
			return at(err, p+"transaction."+string(key))
		}
	}
}

// dataCollections reads an END's per-table event counts: null, or an array
// of {"data_collection": string, "event_count": integer}.
func (e *envelope) dataCollections(p string) error {
	s := &e.s
	if isNull, err := s.null(); err != nil || isNull {
		return at(err, p+"data_collections")
	}
	if s.peek() != '[' {
		return &DecodeError{Field: p + "data_collections", Reason: wrongType("an array or null", s.peek()).Reason}
	}
	s.i++
	for i := 0; ; i++ {
		s.ws()
		if s.peek() == ']' {
			s.i++
			return nil
		}
		if i > 0 {
			if s.peek() != ',' {
				return at(s.unexpected("',' or ']'"), p+"data_collections")
			}
			s.i++
			s.ws()
		}
		path := func() string { return fmt.Sprintf("%sdata_collections[%d]", p, i) }
		if err := s.open(); err != nil {
			return at(wrongType("an object", s.peek()), path())
		}
		var name span
		var count int64
		hasName, hasCount := false, false
		for n := 0; ; {
			key, ok, err := s.member(&n)
			if err != nil {
				return at(err, path())
			}
			if !ok {
				break
			}
			switch string(key) {
			case "data_collection":
				hasName = true
				name, err = e.text()
			case "event_count":
				hasCount = s.peek() != 'n'
				count, err = s.int()
			default:
				err = s.skip()
			}
			if err != nil {
				return at(err, path()+"."+string(key))
			}
		}
		if !hasName || name.len() == 0 {
			return &DecodeError{Field: path() + ".data_collection", Reason: "missing"}
		}
		if !hasCount {
			return &DecodeError{Field: path() + ".event_count", Reason: "missing"}
		}
		e.collections = append(e.collections, name)
		e.collCounts = append(e.collCounts, count)
	}
}

// rawKey finds the part of a record key to keep: the key JSON itself, or
// the payload of a schemas.enable wrapper, which is an object with exactly
// the members "schema" and "payload". A null key keeps nothing.
func rawKey(key []byte) (span, error) {
	if len(key) == 0 {
		return span{}, nil
	}
	s := scanner{b: key}
	s.ws()
	whole := span{a: s.i}
	var payload span
	members, schema, isNull := 0, false, false
	if s.peek() == '{' {
		s.i++
		for n := 0; ; {
			name, ok, err := s.member(&n)
			if err != nil {
				return span{}, at(err, "key")
			}
			if !ok {
				break
			}
			members++
			a := s.i
			if err := s.skip(); err != nil {
				return span{}, at(err, "key")
			}
			switch string(name) {
			case "schema":
				schema = true
			case "payload":
				payload = span{a: a, b: s.i}
			}
		}
	} else {
		var err error
		if isNull, err = s.null(); !isNull && err == nil {
			err = s.skip()
		}
		if err != nil {
			return span{}, at(err, "key")
		}
	}
	whole.b = s.i
	s.ws()
	if s.i != len(s.b) {
		return span{}, at(s.unexpected("end of input"), "key")
	}
	if members == 2 && schema && payload.len() > 0 {
		if string(key[payload.a:payload.b]) == "null" {
			return span{}, nil
		}
		return payload, nil
	}
	if isNull {
		return span{}, nil
	}
	return whole, nil
}
