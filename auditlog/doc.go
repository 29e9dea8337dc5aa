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
// A reader refuses any version it does not know. Signed checkpoints and the
// Merkle tree live in files beside the segments (see Checkpoints) and leave
// this format unchanged.
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
//	     -    -  Port (optional): uvarint length >= 1, then UTF-8 bytes
//
// Uvarints are encoding/binary's unsigned varints. Port names the output
// port of a product with several, for the entries of every port but the
// first; an entry of the first port has no such field, so the logs of a
// single-port product are the same bytes as before the field existed.
// Nothing may follow the last field.
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
// the newest file. With WithMetrics, every fsync of a segment file is timed
// (meshlet_changelog_fsync_seconds) and every byte written to one counted
// (meshlet_changelog_written_bytes_total), by log, in collectors the
// program registers where it wants. If a write or fsync fails the Log refuses all further
// work: what reached the disk is unknown and only Open can tell. Before
// each write Append also checks that the directory and the last segment
// are still the ones it opened; if they were removed or replaced (a wiped
// disk) it fails with ErrRemoved the same way, since what it wrote would
// land in unlinked files.
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
// a segment removed from the end, or entries rewritten with every checksum
// and hash recomputed. So Verify also checks the newest signed checkpoint
// saved beside the log (below), and any kept from an earlier audit
// (Since): in the same read it hashes the entries into the Merkle tree and
// compares the root at each checkpoint's size with the signed one. A log
// shorter than a checkpoint, or whose first N entries no longer give its
// root, is a *CorruptError naming the checkpoint's file (for a rewrite,
// with the range of seqs holding the first change, as VerifySince finds
// it). The signatures are checked with the key given (CheckWith), else
// the product's verifier key found by FindVerifier: checkpoint.pub in the
// log's directory or one of the two above it, where the runtime keeps it
// (DATA/checkpoint.pub beside DATA/changelog/<topic>-<partition>/). A log
// with checkpoints and no key fails with ErrNoVerifier; a log with no
// checkpoint is checked by its chain alone, and VerifyReport says so
// (StoredCheckpoints 0). The key beside the logs shows damage and clumsy
// tampering; only a key the auditor obtained independently rules out a
// replaced key with re-signed notes. VerifyTree verifies every log under a
// root and reports each, failed or not; ChainOnly skips the checkpoints.
//
// # Bitemporal queries
//
// Store reads every log under a root and answers in XTDB's terms; this
// section is the one definition every reader follows (Store, the query
// port, the meshlet commands). Times are unix microseconds and periods are
// half-open [from, to), 0 as an end meaning open (so 0 itself never ends
// a period). Logs of one product share its system clock, so the entries of
// all logs are merged by (SystemTime, log name, Seq); the name only breaks
// ties between partitions that stamped the same microsecond. That merged
// order is what "earlier" and "later" mean below, and "recorded by T"
// means SystemTime <= T.
//
// An entity K is an entry's key, qualified by its output port when that
// is not the product's first (Entry.Entity, EntityKey): the ports of one
// product keep histories of their own. Each entry of K asserts (Op 'a')
// or retracts (Op 'r') K over its valid period [ValidFrom, ValidTo) as of
// its SystemTime. An entry whose valid period is empty (ValidTo <= ValidFrom, not 0) changes nothing and
// is ignored by every question below (Replay and Store.Entries still list
// it).
//
// The belief about K at system time T is a timeline over valid time: take
// K's entries recorded by T in merged order, each one taking over its
// valid period from whatever held it. Valid time V is then held by the
// latest such entry whose period contains V; a stretch held by one
// assertion is a version, one held by a retraction an absence, and nothing
// else is ever overwritten: a delete only closes valid time.
//
// A version is a rectangle: entry E's payload, believed valid over
// [ValidFrom, ValidTo) from system time SystemFrom until SystemTo.
//
//   - [ValidFrom, ValidTo) is a maximal stretch of valid time that E holds
//     in the timeline. For the one holding V at T: ValidTo is the earliest
//     of E's ValidTo and the ValidFrom of every entry later than E,
//     recorded by T, that starts after V (an entry starting inside E's
//     period cuts it there); ValidFrom is the latest of E's ValidFrom and
//     the ValidTo of every such entry that ends at or before V.
//   - SystemFrom is when the timeline began to hold that exact stretch: the
//     SystemTime of the last entry to move either end, E's own if none did.
//   - SystemTo is the SystemTime of the first entry after that whose valid
//     period overlaps the stretch (it takes that part; what is left of the
//     stretch is a new version from the same system time), 0 while there
//     is none: still believed. A version that two logs closed within the
//     microsecond it began was never believed and does not exist.
//
// Everything but SystemTo depends only on the entries recorded by
// SystemFrom, so it can be proven against a checkpoint covering them;
// SystemTo is what the store has learnt since. XTDB's four questions are
// filters over these versions:
//
//  1. As of system time T, at valid time V: the version with SystemFrom <=
//     T < SystemTo and ValidFrom <= V < ValidTo, or none
//     (Store.AsOf(T).ValidAt(V).Get; Scan gives it for every key). Its
//     valid period is the one believed at T, and a SystemTo after T says
//     when that belief was revised. When K is absent there because of a
//     retraction, Get describes the absence the same way.
//  2. The valid-time history as believed at T: every version with
//     SystemFrom <= T < SystemTo (Store.AsOf(T).History). Question 1 at
//     (T, V) is the row of it whose valid period contains V.
//  3. The history as believed now: question 2 at Latest, the versions with
//     SystemTo 0. Store.History gives every version, at all system times.
//  4. The corrections recorded in [T1, T2) (Store.Corrections): the
//     entries recorded then that are back-dated, that is whose ValidFrom
//     is earlier than the latest ValidFrom of any earlier entry of K (in
//     any log): they rewrite a stretch of the past the product had already
//     published. A key's first entry, and an entry whose ValidFrom equals
//     the latest so far (two changes of one source transaction share a
//     commit time), are not corrections; retractions count like
//     assertions. Each comes with that prior ValidFrom and with the system
//     period of what it recorded, [SystemTime, SystemTo), SystemTo being
//     the first later entry of K overlapping its valid period (0: none):
//     for an assertion that is the version it asserted.
//
// Replay(T1, T2) gives every entry recorded in [T1, T2), in merged order.
//
// ScanKeys(cut) gives, one key at a time, each key's entries within a
// cut of the logs (per log its first n entries, a Cut), in merged
// order: what an export (package snapshot) derives a table and a
// history from, fixed to those entries whatever is appended later.
// Position(log, T) is how many of a log's entries were recorded by T.
//
// # Index
//
// Each log's index lives in its directory under index/ (or under a
// directory given with IndexDir). It is derived data: deleting it costs a
// rebuild, nothing else. It holds
//
//	MANIFEST                       JSON {"format":1,"runs":[names]}, replaced by rename
//	LOCK                           flock held while a refresh writes
//	FFFFFFFFFFFFFFFFFFFF-LLLLLLLLLLLLLLLLLLLL.run
//	                               a run: entries FIRST..LAST (20-digit seqs)
//
// The runs named by the manifest cover seq 1..N without gaps. A run file,
// integers big-endian, n = LAST-FIRST+1:
//
//	offset          size     field
//	     0             6     magic "MSHIDX"
//	     6             1     version, 1
//	     7             1     reserved, 0
//	     8             8     FIRST
//	    16             8     LAST
//	    24             8     system time of LAST
//	    32            32     chain hash of LAST
//	    64             4     records per key block, 128
//	    68             4     CRC-32C of bytes 0-67
//	    72          48*n     by-key records, sorted by (key hash, system time):
//	                           key hash 16 (first 16 bytes of SHA-256(key)),
//	                           system time 8, valid from 8, valid to 8,
//	                           seq<<8 | op 8
//	72+48n          16*n     by-seq records, in seq order: system time 8,
//	                           byte offset of the entry's frame in its segment 8
//	72+64n   32*ceil(n/128)  key block table: per block of 128 by-key records,
//	                           the first record's key hash 16 and system time 8,
//	                           the block's CRC-32C 4, zero 4
//	...      16*ceil(n/256)  seq block table: per block of 256 by-seq records,
//	                           the first record's system time 8, CRC-32C 4, zero 4
//	end-4              4     CRC-32C of both tables
//
// Only the two block tables are held in memory (about 0.3 bytes per
// entry). A Get binary-searches them for the key's records in every run
// (usually one 6 KiB key block per run), works the version out from the
// records alone (they carry both times and the op), then reads the one
// frame the version's record points at, whose CRC, seq and key are
// checked: a lookup never scans the log. Every block is checked against
// its CRC when read. History reads the key's records and the frames of the
// entries that own a version; Scan merges the runs' key sections; Replay
// finds its first entry through the seq blocks and reads the segments from
// there.
//
// Refresh brings an index up to its log without the log's LOCK, so it runs
// beside the writer. The last entry of the newest run must still carry the
// chain hash the run recorded; if not (Rewind took it back, or the log was
// replaced) that run is dropped and the check moves to the run before. It
// then reads the frames after the last intact run, checking CRCs and the
// chain from that run's hash, and writes them out in runs of at most 2^18
// entries, sorted in memory (about 16 MiB). A frame that does not check out
// in the last segment is taken for one being written and ends the refresh.
// Runs written by one refresh are merged into one, and a run is merged into
// the one before it while that one is at most four times its size, so there
// are O(log n) runs and the newest entries sit in the smallest. Runs are
// written to NAME.tmp, synced and renamed; the manifest is replaced last,
// and unnamed run files are deleted.
//
// # Checkpoints
//
// A log's checkpoints and Merkle tree live in its directory under
// checkpoints/. The tree is RFC 6962's over the log's entries in seq order;
// leaf n-1 is entry n and its leaf hash is SHA-256(0x00 || body), body being
// the entry body exactly as framed (frame bytes [8, L-24)), so an inclusion
// proof speaks about the entry's bytes, not about its chain hash. Hashing,
// compact ranges and proofs are github.com/transparency-dev/merkle's.
//
//	NNNNNNNNNNNNNNNNNNNN.note   a signed checkpoint of the first N entries
//	tree.state                  the compact range over entries 1..size
//	nodes-LL.bin                hashes of the perfect subtrees at level LL
//	                            (LL >= 4, 16 leaves and up), node i at byte 32*i
//
// A checkpoint is a C2SP tlog-checkpoint signed note (golang.org/x/mod/
// sumdb/note, Ed25519): the origin line "<key name>/<log directory name>",
// the tree size in decimal, the root hash in standard base64, a blank line
// and the signature line. Log.Checkpoint extends tree.state with the
// entries appended since (it checks that the last entry it covered still has
// the chain hash it recorded, then reads only the new frames), writes the
// node files, then tree.state, then the note, each synced and renamed into
// place. tree.state, integers big-endian:
//
//	offset  size  field
//	     0     6  magic "MSHTRE"
//	     6     1  version, 1
//	     7     1  reserved, 0
//	     8     8  size: entries covered
//	    16    32  chain hash of entry size
//	    48     8  first seq of the segment holding entry size
//	    56     8  byte offset of its frame
//	    64     4  number of compact-range hashes, k
//	    68  32*k  the compact range's hashes, left to right
//	     -     4  CRC-32C of everything before
//
// The product's key pair (KeyFile, VerifierFile) is made on first use by
// LoadOrCreateKey. Store.ProveInclusion and Store.ProveConsistency build
// RFC 6962 proofs from the node files, rehashing the few levels below 4
// from entries found through the index, and verify them before returning.
// VerifySince trusts none of those files: it walks the chain, recomputes the
// tree from the entries, checks the root at the old checkpoint's size and a
// consistency proof to the current size, and on a mismatch names the
// entries holding the first difference, bracketed by the other signed
// checkpoints and, when they were left alone, by the stored nodes.
package auditlog
