package cdc

import (
	"encoding/json"
	"time"
)

// Op is what happened to a source row. The values are Debezium's op codes so
// they read the same in logs, dead-letter headers and the change log.
type Op byte

const (
	OpCreate   Op = 'c' // a row was inserted
	OpUpdate   Op = 'u' // a row was changed
	OpDelete   Op = 'd' // a row was removed
	OpRead     Op = 'r' // a row was read by a snapshot
	OpTruncate Op = 't' // the whole table was emptied
)

// String returns the one-letter Debezium code.
func (o Op) String() string { return string(rune(o)) }

// Kind separates data changes from the control messages that share a CDC topic.
type Kind uint8

const (
	KindChange       Kind = iota // a row change; Op says which
	KindTombstone                // a Kafka record with a null value that follows a delete, for log compaction
	KindHeartbeat                // a connector heartbeat; carries a source position but no row
	KindSchemaChange             // a DDL statement or schema-change event; DDL holds the statement when sent
	KindTxBoundary               // a source transaction began or ended; Boundary describes it
)

// Change is one normalized change event, whatever envelope carried it.
//
// Before and After hold the row images as JSON objects (nil when absent).
// Every decoder copies them (and Key) out of its input.
type Change struct {
	Kind Kind
	Op   Op

	// Key identifies the row: the Kafka record key as JSON for Debezium
	// (its primary key), the primary-key columns the message names for
	// Canal, Maxwell and GoldenGate; nil if none.
	Key    json.RawMessage
	Before json.RawMessage // the row before the change; nil for c/r, and for u/d without an old image
	After  json.RawMessage // the row after the change; nil for d/t

	// BeforeMissing is set on an update or delete whose old image is absent
	// (Postgres tables without REPLICA IDENTITY FULL). Handlers that need the
	// old row must cope; decoding never fails for it.
	BeforeMissing bool

	CommitTime time.Time // source.ts_ms: when the source database committed
	Source     Source
	Tx         *Tx // transaction block, nil when the connector does not send one

	// DDL is the statement of a KindSchemaChange ("" when the source sends
	// none, as SQL Server's connector does).
	DDL string
	// Boundary describes a KindTxBoundary; nil for every other kind.
	Boundary *TxBoundary

	Origin Origin // where the event was read from; filled in by the input port
}

// Source names the database object and position a change came from.
type Source struct {
	Connector string // "postgresql", "mysql", "sqlserver", ...
	Name      string // logical server name (topic prefix)
	DB        string
	Schema    string
	Table     string
	Snapshot  bool // part of an initial or incremental snapshot
	Position  Position
}

// Position is a change's place in the source database's log. Only the fields of
// the source's connector are set. Positions of one connector compare with
// ComparePositions; they are what upstream duplicates are recognised by.
type Position struct {
	// PostgreSQL
	LSN  int64 // source.lsn
	TxID int64 // source.txId

	// MySQL
	File string // source.file (binlog file name)
	Pos  int64  // source.pos
	Row  int64  // source.row
	GTID string // source.gtid

	// SQL Server
	CommitLSN     string // source.commit_lsn
	ChangeLSN     string // source.change_lsn
	EventSerialNo int64  // source.event_serial_no

	// Oracle GoldenGate: the trail position ("pos"), a digit string of the
	// trail file's sequence number and the record's byte address. Kept as
	// text: it can be longer than an int64.
	Trail string
}

// Tx is the transaction a change belongs to and its place in it: Debezium's
// transaction block, or Maxwell's xid, xoffset and commit.
type Tx struct {
	ID                  string
	TotalOrder          int64 // 1-based place in the transaction; 0 when unknown
	DataCollectionOrder int64 // 1-based place among the transaction's changes to the same table
	// Last is set on the final change of its transaction when the format
	// says so (Maxwell's "commit": true). Debezium marks the end with a
	// separate TxBoundary instead.
	Last bool
}

// TxStatus is a transaction boundary's status, as Debezium spells it.
type TxStatus string

const (
	TxBegin TxStatus = "BEGIN"
	TxEnd   TxStatus = "END"
)

// TxBoundary is a Debezium transaction metadata event, read from the
// connector's transaction topic. An END says how many change events the
// transaction produced, in all and per table, which is what lets a runtime
// publish a source transaction only once all of it has arrived (see
// TxAssembler).
type TxBoundary struct {
	Status TxStatus
	ID     string // the same ID as the Tx.ID of the transaction's changes
	// EventCount and Collections are sent on END only.
	EventCount  int64
	Collections []CollectionCount
}

// CollectionCount is one entry of an END's data_collections.
type CollectionCount struct {
	// Collection names the table as Debezium does: "schema.table" for
	// PostgreSQL, "db.table" for MySQL, "db.schema.table" for SQL Server.
	Collection string
	EventCount int64
}

// Origin is the Kafka coordinate of the message a change was decoded from.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}
