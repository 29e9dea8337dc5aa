// Package cdc turns change-data-capture records read from Kafka into
// normalized Changes, and orders the source positions they carry.
//
// # Formats
//
// NewDecoder("debezium-json") reads the output of Kafka Connect's JSON
// converter behind a Debezium connector. Each record value is one of:
//
//   - the plain envelope {"before","after","source","op","ts_ms","transaction"};
//   - the same envelope wrapped by schemas.enable=true as
//     {"schema":{…},"payload":{…}}. The wrapper is recognised per message by
//     its "payload" member. Only the schema's top-level "name" is read (to
//     recognise heartbeats); the rest is validated and skipped, since field
//     types are not needed to read JSON and the schema is most of the bytes;
//   - null or empty: a tombstone.
//
// Unknown members are validated and ignored, so newer connector versions
// that add members still decode.
//
// # What each record becomes
//
//	value                                   Kind           Op  Before/After
//	empty, null, or "payload":null          KindTombstone  -   none
//	schema name ending in "Heartbeat", or   KindHeartbeat  -   none
//	  no op and no row but a ts_ms/us/ns
//	op "c" or "r": insert                   KindChange     c r After required; Before must be absent
//	op "u": replace the row                 KindChange     u   After required; Before may be absent
//	op "d": retract the row                 KindChange     d   After must be absent; Before may be absent
//	op "t": the table was emptied           KindChange     t   neither
//
// When "u" or "d" has no old image (Postgres tables without REPLICA IDENTITY
// FULL) BeforeMissing is set; it is never an error. A delete's row is then identified by the record key, which
// Debezium sets to the row's primary key. An image present where the op rules
// it out is an error: guessing would put a wrong row into the change log.
//
// Before, After and Key are copies of the input, never aliases, so the
// caller may reuse its buffers. A key wrapped by schemas.enable (an object
// whose only members are "schema" and "payload") is unwrapped to its payload;
// a null or absent key gives a nil Key.
//
// # Fields read
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
//
// Any of these may be null. A zero source timestamp means unknown (older
// MySQL connectors send 0 during snapshots); the envelope's timestamp, when
// the connector read the row, stands in for it. With neither, CommitTime is
// the zero time.
//
// # Positions
//
// ComparePositions orders positions of one connector, so the runtime can
// drop the duplicates Debezium's at-least-once delivery produces:
// postgresql by LSN then TxID; mysql by binlog file (by numeric suffix, so
// mysql-bin.000009 < mysql-bin.000010), Pos, Row; sqlserver by CommitLSN,
// ChangeLSN (compared as numbers, whatever their case or padding; an empty
// LSN sorts first), then EventSerialNo. Other connectors are an error rather
// than a guess. Position.String gives the stable form used in provenance and
// dead-letter headers, e.g. "lsn=34078720,txId=601".
//
// # Errors
//
// Every decode failure is a *DecodeError that matches ErrMalformed with
// errors.Is: no retry can fix it, so the record belongs in the dead-letter
// topic. Field is the JSON path of the offending value ("op",
// "payload.source.ts_ms"), "key" for the record key, or "" for the value as
// a whole; Reason says what was wrong. Topic, partition and offset are the
// caller's to add. Decoding never panics, bounds nesting at 10000 levels,
// and allocates a small multiple of its input's size at most.
package cdc
