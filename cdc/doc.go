// Package cdc turns change-data-capture records read from Kafka into
// normalized Changes, and orders the source positions they carry.
//
// NewDecoder(format, options...) returns the decoder of a manifest format:
// debezium-json, debezium-avro, canal-json, maxwell-json, ogg-json or
// meshlet-avro. Every one fills the same Change: Kind, Op, Key, Before,
// After, CommitTime, Source (with Position), Tx, and for control messages
// DDL or Boundary.
//
// # One record, several changes
//
// A Canal message carries every row a statement touched, so decoders are
// MultiDecoders: DecodeAll(ctx, key, value, dst) appends all of a record's
// changes to dst, in the record's order, and is what the runtime calls.
// Decode, the one-change form, returns ErrMultiRow for such a record. The
// other formats always yield one change per record.
//
// # debezium-json
//
// The output of Kafka Connect's JSON converter behind a Debezium
// connector. Each record value is one of:
//
//   - the plain envelope {"before","after","source","op","ts_ms","transaction"};
//   - the same envelope wrapped by schemas.enable=true as
//     {"schema":{…},"payload":{…}}. The wrapper is recognised per message by
//     its "payload" member. Only the schema's top-level "name" is read (to
//     recognise control messages); the rest is validated and skipped, since
//     field types are not needed to read JSON and the schema is most of the
//     bytes;
//   - a transaction boundary from the connector's transaction topic:
//     {"status":"BEGIN"|"END","id","event_count","data_collections":[{"data_collection","event_count"}],"ts_ms"};
//   - a schema change from the schema-change topic:
//     {"source","databaseName","schemaName","ddl","tableChanges","ts_ms"};
//   - null or empty: a tombstone.
//
// Unknown members are validated and ignored, so newer connector versions
// that add members still decode.
//
//	value                                   Kind              Op  Before/After
//	empty, null, or "payload":null          KindTombstone     -   none
//	schema name ending in "Heartbeat", or   KindHeartbeat     -   none
//	  no op and no row but a ts_ms/us/ns
//	no op but "status", or schema name      KindTxBoundary    -   none; Boundary set
//	  ending in "TransactionMetadataValue"
//	no op but "ddl", "databaseName" or      KindSchemaChange  -   none; DDL set
//	  "tableChanges", or schema name
//	  ending in "SchemaChangeValue"
//	op "c" or "r": insert                   KindChange        c r After required; Before must be absent
//	op "u": replace the row                 KindChange        u   After required; Before may be absent
//	op "d": retract the row                 KindChange        d   After must be absent; Before may be absent
//	op "t": the table was emptied           KindChange        t   neither
//
// When "u" or "d" has no old image (Postgres tables without REPLICA IDENTITY
// FULL) BeforeMissing is set; it is never an error. A delete's row is then
// identified by the record key, which Debezium sets to the row's primary
// key. An image present where the op rules it out is an error: guessing
// would put a wrong row into the change log.
//
// A boundary needs "status" BEGIN or END and an "id"; an END also needs
// "event_count". A schema change's DDL is "ddl" (may be null), and
// "databaseName" stands in for source.db when that is empty.
//
// Before, After and Key are copies of the input, never aliases, so the
// caller may reuse its buffers. A key wrapped by schemas.enable (an object
// whose only members are "schema" and "payload") is unwrapped to its payload;
// a null or absent key gives a nil Key.
//
// Fields read:
//
//	source.connector, name, db, schema, table  -> Source
//	source.snapshot                            -> Source.Snapshot: true for "true", "first", "last",
//	                                              "first_in_data_collection", "last_in_data_collection",
//	                                              "incremental" and boolean true; false otherwise
//	source.lsn, txId                           -> Position (postgresql)
//	source.file, pos, row, gtid                -> Position (mysql)
//	source.commit_lsn, change_lsn,
//	  event_serial_no                          -> Position (sqlserver)
//	source.ts_ns, ts_us, ts_ms                 -> CommitTime (UTC), the finest present
//	ts_ns, ts_us, ts_ms                        -> CommitTime when the source sends none, or 0
//	transaction.id, total_order,
//	  data_collection_order                    -> Tx (nil when the block is null or absent)
//	status, id, event_count, data_collections  -> Boundary
//	ddl, databaseName                          -> DDL, Source.DB
//
// Any of these may be null. A zero source timestamp means unknown (older
// MySQL connectors send 0 during snapshots); the envelope's timestamp, when
// the connector read the row, stands in for it. With neither, CommitTime is
// the zero time.
//
// # debezium-avro
//
// The same envelopes written by Confluent's AvroConverter: key and value
// are each the Confluent wire format (magic byte 0, the schema id as four
// big-endian bytes, the Avro body). NewDecoder needs WithAvro(src), where
// src is an AvroSource:
//
//	DecodeMap(ctx, wire) (id, fields, err)  decode with the writer schema the id names (meshlet-avro)
//	SchemaText(ctx, id) (string, err)        the writer schema's JSON, as registered
//
// The runtime builds it on schemas.Registry, whose DecodeMap already has
// this signature and a hardened decoder; SchemaText is the registry
// client's SchemaByID(ctx, id).Schema. An error matching ErrMalformed
// (bad bytes, an id the registry does not know) makes the record
// malformed; any other error (the registry is unreachable) is returned
// unwrapped by ErrMalformed, for the runtime to retry. Parsed schemas are
// cached per id.
//
// The body is read with the writer schema straight into JSON, with no map
// of Go values in between and package schemas' limits (64 levels, 8 MiB
// per string or bytes, 100,000 array and map elements per record, no
// trailing bytes); the fuzz target holds the result to what rendering
// hamba/avro's map of the same bytes gives. The JSON is then read exactly
// as debezium-json, with the value schema's full name standing in for the
// JSON wrapper's schema name; the rendered key is kept as the Key. Map
// keys are sorted, and a key sent twice keeps its last value. What the
// values become:
//
//	null, boolean, int, long, string, enum  null, true/false, number, string
//	float, double                           shortest exact number; NaN and
//	                                          infinities as "NaN", "Infinity", "-Infinity"
//	bytes, fixed                            base64 string (Kafka Connect's JSON form)
//	record, map, array                      object (map keys sorted), array
//	io.debezium.time.Date,                  "2020-05-13" (from days since the epoch)
//	  connect Date, logicalType date
//	io.debezium.time.Time, MicroTime,       "15:40:06.123456": fraction only when not
//	  NanoTime, connect Time, time-*          zero, hours not wrapped (MySQL TIME can
//	                                          exceed 24h or be negative)
//	io.debezium.time.Timestamp,             "2020-05-13T15:40:06.123Z" (RFC 3339, UTC;
//	  MicroTimestamp, NanoTimestamp,          Debezium encodes zone-less DATETIME as if
//	  connect Timestamp, timestamp-*          it were UTC)
//	io.debezium.time.ZonedTimestamp         the string as sent (ISO 8601 with offset)
//	connect Decimal, logicalType decimal,   an exact JSON number with the scale's digits,
//	  io.debezium.data.VariableScaleDecimal   e.g. 12.50; exponent notation (123e-40)
//	                                          only when plain notation would need more
//	                                          than 32 padding zeros. json.Number or a
//	                                          decimal type keeps every digit; float64
//	                                          rounds
//
// Logical types are recognised by Kafka Connect's "connect.name" first,
// then by Avro's "logicalType". A decimal's scale is Avro's "scale" or
// connect.parameters' "scale".
//
// # meshlet-avro
//
// Another Meshlet data product's output port, so that products compose: B's
// input port is A's output topic. The value is A's event in Confluent wire
// format, written with A's published schema (the row fields, then
// _valid_from, _valid_to, _system_from, _deleted; see package schemas); the
// key is A's entity key as UTF-8 text. It reads through WithAvro(src) as
// debezium-avro does, with the same error classes.
//
//	value              Kind           Op  Key             After
//	empty              KindTombstone  -   key, if any     none
//	_deleted false     KindChange     u   "<entity key>"  the row fields
//	_deleted true      KindChange     d   "<entity key>"  none
//
// An event is a whole version of its entity, not a before/after pair, so
// every non-deleted event is an upsert ("u", also the entity's first
// version) and Before is always nil, with BeforeMissing false; a
// retraction's row fields may be zero, so they are not read. Key is the
// entity key as a JSON string, e.g. "42"; a missing or non-UTF-8 key is
// malformed. After renders the row fields (meta fields removed) exactly as
// debezium-avro renders values: decimals as exact numbers, timestamps in
// RFC 3339; the event is read straight from its bytes, as debezium-avro
// reads, and the source's DecodeMap only describes an event that cannot
// be read. CommitTime is _valid_from, so B's records keep A's valid time
// unless B's handler sets its own. Source.Connector is "meshlet" and
// Source.Name the published record's full name; Position is empty, since A
// publishes exactly once and B reads committed, so there are no re-sends to
// recognise. _valid_to and _system_from are checked in the schema but not
// carried: Change has no place for them. A registered schema without the
// four meta fields is malformed, with Field naming the first one missing or
// mistyped.
//
// # canal-json
//
// Alibaba Canal's flat message: {"data":[…],"old":[…],"type","isDdl",
// "database","table","es","ts","pkNames","mysqlType","sqlType","sql",…}.
//
//	type (isDdl false)   Kind              Op  one Change per row of data
//	INSERT               KindChange        c   After = data[i]
//	UPDATE               KindChange        u   After = data[i]; Before = data[i] with old[i] put over it
//	DELETE               KindChange        d   Before = data[i]
//	TRUNCATE             KindChange        t   one Change, no rows (also with isDdl true)
//	isDdl true           KindSchemaChange  -   one Change, DDL = sql
//
// old holds only the changed columns' previous values, so the old row is
// data overlaid with old; a null old means nothing changed. Canal sends
// every value as a string; the column's mysqlType (or its java.sql.Types
// code in sqlType when mysqlType lacks the column) decides what it
// becomes: integer, floating-point and decimal types a JSON number with the
// digits as sent (decimals stay exact), BOOL and BIT(1) true/false ("1"/"0"),
// wider BITs a number, everything else, dates and times included, a
// string. TINYINT(1) stays a number. null stays null; values that are not
// strings are kept. Key is the pkNames columns of the row as an object,
// e.g. {"id":101}, nil without pkNames. CommitTime is es (when the
// statement ran), else ts. Source: Connector "canal", DB, Table; Canal
// sends no log position, so Position is empty.
//
// # maxwell-json
//
// Maxwell's rows: {"database","table","type","ts","xid","xoffset","commit",
// "position","gtid","data","old","primary_key_columns","sql",…}.
//
//	type                                Kind              Op  images
//	insert                              KindChange        c   After = data
//	update                              KindChange        u   After = data; Before = data with old put over it
//	delete                              KindChange        d   Before = data
//	bootstrap-insert                    KindChange        r   After = data; Source.Snapshot
//	bootstrap-start, bootstrap-complete KindHeartbeat     -   none; Source.Snapshot
//	table-create/alter/drop,            KindSchemaChange  -   none; DDL = sql
//	  database-create/alter/drop
//
// Values are kept as Maxwell typed them. CommitTime is ts (seconds).
// position "binlog.000003:1234" becomes Position{File, Pos}; gtid
// Position.GTID. xid becomes Tx.ID, xoffset Tx.TotalOrder (xoffset+1),
// and "commit": true Tx.Last, which Maxwell sets on the last row of a
// transaction. Key is primary_key_columns taken from data. Source.Connector
// is "maxwell": Maxwell's position is that of the binlog event, which the
// rows of one statement share, so ComparePositions does not order it.
//
// # ogg-json
//
// Oracle GoldenGate's JSON formatter: {"table","op_type","op_ts",
// "current_ts","pos","primary_keys","before","after",…}.
//
//	op_type  Kind        Op  images
//	I        KindChange  c   After required; Before must be absent
//	U        KindChange  u   After required; Before may be absent (BeforeMissing)
//	D        KindChange  d   Before required (all columns, or the key columns
//	                         only unless NOCOMPRESSDELETES); After must be absent
//	T        KindChange  t   neither
//
// Images are kept as sent; GoldenGate may send only changed columns in
// updates unless configured with NOCOMPRESSUPDATES. table "SCHEMA.TABLE"
// (or "CATALOG.SCHEMA.TABLE") fills Source.Schema and Table (and DB).
// op_ts, "2020-05-13 15:40:06.000000" in UTC, is CommitTime; current_ts
// stands in for it. pos becomes Position.Trail; Key is primary_keys taken
// from After (from Before for a delete). Source.Connector is "ogg".
//
// # Transactions
//
// Debezium with provide.transaction.metadata sends a BEGIN and an END per
// source transaction to a separate topic, and marks each change with the
// transaction's ID and its place in it (Tx). The two topics interleave in
// no particular order. TxAssembler takes both and releases a transaction's
// changes, in source order, once its END has arrived and every table it
// counts that the product consumes has all its changes; duplicates are
// dropped. The runtime publishes what it releases, and commits each input
// partition's offsets only below TxAssembler.Held, so that a crash never
// forgets held changes or the END they wait for.
//
// # Positions
//
// ComparePositions orders positions of one connector, so the runtime can
// drop the duplicates Debezium's at-least-once delivery produces:
// postgresql by LSN then TxID; mysql by binlog file (by numeric suffix, so
// mysql-bin.000009 < mysql-bin.000010), Pos, Row; sqlserver by CommitLSN,
// ChangeLSN (compared as numbers, whatever their case or padding; an empty
// LSN sorts first), then EventSerialNo; ogg by Trail as a number. Other
// connectors (canal, maxwell) are an error rather than a guess.
// Position.String gives the stable form used in provenance and dead-letter
// headers, e.g. "lsn=34078720,txId=601" or "trail=00000000000000000000143";
// AppendText writes the same into a caller's buffer without allocating,
// and IsZero says whether there is a position at all (String gives "").
//
// # Row images
//
// RowDecoder[T] reads the images into a handler's row type, with the result
// encoding/json's Unmarshal gives (FuzzRowDecoder compares the two), from a
// plan made once for T: struct fields by tag or name, exact match first,
// then case-insensitive; pointers, bool, integers and floats with
// encoding/json's range errors, strings with invalid UTF-8 replaced.
// Other field types (slices, maps, time.Time, json.Number) are read by
// their UnmarshalJSON or by encoding/json from the field's bytes. Strings,
// pointer targets and rows come from chunks shared by many rows, so a row
// costs no allocation of its own.
//
// # Errors
//
// Every decode failure of the input is a *DecodeError that matches
// ErrMalformed with errors.Is: no retry can fix it, so the record belongs in
// the dead-letter topic. Field is the path of the offending value
// ("op", "payload.source.ts_ms", "data[2].weight"), "key" for the record
// key, or "" for the value as a whole; Reason says what was wrong. Topic,
// partition and offset are the caller's to add. Errors that are not
// ErrMalformed (an unreachable schema registry) are worth retrying.
// Decoding never panics and bounds nesting (10000 levels of JSON, 64 of
// Avro values). Memory stays proportional to the input: the images and
// strings a record keeps take at most about twice its size, working memory
// is pooled, and each row costs one Change (384 bytes). What a Change keeps
// (images, strings, Tx) is carved from chunks shared by many changes
// (16 KiB of images, 2 KiB of strings; a part bigger than a quarter chunk
// gets its own memory), so decoding costs no allocation per record, and a
// Change kept for long keeps at most a chunk of its neighbours alive. A Canal row takes
// at least 7 bytes of input, so a hostile multi-row message can append up
// to one Change per 7 bytes (about 55 bytes per input byte) to dst; every
// other format appends exactly one.
package cdc
