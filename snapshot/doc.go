// Package snapshot serves a data product to analysts in their own mode of
// access: Parquet files of the table as believed at a moment, and of its
// whole bitemporal history, that DuckDB, Spark or pandas read directly,
// each proven against the signed change log; and it gives a new consumer
// of the output topic its starting point, with the offsets to tail from.
//
// # A snapshot directory
//
//	manifest.json    what the snapshot is (Manifest), written last
//	table.parquet    the table as of system time T, valid time V
//	history.parquet  every version recorded by T, with both periods
//	schema.avsc      the output port's published schema the columns follow
//
// Take writes all of it into a temporary directory beside the target,
// syncs it and renames it into place, so a snapshot directory is whole or
// absent.
//
// # Which entries
//
// A snapshot derives from a cut of the change log: per log, its first n
// entries (auditlog.Cut), which are those recorded at or before T, since
// system time rises with seq. Each log's n must be covered by one of its
// signed checkpoints (auditlog.Log.Checkpoint), which the manifest names.
// Given no T, Take picks the latest moment every log's checkpoints cover:
// the newest checkpointed entry of any log, moved back to just before the
// first entry that some log recorded after its own newest checkpoint. V
// defaults to the wall clock.
//
// # Rows and columns
//
// The table holds, per key, the entry Store.AsOf(T).ValidAt(V).Get
// answers (what `meshlet asof` prints): the latest entry recorded by T
// whose valid period holds V, left out when that is a retraction. The
// history holds, per key, the rectangles Store.History builds (what
// `meshlet history` prints), plus the deleted ones: a retraction adds a
// row with _deleted true where an assertion adds a version, so an analyst
// sees when a row was deleted; `WHERE NOT _deleted` gives History's
// versions exactly. Both come one key at a time in the index's key order,
// the history's versions by system-from then valid-from.
//
// Columns, in order:
//
//	_key                  string, the entity key
//	<row fields>          the published schema's fields, in schema order
//	_valid_from           timestamp (µs, UTC)      start of the valid period
//	_valid_to             timestamp, optional      end (exclusive); null = open
//	_system_from          timestamp                when this belief began
//	_system_to            timestamp, optional      history: when it ended; null = still believed
//	_deleted              boolean                  history: a deleted period
//	_log, _seq            string, int64            the entry shown: its log and seq
//	_sealed, _erased      string, optional         with PII: fields read as null, comma-joined
//
// In the table, the periods are the entry's own, as asof prints them; in
// the history, the version's. Row fields keep their logical types:
//
//	Avro                               Parquet
//	boolean, int, long, float, double  BOOLEAN, INT32, INT64, FLOAT, DOUBLE
//	string, enum, uuid                 STRING
//	bytes / fixed(n)                   BYTE_ARRAY / FIXED_LEN_BYTE_ARRAY(n)
//	timestamp-millis / -micros         TIMESTAMP(MILLIS / MICROS, UTC)
//	local-timestamp-millis / -micros   TIMESTAMP(MILLIS / MICROS, not UTC)
//	date                               DATE
//	time-millis / time-micros          TIME(MILLIS / MICROS)
//	decimal(p, s)                      DECIMAL(p, s) on INT32 (p <= 9), INT64 (p <= 18),
//	                                   else FIXED_LEN_BYTE_ARRAY; a fixed keeps its width
//	["null", T]                        T, optional
//	record, array, map, other unions   JSON (the decoded value as JSON text)
//
// A field whose name starts with "_" is left out, as the payload decoder
// leaves it out for asof and history. An entry written with another
// schema id than the snapshot's fills the columns by field name; a field
// its schema lacks takes the column's default, or null.
//
// Payloads are decoded as asof and history decode them (query.Decoder).
// Sealed personal data (package seal) reads through the subjects' keys
// when Source.Keys is given; otherwise, or once a subject is forgotten, it
// reads as null. The fields the contract classifies pii must then be
// named (PII): their columns become optional and _sealed and _erased say
// per row which fields read as null and why. An entry that seals a field
// the snapshot was not told of fails Take with ErrSealed.
//
// Memory: one key's entries and decoded payloads, plus each file's open
// row group (RowGroupRows rows, 65536 by default), whatever the table's
// size. Files are zstd-compressed.
//
// # Proof
//
// Each file's manifest entry carries the SHA-256 of its bytes and a rows
// digest: SHA-256 over "meshlet snapshot rows v1\n", the Parquet schema as
// parquet-go prints it, "\n", then every row: per column, 0 for null or 1
// and the value (a boolean one byte, numbers big-endian, floats by their
// IEEE 754 bits, byte arrays a uvarint length and the bytes). The
// manifest's contentSha256 is the SHA-256 over "<kind> <rows digest>\n"
// for each file in order.
//
// Verify checks every file's bytes against the manifest, the schema's
// fingerprint, each log's checkpoint (signed by the product's key, for
// that log, covering the cut, and extended by the log on disk: the chain
// walked and the Merkle tree recomputed by auditlog.VerifySince), that no
// log holds entries recorded by T outside the cut, and then re-derives
// every row from the cut and compares it with the row read back from the
// file. A changed file, a manifest naming another log's or a forged
// checkpoint, or a log rewritten under the checkpoint all fail it with
// the place named (*MismatchError, ErrNotProven, *auditlog.CorruptError).
//
// # Continuing from a snapshot
//
// The caller that has Kafka passes the output topic's offsets (Offsets):
// for each partition, an offset at or before its first record whose
// entry was recorded after T, such as the last stable offsets read just
// before Take (CommittedOffsets). Every output record carries its entry's system time in
// _system_from, so a consumer that loads the snapshot (Open, State.Load)
// and consumes from the manifest's offsets (ConsumeOffsets) skips the
// records the snapshot covers (Covers: _system_from <= T) and applies the
// others (DecodeRecord, State.Apply): it ends with what a consumer that
// read the topic from its start holds, no record missing and none applied
// twice. This relies on what the runtime guarantees: a log appends after
// the snapshot only at system times after T (system time is the product's
// clock, and a log's only rises); Verify fails a snapshot where some log
// later recorded an entry at or before T.
package snapshot
