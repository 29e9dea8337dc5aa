// Package auditlog is a data product's change log: an append-only,
// hash-chained record of every version the product asserted or retracted,
// with the provenance of each, that an auditor can verify byte for byte.
//
// There is one log per input partition, each in its own directory (the
// runtime uses ROOT/<topic>-<partition>/). A log is a run of segment files;
// the newest one is appended to, the others never change.
//
// # Segment files
//
// A segment is named by the seq of its first entry, in decimal, zero-padded
// to 20 digits: 00000000000000000001.seg, 00000000000000004097.seg. Sorting
// the names sorts the log, and the name must agree with the header.
//
// Every segment starts with a 52-byte header, so that it can be checked on
// its own and linked to the segment before it:
//
//	offset size  field
//	     0    6  magic "MSHLOG"
//	     6    1  format version, 1
//	     7    1  reserved, 0 (room for flags in later versions)
//	     8    8  first seq, big-endian uint64
//	    16   32  chain hash of the entry before the first one (32 zero bytes for seq 1)
//	    48    4  CRC-32C (Castagnoli) of bytes 0-47, big-endian
//
// A reader refuses any version it does not know. Signed checkpoints and
// Merkle trees will arrive as a later version; version 1 has neither.
//
// # Frames
//
// The header is followed by frames, one per entry, back to back:
//
//	offset  size  field
//	     0     4  L, big-endian uint32: the number of bytes after the CRC (body + hash)
//	     4     4  CRC-32C (Castagnoli) of those L bytes, big-endian
//	     8  L-32  entry body
//	  L-24    32  chain hash of this entry
//
// L is at least 85 (an entry with four empty strings) and at most 64 MiB;
// readers check L against both bounds and against the bytes left in the
// file before they allocate, so a damaged length cannot make them allocate
// more than that. The CRC covers the stored hash as well as the body: an
// accidental flip anywhere in the frame shows as a checksum failure, and a
// hash-chain failure then only ever means bytes were rewritten on purpose.
//
// # Entry body
//
// Fixed-width fields first, so the seq sits at a known place (frame offset
// 8) and a reader can skip an entry without decoding it. Integers are
// big-endian; signed ones are two's complement. Times are unix microseconds.
//
//	offset size  field
//	     0    8  Seq (uint64), 1-based, contiguous across segments
//	     8    8  SystemTime (int64), strictly increasing
//	    16    8  ValidFrom (int64)
//	    24    8  ValidTo (int64), 0 = open
//	    32    1  Op: 'a' (0x61) assert or 'r' (0x72) retract
//	    33    4  Prov.Partition (int32)
//	    37    8  Prov.Offset (int64)
//	    45    4  Prov.SchemaID (uint32), 0 = none
//	    49    -  Key: uvarint length, then the bytes
//	     -    -  Payload: uvarint length, then the bytes (Confluent wire format as published)
//	     -    -  Prov.Topic: uvarint length, then UTF-8 bytes
//	     -    -  Prov.SourcePosition: uvarint length, then UTF-8 bytes
//
// Uvarints are encoding/binary's unsigned varints. Nothing may follow the
// last field.
//
// # Hash chain
//
// hash(n) = SHA-256(hash(n-1) || body(n)), with hash(0) 32 zero bytes and
// body(n) exactly the bytes of entry n's body as stored (frame bytes [8,
// L-24)). Each entry's hash therefore commits to every entry before it, and
// the head hash (Log.Tail, VerifyReport.Head) to the whole log. Each segment
// header repeats the hash its first entry chains from.
//
// # Writing
//
// Append checks a batch in full before anything is written (seq is
// tail+1+i, system time rises, op is known, frame fits), encodes every frame
// into one reused buffer and writes it with one write per segment it lands
// in, then fsyncs unless SyncEachAppend(false). A segment rolls before a
// frame that would take it past SegmentSize, unless the segment is still
// empty. A roll fsyncs the old segment, writes the new header to NAME.tmp,
// fsyncs it and renames it into place, then fsyncs the directory: a segment
// that exists always has a whole header, and Sync only ever needs to sync
// the newest file. If a write or fsync fails the Log refuses all further
// work: what reached the disk is unknown and only Open can tell.
//
// A LOCK file in the directory holds an advisory flock while a Log is open,
// so two writers cannot fork the chain. The kernel drops it when the
// process dies.
//
// # Opening and torn tails
//
// Open reads and checks every segment as Verify does. A crash can leave
// the last frame of the last segment half written, and only that is
// repaired: Open truncates it and reports it in Recovery. A bad frame counts
// as such a torn tail when
//
//   - it is cut short: fewer than 8 bytes are left for its length and CRC,
//     or its length runs past the end of the file while the bytes that are
//     there do not carry its CRC (if they do, the frame is complete and its
//     length field was changed); or it is complete but its stored hash and
//     everything after it are zero bytes (the end of the write never reached
//     the disk) - and in every case no frame with a valid CRC and a
//     plausible seq starts anywhere after it; or
//   - everything from it to the end of the file is zero bytes (a file system
//     that grew the file but never wrote the data).
//
// A complete frame with any other wrong byte is damage, not a torn write,
// even as the very last entry: a kill leaves a frame cut short, and cutting
// a complete entry could drop one whose output was already committed.
//
// The search for a later valid frame is what keeps a damaged length in the
// middle of the segment from passing for a torn write and dropping the good
// entries behind it. Any other damage - a bad frame followed by more data,
// a broken chain, a seq gap, a bad or short header, a segment missing -
// makes Open return a *CorruptError and change nothing. Leftover NAME.tmp
// files (a roll cut short before its rename) hold no entries and are
// removed.
//
// # Verifying
//
// Verify reads a log without writing and checks, in order: segment names;
// each header's magic, version, CRC and reserved byte; that the first seqs
// run on without gaps and the header hashes match the chain; and for every
// frame its length bounds, CRC, decoding, seq, system-time order and stored
// hash against the recomputed one. The first failure comes back as a
// *CorruptError naming segment, frame offset and seq. A torn tail is not an
// error, it is reported in VerifyReport.TornTail.
//
// What the chain alone cannot show is a log cut short at a frame boundary,
// or rewritten from some entry on with every hash recomputed. Comparing the
// head hash against one recorded elsewhere catches both; signed checkpoints
// will make that systematic.
package auditlog
