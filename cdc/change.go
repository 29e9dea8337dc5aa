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
	KindChange    Kind = iota // a row change; Op says which
	KindTombstone             // a Kafka record with a null value that follows a delete, for log compaction
	KindHeartbeat             // a connector heartbeat; carries a source position but no row
)

// Change is one normalized change event, whatever envelope carried it.
//
// Before and After hold the row images as JSON objects (nil when absent). They
// alias the decoder's input buffer only when a decoder documents so; the
// Debezium JSON decoder copies them.
type Change struct {
	Kind Kind
	Op   Op

	Key    json.RawMessage // the Kafka record key as JSON, nil if none
	Before json.RawMessage // the row before the change; nil for c/r, and for u/d without an old image
	After  json.RawMessage // the row after the change; nil for d/t

	// BeforeMissing is set on an update or delete whose old image is absent
	// (Postgres tables without REPLICA IDENTITY FULL). Handlers that need the
	// old row must cope; decoding never fails for it.
	BeforeMissing bool

	CommitTime time.Time // source.ts_ms: when the source database committed
	Source     Source
	Tx         *Tx // transaction block, nil when the connector does not send one

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
}

// Tx is Debezium's transaction block: which source transaction a change
// belongs to and its place in it.
type Tx struct {
	ID                  string
	TotalOrder          int64
	DataCollectionOrder int64
}

// Origin is the Kafka coordinate of the message a change was decoded from.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}
