package auditlog

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Op of an entry.
const (
	OpAssert  byte = 'a' // a record version is asserted (insert/update/correction)
	OpRetract byte = 'r' // the entity's valid period is closed (delete)
)

// Provenance says where an entry came from, so an auditor can walk back from
// the log to the input message and the source database transaction.
type Provenance struct {
	Topic          string // input topic
	Partition      int32
	Offset         int64  // input offset
	SourcePosition string // cdc.Position.String(), e.g. "lsn=34078720,txId=601"
	SchemaID       uint32 // registry id of the payload's writer schema (0 = none)
}

// Entry is one change-log entry.
type Entry struct {
	Seq        uint64 // 1-based, contiguous per log
	SystemTime int64  // unix microseconds; strictly increasing per log
	ValidFrom  int64  // unix microseconds
	ValidTo    int64  // unix microseconds; 0 = open (until further notice)
	Op         byte
	Key        []byte // entity key
	Payload    []byte // the exact bytes published (Confluent wire format: magic 0, 4-byte schema id, Avro body)
	Prov       Provenance
	// Port is the output port the entry was published to: empty for the
	// product's first output port (the only one of most products), so the
	// logs of a product that gains a port later keep their meaning.
	Port string
	Hash [32]byte // chain hash; set by Append and by reads, ignored on input
}

// Entity is what the entry is a version of: its key, qualified by its
// output port when that is not the first (see EntityKey).
func (e *Entry) Entity() []byte { return EntityKey(e.Port, e.Key) }

// EntityKey names entity key of output port port as the index and the
// bitemporal queries see it: the key itself for the first port (""), and
// port, a zero byte and the key for another, so two ports' entities of
// one key stay apart.
func EntityKey(port string, key []byte) []byte {
	if port == "" {
		return key
	}
	b := make([]byte, 0, len(port)+1+len(key))
	b = append(b, port...)
	b = append(b, 0)
	return append(b, key...)
}

// ErrCorrupt is what every *CorruptError unwraps to.
var ErrCorrupt = errors.New("change log corrupt")

// CorruptError names the first place where a log stops being trustworthy.
// It is fatal: nothing is repaired automatically, because a repair could
// destroy the evidence an auditor needs.
type CorruptError struct {
	Dir, Segment string
	Offset       int64  // byte offset of the frame (or header) in the segment
	Seq          uint64 // seq of the bad entry, or the expected seq if unreadable
	Reason       string
}

// Error names the segment, offset and entry, leaving out what is not
// known (a removed log has no segment; a bad note no entry).
func (e *CorruptError) Error() string {
	b := []byte("change log corrupt: ")
	if e.Segment != "" {
		b = fmt.Appendf(b, "segment %s offset %d ", e.Segment, e.Offset)
	}
	if e.Seq != 0 {
		b = fmt.Appendf(b, "entry seq %d ", e.Seq)
	}
	if n := len(b); b[n-1] == ' ' {
		b[n-1] = ':'
		b = append(b, ' ')
	}
	return string(append(b, e.Reason...))
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

const (
	segMagic      = "MSHLOG"
	formatVersion = 1
	segSuffix     = ".seg"
	tmpSuffix     = ".tmp"
	segNameDigits = 20

	headerSize      = 52 // magic 6, version 1, reserved 1, first seq 8, prev hash 32, crc 4
	frameHeaderSize = 8  // length 4, crc 4
	hashSize        = 32
	fixedBodySize   = 8 + 8 + 8 + 8 + 1 + 4 + 8 + 4
	// Four zero-length variable fields take one uvarint byte each.
	minFrameLen = fixedBodySize + 4 + hashSize
	// Readers refuse larger frames, so a flipped length byte can never make
	// them allocate more than this.
	maxFrameLen = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segmentName(firstSeq uint64) string {
	return fmt.Sprintf("%0*d%s", segNameDigits, firstSeq, segSuffix)
}

// parseSegmentName accepts only the canonical form, so two names can never
// claim the same first seq.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != segNameDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

type segmentHeader struct {
	firstSeq uint64
	prev     [32]byte // chain hash of the entry before firstSeq
}

func (h segmentHeader) encode() [headerSize]byte {
	var b [headerSize]byte
	copy(b[0:6], segMagic)
	b[6] = formatVersion
	binary.BigEndian.PutUint64(b[8:16], h.firstSeq)
	copy(b[16:48], h.prev[:])
	binary.BigEndian.PutUint32(b[48:52], crc32.Checksum(b[:48], castagnoli))
	return b
}

// decodeHeader returns a non-empty reason when b is not a valid header.
func decodeHeader(b []byte) (segmentHeader, string) {
	var h segmentHeader
	if string(b[0:6]) != segMagic {
		return h, fmt.Sprintf("bad segment magic %q", b[0:6])
	}
	if b[6] != formatVersion {
		return h, fmt.Sprintf("unsupported format version %d", b[6])
	}
	if got, want := crc32.Checksum(b[:48], castagnoli), binary.BigEndian.Uint32(b[48:52]); got != want {
		return h, fmt.Sprintf("segment header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if b[7] != 0 {
		return h, fmt.Sprintf("reserved header byte is %d, want 0", b[7])
	}
	h.firstSeq = binary.BigEndian.Uint64(b[8:16])
	copy(h.prev[:], b[16:48])
	return h, ""
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// frameLen is the value of the frame's length field: body plus stored hash.
func frameLen(e *Entry) int {
	return fixedBodySize +
		uvarintLen(uint64(len(e.Key))) + len(e.Key) +
		uvarintLen(uint64(len(e.Payload))) + len(e.Payload) +
		uvarintLen(uint64(len(e.Prov.Topic))) + len(e.Prov.Topic) +
		uvarintLen(uint64(len(e.Prov.SourcePosition))) + len(e.Prov.SourcePosition) +
		portLen(e.Port) + hashSize
}

// portLen is what the optional port field takes: nothing for the first port.
func portLen(port string) int {
	if port == "" {
		return 0
	}
	return uvarintLen(uint64(len(port))) + len(port)
}

// appendBody encodes every field but Hash. Fixed-width fields come first so
// a reader can pick the seq out of a frame without decoding it.
func appendBody(b []byte, e *Entry) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.SystemTime))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ValidFrom))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ValidTo))
	b = append(b, e.Op)
	b = binary.BigEndian.AppendUint32(b, uint32(e.Prov.Partition))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Prov.Offset))
	b = binary.BigEndian.AppendUint32(b, e.Prov.SchemaID)
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	b = append(b, e.Payload...)
	b = binary.AppendUvarint(b, uint64(len(e.Prov.Topic)))
	b = append(b, e.Prov.Topic...)
	b = binary.AppendUvarint(b, uint64(len(e.Prov.SourcePosition)))
	b = append(b, e.Prov.SourcePosition...)
	if e.Port != "" {
		b = binary.AppendUvarint(b, uint64(len(e.Port)))
		b = append(b, e.Port...)
	}
	return b
}

func knownOp(op byte) bool { return op == OpAssert || op == OpRetract }

// decoder turns frame bodies into entries. It keeps the last topic string
// because a partition's log nearly always names one topic, and re-using the
// string saves an allocation per entry.
type decoder struct {
	strings bool // materialize Topic and SourcePosition; verification does not need them
	topic   string
	port    string // the last port string, likewise
}

// decode fills e from body (the frame without its stored hash). Key and
// Payload alias body.
func (d *decoder) decode(body []byte, e *Entry) string {
	if len(body) < fixedBodySize {
		return "entry body too short"
	}
	e.Seq = binary.BigEndian.Uint64(body[0:8])
	e.SystemTime = int64(binary.BigEndian.Uint64(body[8:16]))
	e.ValidFrom = int64(binary.BigEndian.Uint64(body[16:24]))
	e.ValidTo = int64(binary.BigEndian.Uint64(body[24:32]))
	e.Op = body[32]
	e.Prov.Partition = int32(binary.BigEndian.Uint32(body[33:37]))
	e.Prov.Offset = int64(binary.BigEndian.Uint64(body[37:45]))
	e.Prov.SchemaID = binary.BigEndian.Uint32(body[45:49])
	if !knownOp(e.Op) {
		return fmt.Sprintf("unknown op 0x%02x", e.Op)
	}
	rest := body[fixedBodySize:]
	var fields [4][]byte
	for i := range fields {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "entry field length runs past the frame"
		}
		fields[i] = rest[w : w+int(n)]
		rest = rest[w+int(n):]
	}
	e.Port = ""
	if len(rest) != 0 {
		// The optional port field, only ever written non-empty.
		n, w := binary.Uvarint(rest)
		if w <= 0 || n == 0 || n != uint64(len(rest)-w) {
			return fmt.Sprintf("%d unexpected bytes after the entry fields", len(rest))
		}
		if port := rest[w:]; string(port) != d.port {
			d.port = string(port)
		}
		e.Port = d.port
	}
	e.Key, e.Payload = fields[0], fields[1]
	if d.strings {
		if string(fields[2]) != d.topic {
			d.topic = string(fields[2])
		}
		e.Prov.Topic = d.topic
		e.Prov.SourcePosition = string(fields[3])
	}
	return ""
}

func shortHash(h []byte) string { return hex.EncodeToString(h[:2]) + "…" }
